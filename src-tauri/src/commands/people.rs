//! `presence_set_status`, `dm_open`, `profile_*`, `avatar_get`: me and the people I talk to.

use std::path::PathBuf;

use hearth_protocol::model::{Channel, Status, User};
use hearth_protocol::{MAX_GROUP_DM_MEMBERS, UserId};
use tauri::{AppHandle, State};
use tauri_plugin_dialog::DialogExt;

use crate::avatar;
use crate::error::{CommandError, CommandResult};
use crate::shell::Shell;

#[tauri::command]
pub async fn presence_set_status(shell: State<'_, Shell>, status: Status) -> CommandResult<()> {
    Ok(shell.engine.session()?.set_status(status).await?)
}

#[tauri::command]
pub async fn dm_open(shell: State<'_, Shell>, recipients: Vec<UserId>) -> CommandResult<Channel> {
    if recipients.is_empty() || recipients.len() > MAX_GROUP_DM_MEMBERS - 1 {
        return Err(CommandError::invalid_field(format!(
            "recipients: 1 to {} people",
            MAX_GROUP_DM_MEMBERS - 1
        )));
    }
    Ok(shell.engine.open_dm(recipients).await?)
}

#[tauri::command]
pub async fn profile_update(shell: State<'_, Shell>, display_name: Option<String>) -> CommandResult<User> {
    let user = shell.engine.update_profile(display_name).await?;
    remember(&shell, &user);
    Ok(user)
}

/// The native file dialog, images only; `None` when cancelled.
#[tauri::command]
pub async fn profile_pick_avatar(app: AppHandle) -> CommandResult<Option<String>> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    app.dialog()
        .file()
        .set_title("Choose a profile picture")
        .add_filter("Images", &["png", "jpg", "jpeg", "gif", "webp"])
        .pick_file(move |picked| {
            // The receiver is gone only if the command was dropped; nothing to tell then.
            let _ = tx.send(picked);
        });
    let picked = rx.await.map_err(|_| CommandError::cancelled())?;
    match picked.map(|p| p.into_path()) {
        None => Ok(None),
        Some(Ok(path)) => Ok(Some(path.to_string_lossy().into_owned())),
        Some(Err(e)) => Err(CommandError::internal("file dialog", e)),
    }
}

/// Reads, checks and shrinks the picture here, then uploads it.
#[tauri::command]
pub async fn profile_set_avatar(shell: State<'_, Shell>, path: String) -> CommandResult<User> {
    let path = PathBuf::from(path);
    let png = tauri::async_runtime::spawn_blocking(move || avatar::prepare_file(&path))
        .await
        .map_err(|e| CommandError::internal("avatar task", e))?
        .map_err(super::admin::image_error)?;
    let user = shell.engine.upload_avatar(png).await?;
    remember(&shell, &user);
    Ok(user)
}

/// Avatar bytes for `hash`, fetched with the session's token; `null` when there is none.
#[tauri::command]
pub async fn avatar_get(shell: State<'_, Shell>, hash: String) -> CommandResult<Option<Vec<u8>>> {
    image_by_hash(&hash, shell.engine.avatar(&hash)).await
}

/// A content-addressed image (avatar, group icon) from `fetch`, once `hash` is known to be a
/// plain hash (nothing that could walk a path); `None` when the server has none by that hash.
pub async fn image_by_hash(
    hash: &str,
    fetch: impl std::future::Future<Output = hearth_client::Result<Vec<u8>>>,
) -> CommandResult<Option<Vec<u8>>> {
    if hash.is_empty() || !hash.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(CommandError::invalid_field("hash: letters and digits"));
    }
    match fetch.await {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.code() == "not_found" => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn remember(shell: &Shell, user: &User) {
    if let Some(account) = shell.engine.active_account() {
        shell.directory().set_user(&account.id, user);
    }
}
