//! The per-frame paths do not allocate in steady state, beyond the packets they hand out:
//! counted with a global allocator that tallies this thread's allocations.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::Duration;

use hearth_voice::codec::{Encoder, EncoderConfig, is_dtx_packet};
use hearth_voice::synth::{Voice, utterance};
use hearth_voice::{
    Capture, CaptureConfig, FRAME_DURATION, FRAME_SAMPLES, FRAMES_PER_SECOND, PcmFrame, Playback,
    PlaybackConfig, ReceivedPacket, SILENT_FRAME,
};

struct Counting;

thread_local! {
    // `const` and no destructor: reading it never allocates or registers anything.
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: every call is forwarded to the system allocator unchanged; the counter is a
// thread-local Cell that cannot allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
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

#[test]
fn a_call_allocates_only_for_the_packets_it_moves() {
    let seconds = 6.0;
    let mic = frames(&utterance(&Voice::speaker(0), seconds));
    // Three peers' packets, encoded beforehand (their encoders run on their machines).
    let peers: Vec<Vec<Option<Vec<u8>>>> = (1..4)
        .map(|n| {
            let mut encoder = Encoder::new(&EncoderConfig::default()).unwrap();
            frames(&utterance(&Voice::speaker(n), seconds))
                .iter()
                .map(|f| Some(encoder.encode(f).unwrap().to_vec()).filter(|p| !is_dtx_packet(p)))
                .collect()
        })
        .collect();
    // Without echo cancellation: sonora's AEC3 allocates internally (about 40 small
    // allocations per 10 ms, in its block processor), which is not ours to change.
    let mut capture =
        Capture::new(CaptureConfig { echo_cancellation: false, ..CaptureConfig::default() }).unwrap();
    let mut playback: Playback<usize> = Playback::new(PlaybackConfig::default());
    let mut out = SILENT_FRAME;
    let (mut in_render, mut in_capture, mut in_receive) = (0, 0, 0);
    let (mut handed_out, mut packets_in) = (0, 0);
    let warm_up = 2 * FRAMES_PER_SECOND;
    for (k, frame) in mic.iter().enumerate() {
        let now = FRAME_DURATION * k as u32;
        let before = allocations();
        let output = capture.process(frame).unwrap();
        let capture_allocs = allocations() - before;
        let mut receive_allocs = 0;
        let mut received = 0;
        for (p, stream) in peers.iter().enumerate() {
            if let Some(payload) = &stream[k] {
                let before = allocations();
                let packet = ReceivedPacket {
                    sequence: k as u16,
                    timestamp: (k * FRAME_SAMPLES) as u32,
                    marker: false,
                    payload,
                    arrival: now,
                };
                playback.receive(&p, &packet).unwrap();
                receive_allocs += allocations() - before;
                received += 1;
            }
        }
        let before = allocations();
        playback.render(now + Duration::from_millis(15), &mut out);
        let render_allocs = allocations() - before;
        capture.far_end(&out).unwrap();
        if k >= warm_up {
            in_capture += capture_allocs;
            in_receive += receive_allocs;
            in_render += render_allocs;
            // Each packet's payload, and the pre-roll's Vec when there is one.
            let pre_roll = output.pre_roll.len() as u64;
            handed_out += pre_roll + u64::from(pre_roll > 0) + u64::from(output.packet.is_some());
            packets_in += received;
        }
    }
    // Rendering (jitter buffers, decoders, mixer) allocates nothing but the copy of the next
    // packet that an FEC concealment decodes from (`Conceal::Fec` owns it).
    let fec: u64 = (0..peers.len()).filter_map(|p| playback.peer(&p)).map(|p| p.stats.fec).sum();
    assert!(in_render <= fec, "render allocated {in_render} times ({fec} FEC frames in the whole run)");
    // Capture allocates what it hands out, nothing else.
    assert_eq!(
        in_capture, handed_out,
        "capture allocated {in_capture} times for {handed_out} payloads and Vecs"
    );
    // A received packet costs its payload's copy, and now and then a node of the buffer's map.
    assert!(packets_in > 300, "{packets_in}");
    assert!(
        in_receive <= packets_in + packets_in / 4,
        "receive allocated {in_receive} times for {packets_in} packets"
    );
}
