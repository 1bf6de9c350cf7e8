//! Gateway WebSocket frames (JSON text frames, at most [`crate::MAX_FRAME_BYTES`]).
//!
//! The connection goes: server `Hello` → client `Identify` or `Resume` (within the deadline
//! in `Hello`) → server `Ready` or `Resumed` (after replaying what was missed) or
//! `InvalidSession`. Then the client sends `Heartbeat` every `heartbeat_interval_ms` and ops;
//! the server sends `Dispatch` events, each with the next sequence number of the session, and
//! `Error` frames for ops it refused. A client that drops keeps its session on the server for
//! a while and can `Resume` with the last `seq` it saw to receive exactly what it missed.

use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::error::ApiError;
use crate::ids::{AttachmentId, ChannelId, MessageId, UserId};
use crate::model::{
    Channel, IceServer, Message, Presence, ReadState, ServerSettings, Signal, Status, TransferSignal, User,
    VoiceState,
};

/// Frames from client to server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(tag = "op")]
pub enum ClientMsg {
    /// Start a new session with an access token.
    Identify {
        token: String,
        protocol_version: u32,
        #[serde(default)]
        status: Option<Status>,
    },
    /// Take up an existing session after a drop; `last_seq` is the last `Dispatch.seq` seen.
    Resume {
        token: String,
        session_id: String,
        last_seq: u64,
        protocol_version: u32,
    },
    Heartbeat {
        #[serde(default)]
        last_seq: Option<u64>,
    },
    /// Post a message. `nonce` is the client's idempotency key: sending the same nonce again
    /// returns the message made the first time.
    SendMessage {
        channel_id: ChannelId,
        nonce: String,
        content: String,
        #[serde(default)]
        reply_to: Option<MessageId>,
        /// Finished uploads of this author (`POST /api/v1/uploads/{id}/finish`), not yet sent
        /// with another message; at most [`crate::MAX_ATTACHMENTS_PER_MESSAGE`]. With
        /// attachments, `content` may be empty.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        attachments: Vec<AttachmentId>,
    },
    EditMessage {
        channel_id: ChannelId,
        message_id: MessageId,
        content: String,
    },
    DeleteMessage {
        channel_id: ChannelId,
        message_id: MessageId,
    },
    AddReaction {
        channel_id: ChannelId,
        message_id: MessageId,
        emoji: String,
    },
    RemoveReaction {
        channel_id: ChannelId,
        message_id: MessageId,
        emoji: String,
    },
    Typing {
        channel_id: ChannelId,
    },
    /// Mark a channel read up to `message_id`.
    MarkRead {
        channel_id: ChannelId,
        message_id: MessageId,
    },
    SetStatus {
        status: Status,
    },
    VoiceJoin {
        channel_id: ChannelId,
        #[serde(default)]
        muted: bool,
        #[serde(default)]
        deafened: bool,
    },
    VoiceLeave,
    VoiceUpdate {
        muted: bool,
        deafened: bool,
        speaking: bool,
    },
    /// WebRTC signalling for `to`, who must be in the same voice channel.
    VoiceSignal {
        to: UserId,
        signal: Signal,
    },
    /// Direct-transfer signalling for `to`, a member who is online and has not blocked us
    /// (nor been blocked by us). `device` names one of their devices (from an earlier
    /// `TransferSignal` event); without it every online device of theirs gets it (an offer, a
    /// resume after a restart). `to` may be ourselves: our other devices get it (`Taken`).
    /// A refusal comes back as an `Error` frame whose `nonce` is the `transfer_id`.
    TransferSignal {
        to: UserId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        device: Option<String>,
        transfer_id: String,
        signal: TransferSignal,
    },
}

impl ClientMsg {
    /// The op name, for logs and errors (never the payload: it may hold a token or a message).
    pub fn op(&self) -> &'static str {
        match self {
            ClientMsg::Identify { .. } => "Identify",
            ClientMsg::Resume { .. } => "Resume",
            ClientMsg::Heartbeat { .. } => "Heartbeat",
            ClientMsg::SendMessage { .. } => "SendMessage",
            ClientMsg::EditMessage { .. } => "EditMessage",
            ClientMsg::DeleteMessage { .. } => "DeleteMessage",
            ClientMsg::AddReaction { .. } => "AddReaction",
            ClientMsg::RemoveReaction { .. } => "RemoveReaction",
            ClientMsg::Typing { .. } => "Typing",
            ClientMsg::MarkRead { .. } => "MarkRead",
            ClientMsg::SetStatus { .. } => "SetStatus",
            ClientMsg::VoiceJoin { .. } => "VoiceJoin",
            ClientMsg::VoiceLeave => "VoiceLeave",
            ClientMsg::VoiceUpdate { .. } => "VoiceUpdate",
            ClientMsg::VoiceSignal { .. } => "VoiceSignal",
            ClientMsg::TransferSignal { .. } => "TransferSignal",
        }
    }
}

/// The snapshot a client gets when it identifies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct Ready {
    pub session_id: String,
    pub user: User,
    pub server: ServerSettings,
    pub channels: Vec<Channel>,
    pub members: Vec<User>,
    pub presences: Vec<Presence>,
    pub read_states: Vec<ReadState>,
    pub voice_states: Vec<VoiceState>,
    pub ice_servers: Vec<IceServer>,
    /// Members this user has blocked: their messages are hidden here, their DMs refused.
    pub blocked: Vec<UserId>,
}

