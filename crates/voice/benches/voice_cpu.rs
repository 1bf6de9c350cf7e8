//! `bench/run.sh voice-cpu`: the CPU one client spends on audio in a 10-person call, as a
//! percentage of one core over real time, beside a plain Opus loop measured in the same run.
//!
//! Hearth, per frame (10 ms): one `Capture::process` (echo cancellation, RNNoise, level, VAD,
//! Opus encode) and one `Playback::render` over 9 peers (9 jitter buffers, 9 Opus decodes with
//! FEC/PLC where packets are missing, gains, mixer with limiter), plus feeding the played mix
//! back to the echo canceller. Everyone talks at once, each with their own utterance (with its
//! natural pauses, where DTX sends nothing): a worse case than a real call, where one or two
//! speak. Packets of the 9 peers are encoded beforehand (their encoders run on their
//! machines) and arrive with a little jitter and 2 % loss.
//!
//! Peer ("opus-loop"): the same mic frames through one Opus encoder and the same 9 packet
//! streams through 9 Opus decoders (PLC for the gaps), nothing else.
//!
//! CPU is this thread's CPU time (CLOCK_THREAD_CPUTIME_ID); each side runs `--seconds` of
//! audio (default 30) three times, alternating, and the median counts.

use std::time::Duration;

use hearth_voice::codec::{Decoder, Encoder, EncoderConfig, is_dtx_packet};
use hearth_voice::synth::{Rng, Voice, utterance};
use hearth_voice::{
    Capture, CaptureConfig, FRAME_DURATION, FRAME_SAMPLES, FRAMES_PER_SECOND, PcmFrame, Playback,
    PlaybackConfig, ReceivedPacket, SILENT_FRAME,
};

const PEERS: usize = 9;

fn thread_cpu() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec into the pointer we pass, which is valid.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn frames(samples: &[f32]) -> Vec<PcmFrame> {
    samples
        .chunks_exact(FRAME_SAMPLES)
        .map(|c| {
            let mut f = SILENT_FRAME;
            f.copy_from_slice(c);
            f
        })
        .collect()
}

/// One peer's packets as they arrive: (frame index of arrival, seq, timestamp, payload).
struct Stream {
    /// Per frame: the packet sent in that frame, if any (DTX and loss leave gaps).
    packets: Vec<Option<(u16, u32, Vec<u8>)>>,
}

fn peer_stream(n: usize, seconds: f32) -> Stream {
    let speech = frames(&utterance(&Voice::speaker(n as u32 + 1), seconds));
    let mut encoder = Encoder::new(&EncoderConfig::default()).expect("opus encoder");
    let mut rng = Rng::new(n as u64 + 100);
    let mut seq = 0u16;
    let packets = speech
        .iter()
        .enumerate()
        .map(|(k, f)| {
            let payload = encoder.encode(f).expect("encode").to_vec();
            if is_dtx_packet(&payload) {
                return None;
            }
            seq = seq.wrapping_add(1);
            if rng.unit() < 0.02 {
                return None;
            }
            Some((seq, (k * FRAME_SAMPLES) as u32, payload))
        })
        .collect();
    Stream { packets }
}

fn run_hearth(mic: &[PcmFrame], peers: &[Stream], echo_cancellation: bool) -> Duration {
    let config = CaptureConfig { echo_cancellation, ..CaptureConfig::default() };
    let mut capture = Capture::new(config).expect("capture");
    let mut playback: Playback<usize> = Playback::new(PlaybackConfig::default());
    let mut out = SILENT_FRAME;
    let mut rng = Rng::new(9);
    let mut sent = 0usize;
    let start = thread_cpu();
    for (k, frame) in mic.iter().enumerate() {
        let now = FRAME_DURATION * k as u32 + Duration::from_millis(7);
        if capture.process(frame).expect("capture").packet.is_some() {
            sent += 1;
        }
        for (p, stream) in peers.iter().enumerate() {
            if let Some((seq, ts, payload)) = &stream.packets[k] {
                let jitter = Duration::from_micros((rng.unit() * 5000.0) as u64);
                let packet = ReceivedPacket {
                    sequence: *seq,
                    timestamp: *ts,
                    marker: false,
                    payload,
                    arrival: now - Duration::from_millis(6) + jitter,
                };
                playback.receive(&p, &packet).expect("receive");
            }
        }
        playback.render(now, &mut out);
        capture.far_end(&out).expect("far end");
    }
    let cpu = thread_cpu() - start;
    std::hint::black_box((sent, out));
    cpu
}

