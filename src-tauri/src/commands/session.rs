//! `session_status` and `session_snapshot`: the state a window that opens late starts from.

use hearth_protocol::gateway::Ready;
use hearth_protocol::model::ServerSettings;
use tauri::State;

use crate::error::CommandResult;
use crate::shell::{SessionStatus, Shell};

#[tauri::command]
pub fn session_status(shell: State<'_, Shell>) -> SessionStatus {
    shell.status()
}

/// The live snapshot; before the first `Ready` (offline start), one made from the local
/// cache so the window is usable; `None` when there is no session or nothing cached.
#[tauri::command]
pub async fn session_snapshot(shell: State<'_, Shell>) -> CommandResult<Option<Ready>> {
    if let Some(ready) = shell.snapshot() {
        return Ok(Some(ready));
    }
    let Ok(session) = shell.engine.session() else { return Ok(None) };
    let Some(account) = shell.engine.active_account().map(|a| shell.directory().account(&a)) else {
        return Ok(None);
    };
    let account_name = account.server_name;
    let user = session.user().unwrap_or(account.user);
    let channels = shell.engine.channels().await?;
    if channels.is_empty() {
        return Ok(None);
    }
    Ok(Some(Ready {
        session_id: String::new(),
        user,
        channels,
        members: shell.engine.members().await?,
        presences: Vec::new(),
        read_states: shell.engine.read_states().await?,
        voice_states: Vec::new(),
        ice_servers: Vec::new(),
        // Not cached yet: what the app shows until the session's own Ready arrives.
        server: ServerSettings {
            name: account_name,
            description: String::new(),
            icon: None,
            retention_days: None,
            member_permissions: Vec::new(),
            max_upload_bytes: 0,
            upload_quota_bytes: None,
        },
        blocked: Vec::new(),
    }))
}
