//! Sample-rate conversion between a device's rate and the pipeline's 48 kHz, and the
//! controller that keeps the device's queue steady although the device runs on its own clock.
//!
//! A device that cannot run 48 kHz (a Windows mix format of 44.1 kHz, say) is resampled, and
//! so is every other device, by a ratio a few parts per million off 1: the audio thread ticks on
//! the computer's clock, the sound card on its crystal, and the two disagree by up to a few
//! hundred ppm. Without correction the queue between them fills (latency creeping up to the
//! queue's limit, then a dropped chunk) or runs dry (a silent frame) every few minutes.
//!
//! [`Resampler`] is a windowed-sinc interpolator (Kaiser window, [`TAPS`] taps, a table of
//! [`PHASES`] fractional phases interpolated linearly) whose step can be nudged while it runs.
//! [`DriftControl`] turns the queue level seen after each frame's exchange into that nudge: a
//! proportional-integral controller on a smoothed level, clamped to ±[`MAX_CORRECTION`].

use std::collections::VecDeque;

use crate::{FRAME_SAMPLES, FRAMES_PER_SECOND};

/// Filter length in input samples (half on each side of the interpolated point).
pub const TAPS: usize = 32;
const HALF: usize = TAPS / 2;
/// Fractional phases tabulated between two input samples.
pub const PHASES: usize = 128;
/// Kaiser window shape: about 80 dB of stop-band attenuation.
const KAISER_BETA: f64 = 8.0;
/// The pass band ends this far below the lower Nyquist frequency (transition band).
const CUTOFF: f64 = 0.9;
/// The largest ratio correction the drift controller applies (1000 ppm: far beyond any real
/// crystal, small enough to be inaudible as pitch).
pub const MAX_CORRECTION: f64 = 1e-3;

/// Mono resampler from `from` Hz to `to` Hz with an adjustable ratio.
#[derive(Debug, Clone)]
pub struct Resampler {
    /// Input samples per output sample at the nominal rates.
    nominal: f64,
    /// The step actually taken (nominal times the drift correction).
    step: f64,
    /// `(PHASES + 1) * TAPS` coefficients; row `p` interpolates at fraction `p / PHASES`.
    table: Vec<f32>,
    /// Input not yet consumed; `history[0]` is the oldest sample a next output may touch.
    history: VecDeque<f32>,
    /// Position of the next output in `history`, in input samples.
    position: f64,
}

impl Resampler {
    pub fn new(from: u32, to: u32) -> Self {
        let nominal = f64::from(from) / f64::from(to);
        // The cutoff, in cycles per input sample, below both Nyquist frequencies.
        let cutoff = 0.5 * CUTOFF * (1.0 / nominal).min(1.0);
        let mut table = Vec::with_capacity((PHASES + 1) * TAPS);
        for phase in 0..=PHASES {
            let fraction = phase as f64 / PHASES as f64;
            let row: Vec<f64> = (0..TAPS)
                .map(|k| {
                    // Distance from the output point to input tap k.
                    let distance = fraction + (HALF - 1) as f64 - k as f64;
                    2.0 * cutoff * sinc(2.0 * cutoff * distance) * kaiser(distance / HALF as f64)
                })
                .collect();
            // Unity gain at DC for every phase, so a constant stays exactly constant.
            let sum: f64 = row.iter().sum();
            table.extend(row.iter().map(|c| (c / sum) as f32));
        }
        let mut history = VecDeque::with_capacity(4096);
        // Zeros before the first sample, so the first output is the first input's instant.
        history.extend(std::iter::repeat_n(0.0, HALF - 1));
        Resampler { nominal, step: nominal, table, history, position: (HALF - 1) as f64 }
    }

    /// Multiplies the nominal ratio by `1 + correction` (positive: consume input faster).
    pub fn set_correction(&mut self, correction: f64) {
        self.step = self.nominal * (1.0 + correction.clamp(-MAX_CORRECTION, MAX_CORRECTION));
    }

    /// Input samples per output sample at the nominal rates.
    pub fn nominal_ratio(&self) -> f64 {
        self.nominal
    }

