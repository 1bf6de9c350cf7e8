//! Pipeline behaviour, and the end-to-end path: speech → Capture → a lossy, jittery network
//! → Playback → the same speech.

use super::*;
use crate::device::{AudioInput, AudioOutput, PcmSink, PcmSource};
use crate::pacing::{AFTER_ARRIVAL, TickShift};
use crate::synth::{self, Rng, Voice};
use crate::{FRAME_DURATION, FRAMES_PER_SECOND, frames_in};

/// A received packet without the marker, as most of these tests send.
fn packet(sequence: u16, timestamp: u32, payload: &[u8], arrival: Duration) -> ReceivedPacket<'_> {
    ReceivedPacket { sequence, timestamp, marker: false, payload, arrival }
}

fn quiet_config() -> CaptureConfig {
    // Echo cancellation needs a far end; these tests have none.
    CaptureConfig { echo_cancellation: false, ..CaptureConfig::default() }
}

fn frames_of(samples: Vec<f32>) -> Vec<PcmFrame> {
    let mut source = PcmSource::new(samples);
    let mut frames = Vec::new();
    let mut frame = SILENT_FRAME;
    while source.read_frame(&mut frame).unwrap_or(false) {
        frames.push(frame);
    }
    frames
}

#[test]
fn capture_sends_speech_and_not_the_pauses() {
    let speech = synth::utterance(&Voice::speaker(0), 4.0);
    let frames = frames_of(speech.clone());
    let mut capture = Capture::new(quiet_config()).unwrap();
    let outputs: Vec<CaptureOutput> = frames.iter().map(|f| capture.process(f).unwrap()).collect();
    let sent: Vec<&EncodedPacket> = outputs.iter().flat_map(|o| o.pre_roll.iter().chain(&o.packet)).collect();
    let loud = frames.iter().filter(|f| rms_dbfs(&f[..]) > -40.0).count();
    // Every loud frame is sent (give or take the VAD attack: 160 ms over these 4 s), and long
    // pauses (400 ms or more) are not.
    let frames_of_ms = |ms: usize| ms * FRAMES_PER_SECOND / 1000;
    assert!(sent.len() >= loud - frames_of_ms(160), "{} sent, {loud} loud", sent.len());
    assert!(sent.len() < frames.len() - frames_of_ms(400), "{} of {} sent", sent.len(), frames.len());
    // Timestamps advance by a frame's samples per frame, sent or not; talkspurts start with
    // the marker.
    let frame = FRAME_SAMPLES as u32;
    for pair in sent.windows(2) {
        let step = pair[1].rtp_timestamp.wrapping_sub(pair[0].rtp_timestamp);
        assert_eq!(step % frame, 0);
        assert_eq!(pair[1].marker, step != frame, "{step}");
    }
    assert!(sent[0].marker);
    assert!(outputs.iter().any(|o| o.speaking()));
    let loudest = outputs.iter().map(|o| o.level_dbfs).fold(FLOOR_DBFS, f32::max);
    assert!(loudest > -30.0, "{loudest}");
}

/// A tone that starts at frame `onset` of `frames` frames, silent before.
fn onset_at(onset: usize, frames: usize) -> Vec<PcmFrame> {
    let mut out = vec![SILENT_FRAME; frames];
    let speech = synth::utterance(&Voice::speaker(3), 1.0);
    let loud: Vec<&[f32]> = speech.chunks_exact(FRAME_SAMPLES).filter(|f| rms_dbfs(f) > -30.0).collect();
    for (frame, src) in out[onset..].iter_mut().zip(loud.iter().cycle()) {
        frame.copy_from_slice(src);
    }
    out
}

/// The sound of [`onset_at`]`(10, ..)` comes out of RNNoise a frame later (it delays by 10 ms,
/// one frame), so the VAD hears it from frame 11, and its two-frame attack opens the gate on
/// frame 12.
const HEARD: usize = 11;
const OPENS: usize = 12;

