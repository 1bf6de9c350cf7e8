//! Test support: deterministic speech-like signals and a check that received audio matches
//! what was sent.
//!
//! [`utterance`] makes "speech" from a [`Voice`]: voiced syllables (a glottal pulse train
//! through three formant resonators, with a pitch contour and an amplitude envelope) separated
//! by pauses, all drawn from a seeded generator, so the same speaker always says the same
//! thing and different speakers differ in pitch, formants and rhythm. Real codecs, noise
//! suppression and voice activity detection treat it like speech, which is what end-to-end
//! tests need.
//!
//! [`align`] finds the lag that best aligns a received signal with a reference and reports
//! the normalized cross-correlation there; [`segment_correlation`] does it per segment, for
//! paths whose delay changes over time (a jitter buffer adapts during pauses).

use crate::SAMPLE_RATE;

const SR: f32 = SAMPLE_RATE as f32;

/// A deterministic generator (SplitMix64): the same seed gives the same signal everywhere.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [lo, hi).
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }
}

/// A synthetic speaker.
#[derive(Debug, Clone, PartialEq)]
pub struct Voice {
    /// Mean pitch in Hz.
    pub pitch_hz: f32,
    /// Scales every formant (vocal tract length).
    pub formant_scale: f32,
    /// Peak amplitude of a syllable (0..1).
    pub loudness: f32,
    pub seed: u64,
}

impl Voice {
    /// Speaker `n`: distinct pitch, timbre and words for each `n`.
    pub fn speaker(n: u32) -> Voice {
        let pitches = [110.0, 210.0, 145.0, 180.0, 95.0, 240.0, 125.0, 160.0, 200.0, 135.0];
        let scales = [1.0, 1.15, 0.95, 1.08, 0.9, 1.2, 1.02, 0.97, 1.12, 1.05];
        let i = n as usize % pitches.len();
        Voice {
            pitch_hz: pitches[i],
            formant_scale: scales[i],
            loudness: 0.4,
            seed: 0x4845_4152_5448 ^ u64::from(n),
        }
    }
}

/// Formant frequencies (Hz) of a few vowels.
const VOWELS: [[f32; 3]; 5] = [
    [730.0, 1090.0, 2440.0], // a
    [270.0, 2290.0, 3010.0], // i
    [300.0, 870.0, 2240.0],  // u
    [530.0, 1840.0, 2480.0], // e
    [570.0, 840.0, 2410.0],  // o
];

/// A two-pole resonator (one formant).
#[derive(Clone, Copy)]
struct Resonator {
    a1: f32,
    a2: f32,
    gain: f32,
    y1: f32,
    y2: f32,
}

impl Resonator {
    fn new(freq: f32, bandwidth: f32) -> Self {
        let r = (-std::f32::consts::PI * bandwidth / SR).exp();
        let theta = 2.0 * std::f32::consts::PI * freq / SR;
        Resonator { a1: 2.0 * r * theta.cos(), a2: -r * r, gain: 1.0 - r, y1: 0.0, y2: 0.0 }
    }

    fn retune(&mut self, freq: f32, bandwidth: f32) {
        let fresh = Resonator::new(freq, bandwidth);
        self.a1 = fresh.a1;
        self.a2 = fresh.a2;
        self.gain = fresh.gain;
    }

    fn step(&mut self, x: f32) -> f32 {
        let y = self.gain * x + self.a1 * self.y1 + self.a2 * self.y2;
        self.y2 = self.y1;
        self.y1 = y;
        y
    }
}