    /// Appends input samples.
    pub fn push(&mut self, input: impl IntoIterator<Item = f32>) {
        self.history.extend(input);
    }

    /// How many output samples the input pushed so far can produce.
    pub fn available(&self) -> usize {
        // Output j needs history up to index floor(position + j * step) + HALF.
        let last_usable = self.history.len() as f64 - HALF as f64 - 1.0;
        if last_usable < self.position {
            return 0;
        }
        ((last_usable - self.position) / self.step).floor() as usize + 1
    }

    /// Fills `out` and returns `true`, or returns `false` and changes nothing when fewer than
    /// `out.len()` outputs are [`available`](Self::available).
    pub fn produce(&mut self, out: &mut [f32]) -> bool {
        if self.available() < out.len() {
            return false;
        }
        let mut slots = out.iter_mut();
        self.emit(slots.len(), |sample| {
            if let Some(slot) = slots.next() {
                *slot = sample;
            }
        });
        true
    }

    /// Produces every available output into `out`.
    pub fn drain_into(&mut self, out: &mut impl Extend<f32>) {
        self.emit(self.available(), |sample| out.extend(std::iter::once(sample)));
    }

    /// Interpolates the next `n` outputs (at most [`available`](Self::available)), hands each
    /// to `put`, and drops the input they used up.
    fn emit(&mut self, n: usize, mut put: impl FnMut(f32)) {
        if n == 0 {
            return;
        }
        let (front, back) = self.history.as_slices();
        let mut position = self.position;
        for _ in 0..n {
            let index = position.floor();
            let start = index as usize + 1 - HALF;
            put(self.interpolate(front, back, start, position - index));
            position += self.step;
        }
        self.position = position;
        self.discard_consumed();
    }

    fn interpolate(&self, front: &[f32], back: &[f32], start: usize, fraction: f64) -> f32 {
        let scaled = fraction * PHASES as f64;
        let phase = (scaled as usize).min(PHASES - 1);
        let mix = (scaled - phase as f64) as f32;
        let (a, b) = (&self.table[phase * TAPS..][..TAPS], &self.table[(phase + 1) * TAPS..][..TAPS]);
        let mut acc = 0.0f32;
        for k in 0..TAPS {
            let i = start + k;
            let x = if i < front.len() { front[i] } else { back[i - front.len()] };
            acc += x * (a[k] + mix * (b[k] - a[k]));
        }
        acc
    }

    /// Drops input no future output can reach.
    fn discard_consumed(&mut self) {
        let first_needed = self.position.floor() as usize + 1 - HALF;
        let drop = first_needed.min(self.history.len());
        self.history.drain(..drop);
        self.position -= drop as f64;
    }
}

fn sinc(x: f64) -> f64 {
    if x.abs() < 1e-12 {
        1.0
    } else {
        let px = std::f64::consts::PI * x;
        px.sin() / px
    }
}

/// Kaiser window at `x` in [-1, 1] (zero outside).
fn kaiser(x: f64) -> f64 {
    if x.abs() > 1.0 {
        return 0.0;
    }
    bessel_i0(KAISER_BETA * (1.0 - x * x).sqrt()) / bessel_i0(KAISER_BETA)
}

/// Modified Bessel function of the first kind, order 0 (power series).
fn bessel_i0(x: f64) -> f64 {
    let mut sum = 1.0;
    let mut term = 1.0;
    let half = x / 2.0;
    for k in 1..50 {
        term *= (half / k as f64) * (half / k as f64);
        sum += term;
        if term < sum * 1e-16 {
            break;
        }
    }
    sum
}