#[test]
fn a_talkspurt_starts_with_the_frame_the_vad_attack_held_back() {
    let frames = onset_at(10, 20);
    let mut capture = Capture::new(CaptureConfig { initial_timestamp: 1_000, ..quiet_config() }).unwrap();
    let outputs: Vec<CaptureOutput> = frames.iter().map(|f| capture.process(f).unwrap()).collect();
    // The attack is two frames: frame 11 is heard but not yet sent, frame 12 opens the gate.
    assert!(outputs[..OPENS].iter().all(|o| o.packet.is_none() && o.pre_roll.is_empty()));
    let opening = &outputs[OPENS];
    assert_eq!(opening.pre_roll.len(), 1, "{opening:?}");
    let onset = &opening.pre_roll[0];
    let packet = opening.packet.as_ref().unwrap();
    // The onset keeps its own slot in RTP time and starts the talkspurt.
    let frame = FRAME_SAMPLES as u32;
    assert_eq!(onset.rtp_timestamp, 1_000 + HEARD as u32 * frame);
    assert_eq!(packet.rtp_timestamp, 1_000 + OPENS as u32 * frame);
    assert!(onset.marker && !packet.marker);
    let next = &outputs[OPENS + 1];
    assert!(next.pre_roll.is_empty() && !next.packet.as_ref().unwrap().marker);

    // What the far end hears, each packet in its timestamp's slot, against the same capture
    // with the gate open throughout (push-to-talk held): the first 10 ms of the word are there.
    // (Without the pre-roll they are silent: the packet of frame 12 starts 10 ms into the word.)
    let heard = |outputs: &[CaptureOutput]| {
        let mut decoder = Decoder::new().unwrap();
        let mut slots = vec![SILENT_FRAME; frames.len()];
        for p in outputs.iter().flat_map(|o| o.pre_roll.iter().chain(&o.packet)) {
            let slot = (p.rtp_timestamp.wrapping_sub(1_000) / frame) as usize;
            decoder.decode(&p.payload, &mut slots[slot]).unwrap();
        }
        slots.concat()
    };
    let config = CaptureConfig { mode: TransmitMode::PushToTalk, initial_timestamp: 1_000, ..quiet_config() };
    let mut open = Capture::new(config).unwrap();
    open.set_push_to_talk(true);
    let reference = heard(&frames.iter().map(|f| open.process(f).unwrap()).collect::<Vec<_>>());
    let got = heard(&outputs);
    let start = reference.iter().position(|s| s.abs() > 0.01).unwrap();
    let energy = |x: &[f32]| x[start..start + 480].iter().map(|&s| f64::from(s).powi(2)).sum::<f64>();
    let ratio = energy(&got) / energy(&reference);
    assert!(ratio > 0.5, "the word's first 10 ms came through at {ratio:.3} of their energy");
}

#[test]
fn no_pre_roll_from_muted_audio_or_with_push_to_talk() {
    let frames = onset_at(10, 20);
    // Muted through the onset, unmuted as speech goes on: the muted frames never leave.
    let mut capture = Capture::new(quiet_config()).unwrap();
    capture.set_muted(true);
    for f in &frames[..OPENS] {
        capture.process(f).unwrap();
    }
    capture.set_muted(false);
    let first = capture.process(&frames[OPENS]).unwrap();
    assert!(first.pre_roll.is_empty() && first.packet.as_ref().unwrap().marker, "{first:?}");

    // Push-to-talk sends from the press on, nothing from before it.
    let mut capture =
        Capture::new(CaptureConfig { mode: TransmitMode::PushToTalk, ..quiet_config() }).unwrap();
    for f in &frames[..OPENS + 1] {
        capture.process(f).unwrap();
    }
    capture.set_push_to_talk(true);
    let pressed = capture.process(&frames[OPENS + 1]).unwrap();
    assert!(pressed.pre_roll.is_empty() && pressed.packet.is_some(), "{pressed:?}");
}

