//! `conn-memory`: what an idle, authenticated connection costs the server in resident memory.
//! N connections identify (Hearth: `Ready` received; Socket.IO: namespace joined with a token
//! and put in the room), then sit idle apart from keep-alives; the server's VmRSS growth over
//! its freshly started, bootstrapped baseline, divided by N.
//!
//! Node gets a full GC (it runs with `--expose-gc`) before each reading, so its number is the
//! live cost, not garbage waiting for collection.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use futures_util::{StreamExt, stream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::gateway;
use crate::link::Link;
use crate::report::{Metric, fmt_opt};
use crate::server::{HearthServer, Paths};
use crate::socketio::{self, SocketIoServer};

const BENCH: &str = "conn-memory";

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Idle connections per server.
    #[arg(long, env = "CONN_MEMORY_N", default_value_t = 2000)]
    pub n: usize,
    /// Seconds to let the servers settle before each RSS reading.
    #[arg(long, env = "CONN_MEMORY_SETTLE_SECS", default_value_t = 3)]
    pub settle_secs: u64,
    /// Hearth accounts the sessions are spread over.
    #[arg(long, env = "CONN_MEMORY_USERS", default_value_t = 10)]
    pub users: usize,
    #[arg(long, env = "CONN_MEMORY_CONNECT_CONCURRENCY", default_value_t = 64)]
    pub connect_concurrency: usize,
    /// Run only one side: "hearth" or "socketio".
    #[arg(long, env = "CONN_MEMORY_ONLY")]
    pub only: Option<String>,
}

#[derive(Debug)]
struct Reading {
    baseline: u64,
    loaded: u64,
    n: usize,
}

impl Reading {
    fn per_connection(&self) -> f64 {
        (self.loaded as f64 - self.baseline as f64) / self.n as f64
    }
}

pub async fn run(paths: &Paths, args: &Args) -> Result<Vec<Metric>> {
    if args.n == 0 {
        bail!("CONN_MEMORY_N must be at least 1");
    }
    println!("== conn-memory: {} idle authenticated connections per server", args.n);
    let only = args.only.as_deref();
    if let Some(o) = only
        && o != "hearth"
        && o != "socketio"
    {
        bail!("--only takes hearth or socketio, not {o:?}");
    }
    let hearth =
        if only == Some("socketio") { None } else { Some(hearth(paths, args).await.context("hearth")) };
    let (peer_name, peer) = if only == Some("hearth") {
        ("socket.io 4".to_owned(), None)
    } else {
        match socketio_peer(paths, args).await.context("socket.io") {
            Ok((name, r)) => (name, Some(Ok(r))),
            Err(e) => ("socket.io 4".to_owned(), Some(Err(e))),
        }
    };

    println!("\n== conn-memory summary (VmRSS growth / connections)");
    let mut failed = false;
    let mut show = |name: &str, r: &Option<Result<Reading>>| -> Option<f64> {
        match r {
            None => None,
            Some(Ok(r)) => {
                println!(
                    "  {name:<10} baseline {:.1} MiB -> {:.1} MiB with {} connections: {:.0} bytes/connection",
                    r.baseline as f64 / 1048576.0,
                    r.loaded as f64 / 1048576.0,
                    r.n,
                    r.per_connection()
                );
                Some(r.per_connection())
            }
            Some(Err(e)) => {
                failed = true;
                println!("  {name:<10} FAILED: {e:#}");
                None
            }
        }
    };
    let h = show("hearth", &hearth);
    let p = show("socket.io", &peer);
    println!("  target: <= 16384 bytes/connection (hearth {})", fmt_opt(h, 0));
    let metrics =
        vec![Metric::new(BENCH, "bytes_per_connection", h, "bytes").peer(peer_name, p).target("<=16384")];
    if failed {
        crate::report::print_metrics(&metrics)?;
        bail!("conn-memory failed (see above)");
    }
    Ok(metrics)
}

