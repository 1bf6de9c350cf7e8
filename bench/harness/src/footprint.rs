//! `footprint`: what Hearth costs to ship and to host, in one report: the Windows installer and
//! the .deb as scripts/package.sh builds them (profile `release-ship`), and the server's binary
//! and resident memory idle and with 100 clients (the `server-footprint` bench, run as is).
//! Targets: each installer <= 15 MiB, the idle server <= 15 MiB.

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::report::Metric;
use crate::server::{Paths, workspace_root};
use crate::server_footprint;

const BENCH: &str = "footprint";
const MIB: f64 = 1024.0 * 1024.0;

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// The Windows installer (default: the one scripts/package.sh builds).
    #[arg(long, env = "FOOTPRINT_WINDOWS_INSTALLER")]
    pub windows_installer: Option<PathBuf>,
    /// The .deb (default: the one scripts/package.sh builds).
    #[arg(long, env = "FOOTPRINT_DEB")]
    pub deb: Option<PathBuf>,
    #[command(flatten)]
    pub server: server_footprint::Args,
}

/// The single file in `dir` whose name ends with `suffix` (the version is in the name).
fn built(dir: &Path, suffix: &str) -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().ends_with(suffix)))
        .collect();
    found.sort();
    found.pop()
}

fn size(label: &str, metric: &str, path: Option<PathBuf>) -> Metric {
    let mb = match &path {
        Some(path) => match std::fs::metadata(path) {
            Ok(meta) => {
                let mb = meta.len() as f64 / MIB;
                println!("  {label:<22} {mb:.1} MiB ({})", path.display());
                Some(mb)
            }
            Err(e) => {
                println!("  {label:<22} not measured: {}: {e}", path.display());
                None
            }
        },
        None => {
            println!("  {label:<22} not measured: not built (scripts/package.sh)");
            None
        }
    };
    Metric::new(BENCH, metric, mb, "MiB").target("<=15")
}

pub async fn run(paths: &Paths, args: &Args) -> Result<Vec<Metric>> {
    println!("== footprint: installers (profile release-ship) and the server");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    let windows = args
        .windows_installer
        .clone()
        .or_else(|| built(&target.join("x86_64-pc-windows-gnu/release-ship/installer"), "_x64-setup.exe"));
    let deb = args.deb.clone().or_else(|| built(&target.join("release-ship/bundle/deb"), "_amd64.deb"));
    let mut metrics =
        vec![size("Windows installer", "windows_installer_mb", windows), size(".deb", "deb_mb", deb)];
    for mut metric in server_footprint::run(paths, &args.server).await? {
        metric.bench = BENCH;
        metrics.push(metric);
    }
    Ok(metrics)
}
