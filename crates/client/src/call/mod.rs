//! The call transport: a [`Call`] joins one voice channel through the gateway session and
//! keeps a full mesh of webrtc-rs peer connections, one per other member, each carrying one
//! Opus audio track. Payloads are opaque bytes here; encoding, the jitter buffer and mixing
//! belong to the voice pipeline.
//!
//! - Signalling goes through the session: `VoiceJoin`/`VoiceLeave` and `VoiceSignal` (offers,
//!   answers and trickled ICE candidates) up, `VoiceStateUpdate`/`VoiceSignal` events down.
//! - Who offers: the member who was in the channel first offers to the one who joins after it
//!   (the server orders joins, so both sides agree without talking). Offer collisions during
//!   renegotiation follow perfect negotiation: the lower user id is impolite (see
//!   [`negotiation`]).
//! - Recovery: a connection that fails or stays disconnected is ICE-restarted, then replaced
//!   by a fresh one (only by the lower id of the pair), and finally given up on.
//! - Media out: [`Call::send_packet`] writes the same encoded frame to every connected peer,
//!   each track with its own SSRC, sequence numbers and timestamps.
//! - Media in: every RTP packet from every peer arrives on [`CallStreams::media`] as a
//!   [`MediaPacket`] (user, seq, RTP timestamp, payload, arrival instant).
//! - One task owns the call and every connection; the app talks to it through [`Call`] and
//!   hears from it through [`CallEvent`]s. Leaving (or dropping the [`Call`]) closes every
//!   connection and frees every webrtc object: handlers hold only weak references.

pub mod negotiation;
mod peer;
mod task;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hearth_protocol::model::{IceServer, VoiceState};
use hearth_protocol::{ChannelId, UserId};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::{CancellationToken, DropGuard};
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;

pub use negotiation::RecoveryConfig;
pub(crate) use peer::rtc_configuration;
pub use peer::{OPUS_CLOCK_RATE, OPUS_PAYLOAD_TYPE};

use crate::session::SessionHandle;

/// How many incoming packets may wait for the voice pipeline (about 2 s of 10 people talking).
const MEDIA_BUFFER: usize = 1024;
/// Call events buffered for slow subscribers.
const EVENT_BUFFER: usize = 256;
/// How long the server may take to confirm our join.
const JOIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a call could not be joined or ended.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// The gateway session is not connected, or it stopped.
    #[error("not connected to the server")]
    Offline,
    /// The server refused to put us in the channel (not a voice channel we can see).
    #[error("the server refused the join: {0}")]
    Refused(String),
    /// The server did not confirm the join in time.
    #[error("the server did not confirm the join")]
    Timeout,
    /// The call task is gone.
    #[error("the call has ended")]
    Ended,
}

impl From<crate::Error> for CallError {
    fn from(e: crate::Error) -> Self {
        match e {
            crate::Error::Api(api) => CallError::Refused(api.message),
            _ => CallError::Offline,
        }
    }
}

/// How a call connects.
#[derive(Debug, Clone)]
pub struct CallConfig {
    /// STUN/TURN servers: `Ready.ice_servers`, or fresh ones from `Engine::turn()` (TURN
    /// credentials expire, so a call started long after `Ready` should fetch fresh ones).
    pub ice_servers: Vec<IceServer>,
    /// Use only TURN relay candidates (privacy mode; and tests of the relay).
    pub relay_only: bool,
    /// Local UDP addresses to bind per connection. `0.0.0.0:0` means every non-loopback
    /// interface; tests on one machine bind `127.0.0.1:0`.
    pub udp_bind: Vec<SocketAddr>,
    /// Voice state to join with.
    pub muted: bool,
    pub deafened: bool,
    /// Who is in voice, if known (`Ready.voice_states` kept current by the app). Only used to
    /// report members early; connections follow the server's events.
    pub voice_states: Vec<VoiceState>,
    /// How often connection quality is measured and reported.
    pub quality_interval: Duration,
    pub recovery: RecoveryConfig,
}

impl CallConfig {
    pub fn new(ice_servers: Vec<IceServer>) -> CallConfig {
        CallConfig {
            ice_servers,
            relay_only: false,
            udp_bind: vec![SocketAddr::from(([0, 0, 0, 0], 0))],
            muted: false,
            deafened: false,
            voice_states: Vec::new(),
            quality_interval: Duration::from_secs(2),
            recovery: RecoveryConfig::default(),
        }
    }

