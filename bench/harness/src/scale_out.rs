//! `scale-out`: deliveries per second with one and with two `hearth-server` processes on one
//! PostgreSQL, and how long a message takes to reach a member connected to the *other*
//! process (LISTEN/NOTIFY, then a read of the message by id).
//!
//! Each run gets a fresh database. Receivers (identified gateway sessions in the one channel)
//! and senders are spread evenly over the processes; each sender keeps a window of messages in
//! flight, sending the next when its own `MessageCreate` (the acknowledgement) arrives. A
//! delivery is one `MessageCreate` reaching one receiver inside the measured window; nonces
//! carry the sending process and the send time, so each receiver tells a cross-process
//! delivery from a local one and its latency. The peer is the single process: its delivery
//! rate, and its (same-process) delivery latency p99. Two processes share this machine's two
//! cores (and PostgreSQL), so "two processes" shows what crossing costs, not added capacity.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use futures_util::{SinkExt, StreamExt};
use hearth_protocol::ChannelId;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;

use crate::gateway::{self, GatewaySession, Inbound};
use crate::report::{Metric, fmt_opt, ratio};
use crate::server::{HearthServer, Paths};
use crate::stats::{Latencies, now_us};

const BENCH: &str = "scale-out";

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Receiving sessions (spread over the processes).
    #[arg(long, env = "SCALE_RECEIVERS", default_value_t = 200)]
    pub receivers: usize,
    /// Sending sessions (spread over the processes).
    #[arg(long, env = "SCALE_SENDERS", default_value_t = 4)]
    pub senders: usize,
    /// Unacknowledged messages each sender keeps in flight.
    #[arg(long, env = "SCALE_WINDOW", default_value_t = 8)]
    pub window: usize,
    /// Accounts the sessions are spread over.
    #[arg(long, env = "SCALE_USERS", default_value_t = 20)]
    pub users: usize,
    /// Measured seconds per run.
    #[arg(long, env = "SCALE_SECS", default_value_t = 8)]
    pub secs: u64,
    #[arg(long, env = "SCALE_WARMUP_SECS", default_value_t = 2)]
    pub warmup_secs: u64,
    /// An admin URL of the PostgreSQL cluster to make each run's database in (bench/run.sh
    /// starts a private one).
    #[arg(long, env = "SCALE_PG_URL")]
    pub pg_url: Option<String>,
}

/// What one run measured.
struct Outcome {
    processes: usize,
    deliveries: u64,
    window_s: f64,
    /// Deliveries to a receiver on the sender's process.
    local: Latencies,
    /// Deliveries to a receiver on the other process.
    cross: Latencies,
    cpu_s: f64,
    acked: u64,
}

impl Outcome {
    fn rate(&self) -> f64 {
        self.deliveries as f64 / self.window_s
    }
}

#[derive(Clone, Copy)]
struct Window {
    from_us: u64,
    to_us: u64,
}

impl Window {
    fn contains(&self, us: u64) -> bool {
        us >= self.from_us && us < self.to_us
    }
}

pub async fn run(paths: &Paths, args: &Args) -> Result<Vec<Metric>> {
    let Some(admin_url) = args.pg_url.as_deref() else {
        bail!("scale-out needs PostgreSQL: set SCALE_PG_URL (bench/run.sh starts a private cluster)");
    };
    if args.senders == 0 || args.window == 0 || args.receivers == 0 {
        bail!("SCALE_SENDERS, SCALE_WINDOW and SCALE_RECEIVERS must be at least 1");
    }
    println!(
        "== scale-out: {} receivers, {} senders × window {}, {} s measured per run",
        args.receivers, args.senders, args.window, args.secs
    );
    let mut one = measure(paths, args, admin_url, 1).await.context("one process")?;
    report(&mut one);
    let mut two = measure(paths, args, admin_url, 2).await.context("two processes")?;
    report(&mut two);

    println!("\n== scale-out summary (a shared 2-core machine: numbers are noisy)");
    println!(
        "  deliveries/s: one process {:.0}, two processes {:.0} (x{})",
        one.rate(),
        two.rate(),
        fmt_opt(ratio(Some(two.rate()), Some(one.rate())), 2)
    );
    let cross_p99 = two.cross.percentile_ms(99.0);
    let local_p99 = one.local.percentile_ms(99.0);
    println!(
        "  delivery p99: across processes {} ms, within the single process {} ms",
        fmt_opt(cross_p99, 2),
        fmt_opt(local_p99, 2)
    );
    Ok(vec![
        Metric::new(BENCH, "deliveries_per_s_two_processes", Some(two.rate()), "deliveries/s")
            .peer("one process", Some(one.rate())),
        Metric::new(BENCH, "cross_process_delivery_p99", cross_p99, "ms")
            .peer("one process (same-process delivery p99)", local_p99),
    ])
}

