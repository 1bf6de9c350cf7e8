//! `hearth-voice`: everything in a Hearth call's audio path except the network.
//!
//! Audio is 48 kHz mono `f32` in `[-1.0, 1.0]`, moved in 10 ms frames of 480 samples
//! ([`PcmFrame`]). Float rather than `i16` because every stage between the devices works in
//! float (RNNoise, the WebRTC echo canceller, Opus's float API, the mixer, which needs headroom
//! above full scale before its limiter), and the common device formats (WASAPI shared mode,
//! CoreAudio, PulseAudio/PipeWire) are float too; conversion to integers happens only at a
//! device that insists on it.
//!
//! Why 10 ms: a frame is the unit of every wait on the way from mouth to ear: a microphone
//! fills one before it is read, the voice-activity gate holds a talkspurt's first frame until
//! the next one confirms it, and a packet that arrives just after the far end's tick waits for
//! the next. Each costs half as much as with 20 ms frames (about 20 ms in all, measured by
//! `bench/run.sh voice-latency`). RNNoise and AEC3 work on 10 ms natively and Opus supports
//! it with the same look-ahead, FEC and DTX; the price is twice the packets (about 20 kbit/s
//! more RTP/UDP/IP overhead per stream) and a few percent more CPU.
//!
//! The two ends the call layer (`crates/client/src/call/`) uses:
//!
//! - [`pipeline::Capture`]: microphone frame → echo cancellation → noise suppression → level
//!   meter → voice activity → mute/push-to-talk gate → Opus → an [`pipeline::EncodedPacket`]
//!   (payload, RTP timestamp, marker) for the RTP sender, or nothing (silence, DTX, muted).
//! - [`pipeline::Playback`]: RTP packets per peer ([`jitter::ReceivedPacket`]: sequence number,
//!   timestamp, marker, payload, arrival time) → a [`jitter::JitterBuffer`] and an Opus
//!   [`codec::Decoder`] per peer → per-user gain → [`mixer::Mixer`] → one frame for the
//!   speaker every 10 ms.
//!
//! Both are sans-IO: time is passed in (`now`, or the frame count for capture), so tests run
//! faster than real time. Devices sit behind [`device::AudioInput`]/[`device::AudioOutput`];
//! [`device::PcmSource`], [`device::ScriptedMic`] and [`device::PcmSink`] feed and record PCM
//! (with the instants frames were read and written) in tests, benchmarks and headless clients,
//! and the `cpal` feature adds real devices.
//!
//! The parts: [`device`], [`codec`] (Opus), [`jitter`], [`pacing`] (where the audio thread's
//! tick should fall against packet arrivals), [`vad`], [`denoise`] (RNNoise via
//! `nnnoiseless`), [`echo`] (AEC3 via `sonora`), [`mixer`], [`level`], [`pipeline`], and
//! [`synth`] (deterministic speech-like signals and alignment for other crates' tests).

pub mod codec;
pub mod denoise;
pub mod device;
pub mod echo;
pub mod jitter;
pub mod level;
pub mod mixer;
pub mod pacing;
pub mod pipeline;
pub mod synth;
pub mod vad;

use std::time::Duration;

/// Sample rate of every stage, and the RTP clock rate of Opus.
pub const SAMPLE_RATE: u32 = 48_000;
/// Samples in one 10 ms frame at 48 kHz mono.
pub const FRAME_SAMPLES: usize = 480;
/// The length of one frame; capture and playback each run once per frame.
pub const FRAME_DURATION: Duration = Duration::from_millis(10);
/// Frames in a second.
pub const FRAMES_PER_SECOND: usize = SAMPLE_RATE as usize / FRAME_SAMPLES;

/// How many whole frames `duration` lasts (at least one).
pub const fn frames_in(duration: Duration) -> u32 {
    let frames = duration.as_micros() / FRAME_DURATION.as_micros();
    if frames == 0 { 1 } else { frames as u32 }
}

/// One 10 ms frame of 48 kHz mono audio, samples in `[-1.0, 1.0]`.
pub type PcmFrame = [f32; FRAME_SAMPLES];

/// A frame of digital silence.
pub const SILENT_FRAME: PcmFrame = [0.0; FRAME_SAMPLES];

pub use codec::{CodecError, Decoder, Encoder, EncoderConfig};
pub use device::{AudioInput, AudioOutput, DeviceError, PcmSink, PcmSource, Recording, ScriptedMic};
pub use jitter::{Conceal, JitterBuffer, JitterConfig, JitterStats, Playout, ReceivedPacket};
pub use mixer::Mixer;
pub use pacing::{TickPhase, TickShift};
pub use pipeline::{
    Capture, CaptureConfig, CaptureOutput, EncodedPacket, PeerAudio, Playback, PlaybackConfig, TransmitMode,
};
pub use vad::{Vad, VadConfig};
