//! Authentication: password hashing, access tokens (JWT) and refresh tokens. Handlers reach
//! it through [`AuthUser`], the extractor that turns a bearer token into a member.

pub mod password;
mod tokens;

pub use password::Passwords;
pub use tokens::{Claims, Tokens, hash_refresh_token, random_token};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use hearth_protocol::UserId;
use hearth_protocol::model::{Permission, Role};

use crate::error::AppError;
use crate::state::AppState;

/// A request made by a current member of the group with a valid access token.
#[derive(Debug, Clone)]
pub struct AuthUser {
    pub id: UserId,
    /// The login (refresh-token family) this access token belongs to.
    pub family: String,
    pub role: Role,
}

impl AuthUser {
    /// `MissingPermission` unless this member's role holds `permission` under the group's
    /// current settings.
    pub fn require(&self, state: &AppState, permission: Permission) -> Result<(), AppError> {
        if state.hub.allows(self.role, permission) {
            Ok(())
        } else {
            Err(AppError::missing_permission(permission))
        }
    }
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let token = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(AppError::unauthorized)?;
        state.authenticate(token)
    }
}

/// Compares secrets without stopping at the first difference.
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
