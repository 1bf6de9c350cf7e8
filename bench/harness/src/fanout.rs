//! `fanout`: one text channel, N connected clients, one sender posting at a steady rate; every
//! delivery's send→receive latency and the server's CPU seconds over the measured window, for
//! Hearth, for the physical floor (`floor.rs`: a minimal tokio + tungstenite broadcaster of the
//! same pre-serialised frames) and for a Socket.IO 4 room broadcast, one after the other, with
//! the same clients.
//!
//! Each size N gets fresh servers. The offered load is the same for all three: a message rate of
//! `deliveries_per_sec / N` (capped), for `warmup` then `secs` seconds (the steady regime). The
//! busy regime sends many messages a second into one channel in bursts, so several events wait
//! for each connection at once: where writing them together pays. The CPU window opens when the
//! first measured message is sent and closes when its last delivery arrived (or the drain
//! deadline passed).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use futures_util::{StreamExt, stream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::floor::FloorServer;
use crate::gateway;
use crate::link::{Event, Link};
use crate::report::{Metric, fmt_opt, ratio};
use crate::server::{HearthServer, Paths};
use crate::socketio::{self, SocketIoServer};
use crate::stats::{Latencies, now_us};

const BENCH: &str = "fanout";

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Client counts to measure in the steady regime, each with fresh servers.
    #[arg(long, env = "FANOUT_SIZES", value_delimiter = ',', default_value = "1000,5000,20000")]
    pub sizes: Vec<usize>,
    /// Clients of the busy regime (0: skip it).
    #[arg(long, env = "FANOUT_BUSY_CONNECTIONS", default_value_t = 1000)]
    pub busy_connections: usize,
    /// Messages per second into the channel in the busy regime.
    #[arg(long, env = "FANOUT_BUSY_MSGS_PER_SEC", default_value_t = 50)]
    pub busy_msgs_per_sec: u64,
    /// Messages the busy regime's sender writes back to back each time.
    #[arg(long, env = "FANOUT_BUSY_BURST", default_value_t = 10)]
    pub busy_burst: u64,
    /// Offered deliveries per second (message rate × N), the same for both servers.
    #[arg(long, env = "FANOUT_DELIVERIES_PER_SEC", default_value_t = 20_000)]
    pub deliveries_per_sec: u64,
    /// Upper bound on the message rate, for small N.
    #[arg(long, env = "FANOUT_MAX_MSGS_PER_SEC", default_value_t = 500)]
    pub max_msgs_per_sec: u64,
    /// Measured seconds of sending, per size and server.
    #[arg(long, env = "FANOUT_SECS", default_value_t = 10)]
    pub secs: u64,
    /// Seconds of sending before the measurement starts.
    #[arg(long, env = "FANOUT_WARMUP_SECS", default_value_t = 2)]
    pub warmup_secs: u64,
    /// How long to wait, after the last send, for deliveries still on their way.
    #[arg(long, env = "FANOUT_DRAIN_SECS", default_value_t = 10)]
    pub drain_secs: u64,
    /// Hearth accounts the N sessions are spread over (several hundred sessions each at 5000).
    #[arg(long, env = "FANOUT_MAX_USERS", default_value_t = 20)]
    pub max_users: usize,
    /// Connections opened at once while setting up.
    #[arg(long, env = "FANOUT_CONNECT_CONCURRENCY", default_value_t = 64)]
    pub connect_concurrency: usize,
    /// Rounds per size: each server runs this many times, interleaved with the others, and its
    /// most efficient round counts (what other work on the machine adds is noise in one
    /// direction only; every server gets the same number of tries).
    #[arg(long, env = "FANOUT_ROUNDS", default_value_t = 2)]
    pub rounds: usize,
    /// Run only these servers (comma-separated: hearth, floor, socketio).
    #[arg(long, env = "FANOUT_ONLY", value_delimiter = ',')]
    pub only: Vec<String>,
}

const SERVERS: [&str; 3] = ["hearth", "floor", "socketio"];

/// The schedule shared by all servers at one size and regime.
#[derive(Debug, Clone, Copy)]
struct Plan {
    n: usize,
    regime: &'static str,
    msgs_per_sec: f64,
    /// Messages sent back to back at each tick.
    burst: u64,
    /// Time between bursts.
    period: Duration,
    warmup_msgs: u64,
    measured_msgs: u64,
    drain: Duration,
}

