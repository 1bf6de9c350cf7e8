//! The task that owns a call: it follows the session's voice events, negotiates one
//! connection per member, recovers broken ones, measures quality, and on leave closes and
//! drops everything.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hearth_protocol::gateway::Event;
use hearth_protocol::model::{Signal, VoiceState};
use hearth_protocol::{ChannelId, UserId};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::peer_connection::{
    PeerConnection, RTCIceCandidateInit, RTCPeerConnectionState, RTCSessionDescription,
};

use super::negotiation::{self, Link, OfferAction, OfferContext, Recovery, RecoveryAction};
use super::peer::{self, Note, Transport};
use super::{
    CallConfig, CallError, CallEvent, CallProbe, Command, MediaPacket, PeerInfo, PeerQuality, PeerState,
    SendLeg, SendLegs,
};
use crate::session::{ConnectionStatus, SessionEvent, SessionHandle};

/// How often recovery deadlines are looked at.
const RECOVERY_TICK: Duration = Duration::from_millis(250);
/// Remote candidates kept while no remote description is set (they arrive with the offer).
const MAX_PENDING_CANDIDATES: usize = 64;

pub(super) struct Setup {
    pub session: SessionHandle,
    pub session_events: broadcast::Receiver<SessionEvent>,
    pub me: UserId,
    pub channel: ChannelId,
    pub config: CallConfig,
    pub events: broadcast::Sender<CallEvent>,
    pub media: mpsc::Sender<MediaPacket>,
    pub commands: mpsc::Receiver<Command>,
    pub peers: watch::Sender<BTreeMap<UserId, PeerInfo>>,
    pub legs: Arc<SendLegs>,
    pub probe: CallProbe,
    pub cancel: CancellationToken,
    pub joined: oneshot::Sender<Result<(), CallError>>,
}

/// One negotiated (or negotiating) connection to a peer.
struct Conn {
    pc: Arc<dyn PeerConnection>,
    generation: u64,
    /// We sent an offer that is not answered yet.
    local_offer_pending: bool,
    /// DTLS fingerprint of the remote description in effect.
    remote_fingerprint: Option<String>,
    pending_candidates: Vec<RTCIceCandidateInit>,
    /// Where the primers (see [`peer::is_primer`]) stand: the leg goes live, and the peer is
    /// reported connected, only once they went out.
    primer: Primer,
    /// The transport's last word on the connection was "connected".
    link_up: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Primer {
    Unsent,
    Sending,
    Sent,
}

struct Peer {
    conn: Option<Conn>,
    state: PeerState,
    quality: Option<PeerQuality>,
    recovery: Recovery,
    polite: bool,
    /// The connection was up at least once (so trouble is "reconnecting", not "connecting").
    was_connected: bool,
}

pub(super) struct Worker {
    session: SessionHandle,
    session_events: broadcast::Receiver<SessionEvent>,
    me: UserId,
    channel: ChannelId,
    config: CallConfig,
    transport: Transport,
    events: broadcast::Sender<CallEvent>,
    media: mpsc::Sender<MediaPacket>,
    commands: mpsc::Receiver<Command>,
    peers_out: watch::Sender<BTreeMap<UserId, PeerInfo>>,
    legs: Arc<SendLegs>,
    probe: CallProbe,
    cancel: CancellationToken,
    joined: Option<oneshot::Sender<Result<(), CallError>>>,
    notes_tx: mpsc::UnboundedSender<Note>,
    notes_rx: mpsc::UnboundedReceiver<Note>,
    peers: HashMap<UserId, Peer>,
    /// The server confirmed that we are in the channel.
    in_call: bool,
    /// The gateway connection dropped while in the call: rejoin when it is back.
    link_lost: bool,
    /// Set when the call is over (left elsewhere, session gone).
    ended: Option<String>,
    generation: u64,
    muted: bool,
    deafened: bool,
}

impl Worker {
    pub fn new(setup: Setup) -> Worker {
        let (notes_tx, notes_rx) = mpsc::unbounded_channel();
        let transport = Transport {
            ice_servers: setup.config.ice_servers.clone(),
            relay_only: setup.config.relay_only,
            udp_bind: setup.config.udp_bind.clone(),
        };
        Worker {
            session: setup.session,
            session_events: setup.session_events,
            me: setup.me,
            channel: setup.channel,
            muted: setup.config.muted,
            deafened: setup.config.deafened,
            config: setup.config,
            transport,
            events: setup.events,
            media: setup.media,
            commands: setup.commands,
            peers_out: setup.peers,
            legs: setup.legs,
            probe: setup.probe,
            cancel: setup.cancel,
            joined: Some(setup.joined),
            notes_tx,
            notes_rx,
            peers: HashMap::new(),
            in_call: false,
            link_lost: false,
            ended: None,
            generation: 0,
        }
    }

