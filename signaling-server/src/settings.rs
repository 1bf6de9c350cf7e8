//! The group's settings: their defaults, and how a change request is checked and applied
//! (field by field, so that the audit log can say what changed). Stored by `db::settings`,
//! held live by the hub.

use hearth_protocol::MAX_DESCRIPTION_CHARS;
use hearth_protocol::api::UpdateServerSettingsRequest;
use hearth_protocol::model::{AuditChange, Permission, ServerSettings};

use crate::audit::change;
use crate::error::{AppError, AppResult};

/// Largest attachment by default.
pub const DEFAULT_MAX_UPLOAD_BYTES: u64 = 25 * 1024 * 1024;
/// Longest retention that can be set (about 100 years): beyond it, keep everything.
pub const MAX_RETENTION_DAYS: u32 = 36_500;
/// Largest attachment limit that can be set.
pub const MAX_UPLOAD_BYTES_LIMIT: u64 = 4 * 1024 * 1024 * 1024;

/// The settings of a group nobody has configured: `name` from `--server-name`.
pub fn defaults(name: &str) -> ServerSettings {
    ServerSettings {
        name: name.to_string(),
        description: String::new(),
        icon: None,
        retention_days: None,
        member_permissions: Vec::new(),
        max_upload_bytes: DEFAULT_MAX_UPLOAD_BYTES,
        upload_quota_bytes: None,
    }
}

pub fn check_server_name(name: &str) -> AppResult<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
        return Err(AppError::invalid("the server name is 1 to 64 characters"));
    }
    Ok(name.to_string())
}

fn check_description(text: &str) -> AppResult<String> {
    let text = text.trim();
    if text.chars().count() > MAX_DESCRIPTION_CHARS || text.chars().any(|c| c.is_control() && c != '\n') {
        return Err(AppError::invalid(format!(
            "the description is at most {MAX_DESCRIPTION_CHARS} characters"
        )));
    }
    Ok(text.to_string())
}

fn permissions_text(list: &[Permission]) -> String {
    list.iter().map(|p| permission_name(*p)).collect::<Vec<_>>().join(",")
}

pub fn permission_name(p: Permission) -> &'static str {
    match p {
        Permission::ManageChannels => "manage_channels",
        Permission::ManageInvites => "manage_invites",
        Permission::ManageMembers => "manage_members",
        Permission::ManageServer => "manage_server",
    }
}

pub fn parse_permission(s: &str) -> Option<Permission> {
    Permission::ALL.into_iter().find(|p| permission_name(*p) == s)
}

fn opt_text<T: ToString>(v: Option<T>) -> Option<String> {
    v.map(|v| v.to_string())
}

/// Applies a change request to `current`: the new settings and what changed, or a clear
/// error for the first bad field (nothing is applied then).
pub fn apply(
    current: &ServerSettings,
    req: UpdateServerSettingsRequest,
) -> AppResult<(ServerSettings, Vec<AuditChange>)> {
    let mut next = current.clone();
    let mut changes = Vec::new();
    if let Some(name) = req.name {
        next.name = check_server_name(&name)?;
        if next.name != current.name {
            changes.push(change("name", Some(&current.name), Some(&next.name)));
        }
    }
    if let Some(text) = req.description {
        next.description = check_description(&text)?;
        if next.description != current.description {
            changes.push(change("description", Some(&current.description), Some(&next.description)));
        }
    }
    if let Some(days) = req.retention_days {
        if days > MAX_RETENTION_DAYS {
            return Err(AppError::invalid(format!(
                "retention_days is 0 (keep everything) to {MAX_RETENTION_DAYS}"
            )));
        }
        next.retention_days = (days > 0).then_some(days);
        if next.retention_days != current.retention_days {
            changes.push(change(
                "retention_days",
                opt_text(current.retention_days).as_deref(),
                opt_text(next.retention_days).as_deref(),
            ));
        }
    }
    if let Some(mut list) = req.member_permissions {
        // One order, whatever order they came in: the settings compare equal when they are.
        list.sort_by_key(|p| Permission::ALL.iter().position(|q| q == p));
        list.dedup();
        next.member_permissions = list;
        if next.member_permissions != current.member_permissions {
            changes.push(change(
                "member_permissions",
                Some(&permissions_text(&current.member_permissions)),
                Some(&permissions_text(&next.member_permissions)),
            ));
        }
    }
    if let Some(bytes) = req.max_upload_bytes {
        if bytes == 0 || bytes > MAX_UPLOAD_BYTES_LIMIT {
            return Err(AppError::invalid(format!("max_upload_bytes is 1 to {MAX_UPLOAD_BYTES_LIMIT}")));
        }
        next.max_upload_bytes = bytes;
        if next.max_upload_bytes != current.max_upload_bytes {
            changes.push(change(
                "max_upload_bytes",
                Some(&current.max_upload_bytes.to_string()),
                Some(&next.max_upload_bytes.to_string()),
            ));
        }
    }
    if let Some(bytes) = req.upload_quota_bytes {
        next.upload_quota_bytes = (bytes > 0).then_some(bytes);
        if next.upload_quota_bytes != current.upload_quota_bytes {
            changes.push(change(
                "upload_quota_bytes",
                opt_text(current.upload_quota_bytes).as_deref(),
                opt_text(next.upload_quota_bytes).as_deref(),
            ));
        }
    }
    Ok((next, changes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_lists_only_the_fields_that_changed() {
        let current = defaults("Home");
        let req = UpdateServerSettingsRequest {
            name: Some("  Home  ".into()),
            description: Some("Our family".into()),
            retention_days: Some(30),
            member_permissions: Some(vec![
                Permission::ManageInvites,
                Permission::ManageChannels,
                Permission::ManageInvites,
            ]),
            ..Default::default()
        };
        let (next, changes) = apply(&current, req).unwrap();
        assert_eq!(next.name, "Home");
        assert_eq!(next.retention_days, Some(30));
        assert_eq!(next.member_permissions, vec![Permission::ManageChannels, Permission::ManageInvites]);
        let fields: Vec<&str> = changes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(fields, ["description", "retention_days", "member_permissions"]);
        assert_eq!(changes[1].old, None);
        assert_eq!(changes[1].new.as_deref(), Some("30"));
    }

    #[test]
    fn zero_means_keep_everything_and_no_quota() {
        let mut current = defaults("Home");
        current.retention_days = Some(7);
        current.upload_quota_bytes = Some(10);
        let req = UpdateServerSettingsRequest {
            retention_days: Some(0),
            upload_quota_bytes: Some(0),
            ..Default::default()
        };
        let (next, _) = apply(&current, req).unwrap();
        assert_eq!(next.retention_days, None);
        assert_eq!(next.upload_quota_bytes, None);
    }

    #[test]
    fn bad_fields_are_refused() {
        let current = defaults("Home");
        for req in [
            UpdateServerSettingsRequest { name: Some("   ".into()), ..Default::default() },
            UpdateServerSettingsRequest { name: Some("x".repeat(65)), ..Default::default() },
            UpdateServerSettingsRequest {
                description: Some("y".repeat(MAX_DESCRIPTION_CHARS + 1)),
                ..Default::default()
            },
            UpdateServerSettingsRequest {
                retention_days: Some(MAX_RETENTION_DAYS + 1),
                ..Default::default()
            },
            UpdateServerSettingsRequest { max_upload_bytes: Some(0), ..Default::default() },
        ] {
            assert!(apply(&current, req).is_err());
        }
    }

    #[test]
    fn permission_names_round_trip() {
        for p in Permission::ALL {
            assert_eq!(parse_permission(permission_name(p)), Some(p));
        }
    }
}
