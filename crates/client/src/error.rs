//! The engine's error type: every error that reaches the UI has a stable [`Error::code`] and a
//! human message, and never carries a token, a password or a message body.

use hearth_protocol::{ApiError, ErrorCode};

/// What went wrong, as the UI sees it. Match on [`Error::code`], not on the text.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server refused the request; `code` is the server's stable code.
    #[error("{0}")]
    Api(ApiError),
    /// The server could not be reached, or the connection broke.
    #[error("cannot reach the server: {0}")]
    Network(String),
    /// The server answered with something that is not the protocol.
    #[error("the server sent an unexpected answer: {0}")]
    Protocol(String),
    /// A pasted link or address could not be understood.
    #[error(transparent)]
    Link(#[from] crate::invite::LinkError),
    /// The login is gone (refresh token refused, logged out elsewhere): log in again.
    #[error("logged out: log in again")]
    LoggedOut,
    /// The operation needs a live gateway connection and there is none right now.
    #[error("not connected to the server")]
    Offline,
    /// The session was shut down.
    #[error("the session has ended")]
    Closed,
    /// No saved account has this id.
    #[error("no such account: {0}")]
    NoSuchAccount(String),
    /// No account is active.
    #[error("no account is active")]
    NoActiveAccount,
    /// The local cache failed.
    #[error("local cache error: {0}")]
    Store(#[from] sqlx::Error),
    /// A local file could not be read or written.
    #[error("file error: {0}")]
    Io(#[from] std::io::Error),
    /// A local file holds something we cannot read.
    #[error("corrupt local file: {0}")]
    Corrupt(String),
    /// The user cancelled (an upload or a download).
    #[error("cancelled")]
    Cancelled,
}

impl Error {
    /// A stable, machine-readable code: the server's code for [`Error::Api`], else one of
    /// `network`, `protocol`, `invalid_link`, `logged_out`, `offline`, `closed`,
    /// `no_such_account`, `no_active_account`, `store`, `io`, `corrupt`, `cancelled`.
    pub fn code(&self) -> String {
        match self {
            Error::Api(e) => error_code_str(e.code),
            Error::Network(_) => "network".into(),
            Error::Protocol(_) => "protocol".into(),
            Error::Link(_) => "invalid_link".into(),
            Error::LoggedOut => "logged_out".into(),
            Error::Offline => "offline".into(),
            Error::Closed => "closed".into(),
            Error::Cancelled => "cancelled".into(),
            Error::NoSuchAccount(_) => "no_such_account".into(),
            Error::NoActiveAccount => "no_active_account".into(),
            Error::Store(_) => "store".into(),
            Error::Io(_) => "io".into(),
            Error::Corrupt(_) => "corrupt".into(),
        }
    }

    /// The server's error code, when the server refused.
    pub fn api_code(&self) -> Option<ErrorCode> {
        match self {
            Error::Api(e) => Some(e.code),
            _ => None,
        }
    }

    /// Whether trying the same thing later may succeed (network trouble, rate limits, a
    /// server that is restarting).
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Network(_) | Error::Offline => true,
            Error::Api(e) => {
                matches!(e.code, ErrorCode::RateLimited | ErrorCode::Unavailable | ErrorCode::Internal)
            }
            _ => false,
        }
    }
}

/// The wire spelling of an [`ErrorCode`] (`invalid_field`, `rate_limited`, ...).
pub fn error_code_str(code: ErrorCode) -> String {
    serde_json::to_value(code)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| "unknown".to_string())
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
