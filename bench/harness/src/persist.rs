//! `persist`: throughput and latency of send → durable → acknowledged through the gateway.
//! Several sender sessions post into one channel, each keeping a bounded window of
//! unacknowledged messages in flight; a message counts as acknowledged when its sender's
//! session receives the `MessageCreate` carrying its nonce (the server sends it only once the
//! row is committed). Every session in the channel receives every message, as in real use.
//!
//! The ceiling, measured in the same run on the same disk: one sqlx SQLite connection (WAL,
//! `synchronous=FULL`) inserting equivalent rows in transactions of `batch` rows.

use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use futures_util::{StreamExt, TryStreamExt, stream};
use hearth_protocol::ids::compose;
use hearth_protocol::{ChannelId, MessageId};
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqliteSynchronous};
use sqlx::{Connection, Executor};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::gateway;
use crate::link::{Event, Link};
use crate::process::ScratchDir;
use crate::report::{Metric, fmt_opt, ratio};
use crate::server::{HearthServer, Paths};
use crate::stats::{Latencies, now_us};

const BENCH: &str = "persist";

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Concurrent sender sessions (all in the one channel).
    #[arg(long, env = "PERSIST_CONNS", default_value_t = 4)]
    pub conns: usize,
    /// Unacknowledged messages each sender keeps in flight.
    #[arg(long, env = "PERSIST_WINDOW", default_value_t = 64)]
    pub window: usize,
    /// Accounts the senders are spread over.
    #[arg(long, env = "PERSIST_USERS", default_value_t = 4)]
    pub users: usize,
    /// Measured seconds (for Hearth and for the raw writer).
    #[arg(long, env = "PERSIST_SECS", default_value_t = 10)]
    pub secs: u64,
    #[arg(long, env = "PERSIST_WARMUP_SECS", default_value_t = 2)]
    pub warmup_secs: u64,
    /// How long to wait for the acks of messages in flight when sending stops.
    #[arg(long, env = "PERSIST_DRAIN_SECS", default_value_t = 10)]
    pub drain_secs: u64,
    /// Rows per transaction of the raw SQLite writer.
    #[arg(long, env = "PERSIST_RAW_BATCH", default_value_t = 256)]
    pub raw_batch: usize,
    /// Seconds of each raw writer mode (one INSERT per row; multi-row INSERTs).
    #[arg(long, env = "PERSIST_RAW_SECS", default_value_t = 5)]
    pub raw_secs: u64,
    /// Rows per INSERT statement in the raw writer's multi-row mode (the ceiling).
    #[arg(long, env = "PERSIST_RAW_ROWS_PER_INSERT", default_value_t = 64)]
    pub raw_rows_per_insert: usize,
    /// Page through the channel's history afterwards and check every acked message is there.
    #[arg(long, env = "PERSIST_VERIFY", default_value_t = true, action = clap::ArgAction::Set)]
    pub verify: bool,
    /// Directory for the raw writer's database (default: a scratch dir in the system temp
    /// dir, the same filesystem hearth-server's data dir is on).
    #[arg(long, env = "PERSIST_RAW_DIR")]
    pub raw_dir: Option<std::path::PathBuf>,
}

/// A chat line of realistic length, led by its origin: "persist CONN SEQ ...".
fn content(conn: usize, seq: u64) -> String {
    let mut s = format!("persist {conn} {seq} ");
    while s.len() < 80 {
        s.push_str("lorem ipsum ");
    }
    s
}

/// Nonces are "p{conn}.{seq}.{sent_us}": the ack itself tells its send time.
fn nonce(conn: usize, seq: u64, sent_us: u64) -> String {
    format!("p{conn}.{seq}.{sent_us}")
}

/// The send time in a nonce of this connection (`prefix` = "p{conn}."), `None` otherwise.
fn own_sent_us(nonce: &str, prefix: &str) -> Option<u64> {
    let rest = nonce.strip_prefix(prefix)?;
    let (_seq, sent) = rest.split_once('.')?;
    sent.parse().ok()
}

