//! A jitter buffer for one remote Opus stream: a plain state machine driven by explicit time.
//!
//! [`JitterBuffer::insert`] takes each RTP packet ([`ReceivedPacket`]: sequence number,
//! timestamp, marker, payload, arrival time); [`JitterBuffer::pop`] is called once per playout
//! tick (one frame) and says what to play: a packet, a concealment (FEC from the next packet
//! when it is here, PLC otherwise), silence (the sender is in DTX or stopped sending), or
//! nothing (not started). No clock is read inside: tests drive it with fake time.
//!
//! How playout time is chosen. Each packet's *transit* is its arrival time minus its RTP
//! timestamp (in µs); the smallest transit in a sliding window is the path's base delay and
//! the spread above it is the jitter. The target delay is a high percentile of that spread
//! plus a small margin, so almost every packet is in time, and at least the largest spread of
//! the last 320 ms of packets but one. It grows at once when the spread grows (a burst), and
//! shrinks by at most 25 ms per second of packets (slowly). The first packet of a talkspurt (the RTP
//! marker) is not a jitter sample: the sender's voice activity decides when it goes out, which
//! is later than its timestamp on purpose when the talkspurt's pre-roll goes out with the frame
//! that opened the gate. The playout *offset* of a slot is `now - timestamp - base`:
//!
//! - a talkspurt (the first packet, or the first after a silence) starts at the first tick at
//!   which its first packet is here and its offset has reached the target; so does the stream;
//! - during speech, below the target the buffer *holds*: the slot does not advance (PLC
//!   stretching when a packet is missing but may still come, or the target has just grown);
//! - more than 30 ms above it, it *skips*: by dropping one packet in 25 at most during speech
//!   (in silence, the next talkspurt starts on time anyway).
//!
//! Slots are identified by the (unwrapped) RTP timestamp, 480 per 10 ms frame, so DTX pauses
//! (timestamp jumps without sequence gaps) are told apart from losses (sequence gaps).
//! Sequence numbers and timestamps are unwrapped around the highest seen, so wraparound is
//! invisible, and a jump of more than a minute is taken as a new stream.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use crate::{FRAME_DURATION, FRAME_SAMPLES, FRAMES_PER_SECOND, SAMPLE_RATE, frames_in};

const FRAME_TS: i64 = FRAME_SAMPLES as i64;
const FRAME_US: i64 = FRAME_DURATION.as_micros() as i64;
/// Transit samples kept for the jitter estimate (5 s of speech).
const WINDOW: usize = 5 * FRAMES_PER_SECOND;
/// Percentile of the transit spread the target covers.
const PERCENTILE: f64 = 0.97;
/// The percentile is recomputed every this many packets: over 5 s of packets it moves slowly,
/// and a burst moves the target at once through the recent peak anyway.
const PERCENTILE_EVERY: u32 = 4;
/// The most recent packets (320 ms), whose second-largest spread the target covers at once: a
/// delay spike on a FIFO path delays a run of packets, so this reacts within the spike, while
/// one stray late packet does not move the target.
const RECENT_PEAK: usize = frames_in(Duration::from_millis(320)) as usize;
/// Added to the percentile: packets near it should not miss their tick by a hair. Small: the
/// target is a high percentile and at least the recent peak already, and every millisecond
/// here is a millisecond of delay on a clean path (a talkspurt's pre-roll comes a frame
/// late, 10 ms plus the encoding, so a target above that makes every talkspurt wait a tick).
const MARGIN_US: i64 = 2_000;
/// How fast the target may fall, per received packet (25 ms per second of speech).
const SHRINK_PER_PACKET_US: i64 = 25_000 / FRAMES_PER_SECOND as i64;
/// Above target + this, the playout delay is reduced.
const SKIP_THRESHOLD_US: i64 = 30_000;
/// At most one packet dropped to reduce delay per this much time during speech: one frame in
/// 25 (a 4 % speed-up, 20 ms per 500 ms with 20 ms frames as with 10 ms ones).
const SPEECH_SKIP_INTERVAL_US: i64 = 25 * FRAME_US;
/// A timestamp or sequence jump larger than this (in RTP units: 60 s) starts a new stream.
const RESTART_TS: i64 = 60 * SAMPLE_RATE as i64;
const RESTART_SEQ: i64 = 60 * FRAMES_PER_SECOND as i64;
/// Sequence numbers remembered for duplicate detection.
const RECENT_SEQS: usize = 128;

