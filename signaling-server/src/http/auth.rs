//! Register (with an invite or the setup token), login, refresh, logout.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use hearth_protocol::api::{LoginRequest, LogoutRequest, RefreshRequest, RegisterRequest, Session};
use hearth_protocol::model::{Role, User};
use hearth_protocol::{ErrorCode, UserId};

use super::extract::{Json, JsonOrEmpty};
use crate::auth::password::{MAX_PASSWORD_BYTES, MIN_PASSWORD_CHARS};
use crate::auth::{AuthUser, hash_refresh_token};
use crate::db::tokens::RefreshLookup;
use crate::db::users::UserRecord;
use crate::db::users::username_key;
use crate::error::{AppError, AppResult};
use crate::state::AppState;

pub fn check_username(name: &str) -> AppResult<()> {
    let ok_len = (2..=32).contains(&name.chars().count());
    let ok_chars = name.chars().all(|c| c.is_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok_len && ok_chars {
        Ok(())
    } else {
        Err(AppError::invalid("usernames are 2 to 32 letters, digits, '_', '.' or '-'"))
    }
}

pub fn check_password(password: &str) -> AppResult<()> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(AppError::invalid(format!("passwords need at least {MIN_PASSWORD_CHARS} characters")));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(AppError::invalid(format!("passwords are limited to {MAX_PASSWORD_BYTES} bytes")));
    }
    Ok(())
}

pub fn check_display_name(name: &str) -> AppResult<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 32 || name.chars().any(char::is_control) {
        return Err(AppError::invalid("display names are 1 to 32 characters"));
    }
    Ok(name.to_string())
}

fn limit_ip(state: &AppState, addr: &SocketAddr) -> AppResult<()> {
    state.login_by_ip.check(&addr.ip(), Instant::now()).map_err(|wait| {
        state.metrics.rate_limited.fetch_add(1, Ordering::Relaxed);
        AppError::rate_limited(wait.as_millis() as u64)
    })
}

pub async fn register(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    Json(req): Json<RegisterRequest>,
) -> AppResult<(StatusCode, Json<Session>)> {
    limit_ip(&state, &addr)?;
    check_username(&req.username)?;
    check_password(&req.password)?;
    let display_name = check_display_name(req.display_name.as_deref().unwrap_or(&req.username))?;
    // The setup token is taken out while this registration runs, so two cannot both use it.
    let setup = {
        let mut slot = state.setup_token.lock().unwrap_or_else(|p| p.into_inner());
        match slot.as_deref() {
            Some(token) if crate::auth::constant_time_eq(token, &req.invite) => slot.take(),
            _ => None,
        }
    };
    let result = create_account(&state, &req, display_name, setup.is_some()).await;
    match (&result, setup) {
        (Ok(_), Some(_)) => crate::setup::consumed(&state),
        (Err(_), Some(token)) => {
            *state.setup_token.lock().unwrap_or_else(|p| p.into_inner()) = Some(token);
        }
        _ => {}
    }
    let user = result?;
    state.hub.upsert_user(user.clone());
    tracing::info!(user = %user.id, role = user.role.as_str(), "account registered");
    Ok((StatusCode::CREATED, Json(state.issue_session(user.id, None).await?)))
}

async fn create_account(
    state: &AppState,
    req: &RegisterRequest,
    display_name: String,
    admin: bool,
) -> AppResult<User> {
    let taken = || AppError::new(ErrorCode::Conflict, "that username is taken");
    if let Some(existing) = state.db.user_by_username(&req.username).await? {
        if !existing.removed {
            return Err(taken());
        }
        return restore_account(state, req, existing).await;
    }
    let hash = state.passwords.hash(&req.password).await?;
    let user = User {
        id: UserId(state.ids.next()),
        username: req.username.clone(),
        display_name,
        avatar: None,
        role: if admin { Role::Owner } else { Role::Member },
    };
    let mut tx = state.db.pool.begin().await?;
    if !admin && !crate::db::Db::consume_invite(&mut *tx, &req.invite).await? {
        return Err(invalid_invite());
    }
    if !state.db.insert_user(&mut *tx, &user, &hash).await? {
        return Err(taken());
    }
    tx.commit().await?;
    Ok(user)
}

fn invalid_invite() -> AppError {
    AppError::new(ErrorCode::InvalidInvite, "this invite is unknown, expired or used up")
}

