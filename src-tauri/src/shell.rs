//! [`Shell`], the state every command reaches through Tauri's managed state: the engine, the
//! session snapshot, settings, the account directory, window focus and the notifier.
//!
//! Locks here are std mutexes held for short, synchronous sections only (never across an
//! `.await`): the engine does the slow work behind its own handle.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use hearth_client::{ConnectionStatus, Engine};
use hearth_protocol::gateway::{Ready, close};
use serde::Serialize;
use tauri::async_runtime::JoinHandle;
use ts_rs::TS;

use crate::directory::Directory;
use crate::notify::Notifier;
use crate::settings::{Settings, SettingsFile};

pub struct Shell {
    pub engine: Arc<Engine>,
    pub notifier: Box<dyn Notifier>,
    settings_file: SettingsFile,
    settings: Mutex<Settings>,
    /// The last `Ready` with later events applied; `None` until the session's first `Ready`.
    snapshot: Mutex<Option<Ready>>,
    directory: Mutex<Directory>,
    focused: AtomicBool,
    /// The task forwarding the running session's events to the window.
    forwarder: Mutex<Option<JoinHandle<()>>>,
    /// The link the app was started with, until the UI takes it (`link_take_startup`): it
    /// exists before the window can listen for `link://open`.
    startup_link: Mutex<Option<String>>,
    /// Set when the server removed this account from the group (closed 4014/4015): the
    /// session stops and the window says why, until another session starts.
    removal: Mutex<Option<Removal>>,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section leaves its data whole, so a poisoned lock is still usable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shell {
    pub fn new(engine: Engine, notifier: Box<dyn Notifier>) -> Shell {
        let dir = engine.data_dir().to_path_buf();
        let settings_file = SettingsFile::in_dir(&dir);
        let settings = settings_file.load();
        Shell {
            engine: Arc::new(engine),
            notifier,
            settings_file,
            settings: Mutex::new(settings),
            snapshot: Mutex::new(None),
            directory: Mutex::new(Directory::load(&dir)),
            focused: AtomicBool::new(true),
            forwarder: Mutex::new(None),
            startup_link: Mutex::new(None),
            removal: Mutex::new(None),
        }
    }

    pub fn settings(&self) -> Settings {
        lock(&self.settings).clone()
    }

    pub fn set_settings(&self, settings: Settings) -> std::io::Result<()> {
        self.settings_file.save(&settings)?;
        *lock(&self.settings) = settings;
        Ok(())
    }

    pub fn snapshot(&self) -> Option<Ready> {
        lock(&self.snapshot).clone()
    }

    pub fn has_snapshot(&self) -> bool {
        lock(&self.snapshot).is_some()
    }

    pub fn set_snapshot(&self, ready: Option<Ready>) {
        *lock(&self.snapshot) = ready;
    }

    /// Runs `f` on the snapshot, if there is one.
    pub fn with_snapshot<T>(&self, f: impl FnOnce(&mut Ready) -> T) -> Option<T> {
        lock(&self.snapshot).as_mut().map(f)
    }

    pub fn directory(&self) -> MutexGuard<'_, Directory> {
        lock(&self.directory)
    }

    pub fn set_startup_link(&self, url: String) {
        *lock(&self.startup_link) = Some(url);
    }

    pub fn take_startup_link(&self) -> Option<String> {
        lock(&self.startup_link).take()
    }

    pub fn focused(&self) -> bool {
        self.focused.load(Ordering::Relaxed)
    }

    pub fn set_focused(&self, focused: bool) {
        self.focused.store(focused, Ordering::Relaxed);
    }

    /// Replaces the forwarding task, stopping the previous session's.
    pub fn set_forwarder(&self, task: Option<JoinHandle<()>>) {
        if let Some(old) = std::mem::replace(&mut *lock(&self.forwarder), task) {
            old.abort();
        }
    }

    /// The connection state as the UI names it.
    pub fn status(&self) -> SessionStatus {
        self.status_of(&self.engine.connection_status())
    }

    /// `status` as the UI names it, with the removal if the server ended our membership.
    pub fn status_of(&self, status: &ConnectionStatus) -> SessionStatus {
        let mut named = SessionStatus::from_engine(status, self.has_snapshot());
        if named.state == "offline" {
            named.removed = *lock(&self.removal);
        }
        named
    }

    /// Remembers (or, for a new session, forgets) that the server removed us.
    pub fn set_removal(&self, removal: Option<Removal>) {
        *lock(&self.removal) = removal;
    }
}

/// Why the server ended this account's membership: the session does not reconnect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum Removal {
    /// Removed from the group (close 4015): a new invite brings them back.
    Kicked,
    /// Banned (close 4014): refused until an admin lifts the ban.
    Banned,
}

impl Removal {
    pub fn from_close(code: u16) -> Option<Removal> {
        match code {
            close::KICKED => Some(Removal::Kicked),
            close::BANNED => Some(Removal::Banned),
            _ => None,
        }
    }
}

/// The gateway connection as the UI sees it (`session://status`, `session_status`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct SessionStatus {
    #[ts(type = "'connecting' | 'connected' | 'reconnecting' | 'offline'")]
    pub state: &'static str,
    /// While `reconnecting`: milliseconds until the next attempt, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[ts(optional, type = "number")]
    pub retry_in_ms: Option<u64>,
    /// While `offline`: the server removed this account from the group.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub removed: Option<Removal>,
}

impl SessionStatus {
    /// Not connected and not trying (logged out, or no account).
    pub fn offline() -> SessionStatus {
        SessionStatus { state: "offline", retry_in_ms: None, removed: None }
    }

    /// Before the first `Ready` a session that is not connected is still `connecting`; after
    /// it, `reconnecting`.
    pub fn from_engine(status: &ConnectionStatus, had_ready: bool) -> SessionStatus {
        match status {
            ConnectionStatus::Connected => {
                SessionStatus { state: "connected", retry_in_ms: None, removed: None }
            }
            ConnectionStatus::Offline => SessionStatus::offline(),
            ConnectionStatus::Reconnecting { retry_in, .. } => {
                let ms = u64::try_from(retry_in.as_millis()).unwrap_or(u64::MAX);
                SessionStatus {
                    state: if had_ready { "reconnecting" } else { "connecting" },
                    retry_in_ms: (ms > 0).then_some(ms),
                    removed: None,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn statuses_use_the_uis_names() {
        let waiting = ConnectionStatus::Reconnecting { attempt: 2, retry_in: Duration::from_millis(1500) };
        assert_eq!(
            serde_json::to_value(SessionStatus::from_engine(&waiting, true)).unwrap(),
            serde_json::json!({"state": "reconnecting", "retry_in_ms": 1500})
        );
        let first = ConnectionStatus::Reconnecting { attempt: 0, retry_in: Duration::ZERO };
        assert_eq!(
            serde_json::to_value(SessionStatus::from_engine(&first, false)).unwrap(),
            serde_json::json!({"state": "connecting"})
        );
        assert_eq!(SessionStatus::from_engine(&ConnectionStatus::Connected, true).state, "connected");
        assert_eq!(SessionStatus::from_engine(&ConnectionStatus::Offline, false).state, "offline");
    }
}
