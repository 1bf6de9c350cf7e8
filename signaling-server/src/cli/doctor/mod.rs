//! `hearth-server doctor`: checks, from the server's own machine, what breaks a self-hosted
//! group's chat and voice, and says in plain words what is wrong and how to fix it:
//! the server answering here, the public URL reachable and serving this server, its TLS
//! certificate trusted and matching, WebSocket upgrades passing through the reverse proxy,
//! STUN/TURN answering on the public address over UDP, the relay address it hands out being
//! the public one (behind NAT), the clock, and free disk. Exit status 1 when a check failed.

pub mod http;

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use tokio::net::UdpSocket;

use self::http::{Failure, Upgrade};
use crate::config::Config;

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Check this URL instead of --public-url (e.g. before changing it).
    #[arg(long)]
    pub url: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Ok,
    Warn,
    Fail,
}

/// One line of the report: what was checked, what was found, and what to do.
#[derive(Debug)]
pub struct Finding {
    pub level: Level,
    pub what: String,
    pub detail: String,
    pub fix: Option<String>,
}

fn finding(level: Level, what: impl Into<String>, detail: impl Into<String>, fix: Option<&str>) -> Finding {
    Finding { level, what: what.into(), detail: detail.into(), fix: fix.map(str::to_string) }
}

pub async fn run(args: DoctorArgs, config: &Config) -> anyhow::Result<ExitCode> {
    let public_url = args.url.as_deref().unwrap_or(&config.public_url).trim_end_matches('/').to_string();
    let findings = examine(config, &public_url).await;
    for f in &findings {
        let tag = match f.level {
            Level::Ok => "[ ok ]",
            Level::Warn => "[warn]",
            Level::Fail => "[FAIL]",
        };
        println!("{tag} {}: {}", f.what, f.detail);
        if let Some(fix) = &f.fix {
            for line in wrap(fix, 88) {
                println!("       {line}");
            }
        }
    }
    let failed = findings.iter().filter(|f| f.level == Level::Fail).count();
    let warned = findings.iter().filter(|f| f.level == Level::Warn).count();
    println!("{} checks: {failed} failed, {warned} warnings", findings.len());
    Ok(if failed > 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

/// Every check, in the order a person would look.
pub async fn examine(config: &Config, public_url: &str) -> Vec<Finding> {
    let mut out = Vec::new();
    let local = super::local_http_addr(config);
    let local_info = match http::get(&format!("http://{local}"), "/api/v1/server", None).await {
        Ok(r) if r.status == 200 => {
            out.push(finding(
                Level::Ok,
                "server",
                format!("hearth-server answers on this machine at {local}"),
                None,
            ));
            Some(r.body)
        }
        Ok(r) => {
            out.push(finding(
                Level::Fail,
                "server",
                format!("something at {local} answered {} but it is not hearth-server", r.status),
                Some("Another program holds Hearth's port. Stop it, or give hearth-server another --listen address."),
            ));
            None
        }
        Err(e) => {
            out.push(finding(
                Level::Fail,
                "server",
                format!("hearth-server is not answering on this machine at {local}: {e}"),
                Some(
                    "Start it (systemctl start hearth-server, or docker compose up -d) and look at its log \
                     (journalctl -u hearth-server, or docker compose logs hearth). Run doctor with the \
                     same --data-dir/--config as the server.",
                ),
            ));
            None
        }
    };

    let reachable = check_public_url(&mut out, public_url, local_info.as_deref()).await;
    if reachable {
        check_websocket(&mut out, public_url).await;
    }
    check_turn(&mut out, config, public_url).await;
    check_clock(&mut out);
    check_disk(&mut out, &config.data_dir);
    out
}

/// The public URL: usable at all, reachable, TLS trusted and matching, serving this server.
/// Returns whether HTTP requests get through.
async fn check_public_url(out: &mut Vec<Finding>, public_url: &str, local_info: Option<&[u8]>) -> bool {
    let what = format!("public URL {public_url}");
    let Some(host) = crate::turn::public_host(public_url) else {
        out.push(finding(
            Level::Fail,
            what,
            "it names no host that clients could reach (a wildcard address such as 0.0.0.0)",
            Some(
                "Set --public-url (HEARTH_PUBLIC_URL) to the address members type in the app, e.g. \
                 https://hearth.example.org.",
            ),
        ));
        return false;
    };
    let port = url::Url::parse(public_url).ok().and_then(|u| u.port_or_known_default()).unwrap_or(443);
    let response = match http::get(public_url, "/api/v1/server", None).await {
        Ok(response) => response,
        Err(e) => {
            let refused = format!(
                "Nothing listens there. If a reverse proxy (Caddy, nginx) should answer, start it and \
                 check its port; if clients reach hearth-server directly, --public-url must use the \
                 port of --listen. Also allow the port in the firewall (ufw allow {port}/tcp)."
            );
            let fix = match &e {
                Failure::Resolve { .. } => {
                    "Create a DNS record (A, and AAAA for IPv6) for this name pointing at the server's \
                     public IP address, or fix the name in --public-url. New records can take minutes \
                     to be seen."
                }
                Failure::Refused(_) => refused.as_str(),
                Failure::Timeout(_) => {
                    "The packets are dropped on the way: open the port in the firewall and in the \
                     hosting provider's security group, and forward it if the server is behind a home \
                     router. (Some routers do not let a machine reach its own public address; then run \
                     doctor's check from outside too.)"
                }
                Failure::Certificate(_) => {
                    "Clients will refuse to connect. Let Caddy obtain a certificate for this exact name \
                     (deploy/Caddyfile), or with nginx use certbot; serve the full chain."
                }
                _ => "Clients will fail the same way. Check the reverse proxy's configuration and log.",
            };
            out.push(finding(Level::Fail, what, e.to_string(), Some(fix)));
            return false;
        }
    };
    if public_url.starts_with("https://") {
        out.push(finding(Level::Ok, "TLS certificate", format!("trusted and valid for {host}"), None));
    } else if !is_local_host(host) {
        out.push(finding(
            Level::Warn,
            "TLS",
            "the public URL is plain http: passwords and messages cross the internet unencrypted",
            Some("Put Caddy in front (docker compose --profile https up -d, see docs/self-hosting.md) and use https://."),
        ));
    }
    if response.status != 200 {
        out.push(finding(
            Level::Fail,
            what,
            format!("it answers {} for /api/v1/server instead of Hearth's server info", response.status),
            Some(
                "The reverse proxy does not send requests to hearth-server: proxy every path (/, /api/, \
                 /api/v1/gateway) to hearth-server's --listen address.",
            ),
        ));
        return false;
    }
    let same = local_info.is_none_or(|local| json_eq(local, &response.body));
    if !same {
        out.push(finding(
            Level::Fail,
            what,
            "it reaches a Hearth server, but not the one running here (its name or state differs)",
            Some("Point the DNS name or the reverse proxy at this machine, or fix --public-url."),
        ));
        return false;
    }
    out.push(finding(Level::Ok, what, "reachable, and it is this server", None));
    true
}

fn json_eq(a: &[u8], b: &[u8]) -> bool {
    match (serde_json::from_slice::<serde_json::Value>(a), serde_json::from_slice::<serde_json::Value>(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

async fn check_websocket(out: &mut Vec<Finding>, public_url: &str) {
    const FIX: &str = "Configure the reverse proxy to pass WebSocket upgrades to /api/v1/gateway. \
                       nginx: proxy_http_version 1.1; proxy_set_header Upgrade $http_upgrade; \
                       proxy_set_header Connection \"upgrade\"; proxy_read_timeout 120s. Caddy passes \
                       them by itself.";
    let what = "WebSocket (gateway)";
    match http::websocket(public_url, "/api/v1/gateway").await {
        Ok(Upgrade::Open { first_frame }) if first_frame.contains("\"Hello\"") => {
            out.push(finding(Level::Ok, what, "the upgrade passes and the server's Hello arrives", None))
        }
        Ok(Upgrade::Open { .. }) => out.push(finding(
            Level::Fail,
            what,
            "the upgrade passes but the first frame is not the server's Hello",
            Some("Something between the client and hearth-server rewrites WebSocket frames; proxy them unchanged."),
        )),
        Ok(Upgrade::Refused { status, server }) => out.push(finding(
            Level::Fail,
            what,
            format!(
                "the upgrade was refused with {status}{}: the app cannot connect",
                server.map(|s| format!(" by {s}")).unwrap_or_default()
            ),
            Some(FIX),
        )),
        Ok(Upgrade::Silent) => out.push(finding(
            Level::Fail,
            what,
            "the upgrade was accepted but no frame came through",
            Some(FIX),
        )),
        Err(e) => out.push(finding(Level::Fail, what, e.to_string(), Some(FIX))),
    }
}

/// Where clients are sent for STUN/TURN, and with which secret.
struct TurnTarget {
    host: String,
    port: u16,
    embedded: bool,
    secret: Option<String>,
}

fn turn_target(config: &Config, public_url: &str) -> Option<TurnTarget> {
    let secret = config.turn_secret.clone().or_else(|| {
        let text = std::fs::read_to_string(config.data_dir.join("secrets.json")).ok()?;
        serde_json::from_str::<crate::secrets::Secrets>(&text).ok().map(|s| s.turn_secret)
    });
    if let Some(url) = config.turn_urls.iter().find(|u| u.starts_with("turn:")).or(config.turn_urls.first()) {
        let rest = url.split_once(':').map_or(url.as_str(), |(_, r)| r);
        let rest = rest.split('?').next().unwrap_or(rest);
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (h, p.parse().unwrap_or(3478)),
            _ => (rest, 3478),
        };
        return Some(TurnTarget { host: host.to_string(), port, embedded: false, secret });
    }
    let listener = config.turn_embedded.as_ref()?;
    let running: Option<SocketAddr> =
        std::fs::read_to_string(config.data_dir.join("turn.addr")).ok().and_then(|s| s.trim().parse().ok());
    let port = running.map_or(listener.listen.port(), |a| a.port());
    let host = crate::turn::public_host(public_url)?.to_string();
    Some(TurnTarget { host, port, embedded: true, secret })
}

async fn check_turn(out: &mut Vec<Finding>, config: &Config, public_url: &str) {
    let Some(target) = turn_target(config, public_url) else {
        out.push(finding(
            Level::Warn,
            "TURN",
            "clients are given no STUN/TURN server",
            Some(
                "Calls between members behind different home routers will often fail. Keep the embedded \
                 TURN server on (the default) or name a coturn with --turn-urls.",
            ),
        ));
        return;
    };
    let bare = target.host.trim_start_matches('[').trim_end_matches(']').to_string();
    let what = format!("TURN udp {}:{}", target.host, target.port);
    let Ok(addr) = resolve(&bare, target.port).await else {
        out.push(finding(
            Level::Fail,
            what,
            format!("the name {bare} does not resolve"),
            Some("Create a DNS record for it pointing at the server's public IP address."),
        ));
        return;
    };
    let open_fix = format!(
        "Open UDP port {} in the firewall and the hosting provider's security group (ufw allow {}/udp), \
         forward it if the server is behind a router, and with Docker publish it (\"{}:{}/udp\"). \
         Without it, members behind strict routers cannot hear each other.",
        target.port, target.port, target.port, target.port
    );
    let mapped = match stun_binding(addr).await {
        Ok(mapped) => mapped,
        Err(e) => {
            out.push(finding(
                Level::Fail,
                what,
                format!("no STUN answer from {addr} over UDP ({e})"),
                Some(&open_fix),
            ));
            return;
        }
    };
    out.push(finding(
        Level::Ok,
        what.clone(),
        format!("answers STUN (it sees this machine as {mapped})"),
        None,
    ));

    let Some(secret) = target.secret else {
        out.push(finding(
            Level::Warn,
            "TURN relay",
            "the TURN secret is unknown here, so no relay could be tried",
            Some("Run doctor with the server's --data-dir (secrets.json) or --turn-secret."),
        ));
        return;
    };
    let relayed = match allocate(addr, &secret).await {
        Ok(relayed) => relayed,
        Err(e) => {
            let fix = if target.embedded {
                "The embedded TURN server refused or ignored a relay request; see the server's log."
            } else {
                "coturn's static-auth-secret must equal hearth-server's --turn-secret (HEARTH_TURN_SECRET), \
                 and coturn needs use-auth-secret."
            };
            out.push(finding(
                Level::Fail,
                "TURN relay",
                format!("allocating a relay failed: {e}"),
                Some(fix),
            ));
            return;
        }
    };
    let public_ips: Vec<IpAddr> = match tokio::net::lookup_host((bare.as_str(), 0)).await {
        Ok(addrs) => addrs.map(|a| a.ip()).collect(),
        Err(_) => vec![addr.ip()],
    };
    if public_ips.contains(&relayed.ip()) {
        out.push(finding(
            Level::Ok,
            "TURN relay",
            format!("relays are announced at {}, the public address", relayed.ip()),
            None,
        ));
    } else {
        let public = public_ips.first().copied().unwrap_or(addr.ip());
        out.push(finding(
            Level::Fail,
            "TURN relay",
            format!(
                "relays are announced at {}, but clients reach this server at {public}: relayed calls \
                 will fail",
                relayed.ip()
            ),
            Some(&format!(
                "Behind NAT (a cloud's private network, a home router, Docker) the server cannot see its \
                 public address: set --turn-relay-address {public} (HEARTH_TURN_RELAY_ADDRESS){}",
                if target.embedded { "" } else { ", or coturn's external-ip" }
            )),
        ));
    }
}

async fn resolve(host: &str, port: u16) -> std::io::Result<SocketAddr> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port)).await?.collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no address"))
}

fn any_local(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V4(_) => SocketAddr::from(([0, 0, 0, 0], 0)),
        SocketAddr::V6(_) => SocketAddr::from(([0u16; 8], 0)),
    }
}

