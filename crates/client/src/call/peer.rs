//! The webrtc-rs side of one peer: building a connection for the call's settings, the event
//! handler (which holds only weak references, so a closed connection is freed), the local
//! Opus track, the reader of the remote track, and quality from `getStats`. Also the two
//! workarounds that make a TURN-relayed path deliver every packet promptly with webrtc 0.21
//! ([`RelayFlush`], and the primers, see [`is_primer`]).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use hearth_protocol::UserId;
use hearth_protocol::model::IceServer;
use rtc::ice::mdns::MulticastDnsMode;
use rtc::interceptor::{Interceptor, Slot, StreamInfo, TaggedPacket};
use rtc::peer_connection::configuration::media_engine::MIME_TYPE_OPUS;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use tokio::sync::mpsc;
use webrtc::media_stream::MediaStreamTrack;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCConfigurationBuilder,
    RTCIceCandidateInit, RTCIceCandidateType, RTCIceServer, RTCIceTransportPolicy, RTCPeerConnectionIceEvent,
    RTCPeerConnectionState, RTCStatsReportEntry, Registry, SettingEngineBuilder, StatsSelector,
    register_default_interceptors,
};

use super::{MediaPacket, PathKind, PeerQuality};

/// The RTP payload type of Opus on every Hearth connection.
pub const OPUS_PAYLOAD_TYPE: u8 = 111;
/// The RTP clock of Opus (always 48 kHz, whatever the encoder's rate).
pub const OPUS_CLOCK_RATE: u32 = 48_000;

/// What a handler tells the call task. Tagged with the peer and the connection generation, so
/// notes from a connection that was since replaced are recognised and dropped.
#[derive(Debug)]
pub(crate) enum Note {
    LocalCandidate {
        user: UserId,
        generation: u64,
        candidate: RTCIceCandidateInit,
    },
    State {
        user: UserId,
        generation: u64,
        state: RTCPeerConnectionState,
    },
    /// The connection's primers went out ([`send_primers`]).
    Primed {
        user: UserId,
        generation: u64,
    },
}

/// The settings every connection of a call is built from.
#[derive(Clone)]
pub(crate) struct Transport {
    pub ice_servers: Vec<IceServer>,
    pub relay_only: bool,
    pub udp_bind: Vec<SocketAddr>,
}

/// The event handler of one connection. It holds weak senders only: the connection owns its
/// handler, so anything strong in here that led back to the connection (or to the call task
/// that owns it) would keep both alive after close (the upstream Arc-cycle leak).
pub(crate) struct PeerHandler {
    user: UserId,
    generation: u64,
    notes: mpsc::WeakUnboundedSender<Note>,
    media: mpsc::WeakSender<MediaPacket>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for PeerHandler {
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        let candidate = match event.candidate.to_json() {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(error = %e, "local candidate not serializable");
                return;
            }
        };
        self.note(Note::LocalCandidate { user: self.user, generation: self.generation, candidate });
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        self.note(Note::State { user: self.user, generation: self.generation, state });
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        // The handler runs on the connection's driver: reading here would stall it.
        tokio::spawn(read_track(track, self.user, self.media.clone()));
    }
}

impl PeerHandler {
    fn note(&self, note: Note) {
        // Gone means the call ended; the note no longer matters.
        if let Some(notes) = self.notes.upgrade()
            && notes.send(note).is_err()
        {
            tracing::trace!("call task gone; note dropped");
        }
    }
}

