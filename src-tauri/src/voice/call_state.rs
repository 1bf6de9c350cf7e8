//! What the UI is told about this device's call, as pure state: the `VoiceCall`,
//! `SpeakingUpdate`, `PeerQuality`, `MicLevel` and `VoiceDeviceError` payloads of the contract,
//! the mute/deafen rules ([`MicState`]) and the [`CallTracker`] that turns the engine's
//! [`VoiceEvent`]s into window events (connection state, speaking batches, link quality).

use std::collections::BTreeMap;

use hearth_client::VoiceEvent;
use hearth_client::call::{PathKind, PeerInfo, PeerState};
use hearth_client::voice::DeviceKind;
use hearth_protocol::{ChannelId, UserId};
use serde::Serialize;

/// `VoiceConnection` of `backend.ts`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ts_rs::TS)]
#[serde(rename_all = "lowercase")]
#[ts(rename = "VoiceConnection")]
pub enum Connection {
    Disconnected,
    Connecting,
    Connected,
    Reconnecting,
}

/// `VoiceCall`: this device's call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ts_rs::TS)]
pub struct VoiceCall {
    pub channel_id: Option<ChannelId>,
    pub state: Connection,
    pub muted: bool,
    pub deafened: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, ts_rs::TS)]
pub struct SpeakingUpdate {
    pub user_id: UserId,
    pub speaking: bool,
    pub level_dbfs: f32,
}

/// `PeerQuality` of `backend.ts`: our link to one member.
#[derive(Debug, Clone, PartialEq, Serialize, ts_rs::TS)]
pub struct PeerQuality {
    pub user_id: UserId,
    #[ts(type = "'connecting' | 'connected' | 'reconnecting' | 'failed'")]
    pub state: &'static str,
    pub rtt_ms: Option<f64>,
    pub loss: f32,
    pub jitter_ms: Option<f64>,
    #[ts(type = "'direct' | 'relayed' | 'unknown'")]
    pub path: &'static str,
}

impl PeerQuality {
    /// `None` for a closed connection: the member left, and their `VoiceStateUpdate` says so.
    pub fn from_engine(
        user_id: UserId,
        state: PeerState,
        quality: Option<&hearth_client::call::PeerQuality>,
    ) -> Option<PeerQuality> {
        let state = match state {
            PeerState::Connecting => "connecting",
            PeerState::Connected => "connected",
            PeerState::Reconnecting => "reconnecting",
            PeerState::Failed => "failed",
            PeerState::Closed => return None,
        };
        let ms = |d: std::time::Duration| (d.as_secs_f64() * 10_000.0).round() / 10.0;
        Some(PeerQuality {
            user_id,
            state,
            rtt_ms: quality.and_then(|q| q.rtt).map(ms),
            loss: quality.map_or(0.0, |q| q.loss.clamp(0.0, 1.0)),
            jitter_ms: quality.and_then(|q| q.jitter).map(ms),
            path: match quality.map_or(PathKind::Unknown, |q| q.path) {
                PathKind::Direct => "direct",
                PathKind::Relayed => "relayed",
                PathKind::Unknown => "unknown",
            },
        })
    }

    pub fn from_info(info: &PeerInfo) -> Option<PeerQuality> {
        PeerQuality::from_engine(info.user_id, info.state, info.quality.as_ref())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, ts_rs::TS)]
pub struct MicLevel {
    pub level_dbfs: f32,
    pub voice_detected: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ts_rs::TS)]
pub struct VoiceDeviceError {
    #[ts(type = "'input' | 'output'")]
    pub device: &'static str,
    pub message: String,
}

impl VoiceDeviceError {
    pub fn new(device: DeviceKind, message: String) -> VoiceDeviceError {
        let device = match device {
            DeviceKind::Input => "input",
            DeviceKind::Output => "output",
        };
        VoiceDeviceError { device, message }
    }
}

/// Own mute and deafen, kept outside calls too. Deafening mutes; undeafening restores the
/// mute chosen before (or while) deafened; unmuting while deafened also undeafens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MicState {
    /// The mute the user chose, apart from deafen (what the engine's `muted` means).
    chosen_muted: bool,
    deafened: bool,
}

impl MicState {
    /// The mute the UI shows: true whenever deafened.
    pub fn muted(&self) -> bool {
        self.chosen_muted || self.deafened
    }

    pub fn deafened(&self) -> bool {
        self.deafened
    }

