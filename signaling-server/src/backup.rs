//! Backups of a group, taken online, and their restore.
//!
//! A backup is a directory: `manifest.json` (what and when), the database (`hearth.db`, a
//! consistent SQLite snapshot made with `VACUUM INTO` while the server keeps writing, or
//! `hearth.pgdump`, `pg_dump`'s custom format), `secrets.json` (the token signing key and TURN
//! secret: without them every login ends and an external coturn stops accepting credentials)
//! `avatars/`, `icons/` (the server icon) and `attachments/` (the attachment store: blobs named
//! by their SHA-256 and their thumbnails; uploads in progress are not kept), all taken from the
//! files directory (`--files-dir`, the data directory unless set apart). The database is copied first and the files
//! after: an avatar or attachment file is written before the row that names it, so every file
//! the snapshot references is already there (one freed between the two steps can be missing).
//!
//! Restore puts a backup back into a data directory while no server runs on it (the data
//! directory lock, [`crate::datadir`]); whatever it replaces is moved aside, never deleted.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use crate::db::{Backend, Db};

pub const MANIFEST: &str = "manifest.json";
const SQLITE_FILE: &str = "hearth.db";
const PG_FILE: &str = "hearth.pgdump";
const SECRETS: &str = "secrets.json";
const AVATARS: &str = "avatars";
const ICONS: &str = "icons";
const ATTACHMENTS: &str = "attachments";

/// Where a group's state lives: the data directory (database file, secrets) and the files
/// directory (attachments, avatars, icons), the same one unless `--files-dir` sets it apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dirs {
    pub data: PathBuf,
    pub files: PathBuf,
}

impl Dirs {
    /// Both in one directory.
    pub fn one(dir: &Path) -> Dirs {
        Dirs { data: dir.to_path_buf(), files: dir.to_path_buf() }
    }
}
const FORMAT: u32 = 1;

/// `manifest.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    /// The `hearth-server` version that took it.
    pub server_version: String,
    /// The database's schema version at the time.
    pub schema_version: i64,
    pub backend: String,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
    /// File name of the database inside the backup.
    pub database: String,
}

/// What a backup holds, for the operator.
#[derive(Debug, Clone)]
pub struct Summary {
    pub dir: PathBuf,
    pub manifest: Manifest,
    pub avatars: usize,
    /// Attachment files (blobs and thumbnails).
    pub attachments: usize,
    pub bytes: u64,
}

/// Takes a backup of the group in `dirs` / `db` into the new directory `dest`.
pub async fn create(db: &Db, dirs: &Dirs, dest: &Path) -> anyhow::Result<Summary> {
    if dest.exists() {
        bail!("{} already exists; give a new directory for the backup", dest.display());
    }
    std::fs::create_dir_all(dest).with_context(|| format!("creating {}", dest.display()))?;
    let result = fill(db, dirs, dest).await;
    if result.is_err() {
        // A half-written backup must not look like a good one later.
        let _cleanup = std::fs::remove_dir_all(dest);
    }
    result
}

async fn fill(db: &Db, dirs: &Dirs, dest: &Path) -> anyhow::Result<Summary> {
    let schema_version = db.applied_migrations().await?.into_iter().max().unwrap_or(0);
    let database = match db.backend {
        Backend::Sqlite => {
            let file = dest.join(SQLITE_FILE);
            // VACUUM INTO reads one consistent snapshot (a read transaction; in WAL mode the
            // server's writers carry on) and writes a compact copy. It takes no bound parameter,
            // hence the quoted literal.
            let target = file.to_str().context("the backup path is not UTF-8")?.replace('\'', "''");
            sqlx::query(sqlx::AssertSqlSafe(format!("VACUUM INTO '{target}'")))
                .execute(&db.pool)
                .await
                .context("copying the SQLite database (VACUUM INTO)")?;
            SQLITE_FILE
        }
        Backend::Postgres => {
            pg_tool(
                "pg_dump",
                &[
                    "--format=custom",
                    "--no-owner",
                    "--file",
                    path_str(&dest.join(PG_FILE))?,
                    "--dbname",
                    &db.url,
                ],
            )
            .await?;
            PG_FILE
        }
    };
    let manifest = Manifest {
        format: FORMAT,
        server_version: env!("CARGO_PKG_VERSION").to_string(),
        schema_version,
        backend: backend_name(db.backend).to_string(),
        created_at: crate::db::now_ms(),
        database: database.to_string(),
    };
    let secrets = dirs.data.join(SECRETS);
    if secrets.exists() {
        copy_private(&secrets, &dest.join(SECRETS))?;
    }
    let avatars = link_or_copy_dir(&dirs.files.join(AVATARS), &dest.join(AVATARS))?;
    link_or_copy_dir(&dirs.files.join(ICONS), &dest.join(ICONS))?;
    let attachments = link_or_copy_dir(&dirs.files.join(ATTACHMENTS), &dest.join(ATTACHMENTS))?;
    // The manifest last: a directory with one is a complete backup.
    crate::secrets::write_private(&dest.join(MANIFEST), serde_json::to_string_pretty(&manifest)?.as_bytes())?;
    Ok(Summary { dir: dest.to_path_buf(), bytes: dir_size(dest), manifest, avatars, attachments })
}