    /// Host candidates on 127.0.0.1 only: every member on this machine (tests, benchmarks).
    pub fn loopback(ice_servers: Vec<IceServer>) -> CallConfig {
        CallConfig { udp_bind: vec![SocketAddr::from(([127, 0, 0, 1], 0))], ..CallConfig::new(ice_servers) }
    }
}

/// One RTP packet from a peer, as the voice pipeline's jitter buffer wants it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaPacket {
    pub user_id: UserId,
    pub seq: u16,
    /// In units of [`OPUS_CLOCK_RATE`].
    pub rtp_timestamp: u32,
    /// Set on the first packet of a talk spurt.
    pub marker: bool,
    /// The Opus frame, untouched.
    pub payload: Bytes,
    /// When the transport handed it over.
    pub arrival: Instant,
}

/// How a connection's selected candidate pair travels (for transfers, which share the
/// statistics reading with calls).
pub(crate) async fn peer_path(pc: &dyn webrtc::peer_connection::PeerConnection) -> PathKind {
    peer::quality(pc).await.path
}

/// Where a peer's connection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerState {
    /// Negotiating or checking paths (a new connection).
    Connecting,
    Connected,
    /// Was connected; lost the path and is being recovered (ICE restart or a new connection).
    Reconnecting,
    /// Recovery gave up; stays so until the member leaves or rejoins.
    Failed,
    /// Closed: the member left, or we did.
    Closed,
}

/// How packets travel to a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PathKind {
    #[default]
    Unknown,
    /// Host or server-reflexive candidates on both ends: peer to peer.
    Direct,
    /// Through a TURN relay.
    Relayed,
}

/// Connection quality of one peer (from the transport's statistics).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PeerQuality {
    /// Round-trip time of the selected candidate pair (or from RTCP reports).
    pub rtt: Option<Duration>,
    /// Fraction (0..1) of the peer's packets we did not receive.
    pub loss: f32,
    /// Interarrival jitter of the peer's stream (RFC 3550).
    pub jitter: Option<Duration>,
    pub path: PathKind,
    pub packets_received: u64,
    pub packets_lost: u64,
    /// Fraction of our packets the peer reported lost (RTCP receiver report), if it reported.
    pub remote_fraction_lost: Option<f32>,
}

/// A peer as the app shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerInfo {
    pub user_id: UserId,
    pub state: PeerState,
    pub quality: Option<PeerQuality>,
}

/// What the call tells the app.
#[derive(Debug, Clone, PartialEq)]
pub enum CallEvent {
    /// A member is in the call with us (a connection to them is being made).
    PeerJoined {
        user_id: UserId,
    },
    /// A member left (or dropped); their connection is closed.
    PeerLeft {
        user_id: UserId,
    },
    PeerState {
        user_id: UserId,
        state: PeerState,
    },
    Quality {
        user_id: UserId,
        quality: PeerQuality,
    },
    /// Our gateway connection dropped: the server took us out of the call, every connection
    /// was closed, and we rejoin as soon as the session is back.
    Rejoining,
    /// We are in the call again after [`CallEvent::Rejoining`].
    Rejoined,
    /// The call is over without us asking (e.g. another device of ours joined voice, or the
    /// session stopped). Every connection is closed.
    Ended {
        reason: String,
    },
}

/// Receivers handed out once, at join.
pub struct CallStreams {
    pub events: broadcast::Receiver<CallEvent>,
    pub media: mpsc::Receiver<MediaPacket>,
}

/// The sending side of one peer: its track and RTP counters.
struct SendLeg {
    track: Arc<TrackLocalStaticRTP>,
    ssrc: u32,
    seq: u16,
    timestamp: u32,
    /// Whether the connection is up; packets are only written then.
    live: bool,
    /// The next packet starts a talk spurt.
    marker: bool,
}

/// Every peer's sending side. Shared by the call task (which adds and removes legs) and
/// [`Call::send_packet`] (which only reads and advances counters); the lock is held for
/// bookkeeping only, never across an await.
#[derive(Default)]
struct SendLegs(Mutex<BTreeMap<UserId, SendLeg>>);

