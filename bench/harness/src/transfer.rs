//! `transfer`: a 1 GiB direct transfer between two engines over loopback, negotiated through
//! a real `hearth-server`, each engine in a process of its own (so each end's memory is its
//! own). Beside it, in the same run: node-datachannel (libdatachannel) doing the same transfer
//! (64 KiB chunks, each with its SHA-256, the whole file checked), raw TCP on loopback as the
//! floor, and Hearth again with 20 ms of round trip: in a network namespace whose UDP packets
//! are each held 10 ms (the kernel here has no `netem`, so by the NFQUEUE delayer of
//! [`crate::delay`]; `--rtt-netem` uses `tc netem` where the kernel has it). Last, the relayed
//! path: both ends use only TURN relay candidates and reach the server's embedded TURN through
//! [`DelayProxy`], which holds every datagram 5 ms each way (+20 ms per round trip).
//!
//! Throughput is the file's size over the time from the receiver's accept to its last file
//! verified and renamed (the sender's hashing before the offer is not counted, as the peer's
//! is not). Memory growth is each end's peak RSS (VmHWM) over its RSS once online.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use hearth_client::transfer::{TransferState, Transfers};
use hearth_client::{Engine, EngineOptions};
use serde::{Deserialize, Serialize};

use crate::delay::DelayedNamespace;
use crate::process::ScratchDir;
use crate::report::{Metric, fmt_opt, ratio};
use crate::server::{HearthServer, Paths, workspace_root};

const BENCH: &str = "transfer";
const PASSWORD: &str = "bench transfer password";
const WAIT: Duration = Duration::from_secs(900);

#[derive(Debug, clap::Args)]
pub struct Args {
    /// File size in MiB.
    #[arg(long, env = "BENCH_TRANSFER_MIB", default_value_t = 1024)]
    mib: u64,
    /// Skip the 20 ms round-trip run (it needs root for a network namespace).
    #[arg(long, env = "BENCH_TRANSFER_NO_RTT")]
    no_rtt: bool,
    /// The 20 ms run's delay by `tc netem` (needs sch_netem) instead of the NFQUEUE delayer.
    #[arg(long)]
    rtt_netem: bool,
    /// Size of the relayed run (through TURN at +20 ms round trip) in MiB; 0 skips it.
    #[arg(long, env = "BENCH_TRANSFER_RELAY_MIB", default_value_t = 64)]
    relay_mib: u64,
    /// Only the Hearth transfer (used for the run inside the delayed namespace).
    #[arg(long, hide = true)]
    hearth_only: bool,
}