#[test]
fn muted_or_released_push_to_talk_sends_nothing_but_meters() {
    let frames = frames_of(synth::utterance(&Voice::speaker(1), 2.0));
    let mut capture = Capture::new(quiet_config()).unwrap();
    capture.set_muted(true);
    let muted: Vec<CaptureOutput> = frames.iter().map(|f| capture.process(f).unwrap()).collect();
    assert!(muted.iter().all(|o| o.packet.is_none() && !o.transmitting && !o.speaking()));
    // The meter and the VAD still work for the mic test and "you are muted" hints.
    assert!(muted.iter().any(|o| o.voice_detected));
    assert!(muted.iter().any(|o| o.level_dbfs > -40.0));

    capture.set_muted(false);
    capture.set_mode(TransmitMode::PushToTalk);
    let released = frames.iter().filter(|f| capture.process(f).unwrap().packet.is_some()).count();
    assert_eq!(released, 0);
    capture.set_push_to_talk(true);
    let held = frames.iter().filter(|f| capture.process(f).unwrap().packet.is_some()).count();
    assert!(held > frames.len() / 3, "{held}");
}

#[test]
fn a_higher_threshold_sends_less() {
    let frames = frames_of(synth::utterance(&Voice::speaker(2), 3.0));
    let sent_at = |dbfs: f32| {
        let mut capture = Capture::new(quiet_config()).unwrap();
        capture.set_threshold_dbfs(dbfs);
        frames.iter().filter(|f| capture.process(f).unwrap().packet.is_some()).count()
    };
    assert!(sent_at(-60.0) > 0);
    assert_eq!(sent_at(-1.0), 0);
}

#[test]
fn playback_mixes_peers_with_their_gain_and_deafen() {
    let mut enc_a = Encoder::new(&EncoderConfig { dtx: false, ..EncoderConfig::default() }).unwrap();
    let mut enc_b = Encoder::new(&EncoderConfig { dtx: false, ..EncoderConfig::default() }).unwrap();
    let a = frames_of(synth::utterance(&Voice::speaker(3), 2.0));
    let b = frames_of(synth::utterance(&Voice::speaker(4), 2.0));
    let mut playback: Playback<&str> = Playback::new(PlaybackConfig::default());
    playback.set_gain(&"b", 0.0);
    let mut out = SILENT_FRAME;
    let mut energy_with_b_muted = 0.0f64;
    let mut heard = Vec::new();
    // b is turned up and a down after 1 s; everyone is deafened after 1.6 s.
    let (second, deafen) = (FRAMES_PER_SECOND, FRAMES_PER_SECOND * 8 / 5);
    for (k, (fa, fb)) in a.iter().zip(&b).enumerate() {
        let now = FRAME_DURATION * k as u32;
        let ts = (k * FRAME_SAMPLES) as u32;
        playback.receive(&"a", &packet(k as u16, ts, enc_a.encode(fa).unwrap(), now)).unwrap();
        playback.receive(&"b", &packet(k as u16, ts, enc_b.encode(fb).unwrap(), now)).unwrap();
        if k == second {
            playback.set_gain(&"a", 0.0);
            playback.set_gain(&"b", 1.0);
        }
        if k == deafen {
            playback.set_deafened(true);
        }
        playback.render(now + Duration::from_millis(15), &mut out);
        if k < second {
            heard.extend_from_slice(&out);
        }
        if k > deafen {
            assert!(out.iter().all(|&s| s == 0.0), "deafened but audible at frame {k}");
        }
        if (second * 11 / 10..deafen).contains(&k) {
            energy_with_b_muted += out.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>();
        }
    }
    // The first second is a's voice alone (b at 0 %).
    let a_first: Vec<f32> = a[..second].iter().flatten().copied().collect();
    let matched = synth::align(&a_first, &heard, 4800);
    assert!(matched.correlation > 0.8, "{matched:?}");
    let b_first: Vec<f32> = b[..second].iter().flatten().copied().collect();
    assert!(synth::align(&b_first, &heard, 4800).correlation < 0.3);
    assert!(energy_with_b_muted > 0.0);
    // Deafened, the peers are still decoded: rings and stats stay live.
    let stats = playback.peer(&"b").unwrap();
    assert_eq!(stats.stats.played, 2 * second as u64);
    assert_eq!(stats.gain, 1.0);
    assert_eq!(playback.peers().count(), 2);
}