    /// The engine's own mute (without deafen).
    pub fn chosen_muted(&self) -> bool {
        self.chosen_muted
    }

    pub fn set_muted(&mut self, muted: bool) {
        self.chosen_muted = muted;
        if !muted {
            self.deafened = false;
        }
    }

    pub fn set_deafened(&mut self, deafened: bool) {
        self.deafened = deafened;
    }
}

/// A window event the tracker asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Emit {
    /// The call's connection state changed.
    State(Connection),
    Speaking(Vec<SpeakingUpdate>),
    Quality(PeerQuality),
    /// The microphone's level (for the mic test, when it taps the call).
    Level(MicLevel),
    DeviceError(VoiceDeviceError),
    /// The call ended without us leaving.
    Ended {
        reason: String,
    },
}

#[derive(Debug, Clone)]
struct Link {
    state: PeerState,
    quality: Option<hearth_client::call::PeerQuality>,
}

/// Follows one call's [`VoiceEvent`]s. See the module docs.
#[derive(Debug)]
pub struct CallTracker {
    me: UserId,
    state: Connection,
    links: BTreeMap<UserId, Link>,
    /// Speaking and last level as this device hears them, ourselves included.
    heard: BTreeMap<UserId, (bool, f32)>,
}

/// The meters' floor (`LEVEL_FLOOR_DBFS`).
const SILENCE_DBFS: f32 = -100.0;

impl CallTracker {
    /// A call the server has just accepted, with the members already there. Alone, it is
    /// connected at once; otherwise when every link is set up.
    pub fn new(me: UserId, peers: &[PeerInfo]) -> CallTracker {
        let links: BTreeMap<UserId, Link> = peers
            .iter()
            .filter(|p| p.state != PeerState::Closed)
            .map(|p| (p.user_id, Link { state: p.state, quality: p.quality.clone() }))
            .collect();
        let mut tracker = CallTracker { me, state: Connection::Connecting, links, heard: BTreeMap::new() };
        if tracker.settled() {
            tracker.state = Connection::Connected;
        }
        tracker
    }

    pub fn state(&self) -> Connection {
        self.state
    }

    /// Every link as `PeerQuality` (the state to start from).
    pub fn qualities(&self) -> Vec<PeerQuality> {
        self.links
            .iter()
            .filter_map(|(user, link)| PeerQuality::from_engine(*user, link.state, link.quality.as_ref()))
            .collect()
    }

    /// No link is still being set up.
    fn settled(&self) -> bool {
        self.links.values().all(|l| l.state != PeerState::Connecting)
    }

    fn set_state(&mut self, state: Connection, out: &mut Vec<Emit>) {
        if self.state != state {
            self.state = state;
            out.push(Emit::State(state));
        }
    }

    /// The first setup of the call completes when its links do; later arrivals only show in
    /// their own `PeerQuality`.
    fn maybe_connected(&mut self, out: &mut Vec<Emit>) {
        if self.state == Connection::Connecting && self.settled() {
            self.set_state(Connection::Connected, out);
        }
    }

    fn quality_of(&self, user: UserId) -> Option<PeerQuality> {
        let link = self.links.get(&user)?;
        PeerQuality::from_engine(user, link.state, link.quality.as_ref())
    }

    /// Speaking changed for `user`: reported at once, with the last level heard.
    fn speaking(&mut self, user: UserId, speaking: bool, out: &mut Vec<Emit>) {
        let entry = self.heard.entry(user).or_insert((false, SILENCE_DBFS));
        if entry.0 == speaking {
            return;
        }
        entry.0 = speaking;
        out.push(Emit::Speaking(vec![SpeakingUpdate { user_id: user, speaking, level_dbfs: entry.1 }]));
    }

