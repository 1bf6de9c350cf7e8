//! `voice-latency`: mouth-to-ear latency of a voice call over loopback, against a raw-UDP floor
//! built from the same voice pipeline, measured in the same run.
//!
//! A [`ScriptedMic`] says a 200 ms voiced burst after a silence, again and again, and
//! remembers the instant each of its frames was read; a [`PcmSink`] records every frame written
//! and the instant it was. The latency of a burst is that of its first sample: from the read of
//! the frame it went in with (bursts start on a frame boundary) to the instant its image is
//! heard (the write instant of the frame holding it plus its offset there; no device buffer is
//! in either). The image is found by aligning the *reference*, the script through the same
//! pipeline with no clock (each packet decoded in its own frame's slot), with the recording:
//! the live output is that same decoded audio shifted in time, so the peak is exact, where the
//! raw burst would correlate at each of its pitch periods (9 ms apart). The burst's first
//! 20 ms must be there as sent, else the burst counts as clipped, not as fast. Where the
//! audio sits inside the frames is the pipeline's own delay, measured once with noise.
//!
//! - **Hearth**: two engines (`hearth-client`) registered on a real `hearth-server` on
//!   loopback join a voice channel with [`Engine::join_voice`]: webrtc-rs connections, the
//!   engine's audio threads and link tasks, default voice settings (noise suppression and echo
//!   cancellation on, voice activity, sensitivity 0.5) except the join/leave sounds.
//! - **Floor** (`raw-udp-opus`): the same `hearth_voice::Capture` and `Playback` with the same
//!   settings, driven by two threads ticking like the engine's audio thread (deadlines
//!   `start + n × 10 ms`, moved in a pause when the playback asks, so the ticks fall just
//!   after the talker's packets; nice -10, packets into the jitter buffer as they arrive), with the
//!   packets sent as plain UDP datagrams on 127.0.0.1 (sequence number, marker and RTP
//!   timestamp in an 8-byte header). No webrtc, no server, no async runtime: what is left is the pipeline.
//!
//! Each round is one Hearth call then one floor run. The two audio threads of a call start on
//! schedules of their own, so the phase between the sender's reads and the receiver's writes is
//! random per call and worth up to a frame of latency until the receiver has moved its tick
//! (after its first talkspurt); the floor run starts with the phase the Hearth call had, so each
//! pair differs by the transport and not by luck, and the rounds together sample many phases. The floor also times each stage of every burst's first packet
//! (VAD hold, capture, send, loopback, hand-off, jitter buffer and tick), the latency budget.

use std::net::UdpSocket;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use hearth_client::call::{CallConfig, PeerState};
use hearth_client::voice::{Voice, VoiceEvent, VoiceSettings};
use hearth_client::{Engine, EngineOptions};
use hearth_protocol::UserId;
use hearth_protocol::model::ChannelKind;
use hearth_voice::synth::{self, Voice as Speaker};
use hearth_voice::{
    AudioInput, AudioOutput, Capture, CaptureConfig, Decoder, FRAME_DURATION, FRAME_SAMPLES, JitterStats,
    PcmSink, Playback, PlaybackConfig, ReceivedPacket, Recording, SILENT_FRAME, ScriptedMic, TickShift,
    TransmitMode, VadConfig,
};

use crate::process::ScratchDir;
use crate::report::{Metric, fmt_opt, ratio};
use crate::server::{HearthServer, Paths};
use crate::stats::Latencies;

const BENCH: &str = "voice-latency";
const RATE: f64 = 48_000.0;
const PEER: &str = "raw-udp-opus";
/// The burst: long enough to open the VAD and to correlate well, short enough to repeat.
const BURST: Duration = Duration::from_millis(200);
/// Below this correlation with the burst, what the ear recorded is not the burst.
const MIN_CORRELATION: f32 = 0.5;
/// How long the ear's recording is searched after a burst went in.
const MAX_DELAY: Duration = Duration::from_millis(400);
/// Silence before the first burst of a round, after both ends are connected.
const LEAD: Duration = Duration::from_millis(1000);
/// How long a connection may take.
const CONNECT_WAIT: Duration = Duration::from_secs(20);
const PASSWORD: &str = "voice-latency-password";

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Rounds, each a fresh Hearth call then a floor run (each round has its own tick phase).
    #[arg(long, env = "VOICE_LATENCY_ROUNDS", default_value_t = 5)]
    rounds: usize,
    /// Bursts per round and side.
    #[arg(long, env = "VOICE_LATENCY_BURSTS", default_value_t = 12)]
    bursts: usize,
    /// Silence between bursts (ms); more than the VAD's 300 ms hangover, so every burst is a
    /// new talkspurt that has to open the gate.
    #[arg(long, env = "VOICE_LATENCY_GAP_MS", default_value_t = 500)]
    gap_ms: u64,
}

