//! Fake-time scenarios of the transfer machine: one function per behaviour.

use super::*;

const MB: u64 = 1 << 20;
const CHUNK: u64 = super::super::wire::CHUNK_SIZE as u64;

fn drain(m: &mut Machine) -> Vec<Output> {
    std::iter::from_fn(|| m.poll_output()).filter(|o| *o != Output::Changed).collect()
}

fn t(t0: Instant, secs: f64) -> Instant {
    t0 + Duration::from_secs_f64(secs)
}

/// A receiver that accepted and got its link and the manifest of one file of `chunks` chunks.
fn moving_receiver(t0: Instant, chunks: u64) -> Machine {
    let mut m = Machine::new(Role::Receive, chunks * CHUNK, t0);
    m.handle(Input::Accept, t0);
    m.handle(Input::LinkUp, t0);
    m.handle(Input::Manifest { chunks: vec![chunks] }, t0);
    drain(&mut m);
    m
}

#[test]
fn accept_tells_our_other_devices_and_opens_the_link_then_asks_for_everything() {
    let t0 = Instant::now();
    let mut m = Machine::new(Role::Receive, 3 * CHUNK, t0);
    assert_eq!(m.phase(), &Phase::Offered);
    m.handle(Input::Accept, t0);
    assert_eq!(drain(&mut m), vec![Output::Say(Say::Taken), Output::OpenLink]);
    m.handle(Input::LinkUp, t0);
    m.handle(Input::Manifest { chunks: vec![2, 0, 1] }, t0);
    assert_eq!(
        drain(&mut m),
        vec![
            Output::CheckFile(1),
            Output::Request(vec![
                ChunkRange { file: 0, first: 0, end: 2 },
                ChunkRange { file: 2, first: 0, end: 1 }
            ]),
            Output::Persist,
        ],
        "an empty file is complete at once and only checked"
    );
}

#[test]
fn decline_says_so_and_leaves_nothing_to_delete() {
    let t0 = Instant::now();
    let mut m = Machine::new(Role::Receive, MB, t0);
    m.handle(Input::Decline, t0);
    let out = drain(&mut m);
    assert_eq!(out, vec![Output::Say(Say::Decline), Output::Persist]);
    assert_eq!(m.phase(), &Phase::Declined);
    m.handle(Input::Accept, t0);
    assert!(drain(&mut m).is_empty(), "a decided offer stays decided");
}

#[test]
fn the_sender_learns_a_decline() {
    let t0 = Instant::now();
    let mut m = Machine::new(Role::Send, MB, t0);
    m.handle(Input::PeerDeclined, t0);
    assert_eq!(m.phase(), &Phase::Declined);
}

#[test]
fn all_chunks_then_whole_file_hashes_finish_the_transfer() {
    let t0 = Instant::now();
    let mut m = moving_receiver(t0, 2);
    m.handle(Input::ChunkVerified { file: 0, index: 0, bytes: CHUNK }, t(t0, 0.1));
    assert!(drain(&mut m).is_empty());
    m.handle(Input::ChunkVerified { file: 0, index: 1, bytes: CHUNK }, t(t0, 0.2));
    assert_eq!(drain(&mut m), vec![Output::CheckFile(0)]);
    m.handle(Input::FileVerified { file: 0 }, t(t0, 0.3));
    assert_eq!(
        drain(&mut m),
        vec![Output::Persist, Output::Finalize, Output::Say(Say::Done), Output::CloseLink, Output::Persist]
    );
    assert_eq!(m.phase(), &Phase::Done);
    assert_eq!(m.progress().bytes_done, 2 * CHUNK);
}

#[test]
fn a_corrupt_chunk_is_asked_for_again_and_gives_up_after_the_limit() {
    let t0 = Instant::now();
    let mut m = moving_receiver(t0, 4);
    for attempt in 1..=MAX_CHUNK_RETRIES {
        m.handle(Input::ChunkCorrupt { file: 0, index: 2 }, t(t0, f64::from(attempt)));
        assert_eq!(drain(&mut m), vec![Output::Request(vec![ChunkRange { file: 0, first: 2, end: 3 }])]);
    }
    m.handle(Input::ChunkCorrupt { file: 0, index: 2 }, t(t0, 9.0));
    assert!(matches!(m.phase(), Phase::Failed(_)));
    let out = drain(&mut m);
    assert!(out.contains(&Output::Say(Say::Cancel)) && out.contains(&Output::DeletePartial), "{out:?}");
}