fn report(o: &mut Outcome) {
    println!(
        "  {} process(es): {:.0} deliveries/s ({} in {:.1} s), {} acked, server CPU {:.2} s; local {}; cross {}",
        o.processes,
        o.rate(),
        o.deliveries,
        o.window_s,
        o.acked,
        o.cpu_s,
        o.local.describe(),
        o.cross.describe()
    );
}

async fn measure(paths: &Paths, args: &Args, admin_url: &str, processes: usize) -> Result<Outcome> {
    let db = crate::search::make_pg_database(admin_url, "scale").await?;
    let server_args = vec!["--database-url".to_string(), db];
    let first = HearthServer::start(paths, &format!("scale-out-{processes}-a"), &server_args).await?;
    let group = first.bootstrap(args.users.saturating_sub(1), "scale").await?;
    let mut servers = vec![first];
    if processes == 2 {
        servers.push(HearthServer::start(paths, "scale-out-2-b", &server_args).await?);
    }
    let urls: Vec<String> = servers.iter().map(HearthServer::gateway_url).collect();
    let tokens: Vec<String> = group.accounts().iter().map(|a| a.access_token.clone()).collect();
    let channel = group.channel;

    let mut receivers = Vec::with_capacity(args.receivers);
    for i in 0..args.receivers {
        let on = i % processes;
        let session = gateway::identify(&urls[on], &tokens[i % tokens.len()])
            .await
            .with_context(|| format!("receiver {i}"))?;
        receivers.push((on, session));
    }
    let mut senders = Vec::with_capacity(args.senders);
    for j in 0..args.senders {
        let on = j % processes;
        let session = gateway::identify(&urls[on], &tokens[(j + 1) % tokens.len()])
            .await
            .with_context(|| format!("sender {j}"))?;
        senders.push((on, session));
    }

    let start_us = now_us() + 200_000;
    let window = Window {
        from_us: start_us + args.warmup_secs * 1_000_000,
        to_us: start_us + (args.warmup_secs + args.secs) * 1_000_000,
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut receiving = JoinSet::new();
    for (on, session) in receivers {
        receiving.spawn(receive(session, on, window, stop_rx.clone()));
    }
    let mut sending = JoinSet::new();
    for (j, (on, session)) in senders.into_iter().enumerate() {
        let stop = stop_rx.clone();
        let size = args.window;
        sending.spawn(async move {
            let at = tokio::time::Instant::now() + Duration::from_micros(start_us.saturating_sub(now_us()));
            tokio::time::sleep_until(at).await;
            send(session, channel, on, j, size, stop).await
        });
    }
    let at = |us: u64| tokio::time::Instant::now() + Duration::from_micros(us.saturating_sub(now_us()));
    tokio::time::sleep_until(at(window.from_us)).await;
    let cpu0 = cpu(&servers)?;
    tokio::time::sleep_until(at(window.to_us)).await;
    let cpu1 = cpu(&servers)?;
    stop_tx.send_replace(true);

    let mut acked = 0;
    while let Some(done) = sending.join_next().await {
        acked += done.context("a sender panicked")??;
    }
    let (mut deliveries, mut local, mut cross) = (0, Latencies::default(), Latencies::default());
    while let Some(done) = receiving.join_next().await {
        let r = done.context("a receiver panicked")??;
        deliveries += r.deliveries;
        local.merge(r.local);
        cross.merge(r.cross);
    }
    for server in &mut servers {
        server.check_alive()?;
    }
    for server in servers {
        server.stop().await?;
    }
    Ok(Outcome {
        processes,
        deliveries,
        window_s: (window.to_us - window.from_us) as f64 / 1e6,
        local,
        cross,
        cpu_s: cpu1 - cpu0,
        acked,
    })
}

fn cpu(servers: &[HearthServer]) -> Result<f64> {
    servers.iter().map(HearthServer::cpu_seconds).sum()
}

/// Nonces are "s{process}.{sender}.{seq}.{sent_us}".
fn nonce(on: usize, sender: usize, seq: u64) -> String {
    format!("s{on}.{sender}.{seq}.{}", now_us())
}

/// (sending process, sender, send time) of a bench nonce.
fn parse_nonce(nonce: &str) -> Option<(usize, usize, u64)> {
    let mut parts = nonce.strip_prefix('s')?.split('.');
    let on = parts.next()?.parse().ok()?;
    let sender = parts.next()?.parse().ok()?;
    let _seq = parts.next()?;
    let sent = parts.next()?.parse().ok()?;
    Some((on, sender, sent))
}

/// Sends with `size` messages in flight until told to stop; returns how many were acked.
async fn send(
    session: GatewaySession,
    channel: ChannelId,
    on: usize,
    me: usize,
    size: usize,
    mut stop: watch::Receiver<bool>,
) -> Result<u64> {
    let (mut tx, mut rx) = session.ws.split();
    let mut seq = 0u64;
    let mut in_flight = 0usize;
    let mut acked = 0u64;
    let text = "scale-out lorem ipsum dolor sit amet, consectetur adipiscing elit".to_string();
    loop {
        while in_flight < size && !*stop.borrow() {
            seq += 1;
            tx.send(gateway::send_message(channel, nonce(on, me, seq), text.clone())?).await?;
            in_flight += 1;
        }
        if *stop.borrow() && in_flight == 0 {
            return Ok(acked);
        }
        tokio::select! {
            _ = stop.changed() => {
                // Drain the acks of what is in flight, briefly.
                let until = tokio::time::Instant::now() + Duration::from_secs(5);
                while in_flight > 0 {
                    match tokio::time::timeout_at(until, rx.next()).await {
                        Ok(Some(Ok(Message::Text(t)))) => {
                            if let Inbound::MessageCreate { nonce: Some(n), .. } = gateway::parse_inbound(t.as_str())?
                                && parse_nonce(&n).is_some_and(|(o, s, _)| o == on && s == me)
                            {
                                in_flight -= 1;
                                acked += 1;
                            }
                        }
                        Ok(Some(Ok(_))) => {}
                        _ => break,
                    }
                }
                return Ok(acked);
            }
            frame = rx.next() => {
                let Some(frame) = frame else { bail!("sender {me}: connection closed") };
                if let Message::Text(t) = frame.context("sender read")? {
                    match gateway::parse_inbound(t.as_str())? {
                        Inbound::MessageCreate { nonce: Some(n), .. }
                            if parse_nonce(&n).is_some_and(|(o, s, _)| o == on && s == me) =>
                        {
                            in_flight -= 1;
                            acked += 1;
                        }
                        Inbound::Error { code, .. } => bail!("sender {me}: refused with {code}"),
                        _ => {}
                    }
                }
            }
        }
    }
}

struct Received {
    deliveries: u64,
    local: Latencies,
    cross: Latencies,
}

/// Counts the messages that reach one receiver inside the window, and their latency.
async fn receive(
    session: GatewaySession,
    on: usize,
    window: Window,
    mut stop: watch::Receiver<bool>,
) -> Result<Received> {
    let mut ws = session.ws;
    let mut out = Received { deliveries: 0, local: Latencies::default(), cross: Latencies::default() };
    loop {
        tokio::select! {
            _ = stop.changed() => return Ok(out),
            frame = ws.next() => {
                let Some(frame) = frame else { bail!("a receiver's connection closed") };
                let Message::Text(t) = frame.context("receiver read")? else { continue };
                let now = now_us();
                if let Inbound::MessageCreate { nonce: Some(n), .. } = gateway::parse_inbound(t.as_str())?
                    && let Some((from, _, sent)) = parse_nonce(&n)
                    && window.contains(now)
                {
                    out.deliveries += 1;
                    let lat = if from == on { &mut out.local } else { &mut out.cross };
                    lat.record_us(now.saturating_sub(sent));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nonce_tells_its_process_sender_and_send_time() {
        let n = nonce(1, 3, 42);
        let (on, sender, sent) = parse_nonce(&n).expect("ours");
        assert_eq!((on, sender), (1, 3));
        assert!(sent <= now_us());
        assert_eq!(parse_nonce("p1.2.3"), None);
    }
}
