//! Text messaging through the gateway: delivery, idempotent resend, edits, deletes, replies,
//! reactions, mentions, typing, read states and history pages.

mod common;

use common::{Backend, TestServer, say};
use hearth_protocol::gateway::{ClientMsg, Event, ServerMsg};
use hearth_protocol::{ErrorCode, MessageId};

async fn a_message_reaches_every_member_once_and_is_in_history(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin().await;
    let bob = server.member(&admin, "bob").await;
    let general = admin.text_channel("general").await;
    let mut a = server.gateway(&admin).await;
    let mut b = server.gateway(&bob).await;

    a.send(&say(general.id, "hello bob")).await;
    let sent = a
        .event(|e| match e {
            Event::MessageCreate { message, .. } => Some(message.clone()),
            _ => None,
        })
        .await;
    let got = b
        .event(|e| match e {
            Event::MessageCreate { message, .. } => Some(message.clone()),
            _ => None,
        })
        .await;
    assert_eq!(sent, got);
    assert_eq!(got.content, "hello bob");
    assert_eq!(got.author_id, admin.session().user.id);

    let history = bob.history(general.id, "").await;
    assert_eq!(history, vec![got]);
    assert!(b.sync().await.is_empty(), "the message arrived twice");
}

async fn resending_a_nonce_returns_the_first_message_and_stores_nothing_new(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin().await;
    let bob = server.member(&admin, "bob").await;
    let general = admin.text_channel("general").await;
    let mut a = server.gateway(&admin).await;
    let mut b = server.gateway(&bob).await;

    let msg = ClientMsg::SendMessage {
        channel_id: general.id,
        nonce: "n-1".into(),
        content: "once".into(),
        reply_to: None,
        attachments: Vec::new(),
    };
    a.send(&msg).await;
    let first = a
        .event(|e| match e {
            Event::MessageCreate { message, nonce } => Some((message.clone(), nonce.clone())),
            _ => None,
        })
        .await;
    assert_eq!(first.1.as_deref(), Some("n-1"));
    a.send(&msg).await;
    let again = a
        .event(|e| match e {
            Event::MessageCreate { message, .. } => Some(message.clone()),
            _ => None,
        })
        .await;
    assert_eq!(again, first.0, "a resend must answer with the original message");

    // Bob saw it exactly once; history holds it once.
    b.event(|e| matches!(e, Event::MessageCreate { .. }).then_some(())).await;
    assert!(b.sync().await.is_empty());
    assert_eq!(bob.history(general.id, "").await.len(), 1);

    // The same nonce over HTTP is the same message too.
    let (status, body) = admin
        .post(
            &format!("/channels/{}/messages", general.id),
            serde_json::json!({"nonce": "n-1", "content": "once"}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["id"], serde_json::json!(first.0.id.to_string()));
}

async fn edits_deletes_replies_reactions_and_mentions(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin().await;
    let bob = server.member(&admin, "bob").await;
    let general = admin.text_channel("general").await;
    let mut a = server.gateway(&admin).await;
    let mut b = server.gateway(&bob).await;
    let bob_id = bob.session().user.id;

    a.send(&say(general.id, &format!("hi <@{bob_id}>"))).await;
    let first = b
        .event(|e| match e {
            Event::MessageCreate { message, .. } => Some(message.clone()),
            _ => None,
        })
        .await;
    assert_eq!(first.mentions, vec![bob_id]);

    b.send(&ClientMsg::SendMessage {
        channel_id: general.id,
        nonce: "r".into(),
        content: "reply".into(),
        reply_to: Some(first.id),
        attachments: Vec::new(),
    })
    .await;
    let reply = a
        .event(|e| match e {
            Event::MessageCreate { message, .. } if message.content == "reply" => Some(message.clone()),
            _ => None,
        })
        .await;
    assert_eq!(reply.reply_to, Some(first.id));

    // Replying to a message that does not exist is refused with the nonce echoed.
    b.send(&ClientMsg::SendMessage {
        channel_id: general.id,
        nonce: "bad".into(),
        content: "x".into(),
        reply_to: Some(MessageId(12345)),
        attachments: Vec::new(),
    })
    .await;
    match b.error().await {
        ServerMsg::Error { error, nonce, .. } => {
            assert_eq!(error.code, ErrorCode::NotFound);
            assert_eq!(nonce.as_deref(), Some("bad"));
        }
        _ => unreachable!(),
    }

    // Only the author edits.
    b.send(&ClientMsg::EditMessage {
        channel_id: general.id,
        message_id: first.id,
        content: "hacked".into(),
    })
    .await;
    match b.error().await {
        ServerMsg::Error { error, .. } => assert_eq!(error.code, ErrorCode::Forbidden),
        _ => unreachable!(),
    }
    a.send(&ClientMsg::EditMessage {
        channel_id: general.id,
        message_id: first.id,
        content: "hi all".into(),
    })
    .await;
    let edited = b
        .event(|e| match e {
            Event::MessageUpdate { message } => Some(message.clone()),
            _ => None,
        })
        .await;
    assert_eq!(edited.content, "hi all");
    assert!(edited.edited_at.is_some());
    assert!(edited.mentions.is_empty());

    b.send(&ClientMsg::AddReaction { channel_id: general.id, message_id: first.id, emoji: "👍".into() })
        .await;
    let (who, emoji) = a
        .event(|e| match e {
            Event::ReactionAdd { user_id, emoji, .. } => Some((*user_id, emoji.clone())),
            _ => None,
        })
        .await;
    assert_eq!((who, emoji.as_str()), (bob_id, "👍"));
    let history = admin.history(general.id, "").await;
    let with_reaction = history.iter().find(|m| m.id == first.id).expect("in history");
    assert_eq!(with_reaction.reactions.len(), 1);
    assert_eq!(with_reaction.reactions[0].users, vec![bob_id]);

    b.send(&ClientMsg::RemoveReaction { channel_id: general.id, message_id: first.id, emoji: "👍".into() })
        .await;
    a.event(|e| matches!(e, Event::ReactionRemove { .. }).then_some(())).await;

    a.send(&ClientMsg::DeleteMessage { channel_id: general.id, message_id: first.id }).await;
    let deleted = b
        .event(|e| match e {
            Event::MessageDelete { message_id, .. } => Some(*message_id),
            _ => None,
        })
        .await;
    assert_eq!(deleted, first.id);
    let history = admin.history(general.id, "").await;
    assert!(history.iter().all(|m| m.id != first.id));

    b.send(&ClientMsg::Typing { channel_id: general.id }).await;
    let typist = a
        .event(|e| match e {
            Event::TypingStart { user_id, .. } => Some(*user_id),
            _ => None,
        })
        .await;
    assert_eq!(typist, bob_id);
}

async fn read_states_count_unread_messages_and_mentions(backend: Backend) {
    let server = TestServer::start_with(backend, &["--limit-message-burst", "100"]).await;
    let admin = server.admin().await;
    let bob = server.member(&admin, "bob").await;
    let general = admin.text_channel("general").await;
    let bob_id = bob.session().user.id;
    let mut a = server.gateway(&admin).await;
    for i in 0..5 {
        a.send(&say(general.id, &format!("message {i}"))).await;
    }
    a.send(&say(general.id, &format!("ping <@{bob_id}>"))).await;
    let mut last = None;
    for _ in 0..6 {
        last = Some(
            a.event(|e| match e {
                Event::MessageCreate { message, .. } => Some(message.id),
                _ => None,
            })
            .await,
        );
    }
    let mut b = server.gateway(&bob).await;
    let rs =
        b.ready.as_ref().unwrap().read_states.iter().find(|r| r.channel_id == general.id).unwrap().clone();
    assert_eq!((rs.unread_count, rs.mention_count), (6, 1));

    b.send(&ClientMsg::MarkRead { channel_id: general.id, message_id: last.unwrap() }).await;
    let rs = b
        .event(|e| match e {
            Event::ReadStateUpdate { read_state } => Some(read_state.clone()),
            _ => None,
        })
        .await;
    assert_eq!((rs.unread_count, rs.mention_count, rs.last_read), (0, 0, last));

    // Another device of Bob's sees the channel read.
    let b2 = server.gateway(&bob).await;
    let rs =
        b2.ready.as_ref().unwrap().read_states.iter().find(|r| r.channel_id == general.id).unwrap().clone();
    assert_eq!(rs.unread_count, 0);
}

async fn history_pages_backwards_and_forwards_with_cursors(backend: Backend) {
    let server = TestServer::start_with(backend, &["--limit-message-burst", "100"]).await;
    let admin = server.admin().await;
    let general = admin.text_channel("general").await;
    let mut ids = Vec::new();
    for i in 0..25 {
        let (status, body) = admin
            .post(
                &format!("/channels/{}/messages", general.id),
                serde_json::json!({"nonce": format!("h{i}"), "content": format!("m{i}")}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        ids.push(body["id"].as_str().unwrap().parse::<i64>().unwrap());
    }
    let newest = admin.history(general.id, "?limit=10").await;
    assert_eq!(newest.len(), 10);
    assert_eq!(newest[0].content, "m24");
    let older = admin.history(general.id, &format!("?limit=10&before={}", newest[9].id)).await;
    assert_eq!(older[0].content, "m14");
    let oldest = admin.history(general.id, &format!("?limit=10&before={}", older[9].id)).await;
    assert_eq!(oldest.len(), 5);
    assert_eq!(oldest[4].content, "m0");
    let forward = admin.history(general.id, &format!("?after={}&limit=3", ids[0])).await;
    let contents: Vec<&str> = forward.iter().map(|m| m.content.as_str()).collect();
    assert_eq!(contents, ["m1", "m2", "m3"]);
    let (status, body) = admin.get(&format!("/channels/{}/messages?limit=500", general.id)).await;
    assert_eq!(status, 400, "{body}");
}

async fn a_nonce_resent_before_its_ack_is_still_stored_once(backend: Backend) {
    let server = TestServer::start_with(backend, &["--limit-message-burst", "100"]).await;
    let admin = server.admin().await;
    let general = admin.text_channel("general").await;
    let mut a = server.gateway(&admin).await;
    // Pipelined without waiting, so the copies can land in one group commit.
    let twice = ClientMsg::SendMessage {
        channel_id: general.id,
        nonce: "same".into(),
        content: "twice".into(),
        reply_to: None,
        attachments: Vec::new(),
    };
    for i in 0..10 {
        a.send(&twice).await;
        a.send(&say(general.id, &format!("other {i}"))).await;
    }
    let mut ids = Vec::new();
    for _ in 0..20 {
        let (id, nonce) = a
            .event(|e| match e {
                Event::MessageCreate { message, nonce } => Some((message.id, nonce.clone())),
                _ => None,
            })
            .await;
        if nonce.as_deref() == Some("same") {
            ids.push(id);
        }
    }
    assert_eq!(ids.len(), 10, "every copy is answered");
    assert!(ids.iter().all(|id| *id == ids[0]), "every copy is answered with the same message");
    let history = admin.history(general.id, "?limit=100").await;
    assert_eq!(history.iter().filter(|m| m.content == "twice").count(), 1);
    assert_eq!(history.len(), 11);
}

both_backends!(
    a_nonce_resent_before_its_ack_is_still_stored_once,
    a_message_reaches_every_member_once_and_is_in_history,
    resending_a_nonce_returns_the_first_message_and_stores_nothing_new,
    edits_deletes_replies_reactions_and_mentions,
    read_states_count_unread_messages_and_mentions,
    history_pages_backwards_and_forwards_with_cursors,
);
