//! Jitter buffer behaviour with fake time: a sender that emits one packet per frame and a
//! receiver that ticks once per frame, with delays, losses and reordering chosen per test.
//! Times are written in frames (`FRAME`, 10 ms) wherever the behaviour scales with them.

use std::collections::BTreeMap;

use super::*;

const MS: Duration = Duration::from_millis(1);

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

/// Packet `k`'s payload names it, so the tests can check what plays.
fn payload(k: u32) -> Vec<u8> {
    let mut p = k.to_be_bytes().to_vec();
    p.extend_from_slice(&[0xAA; 8]);
    p
}

fn which(p: &[u8]) -> u32 {
    u32::from_be_bytes([p[0], p[1], p[2], p[3]])
}

/// A packet of the simulated stream: sequence, timestamp, marker, payload index, arrival time.
#[derive(Clone)]
struct Sent {
    seq: u16,
    ts: u32,
    marker: bool,
    k: u32,
    arrival: Duration,
}

impl Sent {
    fn insert_into(&self, jb: &mut JitterBuffer) -> Inserted {
        let payload = payload(self.k);
        jb.insert(&ReceivedPacket {
            sequence: self.seq,
            timestamp: self.ts,
            marker: self.marker,
            payload: &payload,
            arrival: self.arrival,
        })
    }
}

/// `n` packets with sequence numbers from `seq0`, timestamps from `ts0`, sent once per frame
/// from t = 0, each arriving `delay(k)` after it was sent.
fn stream(n: u32, seq0: u16, ts0: u32, delay: impl Fn(u32) -> Duration) -> Vec<Sent> {
    (0..n)
        .map(|k| Sent {
            seq: seq0.wrapping_add(k as u16),
            ts: ts0.wrapping_add(k * FRAME_TS as u32),
            marker: false,
            k,
            arrival: FRAME * k + delay(k),
        })
        .collect()
}

/// Delivers `packets` in arrival order while ticking once per frame (phase 7 ms) until
/// `until`; returns every tick's playout.
fn run(jb: &mut JitterBuffer, packets: Vec<Sent>, until: Duration) -> Vec<Playout> {
    run_at(jb, packets, ms(7), until).into_iter().map(|(_, p)| p).collect()
}

/// Like [`run`], with the receiver's ticks at `phase` after the sender's; returns every tick's
/// instant and playout.
fn run_at(
    jb: &mut JitterBuffer,
    mut packets: Vec<Sent>,
    phase: Duration,
    until: Duration,
) -> Vec<(Duration, Playout)> {
    packets.sort_by_key(|p| p.arrival);
    let mut pending = packets.into_iter().peekable();
    let mut out = Vec::new();
    let mut now = phase;
    while now <= until {
        while let Some(p) = pending.next_if(|p| p.arrival <= now) {
            p.insert_into(jb);
        }
        out.push((now, jb.pop(now)));
        now += FRAME;
    }
    out
}

const FRAME: Duration = crate::FRAME_DURATION;

/// `count` talkspurts of `length` packets, `pause` frames apart, as a voice-activity sender
/// makes them: sequence numbers run on across the pauses, timestamps jump, and each
/// talkspurt's first packet carries the marker. Packets arrive `delay(k)` after their frame
/// (`k` counts frames from t = 0); with `onset_late`, each talkspurt's first packet is sent a
/// frame late, with the second (the pre-roll of a voice-activity gate).
fn talkspurts(
    count: u32,
    length: u32,
    pause: u32,
    onset_late: bool,
    delay: impl Fn(u32) -> Duration,
) -> Vec<Sent> {
    let mut packets = Vec::new();
    for t in 0..count {
        for i in 0..length {
            let k = t * (length + pause) + i;
            let sent = FRAME * if onset_late && i == 0 { k + 1 } else { k };
            packets.push(Sent {
                seq: packets.len() as u16,
                ts: k * FRAME_TS as u32,
                marker: i == 0,
                k,
                arrival: sent + delay(k),
            });
        }
    }
    packets
}

