//! Reconnect backoff as a plain state machine: exponential growth with full jitter, a cap, and a
//! reset once a connection has stayed up; time and randomness come in from outside.

use std::time::{Duration, Instant};

/// Tuning of the reconnect backoff.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffConfig {
    /// Ceiling of the first retry's delay; each failure doubles it.
    pub base: Duration,
    /// Largest ceiling.
    pub cap: Duration,
    /// A connection that stayed up this long counts as healthy: the next drop starts over.
    pub stable_after: Duration,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        BackoffConfig {
            base: Duration::from_millis(500),
            cap: Duration::from_secs(30),
            stable_after: Duration::from_secs(30),
        }
    }
}

/// Where the randomness of the jitter comes from, so tests can pin it.
pub trait Jitter: Send {
    /// A number in `[0, 1]`.
    fn fraction(&mut self) -> f64;
}

/// Jitter from a thread-independent, seeded-from-the-OS random generator.
pub struct RandomJitter(rand::rngs::StdRng);

impl Default for RandomJitter {
    fn default() -> Self {
        use rand::SeedableRng;
        RandomJitter(rand::rngs::StdRng::from_os_rng())
    }
}

impl Jitter for RandomJitter {
    fn fraction(&mut self) -> f64 {
        use rand::Rng;
        self.0.random_range(0.0..=1.0)
    }
}

impl<F: FnMut() -> f64 + Send> Jitter for F {
    fn fraction(&mut self) -> f64 {
        self()
    }
}

/// The backoff state: how many attempts failed in a row, and since when we are connected.
#[derive(Debug, Clone)]
pub struct Backoff {
    config: BackoffConfig,
    /// Failed attempts since the last healthy connection.
    failures: u32,
    connected_since: Option<Instant>,
}

impl Backoff {
    pub fn new(config: BackoffConfig) -> Self {
        Backoff { config, failures: 0, connected_since: None }
    }

    /// Attempts that failed in a row (0 right after a healthy connection).
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// The ceiling of the next delay: `base * 2^failures`, at most `cap`.
    pub fn ceiling(&self) -> Duration {
        let factor = 2u32.saturating_pow(self.failures.min(31));
        self.config.base.saturating_mul(factor).min(self.config.cap)
    }

    /// A connection came up at `now`.
    pub fn connected(&mut self, now: Instant) {
        self.connected_since = Some(now);
    }

    /// The connection (or an attempt) ended at `now`: returns how long to wait before the next
    /// attempt, uniformly drawn from `[0, ceiling]` ("full jitter", so that a whole group
    /// dropped by one server restart does not come back in one wave).
    pub fn next_delay(&mut self, now: Instant, jitter: &mut dyn Jitter) -> Duration {
        if let Some(since) = self.connected_since.take()
            && now.saturating_duration_since(since) >= self.config.stable_after
        {
            self.failures = 0;
        }
        let ceiling = self.ceiling();
        self.failures = self.failures.saturating_add(1);
        ceiling.mul_f64(jitter.fraction().clamp(0.0, 1.0))
    }

    /// Forget all failures (e.g. the user pressed "reconnect now").
    pub fn reset(&mut self) {
        self.failures = 0;
        self.connected_since = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn top() -> impl FnMut() -> f64 + Send {
        || 1.0
    }

    #[test]
    fn delays_double_from_the_base_up_to_the_cap() {
        let mut b = Backoff::new(BackoffConfig::default());
        let now = Instant::now();
        let delays: Vec<u64> = (0..9).map(|_| b.next_delay(now, &mut top()).as_millis() as u64).collect();
        assert_eq!(delays, [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
        assert_eq!(b.failures(), 9);
    }

    #[test]
    fn full_jitter_draws_between_zero_and_the_ceiling() {
        let mut b = Backoff::new(BackoffConfig::default());
        let now = Instant::now();
        assert_eq!(b.next_delay(now, &mut || 0.0), Duration::ZERO);
        assert_eq!(b.next_delay(now, &mut || 0.5), Duration::from_millis(500));
        // Out-of-range randomness is clamped rather than trusted.
        assert_eq!(b.next_delay(now, &mut || 7.0), Duration::from_millis(2000));
        let mut random = RandomJitter::default();
        for _ in 0..100 {
            assert!(b.next_delay(now, &mut random) <= Duration::from_secs(30));
        }
    }

    #[test]
    fn a_connection_that_stays_up_resets_the_backoff() {
        let config = BackoffConfig::default();
        let mut b = Backoff::new(config);
        let t0 = Instant::now();
        for _ in 0..4 {
            b.next_delay(t0, &mut top());
        }
        // Up for a moment only: the next delay keeps growing.
        b.connected(t0);
        assert_eq!(b.next_delay(t0 + Duration::from_secs(1), &mut top()), Duration::from_secs(8));
        // Up long enough: start over at the base.
        let t1 = t0 + Duration::from_secs(60);
        b.connected(t1);
        assert_eq!(b.next_delay(t1 + config.stable_after, &mut top()), config.base);
        assert_eq!(b.failures(), 1);
    }

    #[test]
    fn reset_forgets_failures() {
        let mut b = Backoff::new(BackoffConfig::default());
        let now = Instant::now();
        b.next_delay(now, &mut top());
        b.next_delay(now, &mut top());
        b.reset();
        assert_eq!(b.next_delay(now, &mut top()), Duration::from_millis(500));
    }
}
