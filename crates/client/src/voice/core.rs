//! The voice engine's per-frame logic as a plain state machine: [`Core`] owns the capture and
//! playback pipelines, the call's members, the join/leave tones and the speaking reporter, and
//! is driven with explicit time by the audio thread (`super::audio`) or by a test. Nothing here
//! reads a clock, opens a device or touches the network: what should go out comes back as
//! [`Effect`]s and [`VoiceEvent`]s.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use hearth_protocol::UserId;
use hearth_voice::level::FLOOR_DBFS;
use hearth_voice::pipeline::PipelineError;
use hearth_voice::{
    Capture, CaptureConfig, FRAME_SAMPLES, FRAMES_PER_SECOND, PcmFrame, Playback, PlaybackConfig,
    ReceivedPacket, SAMPLE_RATE, TickShift, TransmitMode,
};

use super::{PeerLevel, VoiceEvent, VoiceSettings};
use crate::call::PeerQuality;

/// Levels are reported every this many frames (100 ms): enough for a meter, few events.
const LEVEL_EVERY: u64 = FRAMES_PER_SECOND as u64 / 10;

/// What the core asks the network side to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Effect {
    /// Send one Opus frame, after accounting for `skipped` frames that were not sent since
    /// the previous one (the receivers see them as a pause).
    Send { payload: Vec<u8>, skipped: u32 },
    /// Tell the server (and so the others) our voice state.
    VoiceState { muted: bool, deafened: bool, speaking: bool },
}

/// A change of a setting, applied between frames.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Setting {
    Muted(bool),
    Deafened(bool),
    Mode(TransmitMode),
    PushToTalk(bool),
    UserVolume(UserId, f32),
    Sensitivity(f32),
    NoiseSuppression(bool),
    EchoCancellation(bool),
    Sounds(bool),
}

/// Debounces the speaking flag we send to the server: a change must last `settle` before it
/// is reported, and reports are at least `min_interval` apart, so a ring that flickers locally
/// does not become a stream of gateway ops (the VAD's own hangover already smooths words).
#[derive(Debug, Clone)]
pub(crate) struct SpeakingReporter {
    settle: Duration,
    min_interval: Duration,
    reported: bool,
    pending_since: Option<Duration>,
    last_report: Option<Duration>,
}

impl SpeakingReporter {
    pub(crate) fn new(settle: Duration, min_interval: Duration) -> Self {
        SpeakingReporter { settle, min_interval, reported: false, pending_since: None, last_report: None }
    }

    /// Feeds the local speaking state at `now`; returns the new state when it should be sent.
    pub(crate) fn update(&mut self, now: Duration, speaking: bool) -> Option<bool> {
        if speaking == self.reported {
            self.pending_since = None;
            return None;
        }
        let since = *self.pending_since.get_or_insert(now);
        let settled = now.saturating_sub(since) >= self.settle;
        let spaced = self.last_report.is_none_or(|t| now.saturating_sub(t) >= self.min_interval);
        if settled && spaced {
            self.reported = speaking;
            self.pending_since = None;
            self.last_report = Some(now);
            return Some(speaking);
        }
        None
    }

    /// Forces the reported state (e.g. to "not speaking" when muting, which is sent at once
    /// with the mute).
    pub(crate) fn force(&mut self, now: Duration, speaking: bool) {
        self.reported = speaking;
        self.pending_since = None;
        self.last_report = Some(now);
    }

    pub(crate) fn reported(&self) -> bool {
        self.reported
    }
}

/// The short sounds of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sound {
    /// We joined.
    SelfJoin,
    /// Someone joined.
    PeerJoin,
    /// Someone left.
    PeerLeave,
}

/// Generated tones queued for the speaker, mixed on top of the call.
#[derive(Debug, Default)]
pub(crate) struct Tones {
    queue: VecDeque<f32>,
}

/// Peak amplitude of a tone: clearly audible, well under a loud voice.
const TONE_LEVEL: f32 = 0.15;

