//! The two ends the call layer drives, once per frame (10 ms) each:
//!
//! - [`Capture`]: microphone frame → echo cancellation → noise suppression → level meter →
//!   voice activity → mute / push-to-talk / voice-activity gate → Opus → maybe a packet.
//! - [`Playback`]: RTP packets per peer → jitter buffer → Opus decode (FEC/PLC for losses) →
//!   per-user gain → mixer (deafen, limiter) → one frame for the speaker.
//!
//! Neither reads a clock: capture advances one frame (480 RTP timestamp units) per call, and
//! playback takes `now`, the receiver's clock on the same scale as the arrival times given to
//! [`Playback::receive`]. The RTP sequence number is the call layer's (its packetizer numbers
//! what it sends); the timestamp and marker bit come from here, so pauses in sending show up
//! as timestamp jumps, which the far end's jitter buffer treats as silence, not loss.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::time::Duration;

use crate::codec::{self, CodecError, Decoder, Encoder, EncoderConfig};
use crate::denoise::Denoiser;
use crate::echo::{EchoCanceller, EchoError};
use crate::jitter::{Conceal, Inserted, JitterBuffer, JitterConfig, JitterStats, Playout, ReceivedPacket};
use crate::level::{FLOOR_DBFS, LevelMeter, rms_dbfs};
use crate::mixer::{MixSource, Mixer, clamp_gain};
use crate::pacing::{TickPhase, TickShift};
use crate::vad::{Vad, VadConfig, sensitivity_to_dbfs};
use crate::{FRAME_SAMPLES, PcmFrame, SILENT_FRAME};

/// Why a pipeline stage failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PipelineError {
    #[error(transparent)]
    Codec(#[from] CodecError),
    #[error(transparent)]
    Echo(#[from] EchoError),
}

/// When the microphone is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TransmitMode {
    /// Whenever the VAD hears speech (the default).
    #[default]
    VoiceActivity,
    /// Only while the push-to-talk key is held.
    PushToTalk,
}

/// Settings of a [`Capture`].
#[derive(Debug, Clone, PartialEq)]
pub struct CaptureConfig {
    pub encoder: EncoderConfig,
    pub vad: VadConfig,
    pub mode: TransmitMode,
    pub noise_suppression: bool,
    /// Needs the played audio through [`Capture::far_end`].
    pub echo_cancellation: bool,
    /// RTP timestamp of the first frame (RFC 3550 wants it random; the call layer picks it).
    pub initial_timestamp: u32,
}

impl Default for CaptureConfig {
    fn default() -> Self {
        CaptureConfig {
            encoder: EncoderConfig::default(),
            vad: VadConfig::default(),
            mode: TransmitMode::default(),
            noise_suppression: true,
            echo_cancellation: true,
            initial_timestamp: 0,
        }
    }
}

/// An Opus packet ready for the RTP sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedPacket {
    pub payload: Vec<u8>,
    /// 48 kHz RTP timestamp of the frame's first sample.
    pub rtp_timestamp: u32,
    /// RTP marker bit: the first packet of a talkspurt (after anything not sent).
    pub marker: bool,
}

/// The most frames a talkspurt's pre-roll holds (see [`CaptureOutput::pre_roll`]).
pub const MAX_PRE_ROLL_FRAMES: usize = 4;

/// What one captured frame produced.
#[derive(Debug, Clone, PartialEq)]
pub struct CaptureOutput {
    /// Packets to send *before* `packet`, oldest first: when voice activity opens the gate,
    /// the frames its attack held back (the talkspurt's onset, `attack_frames - 1` frames,
    /// at most [`MAX_PRE_ROLL_FRAMES`]). They belong to earlier frames, which were reported
    /// as not sent, and carry those frames' RTP timestamps; the first carries the marker.
    /// Empty except on a talkspurt's first frame in voice-activity mode (never with
    /// push-to-talk, and never audio captured while muted).
    pub pre_roll: Vec<EncodedPacket>,
    /// The packet to send, if any (nothing while muted, gated, or in DTX silence).
    pub packet: Option<EncodedPacket>,
    /// The smoothed level for the microphone meter, after noise suppression (dBFS).
    pub level_dbfs: f32,
    /// The VAD hears speech (even when muted: the UI can say "you are muted").
    pub voice_detected: bool,
    /// The gate is open: not muted, and voice detected or push-to-talk held.
    pub transmitting: bool,
}

impl CaptureOutput {
    /// What the local speaking ring shows.
    pub fn speaking(&self) -> bool {
        self.transmitting && self.voice_detected
    }
}

