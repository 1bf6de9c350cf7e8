//! The webrtc-rs side of a transfer: one peer connection with one reliable, ordered data
//! channel, built for bulk data. The receiver creates the channel and offers; the sender
//! answers. The connection's event handler holds only weak senders (the upstream Arc-cycle
//! leak, see `call::peer`).
//!
//! Three settings make the difference for throughput (measured with 64 KiB messages over
//! loopback, see ARCHITECTURE.md): UDP socket buffers of 4 MiB (the 208 KiB default overflows
//! in bursts, and SCTP waits out a 1 s minimum RTO for every loss), the connection's driver on
//! webrtc-rs's dedicated reactor threads instead of the shared runtime, and an SCTP
//! max-message-size that holds a chunk with its header.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hearth_protocol::model::IceServer;
use rtc::ice::mdns::MulticastDnsMode;
use rtc::peer_connection::configuration::setting_engine::SctpMaxMessageSize;
use tokio::sync::mpsc;
use webrtc::data_channel::{DataChannel, RTCDataChannelInit};
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCIceCandidateInit,
    RTCPeerConnectionIceEvent, RTCPeerConnectionState, Registry, SettingEngineBuilder,
};
use webrtc::runtime::{AsyncInterval, AsyncTcpListener, AsyncTcpStream, AsyncUdpSocket, JoinHandle, Runtime};

use super::wire::MAX_MESSAGE;

/// UDP socket buffers asked for (the kernel may give less: Linux caps them at
/// `net.core.rmem_max`/`wmem_max` unless raised).
const SOCKET_BUFFER: usize = 4 * 1024 * 1024;
/// SCTP's receive window. One window per round trip is the most a connection moves, so the
/// 1 MiB default caps a 20 ms path at 52 MB/s; 4 MiB leaves room to 200 MB/s there.
const SCTP_RECEIVE_WINDOW: u32 = 4 * 1024 * 1024;
/// Dedicated reactor threads for transfer connections (process-wide; the first connection
/// built with a pool sets its size).
const REACTOR_THREADS: usize = 2;
/// The data channel's label.
pub const LABEL: &str = "hearth-transfer";
/// Back-pressure: stop queueing above this many unacknowledged bytes, go on below the low one.
pub const BUFFERED_HIGH: u32 = 4 * 1024 * 1024;
pub const BUFFERED_LOW: u32 = 1024 * 1024;

/// How a transfer connects.
#[derive(Debug, Clone)]
pub struct LinkConfig {
    pub ice_servers: Vec<IceServer>,
    /// Local UDP addresses to bind; `0.0.0.0:0` is every non-loopback interface, tests bind
    /// `127.0.0.1:0`.
    pub udp_bind: Vec<SocketAddr>,
    /// Only TURN relay candidates (tests of the relay path).
    pub relay_only: bool,
}

impl Default for LinkConfig {
    fn default() -> Self {
        LinkConfig {
            ice_servers: Vec::new(),
            udp_bind: vec![SocketAddr::from(([0, 0, 0, 0], 0))],
            relay_only: false,
        }
    }
}

/// What a connection's handler reports.
pub enum LinkNote {
    Candidate(RTCIceCandidateInit),
    State(RTCPeerConnectionState),
    /// The sender's side: the receiver's channel arrived.
    Channel(Arc<dyn DataChannel>),
}

struct Handler {
    notes: mpsc::WeakUnboundedSender<(u64, LinkNote)>,
    generation: u64,
}

impl Handler {
    fn note(&self, note: LinkNote) {
        if let Some(notes) = self.notes.upgrade()
            && notes.send((self.generation, note)).is_err()
        {
            tracing::trace!("transfer task gone; link note dropped");
        }
    }
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        match event.candidate.to_json() {
            Ok(c) => self.note(LinkNote::Candidate(c)),
            Err(e) => tracing::debug!(error = %e, "local candidate not serializable"),
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        self.note(LinkNote::State(state));
    }

    async fn on_data_channel(&self, channel: Arc<dyn DataChannel>) {
        self.note(LinkNote::Channel(channel));
    }
}

/// The default tokio runtime of webrtc-rs, with larger UDP socket buffers.
#[derive(Debug)]
struct BulkRuntime(Arc<dyn Runtime>);

