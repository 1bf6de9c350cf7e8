//! A message written while the server is down waits in the outbox, survives closing the app,
//! and lands exactly once when the server is back.

mod common;

use common::{TestClient, TestServer, fast};
use hearth_client::attachments::Progress;
use hearth_client::store::OutboxState;
use hearth_client::{ConnectionStatus, Engine, SessionEvent, SessionHandle};
use hearth_protocol::api::HistoryQuery;
use hearth_protocol::gateway::Event;
use hearth_protocol::model::AttachmentKind;
use tokio_util::sync::CancellationToken;

/// Waits until `session` notices the server is gone; returns its events from before that.
async fn offline(session: &SessionHandle) -> tokio::sync::broadcast::Receiver<SessionEvent> {
    let mut events = session.subscribe();
    tokio::time::timeout(common::WAIT, async {
        while session.status() == ConnectionStatus::Connected {
            let _other = events.recv().await;
        }
    })
    .await
    .expect("the client notices the server is gone");
    events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_sent_offline_survives_a_restart_and_is_delivered_once() {
    let mut server = TestServer::start().await;
    let mut admin = TestClient::admin(&server).await;
    let general = admin.text_channel("general").await;
    let bob = TestClient::member(&admin, "bob").await;
    let bob_dir = bob.dir.clone();
    let bob_account = bob.engine.active_account().unwrap();

    server.stop().await;
    offline(&bob.session).await;
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

/// A real 2×2 PNG.
const PNG: &[u8] = &[
    137, 80, 78, 71, 13, 10, 26, 10, 0, 0, 0, 13, 73, 72, 68, 82, 0, 0, 0, 2, 0, 0, 0, 2, 8, 2, 0, 0, 0, 253,
    212, 154, 115, 0, 0, 0, 18, 73, 68, 65, 84, 120, 156, 99, 248, 207, 192, 192, 0, 194, 12, 255, 129, 0, 0,
    31, 238, 5, 251, 11, 217, 104, 139, 0, 0, 0, 0, 73, 69, 78, 68, 174, 66, 96, 130,
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attachments_wait_in_the_outbox_and_arrive_with_previews_and_downloads() {
    let mut server = TestServer::start().await;
    let mut admin = TestClient::admin(&server).await;
    let general = admin.text_channel("general").await;
    let bob = TestClient::member(&admin, "bob").await;

    // Uploaded while online, through the engine, with progress.
    let photo = bob.dir.path().join("photo.png");
    let notes = bob.dir.path().join("notes.txt");
    std::fs::write(&photo, PNG).unwrap();
    std::fs::write(&notes, b"bring cake").unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let cancel = CancellationToken::new();
    let report = {
        let seen = seen.clone();
        std::sync::Arc::new(move |p: Progress| seen.lock().unwrap().push(p))
            as std::sync::Arc<dyn Fn(Progress) + Send + Sync>
    };
    let image = bob.engine.upload_attachment(&photo, "photo.png", &cancel, report.clone()).await.unwrap();
    let file = bob.engine.upload_attachment(&notes, "notes.txt", &cancel, report).await.unwrap();
    assert_eq!((image.kind, image.thumbnail), (AttachmentKind::Image, true));
    assert_eq!(file.kind, AttachmentKind::File);
    assert!(seen.lock().unwrap().iter().any(|p| p.done == PNG.len() as u64 && p.total == PNG.len() as u64));

    // A cancelled upload ends as `Cancelled`.
    let cancelled = CancellationToken::new();
    cancelled.cancel();
    let err =
        bob.engine.upload_attachment(&notes, "again.txt", &cancelled, std::sync::Arc::new(|_| {})).await;
    assert!(matches!(err, Err(hearth_client::Error::Cancelled)), "{err:?}");

    // The message with both waits offline in the outbox, text empty.
    server.stop().await;
    let mut events = offline(&bob.session).await;
    bob.session
        .send_message_with_attachments(general, "", None, "with-files", vec![image.id, file.id])
        .await
        .unwrap();
    let outbox = bob.engine.outbox().await.unwrap();
    assert_eq!(outbox[0].attachments, vec![image.id, file.id], "the outbox keeps the ids");

    server.restart().await;
    let sent = common::wait_for(&mut events, &mut |e| match e {
        SessionEvent::Event(Event::MessageCreate { message, nonce: Some(n) }) if n == "with-files" => {
            Some(message.clone())
        }
        _ => None,
    })
    .await;
    assert_eq!(sent.attachments.iter().map(|a| a.id).collect::<Vec<_>>(), vec![image.id, file.id]);

    // The admin sees them: the preview of the image, the whole file downloaded with progress.
    admin.session.connected().await.unwrap();
    let thumb = admin.engine.attachment_thumbnail(image.id).await.unwrap();
    assert!(thumb.starts_with(&[0x89, b'P', b'N', b'G']) || thumb.starts_with(&[0xff, 0xd8, 0xff]));
    assert_eq!(admin.engine.attachment_bytes(image.id, 1 << 20).await.unwrap().len(), PNG.len());
    let too_big = admin.engine.attachment_bytes(image.id, 10).await;
    assert!(
        matches!(&too_big, Err(hearth_client::Error::Api(e)) if e.code == hearth_protocol::ErrorCode::PayloadTooLarge)
    );
    let dest = admin.dir.path().join("saved-notes.txt");
    admin
        .engine
        .download_attachment(
            file.id,
            file.size,
            &dest,
            &CancellationToken::new(),
            std::sync::Arc::new(|_| {}),
        )
        .await
        .unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), b"bring cake");
}
