//! Members and profiles: list, me, display name, avatar, password, blocks.

use axum::body::Body;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use hearth_protocol::api::{ChangePasswordRequest, UpdateProfileRequest};
use hearth_protocol::model::User;
use hearth_protocol::{ErrorCode, UserId};

use super::auth::{check_display_name, check_password};
use super::extract::{Json, Path};
use crate::auth::AuthUser;
use crate::avatar;
use crate::error::{AppError, AppResult};
use crate::state::AppState;

fn current(state: &AppState, user: &AuthUser) -> AppResult<User> {
    state.hub.user(user.id).ok_or_else(AppError::unauthorized)
}

pub async fn list(State(state): State<AppState>, _user: AuthUser) -> Json<Vec<User>> {
    Json(state.hub.members())
}

pub async fn me(State(state): State<AppState>, user: AuthUser) -> AppResult<Json<User>> {
    Ok(Json(current(&state, &user)?))
}

pub async fn update_me(
    State(state): State<AppState>,
    user: AuthUser,
    Json(req): Json<UpdateProfileRequest>,
) -> AppResult<Json<User>> {
    let mut profile = current(&state, &user)?;
    if let Some(name) = req.display_name {
        let name = check_display_name(&name)?;
        state.db.set_display_name(user.id, &name).await?;
        profile.display_name = name;
        state.hub.upsert_user(profile.clone());
    }
    Ok(Json(profile))
}

/// The body is the image file itself (PNG, JPEG, GIF or WebP).
pub async fn put_avatar(State(state): State<AppState>, user: AuthUser, body: Body) -> AppResult<Json<User>> {
    let (hash, png) = avatar::receive(&state, body).await?;
    avatar::store(&avatar::path(&state.config.files_dir, &hash), &png).await?;
    state.db.set_avatar(user.id, Some(&hash)).await?;
    let mut profile = current(&state, &user)?;
    profile.avatar = Some(hash);
    state.hub.upsert_user(profile.clone());
    Ok(Json(profile))
}

pub async fn delete_avatar(State(state): State<AppState>, user: AuthUser) -> AppResult<Json<User>> {
    state.db.set_avatar(user.id, None).await?;
    let mut profile = current(&state, &user)?;
    profile.avatar = None;
    state.hub.upsert_user(profile.clone());
    Ok(Json(profile))
}

/// `GET /avatars/{hash}.png` (members only).
pub async fn avatar(
    State(state): State<AppState>,
    _user: AuthUser,
    Path(file): Path<String>,
) -> AppResult<impl IntoResponse> {
    let hash = file.strip_suffix(".png").unwrap_or(&file);
    let path = avatar::path(&state.config.files_dir, hash).ok_or_else(|| AppError::not_found("avatar"))?;
    let bytes = tokio::fs::read(&path).await.map_err(|_| AppError::not_found("avatar"))?;
    Ok((
        [
            (header::CONTENT_TYPE, "image/png"),
            (header::CACHE_CONTROL, "private, max-age=31536000, immutable"),
        ],
        bytes,
    ))
}

/// Changes the password and ends every other login of the user.
pub async fn change_password(
    State(state): State<AppState>,
    user: AuthUser,
    Json(req): Json<ChangePasswordRequest>,
) -> AppResult<StatusCode> {
    check_password(&req.new_password)?;
    let record = state.db.user_by_id(user.id).await?.ok_or_else(AppError::unauthorized)?;
    if !state.passwords.verify(&req.current_password, Some(&record.password_hash)).await? {
        return Err(AppError::new(ErrorCode::InvalidCredentials, "the current password is wrong"));
    }
    let hash = state.passwords.hash(&req.new_password).await?;
    state.db.set_password_hash(user.id, &hash).await?;
    for family in state.db.revoke_user_families(user.id, Some(&user.family)).await? {
        state.hub.revoke_family(&family);
    }
    Ok(StatusCode::NO_CONTENT)
}

/// `PUT /users/@me/blocks/{id}`: the blocked member's messages are hidden here (by the app)
/// and they can no longer open or send DMs to this member.
pub async fn block(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<UserId>,
) -> AppResult<StatusCode> {
    set_block(&state, &user, id, true).await
}

/// `DELETE /users/@me/blocks/{id}`.
pub async fn unblock(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<UserId>,
) -> AppResult<StatusCode> {
    set_block(&state, &user, id, false).await
}

async fn set_block(state: &AppState, user: &AuthUser, id: UserId, on: bool) -> AppResult<StatusCode> {
    if id == user.id {
        return Err(AppError::invalid("you cannot block yourself"));
    }
    if on && state.hub.user(id).is_none() {
        return Err(AppError::not_found("member"));
    }
    if state.db.set_block(user.id, id, on).await? {
        state.hub.set_block(user.id, id, on);
    }
    Ok(StatusCode::NO_CONTENT)
}
