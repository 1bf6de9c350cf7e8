//! The id generator: snowflakes (see `hearth_protocol::ids`) that are unique and strictly
//! increasing within this process, even if the clock steps back.

use std::sync::atomic::{AtomicI64, Ordering};

use hearth_protocol::ids::compose;

use crate::db::now_ms;

#[derive(Debug, Default)]
pub struct IdGenerator {
    last: AtomicI64,
}

impl IdGenerator {
    /// Starts above `floor` (the largest id already stored), so a restart with a clock that
    /// went back never reuses an id.
    pub fn new(floor: i64) -> Self {
        IdGenerator { last: AtomicI64::new(floor) }
    }

    pub fn next(&self) -> i64 {
        let now = compose(now_ms(), 0);
        let mut last = self.last.load(Ordering::Relaxed);
        loop {
            let candidate = now.max(last + 1);
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
}