impl Plan {
    fn new(n: usize, args: &Args) -> Plan {
        let rate =
            (args.deliveries_per_sec as f64 / n.max(1) as f64).min(args.max_msgs_per_sec as f64).max(1.0);
        Self::with_rate(n, "steady", rate, 1, args)
    }

    fn busy(args: &Args) -> Plan {
        let rate = (args.busy_msgs_per_sec as f64).max(1.0);
        Self::with_rate(args.busy_connections, "busy", rate, args.busy_burst.max(1), args)
    }

    fn with_rate(n: usize, regime: &'static str, rate: f64, burst: u64, args: &Args) -> Plan {
        let bursts = |secs: u64| ((rate * secs as f64 / burst as f64).round() as u64) * burst;
        Plan {
            n,
            regime,
            msgs_per_sec: rate,
            burst,
            period: Duration::from_secs_f64(burst as f64 / rate),
            warmup_msgs: bursts(args.warmup_secs),
            measured_msgs: bursts(args.secs).max(burst),
            drain: Duration::from_secs(args.drain_secs),
        }
    }

    /// When message `seq` goes out.
    fn send_at(&self, start: Instant, seq: u64) -> Instant {
        start + self.period * u32::try_from(seq / self.burst).unwrap_or(u32::MAX)
    }

    fn total_msgs(&self) -> u64 {
        self.warmup_msgs + self.measured_msgs
    }

    fn expected_deliveries(&self) -> u64 {
        self.n as u64 * self.measured_msgs
    }
}

/// What one server did at one size.
#[derive(Debug, Default)]
struct Outcome {
    deliveries: u64,
    expected: u64,
    cpu_s: f64,
    /// The kernel's part of `cpu_s`.
    sys_cpu_s: f64,
    /// The harness's own CPU over the same window: on a small machine the load generator
    /// competes with the server, and latency must be read with that in mind.
    client_cpu_s: f64,
    window_s: f64,
    latencies: Latencies,
    receivers_lost: u64,
    refused: u64,
    first_error: Option<String>,
}

impl Outcome {
    fn deliveries_per_cpu_s(&self) -> Option<f64> {
        ratio(Some(self.deliveries as f64), Some(self.cpu_s))
    }
}

/// One server's rounds at one size: the most efficient, or the first failure.
#[derive(Default)]
struct Tried {
    best: Option<Result<Outcome>>,
    /// Deliveries per CPU-second of every round that measured one.
    rounds: Vec<f64>,
}

impl Tried {
    fn add(&mut self, round: Result<Outcome>) {
        let eff = round.as_ref().ok().and_then(Outcome::deliveries_per_cpu_s);
        self.rounds.extend(eff);
        let better = match (&self.best, &round) {
            (Some(Err(_)), _) => false,
            (None, _) | (_, Err(_)) => true,
            (Some(Ok(best)), Ok(_)) => eff > best.deliveries_per_cpu_s(),
        };
        if better {
            self.best = Some(round);
        }
    }
}

/// Counters every receiver task adds to.
#[derive(Default)]
struct Tally {
    measured: AtomicU64,
    refused: AtomicU64,
    lost: AtomicU64,
}

/// Descriptors a process needs besides one per connection: the sender's socket, listeners,
/// database files, the runtime's epoll and pipes, logs.
const FD_HEADROOM: u64 = 100;

