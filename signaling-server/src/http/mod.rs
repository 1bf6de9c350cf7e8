//! The HTTP API under `/api/v1`, plus `/healthz`, `/metrics` and the invite page
//! `/invite/{code}`. One file per domain; every
//! handler takes [`AuthUser`](crate::auth::AuthUser) unless the route is public (server info,
//! register, login, refresh, health, metrics). Bodies are JSON, decoded strictly by
//! [`extract`]; errors are [`ApiError`](hearth_protocol::ApiError) with a stable code. Request
//! heads and bodies are bounded per route ([`limits`]) inside hyper's wider bounds
//! ([`listen`]).

mod attachments;
mod audit;
mod auth;
mod channels;
pub mod extract;
mod invite_page;
mod invites;
pub mod limits;
pub mod listen;
mod members;
mod messages;
mod search;
mod server;
mod uploads;
mod users;

use axum::Router;
use axum::routing::{delete, get, patch, post, put};

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
        .route("/users/@me/blocks/{id}", put(users::block).delete(users::unblock))
        .route("/users/{id}", patch(members::update))
        .route("/users/{id}/kick", post(members::kick))
        .route("/bans", get(members::bans))
        .route("/bans/{id}", put(members::ban).delete(members::unban))
        .route("/avatars/{file}", get(users::avatar))
        .route("/invites", get(invites::list).post(invites::create))
        .route("/invites/{code}", delete(invites::revoke))
        .route("/server/settings", get(server::settings).patch(server::update_settings))
        .route("/server/icon", put(server::put_icon).delete(server::delete_icon))
        .route("/server/icon/{file}", get(server::icon))
        .route("/server/transfer-ownership", post(server::transfer_ownership))
        .route("/audit-log", get(audit::list))
        .route("/channels", get(channels::list).post(channels::create))
        .route("/channels/order", put(channels::reorder))
        .route("/channels/{id}", get(channels::get).patch(channels::update).delete(channels::remove))
        .route("/channels/{id}/members", put(channels::set_members))
        .route("/channels/{id}/messages", get(messages::history).post(messages::send))
        .route("/channels/{id}/messages/{message_id}", get(messages::one))
        .route("/dms", post(channels::open_dm))
        .route("/search", get(search::search))
        .route("/uploads", post(uploads::create))
        .route("/uploads/{id}", get(uploads::status).patch(uploads::append).delete(uploads::cancel))
        .route("/uploads/{id}/finish", post(uploads::finish))
        .route("/attachments/{id}", get(attachments::download))
        .route("/attachments/{id}/thumbnail", get(attachments::thumbnail))
        .fallback(not_found);
    Router::new()
        .nest("/api/v1", api)
        .route("/invite/{code}", get(invite_page::show))
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
