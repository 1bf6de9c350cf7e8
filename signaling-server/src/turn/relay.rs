//! Relay sockets of the embedded TURN server, and which peers they may talk to.
//!
//! A TURN relay sends whatever a member asks to any address it names, from the server's own
//! network position. Left open, that lets a credential holder reach services only the server
//! can: its loopback interface, link-local addresses (a cloud's metadata service at
//! 169.254.169.254) or multicast groups. The `turn` crate has no peer filter, so every relay
//! socket is wrapped in [`FilteredRelay`], which drops datagrams to and from addresses the
//! [`PeerPolicy`] refuses (as coturn's `no-loopback-peers` and `no-multicast-peers` do).
//! Private LAN addresses stay allowed: a family server often relays inside a home network.

use std::any::Any;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use async_trait::async_trait;
use tokio::net::UdpSocket;
use webrtc_turn::relay::RelayAddressGenerator;
use webrtc_util::Conn;

type Result<T> = std::result::Result<T, webrtc_turn::Error>;

/// Which peer addresses relays may exchange datagrams with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerPolicy {
    /// Loopback peers (127.0.0.0/8, ::1): only for a server whose relay serves this machine
    /// alone (development, tests), where every peer is on loopback.
    pub allow_loopback: bool,
}

impl PeerPolicy {
    /// Whether a relay may send to, and receive from, `ip`. IPv4-mapped IPv6 addresses are
    /// judged as the IPv4 address they carry.
    pub fn allows(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        if ip.is_loopback() {
            return self.allow_loopback;
        }
        let refused = ip.is_unspecified()
            || ip.is_multicast()
            || match ip {
                IpAddr::V4(v4) => v4.is_broadcast() || v4.is_link_local() || v4.octets()[0] == 0,
                IpAddr::V6(v6) => v6.is_unicast_link_local(),
            };
        !refused
    }
}

/// A relay's UDP socket that only talks to peers its policy allows: sends elsewhere fail,
/// datagrams from elsewhere are dropped unseen.
pub struct FilteredRelay {
    socket: UdpSocket,
    policy: PeerPolicy,
}

impl FilteredRelay {
    pub fn new(socket: UdpSocket, policy: PeerPolicy) -> Self {
        FilteredRelay { socket, policy }
    }

    fn refused(target: SocketAddr) -> webrtc_util::Error {
        webrtc_util::Error::Other(format!("relaying to {target} is not allowed"))
    }
}

#[async_trait]
impl Conn for FilteredRelay {
    async fn connect(&self, addr: SocketAddr) -> webrtc_util::Result<()> {
        if !self.policy.allows(addr.ip()) {
            return Err(Self::refused(addr));
        }
        Ok(self.socket.connect(addr).await?)
    }

    async fn recv(&self, buf: &mut [u8]) -> webrtc_util::Result<usize> {
        Ok(self.recv_from(buf).await?.0)
    }

    /// The next datagram from an allowed peer. An error here ends the allocation in the
    /// `turn` crate, so refused datagrams are skipped, not reported.
    async fn recv_from(&self, buf: &mut [u8]) -> webrtc_util::Result<(usize, SocketAddr)> {
        loop {
            let (n, from) = self.socket.recv_from(buf).await?;
            if self.policy.allows(from.ip()) {
                return Ok((n, from));
            }
            tracing::debug!(%from, "TURN relay dropped a datagram from a refused peer");
        }
    }

    async fn send(&self, buf: &[u8]) -> webrtc_util::Result<usize> {
        Ok(self.socket.send(buf).await?)
    }

    async fn send_to(&self, buf: &[u8], target: SocketAddr) -> webrtc_util::Result<usize> {
        if !self.policy.allows(target.ip()) {
            tracing::debug!(%target, "TURN relay refused to send to a refused peer");
            return Err(Self::refused(target));
        }
        Ok(self.socket.send_to(buf, target).await?)
    }

    fn local_addr(&self) -> webrtc_util::Result<SocketAddr> {
        Ok(self.socket.local_addr()?)
    }

    fn remote_addr(&self) -> Option<SocketAddr> {
        self.socket.peer_addr().ok()
    }

    async fn close(&self) -> webrtc_util::Result<()> {
        Ok(())
    }

    fn as_any(&self) -> &(dyn Any + Send + Sync) {
        self
    }
}

/// Binds each allocation's relay on a random free port of a range, on the listener's IP, and
/// wraps it in a [`FilteredRelay`]. Clients are told `relay_address` with that port.
pub struct RelayPorts {
    pub bind_ip: IpAddr,
    pub relay_address: IpAddr,
    pub min_port: u16,
    pub max_port: u16,
    pub policy: PeerPolicy,
}

