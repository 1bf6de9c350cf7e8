//! `invite_*`, `channel_create`/`_update`/`_set_members`/`_reorder`/`_delete`, `member_*`,
//! `ban_list`, `ownership_transfer`, `server_*`, `audit_log`: group administration. The server
//! checks every permission (a refusal is `missing_permission` or `forbidden`); these commands
//! check only what can be checked here, and the changes reach the window as gateway events
//! like everyone else's.

use std::path::PathBuf;

use hearth_protocol::api::{CreateChannelRequest, Invite, UpdateChannelRequest, UpdateServerSettingsRequest};
use hearth_protocol::model::{AuditEntry, Ban, Channel, Role, ServerSettings, User};
use hearth_protocol::{AuditEntryId, ChannelId, UserId};
use serde::Serialize;
use tauri::State;
use ts_rs::TS;

use crate::avatar::{self, AvatarError};
use crate::error::{CommandError, CommandResult};
use crate::shell::Shell;

/// An invite and the two links to share it with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct InviteView {
    pub invite: Invite,
    /// `hearth://join?server=…&code=…`, which the app opens (or is pasted into it).
    pub link: String,
    /// `https://SERVER/invite/CODE`: the server's page for someone without the app yet.
    pub page: String,
}

impl From<hearth_client::SharedInvite> for InviteView {
    fn from(s: hearth_client::SharedInvite) -> InviteView {
        InviteView { invite: s.invite, link: s.link, page: s.page }
    }
}

#[tauri::command]
pub async fn invite_create(
    shell: State<'_, Shell>,
    max_uses: Option<u32>,
    expires_in_secs: Option<u64>,
) -> CommandResult<InviteView> {
    Ok(shell.engine.invite_create(max_uses, expires_in_secs).await?.into())
}

#[tauri::command]
pub async fn invite_list(shell: State<'_, Shell>) -> CommandResult<Vec<InviteView>> {
    Ok(shell.engine.invites().await?.into_iter().map(InviteView::from).collect())
}

#[tauri::command]
pub async fn invite_revoke(shell: State<'_, Shell>, code: String) -> CommandResult<()> {
    Ok(shell.engine.invite_revoke(&code).await?)
}

#[tauri::command]
pub async fn channel_create(
    shell: State<'_, Shell>,
    request: CreateChannelRequest,
) -> CommandResult<Channel> {
    Ok(shell.engine.channel_create(request).await?)
}

#[tauri::command]
pub async fn channel_update(
    shell: State<'_, Shell>,
    channel_id: ChannelId,
    request: UpdateChannelRequest,
) -> CommandResult<Channel> {
    Ok(shell.engine.channel_update(channel_id, request).await?)
}

#[tauri::command]
pub async fn channel_set_members(
    shell: State<'_, Shell>,
    channel_id: ChannelId,
    members: Vec<UserId>,
) -> CommandResult<Channel> {
    Ok(shell.engine.channel_set_members(channel_id, members).await?)
}

#[tauri::command]
pub async fn channel_reorder(
    shell: State<'_, Shell>,
    channel_ids: Vec<ChannelId>,
) -> CommandResult<Vec<Channel>> {
    Ok(shell.engine.channel_reorder(channel_ids).await?)
}

#[tauri::command]
pub async fn channel_delete(shell: State<'_, Shell>, channel_id: ChannelId) -> CommandResult<()> {
    Ok(shell.engine.channel_delete(channel_id).await?)
}

#[tauri::command]
pub async fn member_set_role(shell: State<'_, Shell>, user_id: UserId, role: Role) -> CommandResult<User> {
    Ok(shell.engine.member_set_role(user_id, role).await?)
}

#[tauri::command]
pub async fn member_kick(
    shell: State<'_, Shell>,
    user_id: UserId,
    reason: Option<String>,
) -> CommandResult<()> {
    Ok(shell.engine.member_kick(user_id, reason).await?)
}

#[tauri::command]
pub async fn member_ban(
    shell: State<'_, Shell>,
    user_id: UserId,
    reason: Option<String>,
) -> CommandResult<()> {
    Ok(shell.engine.member_ban(user_id, reason).await?)
}

#[tauri::command]
pub async fn member_unban(shell: State<'_, Shell>, user_id: UserId) -> CommandResult<()> {
    Ok(shell.engine.member_unban(user_id).await?)
}

#[tauri::command]
pub async fn ban_list(shell: State<'_, Shell>) -> CommandResult<Vec<Ban>> {
    Ok(shell.engine.bans().await?)
}

#[tauri::command]
pub async fn member_block(shell: State<'_, Shell>, user_id: UserId, blocked: bool) -> CommandResult<()> {
    Ok(shell.engine.member_block(user_id, blocked).await?)
}

#[tauri::command]
pub async fn ownership_transfer(shell: State<'_, Shell>, user_id: UserId) -> CommandResult<User> {
    Ok(shell.engine.transfer_ownership(user_id).await?)
}

#[tauri::command]
pub async fn server_settings_update(
    shell: State<'_, Shell>,
    request: UpdateServerSettingsRequest,
) -> CommandResult<ServerSettings> {
    Ok(shell.engine.server_settings_update(request).await?)
}

/// Reads and shrinks the image at `path` here (as for avatars), then uploads it; `null`
/// removes the icon.
#[tauri::command]
pub async fn server_set_icon(shell: State<'_, Shell>, path: Option<String>) -> CommandResult<ServerSettings> {
    let png = match path {
        None => None,
        Some(path) => {
            let path = PathBuf::from(path);
            let png = tauri::async_runtime::spawn_blocking(move || avatar::prepare_file(&path))
                .await
                .map_err(|e| CommandError::internal("icon task", e))?
                .map_err(image_error)?;
            Some(png)
        }
    };
    Ok(shell.engine.server_icon_set(png).await?)
}

/// The group icon's PNG for `hash`; `null` when the server has none by that hash.
#[tauri::command]
pub async fn server_icon_get(shell: State<'_, Shell>, hash: String) -> CommandResult<Option<Vec<u8>>> {
    super::people::image_by_hash(&hash, shell.engine.server_icon(&hash)).await
}

#[tauri::command]
pub async fn audit_log(
    shell: State<'_, Shell>,
    before: Option<AuditEntryId>,
    limit: u32,
) -> CommandResult<Vec<AuditEntry>> {
    Ok(shell.engine.audit_log(before, limit).await?)
}

/// The avatar preparation's failures, as every image command reports them.
pub fn image_error(e: AvatarError) -> CommandError {
    match e {
        AvatarError::Io(_) => CommandError::new("not_found", "Cannot read this file."),
        e @ AvatarError::TooLarge => CommandError::new("payload_too_large", e.to_string()),
        e @ AvatarError::NotAnImage => CommandError::new("unsupported_media", e.to_string()),
    }
}