    fn emit(&self, event: CallEvent) {
        // No subscriber is fine: `Call::peers` has the state anyway.
        let _no_subscriber_is_fine = self.events.send(event);
    }

    pub async fn run(mut self) {
        let known: Vec<VoiceState> = std::mem::take(&mut self.config.voice_states);
        let (me, channel) = (self.me, self.channel);
        for state in known.iter().filter(|s| s.user_id != me && s.channel_id == Some(channel)) {
            // Members already there will offer to us; show them at once.
            self.add_peer(state.user_id);
        }
        if let Err(e) = self.session.voice_join(self.channel, self.muted, self.deafened).await {
            self.resolve_join(Err(e.into()));
            return;
        }
        let mut recovery_tick = tokio::time::interval(RECOVERY_TICK);
        recovery_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut quality_tick = tokio::time::interval(self.config.quality_interval);
        quality_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut leave_done = None;
        // Leaving was asked for: `leave`, or the `Call` dropped (its command sender or its
        // cancel guard, whichever the task notices first).
        let mut asked = false;
        loop {
            tokio::select! {
                _ = self.cancel.cancelled() => {
                    asked = true;
                    break;
                }
                command = self.commands.recv() => match command {
                    None => {
                        asked = true;
                        break;
                    }
                    Some(Command::Leave { done }) => {
                        leave_done = Some(done);
                        asked = true;
                        break;
                    }
                    Some(Command::Voice { muted, deafened, speaking, done }) => {
                        self.muted = muted;
                        self.deafened = deafened;
                        let result = self.session.voice_update(muted, deafened, speaking).await.map_err(CallError::from);
                        let _caller_may_be_gone = done.send(result);
                    }
                },
                event = self.session_events.recv() => match event {
                    Ok(event) => self.on_session(event).await,
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(missed = n, "call fell behind the session's events");
                    }
                    Err(broadcast::error::RecvError::Closed) => {
                        self.ended = Some("the session stopped".into());
                    }
                },
                Some(note) = self.notes_rx.recv() => self.on_note(note).await,
                _ = recovery_tick.tick() => self.recover().await,
                _ = quality_tick.tick() => self.measure().await,
            }
            if self.ended.is_some() {
                break;
            }
        }
        self.close_all().await;
        if let Some(reason) = self.ended.take() {
            self.resolve_join(Err(CallError::Ended));
            self.emit(CallEvent::Ended { reason });
        } else if asked
            && self.in_call
            && let Err(e) = self.session.voice_leave().await
        {
            // Offline: the server takes us out of the call when the connection drops anyway.
            tracing::debug!(error = %e, "voice leave not sent");
        }
        if let Some(done) = leave_done {
            let _caller_may_be_gone = done.send(());
        }
    }

    fn resolve_join(&mut self, result: Result<(), CallError>) {
        if let Some(joined) = self.joined.take() {
            let _caller_may_be_gone = joined.send(result);
        }
    }

    async fn on_session(&mut self, event: SessionEvent) {
        match event {
            SessionEvent::Event(Event::VoiceStateUpdate { state }) => self.on_voice_state(state).await,
            SessionEvent::Event(Event::VoiceSignal { from, signal }) if self.in_call && !self.link_lost => {
                self.on_signal(from, signal).await;
            }
            SessionEvent::OpFailed { op: Some(op), error, .. } if op == "VoiceJoin" && !self.in_call => {
                self.resolve_join(Err(CallError::Refused(error.message)));
                self.ended = Some("the server refused the join".into());
            }
            SessionEvent::ConnectionStatus(ConnectionStatus::Reconnecting { .. })
                if self.in_call || self.joined.is_none() =>
            {
                self.lose_link().await;
            }
            SessionEvent::ConnectionStatus(ConnectionStatus::Connected) if self.link_lost => {
                match self.session.voice_join(self.channel, self.muted, self.deafened).await {
                    Ok(()) => self.link_lost = false,
                    Err(e) => tracing::info!(error = %e, "rejoin not sent yet; will retry on reconnect"),
                }
            }
            SessionEvent::ConnectionStatus(ConnectionStatus::Offline) | SessionEvent::LoggedOut => {
                self.ended = Some("the session stopped".into());
            }
            _ => {}
        }
    }