/// Keeps a queue between a device and the audio thread (a frame per tick) at a steady level by
/// nudging the resampler's ratio. Fed once per exchange (each frame read or written) with the level
/// left in the queue, in pipeline samples; returns the correction for [`Resampler`].
///
/// The target is what the device may take or bring before the next exchange, plus
/// [`MARGIN`], and no more, since every queued sample is latency. For a microphone, the level
/// after a read must cover one device chunk (its callback period: the chunk that completes the
/// next frame may land just after the next read). For a speaker, the level after a write must
/// also cover the frame the device plays before the next write.
#[derive(Debug, Clone)]
pub struct DriftControl {
    smoothed: Option<f64>,
    integral: f64,
    largest_chunk: usize,
    /// Samples the device moves between two exchanges that the level after one must cover.
    between: usize,
}

/// Queue level kept above one device chunk (5 ms at 48 kHz).
pub const MARGIN: usize = 240;
/// Smoothing of the level per exchange (a time constant of about 1 s).
const SMOOTHING: f64 = 1.0 / FRAMES_PER_SECOND as f64;
/// Proportional gain: correction per sample of level error (1000 ppm at 1,000 samples off).
const KP: f64 = 1e-6;
/// Integral gain per exchange (1e-7 per second): removes the steady-state error a constant
/// drift leaves.
const KI: f64 = 1e-7 / FRAMES_PER_SECOND as f64;

impl DriftControl {
    /// For a microphone, updated after each frame read.
    pub fn input() -> Self {
        DriftControl { smoothed: None, integral: 0.0, largest_chunk: 0, between: 0 }
    }

    /// For a speaker, updated after each frame written.
    pub fn output() -> Self {
        DriftControl { between: FRAME_SAMPLES, ..DriftControl::input() }
    }

    /// The device moved `samples` (pipeline samples) in one callback.
    pub fn chunk(&mut self, samples: usize) {
        self.largest_chunk = self.largest_chunk.max(samples);
    }

    /// The level the controller steers to.
    pub fn target(&self) -> usize {
        self.largest_chunk + self.between + MARGIN
    }

    /// One exchange left `level` samples queued; returns the correction to apply (positive
    /// when the queue is above its target: consume faster).
    pub fn update(&mut self, level: usize) -> f64 {
        let level = level as f64;
        let smoothed = match self.smoothed {
            None => level,
            Some(s) => s + SMOOTHING * (level - s),
        };
        self.smoothed = Some(smoothed);
        let error = smoothed - self.target() as f64;
        self.integral = (self.integral + KI * error).clamp(-MAX_CORRECTION, MAX_CORRECTION);
        (KP * error + self.integral).clamp(-MAX_CORRECTION, MAX_CORRECTION)
    }