/// One end of a Hearth transfer, run as `hearth-bench transfer-end` in its own process.
#[derive(Debug, clap::Args)]
pub struct EndArgs {
    #[arg(long)]
    invite: String,
    #[arg(long)]
    name: String,
    /// Receive into this folder (else send).
    #[arg(long)]
    receive_into: Option<PathBuf>,
    /// Send this file to the user id read from stdin.
    #[arg(long)]
    send: Option<PathBuf>,
    /// ICE servers (JSON); only relay candidates are then used.
    #[arg(long)]
    relay_via: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct EndReport {
    state: String,
    seconds: f64,
    rss_growth_mb: f64,
    path: String,
}

fn status_kb(field: &str) -> Option<f64> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = text.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

async fn wait_over(transfers: &Transfers, id: Option<&str>) -> Result<hearth_client::transfer::TransferInfo> {
    let mut events = transfers.subscribe();
    tokio::time::timeout(WAIT, async {
        loop {
            let over = transfers.list().into_iter().find(|t| {
                id.is_none_or(|id| t.id == id)
                    && matches!(
                        t.state,
                        TransferState::Done
                            | TransferState::Failed
                            | TransferState::Cancelled
                            | TransferState::Declined
                    )
            });
            if let Some(t) = over {
                return Ok(t);
            }
            if events.recv().await.is_err() {
                bail!("transfer events ended");
            }
        }
    })
    .await
    .context("the transfer did not finish in time")?
}

/// The child process: one engine that registers, comes online, and sends or receives.
pub async fn end(args: &EndArgs) -> Result<()> {
    let dir = ScratchDir::new(&format!("{BENCH}-{}", args.name))?;
    let mut options = EngineOptions::default();
    options.transfer.link.udp_bind = vec![std::net::SocketAddr::from(([127, 0, 0, 1], 0))];
    if let Some(ice) = &args.relay_via {
        options.transfer.link.ice_servers = serde_json::from_str(ice).context("--relay-via")?;
        options.transfer.link.relay_only = true;
    }
    let engine = Engine::open_with(dir.path(), options)?;
    let account = engine.add_account_from_invite(&args.invite, &args.name, PASSWORD).await?;
    let session = engine.activate(&account.id).await?;
    session.connected().await?;
    let me = session.user().context("no user")?.id;
    println!("{}", serde_json::to_string(&me)?);
    let transfers = engine.transfers()?;
    let baseline = status_kb("VmRSS:").unwrap_or(0.0);
    let (info, seconds) = if let Some(folder) = &args.receive_into {
        let mut events = transfers.subscribe();
        let offer = loop {
            if let Some(t) = transfers.list().into_iter().find(|t| t.state == TransferState::Offered) {
                break t;
            }
            events.recv().await.context("transfer events ended")?;
        };
        let started = Instant::now();
        transfers.accept(&offer.id, folder.clone())?;
        let info = wait_over(&transfers, Some(&offer.id)).await?;
        (info, started.elapsed().as_secs_f64())
    } else {
        let file = args.send.clone().context("--send or --receive-into")?;
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        let to = serde_json::from_str(line.trim()).context("the receiver's id")?;
        let started = Instant::now();
        let id = transfers.send(to, vec![file]).await?;
        let info = wait_over(&transfers, Some(&id)).await?;
        (info, started.elapsed().as_secs_f64())
    };
    let peak = status_kb("VmHWM:").unwrap_or(0.0);
    let report = EndReport {
        state: format!("{:?}", info.state),
        seconds,
        rss_growth_mb: (peak - baseline).max(0.0) / 1024.0,
        path: format!("{:?}", info.path),
    };
    println!("{}", serde_json::to_string(&report)?);
    engine.shutdown().await;
    Ok(())
}

struct Child {
    child: std::process::Child,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
}

impl Child {
    fn spawn(args: &[String]) -> Result<Child> {
        let mut child = Command::new(std::env::current_exe()?)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("starting a transfer end")?;
        let stdout = child.stdout.take().context("no stdout")?;
        Ok(Child { child, lines: BufReader::new(stdout).lines() })
    }