async fn hearth(paths: &Paths, args: &Args) -> Result<Reading> {
    let mut server = HearthServer::start(paths, "conn-memory", &[]).await?;
    let group = server.bootstrap(args.users.saturating_sub(1), "idle").await?;
    let url = server.gateway_url();
    let channel = group.channel;
    let tokens: Vec<String> = group.accounts().iter().map(|a| a.access_token.clone()).collect();
    // A first session warms the process (lazy statics, runtime buffers) before the baseline.
    let warm = Link::hearth(gateway::identify(&url, &tokens[0]).await?, channel, true);
    tokio::time::sleep(Duration::from_secs(args.settle_secs)).await;
    let baseline = server.rss_bytes()?;
    let started = Instant::now();
    let holder = hold_idle(args.n, args.connect_concurrency, |i| {
        let url = url.clone();
        let token = tokens[i % tokens.len()].clone();
        async move { Ok(Link::hearth(gateway::identify(&url, &token).await?, channel, true)) }
    })
    .await?;
    println!("  hearth: {} sessions ready in {:.1} s", args.n, started.elapsed().as_secs_f64());
    tokio::time::sleep(Duration::from_secs(args.settle_secs)).await;
    server.check_alive()?;
    let loaded = server.rss_bytes()?;
    holder.release().await?;
    warm.close().await;
    server.stop().await?;
    Ok(Reading { baseline, loaded, n: args.n })
}

async fn socketio_peer(paths: &Paths, args: &Args) -> Result<(String, Reading)> {
    let server = SocketIoServer::start(paths, "conn-memory").await?;
    let url = server.url();
    let warm = Link::socketio(socketio::connect(&url).await?);
    tokio::time::sleep(Duration::from_secs(args.settle_secs)).await;
    server.gc().await?;
    let baseline = server.rss_bytes()?;
    let started = Instant::now();
    let holder = hold_idle(args.n, args.connect_concurrency, |_| {
        let url = url.clone();
        async move { Ok(Link::socketio(socketio::connect(&url).await?)) }
    })
    .await?;
    println!("  socket.io: {} clients ready in {:.1} s", args.n, started.elapsed().as_secs_f64());
    tokio::time::sleep(Duration::from_secs(args.settle_secs)).await;
    let stats = server.stats().await?;
    if stats.sockets != args.n as u64 + 1 {
        bail!("socket.io server reports {} sockets, expected {}", stats.sockets, args.n + 1);
    }
    server.gc().await?;
    let loaded = server.rss_bytes()?;
    holder.release().await?;
    warm.close().await;
    let version = server.version.clone();
    server.stop().await?;
    Ok((version, Reading { baseline, loaded, n: args.n }))
}

/// Idle connections kept open (keep-alives answered) until released.
pub(crate) struct Holder {
    stop: watch::Sender<bool>,
    tasks: JoinSet<Result<()>>,
}

impl Holder {
    /// Closes every connection; fails if any of them died while idle.
    pub(crate) async fn release(mut self) -> Result<()> {
        self.stop.send_replace(true);
        let mut lost = 0;
        let mut first = None;
        while let Some(joined) = self.tasks.join_next().await {
            if let Err(e) = joined.context("idle connection task panicked")? {
                lost += 1;
                first.get_or_insert(e);
            }
        }
        match first {
            Some(e) => Err(e.context(format!("{lost} idle connections were closed by the server"))),
            None => Ok(()),
        }
    }
}

/// Opens `n` links (`concurrency` at a time) and keeps each read by its own task until
/// released.
pub(crate) async fn hold_idle<F, Fut>(n: usize, concurrency: usize, open: F) -> Result<Holder>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = Result<Link>>,
{
    let (stop, stop_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let mut opened = stream::iter(0..n)
        .map(|i| {
            let fut = open(i);
            async move { fut.await.with_context(|| format!("connection {i}")) }
        })
        .buffer_unordered(concurrency.max(1));
    // Each link gets its reader task as soon as it is open, so nothing queues up unread.
    while let Some(link) = opened.next().await {
        let mut link = link?;
        let mut stop = stop_rx.clone();
        tasks.spawn(async move {
            loop {
                tokio::select! {
                    biased;
                    _ = stop.changed() => break,
                    event = link.next() => { event?; }
                }
            }
            link.close().await;
            Ok(())
        });
    }
    Ok(Holder { stop, tasks })
}
