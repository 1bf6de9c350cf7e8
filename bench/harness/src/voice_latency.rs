//! `voice-latency`: mouth-to-ear latency of a voice call over loopback, against a raw-UDP floor
//! built from the same voice pipeline, measured in the same run.
//!
//! A synthetic microphone ([`Mouth`]) says a 200 ms voiced burst after a silence, again and
//! again, and remembers the instant each of its frames was read; a synthetic speaker ([`Ear`])
//! records every frame written and the instant it was. The latency of a burst is where its
//! samples come out minus where they went in: the burst is found in the recording by
//! cross-correlation (sample-exact), so the output instant is the write instant of the frame it
//! starts in plus its offset in that frame, and the input instant is the read instant of the
//! frame it starts in (the burst starts on a frame boundary). No device buffer is in either.
//!
//! - **Hearth**: two engines (`hearth-client`) registered on a real `hearth-server` on
//!   loopback join a voice channel with [`Engine::join_voice`]: webrtc-rs connections, the
//!   engine's audio threads and link tasks, default voice settings (noise suppression and echo
//!   cancellation on, voice activity, sensitivity 0.5) except the join/leave sounds.
//! - **Floor** (`raw-udp-opus`): the same `hearth_voice::Capture` and `Playback` with the same
//!   settings, driven by two threads ticking like the engine's audio thread (deadlines
//!   `start + n × 20 ms`, nice -10, packets into the jitter buffer as they arrive), with the
//!   packets sent as plain UDP datagrams on 127.0.0.1 (sequence number and RTP timestamp in an
//!   8-byte header). No webrtc, no server, no async runtime: what is left is the pipeline.
//!
//! Each round is one Hearth call then one floor run. The two audio threads of a call tick on
//! their own schedules, so the phase between the sender's reads and the receiver's writes is
//! random per call and worth up to a frame of latency; the floor run copies the phase the
//! Hearth call had, so each pair differs by the transport and not by luck, and the rounds
//! together sample many phases.