pub async fn run(paths: &Paths, args: &Args) -> Result<Vec<Metric>> {
    if let Some(unknown) = args.only.iter().find(|o| !SERVERS.contains(&o.as_str())) {
        bail!("--only takes hearth, floor and socketio, not {unknown:?}");
    }
    let runs = |name: &str| args.only.is_empty() || args.only.iter().any(|o| o == name);
    // Each process here (the harness with its N clients, the server with their N sockets)
    // needs N descriptors and a few more. Where the hard open-file limit cannot be raised (a
    // container without CAP_SYS_RESOURCE: 20,000 on the development machine), a size above it
    // runs at the most that fits, and its lines say how many connections were measured.
    let most = crate::process::raise_nofile_limit()
        .map(|limit| usize::try_from(limit.saturating_sub(FD_HEADROOM)).unwrap_or(usize::MAX))
        .unwrap_or(usize::MAX);
    let mut plans: Vec<Plan> = args
        .sizes
        .iter()
        .map(|&n| {
            if n > most {
                println!(
                    "note: N={n} needs more open files than this process may have; measuring N={most} instead"
                );
            }
            Plan::new(n.min(most), args)
        })
        .collect();
    if args.busy_connections > 0 {
        plans.push(Plan::busy(args));
    }
    let mut rows = Vec::new();
    let mut peer_name = "socket.io 4".to_owned();
    for plan in plans {
        let n = plan.n;
        println!(
            "\n== fanout N={n}, {}: {:.1} msg/s in bursts of {} ({} warmup + {} measured messages), {} offered deliveries/s",
            plan.regime,
            plan.msgs_per_sec,
            plan.burst,
            plan.warmup_msgs,
            plan.measured_msgs,
            (plan.msgs_per_sec * n as f64).round()
        );
        let label = format!("fanout-{}-n{n}", plan.regime);
        let (mut hearth, mut floor, mut peer) = (Tried::default(), Tried::default(), Tried::default());
        for _ in 0..args.rounds.max(1) {
            if runs("hearth") {
                hearth.add(run_hearth(paths, &plan, args).await.with_context(|| format!("hearth at N={n}")));
            }
            if runs("floor") {
                floor.add(run_floor(paths, &plan, args, &label).await.with_context(|| format!("floor at N={n}")));
            }
            if runs("socketio") {
                peer.add(
                    run_socketio(paths, &plan, args, &mut peer_name)
                        .await
                        .with_context(|| format!("socket.io at N={n}")),
                );
            }
        }
        rows.push((plan, hearth, floor, peer));
    }

    println!("\n== fanout summary (deliveries per server CPU-second; latency send→delivery)");
    let mut metrics = Vec::new();
    let mut failed = false;
    const TARGET: &str = ">=2x peer, >=0.8x floor";
    for (plan, hearth, floor, peer) in &mut rows {
        let mut line = |name: &str, tried: &mut Tried| -> (Option<f64>, Option<f64>) {
            let rounds = tried.rounds.iter().map(|e| fmt_opt(Some(*e), 0)).collect::<Vec<_>>().join(", ");
            match &mut tried.best {
                None => (None, None),
                Some(Err(e)) => {
                    failed = true;
                    println!("  N={:<5} {name:<9} FAILED: {e:#}", plan.n);
                    (None, None)
                }
                Some(Ok(o)) => {
                    println!(
                        "  N={:<5} {:<6} {name:<9} {}/{} delivered, server {:.2} CPU-s ({:.2} sys; harness {:.2}) over {:.2} s, {} deliveries/CPU-s, {}{}{}",
                        plan.n,
                        plan.regime,
                        o.deliveries,
                        o.expected,
                        o.cpu_s,
                        o.sys_cpu_s,
                        o.client_cpu_s,
                        o.window_s,
                        fmt_opt(o.deliveries_per_cpu_s(), 0),
                        o.latencies.describe(),
                        if o.receivers_lost > 0 {
                            format!(", {} receivers lost", o.receivers_lost)
                        } else {
                            String::new()
                        },
                        if o.refused > 0 { format!(", {} refused", o.refused) } else { String::new() },
                    );
                    if tried.rounds.len() > 1 {
                        println!("           best of {} rounds: {rounds} deliveries/CPU-s", tried.rounds.len());
                    }
                    if let Some(err) = &o.first_error {
                        println!("           first receiver error: {err}");
                    }
                    (o.deliveries_per_cpu_s(), o.latencies.percentile_ms(99.0))
                }
            }
        };
        let (h_eff, h_p99) = line("hearth", hearth);
        let (f_eff, f_p99) = line("floor", floor);
        let (p_eff, p_p99) = line("socket.io", peer);
        println!(
            "  N={:<5} {:<6} hearth/floor {} (target >= 0.8), hearth/socket.io {} (target >= 2)",
            plan.n,
            plan.regime,
            fmt_opt(ratio(h_eff, f_eff), 2),
            fmt_opt(ratio(h_eff, p_eff), 2)
        );
        metrics.push(
            Metric::new(BENCH, "deliveries_per_cpu_s", h_eff, "deliveries/cpu_s")
                .peer(peer_name.clone(), p_eff)
                .floor(f_eff)
                .target(TARGET)
                .connections(plan.n, plan.regime),
        );
        metrics.push(
            Metric::new(BENCH, "p99_ms", h_p99, "ms")
                .peer(peer_name.clone(), p_p99)
                .floor(f_p99)
                .connections(plan.n, plan.regime),
        );
    }
    if failed {
        crate::report::print_metrics(&metrics)?;
        bail!("some fanout runs failed (see above)");
    }
    Ok(metrics)
}