pub async fn run(paths: &Paths, args: &Args) -> Result<Vec<Metric>> {
    if args.rounds == 0 || args.bursts == 0 {
        bail!("--rounds and --bursts must be at least 1");
    }
    let signal = Signal::new(Duration::from_millis(args.gap_ms), args.bursts)
        .context("running the pipeline without a clock")?;
    println!(
        "voice-latency: {} rounds x {} bursts of {} ms voiced sound after {} ms of silence, per side",
        args.rounds,
        args.bursts,
        BURST.as_millis(),
        args.gap_ms
    );
    println!(
        "  pipeline (both sides): {} ms frames, RNNoise on, AEC3 on, VAD sensitivity 0.5 (-50 dBFS, {}-frame attack), Opus 32 kbit/s FEC DTX, default jitter buffer",
        FRAME_DURATION.as_millis(),
        VadConfig::default().attack_frames
    );
    let delay = |ns, aec| -> Result<String> {
        let d = pipeline_delay(ns, aec).context("running the pipeline without a clock")?;
        Ok(d.map_or_else(|| "not found".to_owned(), |d| format!("{:.1} ms", d as f64 / RATE * 1000.0)))
    };
    println!(
        "  the pipeline's own delay (4 s of noise through Capture, gate open, decoded in the same frame): {} (without AEC {}, Opus alone {})",
        delay(true, true)?,
        delay(true, false)?,
        delay(false, false)?
    );
    let load_before = load_average();

    let server = HearthServer::start(paths, &format!("{BENCH}-{}", std::process::id()), &[]).await?;
    let setup_token = server.setup_token().context("the server wrote no setup token")?.to_owned();
    let url = format!("http://{}", server.addr);
    let (alice, _alice_dir) = engine("alice").context("opening alice's engine")?;
    let (bob, _bob_dir) = engine("bob").context("opening bob's engine")?;
    let listener_account =
        alice.register(&url, &setup_token, "alice", PASSWORD).await.context("registering alice (admin)")?;
    alice.activate(&listener_account.id).await?.connected().await.context("alice going online")?;
    let (_, link) = alice.create_invite(Some(1), None).await.context("creating an invite")?;
    let speaker_account = bob
        .add_account_from_invite(&link, "bob", PASSWORD)
        .await
        .context("registering bob via the invite")?;
    let bob_session = bob.activate(&speaker_account.id).await?;
    bob_session.connected().await.context("bob going online")?;
    let channel =
        alice.create_channel("latency", ChannelKind::Voice).await.context("creating the voice channel")?;
    let alice_id = alice.session()?.user().context("alice has no user")?.id;
    let bob_id = bob_session.user().context("bob has no user")?.id;

    let mut hearth = Side::default();
    let mut floor = Side::default();
    let mut budget = Budget::default();
    println!("  round   tick phase (hearth / floor)   p50 hearth / floor   found");
    for round in 0..args.rounds {
        let script = signal.script();
        // Hearth: Bob speaks, Alice listens (her microphone stays silent).
        let mouth = ScriptedMic::new();
        mouth.say(script.clone());
        let ear = PcmSink::new();
        let settings = VoiceSettings { sounds: false, ..VoiceSettings::default() };
        let listening = alice
            .join_voice(
                channel.id,
                CallConfig::loopback(Vec::new()),
                settings.clone(),
                Box::new(ScriptedMic::new()),
                Box::new(ear.clone()),
            )
            .await
            .context("alice joining voice")?;
        let speaking = bob
            .join_voice(
                channel.id,
                CallConfig::loopback(Vec::new()),
                settings,
                Box::new(ScriptedMic::new()),
                Box::new(PcmSink::new()),
            )
            .await
            .context("bob joining voice")?;
        connected(&listening, bob_id).await?;
        connected(&speaking, alice_id).await?;
        let mut events = listening.subscribe();
        // The microphone is switched in once the call is up, so the lead silence is measured
        // from a connected call (join-time work is not in any burst).
        speaking.set_input(Box::new(mouth.clone()));
        wait_said(&mouth, signal.length()).await?;
        let mut hearth_jitter = None;
        while let Ok(event) = events.try_recv() {
            if let VoiceEvent::Quality { jitter, .. } = event {
                hearth_jitter = Some(jitter);
            }
        }
        speaking.leave().await;
        listening.leave().await;
        let hearth_round = signal.measure(&mouth, &ear);

        // Floor, with the phase the call had.
        let phase = hearth_round.phase.unwrap_or_default();
        let mouth = ScriptedMic::new();
        mouth.say(script);
        let ear = PcmSink::new();
        let floor_run = {
            let (mouth, ear) = (mouth.clone(), ear.clone());
            let length = signal.length();
            tokio::task::spawn_blocking(move || run_floor(mouth, ear, phase, length)).await??
        };
        let floor_round = signal.measure(&mouth, &ear);
        budget.merge(signal.budget(&floor_round, &floor_run, &mouth.reads(), &ear.recording()));
        println!(
            "  {:>5}   {:>5.1} / {:>5.1} ms             {:>5} / {:>5} ms   {}/{} / {}/{}{}",
            round + 1,
            ms(hearth_round.phase),
            ms(floor_round.phase),
            fmt_opt(hearth_round.latencies.clone().percentile_ms(50.0), 1),
            fmt_opt(floor_round.latencies.clone().percentile_ms(50.0), 1),
            hearth_round.latencies.len(),
            args.bursts,
            floor_round.latencies.len(),
            args.bursts,
            if floor_run.late_ticks > 0 {
                format!("  (floor: {} late ticks)", floor_run.late_ticks)
            } else {
                String::new()
            },
        );
        println!(
            "          jitter buffer target delay at the end: hearth {} / floor {}",
            describe_jitter(hearth_jitter.as_ref()),
            describe_jitter(Some(&floor_run.jitter))
        );
        hearth.add(hearth_round);
        floor.add(floor_round);
    }
    server.stop().await?;
    let load_after = load_average();

    println!();
    println!(
        "  mouth-to-ear of each burst's first sample (frame read -> its image heard: frame written + offset):"
    );
    println!("    hearth (webrtc via hearth-server): {}", hearth.correlated.describe5());
    println!("    floor ({PEER}):                {}", floor.correlated.describe5());
    println!("  the same, each call's first burst / the others (after the receiver moved its tick):");
    println!("    hearth: {} / {}", hearth.first.describe5(), hearth.later.describe5());
    println!("    floor:  {} / {}", floor.first.describe5(), floor.later.describe5());
    println!("  first audible sample (>= -28 dBFS; a cruder measure, for comparison):");
    println!("    hearth: {}", hearth.onset.describe5());
    println!("    floor:  {}", floor.onset.describe5());
    println!(
        "  burst correlation with the reference (min/median): hearth {} / floor {}",
        hearth.correlation_summary(),
        floor.correlation_summary()
    );
    if hearth.clipped + floor.clipped > 0 {
        println!(
            "  warning: bursts whose first 20 ms did not come out as sent (not in the percentiles): hearth {}, floor {}",
            hearth.clipped, floor.clipped
        );
    }
    budget.print(signal.delay);
    println!(
        "  load average before/after: {load_before} / {load_after} (2 cores; other builds share the machine)"
    );

    let expected = args.rounds * args.bursts;
    let mut metrics = Vec::new();
    for (name, q) in [("mouth_to_ear_p95_ms", 95.0), ("mouth_to_ear_p50_ms", 50.0)] {
        let value = hearth.correlated.percentile_ms(q);
        let peer = floor.correlated.percentile_ms(q);
        if let Some(r) = ratio(value, peer) {
            println!("  {name}: {} vs floor {} ms = {r:.2}x", fmt_opt(value, 1), fmt_opt(peer, 1));
        }
        metrics
            .push(Metric::new(BENCH, name, value, "ms").peer(PEER, peer).target("<= 1.3x floor and <= 40"));
    }
    if hearth.correlated.len() < expected || floor.correlated.len() < expected {
        println!(
            "  warning: bursts found: hearth {}/{expected}, floor {}/{expected} (lost bursts are not in the percentiles)",
            hearth.correlated.len(),
            floor.correlated.len()
        );
    }
    if hearth.correlated.len() == 0 || floor.correlated.len() == 0 {
        bail!("no burst was found at one side; nothing to compare");
    }
    Ok(metrics)
}