    /// Our gateway connection dropped: the server has taken us out of the call and the others
    /// close their connections to us, so we close ours and rejoin as a newcomer once back.
    async fn lose_link(&mut self) {
        if self.link_lost {
            return;
        }
        self.link_lost = true;
        self.in_call = false;
        self.close_all().await;
        self.emit(CallEvent::Rejoining);
    }

    async fn on_voice_state(&mut self, state: VoiceState) {
        let here = state.channel_id == Some(self.channel);
        if state.user_id == self.me {
            if here && !self.in_call && !self.link_lost {
                self.in_call = true;
                if self.joined.is_some() {
                    self.resolve_join(Ok(()));
                } else {
                    self.emit(CallEvent::Rejoined);
                }
            } else if !here && self.in_call && !self.link_lost {
                // Not our doing: another device of ours joined voice, or the server removed us.
                self.ended = Some("left the call elsewhere".into());
            }
            return;
        }
        match (here, self.peers.contains_key(&state.user_id)) {
            // A mute or speaking change of someone we already have.
            (true, true) => {}
            (true, false) => {
                self.add_peer(state.user_id);
                if self.in_call && !self.link_lost {
                    // They joined after us: we offer.
                    self.offer_fresh(state.user_id).await;
                }
                // Otherwise they were there first and will offer to us.
            }
            (false, true) => self.remove_peer(state.user_id).await,
            (false, false) => {}
        }
    }

    fn add_peer(&mut self, user: UserId) {
        if self.peers.contains_key(&user) {
            return;
        }
        let polite = negotiation::is_polite(self.me, user);
        let recovery = Recovery::new(
            self.config.recovery,
            negotiation::owns_fresh_connections(self.me, user),
            Instant::now(),
        );
        self.peers.insert(
            user,
            Peer {
                conn: None,
                state: PeerState::Connecting,
                quality: None,
                recovery,
                polite,
                was_connected: false,
            },
        );
        // The snapshot first, so whoever hears the event finds it there.
        self.publish();
        self.emit(CallEvent::PeerJoined { user_id: user });
    }

    async fn remove_peer(&mut self, user: UserId) {
        let Some(mut peer) = self.peers.remove(&user) else { return };
        self.legs.lock().remove(&user);
        if let Some(conn) = peer.conn.take() {
            close(conn).await;
        }
        self.publish();
        self.emit(CallEvent::PeerState { user_id: user, state: PeerState::Closed });
        self.emit(CallEvent::PeerLeft { user_id: user });
    }

    async fn close_all(&mut self) {
        let users: Vec<UserId> = self.peers.keys().copied().collect();
        for user in users {
            self.remove_peer(user).await;
        }
        self.legs.lock().clear();
    }

    fn publish(&self) {
        let map = self
            .peers
            .iter()
            .map(|(&user_id, p)| (user_id, PeerInfo { user_id, state: p.state, quality: p.quality.clone() }))
            .collect();
        self.peers_out.send_replace(map);
    }

    fn set_state(&mut self, user: UserId, state: PeerState) {
        let Some(peer) = self.peers.get_mut(&user) else { return };
        if peer.state == state {
            return;
        }
        peer.state = state;
        if state == PeerState::Connected {
            peer.was_connected = true;
        }
        self.publish();
        self.emit(CallEvent::PeerState { user_id: user, state });
    }

