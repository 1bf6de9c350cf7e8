//! Administering members (`ManageMembers`): change a role, kick, ban and unban, the ban list.
//! Every action on another member follows the rank rule (`Role::outranks`); a role is granted
//! at most up to the granter's own; the group always keeps an owner. Each change and its
//! audit entry commit together, under the admin lock.

use axum::extract::State;
use axum::http::StatusCode;
use hearth_protocol::api::{ModerationRequest, UpdateMemberRequest};
use hearth_protocol::gateway::close;
use hearth_protocol::model::{AuditAction, Ban, Permission, Role, User};
use hearth_protocol::{ErrorCode, MAX_REASON_CHARS, UserId};

use super::extract::{Json, JsonOrEmpty, Path};
use crate::auth::AuthUser;
use crate::db::users::UserRecord;
use crate::error::{AppError, AppResult};
use crate::state::AppState;

/// The rank rule: `actor` may act on `target`.
fn check_rank(actor: &AuthUser, target: &User) -> AppResult<()> {
    if actor.role.outranks(target.role) {
        Ok(())
    } else {
        Err(AppError::new(ErrorCode::Forbidden, "you can only act on members ranked below you"))
    }
}

/// Refuses a change that would leave the group without an owner (inside the transaction).
async fn keep_an_owner(conn: &mut sqlx::AnyConnection, target: &User) -> AppResult<()> {
    if target.role == Role::Owner && crate::db::users::owner_count(conn).await? <= 1 {
        return Err(AppError::invalid(
            "the group's last owner cannot be removed or demoted; hand over ownership first",
        ));
    }
    Ok(())
}

fn check_reason(reason: Option<String>) -> AppResult<Option<String>> {
    let reason = reason.map(|r| r.trim().to_string()).filter(|r| !r.is_empty());
    if reason
        .as_ref()
        .is_some_and(|r| r.chars().count() > MAX_REASON_CHARS || r.chars().any(char::is_control))
    {
        return Err(AppError::invalid(format!(
            "a reason is at most {MAX_REASON_CHARS} characters on one line"
        )));
    }
    Ok(reason)
}

/// `PATCH /users/{id}`: changes a member's role.
pub async fn update(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<UserId>,
    Json(req): Json<UpdateMemberRequest>,
) -> AppResult<Json<User>> {
    user.require(&state, Permission::ManageMembers)?;
    let _admin = state.admin_lock.lock().await;
    let mut target = state.hub.user(id).ok_or_else(|| AppError::not_found("member"))?;
    let Some(role) = req.role else { return Ok(Json(target)) };
    check_rank(&user, &target)?;
    if role > user.role {
        return Err(AppError::new(ErrorCode::Forbidden, "you cannot grant a role above your own"));
    }
    if role == target.role {
        return Ok(Json(target));
    }
    let mut entry = crate::audit::on_user(&state, user.id, AuditAction::MemberRoleUpdate, id);
    entry.changes = vec![crate::audit::change("role", Some(target.role.as_str()), Some(role.as_str()))];
    let mut tx = state.db.pool.begin().await?;
    if role < Role::Owner {
        keep_an_owner(&mut tx, &target).await?;
    }
    crate::db::users::set_role(&mut tx, id, role).await?;
    crate::db::audit::insert(&mut tx, &entry).await?;
    tx.commit().await?;
    target.role = role;
    state.hub.upsert_user(target.clone());
    tracing::info!(user = %id, by = %user.id, role = role.as_str(), "role changed");
    Ok(Json(target))
}

/// A current member the caller may remove, or why not.
fn removable(state: &AppState, user: &AuthUser, id: UserId) -> AppResult<User> {
    if id == user.id {
        return Err(AppError::invalid("you cannot remove yourself"));
    }
    let target = state.hub.user(id).ok_or_else(|| AppError::not_found("member"))?;
    check_rank(user, &target)?;
    Ok(target)
}

/// `POST /users/{id}/kick`: out of the group, sessions closed with `KICKED`; a new invite
/// (and their password) brings them back.
pub async fn kick(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<UserId>,
    JsonOrEmpty(req): JsonOrEmpty<ModerationRequest>,
) -> AppResult<StatusCode> {
    remove(&state, &user, id, req, false).await
}

/// `PUT /bans/{id}`: like a kick, and login and registration are refused until unbanned.
/// A member already removed (kicked) can be banned too; banning twice changes nothing.
pub async fn ban(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<UserId>,
    JsonOrEmpty(req): JsonOrEmpty<ModerationRequest>,
) -> AppResult<StatusCode> {
    remove(&state, &user, id, req, true).await
}

/// Kick or ban: the member leaves the group (if still in it) with the audit entry in the same
/// transaction, then their sessions close with the matching code.
async fn remove(
    state: &AppState,
    user: &AuthUser,
    id: UserId,
    req: ModerationRequest,
    ban: bool,
) -> AppResult<StatusCode> {
    let reason = check_reason(req.reason)?;
    user.require(state, Permission::ManageMembers)?;
    let _admin = state.admin_lock.lock().await;
    let current = state.hub.user(id).is_some();
    let target: User = if current || !ban {
        removable(state, user, id)?
    } else {
        if id == user.id {
            return Err(AppError::invalid("you cannot ban yourself"));
        }
        let record: UserRecord =
            state.db.user_by_id(id).await?.ok_or_else(|| AppError::not_found("member"))?;
        record.user
    };
    let action = if ban { AuditAction::MemberBan } else { AuditAction::MemberKick };
    let mut entry = crate::audit::on_user(state, user.id, action, id);
    entry.reason = reason;
    let mut tx = state.db.pool.begin().await?;
    if current {
        keep_an_owner(&mut tx, &target).await?;
        crate::db::users::remove(&mut tx, id).await?;
    }
    if ban && !crate::db::moderation::ban(&mut tx, id, entry.reason.as_deref(), user.id).await? {
        // Already banned: nothing to change or record.
        return Ok(StatusCode::NO_CONTENT);
    }
    crate::db::audit::insert(&mut tx, &entry).await?;
    tx.commit().await?;
    if current {
        state.hub.remove_user(id, if ban { close::BANNED } else { close::KICKED });
        for family in state.db.revoke_user_families(id, None).await? {
            state.hub.revoke_family(&family);
        }
    }
    tracing::info!(user = %id, by = %user.id, banned = ban, "member removed");
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /bans/{id}`: they may come back with a new invite.
pub async fn unban(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<UserId>,
) -> AppResult<StatusCode> {
    user.require(&state, Permission::ManageMembers)?;
    let _admin = state.admin_lock.lock().await;
    let entry = crate::audit::on_user(&state, user.id, AuditAction::MemberUnban, id);
    let mut tx = state.db.pool.begin().await?;
    if !crate::db::moderation::unban(&mut tx, id).await? {
        return Err(AppError::not_found("ban"));
    }
    crate::db::audit::insert(&mut tx, &entry).await?;
    tx.commit().await?;
    tracing::info!(user = %id, by = %user.id, "ban lifted");
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /bans`.
pub async fn bans(State(state): State<AppState>, user: AuthUser) -> AppResult<Json<Vec<Ban>>> {
    user.require(&state, Permission::ManageMembers)?;
    Ok(Json(state.db.bans().await?))
}