    /// The smoothed level.
    #[cfg(test)]
    pub fn level(&self) -> f64 {
        self.smoothed.unwrap_or(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(rate: u32, freq: f64, n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| (2.0 * std::f64::consts::PI * freq * i as f64 / f64::from(rate)).sin() as f32 * 0.5)
            .collect()
    }

    /// Amplitude of `freq` in `x` (rate `rate`), by correlation with a sine and a cosine.
    fn amplitude(x: &[f32], rate: u32, freq: f64) -> f64 {
        let (mut s, mut c) = (0.0, 0.0);
        for (i, &v) in x.iter().enumerate() {
            let w = 2.0 * std::f64::consts::PI * freq * i as f64 / f64::from(rate);
            s += f64::from(v) * w.sin();
            c += f64::from(v) * w.cos();
        }
        2.0 * (s * s + c * c).sqrt() / x.len() as f64
    }

    fn rms(x: &[f32]) -> f64 {
        (x.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>() / x.len() as f64).sqrt()
    }

    #[test]
    fn a_tone_keeps_its_pitch_and_level_across_rates() {
        for (from, to) in [(44_100, 48_000), (48_000, 44_100), (48_000, 48_000), (16_000, 48_000)] {
            let mut r = Resampler::new(from, to);
            r.push(sine(from, 1000.0, from as usize));
            let mut out = Vec::new();
            r.drain_into(&mut out);
            // One second in gives one second out, less the filter's look-ahead.
            let expected = to as usize - (HALF as f64 / r.nominal_ratio()).ceil() as usize;
            assert!(out.len().abs_diff(expected) <= 2, "{from}->{to}: {} samples", out.len());
            // Output j is the input's instant j / to: the filter is centred, so it matches the
            // ideal tone at the output rate sample for sample, away from the edges.
            let ideal = sine(to, 1000.0, out.len());
            let (lo, hi) = (out.len() / 4, out.len() * 3 / 4);
            let tone = amplitude(&out[lo..hi], to, 1000.0);
            assert!((tone - 0.5).abs() < 0.005, "{from}->{to}: 1 kHz at {tone}");
            let error: Vec<f32> = out[lo..hi].iter().zip(&ideal[lo..hi]).map(|(a, b)| a - b).collect();
            let snr_db = 20.0 * (rms(&ideal[lo..hi]) / rms(&error).max(1e-12)).log10();
            assert!(snr_db > 60.0, "{from}->{to}: SNR {snr_db:.1} dB");
        }
    }

    #[test]
    fn a_constant_stays_constant_and_output_is_continuous_across_pushes() {
        let mut r = Resampler::new(44_100, 48_000);
        let mut out = Vec::new();
        for _ in 0..100 {
            r.push(std::iter::repeat_n(0.25f32, 441));
            r.drain_into(&mut out);
        }
        for (i, v) in out.iter().enumerate().skip(64) {
            assert!((v - 0.25).abs() < 1e-5, "sample {i} = {v}");
        }
    }

    #[test]
    fn produce_is_all_or_nothing() {
        let mut r = Resampler::new(48_000, 48_000);
        r.push(std::iter::repeat_n(1.0, 500));
        let mut frame = [0.0f32; 960];
        assert!(!r.produce(&mut frame));
        assert_eq!(r.available(), 500 - HALF);
        r.push(std::iter::repeat_n(1.0, 500));
        assert!(r.produce(&mut frame));
        assert_eq!(r.available(), 1000 - HALF - 960);
    }

    #[test]
    fn blocks_of_any_size_give_the_same_output() {
        let input = sine(44_100, 440.0, 10_000);
        let mut whole = Resampler::new(44_100, 48_000);
        whole.push(input.iter().copied());
        let mut a = Vec::new();
        whole.drain_into(&mut a);
        let mut pieces = Resampler::new(44_100, 48_000);
        let mut b = Vec::new();
        for chunk in input.chunks(137) {
            pieces.push(chunk.iter().copied());
            pieces.drain_into(&mut b);
        }
        assert_eq!(a.len(), b.len());
        // Equal but for rounding: where an output falls exactly on an input sample, the position
        // carried across pieces may land a hair below it and use the last table row instead of
        // the first (the same filter but for the window's last tap, ~1e-4 of it).
        if let Some((i, (x, y))) = a.iter().zip(&b).enumerate().find(|(_, (x, y))| (*x - *y).abs() >= 1e-4) {
            panic!("sample {i}: {x} whole, {y} in pieces");
        }
    }

    /// The audio thread's tick in ms.
    const TICK_MS: u64 = crate::FRAME_DURATION.as_millis() as u64;

    /// Ten simulated minutes: a 44.1 kHz microphone whose crystal runs `ppm` fast or slow hands over
    /// 10 ms chunks; the audio thread reads a frame per tick on the computer's clock. The queue
    /// must stay near its target (no creeping latency, no empty reads after warm-up).
    fn drifting_input(ppm: f64) -> (usize, f64, f64) {
        let device_rate = 44_100.0 * (1.0 + ppm * 1e-6);
        let mut resampler = Resampler::new(44_100, 48_000);
        let mut control = DriftControl::input();
        let mut frame = [0.0f32; FRAME_SAMPLES];
        let (mut device_clock, mut empty_reads, mut max_level) = (0.0f64, 0usize, 0.0f64);
        let mut produced_device = 0usize;
        // Time in 1 ms steps; the device delivers 441 samples each time its clock says 10 ms
        // passed; the thread reads once per tick.
        for ms in 0..600_000u64 {
            device_clock += device_rate / 1000.0;
            while device_clock - produced_device as f64 >= 441.0 {
                resampler.push(std::iter::repeat_n(0.0, 441));
                produced_device += 441;
                control.chunk((441.0 / resampler.nominal_ratio()).ceil() as usize);
            }
            if ms % TICK_MS == TICK_MS - 1 {
                if !resampler.produce(&mut frame) && ms > 1000 {
                    empty_reads += 1;
                }
                let correction = control.update(resampler.available());
                resampler.set_correction(correction);
                if ms > 60_000 {
                    max_level = max_level.max(resampler.available() as f64);
                }
            }
        }
        (empty_reads, max_level, control.level())
    }

    #[test]
    fn drift_of_a_few_hundred_ppm_neither_grows_the_queue_nor_empties_it() {
        for ppm in [-300.0, -100.0, 0.0, 100.0, 300.0] {
            let (empty, max_level, level) = drifting_input(ppm);
            assert_eq!(empty, 0, "{ppm} ppm: reads came up short");
            // Target: one 10 ms chunk (480) + margin (240) = 720 samples, 15 ms.
            // Without correction, 100 ppm alone would add 2,600 samples in these ten minutes.
            // Seen right after a read, the level swings by a chunk with the device's phase.
            assert!(max_level < 720.0 + 480.0 + 240.0, "{ppm} ppm: queue reached {max_level}");
            assert!((level - 720.0).abs() < 200.0, "{ppm} ppm: settled at {level}");
        }
    }

    /// The other direction, as `CpalOutput` runs it: the audio thread writes a frame per tick on
    /// the computer's clock through the resampler into a queue, and a 44.1 kHz speaker whose
    /// crystal is `ppm` off pulls 10 ms chunks from it.
    fn drifting_output(ppm: f64) -> (usize, f64) {
        let device_rate = 44_100.0 * (1.0 + ppm * 1e-6);
        let mut resampler = Resampler::new(48_000, 44_100);
        let mut control = DriftControl::output();
        let mut queue: VecDeque<f32> = VecDeque::new();
        let mut scratch = Vec::new();
        let (mut device_clock, mut consumed, mut underruns, mut max_level) = (0.0f64, 0usize, 0usize, 0.0f64);
        let per_device_sample = resampler.nominal_ratio();
        for ms in 0..600_000u64 {
            if ms % TICK_MS == 0 {
                resampler.push(std::iter::repeat_n(0.1, FRAME_SAMPLES));
                scratch.clear();
                resampler.drain_into(&mut scratch);
                queue.extend(scratch.iter().copied());
                let level = (queue.len() as f64 * per_device_sample) as usize;
                control.chunk((441.0 * per_device_sample).ceil() as usize);
                let correction = control.update(level);
                resampler.set_correction(correction);
                if ms > 60_000 {
                    max_level = max_level.max(level as f64);
                }
            }
            device_clock += device_rate / 1000.0;
            while device_clock - consumed as f64 >= 441.0 {
                if queue.len() < 441 && ms > 1000 {
                    underruns += 1;
                }
                let n = queue.len().min(441);
                queue.drain(..n);
                consumed += 441;
            }
        }
        (underruns, max_level)
    }

    #[test]
    fn a_drifting_speaker_is_fed_without_underruns_or_creeping_latency() {
        for ppm in [-300.0, -100.0, 0.0, 100.0, 300.0] {
            let (underruns, max_level) = drifting_output(ppm);
            assert_eq!(underruns, 0, "{ppm} ppm: the speaker ran dry");
            // Target: a 10 ms chunk (480) + the frame played before the next write + margin
            // (240), right after a write.
            let target = (480 + FRAME_SAMPLES + MARGIN) as f64;
            assert!(max_level < target + 480.0 + 240.0, "{ppm} ppm: queue reached {max_level}");
        }
    }

    #[test]
    fn corrections_are_bounded() {
        let mut control = DriftControl::input();
        for _ in 0..100_000 {
            let c = control.update(1_000_000);
            assert!(c <= MAX_CORRECTION);
        }
        for _ in 0..100_000 {
            let c = control.update(0);
            assert!(c >= -MAX_CORRECTION);
        }
    }
}
