//! Channels run from the app: private text and voice channels seen only by their members
//! (Ready, lists, history, gateway, voice), member lists applied live to everyone's channel
//! list and to calls, making a channel private or open, topics, reordering with hidden
//! channels kept in place, and deletion.

mod common;

use common::{Backend, Client, Gateway, TestServer, expect_api_error, say};
use hearth_protocol::gateway::{ClientMsg, Event};
use hearth_protocol::model::{AuditAction, AuditEntry, Channel, Message};
use hearth_protocol::{ChannelId, ErrorCode, UserId};
use reqwest::{Method, StatusCode};
use serde_json::json;

async fn private(admin: &Client, name: &str, kind: &str, members: &[UserId]) -> Channel {
    admin
        .ok(
            Method::POST,
            "/channels",
            Some(json!({"name": name, "kind": kind, "private": true, "members": members})),
            StatusCode::CREATED,
        )
        .await
}

async fn set_members(admin: &Client, channel: ChannelId, members: &[UserId]) -> Channel {
    admin
        .ok(
            Method::PUT,
            &format!("/channels/{channel}/members"),
            Some(json!({"members": members})),
            StatusCode::OK,
        )
        .await
}

async fn make_admin(owner: &Client, member: &Client) {
    let path = format!("/users/{}", member.id());
    owner
        .ok::<hearth_protocol::model::User>(
            Method::PATCH,
            &path,
            Some(json!({"role": "admin"})),
            StatusCode::OK,
        )
        .await;
}

/// What happened to `channel` in this session's view: the next create, update or delete.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Create,
    Update,
    Delete,
}

async fn seen(gw: &mut Gateway, channel: ChannelId) -> Seen {
    gw.event(|e| match e {
        Event::ChannelCreate { channel: c } if c.id == channel => Some(Seen::Create),
        Event::ChannelUpdate { channel: c } if c.id == channel => Some(Seen::Update),
        Event::ChannelDelete { channel_id } if *channel_id == channel => Some(Seen::Delete),
        _ => None,
    })
    .await
}

/// Nothing about `channel` reached this session.
async fn nothing_about(gw: &mut Gateway, channel: ChannelId) {
    let id = format!("\"{channel}\"");
    let leaked: Vec<Event> = gw
        .sync()
        .await
        .into_iter()
        .filter(|e| serde_json::to_string(e).expect("json").contains(&id))
        .collect();
    assert!(leaked.is_empty(), "events about a hidden channel: {leaked:?}");
}

async fn hidden_from(client: &Client, channel: ChannelId) {
    let path = format!("/channels/{channel}");
    for answer in [
        client.get(&path).await,
        client.get(&format!("{path}/messages")).await,
        client.post(&format!("{path}/messages"), json!({"nonce": "peek", "content": "hi?"})).await,
    ] {
        expect_api_error(&answer, ErrorCode::NotFound);
    }
    let listed: Vec<Channel> = client.ok(Method::GET, "/channels", None, StatusCode::OK).await;
    assert!(listed.iter().all(|c| c.id != channel), "the channel is listed");
}

async fn a_private_channel_exists_only_for_its_members(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin().await;
    let bob = server.member(&admin, "bob").await;
    let carol = server.member(&admin, "carol").await;
    let mut a = server.gateway(&admin).await;
    let mut b = server.gateway(&bob).await;
    let mut c = server.gateway(&carol).await;

    let parents = private(&admin, "parents", "text", &[bob.id()]).await;
    assert!(parents.private);
    assert_eq!(
        parents.members,
        {
            let mut m = vec![admin.id(), bob.id()];
            m.sort();
            m
        },
        "the creator is a member"
    );
    assert_eq!(seen(&mut a, parents.id).await, Seen::Create);
    assert_eq!(seen(&mut b, parents.id).await, Seen::Create);

    a.send(&say(parents.id, "what do we get them for christmas")).await;
    b.event(|e| {
        matches!(e, Event::MessageCreate { message, .. } if message.channel_id == parents.id).then_some(())
    })
    .await;
    b.send(&ClientMsg::Typing { channel_id: parents.id }).await;
    a.event(|e| {
        matches!(e, Event::TypingStart { channel_id, .. } if *channel_id == parents.id).then_some(())
    })
    .await;

    nothing_about(&mut c, parents.id).await;
    hidden_from(&carol, parents.id).await;
    assert!(server.gateway(&carol).await.ready.expect("ready").channels.iter().all(|ch| ch.id != parents.id));
    for op in [say(parents.id, "let me in"), ClientMsg::Typing { channel_id: parents.id }] {
        c.send(&op).await;
        match c.error().await {
            hearth_protocol::gateway::ServerMsg::Error { error, .. } => {
                assert_eq!(error.code, ErrorCode::NotFound)
            }
            _ => unreachable!(),
        }
    }
    // A mention of Carol there does not reach her either.
    a.send(&say(parents.id, &format!("don't tell <@{}>", carol.id()))).await;
    let told = b
        .event(|e| match e {
            Event::MessageCreate { message, .. }
                if message.channel_id == parents.id && message.content.starts_with("don't") =>
            {
                Some(message.clone())
            }
            _ => None,
        })
        .await;
    assert!(told.mentions.is_empty(), "a non-member was recorded as mentioned");
    nothing_about(&mut c, parents.id).await;
}

