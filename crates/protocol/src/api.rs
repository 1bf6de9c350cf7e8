//! JSON bodies of the HTTP API under `/api/v1`. Each request type's doc names its route and
//! its response type.

use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::ids::{AttachmentId, AuditEntryId, ChannelId, MessageId, UploadId, UserId};
use crate::model::{ChannelKind, IceServer, Message, Permission, Role, User};

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

/// `POST /api/v1/invites` ([`Permission::ManageInvites`]) → [`Invite`].
#[derive(Debug, Clone, Default, Serialize, Deserialize, TS)]
pub struct CreateInviteRequest {
    /// `None` for unlimited uses.
    #[serde(default)]
    pub max_uses: Option<u32>,
    /// `None` for an invite that never expires.
    #[serde(default)]
    pub expires_in_secs: Option<u64>,
}

/// `GET /api/v1/invites` ([`Permission::ManageInvites`]) → `Vec<Invite>` (the usable ones);
/// `DELETE /api/v1/invites/{code}` → 204. Anyone may open `GET /invite/{code}` (an HTML page
/// saying how to install Hearth, with a `hearth://join?server=…&code=…` button).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct Invite {
    pub code: String,
    pub max_uses: Option<u32>,
    pub uses: u32,
    /// Milliseconds since the Unix epoch.
    pub expires_at: Option<i64>,
    pub created_by: UserId,
    /// Milliseconds since the Unix epoch.
    #[serde(default)]
    pub created_at: i64,
}

/// `POST /api/v1/channels` ([`Permission::ManageChannels`]) → [`crate::model::Channel`]. Only
/// `text` and `voice`. A private channel's `members` always include its creator.
#[derive(Debug, Clone, Serialize, Deserialize, TS)]
pub struct CreateChannelRequest {
    pub name: String,
    pub kind: ChannelKind,
    #[serde(default)]
    pub topic: Option<String>,
    #[serde(default)]
    pub private: bool,
    /// For a private channel: who may see it (the creator is added).
    #[serde(default)]
    pub members: Vec<UserId>,
}

/// `PATCH /api/v1/channels/{id}` ([`Permission::ManageChannels`]) → [`crate::model::Channel`].
/// Making a channel private leaves the one who made the change as its only member until
/// `PUT …/members` adds others; making it open clears the list.
#[derive(Debug, Clone, Default, Serialize, Deserialize, TS)]
pub struct UpdateChannelRequest {
    #[serde(default)]
    pub name: Option<String>,
    /// An empty string clears the topic.
    #[serde(default)]
    pub topic: Option<String>,
    #[serde(default)]
    pub position: Option<i32>,
    #[serde(default)]
    pub private: Option<bool>,
}

/// `PUT /api/v1/channels/{id}/members` ([`Permission::ManageChannels`], private channels) →
/// [`crate::model::Channel`]. The whole new member list; who was added sees the channel
/// appear, who was removed sees it go (and leaves its call). The one who makes the change
/// always stays a member (the answer's list includes them), so that a private channel never
/// loses everyone who could manage it; unknown or removed members are `not_found`.
#[derive(Debug, Clone, Serialize, Deserialize, TS)]
pub struct SetChannelMembersRequest {
    pub members: Vec<UserId>,
}

/// `PUT /api/v1/channels/order` ([`Permission::ManageChannels`]) → `Vec<Channel>` (the group's
/// channels in their new order). `channel_ids` lists every text and voice channel the member
/// can see, top to bottom; positions are renumbered from 0.
#[derive(Debug, Clone, Serialize, Deserialize, TS)]
pub struct ReorderChannelsRequest {
    pub channel_ids: Vec<ChannelId>,
}

/// `PATCH /api/v1/users/{id}` ([`Permission::ManageMembers`]) → [`User`]. See [`Role`] for who
/// may grant what.
#[derive(Debug, Clone, Default, Serialize, Deserialize, TS)]
pub struct UpdateMemberRequest {
    #[serde(default)]
    pub role: Option<Role>,
}

/// `POST /api/v1/users/{id}/kick` ([`Permission::ManageMembers`]) → 204: removed from the group,
/// sessions closed; they may come back with a new invite (registering again with their username
/// and password restores their account). `PUT /api/v1/bans/{id}` → 204: the same, and login and
/// registration are refused until `DELETE /api/v1/bans/{id}`. `GET /api/v1/bans` →
/// `Vec<crate::model::Ban>`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, TS)]
pub struct ModerationRequest {
    #[serde(default)]
    pub reason: Option<String>,
}

/// `POST /api/v1/server/transfer-ownership` (owners) → [`User`] (the new owner): `user_id`
/// becomes an owner and the caller an admin.
#[derive(Debug, Clone, Serialize, Deserialize, TS)]
pub struct TransferOwnershipRequest {
    pub user_id: UserId,
}

