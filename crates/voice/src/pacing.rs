//! When the audio thread's tick should fall, relative to the packets it plays: a plain state
//! machine driven by explicit time, like the jitter buffer.
//!
//! A packet that arrives just after a tick waits a whole frame for the next one; one that
//! arrives just before is played at once. The sender's ticks and ours run on schedules of their
//! own, so that wait is anywhere in `0..FRAME_DURATION` and stays there for the whole call.
//! [`TickPhase`] watches how long each packet waited for the tick that followed its arrival and,
//! when the packets of a call arrive at one phase (one talker, a steady path), says how far to
//! move the tick so it comes [`AFTER_ARRIVAL`] after them.
//!
//! Moving the tick is something a real device path can do: the audio thread is not the
//! device's clock, it exchanges frames with queues the device drains and fills on its own, and
//! the drift control (`device::rate`) keeps the level of those queues steady after each
//! exchange. So a frame written earlier is also played earlier, by the same amount, once the
//! control has settled (at most 1 ms per second of it), and no sample is lost or repeated: the
//! frames stay back to back, only the instant they are handed over moves. Packets from several
//! peers at different phases, or a path jittering by more than a few milliseconds, give no one
//! phase to aim at, and the tick is left alone.

use std::collections::VecDeque;
use std::time::Duration;

use crate::FRAME_DURATION;

const FRAME_US: i64 = FRAME_DURATION.as_micros() as i64;
/// Where the tick should fall: this long after the last of the usual arrivals, so a packet that
/// comes a little late, or reaches the audio thread a little after the transport stamped it,
/// still makes it.
pub const AFTER_ARRIVAL: Duration = Duration::from_millis(2);
const AFTER_ARRIVAL_US: i64 = AFTER_ARRIVAL.as_micros() as i64;
/// Within this of where it should be, the tick is left alone.
const TOLERANCE_US: i64 = 1_500;
/// Arrivals spread over more than this (nine in ten of them, within a frame) have no single
/// phase to aim at.
const MAX_SPREAD_US: i64 = 4_000;
/// Waits kept: about half a second of one talker's packets.
const WINDOW: usize = 48;
/// Waits needed before the first move, and again after each move.
const ENOUGH: usize = 24;
/// At most one move per this long: a move changes how long every queue between the audio
/// thread and the devices holds, which the drift control then settles.
const MIN_INTERVAL: Duration = Duration::from_secs(2);
/// Arrivals remembered between two ticks (more come only when the thread stalls).
const PENDING: usize = 64;

/// How to move the audio thread's schedule, from the next tick on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TickShift {
    /// Tick this much sooner.
    Earlier(Duration),
    /// Tick this much later.
    Later(Duration),
}

/// Watches the phase of arrivals against the ticks. See the module docs.
#[derive(Debug, Clone, Default)]
pub struct TickPhase {
    /// Arrivals since the last tick.
    pending: Vec<Duration>,
    /// How long recent packets waited for the tick after their arrival (µs, `0..FRAME_US`).
    waits: VecDeque<i64>,
    /// Reused to sort `waits`.
    scratch: Vec<i64>,
    last_shift: Option<Duration>,
}

impl TickPhase {
    pub fn new() -> Self {
        TickPhase::default()
    }

    /// A packet arrived at `arrival` (the clock of `now` in [`TickPhase::ticked`]).
    pub fn arrived(&mut self, arrival: Duration) {
        if self.pending.len() < PENDING {
            self.pending.push(arrival);
        }
    }

    /// The audio thread ticked at `now`: the packets that arrived since the last tick waited
    /// for this one.
    pub fn ticked(&mut self, now: Duration) {
        for arrival in self.pending.drain(..) {
            let Some(wait) = now.checked_sub(arrival) else { continue };
            let wait = i64::try_from(wait.as_micros()).unwrap_or(i64::MAX);
            // A packet that waited longer than a frame arrived before a tick that ran late
            // (or was handed over late): it says nothing about the phase.
            if wait < FRAME_US {
                if self.waits.len() == WINDOW {
                    self.waits.pop_front();
                }
                self.waits.push_back(wait);
            }
        }
    }