/// A STUN Binding request, resent as UDP requests are (three tries over about 3 s); the
/// address the server saw us from.
async fn stun_binding(server: SocketAddr) -> anyhow::Result<SocketAddr> {
    let socket = UdpSocket::bind(any_local(server)).await?;
    socket.connect(server).await?;
    let mut request = stun::message::Message::new();
    request
        .build(&[Box::new(stun::agent::TransactionId::new()), Box::new(stun::message::BINDING_REQUEST)])?;
    let mut buf = vec![0u8; 1500];
    for wait in [500u64, 1000, 1500] {
        // An ICMP "port unreachable" surfaces as an error on a connected socket: closed port.
        if let Err(e) = socket.send(&request.raw).await {
            anyhow::bail!("{e}");
        }
        match tokio::time::timeout(Duration::from_millis(wait), socket.recv(&mut buf)).await {
            Ok(Ok(n)) => {
                let mut answer = stun::message::Message::new();
                answer.raw = buf[..n].to_vec();
                answer.decode()?;
                if answer.transaction_id != request.transaction_id {
                    continue;
                }
                let mut mapped = stun::xoraddr::XorMappedAddress::default();
                use stun::message::Getter;
                mapped.get_from(&answer)?;
                return Ok(SocketAddr::new(mapped.ip, mapped.port));
            }
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                anyhow::bail!("the port is closed: nothing listens there")
            }
            Ok(Err(e)) => anyhow::bail!("{e}"),
            Err(_) => continue,
        }
    }
    anyhow::bail!("nothing came back in 3 s")
}