impl Tones {
    pub(crate) fn play(&mut self, sound: Sound) {
        // (frequency Hz, seconds): rising for joins, falling for leaves.
        let notes: &[(f32, f32)] = match sound {
            Sound::SelfJoin => &[(440.0, 0.06), (659.25, 0.06), (880.0, 0.1)],
            Sound::PeerJoin => &[(523.25, 0.07), (783.99, 0.1)],
            Sound::PeerLeave => &[(659.25, 0.07), (440.0, 0.1)],
        };
        for &(freq, seconds) in notes {
            let n = (seconds * SAMPLE_RATE as f32) as usize;
            // 5 ms raised-cosine edges: no click at either end.
            let edge = (0.005 * SAMPLE_RATE as f32) as usize;
            for i in 0..n {
                let fade = if i < edge {
                    i as f32 / edge as f32
                } else if i + edge > n {
                    (n - i) as f32 / edge as f32
                } else {
                    1.0
                };
                let envelope = 0.5 - 0.5 * (std::f32::consts::PI * fade).cos();
                let phase = 2.0 * std::f32::consts::PI * freq * i as f32 / SAMPLE_RATE as f32;
                self.queue.push_back(TONE_LEVEL * envelope * phase.sin());
            }
        }
    }

    /// Adds the next frame of queued tones to `out` (clamped to full scale).
    pub(crate) fn mix_into(&mut self, out: &mut PcmFrame) {
        for sample in out.iter_mut() {
            let Some(tone) = self.queue.pop_front() else { break };
            *sample = (*sample + tone).clamp(-1.0, 1.0);
        }
    }

    pub(crate) fn clear(&mut self) {
        self.queue.clear();
    }

    #[cfg(test)]
    pub(crate) fn is_playing(&self) -> bool {
        !self.queue.is_empty()
    }
}

/// One call's (or one mic test's) audio state. See the module docs.
pub(crate) struct Core {
    capture: Capture,
    playback: Playback<UserId>,
    tones: Tones,
    /// Whose audio is mixed: packets from anyone else are dropped (a member who left may
    /// still have packets in flight).
    members: BTreeSet<UserId>,
    /// Tones for joins and leaves are off while the call is re-establishing itself after our
    /// own connection dropped (everyone "leaves" and "joins" then).
    quiet: bool,
    reporter: SpeakingReporter,
    muted: bool,
    deafened: bool,
    sounds: bool,
    /// In a call (false: a mic test, which sends nothing and plays nothing).
    in_call: bool,
    skipped: u32,
    frames: u64,
    level_dbfs: f32,
    voice_detected: bool,
    self_speaking: bool,
    peer_speaking: BTreeMap<UserId, bool>,
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core")
            .field("members", &self.members)
            .field("muted", &self.muted)
            .field("deafened", &self.deafened)
            .finish_non_exhaustive()
    }
}

/// The speaking flag must hold this long before it is sent (3 frames).
const SPEAKING_SETTLE: Duration = Duration::from_millis(60);
/// And is sent at most this often.
const SPEAKING_MIN_INTERVAL: Duration = Duration::from_millis(250);

impl Core {
    pub(crate) fn new(settings: &VoiceSettings, in_call: bool) -> Result<Core, PipelineError> {
        let mut capture = Capture::new(CaptureConfig {
            mode: settings.mode,
            noise_suppression: settings.noise_suppression,
            echo_cancellation: settings.echo_cancellation,
            initial_timestamp: rand::random(),
            ..CaptureConfig::default()
        })?;
        capture.set_sensitivity(settings.sensitivity);
        capture.set_muted(settings.muted || settings.deafened || !in_call);
        let mut playback = Playback::new(PlaybackConfig::default());
        playback.set_deafened(settings.deafened);
        for (user, volume) in &settings.user_volumes {
            playback.set_gain(user, *volume);
        }
        Ok(Core {
            capture,
            playback,
            tones: Tones::default(),
            members: BTreeSet::new(),
            quiet: false,
            reporter: SpeakingReporter::new(SPEAKING_SETTLE, SPEAKING_MIN_INTERVAL),
            muted: settings.muted,
            deafened: settings.deafened,
            sounds: settings.sounds,
            in_call,
            skipped: 0,
            frames: 0,
            level_dbfs: FLOOR_DBFS,
            voice_detected: false,
            self_speaking: false,
            peer_speaking: BTreeMap::new(),
        })
    }

