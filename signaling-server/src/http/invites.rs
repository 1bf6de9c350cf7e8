//! Invites (`ManageInvites`): create, list the usable ones, revoke; each change with its
//! audit entry. The public page for an invite link is `invite_page`.

use axum::extract::State;
use axum::http::StatusCode;
use hearth_protocol::api::{CreateInviteRequest, Invite};
use hearth_protocol::model::{AuditAction, AuditEntry, Permission};

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
    user.require(&state, Permission::ManageInvites)?;
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
    let mut entry = invite_entry(&state, &user, AuditAction::InviteCreate, &invite.code);
    entry.changes = vec![
        crate::audit::change("max_uses", None, invite.max_uses.map(|n| n.to_string()).as_deref()),
        crate::audit::change("expires_at", None, invite.expires_at.map(|t| t.to_string()).as_deref()),
    ];
    let mut tx = state.db.pool.begin().await?;
    crate::db::invites::insert(&mut tx, &invite).await?;
    crate::db::audit::insert(&mut tx, &entry).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(invite)))
}

fn invite_entry(state: &AppState, user: &AuthUser, action: AuditAction, code: &str) -> AuditEntry {
    AuditEntry { target_invite: Some(code.to_string()), ..crate::audit::entry(state, user.id, action) }
}

pub async fn list(State(state): State<AppState>, user: AuthUser) -> AppResult<Json<Vec<Invite>>> {
    user.require(&state, Permission::ManageInvites)?;
    Ok(Json(state.db.usable_invites().await?))
}

pub async fn revoke(
    State(state): State<AppState>,
    user: AuthUser,
    Path(code): Path<String>,
) -> AppResult<StatusCode> {
    user.require(&state, Permission::ManageInvites)?;
    let entry = invite_entry(&state, &user, AuditAction::InviteRevoke, &code);
    let mut tx = state.db.pool.begin().await?;
    if !crate::db::invites::revoke(&mut tx, &code).await? {
        return Err(AppError::not_found("invite"));
    }
    crate::db::audit::insert(&mut tx, &entry).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
