//! The voice core with fake time: two cores joined by a perfect in-memory wire that numbers
//! packets like the call layer does (its own sequence numbers, timestamps advanced by `skip`).

use super::*;
use hearth_voice::SILENT_FRAME;
use hearth_voice::level::rms_dbfs;
use hearth_voice::synth::{self, Voice};

const ALICE: UserId = UserId(1);
const BOB: UserId = UserId(2);
const TICK: Duration = hearth_voice::FRAME_DURATION;
const FRAME: usize = hearth_voice::FRAME_SAMPLES;
/// Frames in `ms` milliseconds.
fn frames(ms: usize) -> usize {
    ms * hearth_voice::FRAMES_PER_SECOND / 1000
}

fn settings() -> VoiceSettings {
    // No echo canceller: nothing here plays into a microphone, and AEC3 needs time to converge.
    VoiceSettings { echo_cancellation: false, ..VoiceSettings::default() }
}

/// The call layer's numbering of one sender's packets.
struct Wire {
    seq: u16,
    timestamp: u32,
    sent: usize,
    /// The RTP timestamp of every packet carried.
    timestamps: Vec<u32>,
}

impl Wire {
    fn new() -> Self {
        Wire { seq: 100, timestamp: 5_000, sent: 0, timestamps: Vec::new() }
    }

    fn carry(
        &mut self,
        effects: &mut Vec<Effect>,
        from: UserId,
        to: &mut Core,
        arrival: Duration,
    ) -> Vec<Effect> {
        let mut other = Vec::new();
        for effect in effects.drain(..) {
            match effect {
                Effect::Send { payload, skipped } => {
                    self.timestamp = self.timestamp.wrapping_add(skipped * Core::FRAME);
                    // As the call layer: the marker on the first packet and after a skip.
                    let marker = skipped > 0 || self.sent == 0;
                    let packet = ReceivedPacket {
                        sequence: self.seq,
                        timestamp: self.timestamp,
                        marker,
                        payload: &payload,
                        arrival,
                    };
                    to.receive(from, &packet);
                    self.timestamps.push(self.timestamp);
                    self.seq = self.seq.wrapping_add(1);
                    self.timestamp = self.timestamp.wrapping_add(Core::FRAME);
                    self.sent += 1;
                }
                e => other.push(e),
            }
        }
        other
    }
}

/// Alice speaks `speech` into her core; Bob's core plays it. Returns what Bob played and
/// Alice's other effects (voice states). `each` runs before every frame.
fn talk(
    alice: &mut Core,
    bob: &mut Core,
    wire: &mut Wire,
    speech: &[f32],
    extra_frames: usize,
    mut each: impl FnMut(usize, &mut Core, &mut Core, Duration),
) -> (Vec<f32>, Vec<Effect>) {
    let frames = speech.len().div_ceil(FRAME) + extra_frames;
    let mut heard = Vec::new();
    let mut states = Vec::new();
    let mut effects = Vec::new();
    let mut events = Vec::new();
    for k in 0..frames {
        let now = TICK * k as u32;
        each(k, alice, bob, now);
        let mut mic = SILENT_FRAME;
        let chunk = speech.get(k * FRAME..((k + 1) * FRAME).min(speech.len())).unwrap_or(&[]);
        mic[..chunk.len()].copy_from_slice(chunk);
        alice.capture(now, &mic, &mut effects, &mut events).unwrap();
        // 2 ms on the wire; Bob ticks 7 ms after Alice.
        states.extend(wire.carry(&mut effects, ALICE, bob, now + Duration::from_millis(2)));
        let mut out = SILENT_FRAME;
        bob.render(now + Duration::from_millis(7), &mut out, &mut events).unwrap();
        heard.extend_from_slice(&out);
    }
    (heard, states)
}

fn pair() -> (Core, Core) {
    let mut alice = Core::new(&settings(), true).unwrap();
    let mut bob = Core::new(&settings(), true).unwrap();
    alice.add_member(BOB, false).unwrap();
    bob.add_member(ALICE, false).unwrap();
    (alice, bob)
}