/// Settings of a [`JitterBuffer`].
#[derive(Debug, Clone, PartialEq)]
pub struct JitterConfig {
    /// The target delay never goes below this (above the path's base delay).
    pub min_delay: Duration,
    /// Nor above this.
    pub max_delay: Duration,
    /// Packets held at most; beyond, the oldest is dropped.
    pub max_packets: usize,
    /// Consecutive concealed frames before the buffer assumes the sender stopped and plays
    /// silence instead (PLC fades out by then anyway).
    pub max_concealed: u32,
}

impl Default for JitterConfig {
    fn default() -> Self {
        JitterConfig {
            min_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(500),
            // 1.28 s.
            max_packets: 128,
            // 100 ms.
            max_concealed: frames_in(Duration::from_millis(100)),
        }
    }
}

/// What to play in the current slot (one frame).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Playout {
    /// Decode this packet.
    Frame(Vec<u8>),
    /// The packet is missing: conceal it.
    Conceal(Conceal),
    /// The sender is silent (DTX, muted, or gone quiet): play silence or comfort noise.
    Silence,
    /// Not started yet: nothing has been received, or the first packet is still being
    /// held for the target delay.
    Nothing,
}

/// How to conceal a missing packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Conceal {
    /// The next packet is here: decode this slot from its in-band FEC. The packet stays in
    /// the buffer and is returned as a [`Playout::Frame`] on the next tick.
    Fec(Vec<u8>),
    /// Nothing to recover from: the decoder's packet loss concealment.
    Plc,
}

/// One RTP packet as it reached the receiver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceivedPacket<'a> {
    pub sequence: u16,
    pub timestamp: u32,
    /// The RTP marker bit: the first packet of a talkspurt (after frames that were not sent).
    pub marker: bool,
    pub payload: &'a [u8],
    /// When it arrived, on the receiver's clock (the one `now` is given in).
    pub arrival: Duration,
}

/// What [`JitterBuffer::insert`] did with a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    Queued,
    /// Already received (and still buffered or recently seen).
    Duplicate,
    /// Its slot has already been played or concealed.
    Late,
}

/// Counters and estimates for the connection-quality indicator.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JitterStats {
    /// Packets given to `insert` (duplicates and late ones included).
    pub received: u64,
    pub duplicates: u64,
    /// Arrived after their slot was played or concealed.
    pub late: u64,
    /// Sequence numbers skipped over in playout: never played (lost, or late).
    pub lost: u64,
    /// Packets played.
    pub played: u64,
    /// Slots concealed with FEC / with PLC (PLC includes stretching while holding).
    pub fec: u64,
    pub plc: u64,
    /// Packets dropped to reduce the delay or because the buffer was full.
    pub dropped: u64,
    /// RFC 3550 interarrival jitter, in ms.
    pub jitter_ms: f32,
    /// The delay the buffer aims for above the path's base delay, in ms.
    pub target_delay_ms: f32,
    /// The playout delay above the base delay at the last tick, in ms.
    pub current_delay_ms: f32,
    /// Packets in the buffer now.
    pub buffered: usize,
}

impl JitterStats {
    /// Fraction of expected packets that were never played (0..1).
    pub fn loss_fraction(&self) -> f32 {
        let expected = self.played + self.lost;
        if expected == 0 { 0.0 } else { self.lost as f32 / expected as f32 }
    }
}

#[derive(Debug)]
struct Entry {
    seq: i64,
    payload: Vec<u8>,
}

