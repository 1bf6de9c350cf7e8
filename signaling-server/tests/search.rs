//! Search over the server: words in English and Chinese (one, two and more characters), the
//! filters, ranking, highlights and paging; never a message the member cannot read (private
//! channels, other people's DMs, blocked authors), never a deleted one, edits followed; the
//! index built for messages stored before it existed; history around a message.

mod common;

use common::{Backend, Client, TestServer, expect_api_error, search};
use hearth_protocol::api::{SearchResults, TextRange};
use hearth_protocol::model::{Channel, Message};
use hearth_protocol::{ChannelId, ErrorCode, MessageId};
use reqwest::{Method, StatusCode};
use serde_json::json;

async fn post(client: &Client, channel: ChannelId, content: &str) -> Message {
    let nonce = format!("{:016x}", rand::random::<u64>());
    client
        .ok(
            Method::POST,
            &format!("/channels/{channel}/messages"),
            Some(json!({"nonce": nonce, "content": content})),
            StatusCode::CREATED,
        )
        .await
}

async fn search_raw(client: &Client, query: &[(&str, &str)]) -> (StatusCode, serde_json::Value) {
    let resp = client
        .http
        .get(format!("{}/api/v1/search", client.base))
        .bearer_auth(client.token())
        .query(query)
        .send()
        .await
        .expect("GET /search");
    let status = resp.status();
    (status, resp.json().await.expect("JSON"))
}

fn contents(results: &SearchResults) -> Vec<&str> {
    results.hits.iter().map(|h| h.message.content.as_str()).collect()
}

fn marked(content: &str, ranges: &[TextRange]) -> Vec<String> {
    let units: Vec<u16> = content.encode_utf16().collect();
    ranges.iter().map(|r| String::from_utf16_lossy(&units[r.start as usize..r.end as usize])).collect()
}

struct Family {
    server: TestServer,
    mum: Client,
    dad: Client,
    kid: Client,
    general: Channel,
    kitchen: Channel,
}

async fn family(backend: Backend) -> Family {
    let server = TestServer::start(backend).await;
    let mum = server.admin().await;
    let dad = server.member(&mum, "dad").await;
    let kid = server.member(&mum, "kid").await;
    let general = mum.text_channel("general").await;
    let kitchen = mum.text_channel("kitchen").await;
    Family { server, mum, dad, kid, general, kitchen }
}

async fn words_in_english_and_chinese_are_found_and_highlighted(backend: Backend) {
    let f = family(backend).await;
    post(&f.dad, f.general.id, "Dinner at grandma's on Sunday?").await;
    post(&f.mum, f.kitchen.id, "我們今天晚餐吃什麼？").await;
    post(&f.kid, f.general.id, "晚安 everyone").await;
    post(&f.mum, f.general.id, "The DINNER was lovely, dinner again next week").await;
    post(&f.dad, f.kitchen.id, "Crème brûlée for dessert").await;
    post(&f.kid, f.general.id, "dinnertime is not dinner-time").await;

    let found = search(&f.kid, "dinner").await;
    assert_eq!(found.total, 3);
    // The message that says it twice ranks first; the rest by recency.
    assert_eq!(
        contents(&found),
        [
            "The DINNER was lovely, dinner again next week",
            "dinnertime is not dinner-time",
            "Dinner at grandma's on Sunday?",
        ]
    );
    assert_eq!(marked(&found.hits[0].message.content, &found.hits[0].highlights), ["DINNER", "dinner"]);
    assert_eq!(marked(&found.hits[1].message.content, &found.hits[1].highlights), ["dinner"]);

    // Chinese: a two-character word, one character, three characters, and a word that is not there.
    let two = search(&f.kid, "晚餐").await;
    assert_eq!(contents(&two), ["我們今天晚餐吃什麼？"]);
    assert_eq!(marked(&two.hits[0].message.content, &two.hits[0].highlights), ["晚餐"]);
    let one = search(&f.kid, "晚").await;
    assert_eq!(one.total, 2, "{:?}", contents(&one));
    let three = search(&f.kid, "吃什麼").await;
    assert_eq!(contents(&three), ["我們今天晚餐吃什麼？"]);
    assert_eq!(marked(&three.hits[0].message.content, &three.hits[0].highlights), ["吃什麼"]);
    assert_eq!(search(&f.kid, "什吃").await.total, 0, "characters out of order are another word");
    assert_eq!(search(&f.kid, "晚飯").await.total, 0);

    // Words fold: accents and case do not matter; every word must match.
    assert_eq!(contents(&search(&f.kid, "CREME brulee").await), ["Crème brûlée for dessert"]);
    assert_eq!(search(&f.kid, "creme dinner").await.total, 0);
    assert_eq!(contents(&search(&f.kid, "晚安 EVERYONE").await), ["晚安 everyone"]);
}