#[test]
fn a_loss_in_speech_is_concealed_and_a_loss_after_silence_costs_no_decoding() {
    // One second of speech, then silence: the sender's encoder goes from speech to a few
    // quiet packets to DTX (nothing sent). Two packets in the speech are lost.
    let mut speech = synth::utterance(&Voice::speaker(2), 1.0);
    speech.resize(48_000 * 2, 0.0);
    let mut encoder = Encoder::new(&EncoderConfig::default()).unwrap();
    let mut playback: Playback<u8> = Playback::new(PlaybackConfig::default());
    let mut out = SILENT_FRAME;
    let (mut seq, mut concealed_speech) = (0u16, Vec::new());
    // 40 ms of speech lost, 600 ms in.
    let lost_at = FRAMES_PER_SECOND * 3 / 5;
    let lost_frames = frames_in(Duration::from_millis(40)) as usize;
    for (k, frame) in frames_of(speech).iter().enumerate() {
        let now = FRAME_DURATION * k as u32;
        let payload = encoder.encode(frame).unwrap().to_vec();
        let lost = (lost_at..lost_at + lost_frames).contains(&k);
        if !codec::is_dtx_packet(&payload) {
            seq = seq.wrapping_add(1);
            if !lost {
                playback.receive(&1, &packet(seq, (k * FRAME_SAMPLES) as u32, &payload, now)).unwrap();
            }
        }
        playback.render(now + Duration::from_millis(15), &mut out);
        if k == lost_at {
            concealed_speech.extend_from_slice(&out);
        }
    }
    let stream = &playback.peers[&1];
    // The lost speech was concealed (PLC carries the voice on), not replaced by silence.
    assert!(rms_dbfs(&concealed_speech) > -50.0, "{} dBFS", rms_dbfs(&concealed_speech));
    // The frames after the last quiet packet before DTX count as concealed, but cost no
    // decoder call.
    assert!(stream.jitter.stats().plc >= 3, "{:?}", stream.jitter.stats());
    assert!(stream.silent_plc >= 1, "{}", stream.silent_plc);
    assert!(stream.silent_plc < stream.jitter.stats().plc);
}

#[test]
fn a_corrupt_packet_is_concealed_not_fatal() {
    let mut playback: Playback<u8> = Playback::new(PlaybackConfig::default());
    let mut out = SILENT_FRAME;
    for k in 0..10u16 {
        let now = FRAME_DURATION * u32::from(k);
        let garbage = [0xff, 0xff, 0xff, 0xff, 0xff];
        playback.receive(&1, &packet(k, u32::from(k) * FRAME_SAMPLES as u32, &garbage, now)).unwrap();
        playback.render(now + Duration::from_millis(15), &mut out);
    }
    assert!(playback.peer(&1).unwrap().decode_errors > 0);
    assert!(playback.remove_peer(&1));
    assert!(playback.peer(&1).is_none());
}

/// A deterministic lossy, jittery network between one capture and one playback.
struct Network {
    rng: Rng,
    loss: f64,
    base_ms: f64,
    jitter_ms: f64,
    /// Packets in flight: (arrival, sequence, timestamp, marker, payload).
    in_flight: Vec<(Duration, u16, u32, bool, Vec<u8>)>,
    next_seq: u16,
    sent: u32,
    dropped: u32,
}

impl Network {
    fn send(&mut self, packet: &EncodedPacket, now: Duration) {
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        self.sent += 1;
        if self.rng.unit() < self.loss {
            self.dropped += 1;
            return;
        }
        let delay = self.base_ms + self.jitter_ms * self.rng.unit().powi(2);
        let arrival = now + Duration::from_secs_f64(delay / 1000.0);
        self.in_flight.push((arrival, seq, packet.rtp_timestamp, packet.marker, packet.payload.clone()));
        // Now and then a packet is sent twice (a retransmitting middlebox).
        if self.rng.unit() < 0.01 {
            self.in_flight.push((
                arrival + Duration::from_millis(5),
                seq,
                packet.rtp_timestamp,
                packet.marker,
                packet.payload.clone(),
            ));
        }
    }