    pub fn on_event(&mut self, event: VoiceEvent) -> Vec<Emit> {
        let mut out = Vec::new();
        match event {
            VoiceEvent::SelfSpeaking { speaking } => self.speaking(self.me, speaking, &mut out),
            VoiceEvent::PeerSpeaking { user_id, speaking } => self.speaking(user_id, speaking, &mut out),
            VoiceEvent::Levels { level_dbfs, voice_detected, peers } => {
                out.push(Emit::Level(MicLevel { level_dbfs, voice_detected }));
                // Every 100 ms: the levels of whoever speaks, and anyone whose flag we missed.
                let mut batch = Vec::new();
                let me = self.me;
                let levels = std::iter::once((me, level_dbfs, None))
                    .chain(peers.iter().map(|p| (p.user_id, p.level_dbfs, Some(p.speaking))));
                for (user, level, speaking) in levels {
                    let entry = self.heard.entry(user).or_insert((false, SILENCE_DBFS));
                    entry.1 = level;
                    let changed = speaking.is_some_and(|s| s != entry.0);
                    if let Some(s) = speaking {
                        entry.0 = s;
                    }
                    if entry.0 || changed {
                        batch.push(SpeakingUpdate { user_id: user, speaking: entry.0, level_dbfs: level });
                    }
                }
                if !batch.is_empty() {
                    out.push(Emit::Speaking(batch));
                }
            }
            VoiceEvent::PeerJoined { user_id } => {
                let link =
                    self.links.entry(user_id).or_insert(Link { state: PeerState::Connecting, quality: None });
                link.state = PeerState::Connecting;
                link.quality = None;
                out.extend(self.quality_of(user_id).map(Emit::Quality));
            }
            VoiceEvent::PeerLeft { user_id } => {
                self.links.remove(&user_id);
                if self.heard.remove(&user_id).is_some_and(|(speaking, _)| speaking) {
                    out.push(Emit::Speaking(vec![SpeakingUpdate {
                        user_id,
                        speaking: false,
                        level_dbfs: SILENCE_DBFS,
                    }]));
                }
                self.maybe_connected(&mut out);
            }
            VoiceEvent::PeerConnection { user_id, state } => {
                if state == PeerState::Closed {
                    self.links.remove(&user_id);
                } else {
                    let link = self.links.entry(user_id).or_insert(Link { state, quality: None });
                    link.state = state;
                    out.extend(self.quality_of(user_id).map(Emit::Quality));
                }
                self.maybe_connected(&mut out);
            }
            VoiceEvent::Quality { user_id, quality, jitter } => {
                let link =
                    self.links.entry(user_id).or_insert(Link { state: PeerState::Connected, quality: None });
                let mut quality = quality;
                // The transport's RFC 3550 figure when it has one, else our jitter buffer's.
                if quality.jitter.is_none() && jitter.received > 0 {
                    quality.jitter =
                        Some(std::time::Duration::from_secs_f32(jitter.jitter_ms.max(0.0) / 1000.0));
                }
                link.quality = Some(quality);
                out.extend(self.quality_of(user_id).map(Emit::Quality));
            }
            VoiceEvent::DeviceError { device, message } => {
                out.push(Emit::DeviceError(VoiceDeviceError::new(device, message)));
            }
            VoiceEvent::Rejoining => self.set_state(Connection::Reconnecting, &mut out),
            VoiceEvent::Rejoined => self.set_state(Connection::Connected, &mut out),
            VoiceEvent::Ended { reason } => {
                self.set_state(Connection::Disconnected, &mut out);
                out.push(Emit::Ended { reason });
            }
            other => tracing::debug!("voice event not forwarded: {other:?}"),
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hearth_client::call::PeerQuality as LinkStats;
    use hearth_client::voice::PeerLevel;
    use hearth_voice::JitterStats;
    use std::time::Duration;

    const ME: UserId = UserId(1);
    const BOB: UserId = UserId(2);
    const CAROL: UserId = UserId(3);

    fn peer(user_id: UserId, state: PeerState) -> PeerInfo {
        PeerInfo { user_id, state, quality: None }
    }

    fn levels(me: f32, peers: &[(UserId, f32, bool)]) -> VoiceEvent {
        VoiceEvent::Levels {
            level_dbfs: me,
            voice_detected: me > -50.0,
            peers: peers
                .iter()
                .map(|&(user_id, level_dbfs, speaking)| PeerLevel { user_id, level_dbfs, speaking })
                .collect(),
        }
    }

    fn speaking_batches(out: &[Emit]) -> Vec<Vec<SpeakingUpdate>> {
        out.iter().filter_map(|e| if let Emit::Speaking(b) = e { Some(b.clone()) } else { None }).collect()
    }

    #[test]
    fn alone_in_the_channel_is_connected_at_once() {
        let tracker = CallTracker::new(ME, &[]);
        assert_eq!(tracker.state(), Connection::Connected);
        assert!(tracker.qualities().is_empty());
    }

    #[test]
    fn with_others_connected_once_every_link_is_up() {
        let mut t =
            CallTracker::new(ME, &[peer(BOB, PeerState::Connecting), peer(CAROL, PeerState::Connecting)]);
        assert_eq!(t.state(), Connection::Connecting);
        let out = t.on_event(VoiceEvent::PeerConnection { user_id: BOB, state: PeerState::Connected });
        assert_eq!(out.len(), 1, "bob's quality only: {out:?}");
        assert!(matches!(&out[0], Emit::Quality(q) if q.user_id == BOB && q.state == "connected"));
        let out = t.on_event(VoiceEvent::PeerConnection { user_id: CAROL, state: PeerState::Connected });
        assert!(out.contains(&Emit::State(Connection::Connected)), "{out:?}");
        // A later arrival does not take the call back to connecting.
        let out = t.on_event(VoiceEvent::PeerJoined { user_id: UserId(4) });
        assert_eq!(t.state(), Connection::Connected);
        assert_eq!(
            out,
            vec![Emit::Quality(PeerQuality {
                user_id: UserId(4),
                state: "connecting",
                rtt_ms: None,
                loss: 0.0,
                jitter_ms: None,
                path: "unknown"
            })]
        );
    }

    #[test]
    fn a_peer_leaving_before_connecting_lets_the_call_connect() {
        let mut t = CallTracker::new(ME, &[peer(BOB, PeerState::Connecting)]);
        let out = t.on_event(VoiceEvent::PeerLeft { user_id: BOB });
        assert_eq!(out, vec![Emit::State(Connection::Connected)]);
    }

    #[test]
    fn rejoin_and_end_map_to_reconnecting_connected_disconnected() {
        let mut t = CallTracker::new(ME, &[]);
        assert_eq!(t.on_event(VoiceEvent::Rejoining), vec![Emit::State(Connection::Reconnecting)]);
        assert_eq!(t.on_event(VoiceEvent::Rejoined), vec![Emit::State(Connection::Connected)]);
        assert_eq!(
            t.on_event(VoiceEvent::Ended { reason: "joined elsewhere".into() }),
            vec![Emit::State(Connection::Disconnected), Emit::Ended { reason: "joined elsewhere".into() }]
        );
    }

    #[test]
    fn quality_carries_the_links_numbers_and_state() {
        let mut t = CallTracker::new(ME, &[peer(BOB, PeerState::Connected)]);
        let stats = LinkStats {
            rtt: Some(Duration::from_micros(12_345)),
            loss: 0.02,
            jitter: Some(Duration::from_millis(3)),
            path: PathKind::Relayed,
            ..LinkStats::default()
        };
        let out =
            t.on_event(VoiceEvent::Quality { user_id: BOB, quality: stats, jitter: JitterStats::default() });
        let expected = PeerQuality {
            user_id: BOB,
            state: "connected",
            rtt_ms: Some(12.3),
            loss: 0.02,
            jitter_ms: Some(3.0),
            path: "relayed",
        };
        assert_eq!(out, vec![Emit::Quality(expected.clone())]);
        // A state change keeps the last numbers.
        let out = t.on_event(VoiceEvent::PeerConnection { user_id: BOB, state: PeerState::Reconnecting });
        assert_eq!(out, vec![Emit::Quality(PeerQuality { state: "reconnecting", ..expected })]);
        // Closed is the member leaving: nothing for the UI.
        assert!(t.on_event(VoiceEvent::PeerConnection { user_id: BOB, state: PeerState::Closed }).is_empty());
        assert!(t.qualities().is_empty());
    }

    #[test]
    fn quality_serializes_as_the_contract() {
        let q = PeerQuality::from_engine(BOB, PeerState::Failed, None).unwrap();
        assert_eq!(
            serde_json::to_value(q).unwrap(),
            serde_json::json!({"user_id": "2", "state": "failed", "rtt_ms": null, "loss": 0.0,
                "jitter_ms": null, "path": "unknown"})
        );
    }

    #[test]
    fn speaking_changes_are_sent_at_once_with_the_last_level() {
        let mut t = CallTracker::new(ME, &[peer(BOB, PeerState::Connected)]);
        t.on_event(levels(-60.0, &[(BOB, -35.0, false)]));
        let out = t.on_event(VoiceEvent::PeerSpeaking { user_id: BOB, speaking: true });
        assert_eq!(
            speaking_batches(&out),
            vec![vec![SpeakingUpdate { user_id: BOB, speaking: true, level_dbfs: -35.0 }]]
        );
        // A repeat is not news.
        assert!(t.on_event(VoiceEvent::PeerSpeaking { user_id: BOB, speaking: true }).is_empty());
        let out = t.on_event(VoiceEvent::SelfSpeaking { speaking: true });
        assert_eq!(
            speaking_batches(&out),
            vec![vec![SpeakingUpdate { user_id: ME, speaking: true, level_dbfs: -60.0 }]]
        );
    }

    #[test]
    fn levels_batch_only_speakers_and_changed_entries() {
        let mut t =
            CallTracker::new(ME, &[peer(BOB, PeerState::Connected), peer(CAROL, PeerState::Connected)]);
        // Nobody speaks: no batch, only the mic level.
        let out = t.on_event(levels(-70.0, &[(BOB, -90.0, false), (CAROL, -95.0, false)]));
        assert_eq!(out, vec![Emit::Level(MicLevel { level_dbfs: -70.0, voice_detected: false })]);
        // Bob speaks (his flag seen first in the levels): listed; carol and I are not.
        let out = t.on_event(levels(-70.0, &[(BOB, -30.0, true), (CAROL, -95.0, false)]));
        assert_eq!(
            speaking_batches(&out),
            vec![vec![SpeakingUpdate { user_id: BOB, speaking: true, level_dbfs: -30.0 }]]
        );
        t.on_event(VoiceEvent::SelfSpeaking { speaking: true });
        let out = t.on_event(levels(-25.0, &[(BOB, -32.0, true), (CAROL, -95.0, false)]));
        assert_eq!(
            speaking_batches(&out),
            vec![vec![
                SpeakingUpdate { user_id: ME, speaking: true, level_dbfs: -25.0 },
                SpeakingUpdate { user_id: BOB, speaking: true, level_dbfs: -32.0 },
            ]]
        );
        // Bob stops (flag in the levels before his event): listed once as not speaking.
        t.on_event(VoiceEvent::SelfSpeaking { speaking: false });
        let out = t.on_event(levels(-70.0, &[(BOB, -80.0, false), (CAROL, -95.0, false)]));
        assert_eq!(
            speaking_batches(&out),
            vec![vec![SpeakingUpdate { user_id: BOB, speaking: false, level_dbfs: -80.0 }]]
        );
        assert!(t.on_event(VoiceEvent::PeerSpeaking { user_id: BOB, speaking: false }).is_empty());
    }

    #[test]
    fn a_speaker_who_leaves_stops_speaking() {
        let mut t = CallTracker::new(ME, &[peer(BOB, PeerState::Connected)]);
        t.on_event(VoiceEvent::PeerSpeaking { user_id: BOB, speaking: true });
        let out = t.on_event(VoiceEvent::PeerLeft { user_id: BOB });
        assert_eq!(
            speaking_batches(&out),
            vec![vec![SpeakingUpdate { user_id: BOB, speaking: false, level_dbfs: SILENCE_DBFS }]]
        );
    }

    #[test]
    fn device_errors_name_the_device() {
        let mut t = CallTracker::new(ME, &[]);
        let out =
            t.on_event(VoiceEvent::DeviceError { device: DeviceKind::Output, message: "unplugged".into() });
        assert_eq!(
            out,
            vec![Emit::DeviceError(VoiceDeviceError { device: "output", message: "unplugged".into() })]
        );
    }

    #[test]
    fn deafen_mutes_and_undeafen_restores_the_chosen_mute() {
        let mut m = MicState::default();
        m.set_deafened(true);
        assert!(m.muted() && m.deafened() && !m.chosen_muted());
        m.set_deafened(false);
        assert!(!m.muted());

        m.set_muted(true);
        m.set_deafened(true);
        m.set_deafened(false);
        assert!(m.muted(), "the mute from before deafening comes back");

        // Unmuting while deafened undeafens too.
        m.set_deafened(true);
        m.set_muted(false);
        assert!(!m.muted() && !m.deafened());
    }

    #[test]
    fn voice_call_serializes_as_the_contract() {
        let call =
            VoiceCall { channel_id: None, state: Connection::Disconnected, muted: true, deafened: false };
        assert_eq!(
            serde_json::to_value(call).unwrap(),
            serde_json::json!({"channel_id": null, "state": "disconnected", "muted": true, "deafened": false})
        );
    }
}
