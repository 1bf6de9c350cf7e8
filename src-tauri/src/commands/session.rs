//! `session_status` and `session_snapshot`: the state a window that opens late starts from.

use hearth_protocol::gateway::Ready;
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
    let user = match session.user() {
        Some(user) => user,
        None => match shell.engine.active_account() {
            Some(account) => shell.directory().account(&account).user,
            None => return Ok(None),
        },
    };
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
    }))
}
