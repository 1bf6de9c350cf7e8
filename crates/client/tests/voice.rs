//! Voice end to end: engines join a voice channel through the real server in-process, real
//! webrtc-rs connections on loopback carry Opus between the real audio threads, and synthetic
//! devices speak scripted utterances (`hearth_voice::synth`) and record what each member hears.
//! These run in real time (the audio thread is clocked), so utterances are short.

mod common;

use std::time::{Duration, Instant};

use common::{TestClient, TestServer, WAIT};
use hearth_client::SessionEvent;
use hearth_client::call::{CallConfig, PeerState};
use hearth_client::voice::{MicTest, Voice, VoiceEvent, VoiceSettings};
use hearth_protocol::gateway::Event;
use hearth_protocol::model::{ChannelKind, VoiceState};
use hearth_protocol::{ChannelId, UserId};
use hearth_voice::level::rms_dbfs;
use hearth_voice::synth::{self, Voice as Speaker};
use hearth_voice::{FRAME_SAMPLES, PcmSink, PcmSource, ScriptedMic};
use tokio::sync::broadcast;

const RATE: f32 = 48_000.0;

/// These tests run in real time on a 2-core machine: one call at a time, so each call's audio
/// threads and connections are not also competing with the other tests'.
static ONE_CALL_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

// Thresholds. hearth-voice's own pipeline tests measure 0.96 for this synthetic speech through
// RNNoise + Opus 32 kbit/s on a clean path (per 200 ms segment, after alignment), and 0.14-0.17
// for an unrelated utterance through the same measure. Here the path also has AEC and real
// threads: on this 2-core machine under a load average of 2-3 members hear each other at
// 0.75-0.80, and at a load average of 8 (other builds running) packets come late and are
// concealed, measuring 0.54-0.79, while the wrong speaker's words measure 0.04-0.25 and
// silence 0. 0.5 separates "this speaker, degraded" from "someone else or nothing" even then,
// and fails if a stream is missing, swapped, or mostly lost. Someone else's words (and our own
// played back to us) must stay under 0.4.
const SAME: f32 = 0.5;
const OTHER: f32 = 0.4;
/// The longest mouth-to-ear delay searched for (s): far more than loopback needs, but a loaded
/// 2-core machine can make the jitter buffer hold a few hundred ms.
const MAX_DELAY: f32 = 0.8;
/// Below this a stretch of the recording counts as silent (digital silence is -100).
const SILENT_DBFS: f32 = -60.0;

/// One engine in the call with its devices.
struct Member {
    client: TestClient,
    voice: Option<Voice>,
    mouth: ScriptedMic,
    ear: PcmSink,
    id: UserId,
}

impl Member {
    async fn join(client: TestClient, channel: ChannelId) -> Member {
        let mut member = Member {
            id: client.session.user().expect("identified").id,
            client,
            voice: None,
            mouth: ScriptedMic::new(),
            ear: PcmSink::new(),
        };
        member.rejoin(channel).await;
        member
    }

    async fn rejoin(&mut self, channel: ChannelId) {
        self.mouth = ScriptedMic::new();
        self.ear = PcmSink::new();
        let voice = self
            .client
            .engine
            .join_voice(
                channel,
                CallConfig::loopback(Vec::new()),
                VoiceSettings::default(),
                Box::new(self.mouth.clone()),
                Box::new(self.ear.clone()),
            )
            .await
            .expect("join voice");
        self.voice = Some(voice);
    }

    fn voice(&self) -> &Voice {
        self.voice.as_ref().expect("in voice")
    }
}

async fn voice_channel(admin: &mut TestClient, others: &mut [&mut TestClient]) -> ChannelId {
    let channel =
        admin.engine.create_channel("lounge", ChannelKind::Voice).await.expect("create voice channel");
    let id = channel.id;
    let created = move |e: &SessionEvent| match e {
        SessionEvent::Event(Event::ChannelCreate { channel }) if channel.id == id => Some(()),
        _ => None,
    };
    admin.wait_for(created).await;
    for other in others.iter_mut() {
        other.wait_for(created).await;
    }
    id
}

/// Waits until `voice` has exactly `users` as peers, all connected.
async fn connected_to(voice: &Voice, users: &[UserId]) {
    let mut peers = voice.call().watch_peers();
    let mut want = users.to_vec();
    want.sort();
    let reached = tokio::time::timeout(WAIT, async {
        loop {
            {
                let now = peers.borrow_and_update();
                let have: Vec<UserId> = now.keys().copied().collect();
                if have == want && now.values().all(|p| p.state == PeerState::Connected) {
                    return;
                }
            }
            peers.changed().await.expect("call ended while waiting for connections");
        }
    })
    .await;
    assert!(reached.is_ok(), "not connected to {want:?} in time; peers: {:?}", voice.peers());
}

