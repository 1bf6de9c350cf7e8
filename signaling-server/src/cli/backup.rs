//! `hearth-server backup DIR` and `hearth-server restore DIR` (see [`crate::backup`]).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Args;

use crate::config::Config;
use crate::datadir::{DataDirLock, InUse};
use crate::db::Db;

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// A new directory to write the backup into, e.g. /var/backups/hearth/2026-12-05.
    pub dest: PathBuf,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// A directory written by `hearth-server backup` (or an automatic one in DATA_DIR/backups).
    pub from: PathBuf,
}

pub async fn backup(args: BackupArgs, config: &Config) -> anyhow::Result<ExitCode> {
    if let Some(path) = crate::db::sqlite_path(&config.database_url)
        && !path.exists()
    {
        bail!("there is no database at {} (is --data-dir right?)", path.display());
    }
    // No migrations: a backup takes the database as it is, whichever version wrote it.
    let db = Db::connect_only(&config.database_url).await?;
    let summary = crate::backup::create(&db, &config.dirs(), &super::absolute(args.dest)).await;
    db.close().await;
    let summary = summary?;
    println!(
        "backup written to {} ({} database at schema version {}, {} avatar(s), {} attachment file(s), {} KiB)",
        summary.dir.display(),
        summary.manifest.backend,
        summary.manifest.schema_version,
        summary.avatars,
        summary.attachments,
        summary.bytes.div_ceil(1024)
    );
    Ok(ExitCode::SUCCESS)
}

pub async fn restore(args: RestoreArgs, config: &Config) -> anyhow::Result<ExitCode> {
    let from = super::absolute(args.from);
    let _lock = DataDirLock::acquire(&config.data_dir).map_err(|e| {
        if e.is::<InUse>() {
            anyhow::anyhow!(
                "a server is running on {}: stop it first (systemctl stop hearth-server, or docker \
                 compose stop hearth), then restore",
                config.data_dir.display()
            )
        } else {
            e
        }
    })?;
    let aside = crate::backup::restore(&from, &config.dirs(), &config.database_url)
        .await
        .with_context(|| format!("restoring {}", from.display()))?;
    let manifest = crate::backup::read_manifest(&from)?;
    println!(
        "restored the backup of {} UTC (schema version {}); what it replaced is in {}",
        crate::backup::timestamp(manifest.created_at),
        manifest.schema_version,
        aside.display()
    );
    Ok(ExitCode::SUCCESS)
}
