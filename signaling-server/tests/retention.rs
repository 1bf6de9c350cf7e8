//! Retention: messages older than the group keeps them are deleted with their reactions,
//! mentions and search entries, and every member is told. Old messages are stored straight
//! into the database with ids from weeks ago (the clock is in the ids), so nothing sleeps.

mod common;

use common::{Backend, TestServer, say, search};
use hearth_protocol::gateway::Event;
use hearth_protocol::ids::compose;
use hearth_protocol::model::{Channel, ServerSettings};
use hearth_protocol::{ChannelId, MessageId, UserId};
use hearth_server::db::Db;
use hearth_server::db::messages::{NewMessage, Stored};
use reqwest::{Method, StatusCode};
use serde_json::json;

const DAY_MS: i64 = 86_400_000;

fn database_url(server: &TestServer) -> String {
    match &server.backend {
        Backend::Sqlite => format!("sqlite://{}", server.data_dir.join("hearth.db").display()),
        Backend::Postgres(url) => url.clone(),
    }
}

/// Stores messages `days_ago` days old (with a mention and a reaction each) through the
/// server's own storage code, as if they had been sent then.
async fn store_old(
    db: &Db,
    channel: ChannelId,
    author: UserId,
    mention: UserId,
    days_ago: i64,
    n: usize,
) -> Vec<MessageId> {
    let base = compose(hearth_server::db::now_ms() - days_ago * DAY_MS, 0);
    let batch: Vec<NewMessage> = (0..n)
        .map(|i| NewMessage {
            channel_id: channel,
            author_id: author,
            nonce: format!("old-{days_ago}-{i}"),
            content: format!("ancient holiday photos number {i} 老照片"),
            reply_to: None,
            mentions: vec![mention],
            attachments: Vec::new(),
        })
        .collect();
    let mut next = base;
    let stored = db
        .store_messages(&batch, || {
            next += 1;
            next
        })
        .await
        .expect("storing old messages");
    let ids: Vec<MessageId> = stored
        .into_iter()
        .map(|s| match s {
            Stored::Created(m) => m.id,
            other => panic!("not stored: {other:?}"),
        })
        .collect();
    for id in &ids {
        db.add_reaction(*id, "👍", mention).await.expect("reacting");
    }
    ids
}

async fn count(db: &Db, sql: &'static str, ids: &[MessageId]) -> i64 {
    let mut total = 0;
    for id in ids {
        total += sqlx::query_scalar::<_, i64>(sql).bind(id.0).fetch_one(&db.pool).await.expect("counting");
    }
    total
}

async fn leftovers(db: &Db, ids: &[MessageId]) -> [i64; 4] {
    let search = match db.backend {
        hearth_server::db::Backend::Sqlite => "SELECT COUNT(*) FROM message_search WHERE rowid = $1",
        hearth_server::db::Backend::Postgres => "SELECT COUNT(*) FROM message_search WHERE id = $1",
    };
    [
        count(db, "SELECT COUNT(*) FROM messages WHERE id = $1", ids).await,
        count(db, "SELECT COUNT(*) FROM reactions WHERE message_id = $1", ids).await,
        count(db, "SELECT COUNT(*) FROM mentions WHERE message_id = $1", ids).await,
        count(db, search, ids).await,
    ]
}

async fn old_messages_go_with_everything_attached_to_them(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin().await;
    let bob = server.member(&admin, "bob").await;
    let general: Channel = admin.text_channel("general").await;
    let mut b = server.gateway(&bob).await;
    b.send(&say(general.id, "fresh holiday photos")).await;
    b.event(|e| matches!(e, Event::MessageCreate { .. }).then_some(())).await;

    let db = Db::connect(&database_url(&server)).await.expect("opening the database");
    let old = store_old(&db, general.id, admin.id(), bob.id(), 40, 7).await;
    let recent = store_old(&db, general.id, admin.id(), bob.id(), 10, 2).await;
    assert_eq!(search(&bob, "holiday").await.total, 10);
    assert_eq!(leftovers(&db, &old).await, [7, 7, 7, 7]);

    // Keeping 30 days: the task wakes at the change, purges, and tells everyone.
    admin
        .ok::<ServerSettings>(
            Method::PATCH,
            "/server/settings",
            Some(json!({"retention_days": 30})),
            StatusCode::OK,
        )
        .await;
    let before = b
        .event(|e| match e {
            Event::MessagesPurged { before } => Some(*before),
            _ => None,
        })
        .await;
    let day = |id: MessageId| id.timestamp_ms() / DAY_MS;
    assert_eq!(day(before), (hearth_server::db::now_ms() - 30 * DAY_MS) / DAY_MS);
    assert!(old.iter().all(|id| *id < before) && recent.iter().all(|id| *id > before));

    assert_eq!(leftovers(&db, &old).await, [0, 0, 0, 0], "messages, reactions, mentions, search entries");
    assert_eq!(leftovers(&db, &recent).await, [2, 2, 2, 2]);
    let history = bob.history(general.id, "?limit=100").await;
    assert_eq!(history.len(), 3);
    assert_eq!(search(&bob, "holiday").await.total, 3);
    assert_eq!(search(&bob, "老照片").await.total, 2);
    db.close().await;
}

/// The purge itself with a clock moved forward, in batches smaller than the work.
async fn purging_works_in_batches_up_to_the_cutoff(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin().await;
    let general: Channel = admin.text_channel("general").await;
    let db = Db::connect(&database_url(&server)).await.expect("opening the database");
    let old = store_old(&db, general.id, admin.id(), admin.id(), 3, 5).await;
    let newer = store_old(&db, general.id, admin.id(), admin.id(), 1, 3).await;

    // Seen from a day later, with 3 days kept, the 3-day-old messages are 4 days old.
    let now = hearth_server::db::now_ms() + DAY_MS;
    let cutoff = hearth_server::retention::cutoff(3, now);
    assert_eq!(hearth_server::retention::purge(&db, cutoff, 2).await.expect("purging"), 5);
    assert_eq!(leftovers(&db, &old).await, [0, 0, 0, 0]);
    assert_eq!(leftovers(&db, &newer).await, [3, 3, 3, 3]);
    assert_eq!(
        hearth_server::retention::purge(&db, cutoff, 2).await.expect("purging"),
        0,
        "nothing left to do"
    );
    db.close().await;
}

both_backends!(old_messages_go_with_everything_attached_to_them, purging_works_in_batches_up_to_the_cutoff);
