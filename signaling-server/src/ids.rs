//! The id generator: snowflakes (see `hearth_protocol::ids`) that are unique and strictly
//! increasing within this process, even if the clock steps back, and unique across the server
//! processes of one PostgreSQL database: the 22 bits below the timestamp are a worker id
//! ([`WORKER_BITS`], leased in the database by `cluster`; 0 for a lone server) and a counter.

use std::sync::atomic::{AtomicI64, Ordering};

use hearth_protocol::ids::{SEQUENCE_BITS, compose};

use crate::db::now_ms;

/// Bits of the sequence that name the process (up to 64 processes on one database).
pub const WORKER_BITS: u32 = 6;
/// Bits of the sequence that count ids within one millisecond of one process.
const COUNTER_BITS: u32 = SEQUENCE_BITS - WORKER_BITS;
const COUNTER_MAX: i64 = (1 << COUNTER_BITS) - 1;
/// How many worker ids there are.
pub const WORKERS: i64 = 1 << WORKER_BITS;

#[derive(Debug, Default)]
pub struct IdGenerator {
    /// The last id handed out (its worker bits are always ours).
    last: AtomicI64,
    worker: i64,
}

impl IdGenerator {
    /// A lone server's generator (worker 0), starting above `floor` (the largest id already
    /// stored), so a restart with a clock that went back never reuses an id.
    pub fn new(floor: i64) -> Self {
        Self::for_worker(floor, 0)
    }

    /// The generator of worker `worker` (taken modulo [`WORKERS`]), starting above `floor`.
    pub fn for_worker(floor: i64, worker: i64) -> Self {
        let worker = worker.rem_euclid(WORKERS);
        // The last possible id of `floor`'s millisecond: the next one is in a later one, so
        // above `floor` whichever worker made it.
        let last = (floor.max(0) >> SEQUENCE_BITS << SEQUENCE_BITS) | (worker << COUNTER_BITS) | COUNTER_MAX;
        IdGenerator { last: AtomicI64::new(last), worker }
    }

    pub fn next(&self) -> i64 {
        let now = compose(now_ms(), 0) >> SEQUENCE_BITS;
        let mut last = self.last.load(Ordering::Relaxed);
        loop {
            let (last_ms, counter) = (last >> SEQUENCE_BITS, last & COUNTER_MAX);
            let (ms, n) = if now > last_ms {
                (now, 0)
            } else if counter < COUNTER_MAX {
                (last_ms, counter + 1)
            } else {
                (last_ms + 1, 0)
            };
            let candidate = (ms << SEQUENCE_BITS) | (self.worker << COUNTER_BITS) | n;
            match self.last.compare_exchange_weak(last, candidate, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return candidate,
                Err(seen) => last = seen,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_strictly_increase_even_below_the_floor_of_the_clock() {
        let far_future = compose(now_ms() + 3_600_000, 0);
        let ids = IdGenerator::new(far_future);
        let a = ids.next();
        let b = ids.next();
        assert!(a > far_future && b > a);
    }

    #[test]
    fn concurrent_ids_are_unique() {
        let ids = std::sync::Arc::new(IdGenerator::new(0));
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let ids = ids.clone();
                std::thread::spawn(move || (0..10_000).map(|_| ids.next()).collect::<Vec<_>>())
            })
            .collect();
        let mut all: Vec<i64> = handles.into_iter().flat_map(|h| h.join().unwrap()).collect();
        let n = all.len();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), n);
    }

    #[test]
    fn two_workers_never_make_the_same_id_and_each_stays_increasing() {
        let a = IdGenerator::for_worker(0, 1);
        let b = IdGenerator::for_worker(0, 2);
        let xs: Vec<i64> = (0..100_000).map(|_| a.next()).collect();
        let ys: Vec<i64> = (0..100_000).map(|_| b.next()).collect();
        assert!(xs.windows(2).all(|w| w[0] < w[1]) && ys.windows(2).all(|w| w[0] < w[1]));
        let mine: std::collections::HashSet<i64> = xs.iter().copied().collect();
        assert!(ys.iter().all(|y| !mine.contains(y)));
        assert!(xs.iter().all(|x| (x >> COUNTER_BITS) & (WORKERS - 1) == 1));
    }
}
