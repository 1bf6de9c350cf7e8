//! Search and jumps: full-text search over the server ([`Engine::search`]), the window of
//! history a jump to a message loads ([`Engine::history_around`]: a search hit, a reply's
//! parent, a message link), and the pages from such a window back to the present
//! ([`Engine::history_after`]).
//!
//! Windows and pages land in the cache like any history, and the cache's record of the range it
//! holds completely (`channel_sync`: every message from some id up to the newest) grows only
//! when a window reaches the newest message or overlaps that range: an island in the middle of
//! a long history stays an island, so the next `history` call that needs what lies between asks
//! the server instead of showing a gap.

use hearth_protocol::api::{HistoryQuery, SearchQuery, SearchResults};
use hearth_protocol::model::Message;
use hearth_protocol::{ApiError, ChannelId, ErrorCode, MessageId};

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::session::ConnectionStatus;
use crate::store::Store;

/// Results per search page: the server's default.
pub const SEARCH_PAGE: u32 = 25;

/// A window of history around a message, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    pub messages: Vec<Message>,
    /// Older messages exist before the window.
    pub older: bool,
    /// Newer messages exist after the window (it does not reach the present).
    pub newer: bool,
}

/// A page of history towards the present, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewerPage {
    pub messages: Vec<Message>,
    /// More messages exist after this page.
    pub more: bool,
}

fn invalid(what: &str) -> Error {
    Error::Api(ApiError::new(ErrorCode::InvalidField, what.to_string()))
}

impl Engine {
    /// One page of full-text results over every channel and DM the account can read: `query`
    /// holds words and the filters `from:`, `in:`, `has:file`, `before:`, `after:` (the
    /// server parses them and answers `invalid_field` with a readable message when one names
    /// nobody or nothing). `offset` is the previous page's `next_offset`.
    pub async fn search(&self, query: &str, offset: Option<u32>, limit: u32) -> Result<SearchResults> {
        if query.trim().is_empty() {
            return Err(invalid("query: type a word or a filter"));
        }
        if !(1..=50).contains(&limit) {
            return Err(invalid("limit: 1 to 50"));
        }
        let query = SearchQuery { q: query.to_string(), offset, limit: Some(limit) };
        self.call(|api, token| {
            let query = query.clone();
            async move { api.search(&token, &query).await }
        })
        .await
    }

    /// The message `id` of `channel` (if it still exists) with up to `limit / 2` older and
    /// `(limit - 1) / 2` newer messages around it, oldest first. From the cache when the cache
    /// holds that whole range, else from the server (and cached); from whatever the cache has
    /// around the message when offline.
    pub async fn history_around(&self, channel: ChannelId, id: MessageId, limit: u32) -> Result<Window> {
        if !(3..=100).contains(&limit) {
            return Err(invalid("limit: 3 to 100"));
        }
        let store = self.store()?;
        let (want_older, want_newer) = (limit / 2, (limit - 1) / 2);
        let cached = cached_window(&store, channel, id, want_older, want_newer).await?;
        if let Some(known) = store.synced_from(channel).await?
            && id >= known
        {
            let older = cached.iter().filter(|m| m.id < id).count();
            let older_complete = known.0 == 0 || older == want_older as usize && cached[0].id >= known;
            if older_complete {
                return Ok(window(cached, id, want_older, want_newer));
            }
        }
        if self.session()?.status() != ConnectionStatus::Connected {
            if cached.iter().any(|m| m.id == id) {
                // Offline: what the cache has, and the UI pages on from it when back online.
                let mut w = window(cached, id, want_older, want_newer);
                w.older = true;
                w.newer = true;
                return Ok(w);
            }
            return Err(Error::Offline);
        }
        let query = HistoryQuery { before: None, after: None, around: Some(id), limit: Some(limit) };
        let fetched = self
            .call(|api, token| {
                let query = query.clone();
                async move { api.history(&token, channel, &query).await }
            })
            .await?;
        store.upsert_messages(&fetched).await?;
        let w = window(fetched, id, want_older, want_newer);
        let lower = if w.older { w.messages.first().map(|m| m.id) } else { Some(MessageId(0)) };
        let upper = w.messages.last().map(|m| m.id);
        note_range(&store, channel, lower, upper, !w.newer).await?;
        Ok(w)
    }

    /// Up to `limit` messages of `channel` newer than `after`, oldest first: the next page from
    /// a jump's window towards the present. From the cache when it holds everything after
    /// `after`, else from the server (and cached); from the cache when offline.
    pub async fn history_after(&self, channel: ChannelId, after: MessageId, limit: u32) -> Result<NewerPage> {
        if !(1..=100).contains(&limit) {
            return Err(invalid("limit: 1 to 100"));
        }
        let store = self.store()?;
        let complete = store.synced_from(channel).await?.is_some_and(|known| after.0 + 1 >= known.0);
        if complete || self.session()?.status() != ConnectionStatus::Connected {
            let messages = store.history_after(channel, after, limit).await?;
            let more = messages.len() == limit as usize;
            return Ok(NewerPage { messages, more });
        }
        let query = HistoryQuery { before: None, after: Some(after), around: None, limit: Some(limit) };
        let mut messages = self
            .call(|api, token| {
                let query = query.clone();
                async move { api.history(&token, channel, &query).await }
            })
            .await?;
        messages.sort_by_key(|m| m.id);
        store.upsert_messages(&messages).await?;
        let more = messages.len() == limit as usize;
        let first = messages.first().map(|m| m.id);
        note_range(&store, channel, first, messages.last().map(|m| m.id), !more).await?;
        Ok(NewerPage { messages, more })
    }
}

/// What the cache holds around `id`: up to `older` before it, the message, up to `newer` after
/// it; oldest first.
async fn cached_window(
    store: &Store,
    channel: ChannelId,
    id: MessageId,
    older: u32,
    newer: u32,
) -> Result<Vec<Message>> {
    let mut list = store.history(channel, Some(id), older).await?;
    list.reverse();
    if let Some(m) = store.message(id).await?
        && m.channel_id == channel
    {
        list.push(m);
    }
    list.extend(store.history_after(channel, id, newer).await?);
    Ok(list)
}

/// Reads the window's edges from what came back: fewer than asked on a side means that side
/// reaches the start or the present.
fn window(messages: Vec<Message>, id: MessageId, want_older: u32, want_newer: u32) -> Window {
    let older = messages.iter().filter(|m| m.id < id).count() == want_older as usize;
    let newer = messages.iter().filter(|m| m.id > id).count() == want_newer as usize;
    Window { messages, older, newer }
}

/// Records that every message of `channel` from `lower` to `upper` is cached (`reaches_newest`:
/// and on to the newest). That extends the complete range `[known, newest]` when the two touch;
/// a range below it, apart, would leave a gap of unknown size, so it is not recorded.
async fn note_range(
    store: &Store,
    channel: ChannelId,
    lower: Option<MessageId>,
    upper: Option<MessageId>,
    reaches_newest: bool,
) -> Result<()> {
    let Some(lower) = lower else { return Ok(()) };
    match store.synced_from(channel).await? {
        Some(known) if reaches_newest || upper.is_some_and(|u| u >= known) => {
            store.set_synced_from(channel, known.min(lower)).await
        }
        None if reaches_newest => store.set_synced_from(channel, lower).await,
        _ => Ok(()),
    }
}
