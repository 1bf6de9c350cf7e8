//! Audio devices behind two small traits, so the pipeline never knows whether it talks to a
//! sound card or to a test.
//!
//! The synthetic devices: [`PcmSource`] feeds PCM from a `Vec` until it runs out;
//! [`ScriptedMic`] is a microphone a test gives lines to say during a call, and which
//! remembers when each frame of a line was read; [`PcmSink`] records what would have been
//! played and when each frame was written. Together they measure mouth-to-ear latency: the
//! pipeline itself never reads a clock, only these devices stamp the instants frames enter and
//! leave it. The `cpal` feature adds [`cpal`](self::cpal) with real devices, enumeration and
//! selection by name.

#[cfg(feature = "cpal")]
pub mod cpal;
#[cfg(feature = "cpal")]
mod rate;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use crate::{FRAME_SAMPLES, PcmFrame};

/// Why a device could not be opened or used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeviceError {
    /// No device of that name (names come from the enumeration functions).
    #[error("no audio device named {name:?}")]
    NotFound { name: String },
    /// The system has no default device of that direction.
    #[error("no default audio {0} device")]
    NoDefault(&'static str),
    /// The device cannot run 48 kHz in a sample format we handle.
    #[error("audio device {name:?} does not support {what}")]
    Unsupported { name: String, what: String },
    /// The audio backend failed (disconnected device, busy device, driver error).
    #[error("audio backend: {0}")]
    Backend(String),
}

/// A microphone: hands out frames ([`PcmFrame`]) of 48 kHz mono audio.
pub trait AudioInput: Send {
    /// Fills `frame` with the next frame of captured audio and returns `true`, or returns
    /// `false` when no complete frame is available (a real device has not captured a frame yet;
    /// a synthetic one has run out).
    fn read_frame(&mut self, frame: &mut PcmFrame) -> Result<bool, DeviceError>;
}

/// A speaker: takes frames ([`PcmFrame`]) of 48 kHz mono audio.
pub trait AudioOutput: Send {
    /// Queues one frame for playback.
    fn write_frame(&mut self, frame: &PcmFrame) -> Result<(), DeviceError>;

    /// Samples written but not yet played. A playback loop writes whenever this falls below
    /// its target (e.g. two frames), which paces it by the device's own clock.
    fn queued_samples(&self) -> usize;
}

/// A synthetic microphone that plays back a buffer of samples, then runs out.
#[derive(Debug, Clone, Default)]
pub struct PcmSource {
    samples: Vec<f32>,
    position: usize,
}

impl PcmSource {
    pub fn new(samples: Vec<f32>) -> Self {
        PcmSource { samples, position: 0 }
    }

    /// Whole or partial frames still to be read.
    pub fn frames_left(&self) -> usize {
        (self.samples.len() - self.position).div_ceil(FRAME_SAMPLES)
    }
}

impl AudioInput for PcmSource {
    fn read_frame(&mut self, frame: &mut PcmFrame) -> Result<bool, DeviceError> {
        if self.position >= self.samples.len() {
            return Ok(false);
        }
        let end = (self.position + FRAME_SAMPLES).min(self.samples.len());
        let chunk = &self.samples[self.position..end];
        frame[..chunk.len()].copy_from_slice(chunk);
        // The last frame is padded with silence.
        frame[chunk.len()..].fill(0.0);
        self.position = end;
        Ok(true)
    }
}

/// A scripted microphone: silent until it is given a line ([`ScriptedMic::say`]), then the
/// line frame by frame, then silent again. It remembers the instant each frame of the line was
/// read, which is when that audio entered the pipeline. Clones share one script, so a test
/// keeps a clone to give lines while the pipeline owns another.
#[derive(Debug, Clone, Default)]
pub struct ScriptedMic {
    // Locked only to read a frame, give a line or copy the instants out.
    script: Arc<Mutex<Script>>,
}

#[derive(Debug, Default)]
struct Script {
    line: PcmSource,
    /// When each frame of the line was read (index = frame of the line).
    reads: Vec<Instant>,
}

impl ScriptedMic {
    /// A microphone in a silent room.
    pub fn new() -> Self {
        ScriptedMic::default()
    }

    fn script(&self) -> std::sync::MutexGuard<'_, Script> {
        self.script.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Says `line` from the next frame read on, replacing whatever was being said.
    pub fn say(&self, line: Vec<f32>) {
        *self.script() = Script { line: PcmSource::new(line), reads: Vec::new() };
    }

    /// The whole line has been read.
    pub fn done(&self) -> bool {
        self.script().line.frames_left() == 0
    }

    /// The instant each frame of the line was read so far (index = frame of the line).
    pub fn reads(&self) -> Vec<Instant> {
        self.script().reads.clone()
    }

    /// When the line's first frame was read.
    pub fn started(&self) -> Option<Instant> {
        self.script().reads.first().copied()
    }
}

impl AudioInput for ScriptedMic {
    fn read_frame(&mut self, frame: &mut PcmFrame) -> Result<bool, DeviceError> {
        let now = Instant::now();
        let mut script = self.script();
        if script.line.read_frame(frame)? {
            script.reads.push(now);
        } else {
            frame.fill(0.0);
        }
        // A microphone always has a frame; between lines it is silence.
        Ok(true)
    }
}

/// A synthetic speaker that records everything written to it and when. Clone it (or keep a
/// clone) before handing it to the pipeline to read the recording afterwards.
#[derive(Debug, Clone, Default)]
pub struct PcmSink {
    // Shared so a test keeps a handle while the pipeline owns the sink; locked only to append
    // a frame or copy the recording out, never across anything that blocks.
    recording: Arc<Mutex<Recording>>,
}

