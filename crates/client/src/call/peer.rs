//! The webrtc-rs side of one peer: building a connection for the call's settings, the event
//! handler (which holds only weak references, so a closed connection is freed), the local
//! Opus track, the reader of the remote track, and quality from `getStats`.

use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use hearth_protocol::UserId;
use hearth_protocol::model::IceServer;
use rtc::ice::mdns::MulticastDnsMode;
use rtc::peer_connection::configuration::media_engine::MIME_TYPE_OPUS;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use tokio::sync::mpsc;
use webrtc::media_stream::MediaStreamTrack;
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
    LocalCandidate { user: UserId, generation: u64, candidate: RTCIceCandidateInit },
    State { user: UserId, generation: u64, state: RTCPeerConnectionState },
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
        if packet.header.payload_type != OPUS_PAYLOAD_TYPE {
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
    // NACK, RTCP sender/receiver reports (RTT, loss and jitter for the quality view) and TWCC.
    let registry = register_default_interceptors(Registry::new(), &mut media_engine)?;
    let ice_servers = transport
        .ice_servers
        .iter()
        .map(|s| RTCIceServer {
            urls: s.urls.clone(),
            username: s.username.clone().unwrap_or_default(),
            credential: s.credential.clone().unwrap_or_default(),
        })
        .collect();
    let policy = if transport.relay_only { RTCIceTransportPolicy::Relay } else { RTCIceTransportPolicy::All };
    let configuration = RTCConfigurationBuilder::new()
        .with_ice_servers(ice_servers)
        .with_ice_transport_policy(policy)
        .build();
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
