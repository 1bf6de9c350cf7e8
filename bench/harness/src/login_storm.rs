//! `login-storm`: how close logins come to the machine's raw argon2id rate, and whether the
//! gateway stays responsive meanwhile.
//!
//! 1. The floor: argon2id (m=19456 KiB, t=2, p=1, the OWASP parameters) hashed in a loop on
//!    as many threads as the server's hashing pool has (cores - 1 by default), nothing else
//!    running.
//! 2. Hearth: K registered users; one extra gateway session sends `Heartbeat` every few ms and
//!    times each `HeartbeatAck` with the server idle, then while C clients log in as fast as
//!    they can for a fixed time, then idle again.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::gateway;
use crate::link::{Event, Link};
use crate::process::{cores, cpu_seconds};
use crate::report::{Metric, fmt_opt, ratio};
use crate::server::{HearthServer, Paths};
use crate::stats::Latencies;

const BENCH: &str = "login-storm";

/// OWASP's argon2id recommendation, which the server uses.
const M_COST_KIB: u32 = 19_456;
const T_COST: u32 = 2;
const P_COST: u32 = 1;

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Registered users the logins cycle through.
    #[arg(long, env = "LOGIN_USERS", default_value_t = 8)]
    pub users: usize,
    /// Concurrent login clients.
    #[arg(long, env = "LOGIN_CLIENTS", default_value_t = 16)]
    pub clients: usize,
    /// Seconds of storm (and of the raw argon2 loop, split before and after).
    #[arg(long, env = "LOGIN_SECS", default_value_t = 10)]
    pub secs: u64,
    /// Seconds of idle heartbeat probing before the storm, and again after it.
    #[arg(long, env = "LOGIN_IDLE_SECS", default_value_t = 5)]
    pub idle_secs: u64,
    /// Pause between heartbeat probes.
    #[arg(long, env = "LOGIN_PROBE_INTERVAL_MS", default_value_t = 10)]
    pub probe_interval_ms: u64,
    /// Threads of the raw argon2 loop (default: the server's hashing pool, i.e.
    /// LOGIN_ARGON2_CONCURRENCY or else one fewer than the cores: "the same cores").
    #[arg(long, env = "LOGIN_RAW_THREADS")]
    pub raw_threads: Option<usize>,
    /// Passed to hearth-server as --argon2-concurrency when set (default: the server's own).
    #[arg(long, env = "LOGIN_ARGON2_CONCURRENCY")]
    pub argon2_concurrency: Option<usize>,
}

const PHASE_IDLE: u8 = 0;
const PHASE_STORM: u8 = 1;
const PHASE_DONE: u8 = 2;

