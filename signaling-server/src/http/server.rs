//! Public routes: server info, health, metrics; and TURN credentials.

use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use hearth_protocol::PROTOCOL_VERSION;
use hearth_protocol::api::{ServerInfo, TurnCredentials};

use super::extract::Json;
use crate::auth::AuthUser;
use crate::error::AppResult;
use crate::state::AppState;

pub async fn info(State(state): State<AppState>) -> axum::Json<ServerInfo> {
    axum::Json(ServerInfo {
        name: state.config.server_name.clone(),
        description: String::new(),
        icon: None,
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