/// Delivers the peer's RTP until the track ends (the connection closes).
async fn read_track(track: Arc<dyn TrackRemote>, user: UserId, media: mpsc::WeakSender<MediaPacket>) {
    let mut dropped = 0u64;
    while let Some(event) = track.poll().await {
        let TrackRemoteEvent::OnRtpPacket(packet) = event else { continue };
        let arrival = Instant::now();
        if packet.header.payload_type != OPUS_PAYLOAD_TYPE || is_primer(&packet.payload) {
            continue;
        }
        let Some(media) = media.upgrade() else { break };
        let delivered = MediaPacket {
            user_id: user,
            seq: packet.header.sequence_number,
            rtp_timestamp: packet.header.timestamp,
            marker: packet.header.marker,
            payload: packet.payload,
            arrival,
        };
        match media.try_send(delivered) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                // The voice pipeline is behind. Old audio is worth nothing to a jitter
                // buffer, so dropping here beats stalling the connection's driver.
                dropped += 1;
                if dropped.is_power_of_two() {
                    tracing::warn!(%user, dropped, "incoming audio dropped: the consumer is behind");
                }
            }
            Err(mpsc::error::TrySendError::Closed(_)) => break,
        }
    }
}

/// How many primers a new connection sends before its first frame, and the pause after each.
pub(crate) const PRIMERS: usize = 2;
const PRIMER_GAP: Duration = Duration::from_millis(10);

/// Whether an incoming payload is a primer: an RTP packet with an empty payload that a new
/// connection sends before its first frame.
///
/// webrtc 0.21 opens a remote track on its first RTP packet, and on a TURN-relayed path it hands
/// that very packet to the track before the track is registered, so the packet is dropped: the
/// driver's `poll_reads` feeds relayed data to the core and drains the core's media in the same
/// pass, while the track's `OnOpen` waits for the next `poll_events` (direct packets are read in
/// `select!` and meet `poll_events` first). Upstream fixed the same ordering for data channels
/// (webrtc-rs/webrtc#901, #902), not for RTP. So the first packet a ready peer receives is a
/// primer. There are two, a little apart, because the first can also arrive before the peer has
/// finished its own DTLS handshake (the side that completes first sends while the other is
/// still reading the last flight); the frames follow a little after the second, so neither is
/// read in the same pass as a frame. An Opus frame is never empty (RFC 6716 §3.1: at least the
/// TOC byte), so a primer is never audio and is dropped here when it does arrive.
pub(crate) fn is_primer(payload: &[u8]) -> bool {
    payload.is_empty()
}

/// One primer with the leg's SSRC, the given sequence number and the first frame's timestamp.
pub(crate) fn primer(ssrc: u32, seq: u16, timestamp: u32) -> rtc::rtp::packet::Packet {
    rtc::rtp::packet::Packet {
        header: rtc::rtp::header::Header {
            version: 2,
            payload_type: OPUS_PAYLOAD_TYPE,
            sequence_number: seq,
            timestamp,
            ssrc,
            ..Default::default()
        },
        payload: bytes::Bytes::new(),
    }
}

/// Writes the primers [`PRIMER_GAP`] apart, waits one more gap, and tells the call task.
pub(crate) async fn send_primers(
    track: Arc<TrackLocalStaticRTP>,
    primers: Vec<rtc::rtp::packet::Packet>,
    user: UserId,
    generation: u64,
    notes: mpsc::WeakUnboundedSender<Note>,
) {
    for packet in primers {
        if let Err(e) = track.write_rtp(packet).await {
            tracing::debug!(%user, error = %e, "primer not written");
        }
        tokio::time::sleep(PRIMER_GAP).await;
    }
    drop(track);
    if let Some(notes) = notes.upgrade()
        && notes.send(Note::Primed { user, generation }).is_err()
    {
        tracing::trace!("call task gone; primed note dropped");
    }
}

/// An interceptor that asks the connection's driver for one more pass after every packet it
/// sends, so a packet for a TURN relay leaves at once.
///
/// webrtc 0.21's driver loop drains the TURN client's output *before* it takes the core's
/// packets (`poll_writes`: `turn_relayer.poll_write()`, then `drain_core_writes` →
/// `turn_relayer.handle_write`, which wraps the packet in ChannelData and queues it in the
/// TURN client). Nothing then wakes the loop, so a relayed packet waited for whatever woke the
/// driver next: the next packet sent, one received, or a timer (about 200 ms when idle). An
/// expired timeout is the one thing that makes the loop run again at once (`handle_timeout`,
/// then `continue`), so this interceptor reports one, dated at the packet it saw, until the
/// driver has handled it. Direct paths pay one extra loop pass per packet sent.
///
/// It sits closest to the wire (first in the chain), so it also sees the RTCP the other
/// interceptors generate on their way out.
#[derive(Default)]
pub(crate) struct RelayFlush {
    reads: VecDeque<TaggedPacket>,
    writes: VecDeque<TaggedPacket>,
    /// When the oldest packet not yet followed by a driver pass was written.
    due: Option<Instant>,
}

