//! The embedded STUN/TURN server (UDP), so that one `hearth-server` is a complete voice
//! deployment: webrtc-rs's TURN server (crate `turn`, tokio) with our own credential check,
//! because the stock one only understands usernames that are a bare expiry.
//!
//! A username is `<expiry>:<user id>` and its password `base64(HMAC-SHA1(secret, username))`,
//! exactly what [`super::ice_servers`] hands out and what coturn's `use-auth-secret` accepts.
//! The server never stores a password: for each request it derives the one it would have issued
//! for that username, and the message-integrity check refuses any other.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use tokio::net::UdpSocket;
use webrtc_turn::auth::{AuthHandler, generate_auth_key};
use webrtc_turn::server::Server;
use webrtc_turn::server::config::{ConnConfig, ServerConfig};

use super::relay::{PeerPolicy, RelayPorts};
use crate::config::TurnListener;

/// Why a TURN request's credentials were refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    #[error("the username is not <expiry>:<user id>")]
    Malformed,
    #[error("the credential has expired")]
    Expired,
    #[error("the realm is not this server's")]
    WrongRealm,
}

/// The coturn-REST credential check, as a plain function of its inputs and the time.
#[derive(Clone)]
pub struct Credentials {
    secret: String,
    realm: String,
}

impl Credentials {
    pub fn new(secret: impl Into<String>, realm: impl Into<String>) -> Self {
        Credentials { secret: secret.into(), realm: realm.into() }
    }

    /// The long-term key (RFC 5389 §15.4, `MD5(username:realm:password)`) the request must be
    /// signed with, where the password is the credential this server issues for `username`.
    pub fn key(&self, username: &str, realm: &str, now_secs: u64) -> Result<Vec<u8>, Refusal> {
        if realm != self.realm {
            return Err(Refusal::WrongRealm);
        }
        let (expiry, user) = username.split_once(':').ok_or(Refusal::Malformed)?;
        let digits = |s: &str| !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(expiry) || !digits(user) {
            return Err(Refusal::Malformed);
        }
        let expiry: u64 = expiry.parse().map_err(|_| Refusal::Malformed)?;
        if expiry < now_secs {
            return Err(Refusal::Expired);
        }
        let password = super::credential(&self.secret, username);
        Ok(generate_auth_key(username, realm, &password))
    }
}

impl AuthHandler for Credentials {
    fn auth_handle(
        &self,
        username: &str,
        realm: &str,
        src: SocketAddr,
    ) -> Result<Vec<u8>, webrtc_turn::Error> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        self.key(username, realm, now).map_err(|refusal| {
            // The username holds an expiry and a user id, nothing secret.
            tracing::debug!(%src, username, %refusal, "TURN request refused");
            webrtc_turn::Error::Other(refusal.to_string())
        })
    }
}

/// A running embedded STUN/TURN server.
pub struct EmbeddedTurn {
    server: Server,
    local_addr: SocketAddr,
    relay_address: IpAddr,
}

impl EmbeddedTurn {
    /// Binds the listener and starts serving STUN binding requests and TURN allocations whose
    /// relays get ports in `listener.relay_ports` on the listener's IP, announced to clients as
    /// `relay_address`.
    pub async fn start(listener: &TurnListener, relay_address: IpAddr, secret: &str) -> anyhow::Result<Self> {
        let socket = UdpSocket::bind(listener.listen).await.with_context(|| {
            format!(
                "binding the embedded STUN/TURN server to UDP {} (choose another with --turn-listen, \
                 or turn it off with --turn-embedded false)",
                listener.listen
            )
        })?;
        grow_buffers(&socket);
        let local_addr = socket.local_addr()?;
        let (min_port, max_port) = listener.relay_ports;
        let server = Server::new(ServerConfig {
            conn_configs: vec![ConnConfig {
                conn: Arc::new(socket),
                relay_addr_generator: Box::new(RelayPorts {
                    bind_ip: local_addr.ip(),
                    relay_address,
                    min_port,
                    max_port,
                    policy: peer_policy(listener, relay_address),
                }),
            }],
            realm: listener.realm.clone(),
            auth_handler: Arc::new(Credentials::new(secret, listener.realm.clone())),
            // Zero means the crate's default (10 minutes, as RFC 5766 says).
            channel_bind_timeout: Duration::ZERO,
            alloc_close_notify: None,
        })
        .await
        .context("starting the embedded TURN server")?;
        Ok(EmbeddedTurn { server, local_addr, relay_address })
    }

    /// The bound UDP address (the real port when the configured one was 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn relay_address(&self) -> IpAddr {
        self.relay_address
    }

    /// Closes the listener and every allocation with its relay socket.
    pub async fn close(self) {
        if let Err(e) = self.server.close().await {
            tracing::warn!(error = %e, "closing the embedded TURN server");
        }
    }
}

/// Which peers relays may reach: loopback only when configured so, or by default when the
/// relay serves this machine alone (its listener or its announced address is loopback).
pub fn peer_policy(listener: &TurnListener, relay_address: IpAddr) -> PeerPolicy {
    let local_only = listener.listen.ip().is_loopback() || relay_address.is_loopback();
    PeerPolicy { allow_loopback: listener.allow_loopback_peers.unwrap_or(local_only) }
}