pub async fn run(paths: &Paths, args: &Args) -> Result<Vec<Metric>> {
    if args.users == 0 || args.clients == 0 || args.secs == 0 {
        bail!("LOGIN_USERS, LOGIN_CLIENTS and LOGIN_SECS must be at least 1");
    }
    // The server hashes on its own pool, one fewer threads than cores by default (it leaves
    // the gateway a core); the raw loop runs on as many threads, so both use the same cores.
    let pool = args.argon2_concurrency.unwrap_or_else(|| cores().saturating_sub(1).max(1));
    let threads = args.raw_threads.unwrap_or(pool).max(1);
    // The floor is measured twice, before and after Hearth, and the better run is kept: a
    // busy moment on the machine must not flatter Hearth's ratio.
    let half = Duration::from_secs(args.secs).div_f64(2.0).max(Duration::from_secs(1));
    println!("== login-storm: raw argon2id on {threads} threads, {} s before and after", half.as_secs_f64());
    let raw_before = raw_argon2_blocking(threads, half).await;
    println!(
        "== login-storm: hearth, {} users, {} clients for {} s after {} s idle",
        args.users, args.clients, args.secs, args.idle_secs
    );
    let hearth = hearth(paths, args).await.context("hearth");
    let raw_after = raw_argon2_blocking(threads, half).await;
    for (when, r) in [("before", &raw_before), ("after", &raw_after)] {
        match r {
            Ok(rate) => println!(
                "  raw argon2id {when}: {:.2} hashes/s, {} hashes per CPU-second",
                rate.per_s,
                fmt_opt(rate.per_cpu_s, 2)
            ),
            Err(e) => println!("  raw argon2id {when}: FAILED: {e:#}"),
        }
    }
    let raw_per_cpu_s = [&raw_before, &raw_after]
        .into_iter()
        .filter_map(|r| r.as_ref().ok().and_then(|r| r.per_cpu_s))
        .reduce(f64::max);
    let raw = match (raw_before, raw_after) {
        (Ok(a), Ok(b)) => Ok(a.per_s.max(b.per_s)),
        (Ok(a), Err(_)) | (Err(_), Ok(a)) => Ok(a.per_s),
        (Err(e), Err(_)) => Err(e),
    };

    println!("\n== login-storm summary");
    let mut failed = false;
    let raw_rate = match raw {
        Ok(r) => Some(r),
        Err(e) => {
            failed = true;
            println!("  raw argon2id FAILED: {e:#}");
            None
        }
    };
    let (rate, per_cpu_s, idle_p99, storm_p99) = match hearth {
        Ok(mut h) => {
            let rate = h.logins as f64 / h.storm_s;
            let per_cpu_s = ratio(Some(h.logins as f64), Some(h.cpu_s));
            println!(
                "  hearth       {rate:.2} logins/s ({} ok, {} failed in {:.1} s; login {}); server CPU {:.1} s",
                h.logins,
                h.failures,
                h.storm_s,
                h.login_latencies.describe(),
                h.cpu_s
            );
            if let Some(e) = &h.first_failure {
                println!("               first failure: {e}");
            }
            println!("  raw argon2id {} hashes/s on {threads} threads", fmt_opt(raw_rate, 2));
            println!("  ratio        {} (target >= 0.9)", fmt_opt(ratio(Some(rate), raw_rate), 3));
            println!("  heartbeat    idle:  {}", h.idle.describe());
            println!("  heartbeat    storm: {}", h.storm.describe());
            if h.probe_timeouts > 0 {
                println!("               {} heartbeats unanswered within 5 s", h.probe_timeouts);
            }
            println!(
                "  per CPU-s    hearth {} logins, raw {} hashes (less sensitive to other load on the machine)",
                fmt_opt(per_cpu_s, 2),
                fmt_opt(raw_per_cpu_s, 2)
            );
            (Some(rate), per_cpu_s, h.idle.percentile_ms(99.0), h.storm.percentile_ms(99.0))
        }
        Err(e) => {
            failed = true;
            println!("  hearth FAILED: {e:#}");
            (None, None, None, None)
        }
    };
    let p99_ratio = ratio(storm_p99, idle_p99);
    println!("  gateway p99 storm/idle = {} (target <= 2)", fmt_opt(p99_ratio, 2));
    let raw_peer =
        format!("argon2id raw loop (m={M_COST_KIB} KiB, t={T_COST}, p={P_COST}, {threads} threads)");
    let metrics = vec![
        Metric::new(BENCH, "logins_per_s", rate, "logins/s")
            .peer(raw_peer.clone(), raw_rate)
            .target(">=0.9x"),
        Metric::new(BENCH, "logins_per_cpu_s", per_cpu_s, "logins/cpu_s").peer(raw_peer, raw_per_cpu_s),
        Metric::new(BENCH, "gateway_p99_ratio", p99_ratio, "ratio").target("<=2"),
        Metric::new(BENCH, "heartbeat_p99_storm_ms", storm_p99, "ms").peer("same gateway, idle", idle_p99),
    ];
    if failed {
        crate::report::print_metrics(&metrics)?;
        bail!("login-storm failed (see above)");
    }
    Ok(metrics)
}

