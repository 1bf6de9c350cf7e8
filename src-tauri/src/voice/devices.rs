//! Where calls get their microphone and speaker: the system's devices through cpal, or, with
//! `HEARTH_AUDIO=synthetic`, devices that need no sound card (a synthetic voice talking in a
//! loop, and a speaker that discards), so the app can be driven end to end on a headless
//! machine. Device ids are cpal's device names.

use hearth_voice::synth;
use hearth_voice::{AudioInput, AudioOutput, DeviceError, FRAME_SAMPLES, PcmFrame};
use serde::Serialize;

use crate::error::CommandError;

/// The synthetic devices' ids (and names).
pub const SYNTHETIC_INPUT: &str = "Synthetic voice";
pub const SYNTHETIC_OUTPUT: &str = "Synthetic speaker";

/// `AudioDevice` of `backend.ts`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ts_rs::TS)]
pub struct AudioDevice {
    pub id: String,
    pub name: String,
    pub is_default: bool,
}

/// `AudioDevices` of `backend.ts`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, ts_rs::TS)]
pub struct AudioDevices {
    pub inputs: Vec<AudioDevice>,
    pub outputs: Vec<AudioDevice>,
}

/// Which devices the app uses, chosen once at start from `HEARTH_AUDIO`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AudioSystem {
    /// The sound card(s), through cpal.
    System,
    /// No sound card needed (`HEARTH_AUDIO=synthetic`).
    Synthetic,
}

impl AudioSystem {
    pub fn from_env() -> AudioSystem {
        match std::env::var("HEARTH_AUDIO").as_deref() {
            Ok("synthetic") => {
                tracing::info!(
                    "HEARTH_AUDIO=synthetic: calls use a synthetic voice and discard what they play"
                );
                AudioSystem::Synthetic
            }
            Ok(other) if !other.is_empty() && other != "system" => {
                tracing::warn!("HEARTH_AUDIO={other:?} is not known; using the system's devices");
                AudioSystem::System
            }
            _ => AudioSystem::System,
        }
    }

    /// The devices there are now (enumerated on every call: a headset may have been plugged
    /// in). A backend that cannot enumerate gives empty lists.
    pub fn devices(self) -> AudioDevices {
        match self {
            AudioSystem::Synthetic => AudioDevices {
                inputs: vec![synthetic_device(SYNTHETIC_INPUT)],
                outputs: vec![synthetic_device(SYNTHETIC_OUTPUT)],
            },
            AudioSystem::System => system::devices(),
        }
    }

    /// Opens the input device `id`, or the default one.
    pub fn open_input(self, id: Option<&str>) -> Result<Box<dyn AudioInput>, CommandError> {
        match self {
            AudioSystem::Synthetic => {
                check_synthetic(id, SYNTHETIC_INPUT)?;
                Ok(Box::new(LoopingVoice::new()))
            }
            AudioSystem::System => system::open_input(id),
        }
    }

    /// Opens the output device `id`, or the default one.
    pub fn open_output(self, id: Option<&str>) -> Result<Box<dyn AudioOutput>, CommandError> {
        match self {
            AudioSystem::Synthetic => {
                check_synthetic(id, SYNTHETIC_OUTPUT)?;
                Ok(Box::new(Discard))
            }
            AudioSystem::System => system::open_output(id),
        }
    }
}

fn synthetic_device(name: &str) -> AudioDevice {
    AudioDevice { id: name.to_string(), name: name.to_string(), is_default: true }
}

fn check_synthetic(id: Option<&str>, only: &str) -> Result<(), CommandError> {
    match id {
        None => Ok(()),
        Some(id) if id == only => Ok(()),
        Some(_) => Err(audio_device("This audio device is not available.")),
    }
}

pub fn audio_device(message: &str) -> CommandError {
    CommandError::new("audio_device", message)
}

/// The `audio_device` error for a device that could not be opened; the detail goes to the log.
pub fn open_failed(what: &str, err: &DeviceError) -> CommandError {
    tracing::warn!("cannot open the audio {what}: {err}");
    audio_device(match err {
        DeviceError::NoDefault(_) => "No audio device was found on this computer.",
        DeviceError::NotFound { .. } => "This audio device is not available.",
        _ => "The audio device cannot be opened.",
    })
}

mod system {
    use cpal::traits::HostTrait;
    use hearth_voice::device::cpal::{self as devices, CpalInput, CpalOutput};

    use super::*;