    /// Builds a connection with its track and sending leg; the old one, if any, is closed.
    async fn new_conn(&mut self, user: UserId) -> Option<()> {
        if let Some(old) = self.peers.get_mut(&user).and_then(|p| p.conn.take()) {
            close(old).await;
        }
        self.generation += 1;
        let generation = self.generation;
        let built = match peer::build(
            &self.transport,
            user,
            generation,
            self.notes_tx.downgrade(),
            self.media.downgrade(),
        )
        .await
        {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(%user, error = %e, "cannot create a peer connection");
                return None;
            }
        };
        self.probe.track_conn(Arc::downgrade(&built.pc));
        self.probe.track_handler(built.handler);
        let ssrc = rand::random::<u32>();
        let track = peer::opus_track(self.me, ssrc);
        let conn = Conn {
            pc: built.pc,
            generation,
            local_offer_pending: false,
            remote_fingerprint: None,
            pending_candidates: Vec::new(),
            primer: Primer::Unsent,
            link_up: false,
        };
        let peer = self.peers.get_mut(&user)?;
        peer.conn = Some(conn);
        peer.recovery.on_new_connection(Instant::now());
        self.legs.lock().insert(
            user,
            SendLeg {
                track,
                ssrc,
                seq: rand::random(),
                timestamp: rand::random(),
                live: false,
                marker: true,
            },
        );
        Some(())
    }

    fn track_of(&self, user: UserId) -> Option<Arc<TrackLocalStaticRTP>> {
        self.legs.lock().get(&user).map(|leg| leg.track.clone())
    }

    /// A new connection, offered by us.
    async fn offer_fresh(&mut self, user: UserId) {
        if self.new_conn(user).await.is_none() {
            return;
        }
        let Some(track) = self.track_of(user) else { return };
        let Some(pc) = self.conn_pc(user) else { return };
        if let Err(e) = pc.add_track(track).await {
            tracing::warn!(%user, error = %e, "cannot add the audio track");
            return;
        }
        self.send_offer(user, false).await;
    }

    fn conn_pc(&self, user: UserId) -> Option<Arc<dyn PeerConnection>> {
        self.peers.get(&user)?.conn.as_ref().map(|c| c.pc.clone())
    }

    /// Creates and sends an offer on the current connection (with fresh ICE credentials when
    /// `restart`).
    async fn send_offer(&mut self, user: UserId, restart: bool) {
        let Some(pc) = self.conn_pc(user) else { return };
        let pending =
            self.peers.get(&user).and_then(|p| p.conn.as_ref()).is_some_and(|c| c.local_offer_pending);
        let result = async {
            if pending {
                // Our previous offer went unanswered; replace it.
                pc.set_local_description(RTCSessionDescription::rollback(None)?).await?;
            }
            if restart {
                pc.restart_ice().await?;
            }
            let offer = pc.create_offer(None).await?;
            let sdp = offer.sdp.clone();
            pc.set_local_description(offer).await?;
            webrtc::error::Result::Ok(sdp)
        }
        .await;
        let sdp = match result {
            Ok(sdp) => sdp,
            Err(e) => {
                tracing::warn!(%user, restart, error = %e, "cannot create an offer");
                return;
            }
        };
        if let Some(conn) = self.peers.get_mut(&user).and_then(|p| p.conn.as_mut()) {
            conn.local_offer_pending = true;
        }
        self.signal(user, Signal::Offer { sdp }).await;
    }

    async fn signal(&self, user: UserId, signal: Signal) {
        if let Err(e) = self.session.voice_signal(user, signal).await {
            // Offline: recovery offers again once connections are back.
            tracing::debug!(%user, error = %e, "signal not sent");
        }
    }

    async fn on_signal(&mut self, from: UserId, signal: Signal) {
        match signal {
            Signal::Offer { sdp } => {
                self.add_peer(from);
                self.on_offer(from, sdp).await;
            }
            Signal::Answer { sdp } => self.on_answer(from, sdp).await,
            Signal::Candidate { candidate, sdp_mid, sdp_mline_index } => {
                let init = RTCIceCandidateInit { candidate, sdp_mid, sdp_mline_index, ..Default::default() };
                self.on_candidate(from, init).await;
            }
        }
    }

    async fn on_offer(&mut self, from: UserId, sdp: String) {
        let Some(peer) = self.peers.get(&from) else { return };
        let ctx = OfferContext {
            polite: peer.polite,
            local_offer_pending: peer.conn.as_ref().is_some_and(|c| c.local_offer_pending),
            has_connection: peer.conn.is_some(),
            remote_fingerprint: peer.conn.as_ref().and_then(|c| c.remote_fingerprint.as_deref()),
        };
        let offer_fingerprint = negotiation::fingerprint(&sdp).map(str::to_owned);
        let action = negotiation::on_offer(ctx, offer_fingerprint.as_deref());
        tracing::debug!(%from, ?action, "offer");
        let offer = match RTCSessionDescription::offer(sdp) {
            Ok(o) => o,
            Err(e) => {
                tracing::info!(%from, error = %e, "unreadable offer");
                return;
            }
        };
        let fresh = match action {
            OfferAction::Ignore => return,
            OfferAction::Replace => {
                if self.new_conn(from).await.is_none() {
                    return;
                }
                true
            }
            OfferAction::RollbackThenApply | OfferAction::Apply => false,
        };
        let Some(pc) = self.conn_pc(from) else { return };
        let track = if fresh { self.track_of(from) } else { None };
        let rollback = action == OfferAction::RollbackThenApply;
        let result = async {
            if rollback {
                pc.set_local_description(RTCSessionDescription::rollback(None)?).await?;
            }
            pc.set_remote_description(offer).await?;
            if let Some(track) = track {
                // After the remote offer, so the track takes the transceiver its m-line made.
                pc.add_track(track).await?;
            }
            let answer = pc.create_answer(None).await?;
            let sdp = answer.sdp.clone();
            pc.set_local_description(answer).await?;
            webrtc::error::Result::Ok(sdp)
        }
        .await;
        let sdp = match result {
            Ok(sdp) => sdp,
            Err(e) => {
                tracing::warn!(%from, error = %e, "cannot answer an offer");
                return;
            }
        };
        let pending = match self.peers.get_mut(&from).and_then(|p| p.conn.as_mut()) {
            Some(conn) => {
                conn.local_offer_pending = false;
                conn.remote_fingerprint = offer_fingerprint;
                std::mem::take(&mut conn.pending_candidates)
            }
            None => return,
        };
        self.signal(from, Signal::Answer { sdp }).await;
        for candidate in pending {
            add_candidate(&*pc, candidate).await;
        }
    }

    async fn on_answer(&mut self, from: UserId, sdp: String) {
        let Some(conn) = self.peers.get_mut(&from).and_then(|p| p.conn.as_mut()) else { return };
        if !conn.local_offer_pending {
            tracing::debug!(%from, "answer to no offer of ours; ignored");
            return;
        }
        let fingerprint = negotiation::fingerprint(&sdp).map(str::to_owned);
        let pc = conn.pc.clone();
        let applied = match RTCSessionDescription::answer(sdp) {
            Ok(answer) => pc.set_remote_description(answer).await,
            Err(e) => Err(e),
        };
        if let Err(e) = applied {
            tracing::warn!(%from, error = %e, "cannot apply an answer");
            return;
        }
        let Some(conn) = self.peers.get_mut(&from).and_then(|p| p.conn.as_mut()) else { return };
        conn.local_offer_pending = false;
        conn.remote_fingerprint = fingerprint;
        let pending = std::mem::take(&mut conn.pending_candidates);
        for candidate in pending {
            add_candidate(&*pc, candidate).await;
        }
    }

    async fn on_candidate(&mut self, from: UserId, candidate: RTCIceCandidateInit) {
        let Some(conn) = self.peers.get_mut(&from).and_then(|p| p.conn.as_mut()) else { return };
        if conn.remote_fingerprint.is_none() {
            // Before the description it belongs to (or for a connection being replaced).
            if conn.pending_candidates.len() < MAX_PENDING_CANDIDATES {
                conn.pending_candidates.push(candidate);
            }
            return;
        }
        let pc = conn.pc.clone();
        add_candidate(&*pc, candidate).await;
    }

    async fn on_note(&mut self, note: Note) {
        match note {
            Note::LocalCandidate { user, generation, candidate } => {
                if self.current_generation(user) == Some(generation) {
                    let signal = Signal::Candidate {
                        candidate: candidate.candidate,
                        sdp_mid: candidate.sdp_mid,
                        sdp_mline_index: candidate.sdp_mline_index,
                    };
                    self.signal(user, signal).await;
                }
            }
            Note::State { user, generation, state } => {
                if self.current_generation(user) != Some(generation) {
                    return;
                }
                tracing::debug!(%user, ?state, "connection state");
                let link = match state {
                    RTCPeerConnectionState::Connected => Link::Connected,
                    RTCPeerConnectionState::Disconnected => Link::Disconnected,
                    RTCPeerConnectionState::Failed => Link::Failed,
                    RTCPeerConnectionState::New | RTCPeerConnectionState::Connecting => Link::Connecting,
                    _ => return,
                };
                // A connection carries media only after its primers went out (a fresh
                // connection is reported connected then, not before).
                let ready = link == Link::Connected && self.primed(user, generation);
                if let Some(leg) = self.legs.lock().get_mut(&user) {
                    leg.live = ready;
                }
                let Some(peer) = self.peers.get_mut(&user) else { return };
                if let Some(conn) = peer.conn.as_mut() {
                    conn.link_up = link == Link::Connected;
                }
                peer.recovery.on_link(link, Instant::now());
                let state = match link {
                    Link::Connected if ready => PeerState::Connected,
                    Link::Connected | Link::Connecting if !peer.was_connected => PeerState::Connecting,
                    Link::Connected => PeerState::Reconnecting,
                    _ if peer.recovery.gave_up() => PeerState::Failed,
                    _ => PeerState::Reconnecting,
                };
                self.set_state(user, state);
            }
            Note::Primed { user, generation } => {
                if self.current_generation(user) != Some(generation) {
                    return;
                }
                let Some(conn) = self.peers.get_mut(&user).and_then(|p| p.conn.as_mut()) else { return };
                conn.primer = Primer::Sent;
                if !conn.link_up {
                    // Went down meanwhile; the next "connected" makes it live.
                    return;
                }
                if let Some(leg) = self.legs.lock().get_mut(&user) {
                    leg.live = true;
                }
                self.set_state(user, PeerState::Connected);
            }
        }
    }

    /// Whether the connection's primers went out; if they were never sent, starts sending
    /// them (a [`Note::Primed`] follows). They take the leg's next sequence numbers and the
    /// first frame's timestamp, and go out before the leg is live, so no frame overtakes them.
    fn primed(&mut self, user: UserId, generation: u64) -> bool {
        let Some(conn) = self.peers.get_mut(&user).and_then(|p| p.conn.as_mut()) else { return false };
        match conn.primer {
            Primer::Sent => return true,
            Primer::Sending => return false,
            Primer::Unsent => conn.primer = Primer::Sending,
        }
        let (track, packets) = {
            let mut legs = self.legs.lock();
            let Some(leg) = legs.get_mut(&user) else { return false };
            let packets: Vec<_> = (0..peer::PRIMERS)
                .map(|_| {
                    let seq = leg.seq;
                    leg.seq = leg.seq.wrapping_add(1);
                    peer::primer(leg.ssrc, seq, leg.timestamp)
                })
                .collect();
            (leg.track.clone(), packets)
        };
        tokio::spawn(peer::send_primers(track, packets, user, generation, self.notes_tx.downgrade()));
        false
    }

    fn current_generation(&self, user: UserId) -> Option<u64> {
        self.peers.get(&user)?.conn.as_ref().map(|c| c.generation)
    }

    async fn recover(&mut self) {
        if !self.in_call || self.link_lost {
            return;
        }
        let now = Instant::now();
        let due: Vec<(UserId, RecoveryAction)> = self
            .peers
            .iter_mut()
            .filter_map(|(&user, peer)| peer.recovery.poll(now).map(|action| (user, action)))
            .collect();
        for (user, action) in due {
            tracing::info!(%user, ?action, "recovering a peer connection");
            let Some(peer) = self.peers.get(&user) else { continue };
            let trouble = if peer.was_connected { PeerState::Reconnecting } else { PeerState::Connecting };
            let negotiated = peer.conn.as_ref().is_some_and(|c| c.remote_fingerprint.is_some());
            match action {
                RecoveryAction::GiveUp => {
                    if let Some(leg) = self.legs.lock().get_mut(&user) {
                        leg.live = false;
                    }
                    self.set_state(user, PeerState::Failed);
                }
                RecoveryAction::IceRestart if negotiated => {
                    self.set_state(user, trouble);
                    self.send_offer(user, true).await;
                }
                // Nothing negotiated to restart (our offer or theirs was lost): offer anew.
                RecoveryAction::IceRestart | RecoveryAction::FreshConnection => {
                    self.set_state(user, trouble);
                    self.offer_fresh(user).await;
                }
            }
        }
    }

    async fn measure(&mut self) {
        let connected: Vec<(UserId, Arc<dyn PeerConnection>)> = self
            .peers
            .iter()
            .filter(|(_, p)| p.state == PeerState::Connected)
            .filter_map(|(&user, p)| p.conn.as_ref().map(|c| (user, c.pc.clone())))
            .collect();
        if connected.is_empty() {
            return;
        }
        for (user, pc) in connected {
            let quality = peer::quality(&*pc).await;
            if let Some(peer) = self.peers.get_mut(&user) {
                peer.quality = Some(quality.clone());
            }
            self.publish();
            self.emit(CallEvent::Quality { user_id: user, quality });
        }
    }
}

async fn add_candidate(pc: &dyn PeerConnection, candidate: RTCIceCandidateInit) {
    if let Err(e) = pc.add_ice_candidate(candidate).await {
        // A candidate of a previous ICE generation or connection: harmless.
        tracing::debug!(error = %e, "remote candidate not added");
    }
}

async fn close(conn: Conn) {
    if let Err(e) = conn.pc.close().await {
        tracing::debug!(error = %e, "closing a peer connection");
    }
}
