//! The gateway connection itself: resume after a drop (exact replay, refusals), errors for
//! bad frames that keep the connection open (malformed vs unknown op, before and after
//! Identify), the Close frame and RFC 6455 code every close sends, the transport limit,
//! handshake rules, identify and heartbeat timeouts, and the message and frame rate limits.

mod common;

use std::time::{Duration, Instant};

use common::{Backend, Detached, Gateway, TestServer, say};
use futures_util::{SinkExt, StreamExt};
use hearth_protocol::gateway::{ClientMsg, Event, ServerMsg, close};
use hearth_protocol::model::{Message, Signal, Status};
use hearth_protocol::{ChannelId, ErrorCode, MAX_MESSAGE_CHARS, PROTOCOL_VERSION};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Control, Data as OpData, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::{Frame, FrameHeader};

fn send_with(channel: ChannelId, nonce: &str, content: &str) -> ClientMsg {
    ClientMsg::SendMessage {
        channel_id: channel,
        nonce: nonce.into(),
        content: content.into(),
        reply_to: None,
        attachments: Vec::new(),
    }
}

/// The `MessageCreate`s among `events`, as (nonce, message).
fn creates(events: &[Event]) -> Vec<(Option<String>, Message)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::MessageCreate { message, nonce } => Some((nonce.clone(), message.clone())),
            _ => None,
        })
        .collect()
}

/// Sends a message and waits for its own `MessageCreate`, failing on any `Error` frame: the
/// connection still works after whatever came before.
async fn still_sends(gw: &mut Gateway, channel: ChannelId) -> Message {
    let nonce = format!("alive-{:016x}", rand::random::<u64>());
    gw.send(&send_with(channel, &nonce, "still here")).await;
    loop {
        match gw.next().await {
            Ok(ServerMsg::Dispatch { event: Event::MessageCreate { message, nonce: Some(n) }, .. })
                if n == nonce =>
            {
                return message;
            }
            Ok(ServerMsg::Error { error, failed_op, .. }) => {
                panic!("the connection no longer works: {error:?} for {failed_op:?}")
            }
            Ok(_) => {}
            Err(closed) => panic!("the connection was closed: {closed:?}"),
        }
    }
}

/// The next `Error` frame's (code, failed_op, nonce).
async fn refusal(gw: &mut Gateway) -> (ErrorCode, Option<String>, Option<String>) {
    match gw.error().await {
        ServerMsg::Error { error, failed_op, nonce } => (error.code, failed_op, nonce),
        _ => unreachable!("Gateway::error returns only Error frames"),
    }
}

async fn a_resumed_session_gets_exactly_the_missed_events_then_live_ones(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin().await;
    let bob = server.member(&admin, "bob").await;
    let bob_id = bob.session().user.id;
    let general = admin.text_channel("general").await;
    let mut a = server.gateway(&admin).await;
    let mut b = server.gateway(&bob).await;

    let bob_presence = |e: &Event| match e {
        Event::PresenceUpdate { presence } if presence.user_id == bob_id => Some(presence.status),
        _ => None,
    };
    assert_eq!(a.event(bob_presence).await, Status::Online);
    still_sends(&mut a, general.id).await;
    b.event(|e| matches!(e, Event::MessageCreate { .. }).then_some(())).await;
    b.sync().await;

    let detached = b.drop_connection();
    // Bob's presence going offline shows that the server has seen the drop.
    assert_eq!(a.event(bob_presence).await, Status::Offline);

    let mut sent = Vec::new();
    for i in 0..5 {
        let nonce = format!("missed-{i}");
        a.send(&send_with(general.id, &nonce, &format!("missed {i}"))).await;
        sent.push(nonce);
    }
    let mut acked = Vec::new();
    for _ in 0..5 {
        acked.push(
            a.event(|e| match e {
                Event::MessageCreate { message, .. } => Some(message.id),
                _ => None,
            })
            .await,
        );
    }

    let (mut b, replayed) = detached.resume(&server.ws_url()).await.expect("resume accepted");
    let missed = creates(&replayed);
    let nonces: Vec<&str> = missed.iter().map(|(n, _)| n.as_deref().unwrap_or("")).collect();
    assert_eq!(nonces, sent, "the replay must hold exactly the missed messages, in order");
    let ids: Vec<_> = missed.iter().map(|(_, m)| m.id).collect();
    assert_eq!(ids, acked);

    // Live events continue right after the replay (Gateway::next checks the seqs).
    a.send(&send_with(general.id, "after", "after the resume")).await;
    let live = b
        .event(|e| match e {
            Event::MessageCreate { nonce, .. } => nonce.clone(),
            _ => None,
        })
        .await;
    assert_eq!(live, "after");
    let rest = b.sync().await;
    assert!(creates(&rest).is_empty(), "a message arrived twice: {rest:?}");
    // Bob is online again for the others.
    assert_eq!(a.event(bob_presence).await, Status::Online);
}

