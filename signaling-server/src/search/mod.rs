//! Full-text search over the messages a member can read. [`text`] turns text into tokens and
//! terms (the same for both databases), [`query`] reads the search box's filters. The index
//! itself lives in the database (`db::search`: FTS5 on SQLite, a tsvector with a GIN index on
//! PostgreSQL) and is written in the same transaction as the message.

pub mod query;
pub mod text;

/// Matches considered per search: the newest this many that the member may read, ranked.
/// Also the most `total` counts.
pub const MAX_CANDIDATES: usize = 1000;
