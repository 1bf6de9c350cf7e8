//! Sending and receiving between engines, refusals, and history from the cache.

mod common;

use common::{TestClient, TestServer};
use hearth_client::SessionEvent;
use hearth_client::store::OutboxState;
use hearth_protocol::ChannelId;
use hearth_protocol::ErrorCode;
use hearth_protocol::gateway::Event;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_engines_exchange_messages() {
    let server = TestServer::start().await;
    let mut admin = TestClient::admin(&server).await;
    let mut bob = TestClient::member(&admin, "bob").await;
    let general = admin.text_channel("general").await;
    bob.wait_for(|e| matches!(e, SessionEvent::Event(Event::ChannelCreate { .. })).then_some(())).await;

    let nonce = bob.engine.send_message(general, "hello admin", None).await.unwrap();
    let seen = admin.wait_message("hello admin").await;
    let ack = bob
        .wait_for(|e| match e {
            SessionEvent::Event(Event::MessageCreate { message, nonce: Some(n) }) if *n == nonce => {
                Some(message.clone())
            }
            _ => None,
        })
        .await;
    assert_eq!(seen.id, ack.id);
    assert_eq!(seen.author_id, bob.session.user().unwrap().id);
    assert!(bob.engine.outbox().await.unwrap().is_empty(), "the acknowledged message left the outbox");

    admin.session.add_reaction(general, seen.id, "👍").await.unwrap();
    bob.wait_for(|e| matches!(e, SessionEvent::Event(Event::ReactionAdd { .. })).then_some(())).await;
    let cached = bob.engine.cached_history(general, None, 10).await.unwrap();
    assert_eq!(cached.len(), 1);
    assert_eq!(cached[0].reactions[0].emoji, "👍");

    bob.session.edit_message(general, seen.id, "hello, admin").await.unwrap();
    admin.wait_for(|e| matches!(e, SessionEvent::Event(Event::MessageUpdate { .. })).then_some(())).await;
    assert_eq!(admin.engine.cached_history(general, None, 10).await.unwrap()[0].content, "hello, admin");

    bob.session.delete_message(general, seen.id).await.unwrap();
    admin.wait_for(|e| matches!(e, SessionEvent::Event(Event::MessageDelete { .. })).then_some(())).await;
    assert!(admin.engine.cached_history(general, None, 10).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_the_server_refuses_is_marked_failed() {
    let server = TestServer::start().await;
    let mut admin = TestClient::admin(&server).await;
    let nowhere = ChannelId(424_242);
    let nonce = admin.engine.send_message(nowhere, "into the void", None).await.unwrap();
    let error = admin
        .wait_for(|e| match e {
            SessionEvent::MessageFailed { nonce: n, error } if *n == nonce => Some(error.clone()),
            _ => None,
        })
        .await;
    assert_eq!(error.code, ErrorCode::NotFound);
    let outbox = admin.engine.outbox().await.unwrap();
    assert_eq!(outbox.len(), 1);
    assert_eq!(outbox[0].state, OutboxState::Failed);
    assert_eq!(outbox[0].error.as_ref().map(|e| e.code), Some(ErrorCode::NotFound));

    // Empty messages never reach the outbox.
    let empty = admin.engine.send_message(nowhere, "   ", None).await.unwrap_err();
    assert_eq!(empty.code(), "invalid_field");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_is_served_from_the_cache_when_the_server_is_gone() {
    let mut server = TestServer::start().await;
    let mut admin = TestClient::admin(&server).await;
    let general = admin.text_channel("general").await;
    for text in ["one", "two", "three"] {
        admin.engine.send_message(general, text, None).await.unwrap();
        admin.wait_message(text).await;
    }
    let online = admin.engine.history(general, None, 50).await.unwrap();
    assert_eq!(online.iter().map(|m| m.content.as_str()).collect::<Vec<_>>(), ["three", "two", "one"]);
    // The whole channel fit in one page: the cache now knows it holds all of it, so the next
    // read is served locally.
    let store = admin.engine.store().unwrap();
    assert_eq!(store.synced_from(general).await.unwrap(), Some(hearth_protocol::MessageId(0)));
    assert_eq!(admin.engine.history(general, None, 2).await.unwrap(), online[..2].to_vec());

    server.stop().await;
    admin
        .wait_for(|e| {
            matches!(e, SessionEvent::ConnectionStatus(hearth_client::ConnectionStatus::Reconnecting { .. }))
                .then_some(())
        })
        .await;
    let offline = admin.engine.history(general, None, 50).await.unwrap();
    assert_eq!(offline, online);
    let older = admin.engine.history(general, Some(online[0].id), 50).await.unwrap();
    assert_eq!(older.iter().map(|m| m.content.as_str()).collect::<Vec<_>>(), ["two", "one"]);
    let e = admin.session.typing(general).await.unwrap_err();
    assert_eq!(e.code(), "offline");
}