pub async fn run(paths: &Paths, args: &Args) -> Result<Vec<Metric>> {
    if args.conns == 0 || args.window == 0 {
        bail!("PERSIST_CONNS and PERSIST_WINDOW must be at least 1");
    }
    println!(
        "== persist: {} sender sessions × window {} in one channel, {} s measured",
        args.conns, args.window, args.secs
    );
    let per_row = raw_sqlite(args, 1).await.context("raw SQLite writer, one row per INSERT");
    let raw = raw_sqlite(args, args.raw_rows_per_insert.clamp(1, args.raw_batch.max(1)))
        .await
        .context("raw SQLite writer, multi-row INSERTs");
    match &per_row {
        Ok(r) => {
            let mut lat = r.tx_latencies.clone();
            println!(
                "  raw sqlite, one row per INSERT: {:.0} rows/s ({}-row transactions; commit {})",
                r.rows_per_s(),
                args.raw_batch,
                lat.describe()
            );
        }
        Err(e) => println!("  raw sqlite, one row per INSERT: FAILED: {e:#}"),
    }
    let hearth = hearth(paths, args).await.context("hearth");

    println!("\n== persist summary");
    let mut failed = false;
    let (raw_rate, raw_p99) = match &raw {
        Ok(r) => {
            let mut lat = r.tx_latencies.clone();
            println!(
                "  raw sqlite  {:.0} rows/s ({} rows in {:.2} s, {}-row transactions of {}-row INSERTs; commit {})",
                r.rows_per_s(),
                r.rows,
                r.elapsed_s,
                args.raw_batch,
                r.rows_per_insert,
                lat.describe()
            );
            (Some(r.rows_per_s()), lat.percentile_ms(99.0))
        }
        Err(e) => {
            failed = true;
            println!("  raw sqlite  FAILED: {e:#}");
            (None, None)
        }
    };
    let (rate, p99) = match hearth {
        Ok(mut h) => {
            let rate = h.acked_in_window as f64 / h.window_s;
            println!(
                "  hearth      {rate:.0} acked msg/s ({} in {:.2} s), ack {}",
                h.acked_in_window,
                h.window_s,
                h.latencies.describe()
            );
            println!(
                "              server CPU {:.2} s in the window ({} ms per 1000 messages), harness CPU {:.2} s; {} sent, {} acked, {} refused, {} unacked at the end",
                h.cpu_s,
                fmt_opt(ratio(Some(h.cpu_s * 1e6), Some(h.acked_in_window as f64)), 1),
                h.client_cpu_s,
                h.sent,
                h.acked,
                h.refused,
                h.sent.saturating_sub(h.acked + h.refused)
            );
            if let Some(code) = &h.first_refusal {
                println!("              first refusal: {code}");
            }
            match &h.verified {
                Some(Ok(found)) => println!(
                    "              history check: {found} bench messages stored, {} acked{}",
                    h.acked,
                    if *found >= h.acked { "" } else { "  <-- MISSING MESSAGES" }
                ),
                Some(Err(e)) => println!("              history check failed: {e:#}"),
                None => {}
            }
            if matches!(&h.verified, Some(Ok(found)) if *found < h.acked) {
                failed = true;
            }
            (Some(rate), h.latencies.percentile_ms(99.0))
        }
        Err(e) => {
            failed = true;
            println!("  hearth      FAILED: {e:#}");
            (None, None)
        }
    };
    if let Some(r) = ratio(rate, raw_rate) {
        println!("  hearth / raw sqlite = {r:.2}");
    }
    let peer = format!(
        "sqlite raw (sqlx, WAL, synchronous=FULL, {}-row tx, {}-row INSERTs)",
        args.raw_batch,
        args.raw_rows_per_insert.clamp(1, args.raw_batch.max(1))
    );
    let metrics = vec![
        Metric::new(BENCH, "acked_msgs_per_s", rate, "msg/s").peer(peer.clone(), raw_rate).target(">=20000"),
        Metric::new(BENCH, "ack_p99_ms", p99, "ms").peer(peer, raw_p99).target("<20"),
    ];
    if failed {
        crate::report::print_metrics(&metrics)?;
        bail!("persist failed (see above)");
    }
    Ok(metrics)
}

struct RawOutcome {
    rows: u64,
    rows_per_insert: usize,
    elapsed_s: f64,
    tx_latencies: Latencies,
}

impl RawOutcome {
    fn rows_per_s(&self) -> f64 {
        self.rows as f64 / self.elapsed_s
    }
}

/// hearth-server's own SQLite schema, so the ceiling writes the same table and indexes
/// (history by channel, idempotency by (author, nonce)).
const RAW_SCHEMA: &str = include_str!("../../../signaling-server/migrations/sqlite/0001_init.sql");