/// A TURN allocation with a credential made from the shared secret, as a client would get;
/// returns the relayed address the server hands out.
async fn allocate(server: SocketAddr, secret: &str) -> anyhow::Result<SocketAddr> {
    use webrtc_util::Conn;
    let expiry = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs() + 300;
    let username = format!("{expiry}:0");
    let socket = UdpSocket::bind(any_local(server)).await?;
    let client = webrtc_turn::client::Client::new(webrtc_turn::client::ClientConfig {
        stun_serv_addr: server.to_string(),
        turn_serv_addr: server.to_string(),
        password: crate::turn::credential(secret, &username),
        username,
        realm: String::new(),
        software: String::new(),
        rto_in_ms: 0,
        conn: Arc::new(socket),
        vnet: None,
    })
    .await?;
    client.listen().await?;
    let result = tokio::time::timeout(Duration::from_secs(5), client.allocate()).await;
    let relayed = match result {
        Ok(Ok(relay)) => {
            let addr = relay.local_addr();
            let _closed = relay.close().await;
            addr.map_err(anyhow::Error::from)
        }
        Ok(Err(e)) => Err(anyhow::anyhow!("{e}")),
        Err(_) => Err(anyhow::anyhow!("no answer in 5 s")),
    };
    let _closed = client.close().await;
    relayed
}

