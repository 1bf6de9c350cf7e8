//! Mixes the decoded frames of every peer into the one frame the speaker plays: per-user gain
//! (0–200 %, ramped across a frame so a volume change does not click), deafen, and a limiter
//! so that several loud peers, or one at 200 %, never wrap or hard-clip.
//!
//! The limiter follows the signal's peak envelope (instant attack, ~100 ms release) and scales
//! the sum down to keep it under the ceiling: loud passages get quieter as a whole instead of
//! being flattened sample by sample, and the output is bounded by construction.

use crate::{FRAME_SAMPLES, PcmFrame, SAMPLE_RATE};

/// The highest per-user gain (200 %).
pub const MAX_GAIN: f32 = 2.0;
/// The limiter keeps every output sample within ±CEILING.
pub const CEILING: f32 = 0.98;
const RELEASE_SECONDS: f32 = 0.1;

/// One peer's frame and its gain over the frame (from `gain_start` at the first sample to
/// `gain_end` at the last; equal when the volume did not change).
#[derive(Debug, Clone, Copy)]
pub struct MixSource<'a> {
    pub pcm: &'a PcmFrame,
    pub gain_start: f32,
    pub gain_end: f32,
}

/// The mixer with its limiter state. One per call.
#[derive(Debug, Clone)]
pub struct Mixer {
    envelope: f32,
    release: f32,
    deafened: bool,
    sum: Box<[f32; FRAME_SAMPLES]>,
}

impl Default for Mixer {
    fn default() -> Self {
        Mixer::new()
    }
}

impl Mixer {
    pub fn new() -> Self {
        let release = (-1.0 / (RELEASE_SECONDS * SAMPLE_RATE as f32)).exp();
        Mixer { envelope: 0.0, release, deafened: false, sum: Box::new([0.0; FRAME_SAMPLES]) }
    }

    /// Deafened, the mixer plays silence whatever comes in.
    pub fn set_deafened(&mut self, deafened: bool) {
        self.deafened = deafened;
    }

    pub fn is_deafened(&self) -> bool {
        self.deafened
    }

    /// Mixes `sources` into `out`.
    pub fn mix<'a>(&mut self, sources: impl IntoIterator<Item = MixSource<'a>>, out: &mut PcmFrame) {
        self.sum.fill(0.0);
        for source in sources {
            let g0 = clamp_gain(source.gain_start);
            let g1 = clamp_gain(source.gain_end);
            if g0 == g1 {
                if g0 == 0.0 {
                    continue;
                }
                for (acc, &s) in self.sum.iter_mut().zip(source.pcm.iter()) {
                    *acc += s * g0;
                }
            } else {
                let step = (g1 - g0) / (FRAME_SAMPLES - 1) as f32;
                for (i, (acc, &s)) in self.sum.iter_mut().zip(source.pcm.iter()).enumerate() {
                    *acc += s * (g0 + step * i as f32);
                }
            }
        }
        if self.deafened {
            out.fill(0.0);
            // The limiter forgets too: undeafening starts clean.
            self.envelope = 0.0;
            return;
        }
        for (o, &s) in out.iter_mut().zip(self.sum.iter()) {
            let level = s.abs();
            self.envelope =
                if level > self.envelope { level } else { level + (self.envelope - level) * self.release };
            let gain = if self.envelope > CEILING { CEILING / self.envelope } else { 1.0 };
            *o = s * gain;
        }
    }
}