/// Before every built-in interceptor (the lowest is `Slot::CongestionControl`, 1000).
const RELAY_FLUSH_SLOT: Slot = Slot::Custom(0);

impl rtc::sansio::Protocol<TaggedPacket, TaggedPacket, ()> for RelayFlush {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = Instant;

    fn handle_read(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.reads.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<TaggedPacket> {
        self.reads.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.due.get_or_insert(msg.now);
        self.writes.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<TaggedPacket> {
        self.writes.pop_front()
    }

    fn handle_timeout(&mut self, now: Instant) -> Result<(), Self::Error> {
        if self.due.is_some_and(|due| due <= now) {
            self.due = None;
        }
        Ok(())
    }

    fn poll_timeout(&mut self) -> Option<Instant> {
        self.due
    }
}

impl Interceptor for RelayFlush {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}

fn opus_codec() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: MIME_TYPE_OPUS.to_owned(),
        clock_rate: OPUS_CLOCK_RATE,
        // RFC 7587: Opus is always signalled as two channels; mono is said with stereo=0.
        channels: 2,
        sdp_fmtp_line: "minptime=10;useinbandfec=1;stereo=0;sprop-stereo=0".to_owned(),
        rtcp_feedback: vec![],
    }
}

fn media_engine() -> webrtc::error::Result<MediaEngine> {
    let mut media = MediaEngine::default();
    media.register_codec(
        RTCRtpCodecParameters { rtp_codec: opus_codec(), payload_type: OPUS_PAYLOAD_TYPE },
        RtpCodecKind::Audio,
    )?;
    Ok(media)
}

/// The local audio track of one connection, with its own SSRC.
pub(crate) fn opus_track(user: UserId, ssrc: u32) -> Arc<TrackLocalStaticRTP> {
    Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
        format!("hearth-{}", user.0),
        format!("voice-{ssrc:08x}"),
        "voice".to_owned(),
        RtpCodecKind::Audio,
        vec![RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters { ssrc: Some(ssrc), ..Default::default() },
            codec: opus_codec(),
            ..Default::default()
        }],
    )))
}

/// The ICE servers and policy of a connection (calls and transfers alike).
pub(crate) fn rtc_configuration(
    ice_servers: &[IceServer],
    relay_only: bool,
) -> webrtc::peer_connection::RTCConfiguration {
    let ice_servers = ice_servers
        .iter()
        .map(|s| RTCIceServer {
            urls: s.urls.clone(),
            username: s.username.clone().unwrap_or_default(),
            credential: s.credential.clone().unwrap_or_default(),
        })
        .collect();
    let policy = if relay_only { RTCIceTransportPolicy::Relay } else { RTCIceTransportPolicy::All };
    RTCConfigurationBuilder::new().with_ice_servers(ice_servers).with_ice_transport_policy(policy).build()
}

/// A connection with its handler, not yet negotiated.
pub(crate) struct Built {
    pub pc: Arc<dyn PeerConnection>,
    pub handler: Weak<PeerHandler>,
}

