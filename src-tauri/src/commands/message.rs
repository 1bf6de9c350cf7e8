//! `message_*`, `reaction_*`, `channel_*`: history, sending through the outbox, edits,
//! reactions, typing and read markers.

use hearth_protocol::model::Message;
use hearth_protocol::{AttachmentId, ChannelId, MAX_ATTACHMENTS_PER_MESSAGE, MAX_MESSAGE_CHARS, MessageId};
use serde::Serialize;
use tauri::State;

use crate::error::{CommandError, CommandResult};
use crate::shell::Shell;

/// `HistoryPage` of `backend.ts`.
#[derive(Debug, Clone, Serialize, ts_rs::TS)]
pub struct HistoryPage {
    pub messages: Vec<Message>,
    /// False once the start of the channel has been reached.
    pub has_more: bool,
}

/// Longest nonce the server accepts, in bytes.
const MAX_NONCE_BYTES: usize = 64;

pub fn check_content(content: &str) -> CommandResult<()> {
    if content.trim().is_empty() {
        return Err(CommandError::invalid_field("content: must not be empty"));
    }
    if content.chars().count() > MAX_MESSAGE_CHARS {
        return Err(CommandError::invalid_field(format!("content: at most {MAX_MESSAGE_CHARS} characters")));
    }
    Ok(())
}

pub fn check_nonce(nonce: &str) -> CommandResult<()> {
    if nonce.is_empty() || nonce.len() > MAX_NONCE_BYTES || nonce.chars().any(char::is_control) {
        return Err(CommandError::invalid_field("nonce: 1 to 64 printable characters"));
    }
    Ok(())
}

#[tauri::command]
pub async fn message_history(
    shell: State<'_, Shell>,
    channel_id: ChannelId,
    before: Option<MessageId>,
    limit: u32,
) -> CommandResult<HistoryPage> {
    if !(1..=100).contains(&limit) {
        return Err(CommandError::invalid_field("limit: 1 to 100"));
    }
    let mut messages = shell.engine.history(channel_id, before, limit).await?;
    let has_more = messages.len() == limit as usize;
    // The engine pages newest first; the UI wants oldest first.
    messages.sort_by_key(|m| m.id);
    Ok(HistoryPage { messages, has_more })
}

/// Queues the message under the UI's nonce and returns it at once. The outbox ignores a nonce
/// it already holds and `retry_message` puts a failed entry back in line, so the UI's Retry
/// (same nonce) never sends twice; the server dedups by nonce as well.
#[tauri::command]
pub async fn message_send(
    shell: State<'_, Shell>,
    channel_id: ChannelId,
    content: String,
    reply_to: Option<MessageId>,
    nonce: String,
    attachments: Option<Vec<AttachmentId>>,
) -> CommandResult<String> {
    let attachments = attachments.unwrap_or_default();
    // With attachments the text may be empty.
    if attachments.is_empty() || !content.trim().is_empty() {
        check_content(&content)?;
    }
    if attachments.len() > MAX_ATTACHMENTS_PER_MESSAGE {
        return Err(CommandError::invalid_field(format!(
            "attachments: at most {MAX_ATTACHMENTS_PER_MESSAGE}"
        )));
    }
    check_nonce(&nonce)?;
    let session = shell.engine.session()?;
    let content = if content.trim().is_empty() { "" } else { content.as_str() };
    session.send_message_with_attachments(channel_id, content, reply_to, &nonce, attachments).await?;
    Ok(nonce)
}

#[tauri::command]
pub async fn message_edit(
    shell: State<'_, Shell>,
    channel_id: ChannelId,
    message_id: MessageId,
    content: String,
) -> CommandResult<()> {
    check_content(&content)?;
    Ok(shell.engine.session()?.edit_message(channel_id, message_id, &content).await?)
}

#[tauri::command]
pub async fn message_delete(
    shell: State<'_, Shell>,
    channel_id: ChannelId,
    message_id: MessageId,
) -> CommandResult<()> {
    Ok(shell.engine.session()?.delete_message(channel_id, message_id).await?)
}

fn check_emoji(emoji: &str) -> CommandResult<()> {
    // The server checks which emoji are allowed; this only refuses what cannot be one.
    if emoji.is_empty() || emoji.chars().any(char::is_control) {
        return Err(CommandError::invalid_field("emoji: must not be empty"));
    }
    Ok(())
}

#[tauri::command]
pub async fn reaction_add(
    shell: State<'_, Shell>,
    channel_id: ChannelId,
    message_id: MessageId,
    emoji: String,
) -> CommandResult<()> {
    check_emoji(&emoji)?;
    Ok(shell.engine.session()?.add_reaction(channel_id, message_id, &emoji).await?)
}

#[tauri::command]
pub async fn reaction_remove(
    shell: State<'_, Shell>,
    channel_id: ChannelId,
    message_id: MessageId,
    emoji: String,
) -> CommandResult<()> {
    check_emoji(&emoji)?;
    Ok(shell.engine.session()?.remove_reaction(channel_id, message_id, &emoji).await?)
}

#[tauri::command]
pub async fn channel_typing(shell: State<'_, Shell>, channel_id: ChannelId) -> CommandResult<()> {
    Ok(shell.engine.session()?.typing(channel_id).await?)
}

#[tauri::command]
pub async fn channel_mark_read(
    shell: State<'_, Shell>,
    channel_id: ChannelId,
    message_id: MessageId,
) -> CommandResult<()> {
    Ok(shell.engine.session()?.mark_read(channel_id, message_id).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_must_be_non_blank_and_within_the_limit() {
        assert!(check_content("hi").is_ok());
        assert_eq!(check_content("  \n").unwrap_err().code, "invalid_field");
        assert!(check_content(&"a".repeat(MAX_MESSAGE_CHARS)).is_ok());
        assert!(check_content(&"a".repeat(MAX_MESSAGE_CHARS + 1)).is_err());
    }

    #[test]
    fn nonces_follow_the_servers_rule() {
        assert!(check_nonce("0b7c4e2a-1").is_ok());
        assert!(check_nonce("").is_err());
        assert!(check_nonce(&"n".repeat(65)).is_err());
        assert!(check_nonce("a\nb").is_err());
    }
}