    fn line(&mut self) -> Result<String> {
        self.lines.next().context("the transfer end exited early")?.context("reading a transfer end")
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        // An end that reported exits by itself (removing its scratch directory); give it a moment.
        for _ in 0..50 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A file of `mib` MiB that no two chunks of repeat.
fn make_file(path: &Path, mib: u64) -> Result<()> {
    let mut block = vec![0u8; 1 << 20];
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
    for _ in 0..mib {
        for word in block.chunks_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            word.copy_from_slice(&state.to_le_bytes()[..word.len()]);
        }
        file.write_all(&block)?;
    }
    file.flush()?;
    Ok(())
}

struct HearthRun {
    throughput: f64,
    sender: EndReport,
    receiver: EndReport,
}

async fn hearth(
    paths: &Paths,
    file: &Path,
    dir: &Path,
    label: &str,
    delay: Option<Duration>,
) -> Result<HearthRun> {
    let server = HearthServer::start(paths, &format!("{BENCH}-{label}-{}", std::process::id()), &[]).await?;
    let url = format!("http://{}", server.addr);
    let token = server.setup_token().context("no setup token")?.to_owned();
    let admin_dir = ScratchDir::new(&format!("{BENCH}-admin"))?;
    let admin = Engine::open_with(admin_dir.path(), EngineOptions::default())?;
    let account = admin.register(&url, &token, "admin", PASSWORD).await?;
    admin.activate(&account.id).await?.connected().await?;
    let (_, link) = admin.create_invite(Some(2), None).await?;
    // The delayed run: TURN through the proxy, relay candidates only.
    let mut relay = Vec::new();
    let _proxy = match delay {
        Some(delay) => {
            let mut ice = admin.turn().await?.ice_servers;
            ice.retain(|s| s.urls.iter().any(|u| u.starts_with("turn:")));
            let url =
                ice.first().and_then(|s| s.urls.first()).context("the server hands out no TURN")?.clone();
            let target: std::net::SocketAddr = url
                .trim_start_matches("turn:")
                .split('?')
                .next()
                .and_then(|a| a.parse().ok())
                .context("a TURN URL that is not ip:port")?;
            let proxy = DelayProxy::start(target, delay).await?;
            for s in &mut ice {
                s.urls = vec![format!("turn:{}?transport=udp", proxy.addr)];
            }
            relay = vec!["--relay-via".into(), serde_json::to_string(&ice)?];
            Some(proxy)
        }
        None => None,
    };
    let into = dir.join(format!("received-{label}"));
    std::fs::create_dir_all(&into)?;
    let mut receiver = Child::spawn(
        &[
            "transfer-end".into(),
            "--invite".into(),
            link.clone(),
            "--name".into(),
            "receiver".into(),
            "--receive-into".into(),
            into.to_string_lossy().into_owned(),
        ]
        .into_iter()
        .chain(relay.clone())
        .collect::<Vec<_>>(),
    )?;
    let receiver_id = receiver.line()?;
    let mut sender = Child::spawn(
        &[
            "transfer-end".into(),
            "--invite".into(),
            link,
            "--name".into(),
            "sender".into(),
            "--send".into(),
            file.to_string_lossy().into_owned(),
        ]
        .into_iter()
        .chain(relay)
        .collect::<Vec<_>>(),
    )?;
    let _sender_id = sender.line()?;
    let stdin = sender.child.stdin.as_mut().context("no stdin")?;
    writeln!(stdin, "{receiver_id}")?;
    let (receiver_line, sender_line) =
        tokio::task::spawn_blocking(move || Ok::<_, anyhow::Error>((receiver.line()?, sender.line()?)))
            .await??;
    let receiver: EndReport = serde_json::from_str(&receiver_line)?;
    let sender: EndReport = serde_json::from_str(&sender_line)?;
    if receiver.state != "Done" {
        bail!("the transfer ended {}", receiver.state);
    }
    let size = std::fs::metadata(file)?.len() as f64;
    let _ = std::fs::remove_dir_all(&into);
    admin.shutdown().await;
    server.stop().await?;
    Ok(HearthRun { throughput: size / 1e6 / receiver.seconds, sender, receiver })
}

/// A UDP forwarder that holds every datagram `delay` in each direction: one upstream socket per
/// client address (as a NAT would), so the TURN server sees each client apart.
struct DelayProxy {
    addr: std::net::SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for DelayProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Sends datagrams on `socket` (to `to`, or connected) `delay` after they were queued, in order.
fn delayed_sender(
    socket: std::sync::Arc<tokio::net::UdpSocket>,
    delay: Duration,
) -> tokio::sync::mpsc::UnboundedSender<(tokio::time::Instant, Option<std::net::SocketAddr>, Vec<u8>)> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(
        tokio::time::Instant,
        Option<std::net::SocketAddr>,
        Vec<u8>,
    )>();
    tokio::spawn(async move {
        while let Some((at, to, data)) = rx.recv().await {
            tokio::time::sleep_until(at + delay).await;
            let sent = match to {
                Some(to) => socket.send_to(&data, to).await,
                None => socket.send(&data).await,
            };
            if sent.is_err() {
                return;
            }
        }
    });
    tx
}

impl DelayProxy {
    async fn start(target: std::net::SocketAddr, delay: Duration) -> Result<DelayProxy> {
        use std::collections::HashMap;
        use std::sync::Arc;
        let front = Arc::new(tokio::net::UdpSocket::bind("127.0.0.1:0").await?);
        let addr = front.local_addr()?;
        let back_to_clients = delayed_sender(front.clone(), delay);
        let task = tokio::spawn(async move {
            let mut upstream: HashMap<std::net::SocketAddr, tokio::sync::mpsc::UnboundedSender<_>> =
                HashMap::new();
            let mut buf = vec![0u8; 65536];
            loop {
                let Ok((n, client)) = front.recv_from(&mut buf).await else { return };
                let now = tokio::time::Instant::now();
                if let std::collections::hash_map::Entry::Vacant(slot) = upstream.entry(client) {
                    let Ok(socket) = tokio::net::UdpSocket::bind("127.0.0.1:0").await else { continue };
                    if socket.connect(target).await.is_err() {
                        continue;
                    }
                    let socket = Arc::new(socket);
                    slot.insert(delayed_sender(socket.clone(), delay));
                    let back = back_to_clients.clone();
                    tokio::spawn(async move {
                        let mut buf = vec![0u8; 65536];
                        while let Ok(n) = socket.recv(&mut buf).await {
                            if back
                                .send((tokio::time::Instant::now(), Some(client), buf[..n].to_vec()))
                                .is_err()
                            {
                                return;
                            }
                        }
                    });
                }
                if let Some(up) = upstream.get(&client) {
                    let _gone = up.send((now, None, buf[..n].to_vec()));
                }
            }
        });
        Ok(DelayProxy { addr, task })
    }
}

/// Raw TCP on loopback with the same file reads and writes: the floor.
fn tcp_floor(file: &Path, dir: &Path) -> Result<f64> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let dest = dir.join("tcp-received.bin");
    let dest2 = dest.clone();
    let receiver = std::thread::spawn(move || -> Result<u64> {
        let (mut socket, _) = listener.accept()?;
        let mut out = std::fs::File::create(&dest2)?;
        Ok(std::io::copy(&mut socket, &mut out)?)
    });
    let started = Instant::now();
    let mut socket = std::net::TcpStream::connect(addr)?;
    let mut input = std::fs::File::open(file)?;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = input.read(&mut buf)?;
        if n == 0 {
            break;
        }
        socket.write_all(&buf[..n])?;
    }
    drop(socket);
    let bytes = receiver.join().map_err(|_| anyhow::anyhow!("receiver panicked"))??;
    let secs = started.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(&dest);
    Ok(bytes as f64 / 1e6 / secs)
}

