//! The group itself: public info and icon, health, metrics; settings (read by every member,
//! changed with `ManageServer`), the icon, handing over ownership; TURN credentials.

use std::sync::atomic::Ordering;

use axum::body::Body;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use hearth_protocol::api::{
    ServerInfo, TransferOwnershipRequest, TurnCredentials, UpdateServerSettingsRequest,
};
use hearth_protocol::model::{AuditAction, Permission, Role, ServerSettings, User};
use hearth_protocol::{ErrorCode, PROTOCOL_VERSION};

use super::extract::{Json, Path};
use crate::auth::AuthUser;
use crate::avatar;
use crate::error::{AppError, AppResult};
use crate::state::AppState;

pub async fn info(State(state): State<AppState>) -> axum::Json<ServerInfo> {
    let settings = state.server_settings();
    axum::Json(ServerInfo {
        name: settings.name,
        description: settings.description,
        icon: settings.icon,
        protocol_version: PROTOCOL_VERSION,
        needs_setup: state.setup_token.lock().unwrap_or_else(|p| p.into_inner()).is_some(),
    })
}

/// 200 when the database answers, 503 otherwise.
pub async fn healthz(State(state): State<AppState>) -> impl IntoResponse {
    match sqlx::query("SELECT 1").execute(&state.db.pool).await {
        Ok(_) if !state.shutdown.is_cancelled() => (StatusCode::OK, "ok"),
        Ok(_) => (StatusCode::SERVICE_UNAVAILABLE, "shutting down"),
        Err(e) => {
            tracing::warn!(error = %e, "health check: database unavailable");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable")
        }
    }
}

pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let (_, users) = state.hub.connected_counts();
    let body =
        state.metrics.render(state.connections.load(Ordering::Relaxed), users, state.hub.sessions().len());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body)
}

pub async fn turn(State(state): State<AppState>, user: AuthUser) -> AppResult<Json<TurnCredentials>> {
    Ok(Json(TurnCredentials {
        ice_servers: state.ice_servers(user.id),
        ttl_secs: state.config.turn_ttl.as_secs(),
    }))
}

pub async fn settings(State(state): State<AppState>, _user: AuthUser) -> Json<ServerSettings> {
    Json(state.server_settings())
}

/// Stores new settings with their audit entry, then tells everyone. The caller holds the
/// admin lock and computed `next` from the settings current under it.
async fn commit_settings(
    state: &AppState,
    current: &ServerSettings,
    next: ServerSettings,
    entry: Option<hearth_protocol::model::AuditEntry>,
) -> AppResult<ServerSettings> {
    let mut tx = state.db.pool.begin().await?;
    crate::db::settings::store(&mut tx, current, &next).await?;
    if let Some(entry) = &entry {
        crate::db::audit::insert(&mut tx, entry).await?;
    }
    tx.commit().await?;
    if next.retention_days != current.retention_days {
        state.retention_wake.notify_one();
    }
    state.hub.set_settings(next.clone());
    Ok(next)
}

pub async fn update_settings(
    State(state): State<AppState>,
    user: AuthUser,
    Json(req): Json<UpdateServerSettingsRequest>,
) -> AppResult<Json<ServerSettings>> {
    user.require(&state, Permission::ManageServer)?;
    let _admin = state.admin_lock.lock().await;
    let current = state.server_settings();
    let (next, changes) = crate::settings::apply(&current, req)?;
    if changes.is_empty() {
        return Ok(Json(current));
    }
    let entry = hearth_protocol::model::AuditEntry {
        changes,
        ..crate::audit::entry(&state, user.id, AuditAction::ServerUpdate)
    };
    Ok(Json(commit_settings(&state, &current, next, Some(entry)).await?))
}

/// `PUT /server/icon`: the body is the image file (PNG, JPEG, GIF or WebP), made into a
/// square PNG the way avatars are.
pub async fn put_icon(
    State(state): State<AppState>,
    user: AuthUser,
    body: Body,
) -> AppResult<Json<ServerSettings>> {
    user.require(&state, Permission::ManageServer)?;
    let (hash, png) = avatar::receive(&state, body).await?;
    avatar::store(&avatar::icon_path(&state.config.files_dir, &hash), &png).await?;
    set_icon(&state, &user, Some(hash)).await.map(Json)
}

pub async fn delete_icon(State(state): State<AppState>, user: AuthUser) -> AppResult<Json<ServerSettings>> {
    user.require(&state, Permission::ManageServer)?;
    set_icon(&state, &user, None).await.map(Json)
}

async fn set_icon(state: &AppState, user: &AuthUser, icon: Option<String>) -> AppResult<ServerSettings> {
    let _admin = state.admin_lock.lock().await;
    let current = state.server_settings();
    if current.icon == icon {
        return Ok(current);
    }
    let next = ServerSettings { icon: icon.clone(), ..current.clone() };
    let entry = hearth_protocol::model::AuditEntry {
        changes: vec![crate::audit::change("icon", current.icon.as_deref(), icon.as_deref())],
        ..crate::audit::entry(state, user.id, AuditAction::ServerUpdate)
    };
    commit_settings(state, &current, next, Some(entry)).await
}

/// `GET /server/icon/{hash}.png`: public, like the group's name, so the sign-in screen and
/// the invite page can show it.
pub async fn icon(State(state): State<AppState>, Path(file): Path<String>) -> AppResult<impl IntoResponse> {
    let hash = file.strip_suffix(".png").unwrap_or(&file);
    let path = avatar::icon_path(&state.config.files_dir, hash).ok_or_else(|| AppError::not_found("icon"))?;
    let bytes = tokio::fs::read(&path).await.map_err(|_| AppError::not_found("icon"))?;
    Ok((
        [
            (header::CONTENT_TYPE, "image/png"),
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        bytes,
    ))
}

/// `POST /server/transfer-ownership`: an owner makes another member an owner and becomes an
/// admin.
pub async fn transfer_ownership(
    State(state): State<AppState>,
    user: AuthUser,
    Json(req): Json<TransferOwnershipRequest>,
) -> AppResult<Json<User>> {
    let _admin = state.admin_lock.lock().await;
    let me = state.hub.user(user.id).ok_or_else(AppError::unauthorized)?;
    if me.role != Role::Owner {
        return Err(AppError::new(ErrorCode::Forbidden, "only an owner can hand over ownership"));
    }
    if req.user_id == user.id {
        return Err(AppError::invalid("you are already an owner"));
    }
    let mut heir = state.hub.user(req.user_id).ok_or_else(|| AppError::not_found("member"))?;
    let mut entry = crate::audit::on_user(&state, user.id, AuditAction::OwnershipTransfer, heir.id);
    entry.changes = vec![crate::audit::change("role", Some(heir.role.as_str()), Some(Role::Owner.as_str()))];
    let mut tx = state.db.pool.begin().await?;
    crate::db::users::set_role(&mut tx, heir.id, Role::Owner).await?;
    crate::db::users::set_role(&mut tx, me.id, Role::Admin).await?;
    crate::db::audit::insert(&mut tx, &entry).await?;
    tx.commit().await?;
    heir.role = Role::Owner;
    state.hub.upsert_user(heir.clone());
    state.hub.upsert_user(User { role: Role::Admin, ..me });
    tracing::info!(from = %user.id, to = %heir.id, "ownership handed over");
    Ok(Json(heir))
}
