//! The engine's search and jumps against the real server, on SQLite and on PostgreSQL: words in
//! English and Chinese, `from:` and `in:`, paging, never a message of a channel the member
//! cannot read, never a deleted one; windows around a message, pages from there to the present,
//! and a cache that never shows a gap between a window and what it held before.

mod common;

use common::{Backend, TestClient, TestServer};
use hearth_client::{Engine, SessionEvent};
use hearth_protocol::api::{SearchResults, SendMessageRequest};
use hearth_protocol::gateway::Event;
use hearth_protocol::model::{Channel, Message};
use hearth_protocol::{ChannelId, ErrorCode, MessageId};
use hearth_server::config::Options;

/// The tests post hundreds of messages at once: a send rate no family reaches.
fn roomy() -> Options {
    Options { limit_messages_per_sec: Some(10_000), limit_message_burst: Some(10_000), ..Options::default() }
}

/// Sends over HTTP as `client` (no waiting on the gateway).
async fn post(client: &TestClient, channel: ChannelId, content: &str) -> Message {
    let req = SendMessageRequest {
        nonce: format!("{:016x}", rand::random::<u64>()),
        content: content.to_string(),
        reply_to: None,
        attachments: vec![],
    };
    client
        .engine
        .call(|api, token| {
            let req = req.clone();
            async move { api.send_message(&token, channel, &req).await }
        })
        .await
        .expect("send over HTTP")
}

/// A private text channel only the admin belongs to.
async fn private_channel(admin: &TestClient, name: &str) -> ChannelId {
    let body = serde_json::json!({"name": name, "kind": "text", "private": true, "members": []});
    let channel: Channel = admin
        .engine
        .call(|api, token| {
            let body = body.clone();
            async move {
                let resp = reqwest::Client::new()
                    .post(format!("{}/api/v1/channels", api.base()))
                    .bearer_auth(token)
                    .json(&body)
                    .send()
                    .await
                    .map_err(|e| hearth_client::Error::Network(e.to_string()))?;
                assert!(resp.status().is_success(), "creating a private channel: {}", resp.status());
                resp.json::<Channel>().await.map_err(|e| hearth_client::Error::Protocol(e.to_string()))
            }
        })
        .await
        .expect("private channel");
    channel.id
}

fn deleted(event: &SessionEvent, id: MessageId) -> Option<()> {
    match event {
        SessionEvent::Event(Event::MessageDelete { message_id, .. }) if *message_id == id => Some(()),
        _ => None,
    }
}

fn contents(results: &SearchResults) -> Vec<&str> {
    let mut list: Vec<&str> = results.hits.iter().map(|h| h.message.content.as_str()).collect();
    list.sort_unstable();
    list
}

fn marked(hit: &hearth_protocol::api::SearchHit) -> Vec<String> {
    let units: Vec<u16> = hit.message.content.encode_utf16().collect();
    hit.highlights
        .iter()
        .map(|r| String::from_utf16_lossy(&units[r.start as usize..r.end as usize]))
        .collect()
}