impl Runtime for BulkRuntime {
    fn spawn(&self, future: Pin<Box<dyn Future<Output = ()> + Send>>) -> Box<dyn JoinHandle> {
        self.0.spawn(future)
    }
    fn spawn_reactor(
        &self,
        size: usize,
        future: Pin<Box<dyn Future<Output = ()> + Send>>,
    ) -> Box<dyn JoinHandle> {
        self.0.spawn_reactor(size, future)
    }
    fn wrap_udp_socket(&self, socket: std::net::UdpSocket) -> std::io::Result<Arc<dyn AsyncUdpSocket>> {
        let s = socket2::SockRef::from(&socket);
        // Best effort: a smaller buffer still works, only slower under bursts.
        if let Err(e) =
            s.set_recv_buffer_size(SOCKET_BUFFER).and_then(|()| s.set_send_buffer_size(SOCKET_BUFFER))
        {
            tracing::debug!(error = %e, "larger UDP buffers refused");
        }
        self.0.wrap_udp_socket(socket)
    }
    fn wrap_tcp_listener(
        &self,
        listener: std::net::TcpListener,
    ) -> std::io::Result<Arc<dyn AsyncTcpListener>> {
        self.0.wrap_tcp_listener(listener)
    }
    fn connect_tcp<'a>(
        &'a self,
        addr: SocketAddr,
    ) -> Pin<Box<dyn Future<Output = std::io::Result<Arc<dyn AsyncTcpStream>>> + Send + 'a>> {
        self.0.connect_tcp(addr)
    }
    fn resolve_host<'a>(
        &'a self,
        host: &'a str,
    ) -> Pin<Box<dyn Future<Output = std::io::Result<Vec<SocketAddr>>> + Send + 'a>> {
        self.0.resolve_host(host)
    }
    fn now(&self) -> Instant {
        self.0.now()
    }
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        self.0.sleep(duration)
    }
    fn interval(&self, period: Duration) -> Box<dyn AsyncInterval> {
        self.0.interval(period)
    }
    fn block_on(&self, future: Pin<Box<dyn Future<Output = ()> + '_>>) {
        self.0.block_on(future)
    }
    fn yield_now(&self) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        self.0.yield_now()
    }
    fn name(&self) -> &'static str {
        "hearth-bulk"
    }
}

/// A new connection; notes arrive tagged with `generation`.
pub async fn build(
    config: &LinkConfig,
    generation: u64,
    notes: mpsc::WeakUnboundedSender<(u64, LinkNote)>,
) -> webrtc::error::Result<Arc<dyn PeerConnection>> {
    let runtime =
        webrtc::runtime::default_runtime().ok_or_else(|| std::io::Error::other("no async runtime"))?;
    let configuration = crate::call::rtc_configuration(&config.ice_servers, config.relay_only);
    let settings = SettingEngineBuilder::new()
        .with_multicast_dns_mode(MulticastDnsMode::Disabled)
        .with_include_loopback_candidate(config.udp_bind.iter().any(|a| a.ip().is_loopback()))
        .with_sctp_max_message_size(SctpMaxMessageSize::Bounded(MAX_MESSAGE as u32))
        .with_sctp_max_receive_buffer_size(SCTP_RECEIVE_WINDOW)
        .build();
    let pc = PeerConnectionBuilder::new()
        .with_configuration(configuration)
        .with_media_engine(MediaEngine::default())
        // No interceptors: they serve RTP, and a transfer carries none.
        .with_interceptor_registry(Registry::new())
        .with_setting_engine(settings)
        .with_handler(Arc::new(Handler { notes, generation }))
        .with_runtime(Arc::new(BulkRuntime(runtime)))
        .with_dedicated_reactor_pool_size(REACTOR_THREADS)
        .with_udp_addrs(config.udp_bind.clone())
        .build()
        .await?;
    Ok(Arc::new(pc))
}

/// The receiver's channel: reliable and ordered (chunks may still be asked for again).
pub async fn open_channel(pc: &dyn PeerConnection) -> webrtc::error::Result<Arc<dyn DataChannel>> {
    let channel = pc
        .create_data_channel(LABEL, Some(RTCDataChannelInit { ordered: true, ..Default::default() }))
        .await?;
    Ok(channel)
}

pub async fn close(pc: &dyn PeerConnection) {
    if let Err(e) = pc.close().await {
        tracing::debug!(error = %e, "closing a transfer connection");
    }
}
