//! Retention: when the group keeps messages for N days, older ones are deleted with their
//! reactions, mentions and search entries, in short batches so that the message writer never
//! waits long, and everyone is told (`MessagesPurged`) so that caches drop them too. The task
//! runs at start, every hour, and when the setting changes; the cutoff comes from the time it
//! is given, so tests need no sleeping.

use std::time::Duration;

use hearth_protocol::MessageId;
use hearth_protocol::gateway::Event;
use hearth_protocol::ids::compose;

use crate::db::Db;
use crate::state::AppState;

/// Messages deleted per transaction.
pub const BATCH: usize = 500;
/// How often retention runs when nothing wakes it.
const INTERVAL: Duration = Duration::from_secs(3600);

/// The id below which messages are older than `days` at `now_ms`.
pub fn cutoff(days: u32, now_ms: i64) -> MessageId {
    MessageId(compose(now_ms - i64::from(days) * 86_400_000, 0))
}

/// Deletes every message below `before`, `batch` at a time; returns how many.
pub async fn purge(db: &Db, before: MessageId, batch: usize) -> sqlx::Result<usize> {
    let mut total = 0;
    loop {
        let n = db.purge_batch(before, batch).await?;
        if n == 0 {
            return Ok(total);
        }
        total += n;
        // Let the writer and readers in between batches.
        tokio::task::yield_now().await;
    }
}

/// One pass at `now_ms` with the group's current setting: purges, updates the hub and tells
/// everyone. Returns how many messages were deleted.
pub async fn run_once(state: &AppState, now_ms: i64) -> sqlx::Result<usize> {
    let Some(days) = state.server_settings().retention_days else { return Ok(0) };
    let before = cutoff(days, now_ms);
    let deleted = purge(&state.db, before, BATCH).await?;
    if deleted > 0 {
        state.hub.purged(before);
        state.hub.dispatch_all(&Event::MessagesPurged { before });
        tracing::info!(deleted, days, "retention deleted old messages");
        // Their attachments' rows went with them; the files no other message names go now.
        state.attachments.collect(&state.db, None).await?;
    }
    Ok(deleted)
}

/// The retention task: until shutdown.
pub async fn run(state: AppState) {
    loop {
        tokio::select! {
            result = run_once(&state, crate::db::now_ms()) => {
                if let Err(e) = result {
                    tracing::error!(error = %e, "retention failed; trying again later");
                }
            }
            // A batch cut short rolls back; the next start carries on.
            _ = state.shutdown.cancelled() => return,
        }
        tokio::select! {
            _ = tokio::time::sleep(INTERVAL) => {}
            _ = state.retention_wake.notified() => {}
            _ = state.shutdown.cancelled() => return,
        }
    }
}