#[test]
fn a_file_with_the_wrong_whole_hash_is_fetched_again_once() {
    let t0 = Instant::now();
    let mut m = moving_receiver(t0, 2);
    m.handle(Input::ChunkVerified { file: 0, index: 0, bytes: CHUNK }, t0);
    m.handle(Input::ChunkVerified { file: 0, index: 1, bytes: CHUNK }, t0);
    drain(&mut m);
    m.handle(Input::FileMismatch { file: 0 }, t0);
    assert_eq!(drain(&mut m), vec![Output::Request(vec![ChunkRange { file: 0, first: 0, end: 2 }])]);
    assert_eq!(m.progress().bytes_done, 0);
    m.handle(Input::FileMismatch { file: 0 }, t0);
    assert!(matches!(m.phase(), Phase::Failed(_)));
}

#[test]
fn a_dropped_link_is_reopened_with_growing_waits_and_resumes_from_the_verified_chunks() {
    let t0 = Instant::now();
    let mut m = moving_receiver(t0, 4);
    m.handle(Input::ChunkVerified { file: 0, index: 0, bytes: CHUNK }, t0);
    m.handle(Input::ChunkVerified { file: 0, index: 2, bytes: CHUNK }, t0);
    drain(&mut m);
    m.handle(Input::LinkDown, t(t0, 1.0));
    assert_eq!(drain(&mut m), vec![Output::CloseLink, Output::Persist]);
    assert_eq!(m.poll_timeout(), Some(t(t0, 2.0)));
    m.handle_timeout(t(t0, 1.9));
    assert!(drain(&mut m).is_empty());
    m.handle_timeout(t(t0, 2.0));
    assert_eq!(drain(&mut m), vec![Output::OpenLink]);
    // The attempt fails too: the next wait is longer.
    m.handle(Input::LinkDown, t(t0, 3.0));
    drain(&mut m);
    assert_eq!(m.poll_timeout(), Some(t(t0, 5.0)));
    m.handle_timeout(t(t0, 5.0));
    m.handle(Input::LinkUp, t(t0, 5.5));
    m.handle(Input::Manifest { chunks: vec![4] }, t(t0, 5.5));
    let out = drain(&mut m);
    assert_eq!(
        out[1],
        Output::Request(vec![
            ChunkRange { file: 0, first: 1, end: 2 },
            ChunkRange { file: 0, first: 3, end: 4 }
        ])
    );
}

#[test]
fn a_link_that_delivers_nothing_counts_as_dropped() {
    let t0 = Instant::now();
    let mut m = moving_receiver(t0, 8);
    m.handle(Input::ChunkVerified { file: 0, index: 0, bytes: CHUNK }, t(t0, 1.0));
    drain(&mut m);
    assert_eq!(m.poll_timeout(), Some(t(t0, 1.0) + STALL.min(PERSIST_EVERY)));
    m.handle_timeout(t(t0, 3.0));
    assert_eq!(drain(&mut m), vec![Output::Persist], "the record is saved while chunks arrive");
    m.handle_timeout(t(t0, 1.0) + STALL);
    assert_eq!(drain(&mut m), vec![Output::CloseLink, Output::Persist]);
    assert!(matches!(m.phase(), Phase::Waiting { retry_at: Some(_) }));
}

#[test]
fn after_a_restart_the_receiver_reconnects_and_asks_only_for_what_it_lacks() {
    let t0 = Instant::now();
    let mut saved = FileChunks::new(130);
    for i in 0..100 {
        saved.set(i);
    }
    let restored = FileChunks::from_bits(130, saved.bits.clone());
    assert_eq!(restored.verified, 100);
    let mut m = Machine::restore(Role::Receive, 130 * CHUNK, vec![restored], false, t0);
    assert_eq!(drain(&mut m), vec![Output::OpenLink]);
    assert_eq!(m.progress().bytes_done, 100 * CHUNK);
    m.handle(Input::LinkUp, t0);
    m.handle(Input::Manifest { chunks: vec![130] }, t0);
    assert_eq!(drain(&mut m)[0], Output::Request(vec![ChunkRange { file: 0, first: 100, end: 130 }]));
}