async fn member_list_changes_apply_live_to_lists_and_calls(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin().await;
    let bob = server.member(&admin, "bob").await;
    let carol = server.member(&admin, "carol").await;
    let mut a = server.gateway(&admin).await;
    let mut b = server.gateway(&bob).await;
    let mut c = server.gateway(&carol).await;

    let room = private(&admin, "quiet room", "voice", &[bob.id()]).await;
    assert_eq!(seen(&mut b, room.id).await, Seen::Create);
    // Carol cannot join a voice channel she cannot see.
    c.send(&ClientMsg::VoiceJoin { channel_id: room.id, muted: false, deafened: false }).await;
    match c.error().await {
        hearth_protocol::gateway::ServerMsg::Error { error, .. } => {
            assert_eq!(error.code, ErrorCode::NotFound)
        }
        _ => unreachable!(),
    }
    b.send(&ClientMsg::VoiceJoin { channel_id: room.id, muted: false, deafened: false }).await;
    a.event(|e| matches!(e, Event::VoiceStateUpdate { state } if state.user_id == bob.id() && state.channel_id == Some(room.id)).then_some(())).await;

    // Carol added: she sees it appear; the others see it change.
    let changed = set_members(&admin, room.id, &[bob.id(), carol.id()]).await;
    assert_eq!(changed.members.len(), 3);
    assert_eq!(seen(&mut c, room.id).await, Seen::Create);
    assert_eq!(seen(&mut a, room.id).await, Seen::Update);
    assert_eq!(seen(&mut b, room.id).await, Seen::Update);

    // Bob removed: it goes from his list and he is taken out of its call.
    set_members(&admin, room.id, &[carol.id()]).await;
    assert_eq!(seen(&mut b, room.id).await, Seen::Delete);
    let left = a
        .event(|e| match e {
            Event::VoiceStateUpdate { state } if state.user_id == bob.id() => Some(state.channel_id),
            _ => None,
        })
        .await;
    assert_eq!(left, None, "a removed member leaves the call");
    hidden_from(&bob, room.id).await;
    b.send(&ClientMsg::VoiceJoin { channel_id: room.id, muted: false, deafened: false }).await;
    match b.error().await {
        hearth_protocol::gateway::ServerMsg::Error { error, .. } => {
            assert_eq!(error.code, ErrorCode::NotFound)
        }
        _ => unreachable!(),
    }

    // The one who changes the list stays in it; strangers cannot be added.
    let kept = set_members(&admin, room.id, &[]).await;
    assert_eq!(kept.members, vec![admin.id()]);
    expect_api_error(
        &admin.put(&format!("/channels/{}/members", room.id), json!({"members": ["42"]})).await,
        ErrorCode::NotFound,
    );
    let log: Vec<AuditEntry> = admin.ok(Method::GET, "/audit-log?limit=1", None, StatusCode::OK).await;
    assert_eq!(log[0].action, AuditAction::ChannelMembersUpdate);
    assert_eq!(log[0].changes[0].field, "removed");
    assert_eq!(log[0].changes[0].old, Some(carol.id().to_string()));
}

