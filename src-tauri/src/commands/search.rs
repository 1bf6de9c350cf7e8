//! `search_messages`, `message_history_around`, `message_history_after`: full-text search, the
//! window a jump to a message loads (a search hit, a reply's parent, a message link), and the
//! pages from there back to the present.

use hearth_client::search::SEARCH_PAGE;
use hearth_protocol::api::SearchResults;
use hearth_protocol::model::Message;
use hearth_protocol::{ChannelId, MessageId};
use serde::Serialize;
use tauri::State;

use super::message::HistoryPage;
use crate::error::{CommandError, CommandResult};
use crate::shell::Shell;

/// Longest query the server accepts, in bytes.
const MAX_QUERY_BYTES: usize = 1024;

/// `AroundPage` of `backend.ts`: oldest first.
#[derive(Debug, Clone, Serialize)]
pub struct AroundPage {
    pub messages: Vec<Message>,
    pub has_older: bool,
    pub has_newer: bool,
}

pub fn check_query(query: &str) -> CommandResult<()> {
    if query.trim().is_empty() {
        return Err(CommandError::invalid_field("query: type a word or a filter"));
    }
    if query.len() > MAX_QUERY_BYTES {
        return Err(CommandError::invalid_field(format!("query: at most {MAX_QUERY_BYTES} bytes")));
    }
    Ok(())
}

#[tauri::command]
pub async fn search_messages(
    shell: State<'_, Shell>,
    query: String,
    offset: Option<u32>,
) -> CommandResult<SearchResults> {
    check_query(&query)?;
    Ok(shell.engine.search(&query, offset, SEARCH_PAGE).await?)
}

#[tauri::command]
pub async fn message_history_around(
    shell: State<'_, Shell>,
    channel_id: ChannelId,
    message_id: MessageId,
    limit: u32,
) -> CommandResult<AroundPage> {
    if !(3..=100).contains(&limit) {
        return Err(CommandError::invalid_field("limit: 3 to 100"));
    }
    let w = shell.engine.history_around(channel_id, message_id, limit).await?;
    Ok(AroundPage { messages: w.messages, has_older: w.older, has_newer: w.newer })
}

#[tauri::command]
pub async fn message_history_after(
    shell: State<'_, Shell>,
    channel_id: ChannelId,
    after: MessageId,
    limit: u32,
) -> CommandResult<HistoryPage> {
    if !(1..=100).contains(&limit) {
        return Err(CommandError::invalid_field("limit: 1 to 100"));
    }
    let page = shell.engine.history_after(channel_id, after, limit).await?;
    Ok(HistoryPage { messages: page.messages, has_more: page.more })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_must_be_non_blank_and_within_the_servers_limit() {
        assert!(check_query("teapot from:mum").is_ok());
        assert_eq!(check_query(" \t").unwrap_err().code, "invalid_field");
        assert!(check_query(&"台".repeat(MAX_QUERY_BYTES / 3)).is_ok());
        assert!(check_query(&"a".repeat(MAX_QUERY_BYTES + 1)).is_err());
    }
}
