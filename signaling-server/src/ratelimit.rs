//! Rate limiting as a plain state machine: a token bucket that is given the time, so tests run
//! with fake time; and a keyed set of buckets (per account, per address, per user).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A bucket of `burst` tokens refilled at `per_sec`; each action takes one.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    tokens: f64,
    burst: f64,
    per_sec: f64,
    updated: Instant,
}

impl TokenBucket {
    pub fn new(burst: u32, per_sec: f64, now: Instant) -> Self {
        TokenBucket { tokens: f64::from(burst), burst: f64::from(burst), per_sec, updated: now }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.per_sec).min(self.burst);
        self.updated = now;
    }

    /// Takes a token, or says how long until one is there.
    pub fn take(&mut self, now: Instant) -> Result<(), Duration> {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / self.per_sec))
        }
    }

    /// True when the bucket is full again, so a keyed limiter can forget it.
    fn is_full(&mut self, now: Instant) -> bool {
        self.refill(now);
        self.tokens >= self.burst
    }
}

/// One bucket per key. Full buckets are forgotten now and then so the map stays small.
#[derive(Debug)]
pub struct KeyedLimiter<K> {
    burst: u32,
    per_sec: f64,
    // A std mutex: held only for a few arithmetic operations, never across an await.
    buckets: Mutex<HashMap<K, TokenBucket>>,
}

impl<K: Hash + Eq + Clone> KeyedLimiter<K> {
    pub fn new(burst: u32, per_sec: f64) -> Self {
        KeyedLimiter { burst, per_sec, buckets: Mutex::new(HashMap::new()) }
    }

    /// `burst` actions per minute, refilled evenly.
    pub fn per_minute(n: u32) -> Self {
        Self::new(n, f64::from(n) / 60.0)
    }

    pub fn check(&self, key: &K, now: Instant) -> Result<(), Duration> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() > 10_000 {
            buckets.retain(|_, b| !b.is_full(now));
        }
        buckets
            .entry(key.clone())
            .or_insert_with(|| TokenBucket::new(self.burst, self.per_sec, now))
            .take(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_waits_for_refill() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(3, 1.0, t0);
        assert!(b.take(t0).is_ok());
        assert!(b.take(t0).is_ok());
        assert!(b.take(t0).is_ok());
        let wait = b.take(t0).unwrap_err();
        assert!(wait > Duration::from_millis(900) && wait <= Duration::from_secs(1));
        assert!(b.take(t0 + Duration::from_millis(500)).is_err());
        assert!(b.take(t0 + Duration::from_millis(1001)).is_ok());
    }

    #[test]
    fn refill_never_exceeds_the_burst() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(2, 10.0, t0);
        let later = t0 + Duration::from_secs(60);
        assert!(b.take(later).is_ok());
        assert!(b.take(later).is_ok());
        assert!(b.take(later).is_err());
    }

    #[test]
    fn keys_have_separate_buckets() {
        let t0 = Instant::now();
        let l = KeyedLimiter::per_minute(1);
        assert!(l.check(&"alice", t0).is_ok());
        assert!(l.check(&"alice", t0).is_err());
        assert!(l.check(&"bob", t0).is_ok());
        assert!(l.check(&"alice", t0 + Duration::from_secs(61)).is_ok());
    }
}