async fn a_resume_past_the_replay_buffer_is_refused_and_identify_then_works(backend: Backend) {
    let server = TestServer::start_with(
        backend,
        &["--replay-buffer", "16", "--limit-message-burst", "100", "--limit-messages-per-sec", "100"],
    )
    .await;
    let admin = server.admin().await;
    let bob = server.member(&admin, "bob").await;
    let general = admin.text_channel("general").await;
    let mut a = server.gateway(&admin).await;
    let b = server.gateway(&bob).await;
    let detached = b.drop_connection();

    for i in 0..30 {
        a.send(&say(general.id, &format!("flood {i}"))).await;
    }
    for _ in 0..30 {
        a.event(|e| matches!(e, Event::MessageCreate { .. }).then_some(())).await;
    }

    let ws = Gateway::open(&server.ws_url()).await;
    let ws = match detached.resume_on(ws).await {
        Ok((_, events)) => panic!("resumed although {} events were dropped from the buffer", events.len()),
        Err((ws, refusal)) => {
            assert_eq!(refusal, ServerMsg::InvalidSession);
            ws
        }
    };
    // The same socket can still identify, and the client then reads history over HTTP.
    let b = Gateway::identify_on(ws, bob.token()).await;
    assert!(b.ready.as_ref().unwrap().channels.iter().any(|c| c.id == general.id));
    assert_eq!(bob.whole_history(general.id).await.len(), 30);
}

async fn a_resume_of_an_unknown_or_foreign_session_is_refused(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin().await;
    let bob = server.member(&admin, "bob").await;
    let general = admin.text_channel("general").await;
    let mut a = server.gateway(&admin).await;
    let b = server.gateway(&bob).await;
    let bobs = b.drop_connection();

    let unknown = Detached { session_id: "no-such-session".into(), ..bobs.clone() };
    assert_eq!(unknown.resume(&server.ws_url()).await.err(), Some(ServerMsg::InvalidSession));

    // Admin's valid token does not open Bob's session.
    let foreign = Detached { token: admin.token().into(), ..bobs.clone() };
    assert_eq!(foreign.resume(&server.ws_url()).await.err(), Some(ServerMsg::InvalidSession));

    // A seq from the future is refused too.
    let future = Detached { last_seq: bobs.last_seq + 100, ..bobs.clone() };
    assert_eq!(future.resume(&server.ws_url()).await.err(), Some(ServerMsg::InvalidSession));

    // None of that harmed Bob's own session.
    a.send(&send_with(general.id, "n", "for bob")).await;
    a.event(|e| matches!(e, Event::MessageCreate { .. }).then_some(())).await;
    let (_, replayed) = bobs.resume(&server.ws_url()).await.expect("Bob resumes his own session");
    let nonces: Vec<_> = creates(&replayed).into_iter().map(|(n, _)| n).collect();
    assert_eq!(nonces, [Some("n".to_string())]);
}

