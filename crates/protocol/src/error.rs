//! The error vocabulary shared by the HTTP API and the gateway: a stable machine code and a
//! human message. The message never carries internal detail (SQL, paths, stack traces).

use serde::{Deserialize, Serialize};
use ts_rs::TS;

/// Stable error codes. Clients match on these, never on message text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// The request or frame is not well-formed JSON of the expected shape.
    MalformedRequest,
    /// A field has a value outside what is allowed (empty name, too long, bad kind).
    InvalidField,
    /// No valid access token, or it expired, was tampered with or was revoked.
    Unauthorized,
    /// Authenticated, but this user may not do this (not a member of the channel, or a rank
    /// too low for the target).
    Forbidden,
    /// The member's role lacks the permission this needs (see `model::Permission`).
    MissingPermission,
    /// This account is banned from the group: login and registration are refused.
    Banned,
    /// The recipient has blocked this member: no DM can be opened or sent to them.
    Blocked,
    /// No such thing, or the user may not know it exists.
    NotFound,
    /// The name or thing already exists.
    Conflict,
    /// Too many requests; wait and try again.
    RateLimited,
    /// Body or frame larger than allowed.
    PayloadTooLarge,
    /// Upload is not an image we can read.
    UnsupportedMedia,
    /// Username or password is wrong.
    InvalidCredentials,
    /// The invite does not exist, has expired or is used up.
    InvalidInvite,
    /// The refresh token is unknown, expired or was already used.
    InvalidRefreshToken,
    /// The gateway expected `Identify` or `Resume` first.
    NotIdentified,
    /// The client speaks a protocol version this server does not.
    UnsupportedProtocol,
    /// The gateway frame names an op this server does not know.
    UnknownOp,
    /// The server is shutting down or temporarily unable to serve.
    Unavailable,
    /// The server's disk is nearly full: uploads are refused so that chat keeps working.
    InsufficientStorage,
    /// Something failed on the server; details are in its log, not here.
    Internal,
}

impl ErrorCode {
    /// The HTTP status that goes with the code.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::MalformedRequest | ErrorCode::InvalidField | ErrorCode::InvalidInvite => 400,
            ErrorCode::Unauthorized
            | ErrorCode::InvalidCredentials
            | ErrorCode::InvalidRefreshToken
            | ErrorCode::NotIdentified => 401,
            ErrorCode::Forbidden | ErrorCode::MissingPermission | ErrorCode::Banned | ErrorCode::Blocked => {
                403
            }
            ErrorCode::NotFound | ErrorCode::UnknownOp => 404,
            ErrorCode::Conflict => 409,
            ErrorCode::PayloadTooLarge => 413,
            ErrorCode::UnsupportedMedia => 415,
            ErrorCode::UnsupportedProtocol => 426,
            ErrorCode::RateLimited => 429,
            ErrorCode::Unavailable => 503,
            ErrorCode::InsufficientStorage => 507,
            ErrorCode::Internal => 500,
        }
    }
}

/// The body of every HTTP error response, and the payload of a gateway `Error` frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    /// For `RateLimited`: how long to wait before trying again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError { code, message: message.into(), retry_after_ms: None }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}: {}", self.code, self.message)
    }
}

impl std::error::Error for ApiError {}
