//! `transfer_*`: direct transfers ("send directly"): choose files or folders and send them to
//! a member, accept an offer into a folder chosen with the native dialog, decline, pause,
//! resume, cancel, and the list. Changes reach the UI as `transfer://changed` events.

use std::path::PathBuf;

use hearth_client::transfer::{TransferError, TransferInfo};
use hearth_protocol::UserId;
use tauri::{AppHandle, State};
use tauri_plugin_dialog::DialogExt;

use crate::error::{CommandError, CommandResult};
use crate::shell::Shell;

impl From<TransferError> for CommandError {
    fn from(e: TransferError) -> Self {
        match e {
            TransferError::NotFound => CommandError::new("not_found", "no such transfer"),
            TransferError::Files(e) => CommandError::new("file", e.to_string()),
            TransferError::Offline => CommandError::new("unavailable", "not connected to the server"),
            other => CommandError::internal("transfer", other),
        }
    }
}

fn transfers(shell: &Shell) -> CommandResult<std::sync::Arc<hearth_client::transfer::Transfers>> {
    Ok(shell.engine.transfers()?)
}

#[tauri::command]
pub fn transfer_list(shell: State<'_, Shell>) -> CommandResult<Vec<TransferInfo>> {
    Ok(transfers(&shell)?.list())
}

/// The native dialog: files (`folders: false`) or folders to send; `None` when cancelled.
#[tauri::command]
pub async fn transfer_pick(app: AppHandle, folders: bool) -> CommandResult<Option<Vec<String>>> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let dialog = app.dialog().file().set_title(if folders {
        "Choose folders to send"
    } else {
        "Choose files to send"
    });
    let done = move |picked: Option<Vec<tauri_plugin_dialog::FilePath>>| {
        // The receiver is gone only if the command was dropped; nothing to tell then.
        let _ = tx.send(picked);
    };
    if folders {
        dialog.pick_folders(done)
    } else {
        dialog.pick_files(done)
    }
    let picked = rx.await.map_err(|_| CommandError::cancelled())?;
    let Some(picked) = picked else { return Ok(None) };
    let paths = picked
        .into_iter()
        .map(|p| p.into_path().map(|p| p.to_string_lossy().into_owned()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| CommandError::internal("file dialog", e))?;
    Ok(Some(paths))
}

/// Offers `paths` to `userId`; returns the transfer's id once every file is hashed.
#[tauri::command]
pub async fn transfer_send(
    shell: State<'_, Shell>,
    user_id: UserId,
    paths: Vec<String>,
) -> CommandResult<String> {
    if paths.is_empty() {
        return Err(CommandError::invalid_field("paths: choose at least one file or folder"));
    }
    let me = shell.snapshot().map(|r| r.user.id);
    if me == Some(user_id) {
        return Err(CommandError::invalid_field("userId: choose someone else"));
    }
    let transfers = transfers(&shell)?;
    Ok(transfers.send(user_id, paths.into_iter().map(PathBuf::from).collect()).await?)
}

/// Asks where to save (native folder dialog) and accepts; `false` when the dialog was cancelled.
#[tauri::command]
pub async fn transfer_accept(app: AppHandle, shell: State<'_, Shell>, id: String) -> CommandResult<bool> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    app.dialog().file().set_title("Save into").pick_folder(move |picked| {
        let _ = tx.send(picked);
    });
    let picked = rx.await.map_err(|_| CommandError::cancelled())?;
    let Some(folder) = picked else { return Ok(false) };
    let folder = folder.into_path().map_err(|e| CommandError::internal("file dialog", e))?;
    transfers(&shell)?.accept(&id, folder)?;
    Ok(true)
}

#[tauri::command]
pub fn transfer_decline(shell: State<'_, Shell>, id: String) -> CommandResult<()> {
    Ok(transfers(&shell)?.decline(&id)?)
}

#[tauri::command]
pub fn transfer_pause(shell: State<'_, Shell>, id: String) -> CommandResult<()> {
    Ok(transfers(&shell)?.pause(&id)?)
}

#[tauri::command]
pub fn transfer_resume(shell: State<'_, Shell>, id: String) -> CommandResult<()> {
    Ok(transfers(&shell)?.resume(&id)?)
}

#[tauri::command]
pub fn transfer_cancel(shell: State<'_, Shell>, id: String) -> CommandResult<()> {
    Ok(transfers(&shell)?.cancel(&id)?)
}