    /// Mute as the others see it: deafened implies muted.
    fn effectively_muted(&self) -> bool {
        self.muted || self.deafened
    }

    fn voice_state(&self) -> Effect {
        Effect::VoiceState {
            muted: self.effectively_muted(),
            deafened: self.deafened,
            speaking: self.reporter.reported(),
        }
    }

    /// Applies a setting at `now`.
    pub(crate) fn apply(
        &mut self,
        now: Duration,
        setting: Setting,
        effects: &mut Vec<Effect>,
    ) -> Result<(), PipelineError> {
        match setting {
            Setting::Muted(muted) => {
                self.muted = muted;
                self.mute_changed(now, effects);
            }
            Setting::Deafened(deafened) => {
                // Like Discord: deafening mutes too, and undeafening restores the mute the
                // user had chosen.
                self.deafened = deafened;
                self.playback.set_deafened(deafened);
                if deafened {
                    self.tones.clear();
                }
                self.mute_changed(now, effects);
            }
            Setting::Mode(mode) => self.capture.set_mode(mode),
            Setting::PushToTalk(pressed) => self.capture.set_push_to_talk(pressed),
            Setting::UserVolume(user, volume) => self.playback.set_gain(&user, volume),
            Setting::Sensitivity(s) => self.capture.set_sensitivity(s),
            Setting::NoiseSuppression(on) => self.capture.set_noise_suppression(on),
            Setting::EchoCancellation(on) => self.capture.set_echo_cancellation(on),
            Setting::Sounds(on) => {
                self.sounds = on;
                if !on {
                    self.tones.clear();
                }
            }
        }
        Ok(())
    }

    fn mute_changed(&mut self, now: Duration, effects: &mut Vec<Effect>) {
        let muted = self.effectively_muted() || !self.in_call;
        self.capture.set_muted(muted);
        if muted {
            // Muting ends speaking at once, in the same update.
            self.reporter.force(now, false);
        }
        if self.in_call {
            effects.push(self.voice_state());
        }
    }

    /// Someone is in the call with us; `announce` plays the join tone.
    pub(crate) fn add_member(&mut self, user: UserId, announce: bool) -> Result<(), PipelineError> {
        if self.members.insert(user) {
            self.playback.add_peer(user)?;
            if announce {
                self.sound(Sound::PeerJoin);
            }
        }
        Ok(())
    }

    /// Someone left: their stream stops being mixed at once.
    pub(crate) fn remove_member(&mut self, user: UserId, events: &mut Vec<VoiceEvent>) {
        if self.members.remove(&user) {
            self.playback.remove_peer(&user);
            if self.peer_speaking.remove(&user) == Some(true) {
                events.push(VoiceEvent::PeerSpeaking { user_id: user, speaking: false });
            }
            self.sound(Sound::PeerLeave);
        }
    }

    #[cfg(test)]
    pub(crate) fn members(&self) -> impl Iterator<Item = &UserId> {
        self.members.iter()
    }

    /// Our own connection is being re-established (`true`) or is back.
    pub(crate) fn set_quiet(&mut self, quiet: bool) {
        self.quiet = quiet;
    }

    pub(crate) fn sound(&mut self, sound: Sound) {
        if self.sounds && !self.deafened && !self.quiet && self.in_call {
            self.tones.play(sound);
        }
    }

    #[cfg(test)]
    pub(crate) fn tones_playing(&self) -> bool {
        self.tones.is_playing()
    }

    /// One RTP packet from `user` (its arrival on the same clock as `now`).
    pub(crate) fn receive(&mut self, user: UserId, packet: &ReceivedPacket<'_>) {
        if !self.members.contains(&user) {
            return;
        }
        if let Err(e) = self.playback.receive(&user, packet) {
            tracing::debug!(error = %e, "voice packet dropped");
        }
    }