/// Clamps a per-user gain to 0..=2 (NaN counts as 0).
pub fn clamp_gain(gain: f32) -> f32 {
    if gain.is_nan() { 0.0 } else { gain.clamp(0.0, MAX_GAIN) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SILENT_FRAME;

    fn sine(freq: f32, amplitude: f32) -> PcmFrame {
        let mut f = SILENT_FRAME;
        for (i, s) in f.iter_mut().enumerate() {
            *s = amplitude * (2.0 * std::f32::consts::PI * freq * i as f32 / SAMPLE_RATE as f32).sin();
        }
        f
    }

    fn src(pcm: &PcmFrame, gain: f32) -> MixSource<'_> {
        MixSource { pcm, gain_start: gain, gain_end: gain }
    }

    #[test]
    fn quiet_peers_are_summed_with_their_gains() {
        let a = sine(200.0, 0.1);
        let b = sine(300.0, 0.1);
        let mut mixer = Mixer::new();
        let mut out = SILENT_FRAME;
        mixer.mix([src(&a, 1.0), src(&b, 0.5)], &mut out);
        for i in 0..FRAME_SAMPLES {
            assert!((out[i] - (a[i] + 0.5 * b[i])).abs() < 1e-6);
        }
        // 200 % doubles, 0 % mutes that peer.
        mixer.mix([src(&a, 2.0), src(&b, 0.0)], &mut out);
        assert!((out[100] - 2.0 * a[100]).abs() < 1e-6);
        // Out-of-range gains are clamped.
        mixer.mix([src(&a, 7.0)], &mut out);
        assert!((out[100] - 2.0 * a[100]).abs() < 1e-6);
    }

    #[test]
    fn many_loud_peers_never_exceed_the_ceiling_or_wrap() {
        let peers: Vec<PcmFrame> = (0..9).map(|i| sine(150.0 + 10.0 * i as f32, 0.9)).collect();
        let mut mixer = Mixer::new();
        let mut out = SILENT_FRAME;
        for _ in 0..20 {
            mixer.mix(peers.iter().map(|p| src(p, 2.0)), &mut out);
            assert!(out.iter().all(|s| s.abs() <= CEILING + 1e-6));
        }
        // Limited, not wrapped: the output keeps the sign of the sum everywhere.
        let mut sum = SILENT_FRAME;
        for p in &peers {
            for (acc, s) in sum.iter_mut().zip(p) {
                *acc += 2.0 * s;
            }
        }
        assert!(out.iter().zip(&sum).all(|(o, s)| o * s >= 0.0));
        // And it is not flattened into a square wave: most samples are below the ceiling.
        let at_ceiling = out.iter().filter(|s| s.abs() > CEILING * 0.99).count();
        assert!(at_ceiling < FRAME_SAMPLES / 10, "{at_ceiling}");
    }

    #[test]
    fn after_a_loud_burst_the_gain_recovers() {
        let loud = sine(200.0, 0.9);
        let quiet = sine(200.0, 0.2);
        let mut mixer = Mixer::new();
        let mut out = SILENT_FRAME;
        mixer.mix([src(&loud, 2.0)], &mut out);
        for _ in 0..50 {
            mixer.mix([src(&quiet, 1.0)], &mut out);
        }
        let peak = out.iter().fold(0.0f32, |m, s| m.max(s.abs()));
        assert!((peak - 0.2).abs() < 0.01, "{peak}");
    }

    #[test]
    fn a_gain_change_is_ramped_across_the_frame() {
        let dc = [0.25; FRAME_SAMPLES];
        let mut mixer = Mixer::new();
        let mut out = SILENT_FRAME;
        mixer.mix([MixSource { pcm: &dc, gain_start: 1.0, gain_end: 0.0 }], &mut out);
        assert!((out[0] - 0.25).abs() < 1e-6);
        assert!(out[FRAME_SAMPLES - 1].abs() < 1e-6);
        assert!(out.windows(2).all(|w| w[1] <= w[0]));
    }

    #[test]
    fn deafened_plays_silence() {
        let a = sine(200.0, 0.5);
        let mut mixer = Mixer::new();
        let mut out = [1.0; FRAME_SAMPLES];
        mixer.set_deafened(true);
        mixer.mix([src(&a, 1.0)], &mut out);
        assert!(out.iter().all(|&s| s == 0.0));
        mixer.set_deafened(false);
        mixer.mix([src(&a, 1.0)], &mut out);
        assert!((out[100] - a[100]).abs() < 1e-6);
    }
}