/// Inserts rows for `args.raw_secs` in transactions of `args.raw_batch` rows, `rows_per_insert`
/// rows per INSERT statement, into a fresh database.
async fn raw_sqlite(args: &Args, rows_per_insert: usize) -> Result<RawOutcome> {
    let scratch = ScratchDir::new("persist-raw")?;
    let dir = args.raw_dir.clone().unwrap_or_else(|| scratch.path().to_owned());
    let db_path = dir.join(format!("raw-{}-{rows_per_insert}.db", std::process::id()));
    let options = SqliteConnectOptions::new()
        .filename(&db_path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full);
    let mut conn = SqliteConnection::connect_with(&options)
        .await
        .with_context(|| format!("opening {}", db_path.display()))?;
    conn.execute(sqlx::raw_sql(RAW_SCHEMA)).await.context("creating the schema")?;

    let batch = args.raw_batch.max(1);
    let insert_sql = |rows: usize| {
        let tuples = vec!["(?, ?, ?, ?, ?, ?)"; rows].join(", ");
        format!(
            "INSERT INTO messages (id, channel_id, author_id, content, created_at, nonce) VALUES {tuples}"
        )
    };
    let full_sql = insert_sql(rows_per_insert);
    let run = async {
        let started = Instant::now();
        let deadline = started + Duration::from_secs(args.raw_secs);
        let mut rows = 0u64;
        let mut tx_latencies = Latencies::default();
        let mut seq = 0i64;
        while Instant::now() < deadline {
            let t = Instant::now();
            let mut tx = conn.begin().await.context("BEGIN")?;
            let mut left = batch;
            while left > 0 {
                let chunk = left.min(rows_per_insert);
                let sql = if chunk == rows_per_insert { full_sql.clone() } else { insert_sql(chunk) };
                let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
                for _ in 0..chunk {
                    let now_ms = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_millis() as i64)
                        .unwrap_or(0);
                    seq += 1;
                    let conn_no = (seq % args.conns as i64) as usize;
                    query = query
                        .bind(compose(now_ms, seq))
                        .bind(1_i64)
                        .bind(conn_no as i64 + 1)
                        .bind(content(conn_no, seq as u64))
                        .bind(now_ms)
                        .bind(nonce(conn_no, seq as u64, now_us()));
                }
                query.execute(&mut *tx).await.context("INSERT")?;
                left -= chunk;
            }
            tx.commit().await.context("COMMIT")?;
            tx_latencies.record(t.elapsed());
            rows += batch as u64;
        }
        Ok::<_, anyhow::Error>(RawOutcome {
            rows,
            rows_per_insert,
            elapsed_s: started.elapsed().as_secs_f64(),
            tx_latencies,
        })
    };
    let outcome = run.await;
    conn.close().await.context("closing the raw database")?;
    if args.raw_dir.is_some() {
        for suffix in ["", "-wal", "-shm"] {
            let path = format!("{}{suffix}", db_path.display());
            if let Err(e) = std::fs::remove_file(&path)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                eprintln!("warning: could not remove {path}: {e}");
            }
        }
    }
    outcome
}

struct HearthOutcome {
    acked_in_window: u64,
    window_s: f64,
    latencies: Latencies,
    cpu_s: f64,
    /// The harness's own CPU in the window: it receives every message on every session.
    client_cpu_s: f64,
    sent: u64,
    acked: u64,
    refused: u64,
    first_refusal: Option<String>,
    verified: Option<Result<u64>>,
}

#[derive(Default)]
struct SenderOutcome {
    acked_in_window: u64,
    latencies: Latencies,
    sent: u64,
    acked: u64,
    refused: u64,
    first_refusal: Option<String>,
}

/// The measured window, on the harness clock.
#[derive(Clone, Copy)]
struct Window {
    from_us: u64,
    to_us: u64,
}

