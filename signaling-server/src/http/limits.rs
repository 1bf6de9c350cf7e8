//! Per-route limits on the request head and body, with typed answers: a head over its
//! route's limit is 431 `payload_too_large`, a body over it (announced by `Content-Length`, or
//! found while reading) is 413 `payload_too_large`. One middleware for the whole router picks
//! the limits by the matched route in [`for_route`]: a new route gets [`DEFAULT`] with no
//! change here. (hyper's own bounds in [`super::listen`] come first and are wider.)

use axum::body::Body;
use axum::extract::{MatchedPath, Request};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hearth_protocol::{ApiError, ErrorCode};

/// What one route accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Request line and headers, in bytes (names, values and their separators).
    pub head: usize,
    /// The body, in bytes; `None` when the handler bounds a streamed body itself.
    pub body: Option<usize>,
}

/// Every route not named in [`for_route`].
pub const DEFAULT: Limits = Limits { head: 8 * 1024, body: Some(16 * 1024) };
/// Register, login, refresh, logout: small bodies (a password is at most 1 KiB), no reason
/// for a big head on routes anyone may call.
pub const AUTH: Limits = Limits { head: 4 * 1024, body: Some(4 * 1024) };
/// Sending a message: 4000 characters, JSON-escaped at worst 6 bytes each.
pub const MESSAGE: Limits = Limits { head: 8 * 1024, body: Some(32 * 1024) };
/// Uploads whose handler reads the body with its own bound (the avatar and the server icon:
/// `max_avatar_bytes`; an attachment's appends: the room left in its upload).
pub const UPLOAD: Limits = Limits { head: 8 * 1024, body: None };

/// The limits of a route, by method and matched path.
pub fn for_route(method: &Method, path: &str) -> Limits {
    match (method, path.strip_prefix("/api/v1").unwrap_or(path)) {
        (_, p) if p.starts_with("/auth/") => AUTH,
        (&Method::POST, "/channels/{id}/messages") => MESSAGE,
        (&Method::PUT, "/users/@me/avatar" | "/server/icon") => UPLOAD,
        (&Method::PATCH, "/uploads/{id}") => UPLOAD,
        _ => DEFAULT,
    }
}

/// Size of the request head as it came: request line and header fields.
fn head_bytes(req: &Request) -> usize {
    let line = req.method().as_str().len() + req.uri().to_string().len() + 12;
    req.headers().iter().fold(line, |n, (name, value)| n + name.as_str().len() + value.len() + 4)
}

/// The middleware: checks the head and the announced body length, bounds the body as it is
/// read, and leaves the limits in the request for the extractors' messages.
pub async fn enforce(mut req: Request, next: Next) -> Response {
    let path = req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_string());
    let limits = path.map_or(DEFAULT, |p| for_route(req.method(), &p));
    if head_bytes(&req) > limits.head {
        let error = ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("request headers are limited to {} bytes on this route", limits.head),
        );
        return (StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, axum::Json(error)).into_response();
    }
    if let Some(max) = limits.body {
        let announced = req
            .headers()
            .get(axum::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if announced.is_some_and(|n| n > max as u64) {
            return body_too_large(max).into_response();
        }
        req = req.map(|body| Body::new(http_body_util::Limited::new(body, max)));
    }
    req.extensions_mut().insert(limits);
    next.run(req).await
}

pub fn body_too_large(max: usize) -> crate::error::AppError {
    crate::error::AppError::new(
        ErrorCode::PayloadTooLarge,
        format!("request bodies are limited to {max} bytes on this route"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_get_their_own_limits_and_the_rest_the_default() {
        assert_eq!(for_route(&Method::POST, "/api/v1/auth/login"), AUTH);
        assert_eq!(for_route(&Method::POST, "/api/v1/auth/logout"), AUTH);
        assert_eq!(for_route(&Method::POST, "/api/v1/channels/{id}/messages"), MESSAGE);
        assert_eq!(for_route(&Method::GET, "/api/v1/channels/{id}/messages"), DEFAULT);
        assert_eq!(for_route(&Method::PUT, "/api/v1/users/@me/avatar"), UPLOAD);
        assert_eq!(for_route(&Method::PATCH, "/api/v1/uploads/{id}"), UPLOAD);
        assert_eq!(for_route(&Method::PATCH, "/api/v1/some/new/route"), DEFAULT);
    }
}