#[test]
fn what_one_says_the_other_plays_across_pauses_without_growing_delay() {
    let (mut alice, mut bob) = pair();
    let mut wire = Wire::new();
    let speech = synth::utterance(&Voice::speaker(1), 4.0);
    let (heard, _) = talk(&mut alice, &mut bob, &mut wire, &speech, 25, |_, _, _, _| {});
    let found = synth::align(&speech, &heard, 9600);
    let matched = synth::segment_correlation(&speech, &heard, 9600, 9600, 2400);
    // Same threshold as hearth-voice's pipeline tests (0.8): Opus + RNNoise keep ~0.95.
    assert!(matched > 0.8, "correlation {matched}");
    // The speech has pauses, so frames were skipped; with timestamps advanced across them
    // the delay stays near the jitter buffer's minimum (10 ms + 5 ms margin, plus phase).
    assert!(wire.sent < speech.len() / FRAME, "{} of {} frames sent", wire.sent, speech.len() / FRAME);
    let lag_ms = found.lag as f32 / 48.0;
    assert!((0.0..60.0).contains(&lag_ms), "lag {lag_ms} ms");
    let stats = bob.playback.peer(&ALICE).unwrap().stats;
    assert!(stats.target_delay_ms < 30.0, "{stats:?}");
}

#[test]
fn muted_sends_nothing_and_says_so_at_once() {
    let (mut alice, mut bob) = pair();
    let mut wire = Wire::new();
    let mut effects = Vec::new();
    alice.apply(Duration::ZERO, Setting::Muted(true), &mut effects).unwrap();
    assert_eq!(effects, [Effect::VoiceState { muted: true, deafened: false, speaking: false }]);
    let speech = synth::utterance(&Voice::speaker(2), 2.0);
    let (heard, states) = talk(&mut alice, &mut bob, &mut wire, &speech, 10, |_, _, _, _| {});
    assert_eq!(wire.sent, 0);
    assert!(states.is_empty(), "no speaking while muted: {states:?}");
    assert!(heard.iter().all(|&s| s == 0.0));
}

#[test]
fn deafened_plays_nothing_and_mutes_until_undeafened() {
    let (mut alice, mut bob) = pair();
    let mut wire = Wire::new();
    let mut effects = Vec::new();
    bob.apply(Duration::ZERO, Setting::Deafened(true), &mut effects).unwrap();
    assert_eq!(effects, [Effect::VoiceState { muted: true, deafened: true, speaking: false }]);
    assert!(bob.capture.is_muted());
    bob.add_member(UserId(3), true).unwrap();
    let speech = synth::utterance(&Voice::speaker(3), 2.0);
    let (heard, _) = talk(&mut alice, &mut bob, &mut wire, &speech, 10, |_, _, _, _| {});
    assert!(wire.sent > 20);
    assert!(heard.iter().all(|&s| s == 0.0), "deafened, yet something played (join sound included)");
    // Undeafen restores the mute the user had (none).
    effects.clear();
    bob.apply(Duration::ZERO, Setting::Deafened(false), &mut effects).unwrap();
    assert_eq!(effects, [Effect::VoiceState { muted: false, deafened: false, speaking: false }]);
    assert!(!bob.capture.is_muted());
}

#[test]
fn push_to_talk_sends_only_while_the_key_is_down() {
    let (mut alice, mut bob) = pair();
    let mut effects = Vec::new();
    alice.apply(Duration::ZERO, Setting::Mode(TransmitMode::PushToTalk), &mut effects).unwrap();
    let mut wire = Wire::new();
    // 1 s of a steady voiced tone, key down for frames 20..30 only.
    let speech: Vec<f32> =
        (0..48_000).map(|i| 0.3 * (2.0 * std::f32::consts::PI * 220.0 * i as f32 / 48_000.0).sin()).collect();
    talk(&mut alice, &mut bob, &mut wire, &speech, 0, |k, alice, _, now| {
        let mut fx = Vec::new();
        if k == 20 {
            alice.apply(now, Setting::PushToTalk(true), &mut fx).unwrap();
        }
        if k == 30 {
            alice.apply(now, Setting::PushToTalk(false), &mut fx).unwrap();
        }
    });
    assert!((9..=10).contains(&wire.sent), "{} sent", wire.sent);
}