async fn hearth(paths: &Paths, args: &Args) -> Result<HearthOutcome> {
    let mut server = HearthServer::start(paths, "persist", &[]).await?;
    let group = server.bootstrap(args.users.saturating_sub(1), "persist").await?;
    let url = server.gateway_url();
    let channel = group.channel;
    let tokens: Vec<String> = group.accounts().iter().map(|a| a.access_token.clone()).collect();
    let links: Vec<Link> = stream::iter(0..args.conns)
        .map(|i| {
            let url = url.clone();
            let token = tokens[i % tokens.len()].clone();
            async move {
                let session =
                    gateway::identify(&url, &token).await.with_context(|| format!("sender {i} identify"))?;
                Ok::<_, anyhow::Error>(Link::hearth(session, channel, true))
            }
        })
        .buffered(16)
        .try_collect()
        .await?;

    let start_us = now_us() + 200_000;
    let window = Window {
        from_us: start_us + args.warmup_secs * 1_000_000,
        to_us: start_us + (args.warmup_secs + args.secs) * 1_000_000,
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let drain = Duration::from_secs(args.drain_secs);
    for (conn, link) in links.into_iter().enumerate() {
        let stop = stop_rx.clone();
        let window_size = args.window;
        tasks.spawn(async move {
            let until = Instant::now() + Duration::from_micros(start_us.saturating_sub(now_us()));
            tokio::time::sleep_until(until).await;
            send_pipelined(link, conn, window_size, window, stop, drain).await
        });
    }

    let at = |us: u64| Instant::now() + Duration::from_micros(us.saturating_sub(now_us()));
    tokio::time::sleep_until(at(window.from_us)).await;
    let cpu0 = server.cpu_seconds()?;
    let own0 = crate::process::cpu_seconds(std::process::id())?;
    tokio::time::sleep_until(at(window.to_us)).await;
    let cpu1 = server.cpu_seconds()?;
    let own1 = crate::process::cpu_seconds(std::process::id())?;
    stop_tx.send_replace(true);

    let mut total = SenderOutcome::default();
    let mut first_error = None;
    while let Some(joined) = tasks.join_next().await {
        match joined.context("sender task panicked")? {
            Ok(o) => {
                total.acked_in_window += o.acked_in_window;
                total.latencies.merge(o.latencies);
                total.sent += o.sent;
                total.acked += o.acked;
                total.refused += o.refused;
                if total.first_refusal.is_none() {
                    total.first_refusal = o.first_refusal;
                }
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    server.check_alive()?;
    if let Some(e) = first_error {
        server.stop().await?;
        return Err(e.context("a sender connection failed"));
    }
    let verified = if args.verify {
        Some(count_stored(&server, &group.admin.access_token, channel).await)
    } else {
        None
    };
    server.stop().await?;
    Ok(HearthOutcome {
        acked_in_window: total.acked_in_window,
        window_s: (window.to_us - window.from_us) as f64 / 1e6,
        latencies: total.latencies,
        cpu_s: cpu1 - cpu0,
        client_cpu_s: own1 - own0,
        sent: total.sent,
        acked: total.acked,
        refused: total.refused,
        first_refusal: total.first_refusal,
        verified,
    })
}

/// One sender: keep `window` messages unacknowledged until told to stop, then wait (up to
/// `drain`) for the acks still owed.
async fn send_pipelined(
    mut link: Link,
    conn: usize,
    window_size: usize,
    window: Window,
    mut stop: watch::Receiver<bool>,
    drain: Duration,
) -> Result<SenderOutcome> {
    let prefix = format!("p{conn}.");
    let mut out = SenderOutcome::default();
    let mut in_flight = 0usize;
    let mut seq = 0u64;
    let mut sending = true;
    let mut drain_deadline = Instant::now() + Duration::from_secs(3600);
    loop {
        if sending && in_flight < window_size {
            let room = window_size - in_flight;
            let batch: Vec<(String, String)> = (0..room)
                .map(|_| {
                    seq += 1;
                    (nonce(conn, seq, now_us()), content(conn, seq))
                })
                .collect();
            link.send_chats(batch).await?;
            in_flight += room;
            out.sent += room as u64;
        }
        if !sending && in_flight == 0 {
            break;
        }
        let event = tokio::select! {
            biased;
            _ = stop.changed(), if sending => {
                sending = false;
                drain_deadline = Instant::now() + drain;
                continue;
            }
            () = tokio::time::sleep_until(drain_deadline), if !sending => break,
            event = link.next() => event?,
        };
        match event {
            Event::Chat { nonce: Some(nonce), .. } => {
                if let Some(sent_us) = own_sent_us(&nonce, &prefix) {
                    in_flight = in_flight.saturating_sub(1);
                    out.acked += 1;
                    let now = now_us();
                    if now >= window.from_us && now < window.to_us {
                        out.acked_in_window += 1;
                        out.latencies.record_us(now.saturating_sub(sent_us));
                    }
                }
            }
            Event::Refused { code, nonce } => {
                if nonce.as_deref().is_some_and(|n| n.starts_with(&prefix)) {
                    in_flight = in_flight.saturating_sub(1);
                }
                out.refused += 1;
                out.first_refusal.get_or_insert(code);
            }
            Event::Chat { nonce: None, .. } | Event::HeartbeatAck => {}
        }
    }
    link.close().await;
    Ok(out)
}

/// Pages through the channel's whole history and counts the bench's messages.
async fn count_stored(server: &HearthServer, token: &str, channel: ChannelId) -> Result<u64> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut before: Option<MessageId> = None;
    let mut found = 0u64;
    loop {
        if Instant::now() >= deadline {
            return Err(anyhow!("gave up after 60 s with {found} counted"));
        }
        let page = server.api.history(token, channel, 100, before).await?;
        let Some(oldest) = page.iter().map(|m| m.id).min() else {
            return Ok(found);
        };
        if before.is_some_and(|b| oldest >= b) {
            bail!("history cursor did not move back (before={before:?}, oldest={oldest:?})");
        }
        found += page.iter().filter(|m| m.content.starts_with("persist ")).count() as u64;
        before = Some(oldest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonce_tells_its_connection_and_send_time() {
        let n = nonce(3, 17, 123_456);
        assert_eq!(own_sent_us(&n, "p3."), Some(123_456));
        assert_eq!(own_sent_us(&n, "p1."), None);
        assert_eq!(own_sent_us("p3.x", "p3."), None);
        // "p1." must not claim the nonces of connection 10.
        assert_eq!(own_sent_us(&nonce(10, 1, 5), "p1."), None);
    }
}
