//! Signal levels in dBFS: the per-frame measurement the VAD uses and the smoothed meter the
//! microphone test and the speaking indicators show.

/// The level reported for digital silence (and the floor of every measurement).
pub const FLOOR_DBFS: f32 = -100.0;

/// RMS level of `samples` in dBFS (a full-scale square wave is 0 dBFS, a full-scale sine
/// about -3), never below [`FLOOR_DBFS`].
pub fn rms_dbfs(samples: &[f32]) -> f32 {
    if samples.is_empty() {
        return FLOOR_DBFS;
    }
    let energy: f64 = samples.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
    let mean = energy / samples.len() as f64;
    power_to_dbfs(mean)
}

/// Peak absolute sample of `samples` (linear).
pub fn peak(samples: &[f32]) -> f32 {
    samples.iter().fold(0.0f32, |m, &s| m.max(s.abs()))
}

fn power_to_dbfs(mean_square: f64) -> f32 {
    if mean_square <= 1e-10 {
        return FLOOR_DBFS;
    }
    ((10.0 * mean_square.log10()) as f32).max(FLOOR_DBFS)
}

/// Converts decibels to a linear amplitude factor.
pub fn db_to_gain(db: f32) -> f32 {
    10f32.powf(db / 20.0)
}

/// A level meter for display: rises at once to a louder frame and falls at a fixed rate, so
/// the bar is readable instead of flickering with every syllable.
#[derive(Debug, Clone)]
pub struct LevelMeter {
    level_dbfs: f32,
    fall_db_per_frame: f32,
}

impl Default for LevelMeter {
    fn default() -> Self {
        // 24 dB per second.
        LevelMeter { level_dbfs: FLOOR_DBFS, fall_db_per_frame: 24.0 / crate::FRAMES_PER_SECOND as f32 }
    }
}

impl LevelMeter {
    /// Feeds one frame's level and returns the displayed level.
    pub fn update(&mut self, frame_dbfs: f32) -> f32 {
        self.level_dbfs = if frame_dbfs >= self.level_dbfs {
            frame_dbfs
        } else {
            (self.level_dbfs - self.fall_db_per_frame).max(frame_dbfs)
        };
        self.level_dbfs
    }

    /// The displayed level in dBFS.
    pub fn level_dbfs(&self) -> f32 {
        self.level_dbfs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_scale_sine_is_about_minus_three_dbfs() {
        let sine: Vec<f32> = (0..960).map(|i| (i as f32 * 2.0 * std::f32::consts::PI / 48.0).sin()).collect();
        assert!((rms_dbfs(&sine) + 3.01).abs() < 0.05, "{}", rms_dbfs(&sine));
        assert_eq!(rms_dbfs(&[0.0; 960]), FLOOR_DBFS);
        assert!((peak(&sine) - 1.0).abs() < 1e-3);
    }

    #[test]
    fn meter_rises_at_once_and_falls_slowly() {
        let mut meter = LevelMeter::default();
        assert_eq!(meter.update(-20.0), -20.0);
        let after = meter.update(-90.0);
        assert!(after < -20.0 && after > -21.0, "{after}");
        // 24 dB per second: 70 dB takes about 3 s.
        for _ in 0..4 * crate::FRAMES_PER_SECOND {
            meter.update(-90.0);
        }
        assert_eq!(meter.level_dbfs(), -90.0);
    }
}