async fn resuming_elsewhere_closes_the_old_connection(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin().await;
    let mut old = server.gateway(&admin).await;
    let elsewhere =
        Detached { token: old.token.clone(), session_id: old.session_id.clone(), last_seq: old.last_seq };
    let (_new, _) = elsewhere.resume(&server.ws_url()).await.expect("resume accepted");
    let code = tokio::time::timeout(Duration::from_secs(5), old.closed())
        .await
        .expect("the old connection stayed open after its session was resumed elsewhere");
    assert_eq!(code, Some(close::SESSION_TAKEN_OVER));
}

async fn logging_out_closes_the_gateway_connection_with_4011(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin().await;
    let bob = server.member(&admin, "bob").await;
    let mut b = server.gateway(&bob).await;
    let (status, body) = bob.post("/auth/logout", serde_json::json!({})).await;
    assert_eq!(status, 204, "{body}");
    let code = tokio::time::timeout(Duration::from_secs(5), b.closed())
        .await
        .expect("the gateway connection stayed open after its login was revoked");
    assert_eq!(code, Some(close::SESSION_REVOKED));
}

async fn a_client_too_slow_to_read_is_closed_with_4010_and_resumes_the_rest(backend: Backend) {
    // Voice signals are the largest events that need no database: 2000 of 30 KB are far more
    // than the server's queue for one connection (1024 events) and the socket buffers hold.
    const SIGNALS: usize = 2000;
    let server =
        TestServer::start_with(backend, &["--limit-frames-per-sec", "100000", "--replay-buffer", "20000"])
            .await;
    let admin = server.admin().await;
    let bob = server.member(&admin, "bob").await;
    let lounge = admin.voice_channel("lounge").await;
    let mut a = server.gateway(&admin).await;
    let ws = common::open_with_receive_buffer(&server.ws_url(), 4096).await;
    let mut slow = Gateway::identify_on(ws, bob.token()).await;
    slow.send(&ClientMsg::VoiceJoin { channel_id: lounge.id, muted: false, deafened: false }).await;
    a.send(&ClientMsg::VoiceJoin { channel_id: lounge.id, muted: false, deafened: false }).await;
    for _ in 0..2 {
        a.event(|e| matches!(e, Event::VoiceStateUpdate { .. }).then_some(())).await;
    }

    // Bob does not read while Admin signals him.
    let sdp = "s".repeat(30_000);
    let bob_id = bob.session().user.id;
    for _ in 0..SIGNALS {
        a.send(&ClientMsg::VoiceSignal { to: bob_id, signal: Signal::Offer { sdp: sdp.clone() } }).await;
    }
    // Every signal has been handled once the heartbeat is answered.
    a.send(&ClientMsg::Heartbeat { last_seq: Some(a.last_seq) }).await;
    let mut refused = 0;
    loop {
        match a.next().await.expect("connection open") {
            ServerMsg::HeartbeatAck => break,
            ServerMsg::Error { error, .. } => {
                assert_eq!(error.code, ErrorCode::Forbidden, "{error:?}");
                refused += 1;
            }
            _ => {}
        }
    }
    let delivered = SIGNALS - refused;

    let mut seen = 0;
    let outcome = tokio::time::timeout(Duration::from_secs(10), async {
        while seen < delivered {
            match slow.next().await {
                Ok(ServerMsg::Dispatch { event: Event::VoiceSignal { .. }, .. }) => seen += 1,
                Ok(_) => {}
                Err(common::Closed(code)) => return Some(code),
            }
        }
        None
    })
    .await;
    match outcome {
        Err(_) => panic!("after {seen} of {delivered} events the server sent nothing more and did not close"),
        Ok(None) => panic!("every event arrived: the test did not make the client fall behind"),
        Ok(Some(code)) => {
            assert_eq!(code, Some(close::TOO_SLOW), "closed after {seen} of {delivered} events")
        }
    }

    // Like any lost connection, Bob's leaves the call for the others.
    let left = tokio::time::timeout(
        Duration::from_secs(5),
        a.event(|e| match e {
            Event::VoiceStateUpdate { state } if state.user_id == bob_id => Some(state.channel_id),
            _ => None,
        }),
    )
    .await
    .expect("Bob's voice state outlived his connection closed for being too slow");
    assert_eq!(left, None);

    let (_, replayed) = slow.drop_connection().resume(&server.ws_url()).await.expect("resume after 4010");
    let rest = replayed.iter().filter(|e| matches!(e, Event::VoiceSignal { .. })).count();
    assert_eq!(seen + rest, delivered, "events lost or doubled across the slow close");
}