use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use hearth_client::call::{CallConfig, PeerState};
use hearth_client::voice::{Voice, VoiceEvent, VoiceSettings};
use hearth_client::{Engine, EngineOptions};
use hearth_protocol::UserId;
use hearth_protocol::model::ChannelKind;
use hearth_voice::synth::{self, Voice as Speaker};
use hearth_voice::{
    AudioInput, AudioOutput, Capture, CaptureConfig, Decoder, DeviceError, FRAME_DURATION, FRAME_SAMPLES,
    JitterStats, PcmFrame, Playback, PlaybackConfig, SILENT_FRAME,
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
    let signal = Signal::new(Duration::from_millis(args.gap_ms));
    println!(
        "voice-latency: {} rounds x {} bursts of {} ms voiced sound after {} ms of silence, per side",
        args.rounds,
        args.bursts,
        BURST.as_millis(),
        args.gap_ms
    );
    println!(
        "  pipeline (both sides): RNNoise on, AEC3 on, VAD sensitivity 0.5 (-50 dBFS, 2-frame attack), Opus 32 kbit/s FEC DTX, default jitter buffer"
    );
    let delay = |ns, aec| -> Result<String> {
        let d = signal.algorithmic_delay(ns, aec).context("running the pipeline without a clock")?;
        Ok(d.map_or_else(|| "burst not found".to_owned(), |d| format!("{:.1} ms", d * 1000.0)))
    };
    println!(
        "  the pipeline's own delay (capture -> Opus -> decode in the same frame, no clock): {} (without AEC {})",
        delay(true, true)?,
        delay(true, false)?
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
    println!("  round   tick phase (hearth / floor)   p50 hearth / floor   found");
    for round in 0..args.rounds {
        let script = signal.script(args.bursts);
        // Hearth: Bob speaks, Alice listens (her microphone stays silent).
        let mouth = Mouth::new(script.clone());
        let ear = Ear::default();
        let settings = VoiceSettings { sounds: false, ..VoiceSettings::default() };
        let listening = alice
            .join_voice(
                channel.id,
                CallConfig::loopback(Vec::new()),
                settings.clone(),
                Box::new(Mouth::new(Vec::new())),
                Box::new(ear.clone()),
            )
            .await
            .context("alice joining voice")?;
        let speaking = bob
            .join_voice(
                channel.id,
                CallConfig::loopback(Vec::new()),
                settings,
                Box::new(Mouth::idle()),
                Box::new(Ear::default()),
            )
            .await
            .context("bob joining voice")?;
        connected(&listening, bob_id).await?;
        connected(&speaking, alice_id).await?;
        let mut events = listening.subscribe();
        // The microphone is switched in once the call is up, so the lead silence is measured
        // from a connected call (join-time work is not in any burst).
        speaking.set_input(Box::new(mouth.clone()));
        wait_said(&mouth, signal.length(args.bursts)).await?;
        let mut hearth_jitter = None;
        while let Ok(event) = events.try_recv() {
            if let VoiceEvent::Quality { jitter, .. } = event {
                hearth_jitter = Some(jitter);
            }
        }
        speaking.leave().await;
        listening.leave().await;
        let hearth_round = signal.measure(&mouth, &ear, args.bursts);

        // Floor, with the phase the call had.
        let phase = hearth_round.phase.unwrap_or_default();
        let mouth = Mouth::new(script);
        let ear = Ear::default();
        let floor_run = {
            let (mouth, ear) = (mouth.clone(), ear.clone());
            let length = signal.length(args.bursts);
            tokio::task::spawn_blocking(move || run_floor(mouth, ear, phase, length)).await??
        };
        let floor_round = signal.measure(&mouth, &ear, args.bursts);
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
    println!("  mouth-to-ear (burst found by cross-correlation; frame read -> frame written + offset):");
    println!("    hearth (webrtc via hearth-server): {}", hearth.correlated.describe5());
    println!("    floor ({PEER}):                {}", floor.correlated.describe5());
    println!("  first audible sample (>= -28 dBFS; includes the onset the VAD attack holds back):");
    println!("    hearth: {}", hearth.onset.describe5());
    println!("    floor:  {}", floor.onset.describe5());
    println!(
        "  burst correlation (min/median): hearth {} / floor {}",
        hearth.correlation_summary(),
        floor.correlation_summary()
    );
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
async fn wait_said(mouth: &Mouth, length: Duration) -> Result<()> {
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

/// The script of one round: a lead silence, then bursts each followed by a gap.
struct Signal {
    burst: Vec<f32>,
    gap_frames: usize,
    /// The burst's first sample above the onset level (for the first-audible measure).
    burst_onset: usize,
}

/// |sample| from which sound counts as audible: 0.04 is -28 dBFS, 20 dB under the burst's peak.
const AUDIBLE: f32 = 0.04;

impl Signal {
    fn new(gap: Duration) -> Signal {
        let burst = voiced_burst();
        let burst_onset = burst.iter().position(|s| s.abs() >= AUDIBLE).unwrap_or(0);
        Signal { burst, gap_frames: frames(gap), burst_onset }
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

    fn script(&self, bursts: usize) -> Vec<f32> {
        let mut script = vec![0.0; self.burst_frame(bursts) * FRAME_SAMPLES];
        for i in 0..bursts {
            let at = self.burst_frame(i) * FRAME_SAMPLES;
            script[at..at + self.burst.len()].copy_from_slice(&self.burst);
        }
        script
    }

    /// The delay the DSP and codec add by themselves (AEC, RNNoise, Opus look-ahead), in
    /// seconds: the script through `Capture` and straight into an Opus decoder, each packet
    /// decoded in the frame it was captured in, so no tick, transport or jitter buffer counts.
    fn algorithmic_delay(&self, noise_suppression: bool, echo_cancellation: bool) -> Result<Option<f64>> {
        let mut capture = capture()?;
        capture.set_noise_suppression(noise_suppression);
        capture.set_echo_cancellation(echo_cancellation);
        let mut decoder = Decoder::new()?;
        let script = self.script(2);
        let mut out = Vec::with_capacity(script.len());
        for chunk in script.chunks_exact(FRAME_SAMPLES) {
            let mut mic = SILENT_FRAME;
            mic.copy_from_slice(chunk);
            capture.far_end(&SILENT_FRAME)?;
            let mut frame = SILENT_FRAME;
            // The pre-roll's frames were output as silence when they were held; write them
            // back over those frames, as the far end's jitter buffer would play them.
            let output = capture.process(&mic)?;
            let held = output.pre_roll.len();
            for (age, packet) in (1..=held).rev().zip(&output.pre_roll) {
                let mut earlier = SILENT_FRAME;
                decoder.decode(&packet.payload, &mut earlier)?;
                let at = out.len() - age * FRAME_SAMPLES;
                out[at..at + FRAME_SAMPLES].copy_from_slice(&earlier);
            }
            if let Some(packet) = output.packet {
                decoder.decode(&packet.payload, &mut frame)?;
            }
            out.extend_from_slice(&frame);
        }
        // The second burst: the first after a gap like every measured one.
        let at = self.burst_frame(1) * FRAME_SAMPLES;
        let search = (MAX_DELAY.as_secs_f64() * RATE) as usize;
        let window = &out[at..(at + self.burst.len() + search).min(out.len())];
        let found = synth::align(&self.burst, window, search);
        Ok((found.correlation >= MIN_CORRELATION && found.lag >= 0).then(|| found.lag as f64 / RATE))
    }

    fn length(&self, bursts: usize) -> Duration {
        FRAME_DURATION * u32::try_from(self.burst_frame(bursts)).unwrap_or(u32::MAX)
    }

    /// Finds every burst in what the ear recorded.
    fn measure(&self, mouth: &Mouth, ear: &Ear, bursts: usize) -> Round {
        let reads = mouth.reads();
        let (samples, written) = ear.recording();
        let mut round = Round { phase: phase(&reads, &written), ..Round::default() };
        let search = (MAX_DELAY.as_secs_f64() * RATE) as usize;
        for i in 0..bursts {
            let Some(&said_at) = reads.get(self.burst_frame(i)) else { continue };
            // From two frames before the burst went in (a frame written just before the read
            // instant may still hold it if the clocks' phases are close) to MAX_DELAY after.
            let first = written.partition_point(|&w| w < said_at).saturating_sub(2);
            let start = first * FRAME_SAMPLES;
            let end = (start + self.burst.len() + search).min(samples.len());
            if start + self.burst.len() >= end {
                continue;
            }
            let window = &samples[start..end];
            let found = synth::align(&self.burst, window, search);
            round.correlations.push(found.correlation);
            let at_time = |at: usize| {
                let frame = (at / FRAME_SAMPLES).min(written.len() - 1);
                written[frame] + Duration::from_secs_f64((at % FRAME_SAMPLES) as f64 / RATE)
            };
            if found.correlation >= MIN_CORRELATION && found.lag >= 0 {
                let heard_at = at_time(start + found.lag.unsigned_abs());
                round.latencies.record(heard_at.saturating_duration_since(said_at));
            }
            if let Some(onset) = window.iter().position(|s| s.abs() >= AUDIBLE) {
                let said = said_at + Duration::from_secs_f64(self.burst_onset as f64 / RATE);
                round.onsets.record(at_time(start + onset).saturating_duration_since(said));
            }
        }
        round
    }
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
}

/// One side's measurements over all rounds.
#[derive(Default)]
struct Side {
    correlated: Latencies,
    onset: Latencies,
    correlations: Vec<f32>,
}

impl Side {
    fn add(&mut self, round: Round) {
        self.correlated.merge(round.latencies);
        self.onset.merge(round.onsets);
        self.correlations.extend(round.correlations);
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

/// The synthetic microphone: plays its script once, then silence, and remembers the instant
/// each frame of the script was read (index = frame of the script).
#[derive(Clone)]
struct Mouth(Arc<Mutex<MouthState>>);

struct MouthState {
    script: Vec<f32>,
    position: usize,
    reads: Vec<Instant>,
}

impl Mouth {
    fn new(script: Vec<f32>) -> Mouth {
        Mouth(Arc::new(Mutex::new(MouthState { script, position: 0, reads: Vec::new() })))
    }

    /// A microphone in a silent room.
    fn idle() -> Mouth {
        Mouth::new(Vec::new())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MouthState> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn done(&self) -> bool {
        let s = self.lock();
        s.position >= s.script.len()
    }

    fn reads(&self) -> Vec<Instant> {
        self.lock().reads.clone()
    }
}

impl AudioInput for Mouth {
    fn read_frame(&mut self, frame: &mut PcmFrame) -> Result<bool, DeviceError> {
        let now = Instant::now();
        let mut s = self.lock();
        frame.fill(0.0);
        if s.position < s.script.len() {
            let end = (s.position + FRAME_SAMPLES).min(s.script.len());
            let n = end - s.position;
            frame[..n].copy_from_slice(&s.script[s.position..end]);
            s.position = end;
            s.reads.push(now);
        }
        Ok(true)
    }
}

/// The synthetic speaker: records every frame and the instant it was written.
#[derive(Clone, Default)]
struct Ear(Arc<Mutex<EarState>>);

#[derive(Default)]
struct EarState {
    samples: Vec<f32>,
    written: Vec<Instant>,
}

impl Ear {
    fn recording(&self) -> (Vec<f32>, Vec<Instant>) {
        let s = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        (s.samples.clone(), s.written.clone())
    }
}

impl AudioOutput for Ear {
    fn write_frame(&mut self, frame: &PcmFrame) -> Result<(), DeviceError> {
        let now = Instant::now();
        let mut s = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        s.samples.extend_from_slice(frame);
        s.written.push(now);
        Ok(())
    }

    fn queued_samples(&self) -> usize {
        0
    }
}

/// What the floor run saw of its own scheduling.
struct FloorRun {
    /// Ticks that started more than a frame after their deadline (either thread).
    late_ticks: u64,
    /// The receiver's jitter buffer at the end.
    jitter: JitterStats,
}

fn describe_jitter(stats: Option<&JitterStats>) -> String {
    match stats {
        Some(s) => format!("{:.1} ms (late {}, lost {})", s.target_delay_ms, s.late, s.lost),
        None => "n/a".to_owned(),
    }
}

/// The pipeline's settings as the engine sets them for [`VoiceSettings::default`].
fn capture() -> Result<Capture> {
    let mut capture =
        Capture::new(CaptureConfig { initial_timestamp: rand::random(), ..CaptureConfig::default() })?;
    capture.set_sensitivity(VoiceSettings::default().sensitivity);
    Ok(capture)
}

/// A packet from the floor's UDP reader to its receiving audio thread.
struct Datagram {
    seq: u16,
    timestamp: u32,
    payload: Vec<u8>,
    arrival: Instant,
}

const HEADER: usize = 8;

/// Runs the floor for `length` (+ the search tail): a sending and a receiving audio thread,
/// the receiver's ticks `phase` after the sender's, and a UDP reader feeding the receiver.
fn run_floor(mouth: Mouth, ear: Ear, phase: Duration, length: Duration) -> Result<FloorRun> {
    let rx_socket = UdpSocket::bind("127.0.0.1:0").context("binding the floor's receive socket")?;
    rx_socket.set_read_timeout(Some(Duration::from_millis(50)))?;
    let tx_socket = UdpSocket::bind("127.0.0.1:0").context("binding the floor's send socket")?;
    tx_socket.connect(rx_socket.local_addr()?)?;
    let stop = Arc::new(AtomicBool::new(false));
    let (inbox_tx, inbox) = mpsc::channel::<Datagram>();

    let reader = {
        let stop = stop.clone();
        std::thread::Builder::new().name("floor-udp-rx".into()).spawn(move || {
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
                let timestamp = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
                let datagram = Datagram { seq, timestamp, payload: buf[HEADER..n].to_vec(), arrival };
                if inbox_tx.send(datagram).is_err() {
                    break;
                }
            }
        })?
    };

    // Both schedules from one instant a little ahead, so neither starts late.
    let start = Instant::now() + Duration::from_millis(50);
    let end = start + length + MAX_DELAY + Duration::from_millis(100);
    let sender = {
        let mut mouth = mouth;
        std::thread::Builder::new().name("floor-send".into()).spawn(move || -> Result<u64> {
            raise_priority();
            let mut capture = capture()?;
            let mut own = Playback::<u8>::new(PlaybackConfig::default());
            let mut late = 0;
            let mut seq: u16 = rand::random();
            let mut datagram = Vec::with_capacity(1500);
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
                for packet in output.pre_roll.iter().chain(output.packet.as_ref()) {
                    datagram.clear();
                    datagram.extend_from_slice(&seq.to_be_bytes());
                    datagram.extend_from_slice(&[0, 0]);
                    datagram.extend_from_slice(&packet.rtp_timestamp.to_be_bytes());
                    datagram.extend_from_slice(&packet.payload);
                    tx_socket.send(&datagram).context("sending a floor datagram")?;
                    seq = seq.wrapping_add(1);
                }
                Ok(())
            })?;
            Ok(late)
        })?
    };
    let receiver = {
        let mut ear = ear;
        std::thread::Builder::new().name("floor-recv".into()).spawn(
            move || -> Result<(u64, JitterStats)> {
                raise_priority();
                let epoch = Instant::now();
                let mut capture = capture()?;
                let mut playback = Playback::<u8>::new(PlaybackConfig::default());
                playback.add_peer(0)?;
                let mut late = 0;
                let start = start + phase;
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
                        // A packet the buffer refuses (late, duplicate) is one the engine drops too.
                        let _inserted = playback.receive(
                            &0,
                            datagram.seq,
                            datagram.timestamp,
                            &datagram.payload,
                            arrival,
                        );
                    }
                    if Instant::now() > deadline + FRAME_DURATION {
                        late += 1;
                    }
                    let mut out = SILENT_FRAME;
                    playback.render(epoch.elapsed(), &mut out);
                    ear.write_frame(&out)?;
                    capture.far_end(&out)?;
                    // The listener's microphone is silent, but it is captured as in a call.
                    capture.process(&SILENT_FRAME)?;
                    n += 1;
                    let due = start + FRAME_DURATION * n;
                    if Instant::now() > due + FRAME_DURATION * 5 {
                        n = (start.elapsed().as_micros() / FRAME_DURATION.as_micros()) as u32 + 1;
                    }
                }
                Ok((late, playback.peer(&0).map(|p| p.stats).unwrap_or_default()))
            },
        )?
    };
    let sent = sender.join();
    let received = receiver.join();
    stop.store(true, Ordering::Relaxed);
    let _reader_done = reader.join();
    let late_send = sent.map_err(|_| anyhow::anyhow!("the floor's sending thread panicked"))??;
    let (late_recv, jitter) =
        received.map_err(|_| anyhow::anyhow!("the floor's receiving thread panicked"))??;
    Ok(FloorRun { late_ticks: late_send + late_recv, jitter })
}

/// Calls `tick` on deadlines `start + n × 20 ms` until `end`, as the engine's audio thread
/// does (never re-anchored; more than 5 frames behind, it skips instead of bursting).
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
        if Instant::now() > due + FRAME_DURATION * 5 {
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
        let written: Vec<Instant> = (1..20u64)
            .map(|i| t0 + Duration::from_micros(i * 20_000 + if i % 2 == 0 { 200 } else { 19_900 }))
            .collect();
        let p = phase(&reads, &written).expect("a phase");
        assert!(p < Duration::from_millis(1) || p > Duration::from_millis(19), "{p:?}");
    }

    #[test]
    fn the_script_places_each_burst_on_a_frame_boundary() {
        let signal = Signal::new(Duration::from_millis(500));
        let script = signal.script(3);
        for i in 0..3 {
            let at = signal.burst_frame(i) * FRAME_SAMPLES;
            assert_eq!(&script[at..at + signal.burst.len()], &signal.burst[..]);
            assert!(script[at - FRAME_SAMPLES..at].iter().all(|&s| s == 0.0));
        }
        assert_eq!(script.len(), signal.burst_frame(3) * FRAME_SAMPLES);
    }
}