/// The automatic backup before migrations: `DATA_DIR/backups/before-schema-TO-YYYYmmdd-HHMMSS`.
pub async fn before_migration(db: &Db, dirs: &Dirs, from: i64, to: i64) -> anyhow::Result<PathBuf> {
    let dir =
        dirs.data.join("backups").join(format!("before-schema-{to}-{}", timestamp(crate::db::now_ms())));
    let summary = create(db, dirs, &dir).await?;
    tracing::debug!(from, to, bytes = summary.bytes, "pre-migration backup");
    Ok(dir)
}

/// Reads and checks a backup's manifest.
pub fn read_manifest(dir: &Path) -> anyhow::Result<Manifest> {
    let path = dir.join(MANIFEST);
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!("{} is not a complete Hearth backup (no readable {MANIFEST})", dir.display())
    })?;
    let manifest: Manifest =
        serde_json::from_str(&text).with_context(|| format!("{} is not a valid manifest", path.display()))?;
    if manifest.format != FORMAT {
        bail!("{}: backup format {} is not one this hearth-server reads", dir.display(), manifest.format);
    }
    Ok(manifest)
}

/// Restores the backup `from` into `dirs` (SQLite) or into the database at `database_url`
/// (PostgreSQL) and `dirs`. The caller holds the data directory lock. Returns where the
/// replaced files were moved (the replaced files of a separate files directory go to a
/// directory of the same name inside it).
pub async fn restore(from: &Path, dirs: &Dirs, database_url: &str) -> anyhow::Result<PathBuf> {
    let data_dir = dirs.data.as_path();
    let manifest = read_manifest(from)?;
    let backend = if database_url.starts_with("sqlite:") { Backend::Sqlite } else { Backend::Postgres };
    if manifest.backend != backend_name(backend) {
        bail!(
            "the backup holds a {} database but this server is configured for {}; restore it with \
             the database URL it came from",
            manifest.backend,
            backend_name(backend)
        );
    }
    let known = match backend {
        Backend::Sqlite => crate::db::SQLITE_MIGRATIONS,
        Backend::Postgres => crate::db::POSTGRES_MIGRATIONS,
    }
    .last()
    .map_or(0, |m| m.0);
    if manifest.schema_version > known {
        return Err(crate::db::NewerDatabase { found: manifest.schema_version, known }.into());
    }
    let source_db = from.join(&manifest.database);
    if !source_db.exists() {
        bail!("{} is missing from the backup", source_db.display());
    }
    std::fs::create_dir_all(data_dir)?;
    let aside_name = format!("before-restore-{}", timestamp(crate::db::now_ms()));
    let aside = data_dir.join(&aside_name);
    std::fs::create_dir_all(&aside)?;
    let owner = owner_of(data_dir);

    match backend {
        Backend::Sqlite => {
            let target = crate::db::sqlite_path(database_url)
                .context("the database URL names no SQLite file")?
                .to_path_buf();
            // The old database and its WAL go aside together: a WAL left beside the restored
            // file would be replayed into it.
            for suffix in ["", "-wal", "-shm"] {
                let old = PathBuf::from(format!("{}{suffix}", target.display()));
                if old.exists() {
                    let name = old.file_name().context("database file name")?;
                    std::fs::rename(&old, aside.join(name))
                        .with_context(|| format!("moving {} aside", old.display()))?;
                }
            }
            let tmp = target.with_extension("restoring");
            std::fs::copy(&source_db, &tmp).with_context(|| format!("copying {}", source_db.display()))?;
            std::fs::File::open(&tmp)?.sync_all()?;
            std::fs::rename(&tmp, &target)?;
            chown_like(&target, owner)?;
        }
        Backend::Postgres => {
            pg_tool(
                "pg_restore",
                &[
                    "--clean",
                    "--if-exists",
                    "--no-owner",
                    "--single-transaction",
                    "--dbname",
                    database_url,
                    path_str(&source_db)?,
                ],
            )
            .await?;
        }
    }
    if from.join(SECRETS).exists() {
        let secrets = data_dir.join(SECRETS);
        if secrets.exists() {
            std::fs::rename(&secrets, aside.join(SECRETS))?;
        }
        copy_private(&from.join(SECRETS), &secrets)?;
        chown_like(&secrets, owner)?;
    }
    let files_aside = dirs.files.join(&aside_name);
    for dir in [AVATARS, ICONS, ATTACHMENTS] {
        let files = dirs.files.join(dir);
        if files.exists() {
            std::fs::create_dir_all(&files_aside)?;
            std::fs::rename(&files, files_aside.join(dir))?;
        }
        link_or_copy_dir(&from.join(dir), &files)?;
        chown_tree(&files, owner)?;
    }
    if files_aside != aside && files_aside.exists() {
        chown_tree(&files_aside, owner)?;
    }
    // A setup token from before no longer matches the restored group; the server makes a new
    // one at start if the restored group has no members.
    let token = data_dir.join(crate::setup::FILE);
    if token.exists() {
        std::fs::rename(&token, aside.join(crate::setup::FILE))?;
    }
    chown_tree(&aside, owner)?;
    Ok(aside)
}