#[derive(Deserialize)]
struct PeerReport {
    bytes: f64,
    seconds: f64,
    ok: bool,
}

fn node_datachannel(paths: &Paths, file: &Path, dir: &Path) -> Result<f64> {
    let script = workspace_root().join("bench/peers/datachannel/transfer.mjs");
    let dest = dir.join("ndc-received.bin");
    let out = Command::new(&paths.node).arg(script).arg(file).arg(&dest).output().context("running node")?;
    let _ = std::fs::remove_file(&dest);
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().last().context("node-datachannel printed nothing")?;
    let report: PeerReport = serde_json::from_str(line).context("node-datachannel's report")?;
    if !report.ok {
        bail!("node-datachannel's copy has the wrong hash");
    }
    Ok(report.bytes / 1e6 / report.seconds)
}

/// Hearth again inside a fresh network namespace whose UDP packets are each delayed 10 ms
/// (20 ms of round trip on its loopback): by `tc netem` when asked (`--rtt-netem`, where the
/// kernel has sch_netem), else by the NFQUEUE delayer ([`crate::delay`]). The inner run first
/// measures the UDP round trip it gets and the result is refused unless it is 20 ms or more.
fn rtt20(paths: &Paths, mib: u64, netem: bool) -> Result<f64> {
    let ns = DelayedNamespace::new("rtt20", 10, netem)?;
    let out = Command::new("ip")
        .args(["netns", "exec", &ns.name])
        .arg(std::env::current_exe()?)
        .arg("--server-bin")
        .arg(&paths.server_bin)
        .args(["transfer", "--hearth-only", "--mib", &mib.to_string()])
        .stderr(Stdio::inherit())
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let values: Vec<serde_json::Value> =
        text.lines().filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()).collect();
    let find = |metric: &str| values.iter().find(|v| v["metric"] == metric).and_then(|v| v["value"].as_f64());
    let rtt = find("udp_rtt_ms").context("the delayed run printed no round trip")?;
    println!("  delayed namespace: UDP round trip {rtt:.1} ms");
    if rtt < 19.5 {
        bail!("the namespace's round trip is {rtt:.1} ms, not 20: the delay is not working");
    }
    let drops = ns.drops()?;
    println!("  delayed namespace: {drops} packets dropped by the delayer");
    if drops > 0 {
        bail!("the delayer dropped {drops} packets: the run measured losses, not only the round trip");
    }
    find("throughput_mb_s").context("the delayed run printed no throughput")
}