/// Asks for 4 MiB socket buffers (the kernel caps them at net.core.rmem_max/wmem_max): every
/// client's packets arrive on this one socket, and the default buffer (208 KiB) overflows in
/// bursts long before the CPU is busy.
fn grow_buffers(socket: &UdpSocket) {
    use std::os::fd::AsRawFd;
    let size: libc::c_int = 4 << 20;
    for option in [libc::SO_RCVBUF, libc::SO_SNDBUF] {
        // SAFETY: setsockopt on a socket we own, with a pointer to a live c_int and its size.
        let rc = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                option,
                (&size as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            tracing::debug!(error = %std::io::Error::last_os_error(), "cannot grow a TURN socket buffer");
        }
    }
}

/// The relay address to announce when none is configured: the listener's own IP when it is a
/// specific one, else the host of the public URL (resolved when it is a name, the listener's
/// address family preferred), else loopback with a warning, since then only this machine
/// could use the relay.
pub async fn relay_address(listener: &TurnListener, public_url: &str) -> IpAddr {
    if let Some(ip) = listener.relay_address {
        return ip;
    }
    let want_v4 = listener.listen.is_ipv4();
    if let Some(host) = super::public_host(public_url) {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return ip;
        }
        match tokio::time::timeout(Duration::from_secs(5), tokio::net::lookup_host((bare, 0))).await {
            Ok(Ok(addrs)) => {
                let ips: Vec<IpAddr> = addrs.map(|a| a.ip()).filter(|ip| !ip.is_unspecified()).collect();
                if let Some(ip) = ips.iter().find(|ip| ip.is_ipv4() == want_v4).or(ips.first()) {
                    tracing::info!(%ip, host = bare, "TURN relay address taken from the public URL");
                    return *ip;
                }
            }
            Ok(Err(e)) => tracing::warn!(host = bare, error = %e, "cannot resolve the public URL's host"),
            Err(_) => tracing::warn!(host = bare, "resolving the public URL's host timed out"),
        }
    }
    let loopback = if want_v4 { IpAddr::V4(Ipv4Addr::LOCALHOST) } else { IpAddr::V6(Ipv6Addr::LOCALHOST) };
    tracing::warn!(
        relay_address = %loopback,
        "no public address known for TURN relays: only this machine can use them; \
         set --turn-relay-address (or --public-url)"
    );
    loopback
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_000;

    fn creds() -> Credentials {
        Credentials::new("s3cret", "hearth")
    }

    #[test]
    fn a_valid_username_gets_the_key_of_the_issued_password() {
        let username = format!("{}:42", NOW + 60);
        let password = crate::turn::credential("s3cret", &username);
        assert_eq!(
            creds().key(&username, "hearth", NOW),
            Ok(generate_auth_key(&username, "hearth", &password))
        );
        // Valid up to and including its expiry second.
        assert!(creds().key(&format!("{NOW}:42"), "hearth", NOW).is_ok());
    }

    #[test]
    fn the_key_depends_on_the_secret() {
        let username = format!("{}:42", NOW + 60);
        let other = Credentials::new("other", "hearth").key(&username, "hearth", NOW);
        assert_ne!(creds().key(&username, "hearth", NOW), other);
    }

    #[test]
    fn expired_usernames_are_refused() {
        assert_eq!(creds().key(&format!("{}:42", NOW - 1), "hearth", NOW), Err(Refusal::Expired));
    }

    #[test]
    fn malformed_usernames_are_refused() {
        for username in [
            "",
            "42",
            ":42",
            "1700000060:",
            "abc:42",
            "1700000060:4x",
            "-1:42",
            "1:2:3",
            "99999999999999999999999:1",
        ] {
            assert_eq!(creds().key(username, "hearth", NOW), Err(Refusal::Malformed), "{username:?}");
        }
    }

    #[test]
    fn another_realm_is_refused() {
        assert_eq!(creds().key(&format!("{}:42", NOW + 60), "elsewhere", NOW), Err(Refusal::WrongRealm));
    }

    /// The default listener on every interface.
    fn wildcard_listener() -> TurnListener {
        TurnListener {
            listen: "0.0.0.0:3478".parse().unwrap(),
            relay_address: None,
            relay_ports: (49152, 65535),
            realm: "hearth".into(),
            allow_loopback_peers: None,
        }
    }

    #[test]
    fn loopback_peers_are_allowed_by_default_only_for_a_local_relay() {
        let mut listener = wildcard_listener();
        let public: IpAddr = "203.0.113.7".parse().unwrap();
        let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
        assert!(!peer_policy(&listener, public).allow_loopback);
        assert!(peer_policy(&listener, loopback).allow_loopback);
        listener.allow_loopback_peers = Some(false);
        assert!(!peer_policy(&listener, loopback).allow_loopback);
        listener.allow_loopback_peers = None;
        listener.listen = "127.0.0.1:0".parse().unwrap();
        assert!(peer_policy(&listener, public).allow_loopback);
        listener.allow_loopback_peers = Some(false);
        assert!(!peer_policy(&listener, public).allow_loopback);
    }

    #[tokio::test]
    async fn the_relay_address_comes_from_config_listener_or_public_url() {
        let mut listener = wildcard_listener();
        assert_eq!(
            relay_address(&listener, "http://192.0.2.7:8080").await,
            "192.0.2.7".parse::<IpAddr>().unwrap()
        );
        assert_eq!(relay_address(&listener, "http://localhost:8080").await, IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert_eq!(relay_address(&listener, "http://0.0.0.0:8080").await, IpAddr::V4(Ipv4Addr::LOCALHOST));
        listener.relay_address = Some("198.51.100.1".parse().unwrap());
        assert_eq!(
            relay_address(&listener, "http://192.0.2.7:8080").await,
            "198.51.100.1".parse::<IpAddr>().unwrap()
        );
    }
}