/// Random ports of the range tried before an allocation fails (a busy port is skipped).
const MAX_TRIES: usize = 32;

#[async_trait]
impl RelayAddressGenerator for RelayPorts {
    fn validate(&self) -> Result<()> {
        if self.min_port == 0 || self.max_port < self.min_port {
            return Err(webrtc_turn::Error::Other(format!(
                "invalid relay port range {}-{}",
                self.min_port, self.max_port
            )));
        }
        Ok(())
    }

    async fn allocate_conn(
        &self,
        use_ipv4: bool,
        requested_port: u16,
    ) -> Result<(Arc<dyn Conn + Send + Sync>, SocketAddr)> {
        if use_ipv4 != self.bind_ip.is_ipv4() {
            return Err(webrtc_turn::Error::Other("relays of this address family are not offered".into()));
        }
        let ports: Vec<u16> = if requested_port != 0 {
            vec![requested_port]
        } else {
            (0..MAX_TRIES).map(|_| rand::random_range(self.min_port..=self.max_port)).collect()
        };
        for port in ports {
            let Ok(socket) = UdpSocket::bind((self.bind_ip, port)).await else { continue };
            let bound = socket.local_addr().map_err(|e| webrtc_turn::Error::Other(e.to_string()))?;
            let relay = FilteredRelay::new(socket, self.policy);
            return Ok((Arc::new(relay), SocketAddr::new(self.relay_address, bound.port())));
        }
        Err(webrtc_turn::Error::ErrMaxRetriesExceeded)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn internal_addresses_are_refused_and_lan_and_public_ones_allowed() {
        let policy = PeerPolicy { allow_loopback: false };
        for refused in [
            "127.0.0.1",
            "127.1.2.3",
            "::1",
            "::ffff:127.0.0.1",
            "0.0.0.0",
            "0.1.2.3",
            "::",
            "169.254.169.254",
            "::ffff:169.254.169.254",
            "fe80::1",
            "224.0.0.251",
            "239.255.255.250",
            "ff02::1",
            "255.255.255.255",
        ] {
            assert!(!policy.allows(ip(refused)), "{refused} must be refused");
        }
        for allowed in ["192.168.1.20", "10.0.0.5", "172.16.0.9", "203.0.113.7", "2001:db8::7", "fd00::2"] {
            assert!(policy.allows(ip(allowed)), "{allowed} must be allowed");
        }
    }

    #[test]
    fn loopback_is_allowed_only_when_configured() {
        let policy = PeerPolicy { allow_loopback: true };
        assert!(policy.allows(ip("127.0.0.1")));
        assert!(policy.allows(ip("::1")));
        assert!(!policy.allows(ip("169.254.169.254")), "the rest of the policy still holds");
    }

    #[tokio::test]
    async fn a_relay_neither_sends_to_nor_hears_from_refused_peers() {
        // The relay allows loopback here; the refused peer is a multicast group (sending to it
        // must fail) and, for receiving, a policy that refuses loopback drops our own test
        // sender's datagrams while a later allowed one would pass.
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let relay = FilteredRelay::new(socket, PeerPolicy { allow_loopback: true });
        let err = relay.send_to(b"x", "224.0.0.251:5353".parse().unwrap()).await.unwrap_err();
        assert!(err.to_string().contains("not allowed"), "{err}");

        let peer = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let relay_addr = relay.local_addr().unwrap();
        assert_eq!(relay.send_to(b"hello", peer.local_addr().unwrap()).await.unwrap(), 5);
        let mut buf = [0u8; 16];
        let (n, from) = peer.recv_from(&mut buf).await.unwrap();
        assert_eq!((&buf[..n], from), (&b"hello"[..], relay_addr));

        let closed = FilteredRelay::new(
            UdpSocket::bind("127.0.0.1:0").await.unwrap(),
            PeerPolicy { allow_loopback: false },
        );
        let err = closed.send_to(b"x", peer.local_addr().unwrap()).await.unwrap_err();
        assert!(err.to_string().contains("not allowed"), "{err}");
        peer.send_to(b"sneaky", closed.local_addr().unwrap()).await.unwrap();
        let heard =
            tokio::time::timeout(std::time::Duration::from_millis(300), closed.recv_from(&mut buf)).await;
        assert!(heard.is_err(), "a datagram from a refused peer must not be delivered: {heard:?}");
    }
}
