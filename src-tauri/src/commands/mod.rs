//! The Tauri commands, one file per domain; each validates its arguments, calls the engine or
//! the running session, and maps errors to [`CommandError`](crate::error::CommandError). The
//! contract (names, arguments, results, errors) is `ui/src/lib/backend/README.md`.

pub mod account;
pub mod admin;
pub mod attachment;
pub mod device;
pub mod message;
pub mod people;
pub mod search;
pub mod session;
pub mod transfer;
pub mod voice;
