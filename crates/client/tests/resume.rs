//! A dropped connection resumes: what was missed arrives once, nothing is duplicated.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{TestClient, TestServer};
use hearth_client::{ConnectionStatus, SessionEvent};
use hearth_protocol::gateway::Event;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_connection_resumes_with_nothing_missed_or_doubled() {
    let server = TestServer::start().await;
    let mut admin = TestClient::admin(&server).await;
    let general = admin.text_channel("general").await;
    let mut bob = TestClient::member(&admin, "bob").await;
    admin.engine.send_message(general, "before", None).await.unwrap();
    bob.wait_message("before").await;

    // Bob's network fails for a while; meanwhile admin talks.
    bob.session.simulate_outage(Duration::from_millis(1500)).await.unwrap();
    bob.wait_for(|e| {
        matches!(e, SessionEvent::ConnectionStatus(ConnectionStatus::Reconnecting { .. })).then_some(())
    })
    .await;
    let missed = ["while away 1", "while away 2", "while away 3"];
    for text in missed {
        admin.engine.send_message(general, text, None).await.unwrap();
        admin.wait_message(text).await;
    }

    // Back: resumed (no new Ready), the missed messages replayed once each.
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut identified_again = false;
    let replayed = bob
        .wait_for(|e| match e {
            SessionEvent::Event(Event::MessageCreate { message, .. }) => {
                *seen.entry(message.content.clone()).or_default() += 1;
                None
            }
            SessionEvent::Ready(_) => {
                identified_again = true;
                None
            }
            SessionEvent::Resumed { replayed } => Some(*replayed),
            _ => None,
        })
        .await;
    assert!(!identified_again, "the session was resumed, not identified again");
    assert!(replayed >= 3, "replayed {replayed}");
    bob.session.connected().await.unwrap();
    for text in missed {
        assert_eq!(seen.get(text), Some(&1), "{text}: {seen:?}");
    }
    assert_eq!(seen.get("before"), None, "an event seen before the drop came again");

    // And live traffic keeps flowing once, too.
    admin.engine.send_message(general, "after", None).await.unwrap();
    bob.wait_message("after").await;
    let cached = bob.engine.cached_history(general, None, 100).await.unwrap();
    let contents: Vec<&str> = cached.iter().rev().map(|m| m.content.as_str()).collect();
    assert_eq!(contents, ["before", "while away 1", "while away 2", "while away 3", "after"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_server_restart_the_session_identifies_again_and_catches_up() {
    let mut server = TestServer::start().await;
    let mut admin = TestClient::admin(&server).await;
    let general = admin.text_channel("general").await;
    let mut bob = TestClient::member(&admin, "bob").await;
    admin.engine.send_message(general, "first", None).await.unwrap();
    bob.wait_message("first").await;

    // Bob is away across a restart (the server forgets sessions), and admin posts meanwhile.
    bob.session.simulate_outage(Duration::from_secs(3)).await.unwrap();
    server.restart().await;
    admin.wait_for(|e| matches!(e, SessionEvent::Ready(_)).then_some(())).await;
    admin.session.connected().await.unwrap();
    admin.engine.send_message(general, "while restarting", None).await.unwrap();
    admin.wait_message("while restarting").await;

    // Bob's resume is refused; he identifies again and fetches what he missed over HTTP.
    bob.wait_for(|e| matches!(e, SessionEvent::Ready(_)).then_some(())).await;
    let cached = bob.engine.cached_history(general, None, 100).await.unwrap();
    let contents: Vec<&str> = cached.iter().rev().map(|m| m.content.as_str()).collect();
    assert_eq!(contents, ["first", "while restarting"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_keep_an_idle_connection_open() {
    let server = TestServer::start_with(|| hearth_server::config::Options {
        heartbeat_interval_ms: Some(200),
        ..Default::default()
    })
    .await;
    let mut admin = TestClient::admin(&server).await;
    // The server closes a connection that is silent for two intervals; stay idle for many.
    let idle = tokio::time::timeout(
        Duration::from_millis(2000),
        admin.wait_for(|e| {
            matches!(e, SessionEvent::ConnectionStatus(s) if *s != ConnectionStatus::Connected).then_some(())
        }),
    )
    .await;
    assert!(idle.is_err(), "the connection changed state while idle");
    assert_eq!(admin.session.status(), ConnectionStatus::Connected);
}
