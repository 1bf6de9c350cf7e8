//! Channels: everyone lists what they can see; admins create, rename, reorder and delete
//! group channels; anyone opens DMs and group DMs with other members.

use axum::extract::State;
use axum::http::StatusCode;
use hearth_protocol::api::{CreateChannelRequest, CreateDmRequest, UpdateChannelRequest};
use hearth_protocol::model::{Channel, ChannelKind};
use hearth_protocol::{ChannelId, MAX_GROUP_DM_MEMBERS};

use super::extract::{Json, Path};
use crate::auth::AuthUser;
use crate::error::{AppError, AppResult};
use crate::state::AppState;

fn check_name(name: &str) -> AppResult<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
        return Err(AppError::invalid("channel names are 1 to 64 characters"));
    }
    Ok(name.to_string())
}

pub async fn list(State(state): State<AppState>, user: AuthUser) -> Json<Vec<Channel>> {
    Json(state.hub.visible_channels(user.id))
}

pub async fn get(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<ChannelId>,
) -> AppResult<Json<Channel>> {
    state.hub.visible_channel(user.id, id).map(Json).ok_or_else(|| AppError::not_found("channel"))
}

pub async fn create(
    State(state): State<AppState>,
    user: AuthUser,
    Json(req): Json<CreateChannelRequest>,
) -> AppResult<(StatusCode, Json<Channel>)> {
    user.require_admin()?;
    if req.kind.is_direct() {
        return Err(AppError::invalid("use /dms to open a direct message"));
    }
    let channel = Channel {
        id: ChannelId(state.ids.next()),
        kind: req.kind,
        name: check_name(&req.name)?,
        topic: String::new(),
        position: state.hub.next_position(),
        private: false,
        members: Vec::new(),
        last_message_id: None,
    };
    state.db.insert_channel(&channel).await?;
    state.hub.upsert_channel(channel.clone());
    Ok((StatusCode::CREATED, Json(channel)))
}

/// A group channel, for admin changes.
fn group_channel(state: &AppState, user: &AuthUser, id: ChannelId) -> AppResult<Channel> {
    let channel = state.hub.visible_channel(user.id, id).ok_or_else(|| AppError::not_found("channel"))?;
    user.require_admin()?;
    if channel.kind.is_direct() {
        return Err(AppError::invalid("direct messages cannot be changed this way"));
    }
    Ok(channel)
}

pub async fn update(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<ChannelId>,
    Json(req): Json<UpdateChannelRequest>,
) -> AppResult<Json<Channel>> {
    let mut channel = group_channel(&state, &user, id)?;
    if let Some(name) = req.name {
        channel.name = check_name(&name)?;
    }
    if let Some(position) = req.position {
        if !(0..=10_000).contains(&position) {
            return Err(AppError::invalid("position must be between 0 and 10000"));
        }
        channel.position = position;
    }
    state.db.update_channel(id, &channel.name, channel.position).await?;
    state.hub.upsert_channel(channel.clone());
    Ok(Json(channel))
}

pub async fn remove(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<ChannelId>,
) -> AppResult<StatusCode> {
    group_channel(&state, &user, id)?;
    state.db.delete_channel(id).await?;
    state.hub.delete_channel(id);
    Ok(StatusCode::NO_CONTENT)
}

/// Opens (or finds) a DM with one member, or makes a group DM with several.
pub async fn open_dm(
    State(state): State<AppState>,
    user: AuthUser,
    Json(req): Json<CreateDmRequest>,
) -> AppResult<(StatusCode, Json<Channel>)> {
    let mut others = req.recipients;
    others.sort();
    others.dedup();
    others.retain(|u| *u != user.id);
    if others.is_empty() || others.len() + 1 > MAX_GROUP_DM_MEMBERS {
        return Err(AppError::invalid(format!("a DM needs 1 to {} other members", MAX_GROUP_DM_MEMBERS - 1)));
    }
    if others.iter().any(|u| state.hub.user(*u).is_none()) {
        return Err(AppError::not_found("member"));
    }
    if let [other] = others[..]
        && let Some(existing) = state.hub.find_dm(user.id, other)
    {
        return Ok((StatusCode::OK, Json(existing)));
    }
    let mut members = others.clone();
    members.push(user.id);
    members.sort();
    let channel = Channel {
        id: ChannelId(state.ids.next()),
        kind: if others.len() == 1 { ChannelKind::Dm } else { ChannelKind::GroupDm },
        name: String::new(),
        topic: String::new(),
        position: 0,
        private: false,
        members,
        last_message_id: None,
    };
    state.db.insert_channel(&channel).await?;
    state.hub.upsert_channel(channel.clone());
    Ok((StatusCode::CREATED, Json(channel)))
}