/// When each packet (by `k`) was played.
fn play_times(out: &[(Duration, Playout)]) -> BTreeMap<u32, Duration> {
    out.iter()
        .filter_map(|(t, p)| match p {
            Playout::Frame(p) => Some((which(p), *t)),
            _ => None,
        })
        .collect()
}

fn played(out: &[Playout]) -> Vec<u32> {
    out.iter()
        .filter_map(|p| match p {
            Playout::Frame(p) => Some(which(p)),
            _ => None,
        })
        .collect()
}

fn count(out: &[Playout], f: impl Fn(&Playout) -> bool) -> usize {
    out.iter().filter(|p| f(p)).count()
}

fn is_conceal(p: &Playout) -> bool {
    matches!(p, Playout::Conceal(_))
}

#[test]
fn a_steady_stream_plays_every_packet_in_order_without_concealment() {
    let mut jb = JitterBuffer::new(JitterConfig::default());
    let out = run(&mut jb, stream(100, 0, 0, |_| ms(30)), ms(2100));
    assert_eq!(played(&out), (0..100).collect::<Vec<_>>());
    // It waited before starting, and concealed nothing while the stream ran.
    assert_eq!(out[0], Playout::Nothing);
    let first = out.iter().position(|p| matches!(p, Playout::Frame(_))).unwrap();
    assert_eq!(count(&out[first..first + 100], is_conceal), 0);
    let stats = jb.stats();
    assert_eq!((stats.lost, stats.late, stats.played), (0, 0, 100));
    assert!(stats.jitter_ms < 0.1, "{stats:?}");
}

#[test]
fn nothing_plays_before_anything_arrives() {
    let mut jb = JitterBuffer::new(JitterConfig::default());
    assert_eq!(jb.pop(ms(0)), Playout::Nothing);
    assert_eq!(jb.pop(ms(1000)), Playout::Nothing);
}

#[test]
fn reordered_packets_play_in_order() {
    let mut jb = JitterBuffer::new(JitterConfig::default());
    // Every odd packet overtakes the even one before it.
    let out = run(&mut jb, stream(200, 0, 0, |k| if k % 2 == 0 { ms(45) } else { ms(22) }), ms(4200));
    let got = played(&out);
    assert_eq!(got, (0..200).collect::<Vec<_>>());
    assert_eq!(jb.stats().lost, 0);
}

#[test]
fn duplicates_are_played_once() {
    let mut jb = JitterBuffer::new(JitterConfig::default());
    let mut packets = stream(50, 0, 0, |_| ms(30));
    let again: Vec<Sent> = packets
        .iter()
        .cloned()
        .map(|mut p| {
            p.arrival += ms(3);
            p
        })
        .collect();
    packets.extend(again);
    let out = run(&mut jb, packets, ms(1200));
    assert_eq!(played(&out), (0..50).collect::<Vec<_>>());
    assert_eq!(jb.stats().duplicates, 50);
}

#[test]
fn a_lost_packet_is_rebuilt_from_the_fec_in_the_next_one() {
    let mut jb = JitterBuffer::new(JitterConfig::default());
    let packets: Vec<Sent> =
        stream(60, 0, 0, |_| ms(30)).into_iter().filter(|p| p.k != 20 && p.k != 40).collect();
    let out = run(&mut jb, packets, ms(1400));
    // Playing 17 ms after arrival (the target, 10 ms, rounded up to a tick), the packet after
    // a lost one is always here when the lost one's slot is due: it is rebuilt at once from
    // that packet's FEC, with no stretching.
    for lost in [20, 40] {
        let at = out.iter().position(|p| *p == Playout::Frame(payload(lost - 1))).unwrap();
        assert_eq!(
            &out[at + 1..at + 3],
            &[Playout::Conceal(Conceal::Fec(payload(lost + 1))), Playout::Frame(payload(lost + 1))]
        );
    }
    let stats = jb.stats();
    assert_eq!((stats.lost, stats.fec, stats.played), (2, 2, 58));
    // No plain concealment before the stream ended.
    let end = out.iter().position(|p| *p == Playout::Frame(payload(59))).unwrap();
    assert_eq!(count(&out[..end], |p| *p == Playout::Conceal(Conceal::Plc)), 0);
}