async fn search_finds_what_the_member_may_read(database: Backend) {
    let server = TestServer::start_on_with(database, roomy).await;
    let mut admin = TestClient::admin(&server).await;
    let kitchen = admin.text_channel("kitchen").await;
    let garden = admin.text_channel("garden").await;
    let secret = private_channel(&admin, "secret").await;
    let mut bea = TestClient::member(&admin, "bea").await;

    post(&admin, kitchen, "The blue Teapot is cracked").await;
    post(&admin, kitchen, "我們明天去台北看外婆").await;
    post(&admin, secret, "secret teapot plans for the party").await;
    let gone = post(&admin, garden, "teapot under the hedge").await;
    post(&bea, garden, "a teapot for sale, barely used").await;
    admin.session.delete_message(garden, gone.id).await.expect("delete");
    bea.wait_for(|e| deleted(e, gone.id)).await;

    let found = bea.engine.search("teapot", None, 25).await.expect("search");
    assert_eq!(contents(&found), ["The blue Teapot is cracked", "a teapot for sale, barely used"]);
    assert_eq!(found.total, 2);
    assert_eq!(found.next_offset, None);
    for hit in &found.hits {
        assert_eq!(marked(hit).iter().map(|w| w.to_lowercase()).collect::<Vec<_>>(), ["teapot"]);
    }
    // The admin reads the private channel; bea never sees it.
    let all = admin.engine.search("teapot", None, 25).await.expect("search as admin");
    assert_eq!(all.total, 3, "{:?}", contents(&all));

    let chinese = bea.engine.search("台北", None, 25).await.expect("search in Chinese");
    assert_eq!(contents(&chinese), ["我們明天去台北看外婆"]);
    assert_eq!(marked(&chinese.hits[0]), ["台北"]);

    let from = bea.engine.search("teapot from:admin", None, 25).await.expect("from:");
    assert_eq!(contents(&from), ["The blue Teapot is cracked"]);
    let within = bea.engine.search("teapot in:garden", None, 25).await.expect("in:");
    assert_eq!(contents(&within), ["a teapot for sale, barely used"]);
    let hidden =
        bea.engine.search("teapot in:secret", None, 25).await.expect_err("in: a channel bea cannot read");
    assert_eq!(hidden.api_code(), Some(ErrorCode::InvalidField));

    // Paging: the cursor is the previous page's next_offset; pages never overlap.
    for i in 0..7 {
        post(&admin, kitchen, &format!("pebble number {i}")).await;
    }
    let first = bea.engine.search("pebble", None, 5).await.expect("page 1");
    assert_eq!((first.hits.len(), first.total, first.next_offset), (5, 7, Some(5)));
    let second = bea.engine.search("pebble", first.next_offset, 5).await.expect("page 2");
    assert_eq!((second.hits.len(), second.next_offset), (2, None));
    let mut ids: Vec<MessageId> = first.hits.iter().chain(&second.hits).map(|h| h.message.id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 7);

    // Bad input: a typed error, and the engine goes on.
    assert_eq!(bea.engine.search("  ", None, 25).await.unwrap_err().code(), "invalid_field");
    assert_eq!(bea.engine.search("teapot", None, 0).await.unwrap_err().code(), "invalid_field");
    let nobody = bea.engine.search("teapot from:nobody", None, 25).await.unwrap_err();
    assert_eq!(nobody.api_code(), Some(ErrorCode::InvalidField));
    assert!(bea.engine.search("teapot", None, 25).await.is_ok());
}

/// A channel with `n` messages `m0..m{n-1}` posted before `name` joins, so that the member's
/// cache holds none of them.
async fn long_channel(admin: &mut TestClient, n: usize) -> (ChannelId, Vec<MessageId>) {
    let channel = admin.text_channel("long").await;
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        ids.push(post(admin, channel, &format!("m{i}")).await.id);
    }
    (channel, ids)
}

fn ids_of(messages: &[Message]) -> Vec<MessageId> {
    messages.iter().map(|m| m.id).collect()
}