fn ms(d: Option<Duration>) -> f64 {
    d.map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0)
}

fn engine(name: &str) -> Result<(Engine, ScratchDir)> {
    let dir = ScratchDir::new(&format!("{BENCH}-{name}"))?;
    let engine = Engine::open_with(dir.path(), EngineOptions::default())?;
    Ok((engine, dir))
}

/// Waits until `voice` is connected to `peer`.
async fn connected(voice: &Voice, peer: UserId) -> Result<()> {
    let mut peers = voice.call().watch_peers();
    tokio::time::timeout(CONNECT_WAIT, async {
        loop {
            if peers.borrow_and_update().get(&peer).is_some_and(|p| p.state == PeerState::Connected) {
                return Ok(());
            }
            peers.changed().await.context("the call ended while connecting")?;
        }
    })
    .await
    .context("the voice connection did not come up in time")?
}

/// Waits until the mouth has said its whole script, plus the longest delay searched.
async fn wait_said(mouth: &ScriptedMic, length: Duration) -> Result<()> {
    let deadline = Instant::now() + length + Duration::from_secs(10);
    while !mouth.done() {
        if Instant::now() > deadline {
            bail!("the microphone was not read in time (audio thread stalled?)");
        }
        // The device is read on the audio thread's clock; there is no event to await.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(MAX_DELAY + Duration::from_millis(100)).await;
    Ok(())
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".to_owned())
}

/// The script of one round (a lead silence, then bursts each followed by a gap) and what the
/// pipeline makes of it without a clock.
struct Signal {
    burst: Vec<f32>,
    gap_frames: usize,
    bursts: usize,
    /// The burst's first sample above the onset level (for the first-audible measure).
    burst_onset: usize,
    /// The script through the pipeline with no clock: `Capture`, then each packet decoded in
    /// its own frame's slot (the pre-roll written back over the frames it belongs to). This is
    /// what a listener hears with no transport, jitter buffer or tick in between; its samples
    /// line up with the script's, so a burst's image in it starts `delay` after the burst.
    reference: Vec<f32>,
    /// The pipeline's own delay in samples (AEC3, RNNoise, Opus look-ahead).
    delay: usize,
}

/// |sample| from which sound counts as audible: 0.04 is -28 dBFS, 20 dB under the burst's peak.
const AUDIBLE: f32 = 0.04;
/// The onset whose arrival is timed: the first 20 ms of a burst's image.
const ONSET: usize = 960;
/// How far from the whole burst's position its onset is searched (the jitter buffer may have
/// stretched or skipped between them).
const ONSET_SLACK: usize = 1920;
/// Below this correlation with the reference, the onset did not come out as sent (clipped by
/// the gate, concealed, or played apart from the rest): the burst's latency does not count.
const ONSET_MIN_CORRELATION: f32 = 0.8;

impl Signal {
    fn new(gap: Duration, bursts: usize) -> Result<Signal> {
        let burst = voiced_burst();
        let burst_onset = burst.iter().position(|s| s.abs() >= AUDIBLE).unwrap_or(0);
        let mut signal =
            Signal { burst, gap_frames: frames(gap), bursts, burst_onset, reference: Vec::new(), delay: 0 };
        signal.reference = heard_without_clock(&signal.script())?;
        signal.delay = pipeline_delay(true, true)?.context("the pipeline's delay could not be measured")?;
        Ok(signal)
    }

    fn lead_frames() -> usize {
        frames(LEAD)
    }

    fn period_frames(&self) -> usize {
        self.burst.len().div_ceil(FRAME_SAMPLES) + self.gap_frames
    }

    /// Frame of the script where burst `i` starts.
    fn burst_frame(&self, i: usize) -> usize {
        Self::lead_frames() + i * self.period_frames()
    }

    fn script(&self) -> Vec<f32> {
        let mut script = vec![0.0; self.burst_frame(self.bursts) * FRAME_SAMPLES];
        for i in 0..self.bursts {
            let at = self.burst_frame(i) * FRAME_SAMPLES;
            script[at..at + self.burst.len()].copy_from_slice(&self.burst);
        }
        script
    }

    fn length(&self) -> Duration {
        FRAME_DURATION * u32::try_from(self.burst_frame(self.bursts)).unwrap_or(u32::MAX)
    }

    /// Where burst `i`'s image starts in the reference.
    fn image_start(&self, i: usize) -> usize {
        self.burst_frame(i) * FRAME_SAMPLES + self.delay
    }

    /// Finds every burst in what the ear recorded. A burst's latency is that of its first
    /// sample: from the read of the frame it went in with (bursts start on a frame boundary)
    /// to the instant its image is heard. The image is found by aligning the reference (the
    /// same decoded audio, so the peak is sharp, not one of the burst's pitch periods), and
    /// its first 20 ms must be found there too, as sent.
    fn measure(&self, mouth: &ScriptedMic, ear: &PcmSink) -> Round {
        let reads = mouth.reads();
        let recording = ear.recording();
        let samples = &recording.samples;
        let mut round = Round { phase: phase(&reads, &recording.written), ..Round::default() };
        let search = (MAX_DELAY.as_secs_f64() * RATE) as usize;
        for i in 0..self.bursts {
            let Some(&said_at) = reads.get(self.burst_frame(i)) else { continue };
            let from = self.image_start(i);
            let Some(image) = self.reference.get(from..from + self.burst.len()) else { continue };
            // From two frames before the burst went in (a frame written just before the read
            // instant may still hold it if the clocks' phases are close) to MAX_DELAY after.
            let start = recording.frame_at(said_at).saturating_sub(2) * FRAME_SAMPLES;
            let end = (start + self.delay + self.burst.len() + search).min(samples.len());
            if start + self.delay + self.burst.len() >= end {
                continue;
            }
            let window = &samples[start..end];
            let whole = synth::align(image, window, self.delay + search);
            round.correlations.push(whole.correlation);
            if whole.correlation < MIN_CORRELATION || whole.lag < 0 {
                continue;
            }
            let around = (whole.lag.unsigned_abs()).saturating_sub(ONSET_SLACK);
            let onset = synth::align(&image[..ONSET], &window[around..], 2 * ONSET_SLACK);
            let onset_lag = around as isize + onset.lag;
            if onset.correlation < ONSET_MIN_CORRELATION || onset_lag < 0 {
                round.clipped += 1;
                continue;
            }
            let Some(heard_at) = recording.heard_at(start + onset_lag.unsigned_abs()) else { continue };
            let latency = heard_at.saturating_duration_since(said_at);
            round.latencies.record(latency);
            round.found.push(Found { burst: i, latency, start, lag: onset_lag });
            if let Some(first) = window.iter().position(|s| s.abs() >= AUDIBLE)
                && let Some(heard) = recording.heard_at(start + first)
            {
                let said = said_at + Duration::from_secs_f64(self.burst_onset as f64 / RATE);
                round.onsets.record(heard.saturating_duration_since(said));
            }
        }
        round
    }

    /// Where a floor run's time went for each burst it found: the first packet of the burst's
    /// talkspurt, from the read of its frame to its playout, stage by stage.
    fn budget(&self, round: &Round, run: &FloorRun, reads: &[Instant], recording: &Recording) -> Budget {
        let mut budget = Budget::default();
        for found in &round.found {
            let first_frame = self.burst_frame(found.burst);
            let Some(packet) = run.sent.iter().find(|p| p.frame >= first_frame) else { continue };
            let (Some(&frame_read), Some(&tick_read)) = (reads.get(packet.frame), reads.get(packet.tick))
            else {
                continue;
            };
            let arrival = run.arrivals.iter().find(|(ts, _)| *ts == packet.timestamp).map(|&(_, at)| at);
            let inserted = run.inserted.iter().find(|(ts, _)| *ts == packet.timestamp).map(|&(_, at)| at);
            // Where the packet's frame starts in the recording: the image of the burst's first
            // sample, moved to the frame's first sample.
            let slot =
                packet.frame as isize * FRAME_SAMPLES as isize - self.image_start(found.burst) as isize;
            let index = found.start as isize + found.lag + slot;
            let played = usize::try_from(index).ok().and_then(|i| recording.heard_at(i));
            let (Some(arrival), Some(inserted), Some(played)) = (arrival, inserted, played) else { continue };
            let d = |a: Instant, b: Instant| b.saturating_duration_since(a);
            budget.hold.record(d(frame_read, tick_read));
            budget.capture.record(d(tick_read, packet.encoded));
            budget.send.record(d(packet.encoded, packet.sent));
            budget.network.record(d(packet.sent, arrival));
            budget.handoff.record(d(arrival, inserted));
            budget.playout.record(d(inserted, played));
            budget.total.record(found.latency);
        }
        budget
    }
}

/// The DSP's and codec's own delay in samples (AEC3 and its band filters, RNNoise, Opus
/// look-ahead): 4 s of white noise through `Capture` with the gate held open, each packet
/// decoded in the frame it was captured in, aligned with what went in. Noise, because the
/// delay is not the same at every frequency (the echo canceller's filters shift low
/// frequencies more): speech measures 22-28 ms depending on the voice's pitch, and a short
/// voiced burst correlates at every pitch period, 9 ms apart. Noise weighs all frequencies
/// alike and has a single peak.
fn pipeline_delay(noise_suppression: bool, echo_cancellation: bool) -> Result<Option<usize>> {
    let mut rng = synth::Rng::new(0x6e6f697365);
    let noise: Vec<f32> = (0..4 * FRAME_SAMPLES * 50).map(|_| (rng.unit() as f32 - 0.5) * 0.3).collect();
    let mut capture = Capture::new(CaptureConfig {
        mode: TransmitMode::PushToTalk,
        noise_suppression,
        echo_cancellation,
        ..CaptureConfig::default()
    })?;
    capture.set_push_to_talk(true);
    let mut decoder = Decoder::new()?;
    let mut out = Vec::with_capacity(noise.len());
    for chunk in noise.chunks_exact(FRAME_SAMPLES) {
        let mut mic = SILENT_FRAME;
        mic.copy_from_slice(chunk);
        capture.far_end(&SILENT_FRAME)?;
        let mut frame = SILENT_FRAME;
        if let Some(packet) = capture.process(&mic)?.packet {
            decoder.decode(&packet.payload, &mut frame)?;
        }
        out.extend_from_slice(&frame);
    }
    // Opus codes noise loosely (and RNNoise takes most of it out), so the peak is low, but it
    // stands alone: elsewhere the correlation is under 0.05.
    let found = synth::align(&noise, &out, (0.1 * RATE) as usize);
    Ok((found.correlation >= 0.1 && found.lag >= 0).then_some(found.lag.unsigned_abs()))
}

/// `script` through the pipeline with no clock (see [`Signal::reference`]).
fn heard_without_clock(script: &[f32]) -> Result<Vec<f32>> {
    let mut capture = capture()?;
    let mut decoder = Decoder::new()?;
    let mut out = Vec::with_capacity(script.len());
    for chunk in script.chunks_exact(FRAME_SAMPLES) {
        let mut mic = SILENT_FRAME;
        mic.copy_from_slice(chunk);
        capture.far_end(&SILENT_FRAME)?;
        let output = capture.process(&mic)?;
        // The pre-roll's frames were output as silence when they were held; write them back
        // over those frames, as the far end's jitter buffer plays them.
        let held = output.pre_roll.len();
        for (age, packet) in (1..=held).rev().zip(&output.pre_roll) {
            let mut earlier = SILENT_FRAME;
            decoder.decode(&packet.payload, &mut earlier)?;
            let at = out.len() - age * FRAME_SAMPLES;
            out[at..at + FRAME_SAMPLES].copy_from_slice(&earlier);
        }
        let mut frame = SILENT_FRAME;
        if let Some(packet) = output.packet {
            decoder.decode(&packet.payload, &mut frame)?;
        }
        out.extend_from_slice(&frame);
    }
    Ok(out)
}

fn frames(d: Duration) -> usize {
    (d.as_micros() / FRAME_DURATION.as_micros()) as usize
}

/// 200 ms of continuous synthetic voice (a syllable of `hearth_voice::synth`, which RNNoise
/// takes for speech), with a 5 ms fade at the end. It starts with the syllable's own 20 ms
/// attack, so the onset is not a click.
fn voiced_burst() -> Vec<f32> {
    let len = (BURST.as_secs_f64() * RATE) as usize;
    let mut best: Vec<f32> = Vec::new();
    for n in 0..10 {
        let speech = synth::utterance(&Speaker::speaker(n), 1.5);
        let Some(start) = speech.iter().position(|&s| s != 0.0) else { continue };
        let run = speech[start..].iter().position(|&s| s == 0.0).unwrap_or(speech.len() - start);
        if run >= len {
            best = speech[start..start + len].to_vec();
            break;
        }
        if best.is_empty() {
            best = speech[start..(start + len).min(speech.len())].to_vec();
        }
    }
    best.resize(len, 0.0);
    let fade = (0.005 * RATE) as usize;
    for (i, s) in best[len - fade..].iter_mut().enumerate() {
        *s *= 1.0 - i as f32 / fade as f32;
    }
    best
}

/// The phase of the receiver's writes after the sender's reads: the median over the round of
/// (write instant - first read instant) modulo one frame.
fn phase(reads: &[Instant], written: &[Instant]) -> Option<Duration> {
    let first = *reads.first()?;
    let frame = FRAME_DURATION.as_micros();
    let mut phases: Vec<u128> = written
        .iter()
        .filter(|&&w| w >= first)
        .map(|&w| w.duration_since(first).as_micros() % frame)
        .collect();
    if phases.is_empty() {
        return None;
    }
    // A circular quantity: measure it around the first sample so that a phase near 0 is
    // not split between 0 and 19.9 ms.
    let pivot = phases[0];
    let mut shifted: Vec<i128> = phases
        .drain(..)
        .map(|p| {
            let d = p as i128 - pivot as i128;
            let f = frame as i128;
            (d + f / 2).rem_euclid(f) - f / 2
        })
        .collect();
    shifted.sort_unstable();
    let median = shifted[shifted.len() / 2] + pivot as i128;
    let us = median.rem_euclid(frame as i128) as u64;
    Some(Duration::from_micros(us))
}

/// One side's measurements in one round.
#[derive(Default)]
struct Round {
    phase: Option<Duration>,
    latencies: Latencies,
    onsets: Latencies,
    correlations: Vec<f32>,
    /// Bursts found whose onset did not come out as sent.
    clipped: usize,
    found: Vec<Found>,
}

/// A burst found in the recording.
struct Found {
    burst: usize,
    latency: Duration,
    /// Where the searched window starts in the recording, and the onset's lag in it.
    start: usize,
    lag: isize,
}

/// One side's measurements over all rounds.
#[derive(Default)]
struct Side {
    correlated: Latencies,
    /// The same, split: each call's first burst (before its receiver could move its tick to
    /// the talker's packets) and the others.
    first: Latencies,
    later: Latencies,
    onset: Latencies,
    correlations: Vec<f32>,
    clipped: usize,
}

impl Side {
    fn add(&mut self, round: Round) {
        for found in &round.found {
            if found.burst == 0 { &mut self.first } else { &mut self.later }.record(found.latency);
        }
        self.correlated.merge(round.latencies);
        self.onset.merge(round.onsets);
        self.correlations.extend(round.correlations);
        self.clipped += round.clipped;
    }

    fn correlation_summary(&self) -> String {
        let mut c = self.correlations.clone();
        if c.is_empty() {
            return "n/a".to_owned();
        }
        c.sort_by(f32::total_cmp);
        format!("{:.2}/{:.2}", c[0], c[c.len() / 2])
    }
}

trait Describe5 {
    fn describe5(&mut self) -> String;
}

impl Describe5 for Latencies {
    /// "min a / p50 b / p95 c / max d ms (n)".
    fn describe5(&mut self) -> String {
        let p = |l: &mut Latencies, q| fmt_opt(l.percentile_ms(q), 1);
        format!(
            "min {} / p50 {} / p95 {} / max {} ms ({} bursts)",
            p(self, 0.0),
            p(self, 50.0),
            p(self, 95.0),
            p(self, 100.0),
            self.len()
        )
    }
}

/// What the floor run saw of its own scheduling.
struct FloorRun {
    /// Ticks that started more than a frame after their deadline (either thread).
    late_ticks: u64,
    /// The receiver's jitter buffer at the end.
    jitter: JitterStats,
    /// Every packet sent, in order.
    sent: Vec<SentPacket>,
    /// When the UDP reader got each packet (by RTP timestamp), and when the receiving audio
    /// thread put it into the jitter buffer.
    arrivals: Vec<(u32, Instant)>,
    inserted: Vec<(u32, Instant)>,
}

/// What the floor's receiving thread saw: its late ticks, its jitter buffer at the end, and
/// when it put each packet (by RTP timestamp) into the jitter buffer.
struct Received {
    late: u64,
    jitter: JitterStats,
    inserted: Vec<(u32, Instant)>,
}

/// A packet the floor's sender sent.
struct SentPacket {
    timestamp: u32,
    /// The script frame it holds, and the sender's tick (script frame read) that sent it:
    /// later for a talkspurt's pre-roll.
    frame: usize,
    tick: usize,
    encoded: Instant,
    sent: Instant,
}

/// Where the floor's time went, per stage, over the bursts it found (see [`Signal::budget`]).
#[derive(Default)]
struct Budget {
    hold: Latencies,
    capture: Latencies,
    send: Latencies,
    network: Latencies,
    handoff: Latencies,
    playout: Latencies,
    total: Latencies,
}

impl Budget {
    fn merge(&mut self, other: Budget) {
        self.hold.merge(other.hold);
        self.capture.merge(other.capture);
        self.send.merge(other.send);
        self.network.merge(other.network);
        self.handoff.merge(other.handoff);
        self.playout.merge(other.playout);
        self.total.merge(other.total);
    }

    fn print(&mut self, delay: usize) {
        if self.total.len() == 0 {
            return;
        }
        println!(
            "  where the floor's time goes, per burst (the first packet of its talkspurt; p50 [p5..p95] over {} bursts):",
            self.total.len()
        );
        let mut sum = 0.0;
        let delay_ms = delay as f64 / RATE * 1000.0;
        for (what, stage) in [
            ("VAD hold (frame read -> the tick that sends it)", &mut self.hold),
            ("capture (AEC3, RNNoise, VAD, Opus)", &mut self.capture),
            ("send (UDP send call)", &mut self.send),
            ("loopback (send -> UDP reader)", &mut self.network),
            ("to the jitter buffer (reader -> audio thread)", &mut self.handoff),
            ("jitter buffer + render tick (inserted -> written)", &mut self.playout),
        ] {
            let mut p = |q| stage.percentile_ms(q).unwrap_or(f64::NAN);
            sum += p(50.0);
            println!("    {what:<52} {:>5.1} [{:.1}..{:.1}] ms", p(50.0), p(5.0), p(95.0));
        }
        println!("    {:<52} {delay_ms:>5.1} ms", "pipeline delay (where the audio sits in the frames)");
        println!(
            "    {:<52} {:>5.1} ms (measured: p50 {})",
            "sum of the p50s",
            sum + delay_ms,
            fmt_opt(self.total.percentile_ms(50.0), 1)
        );
    }
}

fn describe_jitter(stats: Option<&JitterStats>) -> String {
    match stats {
        Some(s) => format!("{:.1} ms (late {}, lost {})", s.target_delay_ms, s.late, s.lost),
        None => "n/a".to_owned(),
    }
}

/// The pipeline's settings as the engine sets them for [`VoiceSettings::default`].
fn capture() -> Result<Capture> {
    capture_from(rand::random())
}

fn capture_from(initial_timestamp: u32) -> Result<Capture> {
    let mut capture = Capture::new(CaptureConfig { initial_timestamp, ..CaptureConfig::default() })?;
    capture.set_sensitivity(VoiceSettings::default().sensitivity);
    Ok(capture)
}

/// A packet from the floor's UDP reader to its receiving audio thread.
struct Datagram {
    seq: u16,
    timestamp: u32,
    marker: bool,
    payload: Vec<u8>,
    arrival: Instant,
}

const HEADER: usize = 8;
/// As the engine's audio thread: this far behind, the missed ticks are skipped.
const STALL: Duration = Duration::from_millis(100);

/// Runs the floor for `length` (+ the search tail): a sending and a receiving audio thread,
/// the receiver's ticks `phase` after the sender's, and a UDP reader feeding the receiver.
fn run_floor(mouth: ScriptedMic, ear: PcmSink, phase: Duration, length: Duration) -> Result<FloorRun> {
    let rx_socket = UdpSocket::bind("127.0.0.1:0").context("binding the floor's receive socket")?;
    rx_socket.set_read_timeout(Some(Duration::from_millis(50)))?;
    let tx_socket = UdpSocket::bind("127.0.0.1:0").context("binding the floor's send socket")?;
    tx_socket.connect(rx_socket.local_addr()?)?;
    let stop = Arc::new(AtomicBool::new(false));
    let (inbox_tx, inbox) = mpsc::channel::<Datagram>();

    let reader = {
        let stop = stop.clone();
        std::thread::Builder::new().name("floor-udp-rx".into()).spawn(move || {
            let mut arrivals = Vec::new();
            let mut buf = [0u8; 1500];
            while !stop.load(Ordering::Relaxed) {
                let n = match rx_socket.recv(&mut buf) {
                    Ok(n) => n,
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) =>
                    {
                        continue;
                    }
                    Err(_) => break,
                };
                let arrival = Instant::now();
                if n <= HEADER {
                    continue;
                }
                let seq = u16::from_be_bytes([buf[0], buf[1]]);
                let marker = buf[2] != 0;
                let timestamp = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
                arrivals.push((timestamp, arrival));
                let datagram = Datagram { seq, timestamp, marker, payload: buf[HEADER..n].to_vec(), arrival };
                if inbox_tx.send(datagram).is_err() {
                    break;
                }
            }
            arrivals
        })?
    };

    // Both schedules from one instant a little ahead, so neither starts late.
    let start = Instant::now() + Duration::from_millis(50);
    let end = start + length + MAX_DELAY + Duration::from_millis(100);
    let sender = {
        let mut mouth = mouth;
        std::thread::Builder::new().name("floor-send".into()).spawn(
            move || -> Result<(u64, Vec<SentPacket>)> {
                raise_priority();
                let initial: u32 = rand::random();
                let mut capture = capture_from(initial)?;
                let mut own = Playback::<u8>::new(PlaybackConfig::default());
                let mut late = 0;
                let mut seq: u16 = rand::random();
                let mut datagram = Vec::with_capacity(1500);
                let mut sent = Vec::new();
                let mut tick = 0;
                ticks(start, end, &mut late, |now| {
                    // As the engine's tick: render (nothing to play here) and feed it to the echo
                    // canceller, then read the microphone and capture.
                    let mut out = SILENT_FRAME;
                    own.render(now, &mut out);
                    capture.far_end(&out)?;
                    let mut mic = SILENT_FRAME;
                    mouth.read_frame(&mut mic)?;
                    // As the engine: a talkspurt's pre-roll (the onset the VAD attack held back,
                    // with its own timestamps) goes first, then the frame's packet.
                    let output = capture.process(&mic)?;
                    let encoded = Instant::now();
                    for packet in output.pre_roll.iter().chain(output.packet.as_ref()) {
                        datagram.clear();
                        datagram.extend_from_slice(&seq.to_be_bytes());
                        datagram.extend_from_slice(&[u8::from(packet.marker), 0]);
                        datagram.extend_from_slice(&packet.rtp_timestamp.to_be_bytes());
                        datagram.extend_from_slice(&packet.payload);
                        tx_socket.send(&datagram).context("sending a floor datagram")?;
                        seq = seq.wrapping_add(1);
                        let frame =
                            (packet.rtp_timestamp.wrapping_sub(initial) / FRAME_SAMPLES as u32) as usize;
                        let timestamp = packet.rtp_timestamp;
                        sent.push(SentPacket { timestamp, frame, tick, encoded, sent: Instant::now() });
                    }
                    tick += 1;
                    Ok(())
                })?;
                Ok((late, sent))
            },
        )?
    };
    let receiver = {
        let mut ear = ear;
        std::thread::Builder::new().name("floor-recv".into()).spawn(move || -> Result<Received> {
            raise_priority();
            let mut inserted = Vec::new();
            let epoch = Instant::now();
            let mut capture = capture()?;
            let mut playback = Playback::<u8>::new(PlaybackConfig::default());
            playback.add_peer(0)?;
            let mut late = 0;
            let mut start = start + phase;
            let mut n: u32 = 0;
            'ticks: loop {
                let deadline = start + FRAME_DURATION * n;
                if deadline > end {
                    break;
                }
                // Packets enter the jitter buffer as they arrive, until the tick is due.
                loop {
                    let now = Instant::now();
                    let datagram = if now >= deadline {
                        match inbox.try_recv() {
                            Ok(d) => d,
                            Err(mpsc::TryRecvError::Empty) => break,
                            Err(mpsc::TryRecvError::Disconnected) => break 'ticks,
                        }
                    } else {
                        match inbox.recv_timeout(deadline - now) {
                            Ok(d) => d,
                            Err(mpsc::RecvTimeoutError::Timeout) => break,
                            Err(mpsc::RecvTimeoutError::Disconnected) => break 'ticks,
                        }
                    };
                    let arrival = datagram.arrival.saturating_duration_since(epoch);
                    let packet = ReceivedPacket {
                        sequence: datagram.seq,
                        timestamp: datagram.timestamp,
                        marker: datagram.marker,
                        payload: &datagram.payload,
                        arrival,
                    };
                    // A packet the buffer refuses (late, duplicate) is one the engine drops too.
                    let _inserted = playback.receive(&0, &packet);
                    inserted.push((datagram.timestamp, Instant::now()));
                }
                if Instant::now() > deadline + FRAME_DURATION {
                    late += 1;
                }
                let mut out = SILENT_FRAME;
                let now = epoch.elapsed();
                playback.render(now, &mut out);
                ear.write_frame(&out)?;
                capture.far_end(&out)?;
                // The listener's microphone is silent, but it is captured as in a call.
                capture.process(&SILENT_FRAME)?;
                // As the engine: the schedule moves in a pause to tick just after the
                // talker's packets arrive.
                match playback.tick_shift(now) {
                    Some(TickShift::Earlier(by)) => start = start.checked_sub(by).unwrap_or(start),
                    Some(TickShift::Later(by)) => start += by,
                    None => {}
                }
                n += 1;
                let due = start + FRAME_DURATION * n;
                if Instant::now() > due + STALL {
                    n = (start.elapsed().as_micros() / FRAME_DURATION.as_micros()) as u32 + 1;
                }
            }
            let jitter = playback.peer(&0).map(|p| p.stats).unwrap_or_default();
            Ok(Received { late, jitter, inserted })
        })?
    };
    let sent = sender.join();
    let received = receiver.join();
    stop.store(true, Ordering::Relaxed);
    let arrivals = reader.join().map_err(|_| anyhow::anyhow!("the floor's UDP reader panicked"))?;
    let (late_send, sent) = sent.map_err(|_| anyhow::anyhow!("the floor's sending thread panicked"))??;
    let Received { late: late_recv, jitter, inserted } =
        received.map_err(|_| anyhow::anyhow!("the floor's receiving thread panicked"))??;
    Ok(FloorRun { late_ticks: late_send + late_recv, jitter, sent, arrivals, inserted })
}