#[test]
fn per_user_volume_scales_what_is_played() {
    let speech = synth::utterance(&Voice::speaker(4), 2.0);
    let loudness = |volume: f32| {
        let (mut alice, mut bob) = pair();
        let mut fx = Vec::new();
        bob.apply(Duration::ZERO, Setting::UserVolume(ALICE, volume), &mut fx).unwrap();
        let (heard, _) = talk(&mut alice, &mut bob, &mut Wire::new(), &speech, 10, |_, _, _, _| {});
        rms_dbfs(&heard)
    };
    let (full, half, none) = (loudness(1.0), loudness(0.5), loudness(0.0));
    assert!((full - half - 6.0).abs() < 1.0, "{full} vs {half}");
    assert!(none <= -99.0, "{none}");
}

#[test]
fn join_and_leave_sounds_play_and_a_leaver_is_no_longer_mixed() {
    let (mut alice, mut bob) = pair();
    let mut events = Vec::new();
    let mut out = SILENT_FRAME;
    // A newcomer: a short rising tone, then silence.
    bob.add_member(UserId(3), true).unwrap();
    let mut tone = Vec::new();
    for k in 0..frames(300) {
        bob.render(TICK * k as u32, &mut out, &mut events).unwrap();
        tone.extend_from_slice(&out);
    }
    let loud = tone.chunks(FRAME).filter(|f| rms_dbfs(f) > -30.0).count();
    assert!((frames(140)..=frames(200)).contains(&loud), "{loud} frames of tone");
    assert!(!bob.tones_playing());

    // Alice speaks, then leaves mid-sentence: her stream is gone and the leave tone plays.
    let mut wire = Wire::new();
    let speech = synth::utterance(&Voice::speaker(5), 2.0);
    let leaves = frames(1200);
    let (heard, _) = talk(&mut alice, &mut bob, &mut wire, &speech, 0, |k, _, bob, _| {
        if k == leaves {
            let mut ev = Vec::new();
            bob.remove_member(ALICE, &mut ev);
        }
    });
    assert!(rms_dbfs(&heard[..frames(1000) * FRAME]) > -40.0);
    assert!(bob.playback.peer(&ALICE).is_none());
    assert_eq!(bob.members().copied().collect::<Vec<_>>(), [UserId(3)]);
    // After the leave tone (~170 ms) nothing of her is heard although she kept talking.
    let after = &heard[(leaves + frames(200)) * FRAME..];
    assert!(after.iter().all(|&s| s == 0.0), "{}", rms_dbfs(after));
}

#[test]
fn a_mic_test_meters_without_sending_or_playing() {
    let mut test = Core::new(&settings(), false).unwrap();
    let speech = synth::utterance(&Voice::speaker(6), 1.0);
    let (mut effects, mut events) = (Vec::new(), Vec::new());
    let mut out = SILENT_FRAME;
    for (k, chunk) in speech.chunks(FRAME).enumerate() {
        let mut mic = SILENT_FRAME;
        mic[..chunk.len()].copy_from_slice(chunk);
        test.render(TICK * k as u32, &mut out, &mut events).unwrap();
        assert!(out.iter().all(|&s| s == 0.0));
        test.capture(TICK * k as u32, &mic, &mut effects, &mut events).unwrap();
    }
    assert!(effects.is_empty(), "{effects:?}");
    let levels: Vec<(f32, bool)> = events
        .iter()
        .filter_map(|e| match e {
            VoiceEvent::Levels { level_dbfs, voice_detected, .. } => Some((*level_dbfs, *voice_detected)),
            _ => None,
        })
        .collect();
    assert_eq!(levels.len(), 10);
    assert!(levels.iter().any(|&(l, v)| l > -30.0 && v), "{levels:?}");
}