async fn filters_narrow_by_author_channel_and_date(backend: Backend) {
    let f = family(backend).await;
    post(&f.dad, f.general.id, "pizza tonight").await;
    post(&f.mum, f.general.id, "pizza again?").await;
    post(&f.mum, f.kitchen.id, "pizza dough is rising").await;

    assert_eq!(contents(&search(&f.kid, "pizza from:dad").await), ["pizza tonight"]);
    assert_eq!(contents(&search(&f.kid, "pizza from:ADMIN in:#kitchen").await), ["pizza dough is rising"]);
    assert_eq!(search(&f.kid, "pizza in:general").await.total, 2);
    assert_eq!(search(&f.kid, "pizza from:dad from:admin").await.total, 3);
    // Filters alone list the newest messages that pass them.
    assert_eq!(contents(&search(&f.kid, "from:dad").await), ["pizza tonight"]);
    assert_eq!(search(&f.kid, "in:kitchen").await.total, 1);

    let today = hearth_server::search::query::utc_date(hearth_server::db::now_ms());
    assert_eq!(search(&f.kid, &format!("pizza before:{today}")).await.total, 0);
    assert_eq!(search(&f.kid, "pizza after:2024-01-01").await.total, 3);
    assert_eq!(search(&f.kid, "pizza has:file").await.total, 0, "no message with a file says pizza");

    for (q, code) in [
        ("from:nobody pizza", ErrorCode::InvalidField),
        ("in:nowhere", ErrorCode::InvalidField),
        ("", ErrorCode::InvalidField),
        ("?!", ErrorCode::InvalidField),
        ("before:tomorrow", ErrorCode::InvalidField),
    ] {
        expect_api_error(&search_raw(&f.kid, &[("q", q)]).await, code);
    }
    expect_api_error(&search_raw(&f.kid, &[("q", "pizza"), ("limit", "51")]).await, ErrorCode::InvalidField);
}

async fn search_never_shows_what_the_member_cannot_read(backend: Backend) {
    let f = family(backend).await;
    let parents: Channel = f
        .mum
        .ok(
            Method::POST,
            "/channels",
            Some(json!({"name": "parents", "kind": "text", "private": true, "members": [f.dad.id()]})),
            StatusCode::CREATED,
        )
        .await;
    post(&f.mum, parents.id, "secret birthday present").await;
    let dm = f.mum.dm(&[f.dad.id()]).await;
    post(&f.dad, dm.id, "the birthday cake is in the garage").await;
    post(&f.kid, f.general.id, "my birthday is soon!").await;

    assert_eq!(contents(&search(&f.kid, "birthday").await), ["my birthday is soon!"]);
    assert_eq!(search(&f.dad, "birthday").await.total, 3);
    // in: does not reach a channel one cannot see.
    expect_api_error(&search_raw(&f.kid, &[("q", "birthday in:parents")]).await, ErrorCode::InvalidField);
    // Taken out of the private channel, Dad no longer finds what is in it.
    f.mum
        .ok::<Channel>(
            Method::PUT,
            &format!("/channels/{}/members", parents.id),
            Some(json!({"members": []})),
            StatusCode::OK,
        )
        .await;
    let dads = search(&f.dad, "birthday").await;
    assert_eq!(contents(&dads), ["my birthday is soon!", "the birthday cake is in the garage"]);
    // A deleted channel's messages are gone from search.
    f.mum.no_content(Method::DELETE, &format!("/channels/{}", f.general.id), None).await;
    assert_eq!(search(&f.kid, "birthday").await.total, 0);

    // A blocked author's messages are left out for the one who blocked them.
    post(&f.kid, f.kitchen.id, "birthday birthday birthday").await;
    f.dad.no_content(Method::PUT, &format!("/users/@me/blocks/{}", f.kid.id()), None).await;
    assert_eq!(contents(&search(&f.dad, "birthday").await), ["the birthday cake is in the garage"]);
    assert_eq!(search(&f.mum, "birthday").await.total, 3);
    // Several blocked authors, with a date bound and a channel filter beside them.
    post(&f.mum, f.kitchen.id, "birthday party on saturday").await;
    assert_eq!(
        contents(&search(&f.dad, "birthday after:2024-01-01").await),
        ["birthday party on saturday", "the birthday cake is in the garage"]
    );
    f.dad.no_content(Method::PUT, &format!("/users/@me/blocks/{}", f.mum.id()), None).await;
    assert_eq!(
        contents(&search(&f.dad, "birthday after:2024-01-01").await),
        ["the birthday cake is in the garage"]
    );
    assert_eq!(search(&f.dad, "birthday in:kitchen").await.total, 0);
    assert_eq!(
        contents(&search(&f.kid, "birthday in:kitchen").await),
        ["birthday birthday birthday", "birthday party on saturday"]
    );
}