/// Frames from server to client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(tag = "op")]
pub enum ServerMsg {
    /// First frame on every connection.
    Hello {
        heartbeat_interval_ms: u64,
        identify_timeout_ms: u64,
        protocol_version: u32,
    },
    /// Answer to `Identify`. Sequence numbers of this session start after `seq`.
    Ready {
        seq: u64,
        ready: Box<Ready>,
    },
    /// Answer to `Resume`, after the missed events were replayed.
    Resumed {
        seq: u64,
        replayed: u64,
    },
    /// The session cannot be resumed (unknown, expired, or events were dropped from the
    /// buffer): identify again and fetch history over HTTP.
    InvalidSession,
    HeartbeatAck,
    /// An event, numbered within the session.
    Dispatch {
        seq: u64,
        event: Event,
    },
    /// An op was refused. `nonce` echoes `SendMessage.nonce` when there was one.
    Error {
        #[serde(flatten)]
        error: ApiError,
        /// The op that was refused, when the frame could be parsed that far.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        failed_op: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        nonce: Option<String>,
    },
}

/// What happened, as told to the members who may know.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(tag = "t")]
pub enum Event {
    /// A new message. `nonce` is the sender's nonce, so the sender's clients can match it.
    MessageCreate {
        message: Message,
        nonce: Option<String>,
    },
    MessageUpdate {
        message: Message,
    },
    MessageDelete {
        channel_id: ChannelId,
        message_id: MessageId,
    },
    ReactionAdd {
        channel_id: ChannelId,
        message_id: MessageId,
        user_id: UserId,
        emoji: String,
    },
    ReactionRemove {
        channel_id: ChannelId,
        message_id: MessageId,
        user_id: UserId,
        emoji: String,
    },
    TypingStart {
        channel_id: ChannelId,
        user_id: UserId,
        at: i64,
    },
    ChannelCreate {
        channel: Channel,
    },
    ChannelUpdate {
        channel: Channel,
    },
    ChannelDelete {
        channel_id: ChannelId,
    },
    MemberAdd {
        user: User,
    },
    MemberUpdate {
        user: User,
    },
    MemberRemove {
        user_id: UserId,
    },
    PresenceUpdate {
        presence: Presence,
    },
    /// Sent to the reader's own sessions, so every device clears the badge.
    ReadStateUpdate {
        read_state: ReadState,
    },
    VoiceStateUpdate {
        state: VoiceState,
    },
    VoiceSignal {
        from: UserId,
        signal: Signal,
    },
    /// Direct-transfer signalling from `from`'s device `device` (an opaque tag, stable for
    /// that device's gateway session; answer it with `ClientMsg::TransferSignal.device`).
    TransferSignal {
        from: UserId,
        device: String,
        transfer_id: String,
        signal: TransferSignal,
    },
    /// The group's settings changed (name, icon, description, retention, permissions, limits).
    ServerUpdate {
        server: ServerSettings,
    },
    /// Sent to the blocker's own sessions.
    BlockUpdate {
        user_id: UserId,
        blocked: bool,
    },
    /// Retention deleted every message older than `before` in every channel: drop them from
    /// caches.
    MessagesPurged {
        before: MessageId,
    },
}

/// WebSocket close codes the server uses. Every close the server makes sends a Close frame
/// with one of these before the TCP connection ends. 4xxx codes other than
/// `AUTHENTICATION_FAILED`, `SESSION_REVOKED`, `UNSUPPORTED_PROTOCOL`, `BANNED` and `KICKED`
/// may be followed by `Resume`; so may the RFC 6455 codes below (the session stays resumable).
pub mod close {
    /// Did not identify within `identify_timeout_ms`.
    pub const IDENTIFY_TIMEOUT: u16 = 4003;
    /// The token was refused; log in again.
    pub const AUTHENTICATION_FAILED: u16 = 4004;
    /// No heartbeat within twice the interval.
    pub const HEARTBEAT_TIMEOUT: u16 = 4009;
    /// The client did not read its events fast enough; resume to get the rest.
    pub const TOO_SLOW: u16 = 4010;
    /// Logged out, or the password changed.
    pub const SESSION_REVOKED: u16 = 4011;
    /// Another connection resumed this session.
    pub const SESSION_TAKEN_OVER: u16 = 4012;
    pub const UNSUPPORTED_PROTOCOL: u16 = 4013;
    /// Banned from the group: do not reconnect.
    pub const BANNED: u16 = 4014;
    /// Removed (kicked) from the group: do not reconnect; a new invite brings them back.
    pub const KICKED: u16 = 4015;
    /// The server is restarting; resume against it once it is back.
    pub const SERVER_RESTART: u16 = 1012;
    /// A frame larger than the transport limit.
    pub const MESSAGE_TOO_BIG: u16 = 1009;
    /// A WebSocket protocol violation (RFC 6455): a bad frame header, an unmasked client frame,
    /// a fragmented control frame, a Close frame with a code that may not be sent.
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// A text frame (or a Close reason) that is not UTF-8.
    pub const INVALID_PAYLOAD: u16 = 1007;
    /// The client kept sending while told to wait (`rate_limited` errors ignored).
    pub const POLICY_VIOLATION: u16 = 1008;
    /// The server failed inside; reconnecting later may work.
    pub const INTERNAL_ERROR: u16 = 1011;
}