fn run_opus_loop(mic: &[PcmFrame], peers: &[Stream]) -> Duration {
    let mut encoder = Encoder::new(&EncoderConfig::default()).expect("opus encoder");
    let mut decoders: Vec<Decoder> = (0..PEERS).map(|_| Decoder::new().expect("decoder")).collect();
    let mut pcm = SILENT_FRAME;
    let mut bytes = 0usize;
    let start = thread_cpu();
    for (k, frame) in mic.iter().enumerate() {
        bytes += encoder.encode(frame).expect("encode").len();
        for (decoder, stream) in decoders.iter_mut().zip(peers) {
            match &stream.packets[k] {
                Some((_, _, payload)) => decoder.decode(payload, &mut pcm).expect("decode"),
                None => decoder.conceal(&mut pcm).expect("plc"),
            }
        }
    }
    let cpu = thread_cpu() - start;
    std::hint::black_box((bytes, pcm));
    cpu
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let mut seconds = 30.0f32;
    let mut measuring = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => seconds = args.next().and_then(|s| s.parse().ok()).unwrap_or(seconds),
            // `cargo bench` passes it; `cargo test --all-targets` does not, and then a second
            // of audio shows the bench still runs, without spending CI's minutes on it.
            "--bench" => measuring = true,
            "-h" | "--help" => {
                println!("voice-cpu [--seconds N]: CPU of a 10-person call vs a plain Opus loop");
                return;
            }
            _ => {}
        }
    }
    if !measuring {
        seconds = 1.0;
    }
    let mic = frames(&utterance(&Voice::speaker(0), seconds));
    let peers: Vec<Stream> = (0..PEERS).map(|n| peer_stream(n, seconds)).collect();
    let audio_s = mic.len() as f64 * FRAME_DURATION.as_secs_f64();
    let percent = |cpu: Duration| cpu.as_secs_f64() / audio_s * 100.0;

    // Warm up both (page in code and tables), then alternate.
    let warm_up = FRAMES_PER_SECOND.min(mic.len());
    run_hearth(&mic[..warm_up], &peers, true);
    run_opus_loop(&mic[..warm_up], &peers);
    let (mut hearth, mut opus, mut no_aec) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..3 {
        hearth.push(percent(run_hearth(&mic, &peers, true)));
        opus.push(percent(run_opus_loop(&mic, &peers)));
        no_aec.push(percent(run_hearth(&mic, &peers, false)));
    }
    let value = median(hearth.clone());
    let peer_value = median(opus.clone());

    let codec = EncoderConfig::default();
    println!("voice-cpu: one client in a 10-person call, {audio_s:.0} s of audio per run, 3 runs");
    println!(
        "  opus on both sides: {} kbit/s, FEC {}, DTX {}, complexity {}; 2 % loss, 0-5 ms jitter",
        codec.bitrate_bps / 1000,
        codec.fec,
        codec.dtx,
        codec.complexity
    );
    println!("  hearth (capture: AEC + RNNoise + VAD + Opus; playback: 9 jitter buffers + decodes + mix)");
    println!("    runs: {}", fmt_runs(&hearth));
    println!("    median: {value:.2} % of one core");
    println!("  hearth without echo cancellation (context, not the metric)");
    println!("    runs: {}", fmt_runs(&no_aec));
    println!("    median: {:.2} % of one core", median(no_aec.clone()));
    println!("  opus-loop (1 encode + 9 decodes, nothing else)");
    println!("    runs: {}", fmt_runs(&opus));
    println!("    median: {peer_value:.2} % of one core");
    println!("  target: <= 5 % of one core");
    let metric = Metric {
        bench: "voice-cpu",
        metric: "core_percent",
        value: round3(value),
        unit: "%",
        peer: "opus-loop",
        peer_value: round3(peer_value),
        target: "<= 5",
    };
    if !measuring {
        println!(
            "  (a 1 s smoke run; `cargo bench` / bench/run.sh voice-cpu measures and prints the JSON line)"
        );
        return;
    }
    match serde_json::to_string(&metric) {
        Ok(line) => println!("{line}"),
        Err(err) => {
            eprintln!("voice-cpu: {err}");
            std::process::exit(1);
        }
    }
}

/// The bench's JSON line, with the keys in the order of `bench/harness/src/report.rs`.
#[derive(serde::Serialize)]
struct Metric {
    bench: &'static str,
    metric: &'static str,
    value: f64,
    unit: &'static str,
    peer: &'static str,
    peer_value: f64,
    target: &'static str,
}

fn fmt_runs(v: &[f64]) -> String {
    v.iter().map(|x| format!("{x:.2} %")).collect::<Vec<_>>().join(", ")
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}