    fn deliver(&mut self, now: Duration, playback: &mut Playback<u32>) {
        let mut due: Vec<_> = Vec::new();
        self.in_flight.retain(|p| {
            if p.0 <= now {
                due.push(p.clone());
                false
            } else {
                true
            }
        });
        due.sort_by_key(|p| p.0);
        for (arrival, sequence, timestamp, marker, payload) in due {
            let packet = ReceivedPacket { sequence, timestamp, marker, payload: &payload, arrival };
            playback.receive(&7, &packet).unwrap();
        }
    }
}

/// Speech through the whole pipeline and a network with `loss` and `jitter_ms`; returns the
/// segment correlation of what was played with what was said, and the playback stats.
fn end_to_end(speaker: u32, loss: f64, jitter_ms: f64, seed: u64) -> (f32, f32, PeerAudio) {
    let speech = synth::utterance(&Voice::speaker(speaker), 8.0);
    let mut mic = PcmSource::new(speech.clone());
    let sink = PcmSink::new();
    let mut speaker_out: Box<dyn AudioOutput> = Box::new(sink.clone());
    let mut capture = Capture::new(quiet_config()).unwrap();
    let mut playback: Playback<u32> = Playback::new(PlaybackConfig::default());
    let mut network = Network {
        rng: Rng::new(seed),
        loss,
        base_ms: 25.0,
        jitter_ms,
        in_flight: Vec::new(),
        next_seq: 40_000,
        sent: 0,
        dropped: 0,
    };
    let mut frame = SILENT_FRAME;
    let mut out = SILENT_FRAME;
    // The receiver's ticks are 7 ms out of phase with the sender's; run 1 s past the end.
    for k in 0..9 * FRAMES_PER_SECOND as u32 {
        let sent_at = FRAME_DURATION * k;
        if mic.read_frame(&mut frame).unwrap()
            && let Some(packet) = capture.process(&frame).unwrap().packet
        {
            network.send(&packet, sent_at);
        }
        let now = sent_at + Duration::from_millis(7);
        network.deliver(now, &mut playback);
        playback.render(now, &mut out);
        speaker_out.write_frame(&out).unwrap();
    }
    let heard = sink.recorded();
    let matched = synth::segment_correlation(&speech, &heard, 9600, 24_000, 4800);
    let other = synth::utterance(&Voice::speaker(speaker + 1), 8.0);
    let unrelated = synth::segment_correlation(&other, &heard, 9600, 24_000, 4800);
    let stats = playback.peer(&7).unwrap();
    let expected_loss = f64::from(network.dropped) / f64::from(network.sent.max(1));
    assert!((expected_loss - loss).abs() < 0.05, "{expected_loss}");
    (matched, unrelated, stats)
}

// Thresholds. Opus at 32 kbit/s with RNNoise in front keeps the waveform of this synthetic
// speech: the clean path measures 0.96 per 200 ms segment after alignment. A lost frame
// is rebuilt by FEC or PLC, which keeps pitch and timbre but not the exact waveform, so 5 %
// loss with 60 ms of jitter measures 0.93. An unrelated utterance through the same measure
// gives 0.14-0.17 (pitch harmonics line up by chance at some lag). 0.8 sits well between
// "the same speech, degraded" and "something else", and fails if frames are dropped,
// reordered or misplaced in bulk.
const SAME: f32 = 0.8;
const OTHER: f32 = 0.4;

#[test]
fn speech_crosses_a_clean_path_intact() {
    let (matched, unrelated, stats) = end_to_end(5, 0.0, 2.0, 1);
    assert!(matched > 0.9, "correlation {matched}");
    assert!(unrelated < OTHER, "unrelated {unrelated}");
    assert_eq!(stats.stats.lost, 0, "{stats:?}");
}

#[test]
fn speech_survives_loss_jitter_reordering_and_duplicates() {
    // 5 % random loss, 25-85 ms of delay (reordering whenever two packets' delays differ by
    // more than 20 ms), 1 % duplicates.
    let (matched, unrelated, stats) = end_to_end(6, 0.05, 60.0, 2);
    assert!(matched > SAME, "correlation {matched} ({stats:?})");
    assert!(unrelated < OTHER, "unrelated {unrelated}");
    let s = &stats.stats;
    assert!(s.duplicates > 0 && s.fec > 0, "{s:?}");
    // Loss as played is the network's loss plus a little lateness, not more.
    assert!(s.loss_fraction() < 0.10, "{s:?}");
    assert!(s.target_delay_ms > 20.0 && s.target_delay_ms < 120.0, "{s:?}");
}

