//! Calls between two homes behind NAT: Linux network namespaces set up by `scripts/netns.sh`
//! (two home networks, each behind a router doing iptables MASQUERADE, and an "internet"
//! namespace holding the server). The server and the two engines run in this test binary,
//! re-executed inside their namespaces (`ip netns exec NS <this binary> netns_child --exact`)
//! with a role in `HEARTH_NAT_ROLE`; they talk to the test over lines on stdout.
//!
//! First the two homes connect directly: their host addresses are private and unroutable, so
//! a direct path means the server-reflexive candidates punched through both NATs (Linux
//! MASQUERADE keeps the source port, i.e. its mapping does not depend on the destination).
//! Then UDP between the two routers is dropped, and the call must go through the server's
//! embedded TURN relay. Each peer reports the path its connection took and the frames it heard.
//!
//! Needs root, `ip netns` and iptables; without them the test says why and passes without
//! running (scripts/test.sh runs as root and installs both).

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use common::{PASSWORD, fast};
use hearth_client::Engine;
use hearth_client::call::{Call, CallConfig, CallEvent, PathKind, PeerState};
use hearth_protocol::ChannelId;
use hearth_protocol::model::ChannelKind;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout};

/// Where the server listens inside the internet namespace (see scripts/netns.sh).
const SERVER_IP: &str = "203.0.113.1";
/// 20 ms frames each peer sends once connected.
const FRAMES: usize = 50;
/// How long a child may take for its part (register, connect, talk, measure).
const CHILD_WAIT: Duration = Duration::from_secs(60);
/// Lines children print for the test start with this.
const PREFIX: &str = "HEARTH-NAT ";

/// What the server child prints once it is up.
#[derive(Debug, Serialize, Deserialize)]
struct ServerReady {
    url: String,
    channel: ChannelId,
    invites: Vec<String>,
}

/// What a peer child prints at the end.
#[derive(Debug, Serialize, Deserialize)]
struct PeerReport {
    name: String,
    /// The call came up to the other peer.
    connected: bool,
    /// "direct", "relayed" or "unknown".
    path: String,
    rtt_ms: Option<f64>,
    /// Frames of the other peer that never arrived.
    missing: Vec<usize>,
    error: Option<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_homes_behind_nat_punch_through_or_fall_back_to_the_relay() {
    if let Some(why) = cannot_run() {
        eprintln!("skipping the NAT test: {why}");
        return;
    }
    let net = Namespaces::up();
    let mut server = net.spawn("inet", "server", &[]);
    let ready: ServerReady = server.report().await;
    let mut invites = ready.invites.chunks(2).enumerate();
    let mut call = |phase: &'static str| {
        let (round, pair) = invites.next().expect("two invites per call");
        net.call(&ready, phase, round, &pair[0], &pair[1])
    };

    // Plain MASQUERADE routers: the first check from either home reaches the other router
    // before that home has sent anything back, and the connection-tracking entry it leaves
    // makes the router pick another port for the home's own packets (see scripts/netns.sh):
    // no hole is ever punched, and ICE falls back to the relay on its own.
    call("plain NAT").await.expect_path("relayed");

    // With the usual home-router firewall (unsolicited packets to the router dropped before
    // they leave an entry), the mapping keeps its port, and the server-reflexive candidates
    // join the homes directly (their host addresses are private and unroutable).
    net.script("firewall");
    call("firewalled NAT").await.expect_path("direct");

    // No UDP between the homes at all: only the relay on the server joins them.
    net.script("block-udp");
    call("blocked UDP").await.expect_path("relayed");

    server.stop().await;
}

/// What both peers of one call reported.
struct CallOutcome {
    phase: &'static str,
    reports: [PeerReport; 2],
}