/// `seconds` of speech-like audio from `voice`, starting and ending with a short pause.
pub fn utterance(voice: &Voice, seconds: f32) -> Vec<f32> {
    let total = (seconds * SR) as usize;
    let mut out = Vec::with_capacity(total);
    let mut rng = Rng::new(voice.seed);
    let mut formants = [Resonator::new(500.0, 80.0); 3];
    let mut phase = 0.0f32;
    // A leading pause.
    let lead = (rng.range(0.05, 0.2) * f64::from(SR)) as usize;
    out.resize(lead.min(total), 0.0);
    while out.len() < total {
        // A syllable of 120-320 ms, then a pause of 60-350 ms (sometimes longer).
        let len = (rng.range(0.12, 0.32) * f64::from(SR)) as usize;
        let vowel = VOWELS[(rng.next_u64() % VOWELS.len() as u64) as usize];
        let next_vowel = VOWELS[(rng.next_u64() % VOWELS.len() as u64) as usize];
        let pitch_start = voice.pitch_hz * rng.range(0.85, 1.15) as f32;
        let pitch_end = voice.pitch_hz * rng.range(0.8, 1.1) as f32;
        let level = voice.loudness * rng.range(0.6, 1.0) as f32;
        for i in 0..len {
            if out.len() >= total {
                break;
            }
            let t = i as f32 / len as f32;
            if i % 48 == 0 {
                // Glide between two vowels (a diphthong) every millisecond.
                for (f, resonator) in formants.iter_mut().enumerate() {
                    let freq = (vowel[f] + (next_vowel[f] - vowel[f]) * t) * voice.formant_scale;
                    resonator.retune(freq, 60.0 + 40.0 * f as f32);
                }
            }
            let pitch = pitch_start + (pitch_end - pitch_start) * t;
            phase += pitch / SR;
            // A glottal pulse: a sharp rise and slower fall once per period, plus breath.
            let excitation = if phase >= 1.0 {
                phase -= 1.0;
                1.0
            } else {
                0.0
            } + (rng.unit() as f32 - 0.5) * 0.02;
            let voiced: f32 =
                formants.iter_mut().enumerate().map(|(f, r)| r.step(excitation) / (1.0 + f as f32)).sum();
            // Raised-cosine attack and release of 20 ms each.
            let edge = (0.02 * SR) as usize;
            let envelope = if i < edge {
                0.5 - 0.5 * (std::f32::consts::PI * i as f32 / edge as f32).cos()
            } else if i + edge > len {
                0.5 - 0.5 * (std::f32::consts::PI * (len - i) as f32 / edge as f32).cos()
            } else {
                1.0
            };
            out.push(voiced * envelope * level * 12.0);
        }
        let pause = if rng.unit() < 0.15 { rng.range(0.4, 0.8) } else { rng.range(0.06, 0.35) };
        let pause = (pause * f64::from(SR)) as usize;
        let end = (out.len() + pause).min(total);
        out.resize(end, 0.0);
    }
    // The resonators' gain is approximate: normalize the loudest sample to the voice's level.
    let peak = out.iter().fold(0.0f32, |m, &s| m.max(s.abs()));
    if peak > 0.0 {
        let scale = voice.loudness / peak;
        out.iter_mut().for_each(|s| *s *= scale);
    }
    out
}

/// Where `received` best matches `reference`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Alignment {
    /// `received[i + lag]` corresponds to `reference[i]`.
    pub lag: isize,
    /// Normalized cross-correlation at that lag (-1..1; 1 is identical up to a gain).
    pub correlation: f32,
}

/// Normalized cross-correlation of `a[i]` with `b[i + lag]` over their overlap.
pub fn correlation_at(a: &[f32], b: &[f32], lag: isize) -> f32 {
    let (a, b) = if lag >= 0 {
        let lag = lag as usize;
        if lag >= b.len() {
            return 0.0;
        }
        (a, &b[lag..])
    } else {
        let lag = lag.unsigned_abs();
        if lag >= a.len() {
            return 0.0;
        }
        (&a[lag..], b)
    };
    let n = a.len().min(b.len());
    let (mut ab, mut aa, mut bb) = (0.0f64, 0.0f64, 0.0f64);
    for (&x, &y) in a[..n].iter().zip(&b[..n]) {
        ab += f64::from(x) * f64::from(y);
        aa += f64::from(x) * f64::from(x);
        bb += f64::from(y) * f64::from(y);
    }
    if aa <= 0.0 || bb <= 0.0 {
        return 0.0;
    }
    (ab / (aa * bb).sqrt()) as f32
}

fn decimate(x: &[f32], factor: usize) -> Vec<f32> {
    x.chunks(factor).map(|c| c.iter().sum::<f32>() / c.len() as f32).collect()
}

/// Searches lags in `-max_lag..=max_lag` (samples) for the best alignment of `received` with
/// `reference`: coarsely on decimated signals, then sample by sample around the best.
pub fn align(reference: &[f32], received: &[f32], max_lag: usize) -> Alignment {
    align_around(reference, received, 0, max_lag)
}