#[test]
fn after_a_restart_the_sender_tells_the_receiver_it_is_back_unless_it_had_paused() {
    let t0 = Instant::now();
    let mut m = Machine::restore(Role::Send, MB, vec![], false, t0);
    assert_eq!(drain(&mut m), vec![Output::Say(Say::Resume)]);
    assert_eq!(m.phase(), &Phase::Waiting { retry_at: None });
    let mut paused = Machine::restore(Role::Send, MB, vec![], true, t0);
    assert!(drain(&mut paused).is_empty());
    assert_eq!(paused.phase(), &Phase::Paused { by_me: true });
}

#[test]
fn only_the_side_that_paused_resumes() {
    let t0 = Instant::now();
    let mut m = moving_receiver(t0, 4);
    m.handle(Input::PeerPaused, t0);
    assert_eq!(drain(&mut m), vec![Output::CloseLink, Output::Persist]);
    m.handle(Input::Resume, t0);
    assert!(drain(&mut m).is_empty(), "the peer paused, so we cannot resume");
    m.handle(Input::PeerResumed, t0);
    assert_eq!(drain(&mut m), vec![Output::OpenLink]);

    let mut s = Machine::new(Role::Send, MB, t0);
    s.handle(Input::Connecting, t0);
    s.handle(Input::LinkUp, t0);
    s.handle(Input::Pause, t0);
    assert_eq!(drain(&mut s), vec![Output::Say(Say::Pause), Output::CloseLink, Output::Persist]);
    s.handle(Input::PeerResumed, t0);
    assert_eq!(s.phase(), &Phase::Paused { by_me: true });
    s.handle(Input::Resume, t0);
    assert_eq!(drain(&mut s), vec![Output::Say(Say::Resume)]);
    assert_eq!(s.phase(), &Phase::Waiting { retry_at: None });
}

#[test]
fn cancel_on_either_side_removes_the_partial_files_of_the_receiver() {
    let t0 = Instant::now();
    let mut m = moving_receiver(t0, 4);
    m.handle(Input::PeerCancelled, t0);
    assert_eq!(drain(&mut m), vec![Output::CloseLink, Output::DeletePartial, Output::Persist]);
    assert_eq!(m.phase(), &Phase::Cancelled { by_me: false });
    let mut m = moving_receiver(t0, 4);
    m.handle(Input::Cancel, t0);
    assert_eq!(drain(&mut m)[0], Output::Say(Say::Cancel));
}

#[test]
fn an_offline_peer_means_waiting_and_a_block_means_failure() {
    let t0 = Instant::now();
    let mut m = moving_receiver(t0, 4);
    m.handle(Input::Refused { offline: true, reason: "offline".into() }, t0);
    assert!(matches!(m.phase(), Phase::Waiting { retry_at: Some(_) }));
    m.handle(Input::PeerResumed, t0);
    assert_eq!(drain(&mut m).last(), Some(&Output::OpenLink), "the sender is back: try now");
    let mut s = Machine::new(Role::Send, MB, t0);
    s.handle(Input::Refused { offline: false, reason: "blocked".into() }, t0);
    assert_eq!(s.phase(), &Phase::Failed("blocked".into()));
}

#[test]
fn speed_and_time_left_come_from_the_last_seconds() {
    let t0 = Instant::now();
    let mut m = moving_receiver(t0, 4000);
    for i in 0..=100u64 {
        // 16 chunks (1 MiB) every 100 ms: 10 MiB/s.
        for j in 0..16 {
            m.handle(
                Input::ChunkVerified { file: 0, index: i * 16 + j, bytes: CHUNK },
                t(t0, i as f64 * 0.1),
            );
        }
    }
    let p = m.progress();
    let speed = p.speed.expect("measured");
    assert!((speed / (10.0 * MB as f64) - 1.0).abs() < 0.05, "{speed}");
    let expected = (m.progress().bytes_total - p.bytes_done) as f64 / speed;
    assert!((p.eta.expect("eta").as_secs_f64() - expected).abs() < 0.01);
}