pub(crate) async fn build(
    transport: &Transport,
    user: UserId,
    generation: u64,
    notes: mpsc::WeakUnboundedSender<Note>,
    media: mpsc::WeakSender<MediaPacket>,
) -> webrtc::error::Result<Built> {
    let mut media_engine = media_engine()?;
    // NACK, RTCP sender/receiver reports (RTT, loss and jitter for the quality view) and TWCC,
    // and the relay flush.
    let registry = register_default_interceptors(Registry::new(), &mut media_engine)?
        .with(RELAY_FLUSH_SLOT, RelayFlush::default());
    let configuration = rtc_configuration(&transport.ice_servers, transport.relay_only);
    // mDNS is off: the default (query-only) binds a multicast socket per connection and waits
    // on lookups that a LAN-less test box or a VPN never answers. Peers reach each other by
    // address, as the server relays real candidates anyway.
    let settings = SettingEngineBuilder::new()
        .with_multicast_dns_mode(MulticastDnsMode::Disabled)
        .with_include_loopback_candidate(transport.udp_bind.iter().any(|a| a.ip().is_loopback()))
        .build();
    let handler = Arc::new(PeerHandler { user, generation, notes, media });
    let weak = Arc::downgrade(&handler);
    let pc = PeerConnectionBuilder::new()
        .with_configuration(configuration)
        .with_media_engine(media_engine)
        .with_interceptor_registry(registry)
        .with_setting_engine(settings)
        .with_handler(handler)
        .with_udp_addrs(transport.udp_bind.clone())
        .build()
        .await?;
    Ok(Built { pc: Arc::new(pc), handler: weak })
}

/// Connection quality from one `getStats` report.
pub(crate) async fn quality(pc: &dyn PeerConnection) -> PeerQuality {
    let report = pc.get_stats(Instant::now(), StatsSelector::None).await;
    let mut q = PeerQuality::default();
    let mut selected_pair = None;
    for entry in report.iter() {
        if let RTCStatsReportEntry::Transport(t) = entry
            && !t.selected_candidate_pair_id.is_empty()
        {
            selected_pair = Some(t.selected_candidate_pair_id.clone());
        }
    }
    let pair = report.iter().find_map(|entry| match entry {
        RTCStatsReportEntry::IceCandidatePair(p)
            if selected_pair.as_deref().map_or(p.nominated, |id| p.stats.id == id) =>
        {
            Some(p)
        }
        _ => None,
    });
    if let Some(pair) = pair {
        if pair.current_round_trip_time > 0.0 {
            q.rtt = Some(Duration::from_secs_f64(pair.current_round_trip_time));
        }
        // webrtc-rs 0.21 names a candidate `RTCLocalIceCandidate_<id>` in its own entry but
        // only `<id>` in the pair that refers to it, so match on the suffix.
        let kind_of = |local: bool, id: &str| {
            report.iter().find_map(|entry| match entry {
                RTCStatsReportEntry::LocalCandidate(c) if local && c.stats.id.ends_with(id) => {
                    Some(c.candidate_type)
                }
                RTCStatsReportEntry::RemoteCandidate(c) if !local && c.stats.id.ends_with(id) => {
                    Some(c.candidate_type)
                }
                _ => None,
            })
        };
        let local = kind_of(true, &pair.local_candidate_id);
        let remote = kind_of(false, &pair.remote_candidate_id);
        q.path = match (local, remote) {
            (Some(RTCIceCandidateType::Relay), _) | (_, Some(RTCIceCandidateType::Relay)) => {
                PathKind::Relayed
            }
            (Some(_), Some(_)) => PathKind::Direct,
            _ => PathKind::Unknown,
        };
    }
    for entry in report.iter() {
        match entry {
            RTCStatsReportEntry::InboundRtp(inbound) => {
                let r = &inbound.received_rtp_stream_stats;
                q.packets_received += r.packets_received;
                q.packets_lost += r.packets_lost.max(0) as u64;
                if r.jitter > 0.0 {
                    q.jitter = Some(Duration::from_secs_f64(r.jitter));
                }
            }
            RTCStatsReportEntry::RemoteInboundRtp(remote) => {
                // What the peer says about our stream (RTCP receiver reports).
                if remote.round_trip_time > 0.0 && q.rtt.is_none() {
                    q.rtt = Some(Duration::from_secs_f64(remote.round_trip_time));
                }
                q.remote_fraction_lost = Some(remote.fraction_lost as f32);
            }
            _ => {}
        }
    }
    let expected = q.packets_received + q.packets_lost;
    if expected > 0 {
        q.loss = q.packets_lost as f32 / expected as f32;
    }
    q
}
