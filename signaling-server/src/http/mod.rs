//! The HTTP API under `/api/v1`, plus `/healthz` and `/metrics`. One file per domain; every
//! handler takes [`AuthUser`](crate::auth::AuthUser) unless the route is public (server info,
//! register, login, refresh, health, metrics). Bodies are JSON, decoded strictly by
//! [`extract`]; errors are [`ApiError`](hearth_protocol::ApiError) with a stable code. Request
//! heads and bodies are bounded per route ([`limits`]) inside hyper's wider bounds
//! ([`listen`]).

mod auth;
mod channels;
pub mod extract;
mod invites;
pub mod limits;
pub mod listen;
mod messages;
mod server;
mod users;

use axum::Router;
use axum::routing::{delete, get, post, put};

use crate::error::AppError;
use crate::state::AppState;

pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/server", get(server::info))
        .route("/turn", get(server::turn))
        .route("/gateway", get(crate::gateway::upgrade))
        .route("/auth/register", post(auth::register))
        .route("/auth/login", post(auth::login))
        .route("/auth/refresh", post(auth::refresh))
        .route("/auth/logout", post(auth::logout))
        .route("/users", get(users::list))
        .route("/users/@me", get(users::me).patch(users::update_me))
        .route("/users/@me/avatar", put(users::put_avatar).delete(users::delete_avatar))
        .route("/users/@me/password", post(users::change_password))
        .route("/users/{id}", delete(users::remove))
        .route("/avatars/{file}", get(users::avatar))
        .route("/invites", get(invites::list).post(invites::create))
        .route("/invites/{code}", delete(invites::revoke))
        .route("/channels", get(channels::list).post(channels::create))
        .route("/channels/{id}", get(channels::get).patch(channels::update).delete(channels::remove))
        .route("/channels/{id}/messages", get(messages::history).post(messages::send))
        .route("/channels/{id}/messages/{message_id}", get(messages::one))
        .route("/dms", post(channels::open_dm))
        .fallback(not_found);
    Router::new()
        .nest("/api/v1", api)
        .route("/healthz", get(server::healthz))
        .route("/metrics", get(server::metrics))
        .fallback(not_found)
        // Applied to each route after routing, so it sees the matched path.
        .layer(axum::middleware::from_fn(limits::enforce))
        .with_state(state)
}

async fn not_found() -> AppError {
    AppError::not_found("route")
}