impl CallOutcome {
    /// Both connected, over `path`, and each heard every frame of the other. The path is the
    /// same pair seen from both ends; one end may not name it (its quality report says
    /// "unknown" when the selected pair's remote candidate is peer-reflexive, or no
    /// measurement came in time), so one end must name it and neither may contradict it.
    fn expect_path(&self, path: &str) {
        for report in &self.reports {
            eprintln!("{}: {report:?}", self.phase);
            assert!(report.connected, "{}: {} never connected: {report:?}", self.phase, report.name);
            assert!(report.missing.is_empty(), "{}: {} lost frames: {report:?}", self.phase, report.name);
            assert!(
                report.path == path || report.path == "unknown",
                "{}: {}'s path is {}, not {path}: {report:?}",
                self.phase,
                report.name,
                report.path
            );
        }
        assert!(
            self.reports.iter().any(|r| r.path == path),
            "{}: neither end reports the {path} path: {:?}",
            self.phase,
            self.reports.iter().map(|r| &r.path).collect::<Vec<_>>()
        );
    }
}

/// Why this machine cannot run the test, if it cannot.
fn cannot_run() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let uid = status.lines().find_map(|l| l.strip_prefix("Uid:")).and_then(|l| l.split_whitespace().next());
    if uid != Some("0") {
        return Some("it needs root (network namespaces and iptables)".into());
    }
    let works = |cmd: &str, args: &[&str]| {
        std::process::Command::new(cmd)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !works("ip", &["netns", "list"]) {
        return Some("`ip netns` is not available (Debian package iproute2)".into());
    }
    if !works("iptables", &["--version"]) {
        return Some("iptables is not available (Debian package iptables)".into());
    }
    None
}

/// The namespaces of one run, named after a random id; deleted on drop, whatever happened.
struct Namespaces {
    id: String,
    script: PathBuf,
}

impl Namespaces {
    fn up() -> Namespaces {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/netns.sh");
        let net = Namespaces { id: format!("{:06x}", rand::random::<u32>() & 0xff_ffff), script };
        // Constructed first, so a failing `up` is still cleaned up by the drop.
        net.script("up");
        net
    }

    fn script(&self, command: &str) {
        let status = std::process::Command::new("bash")
            .arg(&self.script)
            .args([command, &self.id])
            .status()
            .expect("running scripts/netns.sh");
        assert!(status.success(), "scripts/netns.sh {command} {} failed: {status}", self.id);
    }

    /// A call between a new member in each home: both join, talk and report.
    async fn call(
        &self,
        server: &ServerReady,
        phase: &'static str,
        round: usize,
        invite_a: &str,
        invite_b: &str,
    ) -> CallOutcome {
        let channel = serde_json::to_string(&server.channel).expect("channel id");
        let peer = |ns: &str, name: &str, invite: &str| {
            let env = [
                ("HEARTH_NAT_URL", server.url.as_str()),
                ("HEARTH_NAT_CHANNEL", channel.as_str()),
                ("HEARTH_NAT_INVITE", invite),
                ("HEARTH_NAT_NAME", name),
            ];
            self.spawn(ns, "peer", &env)
        };
        let (alice, bob) = (format!("alice{round}"), format!("bob{round}"));
        let (mut a, mut b) = (peer("home-a", &alice, invite_a), peer("home-b", &bob, invite_b));
        let (at_a, at_b) = tokio::join!(a.report(), b.report());
        CallOutcome { phase, reports: [at_a, at_b] }
    }

    fn name(&self, short: &str) -> String {
        format!("hearth-{}-{short}", self.id)
    }

    /// Runs this test binary's `netns_child` inside namespace `ns` with `role`.
    fn spawn(&self, ns: &str, role: &str, env: &[(&str, &str)]) -> ChildProcess {
        let exe = std::env::current_exe().expect("test binary path");
        let mut child = tokio::process::Command::new("ip")
            .args(["netns", "exec", &self.name(ns)])
            .arg(exe)
            .args(["netns_child", "--exact", "--nocapture", "--test-threads=1"])
            .env("HEARTH_NAT_ROLE", role)
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("starting a child in a namespace");
        let stdout = child.stdout.take().expect("piped stdout");
        ChildProcess { role: format!("{role} in {ns}"), child, lines: BufReader::new(stdout).lines() }
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        // Also ends whatever still runs inside them.
        let cleaned = std::process::Command::new("bash").arg(&self.script).args(["down", &self.id]).status();
        if !cleaned.as_ref().is_ok_and(|s| s.success()) {
            eprintln!("scripts/netns.sh down {} failed: {cleaned:?}", self.id);
        }
    }
}

