//! Invites (admin only).

use axum::extract::State;
use axum::http::StatusCode;
use hearth_protocol::api::{CreateInviteRequest, Invite};

use super::extract::{Json, Path};
use crate::auth::{AuthUser, random_token};
use crate::db::now_ms;
use crate::error::{AppError, AppResult};
use crate::state::AppState;

/// Longest an invite may live.
const MAX_INVITE_SECS: u64 = 365 * 86_400;

pub async fn create(
    State(state): State<AppState>,
    user: AuthUser,
    Json(req): Json<CreateInviteRequest>,
) -> AppResult<(StatusCode, Json<Invite>)> {
    user.require_admin()?;
    if req.max_uses == Some(0) {
        return Err(AppError::invalid("max_uses must be at least 1, or absent for unlimited"));
    }
    if req.expires_in_secs.is_some_and(|s| s == 0 || s > MAX_INVITE_SECS) {
        return Err(AppError::invalid("expires_in_secs must be between 1 and one year"));
    }
    let invite = Invite {
        code: random_token(12),
        max_uses: req.max_uses,
        uses: 0,
        expires_at: req.expires_in_secs.map(|s| now_ms() + (s as i64) * 1000),
        created_by: user.id,
        created_at: now_ms(),
    };
    state.db.insert_invite(&invite).await?;
    Ok((StatusCode::CREATED, Json(invite)))
}

pub async fn list(State(state): State<AppState>, user: AuthUser) -> AppResult<Json<Vec<Invite>>> {
    user.require_admin()?;
    Ok(Json(state.db.usable_invites().await?))
}

pub async fn revoke(
    State(state): State<AppState>,
    user: AuthUser,
    Path(code): Path<String>,
) -> AppResult<StatusCode> {
    user.require_admin()?;
    if state.db.revoke_invite(&code).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(AppError::not_found("invite"))
    }
}
