//! `hearth-bench`: the load generators and measurements behind `bench/run.sh`.
//!
//! Each bench starts a fresh `hearth-server` (and its peer, when it has one) on loopback, drives
//! it from this process, reads the server's CPU and memory from `/proc`, prints a human summary
//! and ends with one JSON line per metric (see [`report`]).
//!
//! - [`fanout`]: channel fan-out to N clients, against a Socket.IO 4 room broadcast.
//! - [`conn_memory`]: resident memory per idle authenticated connection, against Socket.IO.
//! - [`persist`]: send → durable → ack throughput and latency, against a raw SQLite writer.
//! - [`login_storm`]: login rate against a raw argon2id loop, and gateway latency meanwhile.
//! - [`turn_relay`]: packets relayed by the embedded TURN server under 1% loss, against coturn.
//! - [`desktop_footprint`]: the desktop app's cold start, idle memory and long-channel render,
//!   against a Tauri 2 hello world ([`webdriver`] drives both under Xvfb).
//! - [`search`]: full-text search through the HTTP API on a million messages, against the
//!   same queries straight against the database's index, on SQLite and PostgreSQL.
//! - [`voice_latency`]: mouth-to-ear latency of a call over loopback, against raw UDP with the
//!   same voice pipeline.
//! - [`transfer`]: a 1 GiB direct transfer between two engines, against node-datachannel, raw
//!   TCP, and itself at 20 ms RTT.
//! - [`attachments`]: a 100 MB upload and download through the attachment API, against a plain
//!   axum file copy; and the thumbnail time of a 24-megapixel JPEG, against the image crate.
//!
//! Shared parts: [`server`] starts/stops `hearth-server` and bootstraps a group, [`api`] and
//! [`gateway`] speak Hearth's HTTP and WebSocket, [`socketio`] runs and speaks to the peer,
//! [`link`] puts either behind one client interface, [`process`] reads `/proc`, [`stats`]
//! does percentiles.

mod api;
mod attachments;
mod conn_memory;
mod delay;
mod desktop_footprint;
mod fanout;
mod floor;
mod footprint;
mod gateway;
mod link;
mod login_storm;
mod persist;
mod process;
mod report;
mod scale_out;
mod search;
mod server;
mod server_footprint;
mod socketio;
mod stats;
mod transfer;
mod turn_relay;
mod voice_latency;
mod webdriver;

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use crate::server::Paths;

#[derive(Debug, Parser)]
#[command(name = "hearth-bench", about = "Hearth benchmarks; run them through bench/run.sh")]
struct Cli {
    /// The server binary under test.
    #[arg(long, env = "HEARTH_SERVER_BIN")]
    server_bin: Option<PathBuf>,
    /// Where server logs go (kept after the run).
    #[arg(long, env = "HEARTH_BENCH_OUT")]
    out_dir: Option<PathBuf>,
    /// The node binary for the Socket.IO peer.
    #[arg(long, env = "HEARTH_BENCH_NODE", default_value = "node")]
    node: PathBuf,
    #[command(subcommand)]
    bench: Bench,
}

#[derive(Debug, Subcommand)]
enum Bench {
    /// Channel fan-out to N clients vs Socket.IO 4.
    Fanout(fanout::Args),
    /// Server memory per idle authenticated connection vs Socket.IO 4.
    ConnMemory(conn_memory::Args),
    /// Send → durable → ack through the gateway vs a raw SQLite writer.
    Persist(persist::Args),
    /// Login rate vs raw argon2id, and gateway heartbeat latency during the storm.
    LoginStorm(login_storm::Args),
    /// Packets relayed by the embedded TURN server under 1% loss vs coturn.
    TurnRelay(turn_relay::Args),
    /// Desktop app cold start, idle memory and 10k-message render vs a Tauri hello world.
    DesktopFootprint(desktop_footprint::Args),
    /// Mouth-to-ear latency of a voice call over loopback vs raw UDP with the same pipeline.
    VoiceLatency(voice_latency::Args),
    /// hearth-server's binary size and resident memory, idle and with clients.
    ServerFootprint(server_footprint::Args),
    /// The installers' sizes, and the server's binary and memory (server-footprint).
    Footprint(footprint::Args),
    /// Search latency on a million messages vs the database's full-text index alone.
    Search(search::Args),
    /// Deliveries per second with one and two server processes on one PostgreSQL, and the
    /// cross-process delivery latency.
    ScaleOut(scale_out::Args),
    /// The fan-out floor's broadcaster process (started by `fanout`, not by hand).
    #[command(hide = true)]
    FloorServer(floor::ServeArgs),
    /// A 1 GiB direct transfer vs node-datachannel and raw TCP; and at 20 ms RTT.
    Transfer(transfer::Args),
    /// A 100 MB upload and download vs a plain axum file copy; a 24 MP JPEG's thumbnail time.
    Attachments(attachments::Args),
    /// The attachments bench's peer: a plain axum file server (started by `attachments`).
    #[command(hide = true)]
    AttachPeer(attachments::PeerArgs),
    /// One end of a transfer (started by `transfer`).
    #[command(hide = true)]
    TransferEnd(transfer::EndArgs),
    /// Holds every UDP packet of this network namespace N ms (started by `transfer`).
    #[command(hide = true)]
    DelayUdp(delay::Args),
}