/// A child in a namespace; killed when dropped.
struct ChildProcess {
    role: String,
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl ChildProcess {
    /// The child's next report line, parsed. Its other output is passed on to ours.
    async fn report<T: serde::de::DeserializeOwned>(&mut self) -> T {
        let read = async {
            while let Some(line) = self.lines.next_line().await.expect("reading a child's output") {
                // The child's test harness may have started the line ("test netns_child ... ").
                match line.split_once(PREFIX) {
                    Some((_, json)) => return serde_json::from_str(json).expect("a child's report"),
                    None => println!("[{}] {line}", self.role),
                }
            }
            panic!("{} ended without reporting", self.role);
        };
        match tokio::time::timeout(CHILD_WAIT, read).await {
            Ok(report) => report,
            Err(_) => panic!("{} did not report within {CHILD_WAIT:?}", self.role),
        }
    }

    /// Closes the child's stdin (its signal to stop) and waits for it.
    async fn stop(mut self) {
        drop(self.child.stdin.take());
        match tokio::time::timeout(CHILD_WAIT, self.child.wait()).await {
            Ok(Ok(status)) => assert!(status.success(), "{} failed: {status}", self.role),
            Ok(Err(e)) => panic!("waiting for {}: {e}", self.role),
            Err(_) => panic!("{} did not stop", self.role),
        }
    }
}

/// Not a test by itself: the body of the children the NAT test starts inside namespaces. Without
/// `HEARTH_NAT_ROLE` it does nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn netns_child() {
    match std::env::var("HEARTH_NAT_ROLE").as_deref() {
        Ok("server") => run_server().await,
        Ok("peer") => run_peer().await,
        Ok(other) => panic!("unknown HEARTH_NAT_ROLE {other:?}"),
        Err(_) => {}
    }
}

fn report(value: &impl Serialize) {
    println!("{PREFIX}{}", serde_json::to_string(value).expect("report"));
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} not set"))
}

