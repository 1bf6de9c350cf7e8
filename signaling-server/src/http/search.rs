//! `GET /search`: full-text search over every channel and DM the member can read. The query's
//! filters are resolved here (names to ids, dates to id bounds), the database returns the
//! newest matches the member may read with their relevance, and this ranks them (relevance,
//! then recency), pages them and marks where the words occur.

use axum::extract::State;
use hearth_protocol::api::{SearchHit, SearchQuery, SearchResults};
use hearth_protocol::ids::compose;
use hearth_protocol::model::ChannelKind;
use hearth_protocol::{ErrorCode, MessageId};

use super::extract::{Json, Query};
use crate::auth::AuthUser;
use crate::db::search::Match;
use crate::error::{AppError, AppResult};
use crate::search::text::{author_tag, channel_tag, highlights};
use crate::search::{MAX_CANDIDATES, query};
use crate::state::AppState;

/// Longest query accepted, in bytes.
const MAX_QUERY_BYTES: usize = 1024;

pub async fn search(
    State(state): State<AppState>,
    user: AuthUser,
    Query(q): Query<SearchQuery>,
) -> AppResult<Json<SearchResults>> {
    let limit = q.limit.unwrap_or(25);
    if !(1..=50).contains(&limit) {
        return Err(AppError::invalid("limit must be between 1 and 50"));
    }
    let offset = q.offset.unwrap_or(0);
    if offset as usize >= MAX_CANDIDATES {
        return Err(AppError::invalid(format!("offset must be below {MAX_CANDIDATES}")));
    }
    if q.q.len() > MAX_QUERY_BYTES {
        return Err(AppError::new(
            ErrorCode::PayloadTooLarge,
            format!("queries are limited to {MAX_QUERY_BYTES} bytes"),
        ));
    }
    let parsed = query::parse(&q.q).map_err(AppError::invalid)?;
    if parsed.is_empty() {
        return Err(AppError::invalid("type a word to search for, or a filter such as from:NAME"));
    }
    let mut any_of = Vec::new();
    if !parsed.from.is_empty() {
        let mut authors = Vec::new();
        for name in &parsed.from {
            authors.extend(author_ids(&state, name).await?);
        }
        if authors.is_empty() {
            return Err(AppError::invalid(format!("no member is called {}", parsed.from.join(" or "))));
        }
        any_of.push(authors.into_iter().map(author_tag).collect::<Vec<_>>());
    }
    if !parsed.within.is_empty() {
        let channels: Vec<i64> = state
            .hub
            .visible_channels(user.id)
            .into_iter()
            .filter(|c| c.kind == ChannelKind::Text)
            .filter(|c| parsed.within.iter().any(|n| c.name.eq_ignore_ascii_case(n)))
            .map(|c| c.id.0)
            .collect();
        if channels.is_empty() {
            return Err(AppError::invalid(format!("no channel is called {}", parsed.within.join(" or "))));
        }
        any_of.push(channels.into_iter().map(channel_tag).collect());
    }
    // Ids carry their creation time: the date filters are id bounds.
    let after = parsed.after.map(|t| MessageId(compose(t, 0) - 1));
    let before = parsed.before.map(|t| MessageId(compose(t, 0)));

    let expression = state.db.backend.match_expression(&Match { terms: &parsed.terms, any_of: &any_of });
    let mut candidates = state.db.search(user.id, &expression, after, before, parsed.has_file).await?;
    // Relevance first, then the newest.
    candidates.sort_by(|a, b| b.1.total_cmp(&a.1).then(b.0.cmp(&a.0)));
    let total = candidates.len();
    let page: Vec<MessageId> =
        candidates.iter().skip(offset as usize).take(limit as usize).map(|(id, _)| *id).collect();
    let messages = state.db.messages_by_ids(&page).await?;
    let hits = messages
        .into_iter()
        .map(|message| SearchHit { highlights: highlights(&message.content, &parsed.terms), message })
        .collect();
    let next = offset as usize + limit as usize;
    Ok(Json(SearchResults { hits, total: total as u32, next_offset: (next < total).then_some(next as u32) }))
}

/// Members whose username (any case) or display name is `name`; removed members by username
/// too, since their messages stay.
async fn author_ids(state: &AppState, name: &str) -> AppResult<Vec<i64>> {
    if let Some(record) = state.db.user_by_username(name).await? {
        return Ok(vec![record.user.id.0]);
    }
    let lower = name.to_lowercase();
    Ok(state
        .hub
        .members()
        .into_iter()
        .filter(|u| u.display_name.to_lowercase() == lower)
        .map(|u| u.id.0)
        .collect())
}