/// A removed (kicked) member registers again with a new invite: with their old password they
/// get their account back (history kept, as a member); anyone else is told the name is taken,
/// and a banned member that they are banned.
async fn restore_account(state: &AppState, req: &RegisterRequest, existing: UserRecord) -> AppResult<User> {
    let taken = || AppError::new(ErrorCode::Conflict, "that username is taken");
    // The same guard as login: this is a password check on an existing account.
    check_account_rate(state, &req.username)?;
    if !state.passwords.verify(&req.password, Some(&existing.password_hash)).await? {
        return Err(taken());
    }
    let id = existing.user.id;
    if state.db.is_banned(id).await? {
        return Err(banned());
    }
    let display_name = match &req.display_name {
        Some(name) => check_display_name(name)?,
        None => existing.user.display_name.clone(),
    };
    let mut tx = state.db.pool.begin().await?;
    if !crate::db::Db::consume_invite(&mut *tx, &req.invite).await? {
        return Err(invalid_invite());
    }
    if !crate::db::users::restore(&mut tx, id, &display_name).await? {
        return Err(taken());
    }
    tx.commit().await?;
    tracing::info!(user = %id, "removed member came back");
    Ok(User { display_name, role: Role::Member, ..existing.user })
}

fn banned() -> AppError {
    AppError::new(ErrorCode::Banned, "this account is banned from the group")
}

fn check_account_rate(state: &AppState, username: &str) -> AppResult<()> {
    state.login_by_account.check(&username_key(username), Instant::now()).map_err(|wait| {
        state.metrics.rate_limited.fetch_add(1, Ordering::Relaxed);
        AppError::rate_limited(wait.as_millis() as u64)
    })
}

pub async fn login(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    Json(req): Json<LoginRequest>,
) -> AppResult<Json<Session>> {
    limit_ip(&state, &addr)?;
    if req.password.len() > MAX_PASSWORD_BYTES || req.username.len() > 128 {
        return Err(AppError::new(ErrorCode::InvalidCredentials, "wrong username or password"));
    }
    check_account_rate(&state, &req.username)?;
    let record = state.db.user_by_username(&req.username).await?;
    let ok = state.passwords.verify(&req.password, record.as_ref().map(|r| r.password_hash.as_str())).await?;
    let Some(record) = record.filter(|_| ok) else {
        state.metrics.failed_logins.fetch_add(1, Ordering::Relaxed);
        return Err(AppError::new(ErrorCode::InvalidCredentials, "wrong username or password"));
    };
    // Only the right password learns that the account is banned or was removed.
    if record.removed {
        state.metrics.failed_logins.fetch_add(1, Ordering::Relaxed);
        if state.db.is_banned(record.user.id).await? {
            return Err(banned());
        }
        return Err(AppError::new(
            ErrorCode::InvalidCredentials,
            "this account was removed from the group; register again with a new invite",
        ));
    }
    state.metrics.logins.fetch_add(1, Ordering::Relaxed);
    Ok(Json(state.issue_session(record.user.id, None).await?))
}

pub async fn refresh(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    Json(req): Json<RefreshRequest>,
) -> AppResult<Json<Session>> {
    limit_ip(&state, &addr)?;
    let invalid = || AppError::new(ErrorCode::InvalidRefreshToken, "log in again");
    match state.db.spend_refresh_token(&hash_refresh_token(&req.refresh_token)).await? {
        RefreshLookup::Fresh { family, user_id } => {
            if state.hub.user(user_id).is_none() || state.hub.is_revoked(&family) {
                return Err(invalid());
            }
            Ok(Json(state.issue_session(user_id, Some(family)).await?))
        }
        RefreshLookup::Reused { family, user_id } => {
            // A spent token came back: it was stolen, or the client is confused. Either way
            // the whole login is ended so the thief's copy dies too.
            tracing::warn!(user = %user_id, "refresh token reused; revoking the login");
            state.db.revoke_family(&family).await?;
            state.hub.revoke_family(&family);
            Err(invalid())
        }
        RefreshLookup::Invalid => Err(invalid()),
    }
}

/// The body is optional: no body means this login only.
pub async fn logout(
    State(state): State<AppState>,
    user: AuthUser,
    // No body means this login only.
    JsonOrEmpty(request): JsonOrEmpty<LogoutRequest>,
) -> AppResult<StatusCode> {
    let everywhere = request.everywhere;
    let families = if everywhere {
        let mut all = state.db.revoke_user_families(user.id, None).await?;
        all.push(user.family.clone());
        all
    } else {
        state.db.revoke_family(&user.family).await?;
        vec![user.family.clone()]
    };
    for family in &families {
        state.hub.revoke_family(family);
    }
    Ok(StatusCode::NO_CONTENT)
}