/// One remote stream's jitter buffer. See the module docs.
#[derive(Debug)]
pub struct JitterBuffer {
    config: JitterConfig,
    /// Buffered packets by unwrapped timestamp.
    packets: BTreeMap<i64, Entry>,
    highest_seq: Option<i64>,
    highest_ts: Option<i64>,
    recent_seqs: VecDeque<i64>,
    /// The slot (unwrapped timestamp) to play next; `None` before the first packet plays.
    next_ts: Option<i64>,
    last_played_seq: Option<i64>,
    concealed_run: u32,
    /// The last tick played silence: holds keep playing silence, not concealment.
    in_gap: bool,
    last_speech_skip_us: i64,
    transits: VecDeque<i64>,
    /// Reused for the percentile of `transits`.
    scratch: Vec<i64>,
    /// The percentile of `transits` when last computed, and packets measured since.
    percentile_transit_us: i64,
    since_percentile: u32,
    base_transit_us: i64,
    target_us: i64,
    last_transit_us: Option<i64>,
    jitter_us: f64,
    stats: JitterStats,
}

fn micros(t: Duration) -> i64 {
    i64::try_from(t.as_micros()).unwrap_or(i64::MAX)
}

/// RTP timestamp units (48 kHz) to microseconds.
fn ts_to_us(ts: i64) -> i64 {
    ts * 1_000_000 / i64::from(SAMPLE_RATE)
}

impl JitterBuffer {
    pub fn new(config: JitterConfig) -> Self {
        let target_us = micros(config.min_delay);
        JitterBuffer {
            config,
            packets: BTreeMap::new(),
            highest_seq: None,
            highest_ts: None,
            recent_seqs: VecDeque::with_capacity(RECENT_SEQS),
            next_ts: None,
            last_played_seq: None,
            concealed_run: 0,
            in_gap: false,
            last_speech_skip_us: i64::MIN / 2,
            transits: VecDeque::with_capacity(WINDOW),
            scratch: Vec::with_capacity(WINDOW),
            percentile_transit_us: 0,
            since_percentile: 0,
            base_transit_us: 0,
            target_us,
            last_transit_us: None,
            jitter_us: 0.0,
            stats: JitterStats::default(),
        }
    }

    /// Counters and estimates.
    pub fn stats(&self) -> JitterStats {
        let mut stats = self.stats.clone();
        stats.jitter_ms = (self.jitter_us / 1000.0) as f32;
        stats.target_delay_ms = self.target_us as f32 / 1000.0;
        stats.buffered = self.packets.len();
        stats
    }

    /// Nothing is being played: not started, or in a silence between talkspurts.
    pub fn in_silence(&self) -> bool {
        self.next_ts.is_none() || self.in_gap
    }

    /// Forgets the stream (timing, packets, position) but keeps the counters.
    pub fn reset(&mut self) {
        let stats = std::mem::take(&mut self.stats);
        *self = JitterBuffer::new(self.config.clone());
        self.stats = stats;
    }

    fn unwrap_seq(&self, seq: u16) -> i64 {
        match self.highest_seq {
            None => i64::from(seq),
            Some(h) => h + i64::from(seq.wrapping_sub(h as u16) as i16),
        }
    }

    fn unwrap_ts(&self, ts: u32) -> i64 {
        match self.highest_ts {
            None => i64::from(ts),
            Some(h) => h + i64::from(ts.wrapping_sub(h as u32) as i32),
        }
    }

