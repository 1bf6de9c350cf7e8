//! Voice activity detection: is the user speaking in this frame? Drives the speaking ring and,
//! in voice-activity mode, whether anything is sent.
//!
//! A frame is *active* when its level is at or above the sensitivity threshold (dBFS) and,
//! when the noise suppressor gives one, its speech probability is not negligible. Speaking
//! starts after `attack_frames` consecutive active frames (a click does not open the gate) and
//! ends only after `hangover_frames` consecutive inactive ones (the ring does not flicker
//! between words, and word endings are not cut).

use std::time::Duration;

use crate::frames_in;
use crate::level::FLOOR_DBFS;

/// Settings of a [`Vad`].
#[derive(Debug, Clone, PartialEq)]
pub struct VadConfig {
    /// Frames at or above this level (dBFS) count as voice. Discord-like "input sensitivity".
    pub threshold_dbfs: f32,
    /// Consecutive active frames needed to start speaking.
    pub attack_frames: u32,
    /// Consecutive inactive frames needed to stop.
    pub hangover_frames: u32,
    /// Below this speech probability (from RNNoise) a loud frame is still noise.
    pub min_speech_probability: f32,
}

impl Default for VadConfig {
    fn default() -> Self {
        VadConfig {
            threshold_dbfs: -50.0,
            // 20 ms of voice, so a click (one frame after RNNoise) does not open the gate.
            attack_frames: frames_in(Duration::from_millis(20)),
            hangover_frames: frames_in(Duration::from_millis(300)),
            min_speech_probability: 0.15,
        }
    }
}

/// Maps a 0..1 sensitivity slider (1 = most sensitive) to a threshold: 0 is -20 dBFS (only
/// loud speech), 1 is -80 dBFS (anything above a quiet room).
pub fn sensitivity_to_dbfs(sensitivity: f32) -> f32 {
    -20.0 - 60.0 * sensitivity.clamp(0.0, 1.0)
}

/// The voice activity state machine. One per local microphone, and one per remote peer for
/// its speaking ring.
#[derive(Debug, Clone)]
pub struct Vad {
    config: VadConfig,
    speaking: bool,
    active_run: u32,
    inactive_run: u32,
}

impl Vad {
    pub fn new(config: VadConfig) -> Self {
        Vad { config, speaking: false, active_run: 0, inactive_run: 0 }
    }

    /// Sets the threshold in dBFS (clamped to -100..0).
    pub fn set_threshold_dbfs(&mut self, dbfs: f32) {
        self.config.threshold_dbfs = dbfs.clamp(FLOOR_DBFS, 0.0);
    }

    pub fn threshold_dbfs(&self) -> f32 {
        self.config.threshold_dbfs
    }

    /// Feeds one frame: its level, and the speech probability when one is known. Returns
    /// whether the user is speaking after this frame.
    pub fn update(&mut self, level_dbfs: f32, speech_probability: Option<f32>) -> bool {
        let loud = level_dbfs >= self.config.threshold_dbfs;
        let voice_like = speech_probability.is_none_or(|p| p >= self.config.min_speech_probability);
        if loud && voice_like {
            self.active_run = self.active_run.saturating_add(1);
            self.inactive_run = 0;
            if self.active_run >= self.config.attack_frames {
                self.speaking = true;
            }
        } else {
            self.inactive_run = self.inactive_run.saturating_add(1);
            self.active_run = 0;
            if self.inactive_run >= self.config.hangover_frames {
                self.speaking = false;
            }
        }
        self.speaking
    }

    pub fn is_speaking(&self) -> bool {
        self.speaking
    }

    /// Back to silent (e.g. after mute).
    pub fn reset(&mut self) {
        self.speaking = false;
        self.active_run = 0;
        self.inactive_run = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOUD: f32 = -30.0;
    const QUIET: f32 = -70.0;

    fn feed(vad: &mut Vad, levels: &[f32]) -> Vec<bool> {
        levels.iter().map(|&l| vad.update(l, None)).collect()
    }

    fn frames(ms: u64) -> usize {
        frames_in(Duration::from_millis(ms)) as usize
    }

    #[test]
    fn speaking_starts_after_the_attack_and_survives_short_pauses() {
        let mut vad = Vad::new(VadConfig::default());
        assert_eq!(VadConfig::default().attack_frames, 2);
        assert_eq!(feed(&mut vad, &[QUIET, LOUD, LOUD, LOUD]), [false, false, true, true]);
        // A 200 ms pause between words keeps the ring on.
        let pause = feed(&mut vad, &vec![QUIET; frames(200)]);
        assert!(pause.iter().all(|&s| s));
        assert!(vad.update(LOUD, None));
        // 300 ms of silence ends it, on exactly its last quiet frame.
        let end = feed(&mut vad, &vec![QUIET; frames(300)]);
        assert_eq!(end.iter().filter(|&&s| s).count(), frames(300) - 1);
        assert!(!vad.is_speaking());
    }

    #[test]
    fn a_single_click_does_not_open_the_gate() {
        let mut vad = Vad::new(VadConfig::default());
        let out = feed(&mut vad, &[QUIET, LOUD, QUIET, LOUD, QUIET, QUIET]);
        assert!(out.iter().all(|&s| !s));
    }

    #[test]
    fn alternating_levels_do_not_flicker() {
        let mut vad = Vad::new(VadConfig::default());
        feed(&mut vad, &[LOUD; 5]);
        // Syllables of 60 ms with 100 ms gaps: one long speaking state, no transitions.
        let (syllable, period) = (frames(60), frames(160));
        let pattern: Vec<f32> =
            (0..12 * period).map(|i| if i % period < syllable { LOUD } else { QUIET }).collect();
        let out = feed(&mut vad, &pattern);
        assert!(out.iter().all(|&s| s));
    }

    #[test]
    fn sensitivity_moves_the_threshold() {
        let mut vad = Vad::new(VadConfig::default());
        vad.set_threshold_dbfs(sensitivity_to_dbfs(0.0));
        assert_eq!(vad.threshold_dbfs(), -20.0);
        assert!(!feed(&mut vad, &[LOUD; 5])[4]);
        vad.set_threshold_dbfs(sensitivity_to_dbfs(1.0));
        assert!(feed(&mut vad, &[-75.0; 5])[4]);
        vad.set_threshold_dbfs(5.0);
        assert_eq!(vad.threshold_dbfs(), 0.0);
    }

    #[test]
    fn loud_noise_without_speech_is_not_speaking() {
        let mut vad = Vad::new(VadConfig::default());
        let out: Vec<bool> = (0..10).map(|_| vad.update(LOUD, Some(0.02))).collect();
        assert!(out.iter().all(|&s| !s));
        let out: Vec<bool> = (0..3).map(|_| vad.update(LOUD, Some(0.9))).collect();
        assert!(out[2]);
    }
}