/// What a [`PcmSink`] was given: the samples, and the instant each frame was written. The
/// sink plays instantly (no device buffer), so sample `i` is heard at the write instant of its
/// frame plus its offset in the frame.
#[derive(Debug, Clone, Default)]
pub struct Recording {
    pub samples: Vec<f32>,
    /// When each frame was written (frame `k` holds `samples[k * FRAME_SAMPLES..]`).
    pub written: Vec<Instant>,
}

impl Recording {
    /// Index of the first frame written at or after `t`.
    pub fn frame_at(&self, t: Instant) -> usize {
        self.written.partition_point(|&w| w < t)
    }

    /// The samples of the frames written at or after `t`.
    pub fn after(&self, t: Instant) -> &[f32] {
        let from = self.frame_at(t) * FRAME_SAMPLES;
        &self.samples[from.min(self.samples.len())..]
    }

    /// When sample `index` was heard: its frame's write instant plus its offset in the frame.
    pub fn heard_at(&self, index: usize) -> Option<Instant> {
        let written = *self.written.get(index / FRAME_SAMPLES)?;
        let offset = (index % FRAME_SAMPLES) as f64 / f64::from(crate::SAMPLE_RATE);
        Some(written + std::time::Duration::from_secs_f64(offset))
    }
}

impl PcmSink {
    pub fn new() -> Self {
        PcmSink::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Recording> {
        self.recording.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Everything written so far.
    pub fn recorded(&self) -> Vec<f32> {
        self.lock().samples.clone()
    }

    /// Everything written so far, with the write instants.
    pub fn recording(&self) -> Recording {
        self.lock().clone()
    }
}

impl AudioOutput for PcmSink {
    fn write_frame(&mut self, frame: &PcmFrame) -> Result<(), DeviceError> {
        let now = Instant::now();
        let mut recording = self.lock();
        recording.samples.extend_from_slice(frame);
        recording.written.push(now);
        Ok(())
    }

    fn queued_samples(&self) -> usize {
        // Plays instantly.
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_pads_the_last_frame_then_runs_out() {
        let mut source = PcmSource::new(vec![0.5; FRAME_SAMPLES + 10]);
        let mut frame = [1.0; FRAME_SAMPLES];
        assert_eq!(source.frames_left(), 2);
        assert!(source.read_frame(&mut frame).unwrap());
        assert!(frame.iter().all(|&s| s == 0.5));
        assert!(source.read_frame(&mut frame).unwrap());
        assert_eq!(&frame[..10], &[0.5; 10]);
        assert!(frame[10..].iter().all(|&s| s == 0.0));
        assert!(!source.read_frame(&mut frame).unwrap());
    }

    #[test]
    fn sink_records_what_the_pipeline_wrote_and_when() {
        let sink = PcmSink::new();
        let mut owned: Box<dyn AudioOutput> = Box::new(sink.clone());
        let before = Instant::now();
        owned.write_frame(&[0.25; FRAME_SAMPLES]).unwrap();
        let between = Instant::now();
        owned.write_frame(&[-0.25; FRAME_SAMPLES]).unwrap();
        let recorded = sink.recorded();
        assert_eq!(recorded.len(), 2 * FRAME_SAMPLES);
        assert_eq!(recorded[0], 0.25);
        assert_eq!(recorded[FRAME_SAMPLES], -0.25);
        let recording = sink.recording();
        assert_eq!(recording.written.len(), 2);
        assert!(recording.written[0] >= before && recording.written[1] >= between);
        assert_eq!(recording.frame_at(between), 1);
        assert_eq!(recording.after(between), &[-0.25; FRAME_SAMPLES][..]);
        let half = FRAME_SAMPLES / 2;
        let heard = recording.heard_at(FRAME_SAMPLES + half).unwrap() - recording.written[1];
        assert_eq!(heard, crate::FRAME_DURATION / 2);
        assert_eq!(recording.heard_at(2 * FRAME_SAMPLES), None);
    }

    #[test]
    fn scripted_mic_says_each_line_once_and_remembers_when() {
        let mic = ScriptedMic::new();
        let mut owned: Box<dyn AudioInput> = Box::new(mic.clone());
        let mut frame = [1.0; FRAME_SAMPLES];
        // Silent before any line, and still a frame.
        assert!(owned.read_frame(&mut frame).unwrap());
        assert!(frame.iter().all(|&s| s == 0.0));
        assert!(mic.done() && mic.started().is_none());

        mic.say(vec![0.5; FRAME_SAMPLES + 10]);
        assert!(!mic.done());
        let before = Instant::now();
        for _ in 0..3 {
            assert!(owned.read_frame(&mut frame).unwrap());
        }
        // Two frames of the line (the second padded), then silence; two instants.
        assert!(mic.done());
        assert!(frame.iter().all(|&s| s == 0.0));
        let reads = mic.reads();
        assert_eq!(reads.len(), 2);
        assert!(reads[0] >= before && reads[1] >= reads[0]);
        assert_eq!(mic.started(), Some(reads[0]));

        // A new line starts over.
        mic.say(vec![0.25; 10]);
        assert!(mic.reads().is_empty() && !mic.done());
        owned.read_frame(&mut frame).unwrap();
        assert_eq!(frame[0], 0.25);
        assert_eq!(mic.reads().len(), 1);
    }
}