    /// Takes one received packet. Its `arrival` is on the same clock as the `now` given to
    /// [`JitterBuffer::pop`].
    pub fn insert(&mut self, packet: &ReceivedPacket<'_>) -> Inserted {
        let ReceivedPacket { sequence: seq, timestamp: rtp_ts, marker, payload, arrival } = *packet;
        let mut ext_seq = self.unwrap_seq(seq);
        let mut ext_ts = self.unwrap_ts(rtp_ts);
        if let (Some(hs), Some(ht)) = (self.highest_seq, self.highest_ts)
            && ((ext_ts - ht).abs() > RESTART_TS || (ext_seq - hs).abs() > RESTART_SEQ)
        {
            // The sender restarted its stream (new SSRC state, or a long-gone peer is back).
            self.reset();
            ext_seq = i64::from(seq);
            ext_ts = i64::from(rtp_ts);
        }
        self.stats.received += 1;

        if self.recent_seqs.contains(&ext_seq) || self.packets.contains_key(&ext_ts) {
            self.stats.duplicates += 1;
            return Inserted::Duplicate;
        }
        if self.recent_seqs.len() == RECENT_SEQS {
            self.recent_seqs.pop_front();
        }
        self.recent_seqs.push_back(ext_seq);
        self.highest_seq = Some(self.highest_seq.map_or(ext_seq, |h| h.max(ext_seq)));
        self.highest_ts = Some(self.highest_ts.map_or(ext_ts, |h| h.max(ext_ts)));

        // Late packets are measured too: their lateness is exactly what the target must cover.
        // A talkspurt's first packet is not (see the module docs); when it is the first packet
        // at all, its transit stands in for the base delay until a packet is measured.
        if !marker {
            self.measure(ext_ts, micros(arrival));
        } else if self.transits.is_empty() {
            self.base_transit_us = micros(arrival) - ts_to_us(ext_ts);
        }

        if self.next_ts.is_some_and(|next| ext_ts < next) {
            self.stats.late += 1;
            return Inserted::Late;
        }
        self.packets.insert(ext_ts, Entry { seq: ext_seq, payload: payload.to_vec() });
        if self.packets.len() > self.config.max_packets {
            self.packets.pop_first();
            self.stats.dropped += 1;
        }
        Inserted::Queued
    }

    fn measure(&mut self, ext_ts: i64, arrival_us: i64) {
        let transit = arrival_us - ts_to_us(ext_ts);
        if let Some(last) = self.last_transit_us {
            // RFC 3550 §6.4.1: J += (|D| - J) / 16.
            let d = (transit - last).abs() as f64;
            self.jitter_us += (d - self.jitter_us) / 16.0;
        }
        self.last_transit_us = Some(transit);

        // The window's minimum, kept up to date without a scan per packet: one is needed only
        // when the minimum itself leaves the window.
        let evicted = if self.transits.len() == WINDOW { self.transits.pop_front() } else { None };
        let first = self.transits.is_empty();
        self.transits.push_back(transit);
        if first || transit <= self.base_transit_us {
            self.base_transit_us = transit;
        } else if evicted == Some(self.base_transit_us) {
            self.base_transit_us = self.transits.iter().copied().min().unwrap_or(transit);
        }

        // The second-largest spread among the most recent packets (0 with fewer than two).
        let base = self.base_transit_us;
        let (mut first, mut second) = (i64::MIN, i64::MIN);
        for spread in self.transits.iter().rev().take(RECENT_PEAK).map(|t| t - base) {
            if spread > first {
                second = first;
                first = spread;
            } else if spread > second {
                second = spread;
            }
        }
        let recent_peak = if second == i64::MIN { 0 } else { second };
        // The percentile by selection in a buffer kept across packets, every few packets: this
        // runs for the packets of every peer, and a fresh Vec plus a full sort per packet was
        // most of its cost.
        if self.since_percentile == 0 {
            self.scratch.clear();
            self.scratch.extend(self.transits.iter().copied());
            let index = ((self.scratch.len() - 1) as f64 * PERCENTILE).round() as usize;
            self.percentile_transit_us = *self.scratch.select_nth_unstable(index).1;
        }
        self.since_percentile = (self.since_percentile + 1) % PERCENTILE_EVERY;
        let percentile = self.percentile_transit_us - base;
        let wanted = (percentile.max(recent_peak) + MARGIN_US)
            .clamp(micros(self.config.min_delay), micros(self.config.max_delay));
        self.target_us = if wanted >= self.target_us {
            wanted
        } else {
            (self.target_us - SHRINK_PER_PACKET_US).max(wanted)
        };
    }

