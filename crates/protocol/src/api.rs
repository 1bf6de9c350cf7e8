//! JSON bodies of the HTTP API under `/api/v1`. Each request type's doc names its route and
//! its response type.

use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::ids::{MessageId, UserId};
use crate::model::{ChannelKind, IceServer, User};

/// `POST /api/v1/auth/register` → [`Session`]. `invite` is an invite code, or the one-time
/// setup token printed by a new server (which makes the first account an admin).
#[derive(Debug, Clone, Serialize, Deserialize, TS)]
pub struct RegisterRequest {
    pub invite: String,
    pub username: String,
    pub password: String,
    #[serde(default)]
    pub display_name: Option<String>,
}

/// `POST /api/v1/auth/login` → [`Session`].
#[derive(Debug, Clone, Serialize, Deserialize, TS)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
}

/// `POST /api/v1/auth/refresh` → [`Session`]. The refresh token is single-use: the answer
/// carries its successor, and using one twice revokes the whole login.
#[derive(Debug, Clone, Serialize, Deserialize, TS)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

/// `POST /api/v1/auth/logout` (authenticated) → 204. Revokes this login's refresh tokens and
/// closes its gateway connections; `everywhere` does so for every login of the user.
#[derive(Debug, Clone, Default, Serialize, Deserialize, TS)]
pub struct LogoutRequest {
    #[serde(default)]
    pub everywhere: bool,
}

/// What register, login and refresh return.
#[derive(Debug, Clone, Serialize, Deserialize, TS)]
pub struct Session {
    pub access_token: String,
    /// Seconds until `access_token` expires.
    pub expires_in: u64,
    pub refresh_token: String,
    pub user: User,
}

/// `PATCH /api/v1/users/@me` → [`User`].
#[derive(Debug, Clone, Default, Serialize, Deserialize, TS)]
pub struct UpdateProfileRequest {
    #[serde(default)]
    pub display_name: Option<String>,
}

/// `POST /api/v1/users/@me/password` → 204. Revokes every other login.
#[derive(Debug, Clone, Serialize, Deserialize, TS)]
pub struct ChangePasswordRequest {
    pub current_password: String,
    pub new_password: String,
}

/// `POST /api/v1/invites` (admin) → [`Invite`].
#[derive(Debug, Clone, Default, Serialize, Deserialize, TS)]
pub struct CreateInviteRequest {
    /// `None` for unlimited uses.
    #[serde(default)]
    pub max_uses: Option<u32>,
    /// `None` for an invite that never expires.
    #[serde(default)]
    pub expires_in_secs: Option<u64>,
}

/// `GET /api/v1/invites` (admin) → `Vec<Invite>`; `DELETE /api/v1/invites/{code}` → 204.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct Invite {
    pub code: String,
    pub max_uses: Option<u32>,
    pub uses: u32,
    /// Milliseconds since the Unix epoch.
    pub expires_at: Option<i64>,
    pub created_by: UserId,
}

/// `POST /api/v1/channels` (admin) → [`crate::model::Channel`]. Only `text` and `voice`.
#[derive(Debug, Clone, Serialize, Deserialize, TS)]
pub struct CreateChannelRequest {
    pub name: String,
    pub kind: ChannelKind,
}

/// `PATCH /api/v1/channels/{id}` (admin) → [`crate::model::Channel`].
#[derive(Debug, Clone, Default, Serialize, Deserialize, TS)]
pub struct UpdateChannelRequest {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub position: Option<i32>,
}

/// `POST /api/v1/dms` → [`crate::model::Channel`]. One recipient makes (or finds) a DM; more
/// make a group DM.
#[derive(Debug, Clone, Serialize, Deserialize, TS)]
pub struct CreateDmRequest {
    pub recipients: Vec<UserId>,
}

/// Query of `GET /api/v1/channels/{id}/messages` → `Vec<Message>`, newest first when `before`
/// or neither is given, oldest first when `after` is given.
#[derive(Debug, Clone, Default, Serialize, Deserialize, TS)]
pub struct HistoryQuery {
    #[serde(default)]
    pub before: Option<MessageId>,
    #[serde(default)]
    pub after: Option<MessageId>,
    /// 1..=100, default 50.
    #[serde(default)]
    pub limit: Option<u32>,
}

/// `POST /api/v1/channels/{id}/messages` → [`crate::model::Message`] (201 when new, 200 when
/// the nonce was already used: the message made then). The same as the gateway's
/// `SendMessage`, for clients without a gateway connection.
#[derive(Debug, Clone, Serialize, Deserialize, TS)]
pub struct SendMessageRequest {
    pub nonce: String,
    pub content: String,
    #[serde(default)]
    pub reply_to: Option<MessageId>,
}

/// `GET /api/v1/turn` → this.
#[derive(Debug, Clone, Serialize, Deserialize, TS)]
pub struct TurnCredentials {
    pub ice_servers: Vec<IceServer>,
    /// Seconds the credentials stay valid.
    pub ttl_secs: u64,
}

/// `GET /api/v1/server` (no auth) → this: what a client shows before login.
#[derive(Debug, Clone, Serialize, Deserialize, TS)]
pub struct ServerInfo {
    pub name: String,
    pub protocol_version: u32,
    /// True until the first account is made with the setup token.
    pub needs_setup: bool,
}