    pub(super) fn devices() -> AudioDevices {
        let host = cpal::default_host();
        let default_in = host.default_input_device().map(|d| d.to_string());
        let default_out = host.default_output_device().map(|d| d.to_string());
        let list = |names: Result<Vec<String>, DeviceError>, default: Option<String>, what: &str| {
            let names = names.unwrap_or_else(|e| {
                tracing::warn!("cannot list the audio {what} devices: {e}");
                Vec::new()
            });
            names
                .into_iter()
                .map(|name| AudioDevice {
                    is_default: default.as_deref() == Some(&name),
                    id: name.clone(),
                    name,
                })
                .collect()
        };
        AudioDevices {
            inputs: list(devices::input_device_names(), default_in, "input"),
            outputs: list(devices::output_device_names(), default_out, "output"),
        }
    }

    pub(super) fn open_input(id: Option<&str>) -> Result<Box<dyn AudioInput>, CommandError> {
        match CpalInput::open(id) {
            Ok(input) => Ok(Box::new(input)),
            Err(e) => Err(open_failed("input", &e)),
        }
    }

    pub(super) fn open_output(id: Option<&str>) -> Result<Box<dyn AudioOutput>, CommandError> {
        match CpalOutput::open(id) {
            Ok(output) => Ok(Box::new(output)),
            Err(e) => Err(open_failed("output", &e)),
        }
    }
}

/// A synthetic microphone: a few seconds of synthetic speech (with its pauses), repeated.
#[derive(Debug, Clone)]
pub struct LoopingVoice {
    samples: Vec<f32>,
    position: usize,
}

impl LoopingVoice {
    pub fn new() -> LoopingVoice {
        let mut samples = synth::utterance(&synth::Voice::speaker(3), 3.0);
        // A second of silence between repeats, so speaking rings go on and off.
        samples.extend(std::iter::repeat_n(0.0, 48_000));
        LoopingVoice { samples, position: 0 }
    }
}

impl Default for LoopingVoice {
    fn default() -> Self {
        LoopingVoice::new()
    }
}

impl AudioInput for LoopingVoice {
    fn read_frame(&mut self, frame: &mut PcmFrame) -> Result<bool, DeviceError> {
        if self.samples.is_empty() {
            frame.fill(0.0);
            return Ok(true);
        }
        for sample in frame.iter_mut().take(FRAME_SAMPLES) {
            *sample = self.samples[self.position];
            self.position = (self.position + 1) % self.samples.len();
        }
        Ok(true)
    }
}

/// A synthetic speaker that plays nothing (and keeps nothing, so a long run uses no memory).
#[derive(Debug, Clone, Copy, Default)]
pub struct Discard;

impl AudioOutput for Discard {
    fn write_frame(&mut self, _frame: &PcmFrame) -> Result<(), DeviceError> {
        Ok(())
    }

    fn queued_samples(&self) -> usize {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_synthetic_voice_never_runs_out_and_has_pauses() {
        let mut voice = LoopingVoice::new();
        let len = voice.samples.len();
        let mut frame = [0.0; FRAME_SAMPLES];
        let mut loud = 0;
        let mut quiet = 0;
        for _ in 0..(2 * len / FRAME_SAMPLES + 3) {
            assert!(voice.read_frame(&mut frame).unwrap());
            let peak = frame.iter().fold(0.0f32, |m, s| m.max(s.abs()));
            if peak > 0.05 { loud += 1 } else { quiet += 1 }
        }
        assert!(loud > 50 && quiet > 50, "speech and silence: {loud} loud, {quiet} quiet frames");
    }

    #[test]
    fn synthetic_devices_are_listed_and_open_by_id_or_default() {
        let devices = AudioSystem::Synthetic.devices();
        assert_eq!(devices.inputs, vec![synthetic_device(SYNTHETIC_INPUT)]);
        assert_eq!(devices.outputs, vec![synthetic_device(SYNTHETIC_OUTPUT)]);
        assert!(AudioSystem::Synthetic.open_input(None).is_ok());
        assert!(AudioSystem::Synthetic.open_input(Some(SYNTHETIC_INPUT)).is_ok());
        assert!(AudioSystem::Synthetic.open_output(Some(SYNTHETIC_OUTPUT)).is_ok());
        let err = AudioSystem::Synthetic.open_input(Some("USB headset")).err().unwrap();
        assert_eq!(err.code, "audio_device");
    }

    #[test]
    fn a_missing_device_is_an_audio_device_error_without_detail() {
        let err = open_failed("input", &DeviceError::Backend("ALSA: /dev/snd/pcmC0D0c busy".into()));
        assert_eq!(err.code, "audio_device");
        assert!(!err.message.contains("/dev"));
    }
}
