//! Calls between engines: real webrtc-rs connections on loopback, signalled through the real
//! server in-process.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{TestClient, TestServer, WAIT};
use hearth_client::SessionEvent;
use hearth_client::call::{
    Call, CallConfig, CallEvent, CallStreams, MediaPacket, PathKind, PeerState, RecoveryConfig,
};
use hearth_protocol::gateway::Event;
use hearth_protocol::model::ChannelKind;
use hearth_protocol::{ChannelId, UserId};
use tokio::sync::broadcast;

/// 20 ms of Opus at 48 kHz.
const FRAME: u32 = 960;

/// Creates a voice channel (admin) and waits until every client has seen it.
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

fn user_id(client: &TestClient) -> UserId {
    client.session.user().expect("identified").id
}

async fn join(client: &TestClient, channel: ChannelId) -> (Call, CallStreams) {
    Call::join(client.session.clone(), channel, CallConfig::loopback(Vec::new()))
        .await
        .expect("join the call")
}

/// Waits until `call` has exactly `users` as peers, all connected.
async fn connected_to(call: &Call, users: &[UserId]) {
    let mut peers = call.watch_peers();
    let want: Vec<UserId> = {
        let mut u = users.to_vec();
        u.sort();
        u
    };
    let reached = tokio::time::timeout(WAIT, async {
        loop {
            {
                let now = peers.borrow_and_update();
                let have: Vec<UserId> = now.keys().copied().collect();
                if have == want && now.values().all(|p| p.state == PeerState::Connected) {
                    return;
                }
            }
            if peers.changed().await.is_err() {
                panic!("call ended while waiting for connections");
            }
        }
    })
    .await;
    if reached.is_err() {
        panic!("not connected to {want:?} in time; peers: {:?}", call.peers());
    }
}

async fn wait_call<T>(
    events: &mut broadcast::Receiver<CallEvent>,
    pred: impl FnMut(&CallEvent) -> Option<T>,
) -> T {
    common::wait_event(events, "call", pred).await
}

fn frame(name: &str, i: usize) -> Vec<u8> {
    format!("{name}:{i:04}").into_bytes()
}

/// Sends `count` frames paced like real audio (one per 2 ms, ten times faster than real time).
async fn speak(call: &Call, name: &str, count: usize) {
    let mut pace = tokio::time::interval(Duration::from_millis(2));
    for i in 0..count {
        pace.tick().await;
        call.send_packet(&frame(name, i), FRAME).await;
    }
}

/// Collects packets until each of `from` has sent `count`, or the wait runs out.
async fn hear(
    media: &mut tokio::sync::mpsc::Receiver<MediaPacket>,
    from: impl IntoIterator<Item = UserId>,
    count: usize,
) -> HashMap<UserId, Vec<MediaPacket>> {
    let mut got: HashMap<UserId, Vec<MediaPacket>> = from.into_iter().map(|u| (u, Vec::new())).collect();
    let deadline = tokio::time::Instant::now() + WAIT;
    while got.values().any(|v| v.len() < count) {
        match tokio::time::timeout_at(deadline, media.recv()).await {
            Ok(Some(p)) => got.entry(p.user_id).or_default().push(p),
            Ok(None) => panic!("media stream ended"),
            Err(_) => break,
        }
    }
    got
}