/// The sending half of the voice pipeline. See the module docs.
#[derive(Debug)]
pub struct Capture {
    encoder: Encoder,
    denoiser: Denoiser,
    echo: Option<EchoCanceller>,
    vad: Vad,
    meter: LevelMeter,
    mode: TransmitMode,
    muted: bool,
    push_to_talk: bool,
    next_timestamp: u32,
    sent_last: bool,
    gate_was_open: bool,
    /// The last processed frames while the gate was closed in voice-activity mode, at most
    /// `pre_roll_frames`: the onset the VAD attack needs to hear before it opens.
    held: VecDeque<PcmFrame>,
    pre_roll_frames: usize,
}

impl Capture {
    pub fn new(config: CaptureConfig) -> Result<Self, PipelineError> {
        let pre_roll_frames = (config.vad.attack_frames.saturating_sub(1) as usize).min(MAX_PRE_ROLL_FRAMES);
        Ok(Capture {
            encoder: Encoder::new(&config.encoder)?,
            denoiser: Denoiser::new(config.noise_suppression),
            echo: config.echo_cancellation.then(EchoCanceller::new),
            vad: Vad::new(config.vad),
            meter: LevelMeter::default(),
            mode: config.mode,
            muted: false,
            push_to_talk: false,
            next_timestamp: config.initial_timestamp,
            sent_last: false,
            gate_was_open: false,
            held: VecDeque::with_capacity(pre_roll_frames),
            pre_roll_frames,
        })
    }

    pub fn set_muted(&mut self, muted: bool) {
        self.muted = muted;
        if muted {
            self.held.clear();
        }
    }

    pub fn is_muted(&self) -> bool {
        self.muted
    }

    pub fn set_mode(&mut self, mode: TransmitMode) {
        self.mode = mode;
        self.held.clear();
    }

    /// The push-to-talk key went down (`true`) or up.
    pub fn set_push_to_talk(&mut self, pressed: bool) {
        self.push_to_talk = pressed;
    }

    /// Input sensitivity as a threshold in dBFS.
    pub fn set_threshold_dbfs(&mut self, dbfs: f32) {
        self.vad.set_threshold_dbfs(dbfs);
    }

    /// Input sensitivity as a 0..1 slider (1 = most sensitive).
    pub fn set_sensitivity(&mut self, sensitivity: f32) {
        self.vad.set_threshold_dbfs(sensitivity_to_dbfs(sensitivity));
    }

    pub fn set_noise_suppression(&mut self, enabled: bool) {
        self.denoiser.set_enabled(enabled);
    }

    pub fn set_echo_cancellation(&mut self, enabled: bool) {
        match (enabled, self.echo.is_some()) {
            (true, false) => self.echo = Some(EchoCanceller::new()),
            (false, true) => self.echo = None,
            _ => {}
        }
    }

    pub fn set_bitrate(&mut self, bitrate_bps: i32) -> Result<(), PipelineError> {
        Ok(self.encoder.set_bitrate(bitrate_bps)?)
    }

    /// The loss rate the far ends report (percent), so FEC is sized for it.
    pub fn set_expected_loss(&mut self, percent: u8) -> Result<(), PipelineError> {
        Ok(self.encoder.set_expected_loss(percent)?)
    }

    /// Feeds the frame that was just played on the speaker, for echo cancellation.
    pub fn far_end(&mut self, played: &PcmFrame) -> Result<(), PipelineError> {
        if let Some(echo) = &mut self.echo {
            echo.render(played)?;
        }
        Ok(())
    }

    /// Processes one microphone frame.
    pub fn process(&mut self, mic: &PcmFrame) -> Result<CaptureOutput, PipelineError> {
        let mut pcm = *mic;
        if let Some(echo) = &mut self.echo {
            echo.capture(&mut pcm)?;
        }
        let speech_probability = self.denoiser.process(&mut pcm);
        let frame_dbfs = rms_dbfs(&pcm);
        let level_dbfs = self.meter.update(frame_dbfs);
        let voice_detected = self.vad.update(frame_dbfs, speech_probability);
        let transmitting = !self.muted
            && match self.mode {
                TransmitMode::VoiceActivity => voice_detected,
                TransmitMode::PushToTalk => self.push_to_talk,
            };

        let rtp_timestamp = self.next_timestamp;
        self.next_timestamp = self.next_timestamp.wrapping_add(FRAME_SAMPLES as u32);

        let mut packet = None;
        let mut pre_roll = Vec::new();
        if transmitting {
            if !self.gate_was_open {
                // A new talkspurt: do not predict from the end of the last one.
                self.encoder.reset()?;
                // The onset the VAD attack held back, with its own timestamps.
                let held = self.held.len() as u32;
                for (age, frame) in (1..=held).rev().zip(self.held.drain(..)) {
                    let payload = self.encoder.encode(&frame)?;
                    if !codec::is_dtx_packet(payload) {
                        let marker = pre_roll.is_empty() && !self.sent_last;
                        let ts = rtp_timestamp.wrapping_sub(age * FRAME_SAMPLES as u32);
                        pre_roll.push(EncodedPacket { payload: payload.to_vec(), rtp_timestamp: ts, marker });
                    }
                }
            }
            let payload = self.encoder.encode(&pcm)?;
            if !codec::is_dtx_packet(payload) {
                let marker = pre_roll.is_empty() && !self.sent_last;
                packet = Some(EncodedPacket { payload: payload.to_vec(), rtp_timestamp, marker });
            }
        } else if self.mode == TransmitMode::VoiceActivity && !self.muted && self.pre_roll_frames > 0 {
            if self.held.len() == self.pre_roll_frames {
                self.held.pop_front();
            }
            self.held.push_back(pcm);
        } else {
            self.held.clear();
        }
        self.gate_was_open = transmitting;
        self.sent_last = packet.is_some();
        Ok(CaptureOutput { pre_roll, packet, level_dbfs, voice_detected, transmitting })
    }
}

