//! Message history with cursors (before, after, or around a message for a jump), single messages, and sending over HTTP (the same path as the
//! gateway's `SendMessage`, so the nonce makes it idempotent too).

use std::time::Instant;

use axum::extract::State;
use axum::http::StatusCode;
use hearth_protocol::api::{HistoryQuery, SendMessageRequest};
use hearth_protocol::model::Message;
use hearth_protocol::{ChannelId, MessageId};

use super::extract::{Json, Path, Query};
use crate::auth::AuthUser;
use crate::db::messages::Stored;
use crate::error::{AppError, AppResult};
use crate::gateway::{commit, prepare_message, publish, text_channel};
use crate::state::AppState;

pub async fn history(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<ChannelId>,
    Query(q): Query<HistoryQuery>,
) -> AppResult<Json<Vec<Message>>> {
    text_channel(&state, user.id, id)?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=100).contains(&limit) {
        return Err(AppError::invalid("limit must be between 1 and 100"));
    }
    let cursors = [q.before.is_some(), q.after.is_some(), q.around.is_some()];
    if cursors.iter().filter(|c| **c).count() > 1 {
        return Err(AppError::invalid("give at most one of before, after and around"));
    }
    if let Some(around) = q.around {
        return Ok(Json(state.db.history_around(id, around, limit).await?));
    }
    Ok(Json(state.db.history(id, q.before, q.after, limit).await?))
}

pub async fn one(
    State(state): State<AppState>,
    user: AuthUser,
    Path((id, message_id)): Path<(ChannelId, MessageId)>,
) -> AppResult<Json<Message>> {
    text_channel(&state, user.id, id)?;
    state.db.message(id, message_id).await?.map(Json).ok_or_else(|| AppError::not_found("message"))
}

pub async fn send(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<ChannelId>,
    Json(req): Json<SendMessageRequest>,
) -> AppResult<(StatusCode, Json<Message>)> {
    let received = Instant::now();
    let nonce = req.nonce.clone();
    let message =
        prepare_message(&state, user.id, id, req.nonce, req.content, req.reply_to, req.attachments)?;
    match commit(&state, message).await? {
        Stored::Created(message) => {
            publish(&state, &message, &nonce, received);
            Ok((StatusCode::CREATED, Json(message)))
        }
        Stored::Duplicate(message) => Ok((StatusCode::OK, Json(message))),
        Stored::BadReply => Err(AppError::not_found("message to reply to")),
        Stored::BadAttachment => Err(crate::gateway::bad_attachment()),
    }
}
