//! Durability of messages across a crash (kill -9) and a graceful stop (SIGTERM): a message
//! the server acknowledged is stored exactly once, and a resend of its nonce finds it.

mod common;

use std::collections::{HashMap, HashSet};

use common::{Backend, Client, Gateway, TestServer, UNLIMITED};
use futures_util::SinkExt;
use hearth_protocol::gateway::{ClientMsg, Event, ServerMsg, close};
use hearth_protocol::model::Message;
use hearth_protocol::{ChannelId, ErrorCode, MessageId, UserId};
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// Messages the client wants to send.
const TOTAL: usize = 300;
/// Messages sent but not yet answered, at most: a pipelining client.
const WINDOW: usize = 16;

fn nonce(i: usize) -> String {
    format!("d-{i:03}")
}

fn content(i: usize) -> String {
    format!("durable {i}")
}

/// What the client learned before its connection ended.
struct Outcome {
    /// Nonce → id of every message the server acknowledged (its `MessageCreate` arrived).
    acked: HashMap<String, MessageId>,
    /// Nonces refused with `unavailable`.
    refused: HashSet<String>,
    sent: usize,
    close: Option<u16>,
}

/// Sends up to [`TOTAL`] messages, [`WINDOW`] in flight, recording every answer until the
/// server closes the connection. Fires `halfway` once `stop_after` messages are acknowledged.
async fn pipeline(
    mut gw: Gateway,
    channel: ChannelId,
    me: UserId,
    stop_after: usize,
    halfway: oneshot::Sender<()>,
) -> Outcome {
    let mut halfway = Some(halfway);
    let mut out = Outcome { acked: HashMap::new(), refused: HashSet::new(), sent: 0, close: None };
    let mut sending = true;
    loop {
        while sending && out.sent < TOTAL && out.sent < out.acked.len() + out.refused.len() + WINDOW {
            let msg = ClientMsg::SendMessage {
                channel_id: channel,
                nonce: nonce(out.sent),
                content: content(out.sent),
                reply_to: None,
                attachments: Vec::new(),
            };
            let text = serde_json::to_string(&msg).expect("serializing");
            if gw.ws.send(WsMessage::Text(text.into())).await.is_err() {
                sending = false;
            } else {
                out.sent += 1;
            }
        }
        match gw.next().await {
            Ok(ServerMsg::Dispatch { event: Event::MessageCreate { message, nonce: Some(n) }, .. })
                if message.author_id == me =>
            {
                assert!(out.acked.insert(n.clone(), message.id).is_none(), "{n} acknowledged twice");
                if out.acked.len() == stop_after
                    && let Some(tx) = halfway.take()
                {
                    tx.send(()).expect("the test is waiting");
                }
            }
            Ok(ServerMsg::Error { error, nonce, failed_op }) => {
                assert_eq!(error.code, ErrorCode::Unavailable, "{failed_op:?} refused: {error:?}");
                out.refused.insert(nonce.expect("the refusal names the nonce"));
            }
            Ok(_) => {}
            Err(common::Closed(code)) => {
                out.close = code;
                return out;
            }
        }
    }
}

/// The index a stored message was sent with.
fn index_of(m: &Message) -> usize {
    m.content
        .strip_prefix("durable ")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("stray message {m:?}"))
}

/// Checks that history holds every acknowledged message exactly once, with its id, and
/// nothing twice. Returns the stored indexes.
fn check_history(history: &[Message], acked: &HashMap<String, MessageId>) -> HashSet<usize> {
    let mut seen = HashSet::new();
    for m in history {
        assert!(seen.insert(index_of(m)), "{} stored twice", m.content);
    }
    let by_id: HashMap<MessageId, &Message> = history.iter().map(|m| (m.id, m)).collect();
    for (n, id) in acked {
        let m = by_id.get(id).unwrap_or_else(|| panic!("acknowledged message {n} ({id:?}) lost"));
        assert_eq!(nonce(index_of(m)), *n, "message {id:?} holds another message's content");
    }
    seen
}

