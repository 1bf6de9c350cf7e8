//! `turn-relay`: the packet rate the embedded TURN server relays with under 1% loss, beside
//! coturn (Debian's `turnserver`, REST-API auth with the same shared secret) on the same box.
//!
//! Each of `allocations` clients allocates a UDP relay and binds a channel to its own echo
//! peer; then every client pushes 160-byte packets (the size of a 20 ms Opus voice frame with
//! its RTP header) as ChannelData at a paced rate. The peer sends each packet back through the
//! relay, so every packet is relayed twice (client → peer, peer → client) and the relay rate is
//! twice the send rate. The rate rises step by step (×1.5) until loss reaches 1% or the load
//! generator cannot keep the pace, then bisects between the last good and the first bad step.
//! Both servers get the credentials Hearth hands out (`GET /api/v1/turn`): coturn accepts them
//! because the scheme is coturn's.
//!
//! The client speaks raw STUN/TURN (the webrtc-rs `stun` and `turn` message types, no client
//! state machine), so the generator costs as little CPU per packet as a UDP socket allows;
//! still, client, peers and server share the same cores, as they would not in production.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use stun::agent::TransactionId;
use stun::attributes::ATTR_NONCE;
use stun::attributes::ATTR_REALM;
use stun::error_code::ErrorCodeAttribute;
use stun::fingerprint::FINGERPRINT;
use stun::integrity::MessageIntegrity;
use stun::message::{
    CLASS_ERROR_RESPONSE, CLASS_REQUEST, CLASS_SUCCESS_RESPONSE, Getter, METHOD_ALLOCATE, METHOD_BINDING,
    METHOD_CHANNEL_BIND, Message, MessageType, Method, Setter,
};
use stun::textattrs::{Nonce, Realm, Username};
use tokio::net::UdpSocket;
use tokio::task::JoinSet;
use tokio::time::Instant;
use turn::proto::channum::ChannelNumber;
use turn::proto::peeraddr::PeerAddress;
use turn::proto::relayaddr::RelayedAddress;
use turn::proto::reqtrans::RequestedTransport;

use crate::process::{ScratchDir, ServerProcess, cpu_seconds};
use crate::report::{Metric, fmt_opt, ratio};
use crate::server::{HearthServer, Paths};

const BENCH: &str = "turn-relay";
/// An Opus voice frame of 20 ms at ~50 kbit/s with its RTP header.
const PACKET: usize = 160;
const CHANNEL: u16 = 0x4000;
/// Secret shared by Hearth and coturn for the run.
const SECRET: &str = "turn-relay-bench-secret";

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Relays allocated (each with its own client socket and echo peer).
    #[arg(long, env = "TURN_RELAY_ALLOCATIONS", default_value_t = 8)]
    pub allocations: usize,
    /// First send rate tried, packets per second over all clients.
    #[arg(long, env = "TURN_RELAY_START_PPS", default_value_t = 2000)]
    pub start_pps: u64,
    /// Seconds each rate is held.
    #[arg(long, env = "TURN_RELAY_STEP_SECS", default_value_t = 2.0)]
    pub step_secs: f64,
    /// Bisection steps between the last good and the first bad rate.
    #[arg(long, env = "TURN_RELAY_BISECT", default_value_t = 4)]
    pub bisect: u32,
    /// Loss (fraction) above which a rate fails.
    #[arg(long, env = "TURN_RELAY_MAX_LOSS", default_value_t = 0.01)]
    pub max_loss: f64,
    /// The coturn binary.
    #[arg(long, env = "TURN_RELAY_COTURN", default_value = "/usr/bin/turnserver")]
    pub coturn: std::path::PathBuf,
}

