//! Audio devices behind two small traits, so the pipeline never knows whether it talks to a
//! sound card or to a test.
//!
//! [`PcmSource`] and [`PcmSink`] are the synthetic devices (feed PCM from a `Vec`, record what
//! would have been played); the `cpal` feature adds [`cpal`](self::cpal) with real devices,
//! enumeration and selection by name.

#[cfg(feature = "cpal")]
pub mod cpal;
#[cfg(feature = "cpal")]
mod rate;

use std::sync::{Arc, Mutex, PoisonError};

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

/// A microphone: hands out 20 ms frames of 48 kHz mono audio.
pub trait AudioInput: Send {
    /// Fills `frame` with the next 20 ms of captured audio and returns `true`, or returns
    /// `false` when no complete frame is available (a real device has not captured 20 ms yet;
    /// a synthetic one has run out).
    fn read_frame(&mut self, frame: &mut PcmFrame) -> Result<bool, DeviceError>;
}

/// A speaker: takes 20 ms frames of 48 kHz mono audio.
pub trait AudioOutput: Send {
    /// Queues one frame for playback.
    fn write_frame(&mut self, frame: &PcmFrame) -> Result<(), DeviceError>;

    /// Samples written but not yet played. A playback loop writes whenever this falls below
    /// its target (e.g. two frames), which paces it by the device's own clock.
    fn queued_samples(&self) -> usize;
}

/// A synthetic microphone that plays back a buffer of samples, then runs out.
#[derive(Debug, Clone)]
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

/// A synthetic speaker that records everything written to it. Clone it (or keep a clone)
/// before handing it to the pipeline to read the recording afterwards.
#[derive(Debug, Clone, Default)]
pub struct PcmSink {
    // Shared so a test keeps a handle while the pipeline owns the sink; locked only to append
    // a frame or copy the recording out, never across anything that blocks.
    recorded: Arc<Mutex<Vec<f32>>>,
}

impl PcmSink {
    pub fn new() -> Self {
        PcmSink::default()
    }

    /// Everything written so far.
    pub fn recorded(&self) -> Vec<f32> {
        self.recorded.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

impl AudioOutput for PcmSink {
    fn write_frame(&mut self, frame: &PcmFrame) -> Result<(), DeviceError> {
        self.recorded.lock().unwrap_or_else(PoisonError::into_inner).extend_from_slice(frame);
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
    fn sink_records_what_the_pipeline_wrote() {
        let sink = PcmSink::new();
        let mut owned: Box<dyn AudioOutput> = Box::new(sink.clone());
        owned.write_frame(&[0.25; FRAME_SAMPLES]).unwrap();
        owned.write_frame(&[-0.25; FRAME_SAMPLES]).unwrap();
        let recorded = sink.recorded();
        assert_eq!(recorded.len(), 2 * FRAME_SAMPLES);
        assert_eq!(recorded[0], 0.25);
        assert_eq!(recorded[FRAME_SAMPLES], -0.25);
    }
}