async fn malformed_frames_get_an_error_and_the_connection_stays(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin().await;
    let general = admin.text_channel("general").await;
    let mut a = server.gateway(&admin).await;

    a.send_raw("this is not json".into()).await;
    assert_eq!(refusal(&mut a).await, (ErrorCode::MalformedRequest, None, None));
    still_sends(&mut a, general.id).await;

    a.send_raw(r#"{"channel_id":"1","content":"no op"}"#.into()).await;
    assert_eq!(refusal(&mut a).await.0, ErrorCode::MalformedRequest);
    still_sends(&mut a, general.id).await;

    a.send_raw(r#"{"op":"Frobnicate","x":1}"#.into()).await;
    assert_eq!(refusal(&mut a).await, (ErrorCode::UnknownOp, Some("Frobnicate".into()), None));
    still_sends(&mut a, general.id).await;

    a.send_raw(format!(r#"{{"op":"SendMessage","channel_id":"{}","nonce":"half"}}"#, general.id)).await;
    assert_eq!(
        refusal(&mut a).await,
        (ErrorCode::MalformedRequest, Some("SendMessage".into()), Some("half".into()))
    );
    still_sends(&mut a, general.id).await;

    a.ws.send(WsMessage::Binary(b"{\"op\":\"Heartbeat\"}".to_vec().into())).await.expect("sending");
    assert_eq!(refusal(&mut a).await.0, ErrorCode::MalformedRequest);
    still_sends(&mut a, general.id).await;

    // Above the protocol's frame limit but below the transport's: refused, connection kept.
    let big = serde_json::to_string(&send_with(general.id, "big", &"x".repeat(100 * 1024))).unwrap();
    a.send_raw(big).await;
    assert_eq!(refusal(&mut a).await.0, ErrorCode::PayloadTooLarge);
    still_sends(&mut a, general.id).await;

    let long = "é".repeat(MAX_MESSAGE_CHARS + 1);
    a.send(&send_with(general.id, "long", &long)).await;
    assert_eq!(
        refusal(&mut a).await,
        (ErrorCode::PayloadTooLarge, Some("SendMessage".into()), Some("long".into()))
    );
    still_sends(&mut a, general.id).await;

    // Identify again on an identified connection.
    a.send(&ClientMsg::Identify {
        token: admin.token().into(),
        protocol_version: PROTOCOL_VERSION,
        status: None,
    })
    .await;
    assert_eq!(refusal(&mut a).await.1.as_deref(), Some("Identify"));
    still_sends(&mut a, general.id).await;

    // Nothing refused was stored.
    let history = admin.whole_history(general.id).await;
    assert_eq!(history.len(), 8);
    assert!(history.iter().all(|m| m.content == "still here"));
}

async fn a_frame_over_the_transport_limit_closes_with_1009_and_the_session_resumes(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin().await;
    let bob = server.member(&admin, "bob").await;
    let general = admin.text_channel("general").await;
    let mut a = server.gateway(&admin).await;
    let mut b = server.gateway(&bob).await;
    let sent = still_sends(&mut a, general.id).await;
    a.sync().await;

    // The server may close before it has read the whole frame, so the send itself can fail.
    if let Err(e) = a.ws.send(WsMessage::Text("y".repeat(300 * 1024).into())).await {
        eprintln!("sending the oversized frame failed: {e}");
    }
    assert_eq!(a.closed().await, Some(close::MESSAGE_TOO_BIG));

    // Bob writes while Admin is away; Admin resumes and misses nothing.
    let detached = a.drop_connection();
    b.send(&send_with(general.id, "while-away", "while you were away")).await;
    b.event(|e| match e {
        Event::MessageCreate { nonce: Some(n), .. } if n == "while-away" => Some(()),
        _ => None,
    })
    .await;
    let (mut a, replayed) = detached.resume(&server.ws_url()).await.expect("resume after 1009");
    let nonces: Vec<_> = creates(&replayed).into_iter().map(|(n, _)| n).collect();
    assert_eq!(nonces, [Some("while-away".to_string())]);
    still_sends(&mut a, general.id).await;
    let history = admin.whole_history(general.id).await;
    assert_eq!(history.first().map(|m| m.id), Some(sent.id));
    assert_eq!(history.len(), 3);
}

async fn ops_before_identify_are_refused_and_identify_still_works(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin().await;
    let general = admin.text_channel("general").await;
    let mut ws = Gateway::open(&server.ws_url()).await;
    common::send_on(&mut ws, &say(general.id, "too early")).await;
    match common::next_frame(&mut ws).await {
        Ok(ServerMsg::Error { error, failed_op, .. }) => {
            assert_eq!(error.code, ErrorCode::NotIdentified);
            assert_eq!(failed_op.as_deref(), Some("SendMessage"));
        }
        other => panic!("expected not_identified, got {other:?}"),
    }
    let mut a = Gateway::identify_on(ws, admin.token()).await;
    still_sends(&mut a, general.id).await;
    assert_eq!(admin.whole_history(general.id).await.len(), 1, "the message sent before Identify was stored");
}

async fn a_wrong_protocol_version_is_refused_and_closed_with_4013(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin().await;
    let mut ws = Gateway::open(&server.ws_url()).await;
    let identify = ClientMsg::Identify {
        token: admin.token().into(),
        protocol_version: PROTOCOL_VERSION + 1,
        status: None,
    };
    common::send_on(&mut ws, &identify).await;
    match common::next_frame(&mut ws).await {
        Ok(ServerMsg::Error { error, .. }) => assert_eq!(error.code, ErrorCode::UnsupportedProtocol),
        other => panic!("expected unsupported_protocol, got {other:?}"),
    }
    assert_eq!(
        common::next_frame(&mut ws).await.err(),
        Some(common::Closed(Some(close::UNSUPPORTED_PROTOCOL)))
    );
}

async fn a_connection_that_does_not_identify_in_time_is_closed_with_4003(backend: Backend) {
    let server = TestServer::start_with(backend, &["--identify-timeout-ms", "300"]).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(server.ws_url()).await.expect("connect");
    let opened = Instant::now();
    match common::next_frame(&mut ws).await {
        Ok(ServerMsg::Hello { identify_timeout_ms, .. }) => assert_eq!(identify_timeout_ms, 300),
        other => panic!("expected Hello, got {other:?}"),
    }
    assert_eq!(common::next_frame(&mut ws).await.err(), Some(common::Closed(Some(close::IDENTIFY_TIMEOUT))));
    assert!(opened.elapsed() >= Duration::from_millis(250), "closed after {:?}", opened.elapsed());
}

async fn a_silent_connection_is_closed_with_4009_and_a_heartbeating_one_is_not(backend: Backend) {
    let server = TestServer::start_with(backend, &["--heartbeat-interval-ms", "300"]).await;
    let admin = server.admin().await;
    let mut silent = server.gateway(&admin).await;
    let mut beating = server.gateway(&admin).await;
    // Two timeouts' worth of heartbeats at half the interval, as a client would send them.
    let started = Instant::now();
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        beating.sync().await;
    }
    assert!(started.elapsed() >= Duration::from_millis(1200));
    assert_eq!(silent.closed().await, Some(close::HEARTBEAT_TIMEOUT));
    beating.sync().await;
}

async fn messages_over_the_rate_limit_are_refused_with_retry_after_and_nonce(backend: Backend) {
    let server =
        TestServer::start_with(backend, &["--limit-message-burst", "3", "--limit-messages-per-sec", "1"])
            .await;
    let admin = server.admin().await;
    let bob = server.member(&admin, "bob").await;
    let general = admin.text_channel("general").await;
    let mut a = server.gateway(&admin).await;
    let mut b = server.gateway(&bob).await;

    for i in 0..5 {
        a.send(&send_with(general.id, &format!("r{i}"), &format!("quick {i}"))).await;
    }
    let mut stored = Vec::new();
    let mut refused = Vec::new();
    while stored.len() + refused.len() < 5 {
        match a.next().await.expect("connection open") {
            ServerMsg::Dispatch { event: Event::MessageCreate { nonce, .. }, .. } => {
                stored.push(nonce.unwrap())
            }
            ServerMsg::Error { error, failed_op, nonce } => {
                assert_eq!(error.code, ErrorCode::RateLimited);
                assert_eq!(failed_op.as_deref(), Some("SendMessage"));
                let wait = error.retry_after_ms.expect("retry_after_ms");
                assert!((1..=1000).contains(&wait), "retry_after_ms {wait}");
                refused.push((nonce.expect("nonce echoed"), wait));
            }
            _ => {}
        }
    }
    assert_eq!(stored, ["r0", "r1", "r2"]);
    let refused_nonces: Vec<&str> = refused.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(refused_nonces, ["r3", "r4"]);
    assert_eq!(creates(&b.sync().await).len(), 3);

    // HTTP sends share the limit.
    let (status, headers, body) = admin
        .request_with_headers(
            reqwest::Method::POST,
            &format!("/channels/{}/messages", general.id),
            Some(serde_json::json!({"nonce": "http", "content": "over http"})),
        )
        .await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["code"], "rate_limited");
    assert!(headers.contains_key(reqwest::header::RETRY_AFTER));

    // After the advertised wait, sending works again.
    let wait = refused.iter().map(|(_, w)| *w).max().unwrap();
    tokio::time::sleep(Duration::from_millis(wait + 50)).await;
    still_sends(&mut a, general.id).await;
}

async fn frames_over_the_frame_limit_are_refused_with_retry_after(backend: Backend) {
    // 2 frames per second sustained, bursts of 4.
    let server = TestServer::start_with(backend, &["--limit-frames-per-sec", "2"]).await;
    let admin = server.admin().await;
    let mut a = server.gateway(&admin).await;
    for _ in 0..8 {
        a.send(&ClientMsg::Heartbeat { last_seq: Some(a.last_seq) }).await;
    }
    let (mut acks, mut limited) = (0, Vec::new());
    while acks + limited.len() < 8 {
        match a.next().await.expect("connection open") {
            ServerMsg::HeartbeatAck => acks += 1,
            ServerMsg::Error { error, .. } => {
                assert_eq!(error.code, ErrorCode::RateLimited);
                limited.push(error.retry_after_ms.expect("retry_after_ms"));
            }
            _ => {}
        }
    }
    assert_eq!((acks, limited.len()), (4, 4));
    let wait = *limited.iter().max().unwrap();
    assert!((1..=500).contains(&wait), "retry_after_ms {wait}");
    tokio::time::sleep(Duration::from_millis(wait + 50)).await;
    assert!(a.sync().await.is_empty());
}

/// The same bad frames get the same answers before `Identify` and after it: a known op with a
/// bad field is `malformed_request`, only an op that does not exist is `unknown_op`.
async fn bad_fields_are_malformed_and_only_unknown_ops_are_unknown_before_and_after_identify(
    backend: Backend,
) {
    let server = TestServer::start(backend).await;
    let admin = server.admin().await;
    let general = admin.text_channel("general").await;
    let frames = [
        (
            r#"{"op":"SetStatus","status":"sleeping"}"#.to_string(),
            ErrorCode::MalformedRequest,
            Some("SetStatus"),
        ),
        (
            r#"{"op":"VoiceSignal","to":"1","signal":{"kind":"telepathy","sdp":"x"}}"#.to_string(),
            ErrorCode::MalformedRequest,
            Some("VoiceSignal"),
        ),
        (
            r#"{"op":"Typing","channel_id":7}"#.replace('7', "\"007\""),
            ErrorCode::MalformedRequest,
            Some("Typing"),
        ),
        (r#"{"op":"Typing"}"#.to_string(), ErrorCode::MalformedRequest, Some("Typing")),
        (r#"{"op":"Heartbeat","last_seq":"3"}"#.to_string(), ErrorCode::MalformedRequest, Some("Heartbeat")),
        (
            r#"{"op":"Identify","token":5,"protocol_version":2}"#.to_string(),
            ErrorCode::MalformedRequest,
            Some("Identify"),
        ),
        (r#"{"op":"Teleport","to":"mars"}"#.to_string(), ErrorCode::UnknownOp, Some("Teleport")),
        (r#"[{"op":"Heartbeat"}]"#.to_string(), ErrorCode::MalformedRequest, None),
        (r#"{"op":["Heartbeat"]}"#.to_string(), ErrorCode::MalformedRequest, None),
    ];
    let mut ws = Gateway::open(&server.ws_url()).await;
    for (frame, code, op) in &frames {
        ws.send(WsMessage::Text(frame.clone().into())).await.expect("sending");
        match common::next_frame(&mut ws).await {
            Ok(ServerMsg::Error { error, failed_op, .. }) => {
                assert_eq!((error.code, failed_op.as_deref()), (*code, *op), "before Identify: {frame}")
            }
            other => panic!("before Identify, {frame}: expected an error, got {other:?}"),
        }
    }
    let mut a = Gateway::identify_on(ws, admin.token()).await;
    for (frame, code, op) in &frames {
        a.send_raw(frame.clone()).await;
        let (got, failed_op, _) = refusal(&mut a).await;
        assert_eq!((got, failed_op.as_deref()), (*code, *op), "after Identify: {frame}");
    }
    still_sends(&mut a, general.id).await;
}

/// Reads until the server's Close frame; then the stream must end: the code came before the
/// TCP connection ended.
async fn close_code_then_end(ws: &mut common::Ws) -> u16 {
    let code = loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next()).await.expect("a close in time") {
            Some(Ok(WsMessage::Close(Some(frame)))) => break u16::from(frame.code),
            Some(Ok(WsMessage::Close(None))) => panic!("a Close frame without a code"),
            Some(Ok(_)) => continue,
            Some(Err(e)) => panic!("the connection ended without a Close frame: {e}"),
            None => panic!("the connection ended without a Close frame"),
        }
    };
    loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next()).await.expect("the end in time") {
            None | Some(Err(_)) => return code,
            Some(Ok(WsMessage::Close(_))) => {}
            Some(Ok(other)) => panic!("a frame after the Close: {other:?}"),
        }
    }
}

/// A text frame whose bytes are not UTF-8 (the client library checks `Message::Text`).
fn raw_text(bytes: &[u8]) -> WsMessage {
    WsMessage::Frame(Frame::message(bytes.to_vec(), OpCode::Data(OpData::Text), true))
}

/// A Close frame with any code and reason bytes, allowed or not.
fn raw_close(code: u16, reason: &[u8]) -> WsMessage {
    let mut payload = code.to_be_bytes().to_vec();
    payload.extend_from_slice(reason);
    let header = FrameHeader { opcode: OpCode::Control(Control::Close), ..FrameHeader::default() };
    WsMessage::Frame(Frame::from_payload(header, payload.into()))
}

async fn every_close_sends_its_rfc_6455_code_before_the_connection_ends(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin().await;
    let general = admin.text_channel("general").await;
    let cases: Vec<(&str, WsMessage, u16)> = vec![
        (
            "text that is not UTF-8",
            raw_text(b"{\"op\":\"Heartbeat\",\"x\":\"\xff\xfe\"}"),
            close::INVALID_PAYLOAD,
        ),
        (
            "a frame over the transport limit",
            WsMessage::Text("z".repeat(300 * 1024).into()),
            close::MESSAGE_TOO_BIG,
        ),
        (
            "a reserved data opcode",
            WsMessage::Frame(Frame::message(b"x".to_vec(), OpCode::Data(OpData::Reserved(3)), true)),
            close::PROTOCOL_ERROR,
        ),
        ("a Close with a code a peer may not send (1005)", raw_close(1005, b""), close::PROTOCOL_ERROR),
        ("a Close with a code a peer may not send (1015)", raw_close(1015, b""), close::PROTOCOL_ERROR),
        ("a Close with an out-of-range code (999)", raw_close(999, b""), close::PROTOCOL_ERROR),
        ("a Close whose reason is not UTF-8", raw_close(1000, b"\xc3\x28"), close::INVALID_PAYLOAD),
        ("a Close with an allowed code, echoed", raw_close(4321, b"bye"), 4321),
    ];
    for identified in [false, true] {
        for (what, frame, expected) in &cases {
            let mut ws = Gateway::open(&server.ws_url()).await;
            if identified {
                let gw = Gateway::identify_on(ws, admin.token()).await;
                ws = gw.ws;
            }
            // The server may close before it has read all of a large frame.
            if let Err(e) = ws.send(frame.clone()).await {
                eprintln!("{what}: sending failed: {e}");
            }
            let code = close_code_then_end(&mut ws).await;
            assert_eq!(code, *expected, "{what} (identified: {identified})");
        }
    }
    // None of it touched the server or the session's channel.
    let mut a = server.gateway(&admin).await;
    still_sends(&mut a, general.id).await;
}

async fn a_client_that_ignores_the_frame_rate_limit_is_closed_with_1008(backend: Backend) {
    let server = TestServer::start_with(backend, &["--limit-frames-per-sec", "2"]).await;
    let admin = server.admin().await;
    let mut a = server.gateway(&admin).await;
    for _ in 0..40 {
        if a.ws.send(WsMessage::Text(r#"{"op":"Heartbeat"}"#.into())).await.is_err() {
            break;
        }
    }
    let code = close_code_then_end(&mut a.ws).await;
    assert_eq!(code, close::POLICY_VIOLATION);
    // The session is still there to resume (after the wait) or to identify anew.
    let mut again = server.gateway(&admin).await;
    again.sync().await;
}

both_backends!(
    a_resumed_session_gets_exactly_the_missed_events_then_live_ones,
    a_resume_past_the_replay_buffer_is_refused_and_identify_then_works,
    a_resume_of_an_unknown_or_foreign_session_is_refused,
    resuming_elsewhere_closes_the_old_connection,
    logging_out_closes_the_gateway_connection_with_4011,
    a_client_too_slow_to_read_is_closed_with_4010_and_resumes_the_rest,
    malformed_frames_get_an_error_and_the_connection_stays,
    a_frame_over_the_transport_limit_closes_with_1009_and_the_session_resumes,
    ops_before_identify_are_refused_and_identify_still_works,
    a_wrong_protocol_version_is_refused_and_closed_with_4013,
    a_connection_that_does_not_identify_in_time_is_closed_with_4003,
    a_silent_connection_is_closed_with_4009_and_a_heartbeating_one_is_not,
    messages_over_the_rate_limit_are_refused_with_retry_after_and_nonce,
    frames_over_the_frame_limit_are_refused_with_retry_after,
    bad_fields_are_malformed_and_only_unknown_ops_are_unknown_before_and_after_identify,
    every_close_sends_its_rfc_6455_code_before_the_connection_ends,
    a_client_that_ignores_the_frame_rate_limit_is_closed_with_1008,
);