impl SendLegs {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<UserId, SendLeg>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A webrtc object the call created, watched without keeping it alive.
enum Watched {
    Connection(Weak<dyn webrtc::peer_connection::PeerConnection>),
    Handler(Weak<peer::PeerHandler>),
}

impl Watched {
    fn alive(&self) -> bool {
        match self {
            Watched::Connection(w) => w.strong_count() > 0,
            Watched::Handler(w) => w.strong_count() > 0,
        }
    }
}

/// Weak references to every connection and event handler a call ever created, to check that
/// leaving freed them (the upstream Arc-cycle leak would keep them alive).
#[derive(Clone, Default)]
pub struct CallProbe {
    inner: Arc<Mutex<Vec<Watched>>>,
}

impl CallProbe {
    fn watch(&self, object: Watched) {
        let mut list = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        list.retain(Watched::alive);
        list.push(object);
    }

    fn track_conn(&self, pc: Weak<dyn webrtc::peer_connection::PeerConnection>) {
        self.watch(Watched::Connection(pc));
    }

    fn track_handler(&self, handler: Weak<peer::PeerHandler>) {
        self.watch(Watched::Handler(handler));
    }

    /// How many connections and handlers the call created are still alive.
    pub fn alive(&self) -> usize {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).iter().filter(|w| w.alive()).count()
    }