fn main() -> std::process::ExitCode {
    // In a whole-workspace build the client engine's reqwest features (rustls with no provider
    // chosen) apply to the harness's reqwest too; pick one. Err means one is already set.
    let _ = rustls::crypto::ring::default_provider().install_default();
    match try_main() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            // `{:#}` gives the context chain on one line; a backtrace would bury it.
            eprintln!("hearth-bench: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn try_main() -> Result<()> {
    let cli = Cli::parse();
    stats::start_clock();
    let limit = process::raise_nofile_limit().context("raising the open-file limit")?;
    if limit < 12_000 {
        eprintln!("warning: open-file limit is {limit}; the larger benches need ~2 per connection");
    }
    let root = server::workspace_root();
    let paths = Paths {
        server_bin: cli.server_bin.clone().unwrap_or_else(|| root.join("target/release/hearth-server")),
        out_dir: cli.out_dir.clone().unwrap_or_else(|| root.join("bench/out")),
        node: cli.node.clone(),
        socketio_dir: root.join("bench/peers/socketio"),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    if let Bench::DelayUdp(args) = &cli.bench {
        return delay::serve(args);
    }
    if let Bench::AttachPeer(args) = &cli.bench {
        return runtime.block_on(attachments::serve_peer(args));
    }
    if let Bench::FloorServer(args) = &cli.bench {
        return runtime.block_on(floor::serve(args));
    }
    let metrics = runtime.block_on(async {
        tokio::select! {
            result = run(&paths, &cli.bench) => result,
            // Returning drops every server handle, which kills the servers.
            () = interrupted() => Err(anyhow::anyhow!("interrupted")),
        }
    })?;
    report::print_metrics(&metrics)
}

async fn run(paths: &Paths, bench: &Bench) -> Result<Vec<report::Metric>> {
    match bench {
        Bench::Fanout(args) => fanout::run(paths, args).await,
        Bench::ConnMemory(args) => conn_memory::run(paths, args).await,
        Bench::Persist(args) => persist::run(paths, args).await,
        Bench::LoginStorm(args) => login_storm::run(paths, args).await,
        Bench::TurnRelay(args) => turn_relay::run(paths, args).await,
        Bench::DesktopFootprint(args) => desktop_footprint::run(paths, args).await,
        Bench::VoiceLatency(args) => voice_latency::run(paths, args).await,
        Bench::ServerFootprint(args) => server_footprint::run(paths, args).await,
        Bench::Footprint(args) => footprint::run(paths, args).await,
        Bench::Search(args) => search::run(paths, args).await,
        Bench::ScaleOut(args) => scale_out::run(paths, args).await,
        Bench::FloorServer(_) => anyhow::bail!("floor-server is not a bench"),
        Bench::Attachments(args) => attachments::run(paths, args).await,
        Bench::AttachPeer(_) => anyhow::bail!("attach-peer is not a bench"),
        Bench::Transfer(args) => transfer::run(paths, args).await,
        Bench::TransferEnd(args) => transfer::end(args).await.map(|()| Vec::new()),
        Bench::DelayUdp(_) => anyhow::bail!("delay-udp is not a bench"),
    }
}

async fn interrupted() {
    use tokio::signal::unix::{SignalKind, signal};
    match (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) {
        (Ok(mut int), Ok(mut term)) => {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
        }
        _ => std::future::pending().await,
    }
}