async fn a_jump_loads_the_window_around_a_message(database: Backend) {
    let server = TestServer::start_on_with(database, roomy).await;
    let mut admin = TestClient::admin(&server).await;
    let (long, ids) = long_channel(&mut admin, 120).await;
    let secret = private_channel(&admin, "secret").await;
    let hidden = post(&admin, secret, "not for bea").await;
    let mut bea = TestClient::member(&admin, "bea").await;
    let engine: &Engine = &bea.engine;

    // 10 older, the message, 10 newer; both edges open.
    let w = engine.history_around(long, ids[60], 21).await.expect("around");
    assert_eq!(ids_of(&w.messages), ids[50..=70]);
    assert!(w.older && w.newer);
    // Near the start and near the present the window says so.
    let start = engine.history_around(long, ids[3], 21).await.expect("around the start");
    assert_eq!(ids_of(&start.messages), ids[0..=13]);
    assert!(!start.older && start.newer);
    let end = engine.history_around(long, ids[115], 21).await.expect("around the present");
    assert_eq!(ids_of(&end.messages), ids[105..]);
    assert!(end.older && !end.newer);

    // A deleted message: its neighbours, without it.
    admin.session.delete_message(long, ids[40]).await.expect("delete");
    bea.wait_for(|e| deleted(e, ids[40])).await;
    let w = bea.engine.history_around(long, ids[40], 21).await.expect("around a deleted message");
    assert_eq!(ids_of(&w.messages), [&ids[30..40], &ids[41..=50]].concat());
    let engine: &Engine = &bea.engine;

    // A channel bea cannot read: refused, nothing of it shown.
    let refused = engine.history_around(secret, hidden.id, 21).await.expect_err("private channel");
    assert!(matches!(refused.api_code(), Some(ErrorCode::NotFound | ErrorCode::Forbidden)), "{refused:?}");
    assert_eq!(engine.history_around(long, ids[60], 2).await.unwrap_err().code(), "invalid_field");
}

async fn windows_join_the_cached_history_without_gaps(database: Backend) {
    let server = TestServer::start_on_with(database, roomy).await;
    let mut admin = TestClient::admin(&server).await;
    let (long, ids) = long_channel(&mut admin, 120).await;
    let cy = TestClient::member(&admin, "cy").await;
    let engine: &Engine = &cy.engine;

    // An island far below the newest page, then the newest page.
    let island = engine.history_around(long, ids[20], 11).await.expect("around");
    assert_eq!(ids_of(&island.messages), ids[15..=25]);
    let mut newest = engine.history(long, None, 50).await.expect("newest page");
    newest.reverse();
    assert_eq!(ids_of(&newest), ids[70..]);
    // Paging back from the newest page must not run into the island as if it were next.
    let mut back = engine.history(long, Some(ids[70]), 50).await.expect("older page");
    back.reverse();
    assert_eq!(ids_of(&back), ids[20..70]);

    // From the island towards the present, page by page, nothing missed or repeated.
    let cz = TestClient::member(&admin, "cz").await;
    let engine: &Engine = &cz.engine;
    let island = engine.history_around(long, ids[20], 11).await.expect("around");
    let mut seen = ids_of(&island.messages);
    let mut page = engine.history_after(long, ids[25], 40).await.expect("newer page");
    while page.more {
        seen.extend(ids_of(&page.messages));
        let last = *seen.last().expect("a page");
        page = engine.history_after(long, last, 40).await.expect("newer page");
    }
    seen.extend(ids_of(&page.messages));
    assert_eq!(seen, ids[15..]);
    // The walk reached the present, but the engine cannot know the pages were one walk: only
    // the last page, which reached the newest message, counts as complete.
    let store = engine.store().expect("store");
    assert_eq!(store.synced_from(long).await.expect("sync"), Some(ids[106]));
    // A window that overlaps the complete range extends it; pages inside come from the cache.
    let inside = engine.history_around(long, ids[100], 21).await.expect("around");
    assert_eq!(ids_of(&inside.messages), ids[90..=110]);
    assert!(inside.older && inside.newer);
    assert_eq!(store.synced_from(long).await.expect("sync"), Some(ids[90]));
    let mut page = engine.history(long, Some(ids[100]), 10).await.expect("page inside");
    page.reverse();
    assert_eq!(ids_of(&page), ids[90..100]);
    let window = engine.history_around(long, ids[105], 21).await.expect("window inside");
    assert_eq!(ids_of(&window.messages), ids[95..=115]);
    // A window apart from the complete range stays an island.
    let below = engine.history_around(long, ids[10], 11).await.expect("around, below");
    assert_eq!(ids_of(&below.messages), ids[5..=15]);
    assert_eq!(store.synced_from(long).await.expect("sync"), Some(ids[90]));
}

both_backends!(
    search_finds_what_the_member_may_read,
    a_jump_loads_the_window_around_a_message,
    windows_join_the_cached_history_without_gaps
);
