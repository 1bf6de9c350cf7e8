//! Acoustic echo cancellation with AEC3 from WebRTC's audio processing, in its pure-Rust port
//! (`sonora`, so it builds offline with no C++ toolchain).
//!
//! Without headphones the microphone hears what the speaker plays, and everyone else hears
//! themselves back. The canceller learns the path from the *render* signal (what we are about
//! to play, [`EchoCanceller::render`]) to the microphone and subtracts it from the *capture*
//! signal ([`EchoCanceller::capture`]). Both sides are fed in 10 ms chunks, the length of our
//! frames.

use sonora::config::EchoCanceller as Aec3;
use sonora::{AudioProcessing, Config, StreamConfig};

use crate::{PcmFrame, SAMPLE_RATE};

/// AEC3 takes 10 ms at a time.
const CHUNK: usize = SAMPLE_RATE as usize / 100;
const _: () = assert!(crate::FRAME_SAMPLES.is_multiple_of(CHUNK), "a frame must be whole 10 ms chunks");

/// Why the echo canceller refused a frame.
#[derive(Debug, thiserror::Error)]
#[error("echo canceller: {0}")]
pub struct EchoError(String);

/// An echo canceller for one microphone and the mix played on the speaker.
pub struct EchoCanceller {
    apm: AudioProcessing,
    scratch: [f32; CHUNK],
}

impl std::fmt::Debug for EchoCanceller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EchoCanceller").finish_non_exhaustive()
    }
}

impl Default for EchoCanceller {
    fn default() -> Self {
        EchoCanceller::new()
    }
}

impl EchoCanceller {
    pub fn new() -> Self {
        let config = Config { echo_canceller: Some(Aec3::default()), ..Default::default() };
        let stream = StreamConfig::new(SAMPLE_RATE, 1);
        let apm =
            AudioProcessing::builder().config(config).capture_config(stream).render_config(stream).build();
        EchoCanceller { apm, scratch: [0.0; CHUNK] }
    }

    /// Feeds what is about to be played on the speaker (the far end).
    pub fn render(&mut self, played: &PcmFrame) -> Result<(), EchoError> {
        for chunk in played.chunks_exact(CHUNK) {
            self.apm
                .process_render_f32(&[chunk], &mut [&mut self.scratch[..]])
                .map_err(|e| EchoError(format!("{e:?}")))?;
        }
        Ok(())
    }

    /// Removes the echo of recently rendered audio from a microphone frame, in place.
    pub fn capture(&mut self, mic: &mut PcmFrame) -> Result<(), EchoError> {
        for chunk in mic.chunks_exact_mut(CHUNK) {
            self.scratch.copy_from_slice(chunk);
            self.apm
                .process_capture_f32(&[&self.scratch[..]], &mut [chunk])
                .map_err(|e| EchoError(format!("{e:?}")))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::level::rms_dbfs;
    use crate::synth::{self, Voice};
    use crate::{FRAME_SAMPLES, SILENT_FRAME};

    #[test]
    fn the_echo_of_the_far_end_is_removed_from_the_microphone() {
        // The far end speaks; the microphone hears it 30 ms later at half the amplitude.
        let far = synth::utterance(&Voice::speaker(1), 8.0);
        let delay = 1440;
        let mut canceller = EchoCanceller::new();
        let (mut echo_energy, mut residual_energy) = (0.0f64, 0.0f64);
        for (i, chunk) in far.chunks_exact(FRAME_SAMPLES).enumerate() {
            let mut played = SILENT_FRAME;
            played.copy_from_slice(chunk);
            canceller.render(&played).unwrap();
            let mut mic = SILENT_FRAME;
            for (j, s) in mic.iter_mut().enumerate() {
                let at = (i * FRAME_SAMPLES + j) as isize - delay;
                *s = if at >= 0 { far[at as usize] * 0.5 } else { 0.0 };
            }
            let before = mic;
            canceller.capture(&mut mic).unwrap();
            // Judge the last 4 s, after the canceller has converged.
            if i >= 4 * crate::FRAMES_PER_SECOND {
                echo_energy += before.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>();
                residual_energy += mic.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>();
            }
        }
        let reduction_db = 10.0 * (echo_energy / residual_energy.max(1e-12)).log10();
        assert!(reduction_db > 15.0, "echo reduced by only {reduction_db:.1} dB");
        assert!(rms_dbfs(&SILENT_FRAME) < -90.0);
    }
}