async fn run_hearth(paths: &Paths, plan: &Plan, args: &Args) -> Result<Outcome> {
    let mut server = HearthServer::start(paths, &format!("fanout-n{}", plan.n), &[]).await?;
    let users = plan.n.div_ceil(250).clamp(1, args.max_users.max(1));
    let group = server.bootstrap(users.saturating_sub(1), "fanout").await?;
    let url = server.gateway_url();
    let channel = group.channel;
    let tokens: Vec<String> = group.accounts().iter().map(|a| a.access_token.clone()).collect();
    println!("  hearth: {} accounts, connecting {} sessions + 1 sender", tokens.len(), plan.n);

    let setup = Instant::now();
    let receivers = spawn_receivers(plan, args.connect_concurrency, |i| {
        let url = url.clone();
        let token = tokens[i % tokens.len()].clone();
        async move {
            let session = gateway::identify(&url, &token).await?;
            Ok(Link::hearth(session, channel, true))
        }
    })
    .await?;
    // The sender connects last: nothing reads it before the schedule starts.
    let sender = gateway::identify(&url, &group.admin.access_token).await.context("sender identify")?;
    let sender = Link::hearth(sender, channel, true);
    println!("  hearth: {} sessions ready in {:.1} s", plan.n, setup.elapsed().as_secs_f64());
    server.check_alive()?;
    let pid = server.pid();
    let outcome = measure(plan, sender, receivers, pid).await;
    server.check_alive()?;
    server.stop().await?;
    outcome
}

async fn run_floor(paths: &Paths, plan: &Plan, args: &Args, label: &str) -> Result<Outcome> {
    let mut server = FloorServer::start(paths, label).await?;
    let url = server.url();
    let channel = hearth_protocol::ChannelId(1);
    println!("  floor: connecting {} clients + 1 sender", plan.n);
    let setup = Instant::now();
    let receivers = spawn_receivers(plan, args.connect_concurrency, |_| {
        let url = url.clone();
        async move { Ok(Link::floor(gateway::connect_ws(&url).await?, channel)) }
    })
    .await?;
    let sender = Link::floor(gateway::connect_ws(&url).await.context("sender connect")?, channel);
    println!("  floor: {} clients ready in {:.1} s", plan.n, setup.elapsed().as_secs_f64());
    server.check_alive()?;
    let pid = server.pid();
    let outcome = measure(plan, sender, receivers, pid).await;
    server.check_alive()?;
    server.stop().await?;
    outcome
}

async fn run_socketio(paths: &Paths, plan: &Plan, args: &Args, peer_name: &mut String) -> Result<Outcome> {
    let server = SocketIoServer::start(paths, &format!("fanout-n{}", plan.n)).await?;
    peer_name.clone_from(&server.version);
    let url = server.url();
    println!("  {}: connecting {} clients + 1 sender", server.version, plan.n);
    let setup = Instant::now();
    let receivers = spawn_receivers(plan, args.connect_concurrency, |_| {
        let url = url.clone();
        async move { Ok(Link::socketio(socketio::connect(&url).await?)) }
    })
    .await?;
    let sender = Link::socketio(socketio::connect(&url).await.context("sender connect")?);
    let stats = server.stats().await?;
    if stats.sockets != plan.n as u64 + 1 {
        bail!("socket.io server reports {} sockets, expected {}", stats.sockets, plan.n + 1);
    }
    println!("  socket.io: {} clients ready in {:.1} s", plan.n, setup.elapsed().as_secs_f64());
    let pid = server.pid();
    let outcome = measure(plan, sender, receivers, pid).await;
    server.stop().await?;
    outcome
}

