//! Hearth's wire protocol: the types that cross between the client engine and the server.
//!
//! - [`ids`]: typed, time-sortable ids (`UserId`, `ChannelId`, `MessageId`), sent as strings
//!   because JavaScript cannot hold a 64-bit integer.
//! - [`model`]: the things both sides talk about (users, channels, messages, presence, voice).
//! - [`gateway`]: the WebSocket frames, `ClientMsg` up and `ServerMsg` down, tagged by `op`.
//! - [`api`]: the JSON bodies of the HTTP API under `/api/v1`.
//! - [`error`]: the stable [`ErrorCode`] that every error carries across the wire.
//!
//! This crate has no I/O; both the server and the client engine depend on it, so a change here
//! is a protocol change and bumps [`PROTOCOL_VERSION`] when it is not backwards compatible.

pub mod api;
pub mod error;
pub mod gateway;
pub mod ids;
pub mod model;
pub mod typescript;

pub use error::{ApiError, ErrorCode};
pub use ids::{AttachmentId, AuditEntryId, ChannelId, MessageId, UploadId, UserId};

/// Version spoken by this build; a client sends it in `Identify`/`Resume` and the server
/// refuses versions it does not speak with [`ErrorCode::UnsupportedProtocol`].
pub const PROTOCOL_VERSION: u32 = 2;

/// Largest WebSocket frame either side accepts, in bytes.
pub const MAX_FRAME_BYTES: usize = 64 * 1024;

/// Largest message body, in characters (Discord's limit).
pub const MAX_MESSAGE_CHARS: usize = 4000;

/// Most members a group DM may have, the creator included.
pub const MAX_GROUP_DM_MEMBERS: usize = 10;

/// Longest channel topic, in characters.
pub const MAX_TOPIC_CHARS: usize = 1024;

/// Longest reason given for a kick or a ban, in characters.
pub const MAX_REASON_CHARS: usize = 512;

/// Most attachments one message may carry.
pub const MAX_ATTACHMENTS_PER_MESSAGE: usize = 10;

/// Longest attachment file name, in bytes (UTF-8).
pub const MAX_ATTACHMENT_NAME_BYTES: usize = 255;

/// Longest server description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 1024;
