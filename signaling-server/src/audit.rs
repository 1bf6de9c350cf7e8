//! Audit entries: what an administrative action records. Handlers build an entry with
//! [`entry`] and store it with `db::audit::insert` in the same transaction as the change.

use hearth_protocol::model::{AuditAction, AuditChange, AuditEntry};
use hearth_protocol::{AuditEntryId, ChannelId, UserId};

use crate::state::AppState;

/// A new entry by `actor`, now; targets, changes and reason are filled in by the caller.
pub fn entry(state: &AppState, actor: UserId, action: AuditAction) -> AuditEntry {
    AuditEntry {
        id: AuditEntryId(state.ids.next()),
        actor_id: actor,
        action,
        target_user_id: None,
        target_channel_id: None,
        target_invite: None,
        changes: Vec::new(),
        reason: None,
        created_at: crate::db::now_ms(),
    }
}

/// An entry about a member.
pub fn on_user(state: &AppState, actor: UserId, action: AuditAction, target: UserId) -> AuditEntry {
    AuditEntry { target_user_id: Some(target), ..entry(state, actor, action) }
}

/// An entry about a channel.
pub fn on_channel(state: &AppState, actor: UserId, action: AuditAction, target: ChannelId) -> AuditEntry {
    AuditEntry { target_channel_id: Some(target), ..entry(state, actor, action) }
}

/// One changed field.
pub fn change(field: &str, old: Option<&str>, new: Option<&str>) -> AuditChange {
    AuditChange { field: field.to_string(), old: old.map(str::to_string), new: new.map(str::to_string) }
}