#[test]
fn the_render_tick_moves_in_a_pause_to_just_after_the_talkers_packets() {
    // A talker says a word every 700 ms (200 ms of voice: a talkspurt that opens the VAD
    // gate, its first frame held back and sent with the second); its packets arrive 1 ms after
    // each of its ticks. The listener ticks 8 ms after the talker, so at first a talkspurt
    // waits 7 ms for the listener's tick; once the listener has moved its tick (in a pause, as
    // the audio thread does), every talkspurt plays 2 ms after it arrives, and nothing is lost.
    let word: Vec<PcmFrame> = onset_at(0, frames_in(Duration::from_millis(200)) as usize);
    let pause = frames_in(Duration::from_millis(500)) as usize;
    let mut script = vec![SILENT_FRAME; pause];
    for _ in 0..8 {
        script.extend_from_slice(&word);
        script.extend(std::iter::repeat_n(SILENT_FRAME, pause));
    }
    let mut capture = Capture::new(quiet_config()).unwrap();
    let mut playback: Playback<u8> = Playback::new(PlaybackConfig::default());
    let mut out = SILENT_FRAME;
    let (mut seq, mut sent) = (0u16, 0u64);
    let mut tick = Duration::from_millis(8);
    let mut shifts = Vec::new();
    // (arrival of each talkspurt's first packet, the listener tick that played it)
    let mut onsets: Vec<(Duration, Option<Duration>)> = Vec::new();
    let mut played_before = 0;
    for (k, frame) in script.iter().enumerate() {
        let sent_at = FRAME_DURATION * k as u32;
        // The listener's ticks that come before this send.
        while tick < sent_at {
            playback.render(tick, &mut out);
            let played = playback.peer(&1).map_or(0, |p| p.stats.played);
            if played > played_before
                && let Some(onset) = onsets.last_mut().filter(|o| o.1.is_none())
            {
                onset.1 = Some(tick);
            }
            played_before = played;
            let next = tick + FRAME_DURATION;
            let shift = playback.tick_shift(tick);
            if let Some(shift) = shift {
                // Never while something plays: this frame and the next are silence.
                let jitter = &playback.peers[&1].jitter;
                shifts.push((shift, jitter.in_silence() && out == SILENT_FRAME));
            }
            tick = match shift {
                Some(TickShift::Earlier(by)) => next - by,
                Some(TickShift::Later(by)) => next + by,
                None => next,
            };
        }
        let output = capture.process(frame).unwrap();
        let arrival = sent_at + Duration::from_millis(1);
        // A word's talkspurt starts with the pre-roll (the marker also comes on the comfort
        // noise packets DTX sends now and then in the hangover).
        if output.pre_roll.first().is_some_and(|p| p.marker) {
            onsets.push((arrival, None));
        }
        for p in output.pre_roll.iter().chain(&output.packet) {
            let packet =
                ReceivedPacket { marker: p.marker, ..packet(seq, p.rtp_timestamp, &p.payload, arrival) };
            playback.receive(&1, &packet).unwrap();
            seq = seq.wrapping_add(1);
            sent += 1;
        }
    }
    let waits: Vec<Duration> =
        onsets.iter().map(|(arrival, played)| played.expect("played") - *arrival).collect();
    assert_eq!(waits.len(), 8, "{waits:?}");
    assert_eq!(waits[0], Duration::from_millis(7), "{waits:?}");
    assert_eq!(shifts.len(), 1, "{shifts:?}");
    assert!(shifts[0].1, "moved while playing: {shifts:?}");
    assert!(waits[1..].iter().all(|w| *w == AFTER_ARRIVAL), "{waits:?} after {shifts:?}");
    let stats = playback.peer(&1).unwrap().stats;
    assert_eq!((stats.played, stats.lost, stats.late, stats.dropped), (sent, 0, 0, 0), "{stats:?}");
}