    /// Where the tick should move, if anywhere; `now` is the current tick. Once a move is
    /// returned, the caller makes it and the phase is measured afresh.
    pub fn shift(&mut self, now: Duration) -> Option<TickShift> {
        if self.waits.len() < ENOUGH || self.last_shift.is_some_and(|t| now < t + MIN_INTERVAL) {
            return None;
        }
        // The waits lie on a circle (a frame long). The arrivals' cluster is the shortest arc
        // holding nine in ten of them (a straggler that a busy scheduler handed over late
        // does not count), and the shortest wait in it is the last usual arrival.
        self.scratch.clear();
        self.scratch.extend(self.waits.iter().copied());
        self.scratch.sort_unstable();
        let n = self.scratch.len();
        let m = (n * 9).div_ceil(10);
        let (mut spread, mut first) = (i64::MAX, 0);
        for i in 0..n {
            let j = i + m - 1;
            let end = if j < n { self.scratch[j] } else { self.scratch[j - n] + FRAME_US };
            if end - self.scratch[i] < spread {
                (spread, first) = (end - self.scratch[i], i);
            }
        }
        if spread > MAX_SPREAD_US {
            return None;
        }
        let last_arrival = self.scratch[first];
        // Positive: the tick comes too long after the last arrival, and should come sooner.
        let mut error = last_arrival - AFTER_ARRIVAL_US;
        if error > FRAME_US / 2 {
            // The cluster sits just before the tick, wrapped: a little later is the short way.
            error -= FRAME_US;
        }
        if error.abs() <= TOLERANCE_US {
            return None;
        }
        self.waits.clear();
        self.last_shift = Some(now);
        let by = Duration::from_micros(error.unsigned_abs());
        Some(if error > 0 { TickShift::Earlier(by) } else { TickShift::Later(by) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: f64) -> Duration {
        Duration::from_secs_f64(v / 1000.0)
    }

    /// Ticks every frame from `first_tick` for `frames` frames, with packet `k` (if any)
    /// arriving at `arrival(k)`; applies every shift as the audio thread does. Returns the
    /// shifts (with the tick they came at) and each packet's wait for the tick after it.
    fn run(
        phase: &mut TickPhase,
        first_tick: Duration,
        frames: u32,
        arrival: impl Fn(u32) -> Option<Duration>,
    ) -> (Vec<(u32, TickShift)>, Vec<Duration>) {
        let (mut shifts, mut waits) = (Vec::new(), Vec::new());
        let mut tick = first_tick;
        let mut pending: Vec<Duration> = (0..frames).filter_map(&arrival).collect();
        pending.sort();
        let mut pending = pending.into_iter().peekable();
        for k in 0..frames {
            while let Some(at) = pending.next_if(|&at| at <= tick) {
                phase.arrived(at);
                waits.push(tick - at);
            }
            phase.ticked(tick);
            let next = tick + FRAME_DURATION;
            tick = match phase.shift(tick) {
                Some(shift @ TickShift::Earlier(by)) => {
                    shifts.push((k, shift));
                    next - by
                }
                Some(shift @ TickShift::Later(by)) => {
                    shifts.push((k, shift));
                    next + by
                }
                None => next,
            };
        }
        (shifts, waits)
    }

    #[test]
    fn a_steady_stream_gets_the_tick_just_after_its_arrivals_once() {
        // Packets arrive 1 ms after the frame starts (0.4 ms of jitter); the ticks come 8 ms
        // after that: every packet waits about 8 ms. One move fixes it for good.
        let frame = FRAME_DURATION;
        let mut phase = TickPhase::new();
        let jitter = |k: u32| ms(f64::from(k % 5) * 0.1);
        let (shifts, waits) = run(&mut phase, ms(9.0), 300, |k| Some(frame * k + ms(1.0) + jitter(k)));
        assert_eq!(shifts.len(), 1, "{shifts:?}");
        let (at, shift) = shifts[0];
        assert!(at as usize + 1 >= ENOUGH, "moved after {} packets", at + 1);
        // The last arrivals are 7.6 ms before the tick: 5.6 ms sooner puts it 2 ms after them,
        // and so does 4.4 ms later (a frame on), the shorter move.
        let TickShift::Later(by) = shift else { panic!("{shift:?}") };
        assert!((by.as_secs_f64() * 1000.0 - 4.4).abs() < 0.05, "{by:?}");
        // After the move every packet waits about 2 ms.
        let after = &waits[at as usize + 2..];
        assert!(after.iter().all(|w| *w >= ms(1.9) && *w <= ms(2.5)), "{after:?}");
    }

    #[test]
    fn arrivals_straddling_the_tick_move_it_a_little_later() {
        // Packets arrive within ±0.5 ms of the tick: about half just miss it and wait a whole
        // frame. Moving the tick 2.5 ms later catches all of them.
        let frame = FRAME_DURATION;
        let mut phase = TickPhase::new();
        let arrival = |k: u32| Some(frame * k + ms(4.5) + ms(f64::from(k % 2)));
        let (shifts, waits) = run(&mut phase, ms(5.0), 200, arrival);
        assert_eq!(shifts.len(), 1, "{shifts:?}");
        let (at, shift) = shifts[0];
        let TickShift::Later(by) = shift else { panic!("{shift:?}") };
        assert!((by.as_secs_f64() * 1000.0 - 2.5).abs() < 0.05, "{by:?}");
        let after = &waits[at as usize + 2..];
        assert!(after.iter().all(|w| *w <= ms(3.0)), "{after:?}");
    }

    #[test]
    fn a_few_stragglers_do_not_hold_the_move_back() {
        // One packet in twenty is handed over 3-6 ms late (a busy scheduler): the tick still
        // moves to just after the others.
        let frame = FRAME_DURATION;
        let mut phase = TickPhase::new();
        let late = |k: u32| if k % 20 == 7 { ms(3.0 + f64::from(k % 4)) } else { Duration::ZERO };
        let (shifts, _) = run(&mut phase, ms(9.0), 300, |k| Some(frame * k + ms(1.0) + late(k)));
        assert_eq!(shifts.len(), 1, "{shifts:?}");
        let (_, TickShift::Later(by)) = shifts[0] else { panic!("{shifts:?}") };
        assert!((by.as_secs_f64() * 1000.0 - 4.0).abs() < 0.05, "{by:?}");
    }

    #[test]
    fn a_tick_already_just_after_the_arrivals_stays() {
        let frame = FRAME_DURATION;
        let mut phase = TickPhase::new();
        let (shifts, _) =
            run(&mut phase, ms(3.0), 500, |k| Some(frame * k + ms(1.0) + ms(f64::from(k % 3) * 0.3)));
        assert!(shifts.is_empty(), "{shifts:?}");
    }

    #[test]
    fn packets_at_many_phases_leave_the_tick_alone() {
        // Two peers, 5 ms apart, or one path jittering by ±4 ms: no single phase.
        let frame = FRAME_DURATION;
        let mut two = TickPhase::new();
        let (shifts, _) =
            run(&mut two, ms(9.0), 500, |k| Some(frame * (k / 2) + ms(if k % 2 == 0 { 1.0 } else { 6.0 })));
        assert!(shifts.is_empty(), "two peers: {shifts:?}");
        let mut rough = TickPhase::new();
        let jitter = |k: u32| ms(f64::from((k * 7) % 9));
        let (shifts, _) = run(&mut rough, ms(9.5), 500, |k| Some(frame * k + ms(0.2) + jitter(k)));
        assert!(shifts.is_empty(), "rough path: {shifts:?}");
    }

    #[test]
    fn the_tick_moves_at_most_once_per_interval() {
        // A path whose phase keeps drifting (the sender's clock is fast): moves are spaced.
        let frame = FRAME_DURATION;
        let mut phase = TickPhase::new();
        let drift = |k: u32| ms(f64::from(k) * 0.01 % 10.0);
        let (shifts, _) = run(&mut phase, ms(9.0), 3000, |k| Some(frame * k + drift(k)));
        assert!(shifts.len() >= 2, "{shifts:?}");
        let interval = (MIN_INTERVAL.as_millis() / FRAME_DURATION.as_millis()) as u32;
        assert!(shifts.windows(2).all(|w| w[1].0 - w[0].0 >= interval), "{shifts:?}");
    }

    #[test]
    fn nothing_arriving_moves_nothing() {
        let mut phase = TickPhase::new();
        let (shifts, _) = run(&mut phase, ms(4.0), 500, |_| None);
        assert!(shifts.is_empty());
    }
}
