//! Direct-transfer signalling through the gateway: an offer reaches every online device of
//! the recipient, answers go to the one device they name, a device's own siblings can be
//! told, and a refusal names the transfer (offline member, unknown member, bad ids). The hub
//! keeps no transfer state, so SQLite alone covers it.

mod common;

use common::{Backend, Client, Gateway, TestServer};
use hearth_protocol::gateway::{ClientMsg, Event, ServerMsg};
use hearth_protocol::model::TransferSignal;
use hearth_protocol::{ErrorCode, UserId};

fn id(client: &Client) -> UserId {
    client.session().user.id
}

/// The next transfer signal: (from, device, transfer id, signal).
async fn transfer(gw: &mut Gateway) -> (UserId, String, String, TransferSignal) {
    gw.event(|e| match e {
        Event::TransferSignal { from, device, transfer_id, signal } => {
            Some((*from, device.clone(), transfer_id.clone(), signal.clone()))
        }
        _ => None,
    })
    .await
}

/// The next refusal: (code, failed op, nonce).
async fn refusal(gw: &mut Gateway) -> (ErrorCode, Option<String>, Option<String>) {
    match gw.error().await {
        ServerMsg::Error { error, failed_op, nonce } => (error.code, failed_op, nonce),
        _ => unreachable!("Gateway::error returns only Error frames"),
    }
}

fn signal(to: UserId, device: Option<String>, id: &str, signal: TransferSignal) -> ClientMsg {
    ClientMsg::TransferSignal { to, device, transfer_id: id.into(), signal }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offer_reaches_every_device_and_answers_reach_one() {
    let server = TestServer::start(Backend::Sqlite).await;
    let admin = server.admin().await;
    let bob = server.member(&admin, "bob").await;
    let carol = server.member(&admin, "carol").await;
    let mut a = server.gateway(&admin).await;
    let mut b1 = server.gateway(&bob).await;
    let mut b2 = server.gateway(&bob).await;
    let mut c = server.gateway(&carol).await;

    let propose = TransferSignal::Propose { name: "holiday".into(), size: 1 << 30, files: 120 };
    a.send(&signal(id(&bob), None, "t1", propose.clone())).await;
    let (from, a_device, tid, got) = transfer(&mut b1).await;
    assert_eq!((from, tid.as_str(), &got), (id(&admin), "t1", &propose));
    let (_, a_device_2, _, got_2) = transfer(&mut b2).await;
    assert_eq!((a_device_2, got_2), (a_device.clone(), propose));
    assert!(c.sync().await.iter().all(|e| !matches!(e, Event::TransferSignal { .. })), "carol overheard");

    // Bob's second device takes it: it tells its sibling, then answers the sending device.
    b2.send(&signal(id(&bob), None, "t1", TransferSignal::Taken)).await;
    let (from, _, _, got) = transfer(&mut b1).await;
    assert_eq!((from, got), (id(&bob), TransferSignal::Taken));
    assert!(b2.sync().await.iter().all(|e| !matches!(e, Event::TransferSignal { .. })), "echoed to itself");
    let connect = TransferSignal::Connect { sdp: "v=0 offer".into() };
    b2.send(&signal(id(&admin), Some(a_device.clone()), "t1", connect.clone())).await;
    let (from, b_device, _, got) = transfer(&mut a).await;
    assert_eq!((from, got), (id(&bob), connect));

    // Answers go to that device only.
    let answer = TransferSignal::Answer { sdp: "v=0 answer".into() };
    a.send(&signal(id(&bob), Some(b_device.clone()), "t1", answer.clone())).await;
    assert_eq!(transfer(&mut b2).await.3, answer);
    assert!(b1.sync().await.iter().all(|e| !matches!(e, Event::TransferSignal { .. })), "b1 overheard");

    // A device that is gone, and a member with no device online, are refused by transfer id.
    a.send(&signal(id(&bob), Some("0000000000000000".into()), "t2", TransferSignal::Cancel)).await;
    assert_eq!(
        refusal(&mut a).await,
        (ErrorCode::Unavailable, Some("TransferSignal".into()), Some("t2".into()))
    );
    let dave = server.member(&admin, "dave").await;
    a.send(&signal(id(&dave), None, "t3", propose_small())).await;
    assert_eq!(
        refusal(&mut a).await,
        (ErrorCode::Unavailable, Some("TransferSignal".into()), Some("t3".into()))
    );

    // Nobody who is not a member; ids are checked.
    a.send(&signal(UserId(42), None, "t4", propose_small())).await;
    assert_eq!(refusal(&mut a).await.0, ErrorCode::NotFound);
    a.send(&signal(id(&bob), None, "../x", propose_small())).await;
    assert_eq!(refusal(&mut a).await.0, ErrorCode::InvalidField);
    let long = TransferSignal::Propose { name: "n".repeat(2000), size: 1, files: 1 };
    a.send(&signal(id(&bob), None, "t5", long)).await;
    assert_eq!(refusal(&mut a).await.0, ErrorCode::InvalidField);
}

fn propose_small() -> TransferSignal {
    TransferSignal::Propose { name: "a.txt".into(), size: 3, files: 1 }
}