/// Below this level (dBFS) a frame is silence for concealment: a lost frame after it is
/// played as silence without running the decoder's PLC. -70 dBFS is under the noise floor
/// of any room and far under the quietest speech the VAD opens for (-80 at the most
/// sensitive setting is for the meter; speech frames sit at -50..-10).
const SILENT_PLC_DBFS: f32 = -70.0;

/// Settings of a [`Playback`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PlaybackConfig {
    pub jitter: JitterConfig,
    /// For the remote speaking rings, computed from what is played.
    pub vad: VadConfig,
}

/// One remote peer as playback sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerAudio {
    pub stats: JitterStats,
    /// Speaking ring, from the VAD on the decoded audio.
    pub speaking: bool,
    /// Smoothed level of the decoded audio, before gain (dBFS).
    pub level_dbfs: f32,
    pub gain: f32,
    /// Packets that failed to decode (concealed instead).
    pub decode_errors: u64,
}

#[derive(Debug)]
struct PeerStream {
    jitter: JitterBuffer,
    decoder: Decoder,
    vad: Vad,
    meter: LevelMeter,
    pcm: PcmFrame,
    /// The last tick produced audio (not silence or nothing).
    audible: bool,
    /// Level of the last tick's frame (`FLOOR_DBFS` when it was not audible).
    level_dbfs: f32,
    /// The gain at the end of the last frame, where this frame's ramp starts.
    applied_gain: f32,
    /// This frame's gain ramp (start, end), set by `Playback::render` before mixing.
    ramp: (f32, f32),
    decode_errors: u64,
    /// Losses after a silent frame, played as silence without the decoder's PLC.
    silent_plc: u64,
}

impl PeerStream {
    fn new(config: &PlaybackConfig, gain: f32) -> Result<Self, CodecError> {
        Ok(PeerStream {
            jitter: JitterBuffer::new(config.jitter.clone()),
            decoder: Decoder::new()?,
            vad: Vad::new(VadConfig { min_speech_probability: 0.0, ..config.vad.clone() }),
            meter: LevelMeter::default(),
            pcm: SILENT_FRAME,
            audible: false,
            level_dbfs: FLOOR_DBFS,
            applied_gain: gain,
            ramp: (gain, gain),
            decode_errors: 0,
            silent_plc: 0,
        })
    }

    /// Pulls this tick's frame from the jitter buffer and decodes it into `self.pcm`.
    fn tick(&mut self, now: Duration) {
        let decoded = match self.jitter.pop(now) {
            Playout::Frame(packet) => Some(self.decoder.decode(&packet, &mut self.pcm)),
            Playout::Conceal(Conceal::Fec(next)) => Some(self.decoder.decode_fec(&next, &mut self.pcm)),
            // Concealing a silent frame gives silence (PLC continues and fades what came
            // before), so it is not worth a decoder call: most of these are the frames after
            // a sender's last comfort-noise packet before DTX, which the jitter buffer cannot
            // tell from a loss until the next packet comes. The decoder simply sees a gap, as
            // after any DTX silence.
            Playout::Conceal(Conceal::Plc) if self.level_dbfs < SILENT_PLC_DBFS => {
                self.silent_plc += 1;
                None
            }
            Playout::Conceal(Conceal::Plc) => Some(self.decoder.conceal(&mut self.pcm)),
            Playout::Silence | Playout::Nothing => None,
        };
        self.audible = match decoded {
            Some(Ok(())) => true,
            Some(Err(_)) => {
                // A corrupt packet: conceal it instead; if even that fails, play silence.
                self.decode_errors += 1;
                self.decoder.conceal(&mut self.pcm).is_ok()
            }
            None => false,
        };
        let frame_dbfs = if self.audible { rms_dbfs(&self.pcm) } else { FLOOR_DBFS };
        self.level_dbfs = frame_dbfs;
        self.meter.update(frame_dbfs);
        self.vad.update(frame_dbfs, None);
    }
}