fn align_around(reference: &[f32], received: &[f32], center: isize, max_lag: usize) -> Alignment {
    // Coarse to fine: search the whole range on 16x decimated signals, then narrow down at
    // 4x and at full rate around the best lag so far.
    let mut best = center;
    let mut range = max_lag as isize;
    for factor in [16usize, 4, 1] {
        let f = factor as isize;
        let (a, b) = if factor == 1 {
            (reference.to_vec(), received.to_vec())
        } else {
            (decimate(reference, factor), decimate(received, factor))
        };
        let mut found = Alignment { lag: best, correlation: f32::MIN };
        let lo = (best - range) / f;
        let hi = (best + range) / f;
        for lag in lo..=hi {
            let c = correlation_at(&a, &b, lag);
            if c > found.correlation {
                found = Alignment { lag: lag * f, correlation: c };
            }
        }
        if factor == 1 {
            return found;
        }
        best = found.lag;
        range = 2 * f;
    }
    Alignment { lag: best, correlation: 0.0 }
}

/// Correlation of `received` with `reference` after alignment, measured per segment of
/// `segment` samples so a delay that changes between segments does not count against it:
/// finds the overall lag within `max_lag`, then each segment's own lag within `±wander`
/// samples of it. Segments of the reference that are nearly silent are skipped. Returns the
/// energy-weighted mean correlation (0 when nothing was compared).
pub fn segment_correlation(
    reference: &[f32],
    received: &[f32],
    segment: usize,
    max_lag: usize,
    wander: usize,
) -> f32 {
    let overall = align(reference, received, max_lag);
    let loudest = reference.chunks(segment).map(energy).fold(0.0f64, f64::max);
    let (mut weighted, mut weights) = (0.0f64, 0.0f64);
    for (i, chunk) in reference.chunks(segment).enumerate() {
        let e = energy(chunk);
        if chunk.len() < segment / 2 || e < loudest * 0.05 {
            continue;
        }
        let start = (i * segment) as isize;
        // The received signal around where this segment should be.
        let from = (start + overall.lag - wander as isize).max(0) as usize;
        if from >= received.len() {
            break;
        }
        let to = ((start + overall.lag) as usize + chunk.len() + wander).min(received.len());
        let window = &received[from..to];
        let center = start + overall.lag - from as isize;
        let local = align_around(chunk, window, center, wander);
        weighted += f64::from(local.correlation.max(0.0)) * e;
        weights += e;
    }
    if weights == 0.0 { 0.0 } else { (weighted / weights) as f32 }
}

fn energy(x: &[f32]) -> f64 {
    x.iter().map(|&s| f64::from(s) * f64::from(s)).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_speaker_says_the_same_thing_and_others_differ() {
        let a = utterance(&Voice::speaker(0), 2.0);
        assert_eq!(a, utterance(&Voice::speaker(0), 2.0));
        assert_eq!(a.len(), 96_000);
        let b = utterance(&Voice::speaker(1), 2.0);
        assert!(align(&a, &b, 4800).correlation < 0.3);
        // Speech has pauses: a good part of it is silent.
        let silent = a.chunks(960).filter(|f| crate::level::rms_dbfs(f) < -60.0).count();
        assert!((10..70).contains(&silent), "{silent} silent frames of 100");
        assert!(a.iter().all(|s| s.abs() <= 0.41));
    }

    #[test]
    fn align_finds_a_delay_and_a_gain_change() {
        let a = utterance(&Voice::speaker(2), 1.5);
        let mut b = vec![0.0; 1234];
        b.extend(a.iter().map(|s| s * 0.5));
        let found = align(&a, &b, 4800);
        assert_eq!(found.lag, 1234);
        assert!(found.correlation > 0.999, "{found:?}");
    }

    #[test]
    fn segment_correlation_follows_a_delay_that_changes() {
        let a = utterance(&Voice::speaker(3), 3.0);
        // 30 ms of delay for the first half, 70 ms for the second.
        let half = a.len() / 2;
        let mut b = vec![0.0; 1440];
        b.extend_from_slice(&a[..half]);
        b.extend(std::iter::repeat_n(0.0, 1920));
        b.extend_from_slice(&a[half..]);
        let per_segment = segment_correlation(&a, &b, 4800, 9600, 2400);
        assert!(per_segment > 0.95, "{per_segment}");
        let other = utterance(&Voice::speaker(4), 3.0);
        assert!(segment_correlation(&a, &other, 4800, 9600, 2400) < 0.4);
    }
}
