//! The error every command rejects with: `{ code, message }`, a stable code from the contract
//! (`ui/src/lib/backend/README.md`) and a message that is safe to show. Engine errors carry
//! internal detail (paths, SQL, socket errors) in their text; none of it crosses to the UI.

use hearth_protocol::ErrorCode;
use serde::Serialize;

/// A command failure as the UI receives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error, ts_rs::TS)]
#[error("{code}: {message}")]
pub struct CommandError {
    pub code: String,
    pub message: String,
}

pub type CommandResult<T> = Result<T, CommandError>;

impl CommandError {
    pub fn new(code: &str, message: impl Into<String>) -> CommandError {
        CommandError { code: code.to_string(), message: message.into() }
    }

    /// A bad argument; the message names the field and the rule (the UI shows it as is).
    pub fn invalid_field(message: impl Into<String>) -> CommandError {
        CommandError::new("invalid_field", message)
    }

    /// Something failed on this machine; the detail goes to the log, not to the UI.
    pub fn internal(context: &str, err: impl std::fmt::Display) -> CommandError {
        tracing::error!("{context}: {err}");
        CommandError::new("internal", "Something went wrong on this computer.")
    }

    pub fn cancelled() -> CommandError {
        CommandError::new("cancelled", "Cancelled.")
    }

    pub fn invalid_url() -> CommandError {
        CommandError::new("invalid_url", "Only http and https links can be opened.")
    }
}

impl From<hearth_client::Error> for CommandError {
    fn from(err: hearth_client::Error) -> CommandError {
        use hearth_client::Error as E;
        let message = match &err {
            // The server writes its messages for users; for `invalid_field` the UI shows it.
            E::Api(api)
                if matches!(
                    api.code,
                    ErrorCode::InvalidField | ErrorCode::PayloadTooLarge | ErrorCode::InsufficientStorage
                ) =>
            {
                api.message.clone()
            }
            E::Cancelled => "Cancelled.".to_string(),
            E::Api(_) => "The server refused the request.".to_string(),
            E::Network(_) | E::Offline => "Cannot reach the server.".to_string(),
            E::Protocol(_) => "The server sent an unexpected answer.".to_string(),
            E::Link(_) => "This is not a Hearth server address or invite link.".to_string(),
            E::LoggedOut => "You have been logged out; log in again.".to_string(),
            E::Closed => "The session has ended.".to_string(),
            E::NoSuchAccount(_) => "This account is not saved on this computer.".to_string(),
            E::NoActiveAccount => "No account is logged in.".to_string(),
            _ => "Something went wrong on this computer.".to_string(),
        };
        let code = match &err {
            // The contract names unparseable addresses `invalid_url`.
            E::Link(_) => "invalid_url".to_string(),
            _ => err.code(),
        };
        if !matches!(err, E::Api(_)) {
            // Internal detail stays in the log.
            tracing::warn!(code = %code, "command failed: {err}");
        }
        CommandError { code, message }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hearth_protocol::ApiError;

    fn api(code: ErrorCode, message: &str) -> hearth_client::Error {
        hearth_client::Error::Api(ApiError { code, message: message.into(), retry_after_ms: None })
    }

    #[test]
    fn server_codes_pass_through_with_a_generic_message() {
        let e = CommandError::from(api(ErrorCode::InvalidCredentials, "wrong password for alice"));
        assert_eq!(e.code, "invalid_credentials");
        assert!(!e.message.contains("alice"));
    }

    #[test]
    fn invalid_field_keeps_the_servers_message() {
        let e = CommandError::from(api(ErrorCode::InvalidField, "username: 3 to 32 characters"));
        assert_eq!(e, CommandError::new("invalid_field", "username: 3 to 32 characters"));
    }

    #[test]
    fn network_errors_hide_the_socket_detail() {
        let e = CommandError::from(hearth_client::Error::Network("tcp connect 10.0.0.1:443: refused".into()));
        assert_eq!(e.code, "network");
        assert!(!e.message.contains("10.0.0.1"));
    }

    #[test]
    fn io_errors_hide_paths() {
        let io = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "/home/alice/.local/x");
        let e = CommandError::from(hearth_client::Error::Io(io));
        assert_eq!(e.code, "io");
        assert!(!e.message.contains("alice"));
    }

    #[test]
    fn bad_links_are_invalid_url() {
        let err = hearth_client::invite::parse("   ").unwrap_err();
        assert_eq!(CommandError::from(hearth_client::Error::from(err)).code, "invalid_url");
    }

    #[test]
    fn serializes_as_code_and_message() {
        let json = serde_json::to_value(CommandError::new("network", "x")).unwrap();
        assert_eq!(json, serde_json::json!({"code": "network", "message": "x"}));
    }
}