async fn a_channel_made_private_or_open_appears_and_disappears(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin().await;
    let bob = server.member(&admin, "bob").await;
    let general = admin.text_channel("general").await;
    let said: Message = admin
        .ok(
            Method::POST,
            &format!("/channels/{}/messages", general.id),
            Some(json!({"nonce": "n", "content": "before"})),
            StatusCode::CREATED,
        )
        .await;
    let mut b = server.gateway(&bob).await;

    let made: Channel = admin
        .ok(
            Method::PATCH,
            &format!("/channels/{}", general.id),
            Some(json!({"private": true})),
            StatusCode::OK,
        )
        .await;
    assert_eq!((made.private, made.members.clone()), (true, vec![admin.id()]));
    assert_eq!(seen(&mut b, general.id).await, Seen::Delete);
    hidden_from(&bob, general.id).await;

    let opened: Channel = admin
        .ok(
            Method::PATCH,
            &format!("/channels/{}", general.id),
            Some(json!({"private": false, "topic": "everything"})),
            StatusCode::OK,
        )
        .await;
    assert!(!opened.private && opened.members.is_empty());
    assert_eq!(opened.topic, "everything");
    assert_eq!(seen(&mut b, general.id).await, Seen::Create);
    assert_eq!(bob.history(general.id, "").await, vec![said], "history comes back with the channel");
    expect_api_error(
        &admin.put(&format!("/channels/{}/members", general.id), json!({"members": []})).await,
        ErrorCode::InvalidField,
    );
    expect_api_error(
        &admin.post("/channels", json!({"name": "x", "kind": "text", "members": [bob.id()]})).await,
        ErrorCode::InvalidField,
    );
    expect_api_error(
        &admin
            .patch(
                &format!("/channels/{}", general.id),
                json!({"topic": "t".repeat(hearth_protocol::MAX_TOPIC_CHARS + 1)}),
            )
            .await,
        ErrorCode::InvalidField,
    );
}

async fn an_admin_outside_a_private_channel_cannot_see_or_manage_it(backend: Backend) {
    let server = TestServer::start(backend).await;
    let owner = server.admin().await;
    let bob = server.member(&owner, "bob").await;
    make_admin(&owner, &bob).await;
    let secret = private(&owner, "surprise party", "text", &[]).await;
    hidden_from(&bob, secret.id).await;
    for answer in [
        bob.patch(&format!("/channels/{}", secret.id), json!({"name": "found it"})).await,
        bob.put(&format!("/channels/{}/members", secret.id), json!({"members": [bob.id()]})).await,
        bob.delete(&format!("/channels/{}", secret.id)).await,
    ] {
        expect_api_error(&answer, ErrorCode::NotFound);
    }
}

async fn reordering_renumbers_and_keeps_hidden_channels_in_place(backend: Backend) {
    let server = TestServer::start(backend).await;
    let owner = server.admin().await;
    let bob = server.member(&owner, "bob").await;
    make_admin(&owner, &bob).await;
    let one = owner.text_channel("one").await;
    let hidden = private(&owner, "hidden", "text", &[]).await;
    let two = owner.text_channel("two").await;
    let voice = owner.voice_channel("voice").await;
    let mut o = server.gateway(&owner).await;

    // Bob sees one, two, voice; he puts voice first and two before one.
    let order: Vec<Channel> = bob
        .ok(
            Method::PUT,
            "/channels/order",
            Some(json!({"channel_ids": [voice.id, two.id, one.id]})),
            StatusCode::OK,
        )
        .await;
    let ids: Vec<ChannelId> = order.iter().map(|c| c.id).collect();
    assert_eq!(ids, [voice.id, two.id, one.id]);
    // For the owner, the hidden channel kept the second slot.
    let all: Vec<Channel> = owner.ok(Method::GET, "/channels", None, StatusCode::OK).await;
    let seen_by_owner: Vec<(ChannelId, i32)> = all.iter().map(|c| (c.id, c.position)).collect();
    assert_eq!(seen_by_owner, [(voice.id, 0), (hidden.id, 1), (two.id, 2), (one.id, 3)]);
    o.event(|e| {
        matches!(e, Event::ChannelUpdate { channel } if channel.id == voice.id && channel.position == 0)
            .then_some(())
    })
    .await;

    // A list that is not exactly what Bob can see is refused.
    for ids in [
        json!([one.id, two.id]),
        json!([one.id, two.id, voice.id, hidden.id]),
        json!([one.id, one.id, two.id]),
    ] {
        expect_api_error(
            &bob.put("/channels/order", json!({"channel_ids": ids})).await,
            ErrorCode::InvalidField,
        );
    }
    let log: Vec<AuditEntry> = owner.ok(Method::GET, "/audit-log?limit=1", None, StatusCode::OK).await;
    assert_eq!((log[0].action, log[0].actor_id), (AuditAction::ChannelReorder, bob.id()));
}

both_backends!(
    a_private_channel_exists_only_for_its_members,
    member_list_changes_apply_live_to_lists_and_calls,
    a_channel_made_private_or_open_appears_and_disappears,
    an_admin_outside_a_private_channel_cannot_see_or_manage_it,
    reordering_renumbers_and_keeps_hidden_channels_in_place,
);