pub async fn run(paths: &Paths, args: &Args) -> Result<Vec<Metric>> {
    if !args.coturn.exists() {
        bail!("{} not found: install Debian's `coturn` (bench/run.sh does)", args.coturn.display());
    }
    // Hearth: the embedded server on a free port, relays from its own range.
    let hearth_args: Vec<String> =
        ["--turn-secret", SECRET, "--turn-relay-port-min", "40000", "--turn-relay-port-max", "44999"]
            .iter()
            .map(|s| s.to_string())
            .collect();
    let server = HearthServer::start(paths, "turn-relay", &hearth_args).await?;
    let group = server.bootstrap(0, "turn-relay").await?;
    let creds = server.api.turn_credentials(&group.admin.access_token).await?;
    let turn = creds
        .ice_servers
        .iter()
        .find(|s| s.urls.iter().any(|u| u.starts_with("turn:")))
        .context("Hearth handed out no TURN server: is the embedded one on?")?;
    let url = turn.urls.iter().find(|u| u.starts_with("turn:")).context("turn: URL")?;
    let hearth_addr: SocketAddr = url
        .trim_start_matches("turn:")
        .split('?')
        .next()
        .unwrap_or_default()
        .parse()
        .with_context(|| format!("TURN URL {url} is not turn:IP:PORT"))?;
    let username = turn.username.clone().context("TURN username")?;
    let password = turn.credential.clone().context("TURN credential")?;
    println!("hearth embedded TURN at {hearth_addr}");
    let hearth = measure("hearth", hearth_addr, server.pid(), &username, &password, args).await;
    server.stop().await?;
    let hearth = hearth?;

    // coturn on other ports, same secret, same credentials.
    let scratch = ScratchDir::new("coturn")?;
    let coturn_port = free_udp_port().await?;
    let coturn = start_coturn(paths, &args.coturn, scratch.path(), coturn_port)?;
    let coturn_addr = SocketAddr::from((Ipv4Addr::LOCALHOST, coturn_port));
    wait_for_stun(coturn_addr).await.context("coturn did not answer STUN")?;
    let version = coturn_version(&args.coturn).await;
    println!("{version} at {coturn_addr}");
    let peer = measure("coturn", coturn_addr, coturn.pid(), &username, &password, args).await;
    coturn.stop().await?;
    let peer = peer?;

    let value = hearth.best.map(|s| s.relay_pps());
    let peer_value = peer.best.map(|s| s.relay_pps());
    println!();
    println!(
        "== turn-relay: relayed packets/s with < {:.0}% loss ({PACKET}-byte packets)",
        args.max_loss * 100.0
    );
    for (name, result) in [("hearth", &hearth), (version.as_str(), &peer)] {
        match &result.best {
            Some(s) => println!(
                "{name:>16}: {:>8.0} relayed/s (send {:.0}/s, loss {:.3}%, server CPU {:.0}% of a core){}",
                s.relay_pps(),
                s.sent_pps,
                s.loss * 100.0,
                s.server_cpu * 100.0,
                if result.generator_bound { "  [load generator saturated first]" } else { "" }
            ),
            None => println!("{name:>16}: no rate under the loss limit"),
        }
    }
    println!("  hearth / coturn: {}", fmt_opt(ratio(value, peer_value), 2));
    Ok(vec![
        Metric::new(BENCH, "relay_pps", value, "packets/s")
            .peer("coturn", peer_value)
            .target(">= 0.5x coturn"),
    ])
}

/// One rate held for a step: what was sent, what came back.
#[derive(Debug, Clone, Copy)]
struct Step {
    sent_pps: f64,
    loss: f64,
    /// Server CPU over the step, in cores.
    server_cpu: f64,
}

impl Step {
    /// Each packet crosses the relay twice.
    fn relay_pps(&self) -> f64 {
        self.sent_pps * (1.0 - self.loss) * 2.0
    }
}

struct Outcome {
    best: Option<Step>,
    generator_bound: bool,
}