    /// The quality event for `user`: the transport's numbers plus our jitter buffer's.
    pub(crate) fn quality(&self, user: UserId, quality: PeerQuality) -> VoiceEvent {
        let audio = self.playback.peer(&user);
        VoiceEvent::Quality { user_id: user, quality, jitter: audio.map(|a| a.stats).unwrap_or_default() }
    }

    /// Renders the frame the speaker plays at `now` (the call's mix plus tones), and feeds it
    /// to the echo canceller as what the microphone may hear.
    pub(crate) fn render(
        &mut self,
        now: Duration,
        out: &mut PcmFrame,
        events: &mut Vec<VoiceEvent>,
    ) -> Result<(), PipelineError> {
        if !self.in_call {
            out.fill(0.0);
            return Ok(());
        }
        self.playback.render(now, out);
        self.tones.mix_into(out);
        self.capture.far_end(out)?;
        for user in &self.members {
            let speaking = self.playback.peer(user).is_some_and(|p| p.speaking);
            let was = self.peer_speaking.insert(*user, speaking).unwrap_or(false);
            if was != speaking {
                events.push(VoiceEvent::PeerSpeaking { user_id: *user, speaking });
            }
        }
        Ok(())
    }

    /// How the audio thread should move its tick, if at all, after rendering at `now` (see
    /// [`hearth_voice::pacing`]): just after the packets of whoever talks arrive, moved in a
    /// pause.
    pub(crate) fn tick_shift(&mut self, now: Duration) -> Option<TickShift> {
        if !self.in_call {
            return None;
        }
        self.playback.tick_shift(now)
    }

    /// Processes the microphone frame captured at `now`.
    pub(crate) fn capture(
        &mut self,
        now: Duration,
        mic: &PcmFrame,
        effects: &mut Vec<Effect>,
        events: &mut Vec<VoiceEvent>,
    ) -> Result<(), PipelineError> {
        let output = self.capture.process(mic)?;
        self.frames += 1;
        self.level_dbfs = output.level_dbfs;
        self.voice_detected = output.voice_detected;
        let speaking = output.speaking();
        if self.in_call {
            // A talkspurt's onset (the frames the VAD attack held back) goes first: those
            // frames were counted as skipped, so they take their places back from the gap.
            let pre_roll = output.pre_roll.len() as u32;
            for (i, packet) in output.pre_roll.into_iter().enumerate() {
                let skipped = if i == 0 { self.skipped.saturating_sub(pre_roll) } else { 0 };
                effects.push(Effect::Send { payload: packet.payload, skipped });
            }
            if pre_roll > 0 {
                self.skipped = 0;
            }
            match output.packet {
                Some(packet) => {
                    effects.push(Effect::Send { payload: packet.payload, skipped: self.skipped });
                    self.skipped = 0;
                }
                None => self.skipped += 1,
            }
            if speaking != self.self_speaking {
                self.self_speaking = speaking;
                events.push(VoiceEvent::SelfSpeaking { speaking });
            }
            if self.reporter.update(now, speaking).is_some() {
                effects.push(self.voice_state());
            }
        }
        if self.frames.is_multiple_of(LEVEL_EVERY) {
            events.push(self.levels());
        }
        Ok(())
    }

    fn levels(&self) -> VoiceEvent {
        let peers = self
            .members
            .iter()
            .filter_map(|user| {
                self.playback.peer(user).map(|p| PeerLevel {
                    user_id: *user,
                    level_dbfs: p.level_dbfs,
                    speaking: p.speaking,
                })
            })
            .collect();
        VoiceEvent::Levels { level_dbfs: self.level_dbfs, voice_detected: self.voice_detected, peers }
    }

    /// Samples per frame, as the RTP clock counts them.
    pub(crate) const FRAME: u32 = FRAME_SAMPLES as u32;
}

#[cfg(test)]
#[path = "core_tests.rs"]
mod tests;
