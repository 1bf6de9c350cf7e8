//! One error type for every handler, HTTP or gateway. It turns into a stable code and a human
//! message for the client; internal causes are logged here and never sent.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use hearth_protocol::{ApiError, ErrorCode};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// An error the client caused and may be told about.
    #[error("{0}")]
    Client(ApiError),
    /// Something failed inside; the cause is logged, the client hears only "internal error".
    #[error("internal: {0:#}")]
    Internal(#[from] anyhow::Error),
}

pub type AppResult<T> = Result<T, AppError>;

impl AppError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        AppError::Client(ApiError::new(code, message))
    }
    pub fn unauthorized() -> Self {
        Self::new(ErrorCode::Unauthorized, "missing, expired or invalid access token")
    }
    pub fn forbidden() -> Self {
        Self::new(ErrorCode::Forbidden, "you are not allowed to do that")
    }
    pub fn missing_permission(permission: hearth_protocol::model::Permission) -> Self {
        Self::new(
            ErrorCode::MissingPermission,
            format!("this needs the {} permission", crate::settings::permission_name(permission)),
        )
    }
    pub fn not_found(what: &str) -> Self {
        Self::new(ErrorCode::NotFound, format!("no such {what}"))
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidField, message)
    }
    pub fn rate_limited(retry_after_ms: u64) -> Self {
        AppError::Client(rate_limited(retry_after_ms))
    }

    /// What the client is told. Logs internal causes once, here.
    pub fn to_api(&self) -> ApiError {
        match self {
            AppError::Client(e) => e.clone(),
            AppError::Internal(cause) => {
                tracing::error!(error = format!("{cause:#}"), "internal error");
                ApiError::new(ErrorCode::Internal, "internal error")
            }
        }
    }
}

impl From<sqlx::Error> for AppError {
    fn from(e: sqlx::Error) -> Self {
        AppError::Internal(anyhow::Error::new(e).context("database"))
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let body = self.to_api();
        let status =
            StatusCode::from_u16(body.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, Json(&body)).into_response();
        if let Some(ms) = body.retry_after_ms {
            let secs = ms.div_ceil(1000).max(1);
            if let Ok(v) = secs.to_string().parse() {
                response.headers_mut().insert(axum::http::header::RETRY_AFTER, v);
            }
        }
        response
    }
}

/// The error a rate limit answers with.
pub fn rate_limited(retry_after_ms: u64) -> ApiError {
    ApiError {
        code: ErrorCode::RateLimited,
        message: "too many requests, slow down".into(),
        retry_after_ms: Some(retry_after_ms.max(1)),
    }
}
