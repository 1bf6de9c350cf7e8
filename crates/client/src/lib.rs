//! `hearth-client`: the Hearth client engine, with no UI in it, so that the desktop app, a
//! headless test client and a terminal client all drive the same code.
//!
//! Map of the crate:
//! - [`engine`]: [`Engine`], the entry point — saved accounts, login and register, the
//!   running account's session and cache, history, sending through the outbox.
//! - [`session`]: the gateway session task (identify/resume, heartbeats, reconnect, token
//!   refresh, outbox delivery) behind a cheap-clone [`SessionHandle`] and a stream of
//!   [`SessionEvent`]s.
//! - [`call`]: [`call::Call`], one voice call — a full mesh of webrtc-rs peer connections
//!   signalled through the session, Opus RTP out to every peer and in from each.
//! - [`voice`]: [`voice::Voice`], voice in a channel end to end — a [`call::Call`] plus a
//!   20 ms audio thread running the `hearth-voice` pipelines between injected devices; mute,
//!   deafen, push-to-talk, volumes, devices, speaking and levels as [`voice::VoiceEvent`]s, and a
//!   [`voice::MicTest`].
//! - [`search`]: full-text search, and the history windows a jump to a message loads
//!   ([`Engine::history_around`], [`Engine::history_after`]).
//! - [`admin`]: group administration on [`Engine`] (invites, channels, members, moderation,
//!   ownership, server settings, audit log).
//! - [`store`]: the local SQLite cache (messages, channels, members, read states) and the
//!   outbox of unacknowledged messages.
//! - [`api`]: the typed HTTP client of `/api/v1`.
//! - [`credentials`]: the access token and the rotating refresh token.
//! - [`accounts`]: saved accounts in a private JSON file.
//! - [`invite`]: parsing pasted invite links, deep links and server addresses.
//! - [`backoff`]: the reconnect backoff state machine.
//! - [`error`]: [`Error`], with a stable code for the UI.
//!
//! Data flow: the app calls the engine or a session handle; writes go up the gateway (messages
//! via the outbox), reads come from the cache, which the session task keeps current from
//! gateway events before it passes them on.

pub mod accounts;
pub mod admin;
pub mod api;
pub mod attachments;
pub mod backoff;
pub mod call;
pub mod credentials;
pub mod engine;
pub mod error;
pub mod invite;
pub mod search;
pub mod session;
pub mod store;
mod tls;
pub mod transfer;
pub mod voice;

pub use admin::SharedInvite;
pub use call::{Call, CallConfig, CallEvent};
pub use engine::{AccountInfo, Engine, EngineOptions};
pub use error::{Error, Result};
pub use session::{ConnectionStatus, Session, SessionEvent, SessionHandle};
pub use voice::{MicTest, Voice, VoiceError, VoiceEvent, VoiceSettings};