    /// Decides what plays in the slot at `now`. Call once per tick (one frame).
    pub fn pop(&mut self, now: Duration) -> Playout {
        let now_us = micros(now);
        let next = match self.next_ts {
            Some(next) => next,
            None => {
                // Priming: hold the first packet until it has waited the target delay.
                let Some((&first_ts, first)) = self.packets.first_key_value() else {
                    return Playout::Nothing;
                };
                let offset = now_us - ts_to_us(first_ts) - self.base_transit_us;
                if offset < self.target_us {
                    return Playout::Nothing;
                }
                self.last_played_seq = Some(first.seq - 1);
                self.next_ts = Some(first_ts);
                first_ts
            }
        };
        let offset = now_us - ts_to_us(next) - self.base_transit_us;
        self.stats.current_delay_ms = offset as f32 / 1000.0;
        let excess = offset - self.target_us;

        // The slot's packet is here.
        if self.packets.contains_key(&next) {
            if excess < -FRAME_US / 2 {
                // The target has just grown (a burst): stretch by one concealed frame now
                // rather than lose the packets that are about to come late.
                return self.hold_concealing();
            }
            let next_also_here = self.packets.contains_key(&(next + FRAME_TS));
            if excess > SKIP_THRESHOLD_US
                && next_also_here
                && now_us - self.last_speech_skip_us >= SPEECH_SKIP_INTERVAL_US
            {
                // Too much delay during speech: drop this packet, play the next.
                self.last_speech_skip_us = now_us;
                if let Some(dropped) = self.packets.remove(&next) {
                    self.last_played_seq = Some(dropped.seq);
                }
                self.stats.dropped += 1;
                return self.play(next + FRAME_TS);
            }
            return self.play(next);
        }

        // The slot's packet is missing. What comes after it?
        let following = self.packets.range(next..).next().map(|(&ts, e)| (ts, e.seq));
        let Some((following_ts, following_seq)) = following else {
            // Nothing buffered: a delay spike, a loss at the end of a talkspurt, or the
            // sender stopped. Conceal for a few frames, then assume silence.
            if self.in_gap || self.concealed_run >= self.config.max_concealed {
                self.in_gap = true;
                return Playout::Silence;
            }
            if excess < FRAME_US {
                return self.hold_concealing();
            }
            return self.advance_concealing(Conceal::Plc);
        };

        let contiguous = self.last_played_seq.is_some_and(|last| following_seq == last + 1);
        // A loss right at the end of a silence counts as part of the silence.
        if contiguous || self.in_gap || self.concealed_run >= self.config.max_concealed {
            // A silence gap (DTX or a pause in sending): the next talkspurt starts at the first
            // tick at which its first packet is due, whatever the slots in between, so timing
            // is set afresh at every talkspurt and costs nothing.
            self.concealed_run = 0;
            self.in_gap = true;
            let offset = now_us - ts_to_us(following_ts) - self.base_transit_us;
            if offset >= self.target_us {
                return self.play(following_ts);
            }
            return Playout::Silence;
        }

        // A loss (or a packet reordered behind later ones).
        if excess < 0 {
            return self.hold_concealing();
        }
        if following_ts == next + FRAME_TS {
            let payload = self.packets.get(&following_ts).map(|e| e.payload.clone()).unwrap_or_default();
            return self.advance_concealing(Conceal::Fec(payload));
        }
        self.advance_concealing(Conceal::Plc)
    }

    fn play(&mut self, ts: i64) -> Playout {
        let Some(entry) = self.packets.remove(&ts) else {
            return Playout::Nothing;
        };
        if let Some(last) = self.last_played_seq {
            self.stats.lost += u64::try_from(entry.seq - last - 1).unwrap_or(0);
        }
        self.last_played_seq = Some(entry.seq);
        self.next_ts = Some(ts + FRAME_TS);
        self.concealed_run = 0;
        self.in_gap = false;
        self.stats.played += 1;
        Playout::Frame(entry.payload)
    }

    /// Conceals without advancing: the slot is played later, adding one frame of delay.
    /// Inside a silence gap the stretch is silence.
    fn hold_concealing(&mut self) -> Playout {
        if self.in_gap {
            return Playout::Silence;
        }
        self.concealed_run += 1;
        self.stats.plc += 1;
        Playout::Conceal(Conceal::Plc)
    }

    fn advance_concealing(&mut self, how: Conceal) -> Playout {
        self.concealed_run += 1;
        if let Some(next) = self.next_ts {
            self.next_ts = Some(next + FRAME_TS);
        }
        match how {
            Conceal::Fec(_) => self.stats.fec += 1,
            Conceal::Plc => self.stats.plc += 1,
        }
        Playout::Conceal(how)
    }
}

#[cfg(test)]
#[path = "jitter_tests.rs"]
mod tests;