/// Receiver tasks, each reading one link from the moment it is open.
struct Receivers {
    tasks: JoinSet<Latencies>,
    tally: Arc<Tally>,
    stop: watch::Sender<bool>,
    first_error: Arc<std::sync::Mutex<Option<String>>>,
}

/// Opens `plan.n` links, `concurrency` at a time, and starts a receiver on each at once (so
/// keep-alives are answered while the rest connect).
async fn spawn_receivers<F, Fut>(plan: &Plan, concurrency: usize, open: F) -> Result<Receivers>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = Result<Link>>,
{
    let (stop, stop_rx) = watch::channel(false);
    let mut receivers =
        Receivers { tasks: JoinSet::new(), tally: Arc::default(), stop, first_error: Arc::default() };
    let mut opened = stream::iter(0..plan.n)
        .map(|i| {
            let fut = open(i);
            async move { fut.await.with_context(|| format!("connection {i}")) }
        })
        .buffer_unordered(concurrency.max(1));
    while let Some(link) = opened.next().await {
        let link = link?;
        let tally = receivers.tally.clone();
        let stop = stop_rx.clone();
        let first_error = receivers.first_error.clone();
        let warmup = plan.warmup_msgs;
        receivers.tasks.spawn(async move {
            let mut latencies = Latencies::default();
            if let Err(err) = receive(link, warmup, &tally, &mut latencies, stop).await {
                tally.lost.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut slot) = first_error.lock() {
                    slot.get_or_insert_with(|| format!("{err:#}"));
                }
            }
            latencies
        });
    }
    Ok(receivers)
}