/// The server on the internet side: the embedded TURN on the same address, one voice channel,
/// and an invite per peer (two per call). Runs until stdin closes.
async fn run_server() {
    let dir = common::temp_dir("nat-server");
    let options = hearth_server::config::Options {
        data_dir: Some(dir.path().to_path_buf()),
        listen: Some(format!("{SERVER_IP}:8080").parse().expect("address")),
        public_url: Some(format!("http://{SERVER_IP}:8080")),
        turn_listen: Some(format!("{SERVER_IP}:3478").parse().expect("address")),
        turn_relay_address: Some(SERVER_IP.parse().expect("address")),
        argon2_concurrency: Some(2),
        ..Default::default()
    };
    let config = hearth_server::config::Config::resolve(options).expect("server config");
    let shutdown = tokio_util::sync::CancellationToken::new();
    let server = tokio::spawn(hearth_server::serve(config, shutdown.clone()));
    let token_file = dir.path().join("setup-token");
    let deadline = tokio::time::Instant::now() + common::WAIT;
    while !dir.path().join("server.addr").exists() || !token_file.exists() {
        assert!(!server.is_finished(), "the server ended during start");
        assert!(tokio::time::Instant::now() < deadline, "the server did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let url = format!("http://{SERVER_IP}:8080");
    let token = std::fs::read_to_string(&token_file).expect("setup token");
    let admin_dir = common::temp_dir("nat-admin");
    let admin = Engine::open_with(admin_dir.path(), fast()).expect("engine");
    let account = admin.register(&url, token.trim(), "admin", PASSWORD).await.expect("register the admin");
    let session = admin.activate(&account.id).await.expect("activate the admin");
    tokio::time::timeout(common::WAIT, session.connected())
        .await
        .expect("admin online in time")
        .expect("online");
    let channel = admin.create_channel("lounge", ChannelKind::Voice).await.expect("voice channel").id;
    let mut invites = Vec::new();
    for _ in 0..6 {
        invites.push(admin.create_invite(Some(1), None).await.expect("invite").1);
    }
    report(&ServerReady { url, channel, invites });

    let stdin_closed = tokio::task::spawn_blocking(|| {
        let mut rest = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut rest)
    });
    let _eof_or_error_both_mean_stop = stdin_closed.await;
    shutdown.cancel();
    server.await.expect("server task").expect("server ran");
}

/// An engine in a home: joins the channel on its own network (no loopback binding), talks
/// with the one other member, and reports the path and what it heard.
async fn run_peer() {
    let name = env("HEARTH_NAT_NAME");
    let outcome = talk(&name).await;
    let report_of = match outcome {
        Ok(report) => report,
        Err(error) => PeerReport {
            name: name.clone(),
            connected: false,
            path: "unknown".into(),
            rtt_ms: None,
            missing: Vec::new(),
            error: Some(error),
        },
    };
    report(&report_of);
}

async fn talk(name: &str) -> Result<PeerReport, String> {
    let dir = common::temp_dir(name);
    let engine = Engine::open_with(dir.path(), fast()).map_err(|e| format!("engine: {e}"))?;
    let account = engine
        .add_account_from_invite(&env("HEARTH_NAT_INVITE"), name, PASSWORD)
        .await
        .map_err(|e| format!("register: {e}"))?;
    let session = engine.activate(&account.id).await.map_err(|e| format!("activate: {e}"))?;
    tokio::time::timeout(common::WAIT, session.connected())
        .await
        .map_err(|_| "no session in time".to_string())?
        .map_err(|e| format!("session: {e}"))?;
    let channel: ChannelId = serde_json::from_str(&env("HEARTH_NAT_CHANNEL")).map_err(|e| e.to_string())?;
    let turn = engine.turn().await.map_err(|e| format!("TURN credentials: {e}"))?;
    let config =
        CallConfig { quality_interval: Duration::from_millis(250), ..CallConfig::new(turn.ice_servers) };
    let (call, mut streams) = Call::join(session, channel, config).await.map_err(|e| format!("join: {e}"))?;

    // The other member: whoever shows up connected.
    let mut peers = call.watch_peers();
    let other = tokio::time::timeout(CHILD_WAIT / 2, async {
        loop {
            if let Some(p) = peers.borrow_and_update().values().find(|p| p.state == PeerState::Connected) {
                return Ok(p.user_id);
            }
            if peers.changed().await.is_err() {
                return Err("the call ended".to_string());
            }
        }
    })
    .await
    .map_err(|_| format!("not connected in time; peers: {:?}", call.peers()))??;

    let send = async {
        let mut pace = tokio::time::interval(Duration::from_millis(20));
        for i in 0..FRAMES {
            pace.tick().await;
            call.send_packet(format!("{name}:{i:04}").as_bytes(), 960).await;
        }
    };
    let hear = async {
        let mut heard = BTreeSet::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while heard.len() < FRAMES {
            match tokio::time::timeout_at(deadline, streams.media.recv()).await {
                Ok(Some(packet)) if packet.user_id == other => {
                    let text = String::from_utf8_lossy(&packet.payload).into_owned();
                    if let Some(i) = text.rsplit(':').next().and_then(|i| i.parse::<usize>().ok()) {
                        heard.insert(i);
                    }
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
        heard
    };
    let ((), heard) = tokio::join!(send, hear);
    // A measurement taken from now on: the path in use at the end, and a moment for our last
    // frame to leave before we do.
    let mut events = call.subscribe();
    // A dozen measurements; one end may never name the path (see `expect_path`).
    let quality = tokio::time::timeout(Duration::from_secs(3), async {
        loop {
            match events.recv().await {
                Ok(CallEvent::Quality { user_id, quality })
                    if user_id == other && quality.path != PathKind::Unknown =>
                {
                    return Some(quality);
                }
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            }
        }
    })
    .await
    .ok()
    .flatten();
    call.leave().await;
    Ok(PeerReport {
        name: name.to_string(),
        connected: true,
        path: match quality.as_ref().map(|q| q.path) {
            Some(PathKind::Direct) => "direct",
            Some(PathKind::Relayed) => "relayed",
            _ => "unknown",
        }
        .to_string(),
        rtt_ms: quality.and_then(|q| q.rtt).map(|d| d.as_secs_f64() * 1000.0),
        missing: (0..FRAMES).filter(|i| !heard.contains(i)).collect(),
        error: None,
    })
}