/// A raw argon2id rate: per wall second, and per CPU-second the loop used.
struct RawRate {
    per_s: f64,
    per_cpu_s: Option<f64>,
}

async fn raw_argon2_blocking(threads: usize, run_for: Duration) -> Result<RawRate> {
    tokio::task::spawn_blocking(move || raw_argon2(threads, run_for))
        .await
        .context("raw argon2 loop panicked")?
        .context("raw argon2 loop")
}

/// Hashes per second of argon2id on `threads` threads for `run_for`.
fn raw_argon2(threads: usize, run_for: Duration) -> Result<RawRate> {
    // The harness does nothing else meanwhile, so its own CPU time is the loop's.
    let cpu0 = cpu_seconds(std::process::id()).ok();
    let params =
        Params::new(M_COST_KIB, T_COST, P_COST, Some(32)).map_err(|e| anyhow!("argon2 params: {e}"))?;
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    let started = std::time::Instant::now();
    let deadline = started + run_for;
    let counts: Vec<Result<u64>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let argon2 = &argon2;
                scope.spawn(move || -> Result<u64> {
                    let salt = format!("bench-salt-{t:05}");
                    let mut out = [0u8; 32];
                    let mut n = 0u64;
                    while std::time::Instant::now() < deadline {
                        argon2
                            .hash_password_into(b"bench-password", salt.as_bytes(), &mut out)
                            .map_err(|e| anyhow!("argon2: {e}"))?;
                        n += 1;
                    }
                    Ok(n)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().map_err(|_| anyhow!("argon2 thread panicked")).and_then(|r| r))
            .collect()
    });
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = match (cpu0, cpu_seconds(std::process::id()).ok()) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    let total: u64 = counts.into_iter().sum::<Result<u64>>()?;
    Ok(RawRate { per_s: total as f64 / elapsed, per_cpu_s: ratio(Some(total as f64), cpu) })
}

struct HearthOutcome {
    logins: u64,
    failures: u64,
    first_failure: Option<String>,
    storm_s: f64,
    login_latencies: Latencies,
    cpu_s: f64,
    idle: Latencies,
    storm: Latencies,
    probe_timeouts: u64,
}

