//! `server-footprint`: what a self-hosted server costs: the size of the `hearth-server` binary,
//! its resident memory idle right after start (no account, no client: a fresh server waiting
//! for its owner, SQLite), and with N authenticated clients connected and idle (default 100,
//! after they registered, so the password hashing has run). Each reading also splits VmRSS
//! into anonymous memory (heap, stacks) and file-backed pages (the binary's own code).
//!
//! `run` is what `bench/run.sh server-footprint` calls; `bench/run.sh footprint` (with the
//! installers' sizes) calls it for its server rows.

use std::time::Duration;

use anyhow::{Context, Result};

use crate::conn_memory::hold_idle;
use crate::gateway;
use crate::link::Link;
use crate::process::rss_bytes;
use crate::report::{Metric, fmt_opt};
use crate::server::{HearthServer, Paths};

const BENCH: &str = "server-footprint";
const MIB: f64 = 1024.0 * 1024.0;

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Authenticated idle clients for the loaded reading.
    #[arg(long, env = "SERVER_FOOTPRINT_CLIENTS", default_value_t = 100)]
    pub clients: usize,
    /// Accounts the clients are spread over.
    #[arg(long, env = "SERVER_FOOTPRINT_USERS", default_value_t = 10)]
    pub users: usize,
    /// Seconds to let the server settle before each reading.
    #[arg(long, env = "SERVER_FOOTPRINT_SETTLE_SECS", default_value_t = 5)]
    pub settle_secs: u64,
}

/// VmRSS and its parts, from /proc/PID/status.
#[derive(Debug, Clone, Copy)]
pub struct Resident {
    pub rss: u64,
    pub anon: u64,
    pub file: u64,
}

pub fn resident(pid: u32) -> Result<Resident> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
            * 1024
    };
    Ok(Resident {
        rss: rss_bytes(pid)?,
        anon: field("RssAnon:"),
        file: field("RssFile:") + field("RssShmem:"),
    })
}

fn show(label: &str, r: &Resident) {
    println!(
        "  {label:<22} VmRSS {:.1} MiB (anonymous {:.1}, file-backed {:.1})",
        r.rss as f64 / MIB,
        r.anon as f64 / MIB,
        r.file as f64 / MIB
    );
}

pub async fn run(paths: &Paths, args: &Args) -> Result<Vec<Metric>> {
    println!("== server-footprint: hearth-server binary and resident memory (as built for shipping, SQLite)");
    let binary = std::fs::metadata(&paths.server_bin)
        .with_context(|| format!("{}", paths.server_bin.display()))?
        .len() as f64
        / MIB;
    println!("  binary                 {binary:.1} MiB ({})", paths.server_bin.display());

    let server = HearthServer::start(paths, "server-footprint", &[]).await?;
    tokio::time::sleep(Duration::from_secs(args.settle_secs)).await;
    let idle = resident(server.pid())?;
    show("idle, no clients", &idle);

    let group = server.bootstrap(args.users.saturating_sub(1), "idle").await?;
    let url = server.gateway_url();
    let channel = group.channel;
    let tokens: Vec<String> = group.accounts().iter().map(|a| a.access_token.clone()).collect();
    let holder = hold_idle(args.clients, 32, |i| {
        let url = url.clone();
        let token = tokens[i % tokens.len()].clone();
        async move { Ok(Link::hearth(gateway::identify(&url, &token).await?, channel, true)) }
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(args.settle_secs)).await;
    let loaded = resident(server.pid())?;
    show(&format!("{} clients", args.clients), &loaded);
    holder.release().await?;
    server.stop().await?;

    let idle_mb = idle.rss as f64 / MIB;
    println!("  target: idle <= 15 MiB (hearth {})", fmt_opt(Some(idle_mb), 1));
    Ok(vec![
        Metric::new(BENCH, "server_binary_mb", Some(binary), "MiB"),
        Metric::new(BENCH, "server_idle_rss_mb", Some(idle_mb), "MiB").target("<=15"),
        Metric::new(BENCH, format!("server_rss_{}_mb", args.clients), Some(loaded.rss as f64 / MIB), "MiB"),
    ])
}