/// `PATCH /api/v1/server/settings` ([`Permission::ManageServer`]) →
/// [`crate::model::ServerSettings`]; also `GET` (every member). Absent fields stay as they are.
/// The icon is set with `PUT /api/v1/server/icon` (the image file as the body, decoded with
/// the same bounds as avatars) and removed with `DELETE /api/v1/server/icon`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, TS)]
pub struct UpdateServerSettingsRequest {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    /// Days to keep messages; `0` keeps everything.
    #[serde(default)]
    pub retention_days: Option<u32>,
    #[serde(default)]
    pub member_permissions: Option<Vec<Permission>>,
    #[serde(default)]
    #[ts(type = "number | null")]
    pub max_upload_bytes: Option<u64>,
    /// `0` for no quota.
    #[serde(default)]
    #[ts(type = "number | null")]
    pub upload_quota_bytes: Option<u64>,
}

/// Query of `GET /api/v1/audit-log` ([`Permission::ManageServer`]) →
/// `Vec<crate::model::AuditEntry>`, newest first.
#[derive(Debug, Clone, Default, Serialize, Deserialize, TS)]
pub struct AuditLogQuery {
    #[serde(default)]
    pub before: Option<AuditEntryId>,
    /// 1..=100, default 50.
    #[serde(default)]
    pub limit: Option<u32>,
}

/// Query of `GET /api/v1/search` → [`SearchResults`]: full-text search over every channel and
/// DM the member can read. `q` holds words (all must match; Chinese and other unspaced
/// scripts match by substring) and filters: `from:USERNAME`, `in:CHANNEL` (a channel name),
/// `has:file`, `before:YYYY-MM-DD`, `after:YYYY-MM-DD`. Results are ranked by relevance, then
/// recency; `offset` pages through them.
#[derive(Debug, Clone, Default, Serialize, Deserialize, TS)]
pub struct SearchQuery {
    pub q: String,
    #[serde(default)]
    pub offset: Option<u32>,
    /// 1..=50, default 25.
    #[serde(default)]
    pub limit: Option<u32>,
}

/// A span of text, as `[start, end)` offsets in UTF-16 code units (how JavaScript indexes
/// strings).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct TextRange {
    pub start: u32,
    pub end: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct SearchHit {
    pub message: Message,
    /// Where the query's words occur in `message.content`, in order, not overlapping.
    pub highlights: Vec<TextRange>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct SearchResults {
    pub hits: Vec<SearchHit>,
    /// Matching messages in all (counted up to 1000).
    pub total: u32,
    /// The `offset` of the next page, when there is one.
    pub next_offset: Option<u32>,
}

/// `POST /api/v1/dms` → [`crate::model::Channel`]. One recipient makes (or finds) a DM; more
/// make a group DM.
#[derive(Debug, Clone, Serialize, Deserialize, TS)]
pub struct CreateDmRequest {
    pub recipients: Vec<UserId>,
}

/// Query of `GET /api/v1/channels/{id}/messages` → `Vec<Message>`, newest first when `before`
/// or neither is given, oldest first when `after` or `around` is given. `around` returns the
/// message itself (if it still exists) with up to `limit / 2` messages on each side: what a
/// jump to a search result, a reply or a message link loads. At most one of the three.
#[derive(Debug, Clone, Default, Serialize, Deserialize, TS)]
pub struct HistoryQuery {
    #[serde(default)]
    pub before: Option<MessageId>,
    #[serde(default)]
    pub after: Option<MessageId>,
    #[serde(default)]
    pub around: Option<MessageId>,
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
    #[serde(default)]
    pub attachments: Vec<AttachmentId>,
}

/// `POST /api/v1/uploads` → [`UploadStatus`] (201): starts a resumable upload of `size`
/// bytes. Refused with 413 `payload_too_large` when `size` is over the group's
/// `max_upload_bytes` or the member's quota, and 507 `insufficient_storage` when the server's
/// disk is nearly full, before anything is written.
///
/// Then `PATCH /api/v1/uploads/{id}` with header `Upload-Offset: N` (the bytes the server
/// has) and the next bytes as the body (`application/offset+octet-stream`), answered 204 with
/// the new `Upload-Offset`; a wrong offset is 409 `conflict` with the right one in
/// `Upload-Offset`. `HEAD` (or `GET`, as JSON) tells the offset after a dropped connection;
/// `POST /api/v1/uploads/{id}/finish` → [`crate::model::Attachment`] (201) once every byte is
/// there; `DELETE` cancels. Unfinished uploads are swept after a day.
#[derive(Debug, Clone, Serialize, Deserialize, TS)]
pub struct CreateUploadRequest {
    pub name: String,
    #[ts(type = "number")]
    pub size: u64,
}

/// Where an upload stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct UploadStatus {
    pub id: UploadId,
    pub name: String,
    #[ts(type = "number")]
    pub size: u64,
    /// Bytes the server has: the next `PATCH` starts here.
    #[ts(type = "number")]
    pub offset: u64,
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
    #[serde(default)]
    pub description: String,
    /// Content hash of the icon (`/api/v1/server/icon/{hash}.png`).
    #[serde(default)]
    pub icon: Option<String>,
    pub protocol_version: u32,
    /// True until the first account is made with the setup token.
    pub needs_setup: bool,
}