async fn hearth(paths: &Paths, args: &Args) -> Result<HearthOutcome> {
    let mut extra = Vec::new();
    if let Some(n) = args.argon2_concurrency {
        extra.push("--argon2-concurrency".to_owned());
        extra.push(n.to_string());
    }
    let mut server = HearthServer::start(paths, "login-storm", &extra).await?;
    let group = server.bootstrap(args.users.saturating_sub(1), "general").await?;
    let accounts: Vec<(String, String)> =
        group.accounts().iter().map(|a| (a.username.clone(), a.password.clone())).collect();

    let phase = Arc::new(AtomicU8::new(PHASE_IDLE));
    let interval = Duration::from_millis(args.probe_interval_ms);
    let probe = spawn_probe(
        server.gateway_url(),
        group.admin.access_token.clone(),
        group.channel,
        phase.clone(),
        interval,
    )
    .await?;

    tokio::time::sleep(Duration::from_secs(args.idle_secs)).await;

    let cpu0 = server.cpu_seconds()?;
    phase.store(PHASE_STORM, Ordering::Relaxed);
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.secs);
    let logins = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(AtomicU64::new(0));
    let mut clients = JoinSet::new();
    for c in 0..args.clients {
        let api = server.api.clone();
        let (username, password) = accounts[c % accounts.len()].clone();
        let logins = logins.clone();
        let failures = failures.clone();
        clients.spawn(async move {
            let mut latencies = Latencies::default();
            let mut first_failure = None;
            while Instant::now() < deadline {
                let t = Instant::now();
                let result = api.login(&username, &password).await;
                // Logins that end after the deadline do not count: the rate is per storm second.
                if Instant::now() > deadline {
                    break;
                }
                match result {
                    Ok(_) => {
                        latencies.record(t.elapsed());
                        logins.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        failures.fetch_add(1, Ordering::Relaxed);
                        first_failure.get_or_insert_with(|| format!("{e:#}"));
                        // Do not spin on a server that refuses at once.
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
            (latencies, first_failure)
        });
    }
    let mut login_latencies = Latencies::default();
    let mut first_failure = None;
    while let Some(joined) = clients.join_next().await {
        let (latencies, failure) = joined.context("login client panicked")?;
        login_latencies.merge(latencies);
        if first_failure.is_none() {
            first_failure = failure;
        }
    }
    let storm_s = args.secs as f64;
    let cpu1 = server.cpu_seconds()?;
    // Idle again: the baseline spans both sides of the storm, so a moment of unrelated load
    // on the machine weighs less on it.
    phase.store(PHASE_IDLE, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(args.idle_secs)).await;
    phase.store(PHASE_DONE, Ordering::Relaxed);
    let (idle, storm, probe_timeouts) = probe.await.context("heartbeat probe thread ended")??;
    server.check_alive()?;
    server.stop().await?;
    Ok(HearthOutcome {
        logins: logins.load(Ordering::Relaxed),
        failures: failures.load(Ordering::Relaxed),
        first_failure,
        storm_s,
        login_latencies,
        cpu_s: cpu1 - cpu0,
        idle,
        storm,
        probe_timeouts,
    })
}

type ProbeResult = Result<(Latencies, Latencies, u64)>;

/// Starts the heartbeat probe on a thread of its own with its own single-threaded runtime, and
/// returns once its session is identified. The 16 login clients run on the harness's runtime;
/// on a shared worker a probe's `HeartbeatAck` could wait behind their HTTP work in the storm
/// and not when idle, which would charge the load generator's queueing to the server. On its
/// own thread the probe is measured the same way in both phases.
async fn spawn_probe(
    url: String,
    token: String,
    channel: hearth_protocol::ChannelId,
    phase: Arc<AtomicU8>,
    interval: Duration,
) -> Result<tokio::sync::oneshot::Receiver<ProbeResult>> {
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<Result<()>>();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<ProbeResult>();
    std::thread::Builder::new()
        .name("heartbeat-probe".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready_tx.send(Err(anyhow!("probe runtime: {e}")));
                    return;
                }
            };
            runtime.block_on(async move {
                let session = match gateway::identify(&url, &token).await {
                    Ok(s) => s,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(()));
                let link = Link::hearth(session, channel, false);
                let _ = done_tx.send(probe_heartbeats(link, phase, interval).await);
            });
        })
        .context("starting the heartbeat probe thread")?;
    ready_rx.await.context("heartbeat probe thread ended")??;
    Ok(done_rx)
}

/// Heartbeat → HeartbeatAck round trips, filed under the phase they started in.
async fn probe_heartbeats(
    mut link: Link,
    phase: Arc<AtomicU8>,
    interval: Duration,
) -> Result<(Latencies, Latencies, u64)> {
    let mut idle = Latencies::default();
    let mut storm = Latencies::default();
    let mut timeouts = 0u64;
    loop {
        let started_in = phase.load(Ordering::Relaxed);
        if started_in == PHASE_DONE {
            break;
        }
        let t = Instant::now();
        link.send_heartbeat().await?;
        let answered = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                match link.next().await? {
                    Event::HeartbeatAck => return Ok::<_, anyhow::Error>(()),
                    Event::Refused { code, .. } => bail!("Heartbeat refused: {code}"),
                    Event::Chat { .. } => {}
                }
            }
        })
        .await;
        // An unanswered probe counts with its full wait: dropping it would flatter the p99.
        match answered {
            Ok(result) => result?,
            Err(_) => timeouts += 1,
        }
        let rtt = t.elapsed();
        if started_in == PHASE_IDLE {
            idle.record(rtt);
        } else {
            storm.record(rtt);
        }
        tokio::time::sleep(interval).await;
    }
    link.close().await;
    Ok((idle, storm, timeouts))
}