fn check_clock(out: &mut Vec<Finding>) {
    out.push(clock_finding(clock_synchronized()));
}

/// What the kernel's time-sync state (None: unknown here) means for the group.
fn clock_finding(synchronized: Option<bool>) -> Finding {
    match synchronized {
        Some(true) => finding(Level::Ok, "clock", "synchronized (NTP)", None),
        Some(false) => finding(
            Level::Warn,
            "clock",
            "not synchronized with a time server",
            Some(
                "Login tokens and TURN credentials carry expiry times; a clock that drifts minutes \
                 away makes them fail early or late. Enable time sync: timedatectl set-ntp true (or \
                 install chrony or systemd-timesyncd).",
            ),
        ),
        None => finding(Level::Warn, "clock", "cannot tell whether it is synchronized here", None),
    }
}

#[cfg(target_os = "linux")]
fn clock_synchronized() -> Option<bool> {
    // SAFETY: adjtimex with modes = 0 only reads the kernel's clock state into `tx`.
    let mut tx: libc::timex = unsafe { std::mem::zeroed() };
    let state = unsafe { libc::adjtimex(&mut tx) };
    if state < 0 {
        return None;
    }
    Some(state != libc::TIME_ERROR && tx.status & libc::STA_UNSYNC == 0)
}

#[cfg(not(target_os = "linux"))]
fn clock_synchronized() -> Option<bool> {
    None
}