#[test]
fn a_loss_whose_successor_is_not_here_yet_is_stretched_then_rebuilt() {
    let mut jb = JitterBuffer::new(JitterConfig::default());
    // Packet 21 comes 15 ms late this once, after slot 20 (lost) is due: the buffer stretches
    // by one concealed frame, then rebuilds slot 20 from packet 21's FEC.
    let packets: Vec<Sent> = stream(60, 0, 0, |k| if k == 21 { ms(45) } else { ms(30) })
        .into_iter()
        .filter(|p| p.k != 20)
        .collect();
    let out = run(&mut jb, packets, ms(1400));
    let at = out.iter().position(|p| matches!(p, Playout::Conceal(_))).unwrap();
    assert_eq!(out[at - 1], Playout::Frame(payload(19)));
    assert_eq!(
        &out[at..at + 3],
        &[
            Playout::Conceal(Conceal::Plc),
            Playout::Conceal(Conceal::Fec(payload(21))),
            Playout::Frame(payload(21))
        ]
    );
    let stats = jb.stats();
    assert_eq!((stats.lost, stats.fec, stats.played), (1, 1, 59));
    // The stretch was the only plain concealment before the stream ended.
    let end = out.iter().position(|p| *p == Playout::Frame(payload(59))).unwrap();
    assert_eq!(count(&out[..end], |p| *p == Playout::Conceal(Conceal::Plc)), 1);
}

#[test]
fn a_burst_loss_uses_plc_then_fec_for_the_last_missing_frame() {
    let mut jb = JitterBuffer::new(JitterConfig::default());
    let packets: Vec<Sent> =
        stream(40, 0, 0, |_| ms(30)).into_iter().filter(|p| !(20..23).contains(&p.k)).collect();
    let out = run(&mut jb, packets, ms(900));
    let at = out.iter().position(|p| matches!(p, Playout::Conceal(_))).unwrap();
    assert_eq!(
        &out[at..at + 5],
        &[
            // One frame of stretching while nothing is buffered, then slots 20, 21, 22.
            Playout::Conceal(Conceal::Plc),
            Playout::Conceal(Conceal::Plc),
            Playout::Conceal(Conceal::Plc),
            Playout::Conceal(Conceal::Fec(payload(23))),
            Playout::Frame(payload(23)),
        ]
    );
    assert_eq!(jb.stats().lost, 3);
    assert_eq!(played(&out).len(), 37);
}

#[test]
fn a_packet_arriving_after_its_slot_is_late_and_dropped() {
    let mut jb = JitterBuffer::new(JitterConfig::default());
    // Packet 20 is 300 ms late: far beyond what the buffer waits for on a calm path.
    let out = run(&mut jb, stream(60, 0, 0, |k| if k == 20 { ms(330) } else { ms(30) }), ms(1300));
    let got = played(&out);
    assert!(!got.contains(&20));
    assert_eq!(got.len(), 59);
    let stats = jb.stats();
    assert_eq!(stats.late, 1);
    assert_eq!(stats.lost, 1);
}

#[test]
fn sequence_and_timestamp_wraparound_is_invisible() {
    let mut jb = JitterBuffer::new(JitterConfig::default());
    let out = run(&mut jb, stream(100, 65_500, u32::MAX - FRAME_TS as u32 * 40, |_| ms(30)), ms(2100));
    assert_eq!(played(&out), (0..100).collect::<Vec<_>>());
    assert_eq!(jb.stats().lost, 0);
}