async fn a_crash_loses_no_acknowledged_message_and_resends_make_no_duplicates(backend: Backend) {
    let mut server = TestServer::start_with(backend, &UNLIMITED).await;
    let admin = server.admin().await;
    let general = admin.text_channel("general").await;
    let gw = server.gateway(&admin).await;
    let me = admin.session().user.id;

    let (halfway, reached) = oneshot::channel();
    let client = tokio::spawn(pipeline(gw, general.id, me, 100, halfway));
    reached.await.expect("100 messages acknowledged");
    server.kill9().await;
    let outcome = client.await.expect("client task");
    eprintln!("sent {} acknowledged {} before kill -9", outcome.sent, outcome.acked.len());
    assert!(outcome.acked.len() >= 100);
    assert!(outcome.acked.len() < TOTAL, "the kill came after the stream had ended");
    assert!(outcome.refused.is_empty(), "refused: {:?}", outcome.refused);

    server.restart().await;
    let admin: Client = admin.at(&server);
    let history = admin.whole_history(general.id).await;
    let stored = check_history(&history, &outcome.acked);
    assert!(stored.iter().all(|i| *i < outcome.sent), "a message that was never sent is stored");

    // The client resends everything: acknowledged nonces come back as the same messages.
    for i in 0..TOTAL {
        let (status, body) = admin
            .post(
                &format!("/channels/{}/messages", general.id),
                serde_json::json!({"nonce": nonce(i), "content": content(i)}),
            )
            .await;
        let id: MessageId =
            serde_json::from_value(body["id"].clone()).unwrap_or_else(|_| panic!("{status} {body}"));
        match outcome.acked.get(&nonce(i)) {
            Some(acked) => {
                assert_eq!(status, 200, "resend of acknowledged {} made a new message", nonce(i));
                assert_eq!(id, *acked);
            }
            None if stored.contains(&i) => assert_eq!(status, 200, "resend of stored {}", nonce(i)),
            None => assert_eq!(status, 201, "first store of {}", nonce(i)),
        }
    }
    let history = admin.whole_history(general.id).await;
    assert_eq!(history.len(), TOTAL);
    assert_eq!(check_history(&history, &outcome.acked).len(), TOTAL);
}

async fn sigterm_acknowledges_or_refuses_what_is_in_flight_and_exits_cleanly(backend: Backend) {
    let mut server = TestServer::start_with(backend, &UNLIMITED).await;
    let admin = server.admin().await;
    let general = admin.text_channel("general").await;
    let gw = server.gateway(&admin).await;
    let me = admin.session().user.id;

    let (halfway, reached) = oneshot::channel();
    let client = tokio::spawn(pipeline(gw, general.id, me, 50, halfway));
    reached.await.expect("50 messages acknowledged");
    assert!(server.terminate().await, "hearth-server did not exit cleanly after SIGTERM");
    let outcome = client.await.expect("client task");
    eprintln!(
        "sent {} acknowledged {} refused {} before SIGTERM finished",
        outcome.sent,
        outcome.acked.len(),
        outcome.refused.len()
    );
    assert!(outcome.acked.len() < TOTAL, "SIGTERM came after the stream had ended");
    assert_eq!(outcome.close, Some(close::SERVER_RESTART));
    for n in &outcome.refused {
        assert!(!outcome.acked.contains_key(n), "{n} both acknowledged and refused");
    }

    server.restart().await;
    let admin = admin.at(&server);
    let history = admin.whole_history(general.id).await;
    check_history(&history, &outcome.acked);
    // Drained, not dropped: nothing was stored without its sender hearing so.
    let unacknowledged: Vec<&str> = history
        .iter()
        .filter(|m| !outcome.acked.values().any(|id| *id == m.id))
        .map(|m| m.content.as_str())
        .collect();
    assert!(unacknowledged.is_empty(), "stored but never acknowledged: {unacknowledged:?}");
}

both_backends!(
    a_crash_loses_no_acknowledged_message_and_resends_make_no_duplicates,
    sigterm_acknowledges_or_refuses_what_is_in_flight_and_exits_cleanly,
);