/// The receiving half of the voice pipeline, for every peer of a call. `P` is the call
/// layer's peer key (a user id). See the module docs.
#[derive(Debug)]
pub struct Playback<P> {
    config: PlaybackConfig,
    peers: HashMap<P, PeerStream>,
    /// Per-user volume, kept across a peer leaving and rejoining.
    gains: HashMap<P, f32>,
    mixer: Mixer,
    /// Where the render tick falls against the packets' arrivals.
    tick_phase: TickPhase,
}

impl<P: Eq + Hash + Clone> Playback<P> {
    pub fn new(config: PlaybackConfig) -> Self {
        Playback {
            config,
            peers: HashMap::new(),
            gains: HashMap::new(),
            mixer: Mixer::new(),
            tick_phase: TickPhase::new(),
        }
    }

    /// Starts a stream for `peer` (no-op if it has one).
    pub fn add_peer(&mut self, peer: P) -> Result<(), PipelineError> {
        if !self.peers.contains_key(&peer) {
            let gain = self.gain(&peer);
            self.peers.insert(peer, PeerStream::new(&self.config, gain)?);
        }
        Ok(())
    }

    /// Ends `peer`'s stream (the peer left or its connection is being replaced). Its volume
    /// setting is kept.
    pub fn remove_peer(&mut self, peer: &P) -> bool {
        self.peers.remove(peer).is_some()
    }

    /// Takes one RTP packet from `peer` (starting a stream if needed). Its arrival is on the
    /// same clock as `now` in [`Playback::render`].
    pub fn receive(&mut self, peer: &P, packet: &ReceivedPacket<'_>) -> Result<Inserted, PipelineError> {
        let gain = self.gain(peer);
        let stream = match self.peers.entry(peer.clone()) {
            Entry::Occupied(entry) => entry.into_mut(),
            Entry::Vacant(entry) => entry.insert(PeerStream::new(&self.config, gain)?),
        };
        self.tick_phase.arrived(packet.arrival);
        Ok(stream.jitter.insert(packet))
    }

    /// Per-user volume, 0.0..=2.0 (0–200 %).
    pub fn set_gain(&mut self, peer: &P, gain: f32) {
        self.gains.insert(peer.clone(), clamp_gain(gain));
    }

    pub fn gain(&self, peer: &P) -> f32 {
        self.gains.get(peer).copied().unwrap_or(1.0)
    }

    pub fn set_deafened(&mut self, deafened: bool) {
        self.mixer.set_deafened(deafened);
    }

    pub fn is_deafened(&self) -> bool {
        self.mixer.is_deafened()
    }

    /// Produces the next frame for the speaker. Call once per frame, with the receiver's
    /// clock. Peers are still decoded while deafened, so their rings and statistics stay
    /// live and undeafening is instant.
    pub fn render(&mut self, now: Duration, out: &mut PcmFrame) {
        self.tick_phase.ticked(now);
        for stream in self.peers.values_mut() {
            stream.tick(now);
        }
        for (peer, stream) in &mut self.peers {
            let gain = self.gains.get(peer).copied().unwrap_or(1.0);
            stream.ramp = (stream.applied_gain, gain);
            stream.applied_gain = gain;
        }
        // An iterator, not a collected Vec: rendering allocates nothing in steady state.
        let sources = self.peers.values().filter(|s| s.audible).map(|s| MixSource {
            pcm: &s.pcm,
            gain_start: s.ramp.0,
            gain_end: s.ramp.1,
        });
        self.mixer.mix(sources, out);
    }

    /// How to move the render tick so it falls just after the packets arrive (see
    /// [`crate::pacing`]), if it should move; `now` is the tick just rendered. The caller moves
    /// its schedule from the next tick on: each packet then waits about
    /// [`crate::pacing::AFTER_ARRIVAL`] for its tick instead of up to a frame. Only while
    /// every peer is silent: a move during speech would stretch it (earlier) or delay it
    /// (later); in a pause it costs nothing, and the next talkspurt starts on the new tick.
    pub fn tick_shift(&mut self, now: Duration) -> Option<TickShift> {
        if !self.peers.values().all(|s| s.jitter.in_silence()) {
            return None;
        }
        self.tick_phase.shift(now)
    }

    /// The peers with a stream.
    pub fn peers(&self) -> impl Iterator<Item = &P> {
        self.peers.keys()
    }

    /// Statistics, level and speaking state of `peer`.
    pub fn peer(&self, peer: &P) -> Option<PeerAudio> {
        self.peers.get(peer).map(|s| PeerAudio {
            stats: s.jitter.stats(),
            speaking: s.vad.is_speaking(),
            level_dbfs: s.meter.level_dbfs(),
            gain: self.gain(peer),
            decode_errors: s.decode_errors,
        })
    }
}

#[cfg(test)]
#[path = "pipeline_tests.rs"]
mod tests;
