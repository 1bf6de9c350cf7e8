//! The group's settings, stored as `meta` rows under `server.*` keys (absent rows keep their
//! defaults, so a setting nobody changed follows the server's configuration).

use hearth_protocol::model::ServerSettings;
use sqlx::AnyConnection;

use super::Db;
use crate::settings::{parse_permission, permission_name};

const NAME: &str = "server.name";
const DESCRIPTION: &str = "server.description";
const ICON: &str = "server.icon";
const RETENTION_DAYS: &str = "server.retention_days";
const MEMBER_PERMISSIONS: &str = "server.member_permissions";
const MAX_UPLOAD_BYTES: &str = "server.max_upload_bytes";
const UPLOAD_QUOTA_BYTES: &str = "server.upload_quota_bytes";

async fn put(conn: &mut AnyConnection, key: &str, value: Option<String>) -> sqlx::Result<()> {
    match value {
        Some(value) => {
            sqlx::query(
                "INSERT INTO meta (key, value) VALUES ($1, $2) \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            )
            .bind(key.to_string())
            .bind(value)
            .execute(conn)
            .await?;
        }
        None => {
            sqlx::query("DELETE FROM meta WHERE key = $1").bind(key.to_string()).execute(conn).await?;
        }
    }
    Ok(())
}

/// Stores the settings that differ between `old` and `new` (so a setting nobody changed keeps
/// following the configuration); call it inside the transaction of the change.
pub async fn store(conn: &mut AnyConnection, old: &ServerSettings, new: &ServerSettings) -> sqlx::Result<()> {
    if old.name != new.name {
        put(conn, NAME, Some(new.name.clone())).await?;
    }
    if old.description != new.description {
        put(conn, DESCRIPTION, Some(new.description.clone())).await?;
    }
    if old.icon != new.icon {
        put(conn, ICON, new.icon.clone()).await?;
    }
    if old.retention_days != new.retention_days {
        put(conn, RETENTION_DAYS, Some(new.retention_days.unwrap_or(0).to_string())).await?;
    }
    if old.member_permissions != new.member_permissions {
        let names: Vec<&str> = new.member_permissions.iter().map(|p| permission_name(*p)).collect();
        put(conn, MEMBER_PERMISSIONS, Some(names.join(","))).await?;
    }
    if old.max_upload_bytes != new.max_upload_bytes {
        put(conn, MAX_UPLOAD_BYTES, Some(new.max_upload_bytes.to_string())).await?;
    }
    if old.upload_quota_bytes != new.upload_quota_bytes {
        put(conn, UPLOAD_QUOTA_BYTES, Some(new.upload_quota_bytes.unwrap_or(0).to_string())).await?;
    }
    Ok(())
}

impl Db {
    /// The stored settings over `defaults`. A value that cannot be read keeps its default
    /// (and is logged): a damaged row must not stop the server.
    pub async fn settings(&self, defaults: ServerSettings) -> sqlx::Result<ServerSettings> {
        let mut s = defaults;
        let number = |key: &str, v: &str| -> Option<u64> {
            let n = v.parse().ok();
            if n.is_none() {
                tracing::warn!(key, "ignoring an unreadable setting");
            }
            n
        };
        if let Some(v) = self.get_meta(NAME).await? {
            s.name = v;
        }
        if let Some(v) = self.get_meta(DESCRIPTION).await? {
            s.description = v;
        }
        if let Some(v) = self.get_meta(ICON).await? {
            s.icon = Some(v);
        }
        if let Some(n) = self.get_meta(RETENTION_DAYS).await?.and_then(|v| number(RETENTION_DAYS, &v)) {
            s.retention_days = u32::try_from(n).ok().filter(|d| *d > 0);
        }
        if let Some(v) = self.get_meta(MEMBER_PERMISSIONS).await? {
            s.member_permissions =
                v.split(',').filter(|p| !p.is_empty()).filter_map(parse_permission).collect();
        }
        if let Some(n) = self.get_meta(MAX_UPLOAD_BYTES).await?.and_then(|v| number(MAX_UPLOAD_BYTES, &v)) {
            s.max_upload_bytes = n;
        }
        if let Some(n) = self.get_meta(UPLOAD_QUOTA_BYTES).await?.and_then(|v| number(UPLOAD_QUOTA_BYTES, &v))
        {
            s.upload_quota_bytes = (n > 0).then_some(n);
        }
        Ok(s)
    }
}