#[test]
fn a_dtx_pause_plays_silence_not_concealment() {
    let mut jb = JitterBuffer::new(JitterConfig::default());
    // 20 packets, 1 s of silence (no packets, timestamps jump by a second of frames, sequence
    // numbers continue), 20 more packets.
    let pause = FRAMES_PER_SECOND as u32;
    let packets: Vec<Sent> = stream(40 + pause, 0, 0, |_| ms(30))
        .into_iter()
        .filter(|p| p.k < 20 || p.k >= 20 + pause)
        .enumerate()
        .map(|(i, mut p)| {
            p.seq = i as u16;
            p
        })
        .collect();
    let out = run(&mut jb, packets, ms(2000));
    let got = played(&out);
    assert_eq!(got, (0..20).chain(20 + pause..40 + pause).collect::<Vec<_>>());
    assert_eq!(jb.stats().lost, 0, "{:?}", jb.stats());
    // The end of the first talkspurt looks like a loss for a moment (nothing says the sender
    // went quiet), so a few frames are concealed (100 ms at most); the rest is silence.
    let first_end = out.iter().position(|p| *p == Playout::Frame(payload(19))).unwrap();
    let second = out.iter().position(|p| *p == Playout::Frame(payload(20 + pause))).unwrap();
    let gap = &out[first_end + 1..second];
    let max_concealed = JitterConfig::default().max_concealed as usize;
    assert!(count(gap, is_conceal) <= max_concealed, "{gap:?}");
    assert!(count(gap, |p| *p == Playout::Silence) >= pause as usize - max_concealed - 2, "{gap:?}");
    // The second talkspurt is played back to back.
    assert_eq!(count(&out[second..second + 20], |p| matches!(p, Playout::Frame(_))), 20);
}