fn backend_name(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    }
}

fn path_str(path: &Path) -> anyhow::Result<&str> {
    path.to_str().with_context(|| format!("{} is not UTF-8", path.display()))
}

/// Runs `pg_dump` or `pg_restore`, explaining what to install when it is missing.
async fn pg_tool(tool: &str, args: &[&str]) -> anyhow::Result<()> {
    let output = match tokio::process::Command::new(tool).args(args).output().await {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "{tool} was not found: install PostgreSQL's client tools (Debian: apt install \
             postgresql-client, of the server's major version or newer) and try again"
        ),
        Err(e) => return Err(anyhow::Error::new(e).context(format!("starting {tool}"))),
    };
    if !output.status.success() {
        bail!("{tool} failed ({}): {}", output.status, String::from_utf8_lossy(&output.stderr).trim());
    }
    Ok(())
}

fn copy_private(from: &Path, to: &Path) -> anyhow::Result<()> {
    let bytes = std::fs::read(from).with_context(|| format!("reading {}", from.display()))?;
    crate::secrets::write_private(to, &bytes)
}

/// Copies a directory of immutable files (avatars are named by their content), hard-linking
/// where source and destination share a file system. Returns how many files.
fn link_or_copy_dir(from: &Path, to: &Path) -> anyhow::Result<usize> {
    let entries = match std::fs::read_dir(from) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(anyhow::Error::new(e).context(format!("reading {}", from.display()))),
    };
    std::fs::create_dir_all(to)?;
    let mut count = 0;
    for entry in entries {
        let entry = entry?;
        if !entry.file_type()?.is_file() {
            continue;
        }
        let target = to.join(entry.file_name());
        if std::fs::hard_link(entry.path(), &target).is_err() {
            std::fs::copy(entry.path(), &target)
                .with_context(|| format!("copying {}", entry.path().display()))?;
        }
        count += 1;
    }
    Ok(count)
}

fn dir_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_size(&e.path()),
            _ => e.metadata().map(|m| m.len()).unwrap_or(0),
        })
        .sum()
}

/// The owner of the data directory: files restored by root (e.g. `sudo hearth-server
/// restore` for a systemd service) must stay readable by the service's user.
#[cfg(unix)]
fn owner_of(path: &Path) -> Option<(u32, u32)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.uid(), m.gid()))
}
#[cfg(not(unix))]
fn owner_of(_: &Path) -> Option<(u32, u32)> {
    None
}

fn chown_like(path: &Path, owner: Option<(u32, u32)>) -> anyhow::Result<()> {
    #[cfg(unix)]
    if let Some((uid, gid)) = owner {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::symlink_metadata(path)?;
        if (meta.uid(), meta.gid()) != (uid, gid) {
            std::os::unix::fs::lchown(path, Some(uid), Some(gid))
                .with_context(|| format!("giving {} to the data directory's owner", path.display()))?;
        }
    }
    Ok(())
}

fn chown_tree(path: &Path, owner: Option<(u32, u32)>) -> anyhow::Result<()> {
    if !path.exists() {
        return Ok(());
    }
    chown_like(path, owner)?;
    if path.is_dir() {
        for entry in std::fs::read_dir(path)? {
            chown_tree(&entry?.path(), owner)?;
        }
    }
    Ok(())
}

/// `YYYYmmdd-HHMMSS` (UTC) for file names.
pub fn timestamp(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}{month:02}{day:02}-{:02}{:02}{:02}", rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::timestamp;

    #[test]
    fn timestamps_are_utc_calendar_times() {
        assert_eq!(timestamp(0), "19700101-000000");
        assert_eq!(timestamp(951_782_400_000), "20000229-000000");
        assert_eq!(timestamp(1_798_761_599_000), "20261231-235959");
    }
}