/// Median round trip of small UDP datagrams to an echo socket on loopback.
fn udp_rtt_ms() -> Result<f64> {
    let echo = std::net::UdpSocket::bind("127.0.0.1:0")?;
    let echo_addr = echo.local_addr()?;
    std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        while let Ok((n, from)) = echo.recv_from(&mut buf) {
            let _ = echo.send_to(&buf[..n], from);
        }
    });
    let probe = std::net::UdpSocket::bind("127.0.0.1:0")?;
    probe.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut samples = vec![];
    let mut buf = [0u8; 64];
    for i in 0u32..21 {
        let start = Instant::now();
        probe.send_to(&i.to_le_bytes(), echo_addr)?;
        probe.recv_from(&mut buf).context("no echo")?;
        samples.push(start.elapsed().as_secs_f64() * 1e3);
    }
    samples.sort_by(f64::total_cmp);
    Ok(samples[samples.len() / 2])
}

pub async fn run(paths: &Paths, args: &Args) -> Result<Vec<Metric>> {
    let dir = ScratchDir::new(BENCH)?;
    let file = dir.path().join("source.bin");
    make_file(&file, args.mib)?;
    println!("transfer: {} MiB over loopback", args.mib);
    let run = hearth(paths, &file, dir.path(), "loopback", None).await?;
    println!(
        "  hearth: {:.1} MB/s ({:.1} s, path {}), memory growth sender {:.1} MB, receiver {:.1} MB",
        run.throughput,
        run.receiver.seconds,
        run.receiver.path,
        run.sender.rss_growth_mb,
        run.receiver.rss_growth_mb
    );
    let mut metrics = vec![];
    if args.hearth_only {
        // Inside the delayed namespace: this number and the round trip it was made at.
        metrics.push(Metric::new(BENCH, "throughput_mb_s", Some(run.throughput), "MB/s"));
        metrics.push(Metric::new(BENCH, "udp_rtt_ms", Some(udp_rtt_ms()?), "ms"));
        return Ok(metrics);
    }
    let peer =
        node_datachannel(paths, &file, dir.path()).map_err(|e| eprintln!("  node-datachannel: {e:#}")).ok();
    println!("  node-datachannel: {} MB/s", fmt_opt(peer, 1));
    let floor = tcp_floor(&file, dir.path()).map_err(|e| eprintln!("  tcp floor: {e:#}")).ok();
    println!("  raw TCP floor: {} MB/s", fmt_opt(floor, 1));
    let delayed = if args.no_rtt {
        None
    } else {
        rtt20(paths, args.mib, args.rtt_netem).map_err(|e| eprintln!("  20 ms RTT run: {e:#}")).ok()
    };
    println!(
        "  hearth at 20 ms RTT: {} MB/s ({})",
        fmt_opt(delayed, 1),
        if args.rtt_netem { "tc netem" } else { "NFQUEUE delay" }
    );
    // The relayed path (no direct route: both ends use TURN relay candidates), reaching the
    // embedded TURN through a proxy holding each datagram 5 ms each way (+20 ms per round trip).
    let relayed = if args.relay_mib == 0 {
        None
    } else {
        let relay_file = dir.path().join("relay.bin");
        make_file(&relay_file, args.relay_mib)?;
        hearth(paths, &relay_file, dir.path(), "relay", Some(Duration::from_millis(5)))
            .await
            .map(|r| r.throughput)
            .map_err(|e| eprintln!("  relayed run: {e:#}"))
            .ok()
    };
    println!(
        "  hearth relayed through TURN at +20 ms: {} MB/s ({} MiB)",
        fmt_opt(relayed, 1),
        args.relay_mib
    );
    if let Some(r) = ratio(Some(run.throughput), peer) {
        println!("  hearth / node-datachannel: {r:.2}x");
    }
    metrics.push(
        Metric::new(BENCH, "throughput_mb_s", Some(run.throughput), "MB/s")
            .peer("node-datachannel 0.33.4", peer)
            .target(">=100 and >=1.2x peer"),
    );
    metrics.push(Metric::new(BENCH, "tcp_floor_mb_s", floor, "MB/s").peer("raw tcp loopback", floor));
    metrics.push(Metric::new(BENCH, "throughput_rtt20_mb_s", delayed, "MB/s").target(">=40"));
    metrics.push(Metric::new(BENCH, "throughput_relay_rtt20_mb_s", relayed, "MB/s"));
    metrics.push(
        Metric::new(BENCH, "peak_rss_growth_mb_sender", Some(run.sender.rss_growth_mb), "MB").target("<=64"),
    );
    metrics.push(
        Metric::new(BENCH, "peak_rss_growth_mb_receiver", Some(run.receiver.rss_growth_mb), "MB")
            .target("<=64"),
    );
    Ok(metrics)
}