#[test]
fn speaking_reports_are_debounced() {
    let mut r = SpeakingReporter::new(Duration::from_millis(60), Duration::from_millis(250));
    let ms = Duration::from_millis;
    // A 40 ms blip is not reported.
    assert_eq!(r.update(ms(0), true), None);
    assert_eq!(r.update(ms(40), false), None);
    // A change that lasts 60 ms is.
    assert_eq!(r.update(ms(100), true), None);
    assert_eq!(r.update(ms(140), true), None);
    assert_eq!(r.update(ms(160), true), Some(true));
    // Stopping right after waits for the spacing of 250 ms since the last report.
    assert_eq!(r.update(ms(180), false), None);
    assert_eq!(r.update(ms(260), false), None);
    assert_eq!(r.update(ms(410), false), Some(false));
    assert!(!r.reported());
}

#[test]
fn speaking_reaches_the_voice_state_and_stops_after_the_speech() {
    let (mut alice, mut bob) = pair();
    let speech = synth::utterance(&Voice::speaker(7), 2.0);
    let (_, states) = talk(&mut alice, &mut bob, &mut Wire::new(), &speech, 50, |_, _, _, _| {});
    let speaking: Vec<bool> = states
        .iter()
        .map(|e| match e {
            Effect::VoiceState { speaking, .. } => *speaking,
            other => panic!("{other:?}"),
        })
        .collect();
    assert!(speaking.first() == Some(&true) && speaking.last() == Some(&false), "{speaking:?}");
    // Syllables with pauses under the VAD's hangover do not make a storm of updates.
    assert!(speaking.len() <= 8, "{speaking:?}");
}

#[test]
fn a_talkspurt_is_sent_from_its_first_frame_with_that_frames_timestamp() {
    let (mut alice, mut bob) = pair();
    let mut wire = Wire::new();
    // 400 ms of silence, then a loud 300 ms tone: the VAD needs two frames to open, and the
    // first of them must still be sent (the pre-roll), in its own place in time.
    let onset_frame = frames(400);
    let mut speech = vec![0.0f32; onset_frame * FRAME];
    speech.extend(
        (0..300 * 48).map(|i| 0.5 * (i as f32 * 2.0 * std::f32::consts::PI * 440.0 / 48_000.0).sin()),
    );
    talk(&mut alice, &mut bob, &mut wire, &speech, 10, |_, _, _, _| {});
    let first = *wire.timestamps.first().expect("the tone was sent");
    assert_eq!(first, 5_000 + onset_frame as u32 * Core::FRAME, "the onset frame leads the talkspurt");
    let mut sorted = wire.timestamps.clone();
    sorted.dedup();
    assert_eq!(sorted.len(), wire.timestamps.len(), "no timestamp used twice: {:?}", wire.timestamps);
    assert!(wire.timestamps.windows(2).all(|w| w[1] > w[0]), "in order: {:?}", wire.timestamps);
}

#[test]
fn the_listener_is_asked_to_tick_just_after_the_talkers_packets_in_a_pause() {
    // Bob ticks 7 ms after Alice and her packets take 2 ms: each waits 5 ms for his tick.
    // Once she pauses, his core asks for the tick 3 ms sooner, 2 ms after her packets arrive.
    let (mut alice, mut bob) = pair();
    let speech = synth::utterance(&Voice::speaker(3), 1.0);
    let silence = frames(1000);
    talk(&mut alice, &mut bob, &mut Wire::new(), &speech, silence, |_, _, _, _| {});
    let now = TICK * (speech.len().div_ceil(FRAME) + silence) as u32;
    assert_eq!(bob.tick_shift(now), Some(TickShift::Earlier(Duration::from_millis(3))));
    // Asked once; and a mic test (no call) never asks.
    assert_eq!(bob.tick_shift(now), None);
    let mut test = Core::new(&settings(), false).unwrap();
    assert_eq!(test.tick_shift(now), None);
}
