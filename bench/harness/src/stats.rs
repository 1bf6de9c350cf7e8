//! Time and latency arithmetic: one monotonic clock for the whole harness (so a timestamp a
//! sender puts in a message means the same thing to every receiver) and percentiles.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

static EPOCH: OnceLock<Instant> = OnceLock::new();

/// Microseconds since the harness started, on the monotonic clock.
pub fn now_us() -> u64 {
    let epoch = *EPOCH.get_or_init(Instant::now);
    u64::try_from(epoch.elapsed().as_micros()).unwrap_or(u64::MAX)
}

/// Pins the clock's zero; call once at start so that later readings are small.
pub fn start_clock() {
    EPOCH.get_or_init(Instant::now);
}

/// A bag of latency samples in microseconds.
#[derive(Debug, Default, Clone)]
pub struct Latencies {
    samples_us: Vec<u32>,
    sorted: bool,
}

impl Latencies {
    pub fn record_us(&mut self, us: u64) {
        self.samples_us.push(u32::try_from(us).unwrap_or(u32::MAX));
        self.sorted = false;
    }

    pub fn record(&mut self, d: Duration) {
        self.record_us(u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
    }

    pub fn merge(&mut self, other: Latencies) {
        if self.samples_us.is_empty() {
            self.samples_us = other.samples_us;
        } else {
            self.samples_us.extend(other.samples_us);
        }
        self.sorted = false;
    }

    pub fn len(&self) -> usize {
        self.samples_us.len()
    }

    /// Nearest-rank percentile in milliseconds (`q` in 0..=100); `None` without samples.
    pub fn percentile_ms(&mut self, q: f64) -> Option<f64> {
        if self.samples_us.is_empty() {
            return None;
        }
        if !self.sorted {
            self.samples_us.sort_unstable();
            self.sorted = true;
        }
        let n = self.samples_us.len();
        let rank = ((q / 100.0) * n as f64).ceil() as usize;
        let index = rank.clamp(1, n) - 1;
        Some(f64::from(self.samples_us[index]) / 1000.0)
    }

    /// "p50 a / p99 b / max c ms (n samples)" for the human summary.
    pub fn describe(&mut self) -> String {
        match (self.percentile_ms(50.0), self.percentile_ms(99.0), self.percentile_ms(100.0)) {
            (Some(p50), Some(p99), Some(max)) => {
                format!("p50 {p50:.2} / p99 {p99:.2} / max {max:.2} ms ({} samples)", self.len())
            }
            _ => "no samples".to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let mut l = Latencies::default();
        for us in 1..=100 {
            l.record_us(us * 1000);
        }
        assert_eq!(l.percentile_ms(50.0), Some(50.0));
        assert_eq!(l.percentile_ms(99.0), Some(99.0));
        assert_eq!(l.percentile_ms(100.0), Some(100.0));
        assert_eq!(l.percentile_ms(0.0), Some(1.0));
    }

    #[test]
    fn empty_bag_has_no_percentile() {
        assert_eq!(Latencies::default().percentile_ms(99.0), None);
    }
}