    /// How many connections and handlers the call created so far (alive or not, since the
    /// last time freed ones were pruned).
    pub fn watched(&self) -> usize {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Waits (up to `limit`) until everything watched is freed; returns what is still alive.
    pub async fn released_within(&self, limit: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let alive = self.alive();
            if alive == 0 || tokio::time::Instant::now() >= deadline {
                return alive;
            }
            // Closing hands the last references to the connections' driver tasks, which end on
            // their own schedule; there is no event to await for "freed".
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

enum Command {
    Leave { done: oneshot::Sender<()> },
    Voice { muted: bool, deafened: bool, speaking: bool, done: oneshot::Sender<Result<(), CallError>> },
}

/// One voice call (one channel). Dropping it leaves the call too, without waiting.
pub struct Call {
    channel: ChannelId,
    commands: mpsc::Sender<Command>,
    events: broadcast::Sender<CallEvent>,
    peers: watch::Receiver<BTreeMap<UserId, PeerInfo>>,
    legs: Arc<SendLegs>,
    probe: CallProbe,
    task: Mutex<Option<JoinHandle<()>>>,
    _stop_on_drop: DropGuard,
}

impl Call {
    /// Joins `channel` and starts connecting to everyone in it. Returns once the server has
    /// confirmed the join; connections come up in the background (watch the events).
    pub async fn join(
        session: SessionHandle,
        channel: ChannelId,
        config: CallConfig,
    ) -> Result<(Call, CallStreams), CallError> {
        let me = session.user().ok_or(CallError::Offline)?.id;
        let (events_tx, events_rx) = broadcast::channel(EVENT_BUFFER);
        let (media_tx, media_rx) = mpsc::channel(MEDIA_BUFFER);
        let (commands_tx, commands_rx) = mpsc::channel(16);
        let (peers_tx, peers_rx) = watch::channel(BTreeMap::new());
        let (joined_tx, joined_rx) = oneshot::channel();
        let legs = Arc::new(SendLegs::default());
        let probe = CallProbe::default();
        let cancel = CancellationToken::new();
        // Subscribed before the join is sent, so the task sees every voice event after it.
        let session_events = session.subscribe();
        let worker = task::Worker::new(task::Setup {
            session: session.clone(),
            session_events,
            me,
            channel,
            config,
            events: events_tx.clone(),
            media: media_tx,
            commands: commands_rx,
            peers: peers_tx,
            legs: legs.clone(),
            probe: probe.clone(),
            cancel: cancel.clone(),
            joined: joined_tx,
        });
        let handle = tokio::spawn(worker.run());
        let call = Call {
            channel,
            commands: commands_tx,
            events: events_tx,
            peers: peers_rx,
            legs,
            probe,
            task: Mutex::new(Some(handle)),
            _stop_on_drop: cancel.drop_guard(),
        };
        match tokio::time::timeout(JOIN_TIMEOUT, joined_rx).await {
            Ok(Ok(Ok(()))) => Ok((call, CallStreams { events: events_rx, media: media_rx })),
            Ok(Ok(Err(e))) => Err(e),
            Ok(Err(_)) => Err(CallError::Ended),
            Err(_) => Err(CallError::Timeout),
        }
    }

    pub fn channel(&self) -> ChannelId {
        self.channel
    }

    /// Another stream of call events, starting now.
    pub fn subscribe(&self) -> broadcast::Receiver<CallEvent> {
        self.events.subscribe()
    }

    /// Everyone we have (or are making) a connection to.
    pub fn peers(&self) -> Vec<PeerInfo> {
        self.peers.borrow().values().cloned().collect()
    }

    /// Watches the peer list (for a UI, or to await a state).
    pub fn watch_peers(&self) -> watch::Receiver<BTreeMap<UserId, PeerInfo>> {
        self.peers.clone()
    }

    /// Sends one encoded frame to every connected peer. `samples` is the frame's duration in
    /// 48 kHz samples (960 for 20 ms): the next frame's RTP timestamp is this one's plus
    /// `samples`. Returns how many peers it was written to. A peer that is not connected yet
    /// misses the frame (old audio is worth nothing later); its timestamps still advance, so
    /// its receiver sees the gap as time, not as a jump.
    pub async fn send_packet(&self, payload: &[u8], samples: u32) -> usize {
        let payload = Bytes::copy_from_slice(payload);
        let writes: Vec<_> = {
            let mut legs = self.legs.lock();
            legs.values_mut()
                .filter_map(|leg| {
                    let timestamp = leg.timestamp;
                    leg.timestamp = leg.timestamp.wrapping_add(samples);
                    if !leg.live {
                        leg.marker = true;
                        return None;
                    }
                    let packet = rtc::rtp::packet::Packet {
                        header: rtc::rtp::header::Header {
                            version: 2,
                            marker: std::mem::take(&mut leg.marker),
                            payload_type: OPUS_PAYLOAD_TYPE,
                            sequence_number: leg.seq,
                            timestamp,
                            ssrc: leg.ssrc,
                            ..Default::default()
                        },
                        payload: payload.clone(),
                    };
                    leg.seq = leg.seq.wrapping_add(1);
                    Some((leg.track.clone(), packet))
                })
                .collect()
        };
        let results = futures_util::future::join_all(
            writes.into_iter().map(|(track, packet)| async move { track.write_rtp(packet).await }),
        )
        .await;
        results
            .into_iter()
            .filter(|r| match r {
                Ok(()) => true,
                Err(e) => {
                    tracing::debug!(error = %e, "audio frame not written");
                    false
                }
            })
            .count()
    }

    /// Accounts for `samples` of audio not sent (silence, DTX, muted, push-to-talk up): every
    /// peer's RTP timestamp advances and the next packet starts a talk spurt (marker bit), so
    /// receivers see the pause as time. Without it the first packet after a pause would look
    /// late by the whole pause, and a jitter buffer would grow its delay to match.
    pub fn skip(&self, samples: u32) {
        for leg in self.legs.lock().values_mut() {
            leg.timestamp = leg.timestamp.wrapping_add(samples);
            leg.marker = true;
        }
    }

    /// Tells the others whether we are muted, deafened or speaking.
    pub async fn set_voice(&self, muted: bool, deafened: bool, speaking: bool) -> Result<(), CallError> {
        let (done, answer) = oneshot::channel();
        self.commands
            .send(Command::Voice { muted, deafened, speaking, done })
            .await
            .map_err(|_| CallError::Ended)?;
        answer.await.map_err(|_| CallError::Ended)?
    }

    /// Leaves the channel, closes every connection and waits until the call task has ended.
    pub async fn leave(self) {
        let (done, finished) = oneshot::channel();
        if self.commands.send(Command::Leave { done }).await.is_ok() {
            let _task_ended_anyway = finished.await;
        }
        let task = self.task.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(task) = task
            && let Err(e) = task.await
        {
            tracing::error!(error = %e, "call task ended abnormally");
        }
    }

    /// Weak references to the call's webrtc objects, for leak checks.
    pub fn probe(&self) -> CallProbe {
        self.probe.clone()
    }
}

impl std::fmt::Debug for Call {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Call").field("channel", &self.channel).finish_non_exhaustive()
    }
}
