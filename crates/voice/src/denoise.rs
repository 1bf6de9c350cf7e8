//! Noise suppression with RNNoise (the pure-Rust `nnnoiseless` port): a small recurrent
//! network that estimates per-band gains on 10 ms frames, the length of ours.
//! As a by-product it estimates the probability that a frame is speech, which the VAD uses.

use nnnoiseless::DenoiseState;

use crate::PcmFrame;

/// RNNoise takes 10 ms at a time.
const CHUNK: usize = DenoiseState::FRAME_SIZE;
const _: () = assert!(crate::FRAME_SAMPLES.is_multiple_of(CHUNK), "a frame must be whole RNNoise frames");
/// RNNoise works on samples in the 16-bit integer range.
const SCALE: f32 = 32_768.0;

/// A noise suppressor that can be switched off (then frames pass untouched).
pub struct Denoiser {
    state: Option<Box<DenoiseState<'static>>>,
    input: [f32; CHUNK],
    output: [f32; CHUNK],
}

impl std::fmt::Debug for Denoiser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Denoiser").field("enabled", &self.is_enabled()).finish_non_exhaustive()
    }
}

impl Denoiser {
    pub fn new(enabled: bool) -> Self {
        Denoiser { state: enabled.then(DenoiseState::new), input: [0.0; CHUNK], output: [0.0; CHUNK] }
    }

    pub fn is_enabled(&self) -> bool {
        self.state.is_some()
    }

    /// Switching on starts from a fresh state, so nothing learned before the pause leaks in.
    pub fn set_enabled(&mut self, enabled: bool) {
        if enabled != self.is_enabled() {
            self.state = enabled.then(DenoiseState::new);
        }
    }

    /// Suppresses noise in `frame` in place and returns the speech probability (the largest of
    /// its RNNoise frames'), or `None` when switched off.
    pub fn process(&mut self, frame: &mut PcmFrame) -> Option<f32> {
        let state = self.state.as_mut()?;
        let mut probability = 0.0f32;
        for chunk in frame.chunks_exact_mut(CHUNK) {
            for (dst, &src) in self.input.iter_mut().zip(chunk.iter()) {
                *dst = src * SCALE;
            }
            probability = probability.max(state.process_frame(&mut self.output, &self.input));
            for (dst, &src) in chunk.iter_mut().zip(self.output.iter()) {
                *dst = (src / SCALE).clamp(-1.0, 1.0);
            }
        }
        Some(probability)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::level::rms_dbfs;
    use crate::synth::{self, Rng};
    use crate::{FRAME_SAMPLES, SILENT_FRAME};

    fn frames(samples: &[f32]) -> Vec<PcmFrame> {
        samples
            .chunks_exact(FRAME_SAMPLES)
            .map(|c| {
                let mut f = SILENT_FRAME;
                f.copy_from_slice(c);
                f
            })
            .collect()
    }

    #[test]
    fn steady_noise_is_attenuated_and_speech_kept() {
        let mut rng = Rng::new(7);
        let noise: Vec<f32> = (0..48_000 * 3).map(|_| (rng.unit() as f32 - 0.5) * 0.05).collect();
        let speech = synth::utterance(&synth::Voice::speaker(0), 3.0);
        let noisy: Vec<f32> = speech.iter().zip(&noise).map(|(s, n)| s + n).collect();

        let mut denoiser = Denoiser::new(true);
        let mut cleaned = Vec::new();
        let mut probabilities = Vec::new();
        for mut f in frames(&noisy) {
            probabilities.push(denoiser.process(&mut f).unwrap());
            cleaned.extend_from_slice(&f);
        }
        // In the pauses (speech frames that are silent) the noise drops by more than 15 dB.
        let pauses: Vec<usize> = frames(&speech)
            .iter()
            .enumerate()
            .filter(|(i, f)| *i > crate::FRAMES_PER_SECOND / 2 && rms_dbfs(&f[..]) < -70.0)
            .map(|(i, _)| i)
            .collect();
        assert!(pauses.len() > 10);
        let before: f32 =
            pauses.iter().map(|&i| rms_dbfs(&noisy[i * FRAME_SAMPLES..(i + 1) * FRAME_SAMPLES])).sum::<f32>()
                / pauses.len() as f32;
        let after: f32 = pauses
            .iter()
            .map(|&i| rms_dbfs(&cleaned[i * FRAME_SAMPLES..(i + 1) * FRAME_SAMPLES]))
            .sum::<f32>()
            / pauses.len() as f32;
        assert!(after < before - 15.0, "noise {before:.1} dBFS -> {after:.1} dBFS");
        // The speech itself survives (RNNoise delays by 10 ms; align finds it).
        let kept = synth::align(&speech, &cleaned, 2400);
        assert!(kept.correlation > 0.8, "{kept:?}");
        // And it is recognized as speech more often than the pauses are.
        let voiced: Vec<f32> = frames(&speech)
            .iter()
            .zip(&probabilities)
            .filter(|(f, _)| rms_dbfs(&f[..]) > -30.0)
            .map(|(_, &p)| p)
            .collect();
        let mean_voiced = voiced.iter().sum::<f32>() / voiced.len() as f32;
        let mean_pause = pauses.iter().map(|&i| probabilities[i]).sum::<f32>() / pauses.len() as f32;
        assert!(mean_voiced > mean_pause + 0.2, "voiced {mean_voiced} pause {mean_pause}");
    }

    #[test]
    fn switched_off_it_passes_frames_untouched() {
        let mut denoiser = Denoiser::new(false);
        let mut frame = [0.1; FRAME_SAMPLES];
        assert_eq!(denoiser.process(&mut frame), None);
        assert!(frame.iter().all(|&s| s == 0.1));
        denoiser.set_enabled(true);
        assert!(denoiser.process(&mut frame).is_some());
    }
}