/// Checks that `packets` are exactly the `count` frames `name` sent, in order after sorting
/// by sequence number, with timestamps one frame apart.
fn assert_heard(packets: &[MediaPacket], name: &str, count: usize) {
    let missing: Vec<usize> = (0..count)
        .filter(|i| !packets.iter().any(|p| p.payload.as_ref() == frame(name, *i).as_slice()))
        .collect();
    assert!(missing.is_empty(), "{name}: frames {missing:?} of {count} never arrived");
    assert_eq!(packets.len(), count, "{name}: packet count");
    // The block of sequence numbers starts at a random value and may wrap: its start is the
    // one whose predecessor is missing.
    let seqs: std::collections::HashSet<u16> = packets.iter().map(|p| p.seq).collect();
    let first = *seqs.iter().find(|s| !seqs.contains(&s.wrapping_sub(1))).expect("a first packet");
    let mut sorted: Vec<&MediaPacket> = packets.iter().collect();
    sorted.sort_by_key(|p| p.seq.wrapping_sub(first));
    for (i, p) in sorted.iter().enumerate() {
        assert_eq!(p.payload.as_ref(), frame(name, i).as_slice(), "{name}: payload of packet {i}");
        assert_eq!(p.seq, first.wrapping_add(i as u16), "{name}: consecutive sequence numbers");
        assert_eq!(
            p.rtp_timestamp.wrapping_sub(sorted[0].rtp_timestamp),
            i as u32 * FRAME,
            "{name}: timestamps one frame apart"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_each_hear_the_other_two() {
    let server = TestServer::start().await;
    let mut admin = TestClient::admin(&server).await;
    let mut bob = TestClient::member(&admin, "bob").await;
    let mut carol = TestClient::member(&admin, "carol").await;
    let channel = voice_channel(&mut admin, &mut [&mut bob, &mut carol]).await;
    let (a, b, c) = (user_id(&admin), user_id(&bob), user_id(&carol));

    let (admin_call, mut admin_streams) = join(&admin, channel).await;
    let (bob_call, mut bob_streams) = join(&bob, channel).await;
    let (carol_call, mut carol_streams) = join(&carol, channel).await;
    connected_to(&admin_call, &[b, c]).await;
    connected_to(&bob_call, &[a, c]).await;
    connected_to(&carol_call, &[a, b]).await;

    const COUNT: usize = 100;
    tokio::join!(
        speak(&admin_call, "admin", COUNT),
        speak(&bob_call, "bob", COUNT),
        speak(&carol_call, "carol", COUNT),
    );
    let (at_admin, at_bob, at_carol) = tokio::join!(
        hear(&mut admin_streams.media, [b, c], COUNT),
        hear(&mut bob_streams.media, [a, c], COUNT),
        hear(&mut carol_streams.media, [a, b], COUNT),
    );
    assert_eq!(at_admin.len(), 2, "admin hears only the other two");
    assert_heard(&at_admin[&b], "bob", COUNT);
    assert_heard(&at_admin[&c], "carol", COUNT);
    assert_heard(&at_bob[&a], "admin", COUNT);
    assert_heard(&at_bob[&c], "carol", COUNT);
    assert_heard(&at_carol[&a], "admin", COUNT);
    assert_heard(&at_carol[&b], "bob", COUNT);

    // Quality is measured per peer; on loopback the path is direct.
    let quality = wait_call(&mut admin_streams.events, |e| match e {
        CallEvent::Quality { user_id, quality } if *user_id == b && quality.packets_received > 0 => {
            Some(quality.clone())
        }
        _ => None,
    })
    .await;
    assert_eq!(quality.path, PathKind::Direct);
    assert!(quality.loss < 0.05, "loopback loses nothing: {quality:?}");

    for call in [admin_call, bob_call, carol_call] {
        call.leave().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_who_leaves_is_removed_and_can_rejoin() {
    let server = TestServer::start().await;
    let mut admin = TestClient::admin(&server).await;
    let mut bob = TestClient::member(&admin, "bob").await;
    let channel = voice_channel(&mut admin, &mut [&mut bob]).await;
    let (a, b) = (user_id(&admin), user_id(&bob));

    let (admin_call, mut admin_streams) = join(&admin, channel).await;
    let (bob_call, _bob_streams) = join(&bob, channel).await;
    connected_to(&admin_call, &[b]).await;
    connected_to(&bob_call, &[a]).await;

    bob_call.leave().await;
    wait_call(&mut admin_streams.events, |e| {
        matches!(e, CallEvent::PeerLeft { user_id } if *user_id == b).then_some(())
    })
    .await;
    assert!(admin_call.peers().is_empty(), "bob's connection is gone: {:?}", admin_call.peers());

    // Back again: a fresh connection, and audio flows both ways.
    let (bob_call, mut bob_streams) = join(&bob, channel).await;
    connected_to(&admin_call, &[b]).await;
    connected_to(&bob_call, &[a]).await;
    tokio::join!(speak(&admin_call, "admin", 20), speak(&bob_call, "bob", 20));
    let (at_admin, at_bob) =
        tokio::join!(hear(&mut admin_streams.media, [b], 20), hear(&mut bob_streams.media, [a], 20));
    assert_heard(&at_admin[&b], "bob", 20);
    assert_heard(&at_bob[&a], "admin", 20);

    admin_call.leave().await;
    bob_call.leave().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_whose_session_drops_is_removed_on_the_others() {
    let server = TestServer::start().await;
    let mut admin = TestClient::admin(&server).await;
    let mut bob = TestClient::member(&admin, "bob").await;
    let mut carol = TestClient::member(&admin, "carol").await;
    let channel = voice_channel(&mut admin, &mut [&mut bob, &mut carol]).await;
    let (a, b, c) = (user_id(&admin), user_id(&bob), user_id(&carol));

    let (admin_call, mut admin_streams) = join(&admin, channel).await;
    let (bob_call, mut bob_streams) = join(&bob, channel).await;
    let (carol_call, mut carol_streams) = join(&carol, channel).await;
    connected_to(&admin_call, &[b, c]).await;
    connected_to(&bob_call, &[a, c]).await;

    // Carol's network dies: no leave, no close frame. The server takes her out of the call.
    carol.session.simulate_outage(Duration::from_secs(3600)).await.expect("outage");
    for events in [&mut admin_streams.events, &mut bob_streams.events] {
        wait_call(events, |e| matches!(e, CallEvent::PeerLeft { user_id } if *user_id == c).then_some(()))
            .await;
    }
    connected_to(&admin_call, &[b]).await;
    connected_to(&bob_call, &[a]).await;
    // Her own call closed its connections and waits to rejoin.
    wait_call(&mut carol_streams.events, |e| matches!(e, CallEvent::Rejoining).then_some(())).await;
    assert!(carol_call.peers().is_empty());

    for call in [admin_call, bob_call, carol_call] {
        call.leave().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_whose_connection_comes_back_rejoins() {
    let server = TestServer::start().await;
    let mut admin = TestClient::admin(&server).await;
    let mut bob = TestClient::member(&admin, "bob").await;
    let channel = voice_channel(&mut admin, &mut [&mut bob]).await;
    let (a, b) = (user_id(&admin), user_id(&bob));

    let (admin_call, mut admin_streams) = join(&admin, channel).await;
    let (bob_call, mut bob_streams) = join(&bob, channel).await;
    connected_to(&bob_call, &[a]).await;

    bob.session.simulate_outage(Duration::from_millis(200)).await.expect("outage");
    wait_call(&mut bob_streams.events, |e| matches!(e, CallEvent::Rejoined).then_some(())).await;
    connected_to(&admin_call, &[b]).await;
    connected_to(&bob_call, &[a]).await;
    speak(&bob_call, "bob", 20).await;
    let heard = hear(&mut admin_streams.media, [b], 20).await;
    assert_heard(&heard[&b], "bob", 20);

    admin_call.leave().await;
    bob_call.leave().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaving_frees_every_connection_and_handler() {
    let server = TestServer::start().await;
    let mut admin = TestClient::admin(&server).await;
    let mut bob = TestClient::member(&admin, "bob").await;
    let mut carol = TestClient::member(&admin, "carol").await;
    let channel = voice_channel(&mut admin, &mut [&mut bob, &mut carol]).await;
    let (a, b, c) = (user_id(&admin), user_id(&bob), user_id(&carol));

    let (admin_call, _admin_streams) = join(&admin, channel).await;
    let (bob_call, _bob_streams) = join(&bob, channel).await;
    let (carol_call, _carol_streams) = join(&carol, channel).await;
    connected_to(&admin_call, &[b, c]).await;
    connected_to(&bob_call, &[a, c]).await;
    connected_to(&carol_call, &[a, b]).await;
    speak(&admin_call, "admin", 10).await;

    let probes = [admin_call.probe(), bob_call.probe(), carol_call.probe()];
    for probe in &probes {
        assert_eq!(probe.alive(), 4, "two connections and two handlers per member");
    }
    // One leaves; the others drop their connection to it as well.
    let carol_probe = carol_call.probe();
    carol_call.leave().await;
    assert_eq!(carol_probe.released_within(Duration::from_secs(5)).await, 0, "carol's webrtc objects freed");
    connected_to(&admin_call, &[b]).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while probes[0].alive() > 2 {
        assert!(tokio::time::Instant::now() < deadline, "admin's connection to carol was not freed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Everyone leaves: nothing survives.
    admin_call.leave().await;
    bob_call.leave().await;
    for probe in &probes {
        assert_eq!(
            probe.released_within(Duration::from_secs(5)).await,
            0,
            "webrtc objects freed after leave"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_call_leaves_it() {
    let server = TestServer::start().await;
    let mut admin = TestClient::admin(&server).await;
    let mut bob = TestClient::member(&admin, "bob").await;
    let channel = voice_channel(&mut admin, &mut [&mut bob]).await;
    let b = user_id(&bob);

    let (admin_call, mut admin_streams) = join(&admin, channel).await;
    let (bob_call, _bob_streams) = join(&bob, channel).await;
    connected_to(&admin_call, &[b]).await;
    let probe = bob_call.probe();
    drop(bob_call);
    wait_call(&mut admin_streams.events, |e| {
        matches!(e, CallEvent::PeerLeft { user_id } if *user_id == b).then_some(())
    })
    .await;
    assert_eq!(probe.released_within(Duration::from_secs(5)).await, 0);
    admin_call.leave().await;
}

/// Sends `count` frames `gap` apart, like a talker (real audio is one per 20 ms); returns when
/// each was handed to the call.
async fn speak_timed(call: &Call, name: &str, count: usize, gap: Duration) -> Vec<std::time::Instant> {
    let mut pace = tokio::time::interval(gap);
    let mut sent = Vec::with_capacity(count);
    for i in 0..count {
        pace.tick().await;
        sent.push(std::time::Instant::now());
        call.send_packet(&frame(name, i), FRAME).await;
    }
    sent
}

/// How long each of `name`'s frames took from `send_packet` to the receiver's stream.
fn delivery_delays(packets: &[MediaPacket], name: &str, sent: &[std::time::Instant]) -> Vec<Duration> {
    (0..sent.len())
        .map(|i| {
            let packet = packets
                .iter()
                .find(|p| p.payload.as_ref() == frame(name, i).as_slice())
                .unwrap_or_else(|| panic!("{name}: frame {i} never arrived"));
            packet.arrival.saturating_duration_since(sent[i])
        })
        .collect()
}

/// Relay-only settings with the server's ICE servers (the embedded TURN listener on loopback).
async fn relay_config(client: &TestClient) -> CallConfig {
    let turn = client.engine.turn().await.expect("TURN credentials");
    assert!(
        turn.ice_servers.iter().any(|s| s.urls.iter().any(|u| u.starts_with("turn:"))),
        "the server hands out its embedded TURN server: {:?}",
        turn.ice_servers
    );
    CallConfig { relay_only: true, ..CallConfig::loopback(turn.ice_servers) }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_only_calls_flow_through_the_embedded_turn_server() {
    let server = TestServer::start().await;
    let mut admin = TestClient::admin(&server).await;
    let mut bob = TestClient::member(&admin, "bob").await;
    let channel = voice_channel(&mut admin, &mut [&mut bob]).await;
    let (a, b) = (user_id(&admin), user_id(&bob));

    let (admin_call, mut admin_streams) =
        Call::join(admin.session.clone(), channel, relay_config(&admin).await).await.expect("join");
    let (bob_call, mut bob_streams) =
        Call::join(bob.session.clone(), channel, relay_config(&bob).await).await.expect("join");
    connected_to(&admin_call, &[b]).await;
    connected_to(&bob_call, &[a]).await;

    // From the first frame on, every frame arrives, each well before the next one is sent: a
    // relayed packet is not held back until something follows it (see ARCHITECTURE.md, call
    // layer). One talks at a time, so that nothing coming the other way wakes the sender's
    // transport. Frames go out 40 ms apart, twice the real interval, so that a slow moment of a
    // busy test machine is not mistaken for a held packet.
    const COUNT: usize = 25;
    const GAP: Duration = Duration::from_millis(40);
    let admin_sent = speak_timed(&admin_call, "admin", COUNT, GAP).await;
    let bob_sent = speak_timed(&bob_call, "bob", COUNT, GAP).await;
    let (at_admin, at_bob) =
        tokio::join!(hear(&mut admin_streams.media, [b], COUNT), hear(&mut bob_streams.media, [a], COUNT));
    assert_heard(&at_admin[&b], "bob", COUNT);
    assert_heard(&at_bob[&a], "admin", COUNT);
    for (name, delays) in [
        ("bob", delivery_delays(&at_admin[&b], "bob", &bob_sent)),
        ("admin", delivery_delays(&at_bob[&a], "admin", &admin_sent)),
    ] {
        let worst = delays.iter().max().copied().unwrap_or_default();
        assert!(worst < GAP, "{name}: a frame took {worst:?} through the relay (each: {delays:?})");
    }
    let quality = wait_call(&mut admin_streams.events, |e| match e {
        CallEvent::Quality { user_id, quality } if *user_id == b && quality.path != PathKind::Unknown => {
            Some(quality.clone())
        }
        _ => None,
    })
    .await;
    assert_eq!(quality.path, PathKind::Relayed);

    admin_call.leave().await;
    bob_call.leave().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_only_member_with_a_wrong_credential_cannot_connect() {
    let server = TestServer::start().await;
    let mut admin = TestClient::admin(&server).await;
    let mut bob = TestClient::member(&admin, "bob").await;
    let channel = voice_channel(&mut admin, &mut [&mut bob]).await;
    let a = user_id(&admin);

    let (admin_call, _admin_streams) =
        Call::join(admin.session.clone(), channel, relay_config(&admin).await).await.expect("join");
    let mut forged = relay_config(&bob).await;
    for server in &mut forged.ice_servers {
        if let Some(credential) = &mut server.credential {
            *credential = format!("x{credential}");
        }
    }
    forged.recovery = RecoveryConfig {
        connect_timeout: Duration::from_secs(2),
        disconnected_grace: Duration::from_secs(1),
        attempt_timeout: Duration::from_secs(2),
        max_attempts: 1,
    };
    let (bob_call, mut bob_streams) = Call::join(bob.session.clone(), channel, forged).await.expect("join");
    wait_call(&mut bob_streams.events, |e| {
        matches!(e, CallEvent::PeerState { user_id, state: PeerState::Failed } if *user_id == a).then_some(())
    })
    .await;
    assert!(bob_call.peers().iter().all(|p| p.state != PeerState::Connected));

    admin_call.leave().await;
    bob_call.leave().await;
}