async fn wait_voice<T>(
    events: &mut broadcast::Receiver<VoiceEvent>,
    pred: impl FnMut(&VoiceEvent) -> Option<T>,
) -> T {
    common::wait_event(events, "voice", pred).await
}

/// Waits for the server's voice state of `user` to satisfy `pred`, as `client` sees it.
async fn voice_state(
    client: &mut TestClient,
    user: UserId,
    pred: impl Fn(&VoiceState) -> bool,
) -> VoiceState {
    client
        .wait_for(|e| match e {
            SessionEvent::Event(Event::VoiceStateUpdate { state })
                if state.user_id == user && pred(state) =>
            {
                Some(state.clone())
            }
            _ => None,
        })
        .await
}

/// Waits until every mouth has said its script, plus `tail` for it to reach the ears.
async fn until_said(mouths: &[&ScriptedMic], tail: Duration) {
    let deadline = Instant::now() + WAIT;
    while !mouths.iter().all(|m| m.done()) {
        assert!(Instant::now() < deadline, "scripts not read in time");
        // Polling a test device: the audio thread reads it on its own clock.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(tail).await;
}

fn silence(seconds: f32) -> Vec<f32> {
    vec![0.0; (seconds * RATE) as usize]
}

/// Where `utterance` (said by a mouth at `said_at`) is in an ear's recording: correlation per
/// segment, and the mouth-to-ear latency at the best alignment.
struct Heard {
    correlation: f32,
    other_correlation: f32,
    latency: Duration,
}

fn find(ear: &PcmSink, utterance: &[f32], said_at: Instant, other: &[f32]) -> Heard {
    let recording = ear.recording();
    let samples = &recording.samples;
    // From two frames before the mouth spoke to MAX_DELAY after it ended.
    let first = recording.frame_at(said_at).saturating_sub(2);
    let start = first * FRAME_SAMPLES;
    let end = (start + utterance.len() + (MAX_DELAY * RATE) as usize).min(samples.len());
    assert!(start < end, "the ear recorded nothing after the utterance began");
    let window = &samples[start..end];
    let aligned = locate(utterance, window);
    let correlation = segment_correlation(utterance, window, aligned);
    let other_correlation = segment_correlation(other, window, locate(other, window));
    let at = (start + aligned.max(0) as usize).min(samples.len() - 1);
    let heard_at = recording.heard_at(at).expect("a recorded sample");
    Heard { correlation, other_correlation, latency: heard_at.saturating_duration_since(said_at) }
}

/// The lag of `reference` in `received` (0..MAX_DELAY): first on 10 ms energy envelopes
/// (cheap enough for a debug build on a busy machine), then sample-exact within ±30 ms.
fn locate(reference: &[f32], received: &[f32]) -> isize {
    const STEP: usize = 480;
    let envelope =
        |x: &[f32]| x.chunks(STEP).map(|c| c.iter().map(|s| s * s).sum::<f32>().sqrt()).collect::<Vec<_>>();
    let (a, b) = (envelope(reference), envelope(received));
    let max = (MAX_DELAY * RATE) as usize / STEP;
    let coarse = (0..=max.min(b.len().saturating_sub(1)))
        .map(|lag| (lag, synth::correlation_at(&a, &b, lag as isize)))
        .fold((0, f32::MIN), |best, x| if x.1 > best.1 { x } else { best })
        .0;
    let from = (coarse * STEP).saturating_sub(1440).min(received.len());
    let fine = synth::align(reference, &received[from..], 1440 * 2);
    from as isize + fine.lag
}

/// Energy-weighted mean correlation of `reference` with `received` per 200 ms segment, each
/// segment aligned on its own within ±50 ms of `lag` (the jitter buffer may shift playout in
/// pauses). Nearly silent segments are skipped.
fn segment_correlation(reference: &[f32], received: &[f32], lag: isize) -> f32 {
    const SEGMENT: usize = 9600;
    const WANDER: usize = 2400;
    let energy = |x: &[f32]| x.iter().map(|&s| f64::from(s) * f64::from(s)).sum::<f64>();
    let loudest = reference.chunks(SEGMENT).map(energy).fold(0.0, f64::max);
    let (mut weighted, mut weights) = (0.0f64, 0.0f64);
    for (i, chunk) in reference.chunks(SEGMENT).enumerate() {
        let e = energy(chunk);
        if chunk.len() < SEGMENT / 2 || e < loudest * 0.05 {
            continue;
        }
        let expected = (i * SEGMENT) as isize + lag;
        let from = (expected - WANDER as isize).clamp(0, received.len() as isize) as usize;
        let to = (from + chunk.len() + 2 * WANDER).min(received.len());
        let local = synth::align(chunk, &received[from..to], 2 * WANDER);
        weighted += f64::from(local.correlation.max(0.0)) * e;
        weights += e;
    }
    if weights == 0.0 { 0.0 } else { (weighted / weights) as f32 }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_hear_each_other_and_not_themselves() {
    let _serial = ONE_CALL_AT_A_TIME.lock().await;
    let server = TestServer::start().await;
    let mut admin = TestClient::admin(&server).await;
    let mut bob = TestClient::member(&admin, "bob").await;
    let mut carol = TestClient::member(&admin, "carol").await;
    let channel = voice_channel(&mut admin, &mut [&mut bob, &mut carol]).await;
    let members = [
        Member::join(admin, channel).await,
        Member::join(bob, channel).await,
        Member::join(carol, channel).await,
    ];
    let ids: Vec<UserId> = members.iter().map(|m| m.id).collect();
    for m in &members {
        let others: Vec<UserId> = ids.iter().copied().filter(|&u| u != m.id).collect();
        connected_to(m.voice(), &others).await;
    }

    // Turns: member i speaks during [LEAD + i·SLOT, LEAD + i·SLOT + SPEECH) of a shared script
    // start; the join sounds are over before the first turn.
    const LEAD: f32 = 0.5;
    // A second between turns: on a loaded machine the jitter buffer may hold a few hundred ms.
    const SLOT: f32 = 2.5;
    const SPEECH: f32 = 1.5;
    let utterances: Vec<Vec<f32>> = (0..3).map(|i| synth::utterance(&Speaker::speaker(i), SPEECH)).collect();
    for (i, m) in members.iter().enumerate() {
        let mut script = silence(LEAD + i as f32 * SLOT);
        script.extend_from_slice(&utterances[i]);
        script.extend(silence(SLOT - SPEECH));
        m.mouth.say(script);
    }
    until_said(&members.iter().map(|m| &m.mouth).collect::<Vec<_>>(), Duration::from_millis(500)).await;

    let mut latencies = Vec::new();
    let mut failures = Vec::new();
    for (r, listener) in members.iter().enumerate() {
        for (s, speaker) in members.iter().enumerate() {
            let said_at = speaker.mouth.started().expect("script read")
                + Duration::from_secs_f32(LEAD + s as f32 * SLOT);
            if r == s {
                // Our own turn: we are not played back to ourselves.
                let own = find(&listener.ear, &utterances[s], said_at, &utterances[(s + 1) % 3]);
                println!("member {r} hears itself: correlation {:.3}", own.correlation);
                failures.extend(
                    (own.correlation >= OTHER)
                        .then(|| format!("member {r} hears itself at {:.3}", own.correlation)),
                );
                continue;
            }
            let other = &utterances[3 - r - s];
            let heard = find(&listener.ear, &utterances[s], said_at, other);
            println!(
                "member {r} hears member {s}: correlation {:.3} (vs the third speaker's words {:.3}), mouth-to-ear {:.1} ms",
                heard.correlation,
                heard.other_correlation,
                heard.latency.as_secs_f64() * 1000.0
            );
            failures.extend(
                (heard.correlation <= SAME)
                    .then(|| format!("member {r} hears member {s} at {:.3}", heard.correlation)),
            );
            failures.extend(
                (heard.other_correlation >= OTHER)
                    .then(|| format!("member {r}: {:.3}", heard.other_correlation)),
            );
            latencies.push(heard.latency);
        }
    }
    assert!(failures.is_empty(), "{failures:?}");
    latencies.sort();
    println!(
        "mouth-to-ear over loopback (incl. up to one tick of phase between threads): min {:.1} ms, median {:.1} ms, max {:.1} ms",
        latencies[0].as_secs_f64() * 1000.0,
        latencies[latencies.len() / 2].as_secs_f64() * 1000.0,
        latencies[latencies.len() - 1].as_secs_f64() * 1000.0
    );
    // Measured, not judged (bench/run.sh voice-latency does that on a quiet machine): on an
    // idle machine ~30-50 ms; a loaded one makes the jitter buffer hold more.
    assert!(latencies.iter().all(|l| *l < Duration::from_secs_f32(MAX_DELAY)), "{latencies:?}");

    for m in members {
        if let Some(v) = m.voice {
            v.leave().await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn speaking_mute_and_deafen_reach_the_others_and_the_audio() {
    let _serial = ONE_CALL_AT_A_TIME.lock().await;
    let server = TestServer::start().await;
    let mut admin = TestClient::admin(&server).await;
    let mut bob = TestClient::member(&admin, "bob").await;
    let channel = voice_channel(&mut admin, &mut [&mut bob]).await;
    let mut alice = Member::join(admin, channel).await;
    let mut bob = Member::join(bob, channel).await;
    connected_to(alice.voice(), &[bob.id]).await;
    connected_to(bob.voice(), &[alice.id]).await;

    // Bob speaks: Alice's session sees the speaking flag, and hears him.
    let words = synth::utterance(&Speaker::speaker(1), 1.5);
    bob.mouth.say(words.clone());
    voice_state(&mut alice.client, bob.id, |s| s.speaking).await;
    until_said(&[&bob.mouth], Duration::from_millis(400)).await;
    voice_state(&mut alice.client, bob.id, |s| !s.speaking).await;
    let said_at = bob.mouth.started().expect("read");
    let heard = find(&alice.ear, &words, said_at, &synth::utterance(&Speaker::speaker(2), 1.5));
    assert!(heard.correlation > SAME, "{:.3}", heard.correlation);

    // Muted: Alice sees it, and hears nothing of what Bob says, through a new microphone.
    bob.voice().set_muted(true);
    let state = voice_state(&mut alice.client, bob.id, |s| s.muted).await;
    assert!(!state.speaking && !state.deafened);
    let mouth = ScriptedMic::new();
    bob.voice().set_input(Box::new(mouth.clone()));
    let muted_from = Instant::now();
    mouth.say(synth::utterance(&Speaker::speaker(3), 1.0));
    until_said(&[&mouth], Duration::from_millis(300)).await;
    let while_muted = alice.ear.recording().after(muted_from).to_vec();
    assert!(while_muted.len() > (0.8 * RATE) as usize);
    assert!(rms_dbfs(&while_muted) < SILENT_DBFS, "muted Bob is heard: {:.1}", rms_dbfs(&while_muted));

    // Unmuted on a plain source device: heard again.
    bob.voice().set_muted(false);
    voice_state(&mut alice.client, bob.id, |s| !s.muted).await;
    let again = synth::utterance(&Speaker::speaker(4), 1.0);
    let unmuted_from = Instant::now();
    bob.voice().set_input(Box::new(PcmSource::new(again)));
    tokio::time::sleep(Duration::from_millis(1400)).await;
    let heard = alice.ear.recording().after(unmuted_from).to_vec();
    assert!(rms_dbfs(&heard) > -40.0, "unmuted Bob not heard: {:.1}", rms_dbfs(&heard));

    // Alice deafens: the others see her deafened and muted, and nothing plays for her.
    alice.voice().set_deafened(true);
    let state = voice_state(&mut bob.client, alice.id, |s| s.deafened).await;
    assert!(state.muted, "deafened implies muted: {state:?}");
    let deaf_from = Instant::now() + Duration::from_millis(40);
    bob.mouth.say(synth::utterance(&Speaker::speaker(5), 1.0));
    bob.voice().set_input(Box::new(bob.mouth.clone()));
    until_said(&[&bob.mouth], Duration::from_millis(300)).await;
    let while_deaf = alice.ear.recording().after(deaf_from).to_vec();
    assert!(while_deaf.len() > (0.8 * RATE) as usize);
    assert!(while_deaf.iter().all(|&s| s == 0.0), "deafened Alice hears {:.1} dBFS", rms_dbfs(&while_deaf));
    assert!(alice.voice().settings().deafened);

    for m in [&mut alice, &mut bob] {
        if let Some(v) = m.voice.take() {
            v.leave().await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_who_leaves_is_removed_and_heard_again_after_rejoining() {
    let _serial = ONE_CALL_AT_A_TIME.lock().await;
    let server = TestServer::start().await;
    let mut admin = TestClient::admin(&server).await;
    let mut bob = TestClient::member(&admin, "bob").await;
    let channel = voice_channel(&mut admin, &mut [&mut bob]).await;
    let alice = Member::join(admin, channel).await;
    let mut bob = Member::join(bob, channel).await;
    connected_to(alice.voice(), &[bob.id]).await;
    let mut events = alice.voice().subscribe();

    bob.voice.take().expect("in voice").leave().await;
    wait_voice(&mut events, |e| {
        matches!(e, VoiceEvent::PeerLeft { user_id } if *user_id == bob.id).then_some(())
    })
    .await;
    assert!(alice.voice().peers().is_empty());
    // Her meters no longer list him.
    let peers = wait_voice(&mut events, |e| match e {
        VoiceEvent::Levels { peers, .. } => Some(peers.clone()),
        _ => None,
    })
    .await;
    assert!(peers.is_empty(), "{peers:?}");

    bob.rejoin(channel).await;
    wait_voice(&mut events, |e| {
        matches!(e, VoiceEvent::PeerJoined { user_id } if *user_id == bob.id).then_some(())
    })
    .await;
    connected_to(alice.voice(), &[bob.id]).await;
    connected_to(bob.voice(), &[alice.id]).await;
    let words = synth::utterance(&Speaker::speaker(6), 1.5);
    bob.mouth.say(words.clone());
    until_said(&[&bob.mouth], Duration::from_millis(400)).await;
    let heard = find(
        &alice.ear,
        &words,
        bob.mouth.started().expect("read"),
        &synth::utterance(&Speaker::speaker(7), 1.5),
    );
    println!(
        "after rejoining: correlation {:.3}, mouth-to-ear {:.1} ms",
        heard.correlation,
        heard.latency.as_secs_f64() * 1000.0
    );
    assert!(heard.correlation > SAME, "{:.3}", heard.correlation);

    for v in [alice.voice, bob.voice].into_iter().flatten() {
        v.leave().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_killed_mid_sentence_stops_being_mixed_and_is_removed() {
    let _serial = ONE_CALL_AT_A_TIME.lock().await;
    let server = TestServer::start().await;
    let mut admin = TestClient::admin(&server).await;
    let mut bob = TestClient::member(&admin, "bob").await;
    let mut carol = TestClient::member(&admin, "carol").await;
    let channel = voice_channel(&mut admin, &mut [&mut bob, &mut carol]).await;
    let alice = Member::join(admin, channel).await;
    let bob = Member::join(bob, channel).await;
    let carol = Member::join(carol, channel).await;
    connected_to(alice.voice(), &[bob.id, carol.id]).await;
    connected_to(bob.voice(), &[alice.id, carol.id]).await;
    let mut alice_events = alice.voice().subscribe();
    let mut bob_events = bob.voice().subscribe();

    // Carol talks for 4 s; a second in, her network dies (no leave, no close frame).
    carol.mouth.say(synth::utterance(&Speaker::speaker(8), 4.0));
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(
        rms_dbfs(alice.ear.recording().after(Instant::now() - Duration::from_millis(800))) > -40.0,
        "Carol was heard"
    );
    carol.client.session.simulate_outage(Duration::from_secs(3600)).await.expect("outage");
    for events in [&mut alice_events, &mut bob_events] {
        wait_voice(events, |e| {
            matches!(e, VoiceEvent::PeerLeft { user_id } if *user_id == carol.id).then_some(())
        })
        .await;
    }
    let removed_at = Instant::now();
    connected_to(alice.voice(), &[bob.id]).await;
    connected_to(bob.voice(), &[alice.id]).await;
    // The leave sound plays (~170 ms), then nothing of her although her microphone goes on.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(!carol.mouth.done(), "she was still talking");
    for ear in [&alice.ear, &bob.ear] {
        let after = ear.recording().after(removed_at + Duration::from_millis(300)).to_vec();
        assert!(after.len() > (0.6 * RATE) as usize);
        assert!(after.iter().all(|&s| s == 0.0), "Carol still mixed: {:.1} dBFS", rms_dbfs(&after));
    }

    for v in [alice.voice, bob.voice, carol.voice].into_iter().flatten() {
        v.leave().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mic_test_meters_speech_without_a_call() {
    let _serial = ONE_CALL_AT_A_TIME.lock().await;
    let mouth = ScriptedMic::new();
    let test = MicTest::start(Box::new(mouth.clone()), &VoiceSettings::default()).expect("mic test");
    let mut events = test.subscribe();
    let quiet = wait_voice(&mut events, |e| match e {
        VoiceEvent::Levels { level_dbfs, voice_detected, .. } => Some((*level_dbfs, *voice_detected)),
        _ => None,
    })
    .await;
    assert!(quiet.0 < SILENT_DBFS && !quiet.1, "{quiet:?}");
    mouth.say(synth::utterance(&Speaker::speaker(9), 1.0));
    let loud = wait_voice(&mut events, |e| match e {
        VoiceEvent::Levels { level_dbfs, voice_detected: true, .. } => Some(*level_dbfs),
        _ => None,
    })
    .await;
    assert!(loud > -40.0, "{loud}");
    test.stop().await;
}