/// A deterministic pseudo-random sequence (SplitMix64) in [0, 1).
fn noise(k: u32, salt: u64) -> f64 {
    let mut z = u64::from(k).wrapping_add(salt).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

#[test]
fn the_target_delay_grows_fast_on_jitter_and_shrinks_slowly_after() {
    let mut jb = JitterBuffer::new(JitterConfig::default());
    // 0-10 s calm (±2 ms), 10-20 s rough (up to 120 ms of extra delay), 20-40 s calm again.
    let second = FRAMES_PER_SECOND as u32;
    let rough = 10 * second..20 * second;
    let delay = |k: u32| {
        let spread = if rough.contains(&k) { 120.0 } else { 2.0 };
        MS.mul_f64(30.0 + spread * noise(k, 1))
    };
    let mut pending = stream(40 * second, 0, 0, delay);
    pending.sort_by_key(|p| p.arrival);
    let mut pending = pending.into_iter().peekable();
    let mut now = ms(7);
    let mut targets = Vec::new();
    let mut played_rough = 0;
    while now <= ms(40_000) {
        while let Some(p) = pending.next_if(|p| p.arrival <= now) {
            p.insert_into(&mut jb);
        }
        if let Playout::Frame(p) = jb.pop(now)
            && rough.contains(&which(&p))
        {
            played_rough += 1;
        }
        targets.push(jb.stats().target_delay_ms);
        now += FRAME;
    }
    let at = |s: f64| targets[(s * f64::from(second)) as usize];
    assert!(at(9.9) < 15.0, "calm target {}", at(9.9));
    // Within half a second of the rough patch the target covers most of it.
    assert!(at(10.5) > 80.0, "rough target after 0.5 s: {}", at(10.5));
    // Still high shortly after it ends (slow shrink), back down well after.
    assert!(at(20.5) > 60.0, "target 0.5 s after: {}", at(20.5));
    assert!(at(39.0) < 20.0, "target long after: {}", at(39.0));
    // The playout delay followed it down (by dropping packets: this stream has no pauses).
    assert!(jb.stats().current_delay_ms < 60.0, "{:?}", jb.stats());
    // Most of the rough patch was played, not concealed.
    let all = rough.len();
    assert!(played_rough > all * 9 / 10, "{played_rough} of {all} rough packets played");
}

#[test]
fn after_a_delay_spike_the_next_one_is_absorbed() {
    let mut jb = JitterBuffer::new(JitterConfig::default());
    // A FIFO path stalls: the packets sent in 200 ms arrive together at its end (the first
    // waited the longest). A second later the packets of 150 ms are held up the same way.
    let stall = |k: u32, from: u32, length: u64| {
        let waited = FRAME * k.checked_sub(from)?;
        (waited < ms(length)).then(|| ms(30 + length) - waited)
    };
    let first = 30;
    let second = first + FRAMES_PER_SECOND as u32;
    let delay = |k: u32| stall(k, first, 200).or_else(|| stall(k, second, 150)).unwrap_or(ms(30));
    let out = run(&mut jb, stream(second + 70, 0, 0, delay), ms(3300));
    let got = played(&out);
    let spike = |from: u32, length: u64| (from..).take_while(move |&k| stall(k, from, length).is_some());
    // The first spike surprises the buffer: its oldest packets come after their slots.
    let lost_first: Vec<u32> = spike(first, 200).filter(|k| !got.contains(k)).collect();
    assert!(!lost_first.is_empty() && lost_first.len() < spike(first, 200).count(), "{lost_first:?}");
    // The target now covers it, so nothing of the second spike arrives late. (Later, the
    // buffer drops a packet now and then to bring the delay back down: not late, dropped.)
    let stats = jb.stats();
    assert!(stats.target_delay_ms >= 100.0, "{stats:?}");
    assert_eq!(stats.late as usize, lost_first.len(), "{stats:?}");
    assert!(spike(second, 150).all(|k| got.contains(&k)), "{stats:?}");
    let mut sorted = got.clone();
    sorted.sort_unstable();
    assert_eq!(got, sorted, "played out of order");
}

#[test]
fn the_buffer_is_bounded() {
    let mut jb = JitterBuffer::new(JitterConfig { max_packets: 16, ..JitterConfig::default() });
    for k in 0..200u32 {
        let arrival = ms(u64::from(k));
        Sent { seq: k as u16, ts: k * FRAME_TS as u32, marker: false, k, arrival }.insert_into(&mut jb);
    }
    assert_eq!(jb.stats().buffered, 16);
    assert_eq!(jb.stats().dropped, 184);
}

#[test]
fn a_restarted_stream_is_followed() {
    let mut jb = JitterBuffer::new(JitterConfig::default());
    let first = stream(20, 100, 5_000, |_| ms(30));
    // The sender restarts with unrelated sequence numbers and timestamps, 1 s later.
    let second: Vec<Sent> = stream(20, 40_000, 3_000_000_000, |_| ms(30))
        .into_iter()
        .map(|mut p| {
            p.k += 100;
            p.arrival += ms(1000);
            p
        })
        .collect();
    let mut packets = first;
    packets.extend(second);
    let out = run(&mut jb, packets, ms(2000));
    let got = played(&out);
    assert_eq!(got, (0..20).chain(100..120).collect::<Vec<_>>());
}

#[test]
fn a_talkspurt_plays_at_the_first_tick_at_which_it_is_due() {
    // Two talkspurts 1 s apart on a clean path (30 ms, steady): the target is its minimum, so
    // each talkspurt's first packet is due `min_delay` after its arrival, and plays at the
    // first tick at or after that, whatever the receiver's phase: never a tick later.
    let min_delay = JitterConfig::default().min_delay;
    let first_of_second = 50;
    for phase_ms in 0..FRAME.as_millis() as u64 {
        let mut jb = JitterBuffer::new(JitterConfig::default());
        let packets = talkspurts(2, 10, first_of_second - 10, false, |_| ms(30));
        let out = run_at(&mut jb, packets, ms(phase_ms), ms(2000));
        let played = play_times(&out);
        assert_eq!(played.len(), 20, "phase {phase_ms} ms: {played:?}");
        for k in [0, first_of_second] {
            let due = FRAME * k + ms(30) + min_delay;
            let first_tick = out.iter().map(|(t, _)| *t).find(|t| *t >= due).unwrap();
            assert_eq!(played[&k], first_tick, "phase {phase_ms} ms, packet {k}");
        }
        // The rest of each talkspurt follows back to back.
        for k in (1..10).chain(first_of_second + 1..first_of_second + 10) {
            assert_eq!(played[&k], played[&(k - 1)] + FRAME, "phase {phase_ms} ms, packet {k}");
        }
        assert_eq!(jb.stats().target_delay_ms, min_delay.as_secs_f32() * 1000.0);
    }
}

#[test]
fn a_talkspurt_whose_first_packet_was_held_back_loses_nothing_and_waits_no_longer() {
    // A voice-activity sender holds each talkspurt's first frame until the gate opens and
    // sends it with the second: it arrives a frame late, on purpose. At every receiver phase,
    // every packet plays (none dropped to catch up, none late), each talkspurt starts at the
    // first tick after its first packet arrived, and the target stays at its minimum: the
    // held-back frames are not taken for network jitter.
    let min_delay = JitterConfig::default().min_delay;
    assert!(min_delay <= FRAME);
    for phase_ms in 0..FRAME.as_millis() as u64 {
        let mut jb = JitterBuffer::new(JitterConfig::default());
        let packets = talkspurts(12, 10, 25, true, |_| ms(1));
        let starts: Vec<(u32, Duration)> =
            packets.iter().filter(|p| p.marker).map(|p| (p.k, p.arrival)).collect();
        let out = run_at(&mut jb, packets, ms(phase_ms), ms(9000));
        let played = play_times(&out);
        let stats = jb.stats();
        assert_eq!(
            (played.len(), stats.late, stats.dropped, stats.lost),
            (120, 0, 0, 0),
            "phase {phase_ms} ms: {stats:?}"
        );
        for (k, arrival) in starts {
            let first_tick = out.iter().map(|(t, _)| *t).find(|t| *t >= arrival).unwrap();
            assert_eq!(played[&k], first_tick, "phase {phase_ms} ms, talkspurt at {k}");
        }
        assert_eq!(stats.target_delay_ms, min_delay.as_secs_f32() * 1000.0, "phase {phase_ms} ms");
    }
}

#[test]
fn a_delay_spike_at_the_start_of_a_talkspurt_still_grows_the_target() {
    // The marker's own transit is not a jitter sample, but the packets behind it are: a path
    // that stalls as a talkspurt starts (its first 120 ms of packets released together)
    // grows the target, so the next such stall is absorbed.
    let stall = |k: u32| {
        let waited = FRAME * (k % 40);
        if k >= 40 && waited < ms(120) { ms(30 + 120) - waited } else { ms(30) }
    };
    let mut jb = JitterBuffer::new(JitterConfig::default());
    let out = run(&mut jb, talkspurts(4, 20, 20, false, stall), ms(3500));
    let stats = jb.stats();
    assert!(stats.target_delay_ms >= 100.0, "{stats:?}");
    // Talkspurts start when their first packet is due, so no stall made a packet late or
    // clipped an onset; catching up afterwards drops at most one packet per stall.
    let got = played(&out);
    assert!([0, 40, 80, 120].iter().all(|k| got.contains(k)), "{got:?}");
    assert_eq!((stats.late, stats.lost), (0, 0), "{stats:?}");
    assert!(stats.dropped <= 3, "{stats:?}");
}

#[test]
fn over_a_few_ms_of_jitter_a_held_back_talkspurt_still_plays_on_arrival() {
    // The same voice-activity talkspurts on a path that jitters by up to 7.5 ms (a busy
    // sender or receiver): the target stays at its minimum, which the held-back first packet
    // already exceeds when it arrives, so each talkspurt still starts at the first tick after
    // its first packet, and no packet is late.
    let jitter = |k: u32| MS.mul_f64(7.5 * noise(k, 3));
    for phase_ms in 0..FRAME.as_millis() as u64 {
        let mut jb = JitterBuffer::new(JitterConfig::default());
        let packets = talkspurts(12, 30, 25, true, |k| ms(1) + jitter(k));
        let starts: Vec<(u32, Duration)> =
            packets.iter().filter(|p| p.marker).map(|p| (p.k, p.arrival)).collect();
        let out = run_at(&mut jb, packets, ms(phase_ms), ms(9000));
        let played = play_times(&out);
        let stats = jb.stats();
        assert_eq!((played.len(), stats.late, stats.lost), (360, 0, 0), "phase {phase_ms} ms: {stats:?}");
        for (k, arrival) in starts.into_iter().skip(1) {
            let first_tick = out.iter().map(|(t, _)| *t).find(|t| *t >= arrival).unwrap();
            assert_eq!(played[&k], first_tick, "phase {phase_ms} ms, talkspurt at {k}: {stats:?}");
        }
    }
}