async fn measure(
    label: &str,
    server: SocketAddr,
    server_pid: u32,
    username: &str,
    password: &str,
    args: &Args,
) -> Result<Outcome> {
    let mut flows = Vec::new();
    for i in 0..args.allocations {
        let flow = Flow::open(server, username, password)
            .await
            .with_context(|| format!("{label}: allocation {i}"))?;
        flows.push(Arc::new(flow));
    }
    let step_id = Arc::new(AtomicU32::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = JoinSet::new();
    for flow in &flows {
        tasks.spawn(echo(flow.clone(), stop.clone()));
        tasks.spawn(receive(flow.clone(), step_id.clone(), stop.clone()));
    }

    let mut good: Option<(u64, Step)> = None;
    let mut bad: Option<u64> = None;
    let mut generator_bound = false;
    let mut rate = args.start_pps.max(100);
    let mut bisections = 0;
    let mut id = 0;
    loop {
        id += 1;
        let step = run_step(&flows, &step_id, id, rate, args.step_secs, server_pid).await?;
        let paced = step.sent_pps >= rate as f64 * 0.95;
        let ok = paced && step.loss < args.max_loss;
        println!(
            "{label:>8} offered {rate:>7}/s sent {:>8.0}/s loss {:>7.3}% server CPU {:>4.0}%{}",
            step.sent_pps,
            step.loss * 100.0,
            step.server_cpu * 100.0,
            if ok {
                ""
            } else if paced {
                "  (over the loss limit)"
            } else {
                "  (generator could not keep the pace)"
            }
        );
        if ok {
            if good.is_none_or(|(r, _)| rate > r) {
                good = Some((rate, step));
            }
        } else {
            if !paced && step.loss < args.max_loss {
                generator_bound = true;
            }
            bad = Some(bad.map_or(rate, |b| b.min(rate)));
        }
        rate = match (good, bad) {
            (_, None) => rate * 3 / 2,
            (None, Some(b)) if b > 200 => b / 2,
            (None, Some(_)) => break,
            (Some((g, _)), Some(b)) => {
                if bisections >= args.bisect || b <= g + g / 50 {
                    break;
                }
                bisections += 1;
                (g + b) / 2
            }
        };
    }
    generator_bound = generator_bound && good.is_some_and(|(g, _)| bad.is_some_and(|b| b <= g * 2));
    stop.store(true, Ordering::Relaxed);
    for flow in &flows {
        // Wake the receive loops so they see the stop flag.
        flow.peer.send_to(&[0u8; 4], flow.relayed).await.ok();
        flow.peer.send_to(&[0u8; 4], flow.client.local_addr()?).await.ok();
        let peer_addr = flow.peer.local_addr()?;
        flow.client.send_to(&[0u8; 4], peer_addr).await.ok();
    }
    // The loops may still wait for a packet that never comes; they end with the runtime.
    tasks.abort_all();
    Ok(Outcome { best: good.map(|(_, s)| s), generator_bound })
}

/// Sends at `rate` packets/s over all flows for `secs`, then counts what came back.
async fn run_step(
    flows: &[Arc<Flow>],
    step_id: &Arc<AtomicU32>,
    id: u32,
    rate: u64,
    secs: f64,
    server_pid: u32,
) -> Result<Step> {
    for flow in flows {
        flow.received.store(0, Ordering::Relaxed);
    }
    step_id.store(id, Ordering::Relaxed);
    let cpu_before = cpu_seconds(server_pid).unwrap_or(0.0);
    let started = Instant::now();
    let per_flow = rate as f64 / flows.len() as f64;
    let duration = Duration::from_secs_f64(secs);
    let mut senders = JoinSet::new();
    for flow in flows {
        let flow = flow.clone();
        senders.spawn(async move { flow.send_paced(id, per_flow, duration).await });
    }
    let mut sent = 0u64;
    while let Some(result) = senders.join_next().await {
        sent += result.context("sender task")??;
    }
    let elapsed = started.elapsed().as_secs_f64();
    // Whatever is still in flight after this is counted as lost.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let cpu = cpu_seconds(server_pid).unwrap_or(0.0) - cpu_before;
    let received: u64 = flows.iter().map(|f| f.received.load(Ordering::Relaxed)).sum();
    step_id.store(0, Ordering::Relaxed);
    let loss = if sent == 0 { 1.0 } else { 1.0 - (received.min(sent) as f64 / sent as f64) };
    Ok(Step { sent_pps: sent as f64 / elapsed, loss, server_cpu: cpu / elapsed })
}

/// One allocation: the client's socket (connected to the server), the relayed address, and
/// the echo peer the channel is bound to.
struct Flow {
    client: UdpSocket,
    relayed: SocketAddr,
    peer: UdpSocket,
    received: AtomicU64,
}

impl Flow {
    async fn open(server: SocketAddr, username: &str, password: &str) -> Result<Flow> {
        let client = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        client.connect(server).await?;
        let peer = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        grow_buffers(&client);
        grow_buffers(&peer);

        // Allocate without credentials: the 401 carries the realm and nonce.
        let udp = || Box::new(RequestedTransport { protocol: turn::proto::PROTO_UDP }) as Box<dyn Setter>;
        let res = transact(&client, METHOD_ALLOCATE, vec![udp()]).await?;
        let nonce = Nonce::get_from_as(&res, ATTR_NONCE).context("no nonce in the first answer")?;
        let realm = Realm::get_from_as(&res, ATTR_REALM).context("no realm in the first answer")?;
        let integrity = MessageIntegrity::new_long_term_integrity(
            username.to_owned(),
            realm.text.clone(),
            password.to_owned(),
        );
        let auth = |mut attrs: Vec<Box<dyn Setter>>| {
            attrs.push(Box::new(Username::new(stun::attributes::ATTR_USERNAME, username.to_owned())));
            attrs.push(Box::new(realm.clone()));
            attrs.push(Box::new(nonce.clone()));
            attrs.push(Box::new(integrity.clone()));
            attrs
        };
        let res = transact(&client, METHOD_ALLOCATE, auth(vec![udp()])).await?;
        expect_success(&res, "allocate")?;
        let mut relayed = RelayedAddress::default();
        relayed.get_from(&res).context("no relayed address")?;
        let relayed = SocketAddr::new(relayed.ip, relayed.port);

        let peer_addr = peer.local_addr()?;
        let res = transact(
            &client,
            METHOD_CHANNEL_BIND,
            auth(vec![
                Box::new(ChannelNumber(CHANNEL)),
                Box::new(PeerAddress { ip: peer_addr.ip(), port: peer_addr.port() }),
            ]),
        )
        .await?;
        expect_success(&res, "channel bind")?;
        Ok(Flow { client, relayed, peer, received: AtomicU64::new(0) })
    }

    /// ChannelData packets `[channel][len][step][seq][padding]` at `pps` for `duration`;
    /// returns how many were sent.
    async fn send_paced(&self, step: u32, pps: f64, duration: Duration) -> Result<u64> {
        let mut packet = vec![0u8; 4 + PACKET];
        packet[0..2].copy_from_slice(&CHANNEL.to_be_bytes());
        packet[2..4].copy_from_slice(&(PACKET as u16).to_be_bytes());
        packet[4..8].copy_from_slice(&step.to_be_bytes());
        let started = Instant::now();
        let mut sent = 0u64;
        let mut tick = tokio::time::interval(Duration::from_millis(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tick.tick().await;
            let elapsed = started.elapsed();
            if elapsed >= duration {
                return Ok(sent);
            }
            let due = (pps * elapsed.as_secs_f64()) as u64;
            while sent < due {
                packet[8..16].copy_from_slice(&sent.to_be_bytes());
                self.client.send(&packet).await.context("sending ChannelData")?;
                sent += 1;
            }
        }
    }
}

/// The peer: sends every packet back to where it came from (the relay).
async fn echo(flow: Arc<Flow>, stop: Arc<AtomicBool>) {
    let mut buf = [0u8; 2048];
    while !stop.load(Ordering::Relaxed) {
        let Ok((n, from)) = flow.peer.recv_from(&mut buf).await else { return };
        // A full send buffer drops the packet: that is loss, as it would be for the relay.
        flow.peer.try_send_to(&buf[..n], from).ok();
    }
}

/// Counts the ChannelData packets of the current step that come back to the client.
async fn receive(flow: Arc<Flow>, step_id: Arc<AtomicU32>, stop: Arc<AtomicBool>) {
    let mut buf = [0u8; 2048];
    while !stop.load(Ordering::Relaxed) {
        let Ok(n) = flow.client.recv(&mut buf).await else { return };
        if n >= 8 && u16::from_be_bytes([buf[0], buf[1]]) == CHANNEL {
            let step = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
            if step != 0 && step == step_id.load(Ordering::Relaxed) {
                flow.received.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// One STUN request/response on a connected socket, retried on silence. `attrs` go between
/// the header and the fingerprint (message integrity, when present, last among them).
async fn transact(socket: &UdpSocket, method: Method, attrs: Vec<Box<dyn Setter>>) -> Result<Message> {
    let mut setters: Vec<Box<dyn Setter>> =
        vec![Box::new(TransactionId::new()), Box::new(MessageType::new(method, CLASS_REQUEST))];
    setters.extend(attrs);
    setters.push(Box::new(FINGERPRINT));
    let mut msg = Message::new();
    msg.build(&setters)?;
    let mut buf = [0u8; 2048];
    for _ in 0..5 {
        socket.send(&msg.raw).await?;
        if let Ok(n) = tokio::time::timeout(Duration::from_millis(500), socket.recv(&mut buf)).await {
            let n = n?;
            let mut res = Message::new();
            if res.unmarshal_binary(&buf[..n]).is_ok() && res.transaction_id == msg.transaction_id {
                return Ok(res);
            }
        }
    }
    bail!("no answer from the TURN server")
}

fn expect_success(res: &Message, what: &str) -> Result<()> {
    if res.typ.class == CLASS_SUCCESS_RESPONSE {
        return Ok(());
    }
    let mut code = ErrorCodeAttribute::default();
    if res.typ.class == CLASS_ERROR_RESPONSE && code.get_from(res).is_ok() {
        bail!("{what} refused: {} {}", code.code.0, String::from_utf8_lossy(&code.reason));
    }
    bail!("{what}: unexpected answer {}", res.typ)
}

/// Larger socket buffers (SO_*BUFFORCE as root, else up to the system maximum), so that the
/// generator's own sockets are not where packets are lost.
fn grow_buffers(socket: &UdpSocket) {
    use std::os::fd::AsRawFd;
    let size: libc::c_int = 4 << 20;
    for (force, plain) in [(libc::SO_RCVBUFFORCE, libc::SO_RCVBUF), (libc::SO_SNDBUFFORCE, libc::SO_SNDBUF)] {
        for option in [force, plain] {
            // SAFETY: setsockopt on a socket we own, with a pointer to a live c_int.
            let rc = unsafe {
                libc::setsockopt(
                    socket.as_raw_fd(),
                    libc::SOL_SOCKET,
                    option,
                    (&size as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
            if rc == 0 {
                break;
            }
        }
    }
}

async fn free_udp_port() -> Result<u16> {
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    Ok(socket.local_addr()?.port())
}

fn start_coturn(paths: &Paths, bin: &Path, dir: &Path, port: u16) -> Result<ServerProcess> {
    let args: Vec<String> = vec![
        "-n".into(), // no configuration file
        "--listening-ip=127.0.0.1".into(),
        format!("--listening-port={port}"),
        "--relay-ip=127.0.0.1".into(),
        "--min-port=45000".into(),
        "--max-port=49999".into(),
        "--use-auth-secret".into(),
        format!("--static-auth-secret={SECRET}"),
        "--realm=hearth".into(),
        // The echo peers are on loopback; coturn refuses loopback peers by default.
        "--allow-loopback-peers".into(),
        "--no-cli".into(),
        "--no-tls".into(),
        "--no-dtls".into(),
        "--no-tcp-relay".into(),
        "--no-rfc5780".into(),
        format!("--userdb={}", dir.join("turndb").display()),
        format!("--pidfile={}", dir.join("turnserver.pid").display()),
        "--log-file=stdout".into(),
        "--simple-log".into(),
    ];
    std::fs::create_dir_all(&paths.out_dir)?;
    ServerProcess::spawn("coturn", bin, &args, &[], &paths.out_dir.join("turn-relay.coturn.log"))
}

/// Waits until a STUN binding request is answered.
async fn wait_for_stun(server: SocketAddr) -> Result<()> {
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    socket.connect(server).await?;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if transact(&socket, METHOD_BINDING, Vec::new()).await.is_ok() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("no STUN answer from {server} in 20 s");
        }
    }
}

async fn coturn_version(bin: &Path) -> String {
    // `turnserver --version` prints the bare version number.
    match tokio::process::Command::new(bin).arg("--version").output().await {
        Ok(out) => {
            let text = String::from_utf8_lossy(&out.stdout);
            let version = text.lines().next().unwrap_or("").trim();
            if version.is_empty() { "coturn".to_owned() } else { format!("coturn {version}") }
        }
        Err(_) => "coturn".to_owned(),
    }
}