fn check_disk(out: &mut Vec<Finding>, data_dir: &Path) {
    match free_space(data_dir) {
        Some((free, total)) => out.push(disk_finding(data_dir, free, total)),
        None => out.push(finding(
            Level::Warn,
            "disk",
            format!("cannot read the free space of {}", data_dir.display()),
            None,
        )),
    }
}

/// The data directory's free space (bytes): a failure under 256 MiB, a warning under 2 GiB or
/// under 5 % of the disk.
fn disk_finding(data_dir: &Path, free: u64, total: u64) -> Finding {
    const MIB: u64 = 1024 * 1024;
    let what = format!("disk ({})", data_dir.display());
    let detail = format!("{} MiB free of {} MiB", free / MIB, total / MIB);
    let fix = "When the disk fills, messages can no longer be stored and the server stops \
               acknowledging them. Free space (old backups, logs: journalctl --vacuum-size=200M) or \
               grow the disk.";
    if free < 256 * MIB {
        finding(Level::Fail, what, detail, Some(fix))
    } else if free < 2 * 1024 * MIB || free * 20 < total {
        finding(Level::Warn, what, detail, Some(fix))
    } else {
        finding(Level::Ok, what, detail, None)
    }
}

#[cfg(unix)]
fn free_space(dir: &Path) -> Option<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs writes into `stat`, which lives across the call; `path` is NUL-terminated.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(path.as_ptr(), &mut stat) } != 0 {
        return None;
    }
    let unit = stat.f_frsize as u64;
    Some((stat.f_bavail as u64 * unit, stat.f_blocks as u64 * unit))
}

#[cfg(not(unix))]
fn free_space(_: &Path) -> Option<(u64, u64)> {
    None
}

fn is_local_host(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare == "localhost"
        || bare.parse::<IpAddr>().is_ok_and(|ip| match ip {
            IpAddr::V4(v4) => v4.is_loopback() || v4.is_private() || v4.is_link_local(),
            IpAddr::V6(v6) => v6.is_loopback(),
        })
}

fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = vec![String::new()];
    for word in text.split_whitespace() {
        let line = lines.last_mut().expect("never empty");
        if !line.is_empty() && line.len() + 1 + word.len() > width {
            lines.push(word.to_string());
        } else {
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;
    const GIB: u64 = 1024 * MIB;

    #[test]
    fn a_nearly_full_disk_fails_with_the_fix() {
        let f = disk_finding(Path::new("/var/lib/hearth"), 100 * MIB, 20 * GIB);
        assert_eq!(f.level, Level::Fail);
        assert_eq!(f.what, "disk (/var/lib/hearth)");
        assert_eq!(f.detail, "100 MiB free of 20480 MiB");
        assert!(f.fix.as_deref().is_some_and(|fix| fix.contains("stops acknowledging")), "{f:?}");
    }

    #[test]
    fn little_free_space_warns_in_absolute_terms_or_as_a_share_of_the_disk() {
        assert_eq!(disk_finding(Path::new("/d"), GIB, 20 * GIB).level, Level::Warn);
        // 4 GiB free is plenty on its own, but under 5 % of a 100 GiB disk.
        assert_eq!(disk_finding(Path::new("/d"), 4 * GIB, 100 * GIB).level, Level::Warn);
    }

    #[test]
    fn enough_free_space_passes_without_a_fix() {
        let f = disk_finding(Path::new("/d"), 10 * GIB, 40 * GIB);
        assert_eq!(f.level, Level::Ok);
        assert!(f.fix.is_none());
    }

    #[test]
    fn an_unsynchronized_clock_warns_with_how_to_enable_time_sync() {
        let f = clock_finding(Some(false));
        assert_eq!(f.level, Level::Warn);
        assert!(f.fix.as_deref().is_some_and(|fix| fix.contains("timedatectl set-ntp true")), "{f:?}");
        assert_eq!(clock_finding(Some(true)).level, Level::Ok);
        assert_eq!(clock_finding(None).level, Level::Warn);
    }
}
