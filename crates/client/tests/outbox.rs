//! A message written while the server is down waits in the outbox, survives closing the app,
//! and lands exactly once when the server is back.

mod common;

use common::{TestClient, TestServer, fast};
use hearth_client::store::OutboxState;
use hearth_client::{ConnectionStatus, Engine, SessionEvent};
use hearth_protocol::api::HistoryQuery;
use hearth_protocol::gateway::Event;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_sent_offline_survives_a_restart_and_is_delivered_once() {
    let mut server = TestServer::start().await;
    let mut admin = TestClient::admin(&server).await;
    let general = admin.text_channel("general").await;
    let bob = TestClient::member(&admin, "bob").await;
    let bob_dir = bob.dir.clone();
    let bob_account = bob.engine.active_account().unwrap();

    server.stop().await;
    let mut events = bob.session.subscribe();
    let offline = bob.session.clone();
    tokio::time::timeout(common::WAIT, async {
        while offline.status() == ConnectionStatus::Connected {
            let _other = events.recv().await;
        }
    })
    .await
    .expect("bob notices the server is gone");
    let nonce = bob.engine.send_message(general, "written on the train", None).await.unwrap();
    let outbox = bob.engine.outbox().await.unwrap();
    assert_eq!(outbox.len(), 1);
    assert_eq!((outbox[0].nonce.as_str(), outbox[0].state), (nonce.as_str(), OutboxState::Pending));

    // The app closes (no clean shutdown) and opens again on the same data directory.
    drop(bob);
    let engine = Engine::open_with(bob_dir.path(), fast()).unwrap();
    assert_eq!(engine.active_account().unwrap().id, bob_account.id);
    let session = engine.resume_active().await.unwrap().expect("an active account");
    let mut events = session.subscribe();
    let outbox = engine.outbox().await.unwrap();
    assert_eq!(outbox.len(), 1, "the outbox survived the restart");
    assert_eq!(outbox[0].nonce, nonce);

    server.restart().await;
    let ack = common::wait_for(&mut events, &mut |e| match e {
        SessionEvent::Event(Event::MessageCreate { message, nonce: Some(n) }) if *n == nonce => {
            Some(message.clone())
        }
        _ => None,
    })
    .await;
    assert_eq!(ack.content, "written on the train");
    assert!(engine.outbox().await.unwrap().is_empty());

    // Exactly one copy on the server, and in the cache.
    admin.session.connected().await.unwrap();
    let on_server = admin
        .engine
        .call(|api, token| async move {
            api.history(&token, general, &HistoryQuery { limit: Some(100), ..Default::default() }).await
        })
        .await
        .unwrap();
    let copies = on_server.iter().filter(|m| m.content == "written on the train").count();
    assert_eq!(copies, 1, "{on_server:?}");
    let cached = engine.cached_history(general, None, 100).await.unwrap();
    assert_eq!(cached.iter().filter(|m| m.content == "written on the train").count(), 1);

    // The rotated refresh token was saved: yet another start still logs in.
    engine.shutdown().await;
    let again = Engine::open_with(bob_dir.path(), fast()).unwrap();
    let session = again.resume_active().await.unwrap().unwrap();
    tokio::time::timeout(common::WAIT, session.connected()).await.unwrap().unwrap();
    again.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limited_messages_are_retried_until_delivered_once_each_in_order() {
    let server = TestServer::start_with(|| hearth_server::config::Options {
        limit_message_burst: Some(2),
        limit_messages_per_sec: Some(5),
        ..Default::default()
    })
    .await;
    let mut admin = TestClient::admin(&server).await;
    let general = admin.text_channel("general").await;
    let texts: Vec<String> = (1..=8).map(|i| format!("burst {i}")).collect();
    for text in &texts {
        admin.engine.send_message(general, text, None).await.unwrap();
    }
    let mut delivered = Vec::new();
    while delivered.len() < texts.len() {
        let content = admin
            .wait_for(|e| match e {
                SessionEvent::Event(Event::MessageCreate { message, .. }) => Some(message.content.clone()),
                SessionEvent::MessageFailed { error, .. } => panic!("a retryable message failed: {error}"),
                _ => None,
            })
            .await;
        delivered.push(content);
    }
    assert_eq!(delivered, texts);
    assert!(admin.engine.outbox().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_callers_nonce_is_kept_and_sending_it_twice_stores_one_message() {
    let server = TestServer::start().await;
    let mut admin = TestClient::admin(&server).await;
    let general = admin.text_channel("general").await;
    let mut bob = TestClient::member(&admin, "bob").await;

    let nonce = "ui-nonce-0001";
    bob.session.send_message_with_nonce(general, "only once", None, nonce).await.unwrap();
    bob.session.send_message_with_nonce(general, "only once", None, nonce).await.unwrap();
    let ack = bob
        .wait_for(|e| match e {
            SessionEvent::Event(Event::MessageCreate { message, nonce: Some(n) }) if n == nonce => {
                Some(message.clone())
            }
            _ => None,
        })
        .await;
    assert_eq!(ack.content, "only once");
    // A later message proves nothing else was queued behind it.
    bob.session.send_message(general, "after", None).await.unwrap();
    bob.wait_message("after").await;
    assert!(bob.engine.outbox().await.unwrap().is_empty());
    let on_server = admin
        .engine
        .call(|api, token| async move {
            api.history(&token, general, &HistoryQuery { limit: Some(100), ..Default::default() }).await
        })
        .await
        .unwrap();
    assert_eq!(on_server.iter().filter(|m| m.content == "only once").count(), 1, "{on_server:?}");
}