async fn edits_and_deletes_keep_the_index_in_step(backend: Backend) {
    let f = family(backend).await;
    let mut gw = f.server.gateway(&f.dad).await;
    let m = post(&f.dad, f.general.id, "meet at the station").await;
    gw.send(&hearth_protocol::gateway::ClientMsg::EditMessage {
        channel_id: f.general.id,
        message_id: m.id,
        content: "meet at the harbour 港口".into(),
    })
    .await;
    gw.event(|e| {
        matches!(e, hearth_protocol::gateway::Event::MessageUpdate { message } if message.id == m.id)
            .then_some(())
    })
    .await;
    assert_eq!(search(&f.kid, "station").await.total, 0, "the old words are gone");
    assert_eq!(search(&f.kid, "harbour").await.total, 1);
    assert_eq!(search(&f.kid, "港口").await.total, 1);

    gw.send(&hearth_protocol::gateway::ClientMsg::DeleteMessage {
        channel_id: f.general.id,
        message_id: m.id,
    })
    .await;
    gw.event(|e| {
        matches!(e, hearth_protocol::gateway::Event::MessageDelete { message_id, .. } if *message_id == m.id)
            .then_some(())
    })
    .await;
    assert_eq!(search(&f.kid, "harbour").await.total, 0);
    assert_eq!(search(&f.kid, "from:dad").await.total, 0);
}

async fn results_page_by_offset(backend: Backend) {
    let f = family(backend).await;
    let mut gw = f.server.gateway(&f.kid).await;
    // Sent over the gateway in one go (the per-user rate limit allows a burst of 20).
    for i in 0..18 {
        gw.send(&common::say(f.general.id, &format!("photo number {i}"))).await;
    }
    for _ in 0..18 {
        gw.event(|e| matches!(e, hearth_protocol::gateway::Event::MessageCreate { .. }).then_some(())).await;
    }
    let first = search(&f.mum, "photo").await;
    assert_eq!((first.total, first.hits.len(), first.next_offset), (18, 18, None));
    let (status, body) = search_raw(&f.mum, &[("q", "photo"), ("limit", "5"), ("offset", "15")]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let last: SearchResults = serde_json::from_value(body).expect("results");
    assert_eq!((last.total, last.hits.len(), last.next_offset), (18, 3, None));
    let (_, body) = search_raw(&f.mum, &[("q", "photo"), ("limit", "5")]).await;
    let page: SearchResults = serde_json::from_value(body).expect("results");
    assert_eq!(page.next_offset, Some(5));
    // Equal relevance: newest first.
    assert_eq!(page.hits[0].message.content, "photo number 17");
}

async fn history_around_a_message_loads_both_sides(backend: Backend) {
    let f = family(backend).await;
    let mut ids: Vec<MessageId> = Vec::new();
    let mut gw = f.server.gateway(&f.mum).await;
    for i in 0..15 {
        gw.send(&common::say(f.general.id, &format!("line {i}"))).await;
    }
    for _ in 0..15 {
        ids.push(
            gw.event(|e| match e {
                hearth_protocol::gateway::Event::MessageCreate { message, .. } => Some(message.id),
                _ => None,
            })
            .await,
        );
    }
    let around = f.kid.history(f.general.id, &format!("?around={}&limit=6", ids[7])).await;
    let got: Vec<&str> = around.iter().map(|m| m.content.as_str()).collect();
    assert_eq!(got, ["line 4", "line 5", "line 6", "line 7", "line 8", "line 9"]);
    let edge = f.kid.history(f.general.id, &format!("?around={}&limit=10", ids[1])).await;
    assert_eq!(edge.first().map(|m| m.content.as_str()), Some("line 0"));
    assert_eq!(edge.len(), 6, "line 0 and 1, then four after");
    expect_api_error(
        &f.kid.get(&format!("/channels/{}/messages?around={}&before={}", f.general.id, ids[3], ids[4])).await,
        ErrorCode::InvalidField,
    );
}

/// A database from before search existed: messages without index entries get them at start.
async fn the_index_is_built_for_messages_stored_before_it(backend: Backend) {
    let mut f = family(backend).await;
    post(&f.dad, f.general.id, "an old message about the lighthouse").await;
    f.server.kill9().await;
    let url = match &f.server.backend {
        Backend::Sqlite => format!("sqlite://{}", f.server.data_dir.join("hearth.db").display()),
        Backend::Postgres(url) => url.clone(),
    };
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&url).await.expect("opening the database");
    sqlx::query("DELETE FROM message_search").execute(&pool).await.expect("emptying the index");
    sqlx::query("DELETE FROM meta WHERE key LIKE 'search.%'")
        .execute(&pool)
        .await
        .expect("forgetting the backfill");
    pool.close().await;
    f.server.restart().await;
    let kid = f.kid.at(&f.server);
    assert_eq!(contents(&search(&kid, "lighthouse").await), ["an old message about the lighthouse"]);
}

both_backends!(
    words_in_english_and_chinese_are_found_and_highlighted,
    filters_narrow_by_author_channel_and_date,
    search_never_shows_what_the_member_cannot_read,
    edits_and_deletes_keep_the_index_in_step,
    results_page_by_offset,
    history_around_a_message_loads_both_sides,
    the_index_is_built_for_messages_stored_before_it,
);