/// Runs the schedule against connected receivers and reads the server's CPU around it.
async fn measure(plan: &Plan, sender: Link, receivers: Receivers, server_pid: u32) -> Result<Outcome> {
    let cpu = || crate::process::cpu_split(server_pid);
    let Receivers { mut tasks, tally, stop: stop_tx, first_error } = receivers;
    let stop_rx = stop_tx.subscribe();
    // Leave a moment for every task to be polled once before the first send.
    let start = Instant::now() + Duration::from_millis(500);
    let sender_plan = *plan;
    let sender_stop = stop_rx.clone();
    let sender_task = tokio::spawn(async move { send(sender, sender_plan, start, sender_stop).await });

    let measure_from = plan.send_at(start, plan.warmup_msgs);
    tokio::time::sleep_until(measure_from).await;
    let cpu0 = cpu()?;
    let own0 = crate::process::cpu_seconds(std::process::id())?;
    let t0 = Instant::now();
    let sending_ends = plan.send_at(start, plan.total_msgs());
    tokio::time::sleep_until(sending_ends).await;
    let deadline = Instant::now() + plan.drain;
    let expected = plan.expected_deliveries();
    loop {
        let got = tally.measured.load(Ordering::Relaxed);
        let alive = plan.n as u64 - tally.lost.load(Ordering::Relaxed);
        if got >= expected || got >= alive * plan.measured_msgs || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let cpu1 = cpu()?;
    let own1 = crate::process::cpu_seconds(std::process::id())?;
    let window_s = t0.elapsed().as_secs_f64();

    stop_tx.send_replace(true);
    let sender_report = sender_task.await.context("sender task panicked")?;
    let mut latencies = Latencies::default();
    while let Some(joined) = tasks.join_next().await {
        latencies.merge(joined.context("receiver task panicked")?);
    }
    let sent = sender_report.context("sender failed")?;
    let first_error = first_error.lock().ok().and_then(|mut slot| slot.take());
    Ok(Outcome {
        deliveries: tally.measured.load(Ordering::Relaxed),
        expected,
        cpu_s: (cpu1.0 + cpu1.1) - (cpu0.0 + cpu0.1),
        sys_cpu_s: cpu1.1 - cpu0.1,
        client_cpu_s: own1 - own0,
        window_s,
        latencies,
        receivers_lost: tally.lost.load(Ordering::Relaxed),
        refused: tally.refused.load(Ordering::Relaxed) + sent.refused,
        first_error,
    })
}

/// A message body a chat user might write, led by the probe: "fanout SEQ SENT_US ...".
fn probe_content(seq: u64, sent_us: u64) -> String {
    let mut s = format!("fanout {seq} {sent_us} ");
    while s.len() < 80 {
        s.push_str("lorem ipsum ");
    }
    s
}

/// (seq, sent_us) from a probe body; `None` for anything else.
fn parse_probe(content: &str) -> Option<(u64, u64)> {
    let mut parts = content.split(' ');
    if parts.next()? != "fanout" {
        return None;
    }
    let seq = parts.next()?.parse().ok()?;
    let sent_us = parts.next()?.parse().ok()?;
    Some((seq, sent_us))
}

async fn receive(
    mut link: Link,
    warmup_msgs: u64,
    tally: &Tally,
    latencies: &mut Latencies,
    mut stop: watch::Receiver<bool>,
) -> Result<()> {
    loop {
        let event = tokio::select! {
            biased;
            _ = stop.changed() => break,
            event = link.next() => event?,
        };
        match event {
            Event::Chat { content, .. } => {
                if let Some((seq, sent_us)) = parse_probe(&content)
                    && seq >= warmup_msgs
                {
                    latencies.record_us(now_us().saturating_sub(sent_us));
                    tally.measured.fetch_add(1, Ordering::Relaxed);
                }
            }
            Event::Refused { .. } => {
                tally.refused.fetch_add(1, Ordering::Relaxed);
            }
            Event::HeartbeatAck => {}
        }
    }
    link.close().await;
    Ok(())
}

struct SenderReport {
    refused: u64,
}

/// Sends the schedule, reading its own connection all along (its echoes, refusals).
async fn send(
    mut link: Link,
    plan: Plan,
    start: Instant,
    mut stop: watch::Receiver<bool>,
) -> Result<SenderReport> {
    let mut refused = 0;
    let mut first_refusal = None;
    for first in (0..plan.total_msgs()).step_by(plan.burst as usize) {
        let at = plan.send_at(start, first);
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(at) => break,
                event = link.next() => {
                    if let Event::Refused { code, .. } = event? {
                        refused += 1;
                        first_refusal.get_or_insert(code);
                    }
                }
            }
        }
        let last = (first + plan.burst).min(plan.total_msgs());
        let sent_us = now_us();
        link.send_chats((first..last).map(|seq| (format!("fanout-{seq}"), probe_content(seq, sent_us))))
            .await?;
    }
    if let Some(code) = first_refusal {
        eprintln!("  sender: {refused} messages refused, first with {code}");
    }
    // Keep reading until the receivers are done, so the sender's socket never backs up.
    loop {
        tokio::select! {
            biased;
            _ = stop.changed() => break,
            event = link.next() => {
                if let Event::Refused { .. } = event? {
                    refused += 1;
                }
            }
        }
    }
    link.close().await;
    Ok(SenderReport { refused })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_round_trip() {
        let body = probe_content(42, 123_456);
        assert!(body.len() >= 80);
        assert_eq!(parse_probe(&body), Some((42, 123_456)));
        assert_eq!(parse_probe("hello 1 2"), None);
        assert_eq!(parse_probe("fanout x 2"), None);
    }

    #[test]
    fn plan_caps_the_message_rate_and_keeps_the_offered_load() {
        let args = Args {
            sizes: vec![],
            busy_connections: 1000,
            busy_msgs_per_sec: 50,
            busy_burst: 10,
            deliveries_per_sec: 20_000,
            max_msgs_per_sec: 500,
            secs: 10,
            warmup_secs: 2,
            drain_secs: 10,
            max_users: 20,
            connect_concurrency: 64,
            rounds: 1,
            only: vec![],
        };
        let small = Plan::new(10, &args);
        assert_eq!(small.msgs_per_sec, 500.0);
        let big = Plan::new(5000, &args);
        assert_eq!(big.msgs_per_sec, 4.0);
        assert_eq!(big.measured_msgs, 40);
        assert_eq!(big.expected_deliveries(), 200_000);
        let busy = Plan::busy(&args);
        assert_eq!((busy.burst, busy.measured_msgs, busy.warmup_msgs), (10, 500, 100));
        assert_eq!(busy.period, Duration::from_millis(200));
        let start = Instant::now();
        assert_eq!(busy.send_at(start, 9), start);
        assert_eq!(busy.send_at(start, 10), start + Duration::from_millis(200));
    }
}