/// Calls `tick` on deadlines `start + n × 10 ms` until `end`, as the engine's audio thread
/// does (never re-anchored; more than 100 ms behind, it skips instead of bursting).
fn ticks(
    start: Instant,
    end: Instant,
    late: &mut u64,
    mut tick: impl FnMut(Duration) -> Result<()>,
) -> Result<()> {
    let epoch = Instant::now();
    let mut n: u32 = 0;
    loop {
        let deadline = start + FRAME_DURATION * n;
        if deadline > end {
            return Ok(());
        }
        let now = Instant::now();
        if now < deadline {
            std::thread::sleep(deadline - now);
        } else if now > deadline + FRAME_DURATION {
            *late += 1;
        }
        tick(epoch.elapsed())?;
        n += 1;
        let due = start + FRAME_DURATION * n;
        if Instant::now() > due + STALL {
            n = (start.elapsed().as_micros() / FRAME_DURATION.as_micros()) as u32 + 1;
        }
    }
}

/// nice -10 for the calling thread, as the engine asks for its audio thread (best effort).
fn raise_priority() {
    // SAFETY: plain syscalls on the calling thread's own id; no memory is passed.
    let result = unsafe { libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, -10) };
    if result != 0 {
        eprintln!("note: floor audio thread keeps normal priority: {}", std::io::Error::last_os_error());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phase_near_a_frame_boundary_is_not_averaged_to_the_middle() {
        let t0 = Instant::now();
        let reads = vec![t0];
        // Writes alternate just before and just after a frame boundary.
        let frame = FRAME_DURATION;
        let written: Vec<Instant> = (1..20u32)
            .map(|i| t0 + frame * i + if i % 2 == 0 { frame / 100 } else { frame * 99 / 100 })
            .collect();
        let p = phase(&reads, &written).expect("a phase");
        assert!(p < frame / 20 || p > frame * 19 / 20, "{p:?}");
    }

    #[test]
    fn the_script_places_each_burst_on_a_frame_boundary() {
        let signal = Signal::new(Duration::from_millis(500), 3).unwrap();
        let script = signal.script();
        for i in 0..3 {
            let at = signal.burst_frame(i) * FRAME_SAMPLES;
            assert_eq!(&script[at..at + signal.burst.len()], &signal.burst[..]);
            assert!(script[at - FRAME_SAMPLES..at].iter().all(|&s| s == 0.0));
        }
        assert_eq!(script.len(), signal.burst_frame(3) * FRAME_SAMPLES);
    }
}
