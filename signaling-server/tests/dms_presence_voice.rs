//! Direct messages (offline delivery, finding an existing DM, group DMs and their privacy),
//! presence across statuses and devices, and voice: joining, state updates, signalling
//! between members of one call, and leaving when the connection drops.

mod common;

use common::{Backend, Client, Gateway, TestServer};
use hearth_protocol::gateway::{ClientMsg, Event, ServerMsg};
use hearth_protocol::model::{Channel, ChannelKind, Signal, Status, VoiceState};
use hearth_protocol::{ChannelId, ErrorCode, MAX_GROUP_DM_MEMBERS, UserId};
use reqwest::StatusCode;
use serde_json::json;

async fn open_dm(client: &Client, recipients: &[UserId]) -> (StatusCode, Channel) {
    let (status, body) = client.post("/dms", json!({ "recipients": recipients })).await;
    assert!(status.is_success(), "POST /dms answered {status} {body}");
    (status, serde_json::from_value(body).expect("channel"))
}

async fn post_message(client: &Client, channel: ChannelId, nonce: &str, content: &str) {
    let (status, body) = client
        .post(&format!("/channels/{channel}/messages"), json!({"nonce": nonce, "content": content}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

fn id(client: &Client) -> UserId {
    client.session().user.id
}

/// The next `Error` frame's code and failed op.
async fn refusal(gw: &mut Gateway) -> (ErrorCode, Option<String>) {
    match gw.error().await {
        ServerMsg::Error { error, failed_op, .. } => (error.code, failed_op),
        _ => unreachable!("Gateway::error returns only Error frames"),
    }
}

async fn a_dm_to_an_offline_member_waits_with_unread_and_mention_counts(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin().await;
    let bob = server.member(&admin, "bob").await;

    let (status, dm) = open_dm(&admin, &[id(&bob)]).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(dm.kind, ChannelKind::Dm);
    let mut members = vec![id(&admin), id(&bob)];
    members.sort();
    assert_eq!(dm.members, members);
    for i in 0..3 {
        post_message(&admin, dm.id, &format!("dm-{i}"), &format!("dm {i}")).await;
    }

    // Bob has never connected: his first Ready shows the DM and what waits in it.
    let b = server.gateway(&bob).await;
    let ready = b.ready.as_ref().unwrap();
    assert!(
        ready.channels.iter().any(|c| c.id == dm.id && c.kind == ChannelKind::Dm),
        "DM missing from Ready"
    );
    let rs = ready.read_states.iter().find(|r| r.channel_id == dm.id).expect("read state of the DM");
    assert_eq!((rs.unread_count, rs.mention_count, rs.last_read), (3, 3, None));
    let contents: Vec<String> = bob.whole_history(dm.id).await.into_iter().map(|m| m.content).collect();
    assert_eq!(contents, ["dm 0", "dm 1", "dm 2"]);

    // Gone again, Bob still collects what arrives meanwhile.
    b.close_and_wait().await;
    post_message(&admin, dm.id, "dm-3", "dm 3").await;
    let b = server.gateway(&bob).await;
    let rs = b.ready.as_ref().unwrap().read_states.iter().find(|r| r.channel_id == dm.id).cloned().unwrap();
    assert_eq!((rs.unread_count, rs.mention_count), (4, 4));

    // Opening the DM again, from either side, finds the same channel.
    let (status, again) = open_dm(&admin, &[id(&bob)]).await;
    assert_eq!((status, again.id), (StatusCode::OK, dm.id));
    let (status, from_bob) = open_dm(&bob, &[id(&admin)]).await;
    assert_eq!((status, from_bob.id), (StatusCode::OK, dm.id));
}

async fn a_group_dm_reaches_its_members_only(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin().await;
    let bob = server.member(&admin, "bob").await;
    let carol = server.member(&admin, "carol").await;
    let dave = server.member(&admin, "dave").await;
    let mut b = server.gateway(&bob).await;
    let mut c = server.gateway(&carol).await;
    let mut d = server.gateway(&dave).await;

    let (status, group) = open_dm(&admin, &[id(&bob), id(&carol)]).await;
    assert_eq!((status, group.kind), (StatusCode::CREATED, ChannelKind::GroupDm));
    let mut members = vec![id(&admin), id(&bob), id(&carol)];
    members.sort();
    assert_eq!(group.members, members);

    post_message(&admin, group.id, "g-1", "just us three").await;
    for gw in [&mut b, &mut c] {
        let created = gw
            .event(|e| match e {
                Event::ChannelCreate { channel } => Some(channel.id),
                _ => None,
            })
            .await;
        assert_eq!(created, group.id);
        let got = gw
            .event(|e| match e {
                Event::MessageCreate { message, .. } => Some(message.clone()),
                _ => None,
            })
            .await;
        assert_eq!((got.channel_id, got.content.as_str()), (group.id, "just us three"));
    }
    // Dave hears nothing of it and cannot reach it.
    let leaked: Vec<Event> = d
        .sync()
        .await
        .into_iter()
        .filter(|e| matches!(e, Event::ChannelCreate { .. } | Event::MessageCreate { .. }))
        .collect();
    assert!(leaked.is_empty(), "a group DM leaked to a non-member: {leaked:?}");
    assert_eq!(dave.get(&format!("/channels/{}", group.id)).await.0, StatusCode::NOT_FOUND);
    assert_eq!(dave.get(&format!("/channels/{}/messages", group.id)).await.0, StatusCode::NOT_FOUND);
    let (status, _) = dave
        .post(&format!("/channels/{}/messages", group.id), json!({"nonce": "x", "content": "let me in"}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, list) = dave.get("/channels").await;
    let listed: Vec<Channel> = serde_json::from_value(list).expect("channels");
    assert!(listed.iter().all(|ch| ch.id != group.id));
    let d2 = server.gateway(&dave).await;
    assert!(d2.ready.as_ref().unwrap().channels.iter().all(|ch| ch.id != group.id));
    d.send(&ClientMsg::SendMessage {
        channel_id: group.id,
        nonce: "y".into(),
        content: "hi".into(),
        reply_to: None,
        attachments: Vec::new(),
    })
    .await;
    assert_eq!(refusal(&mut d).await.0, ErrorCode::NotFound);
    assert_eq!(carol.whole_history(group.id).await.len(), 1);
}

async fn a_group_dm_holds_at_most_ten_members(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin().await;
    let mut others = Vec::new();
    for i in 0..MAX_GROUP_DM_MEMBERS {
        others.push(id(&server.member(&admin, &format!("user{i}")).await));
    }
    // Nine others (the creator and a repeat are not counted twice): the largest group.
    let mut nine = others[..MAX_GROUP_DM_MEMBERS - 1].to_vec();
    nine.push(id(&admin));
    nine.push(others[0]);
    let (status, group) = open_dm(&admin, &nine).await;
    assert_eq!((status, group.kind), (StatusCode::CREATED, ChannelKind::GroupDm));
    assert_eq!(group.members.len(), MAX_GROUP_DM_MEMBERS);

    let (status, body) = admin.post("/dms", json!({ "recipients": others })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["code"], "invalid_field");
    let (status, _) = admin.post("/dms", json!({ "recipients": [id(&admin)] })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "a DM with oneself");
}

async fn presence_follows_status_and_devices(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin().await;
    let bob = server.member(&admin, "bob").await;
    let carol = server.member(&admin, "carol").await;
    let bob_id = id(&bob);
    let bob_status = |e: &Event| match e {
        Event::PresenceUpdate { presence } if presence.user_id == bob_id => Some(presence.status),
        _ => None,
    };
    let mut a = server.gateway(&admin).await;
    let no_bob_change = |events: Vec<Event>| {
        let changes: Vec<Status> = events.iter().filter_map(bob_status).collect();
        assert!(changes.is_empty(), "Bob's presence changed: {changes:?}");
    };

    let mut b1 = server.gateway(&bob).await;
    assert_eq!(a.event(bob_status).await, Status::Online);
    b1.send(&ClientMsg::SetStatus { status: Status::Dnd }).await;
    assert_eq!(a.event(bob_status).await, Status::Dnd);
    b1.send(&ClientMsg::SetStatus { status: Status::Invisible }).await;
    assert_eq!(a.event(bob_status).await, Status::Offline);
    let c = server.gateway(&carol).await;
    let seen = |user: UserId| {
        c.ready.as_ref().unwrap().presences.iter().find(|p| p.user_id == user).map(|p| p.status)
    };
    assert_eq!(seen(bob_id), Some(Status::Offline), "invisible must look offline in Ready");
    assert_eq!(seen(id(&admin)), Some(Status::Online));
    b1.send(&ClientMsg::SetStatus { status: Status::Offline }).await;
    assert_eq!(refusal(&mut b1).await, (ErrorCode::InvalidField, Some("SetStatus".into())));
    b1.send(&ClientMsg::SetStatus { status: Status::Online }).await;
    assert_eq!(a.event(bob_status).await, Status::Online);

    // A second device changes nothing while both are online.
    let mut b2 = server.gateway(&bob).await;
    no_bob_change(a.sync().await);
    // Idle only when every device is idle.
    b1.send(&ClientMsg::SetStatus { status: Status::Idle }).await;
    b1.sync().await;
    no_bob_change(a.sync().await);
    b2.send(&ClientMsg::SetStatus { status: Status::Idle }).await;
    assert_eq!(a.event(bob_status).await, Status::Idle);
    b2.send(&ClientMsg::SetStatus { status: Status::Online }).await;
    assert_eq!(a.event(bob_status).await, Status::Online);

    // Closing one device keeps Bob online (b1 is idle, b2 was the online one).
    b1.close_and_wait().await;
    no_bob_change(a.sync().await);
    // Losing the last connection takes him offline, though his session stays resumable.
    b2.drop_connection();
    assert_eq!(a.event(bob_status).await, Status::Offline);
}

async fn voice_state_is_shared_and_signals_reach_only_the_call(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin().await;
    let bob = server.member(&admin, "bob").await;
    let carol = server.member(&admin, "carol").await;
    let lounge = admin.voice_channel("lounge").await;
    let general = admin.text_channel("general").await;
    let (admin_id, bob_id, carol_id) = (id(&admin), id(&bob), id(&carol));
    let mut a = server.gateway(&admin).await;
    let mut b = server.gateway(&bob).await;
    let mut c = server.gateway(&carol).await;
    let voice = |e: &Event| match e {
        Event::VoiceStateUpdate { state } => Some(state.clone()),
        _ => None,
    };
    let state = |user_id, channel_id, muted, deafened, speaking| VoiceState {
        user_id,
        channel_id,
        muted,
        deafened,
        speaking,
    };

    a.send(&ClientMsg::VoiceJoin { channel_id: lounge.id, muted: false, deafened: false }).await;
    let admin_in = state(admin_id, Some(lounge.id), false, false, false);
    for gw in [&mut a, &mut b, &mut c] {
        assert_eq!(gw.event(voice).await, admin_in);
    }
    b.send(&ClientMsg::VoiceJoin { channel_id: lounge.id, muted: true, deafened: false }).await;
    for gw in [&mut a, &mut b, &mut c] {
        assert_eq!(gw.event(voice).await, state(bob_id, Some(lounge.id), true, false, false));
    }
    b.send(&ClientMsg::VoiceUpdate { muted: false, deafened: true, speaking: true }).await;
    let bob_in = state(bob_id, Some(lounge.id), false, true, true);
    for gw in [&mut a, &mut b, &mut c] {
        assert_eq!(gw.event(voice).await, bob_in);
    }

    // A new connection finds the call in Ready.
    let c2 = server.gateway(&carol).await;
    let mut states = c2.ready.as_ref().unwrap().voice_states.clone();
    states.sort_by_key(|s| s.user_id);
    let mut expected = vec![admin_in.clone(), bob_in.clone()];
    expected.sort_by_key(|s| s.user_id);
    assert_eq!(states, expected);

    // Signalling goes to the other member of the call, marked with its sender.
    let offer = Signal::Offer { sdp: "v=0 offer".into() };
    a.send(&ClientMsg::VoiceSignal { to: bob_id, signal: offer.clone() }).await;
    let got = b
        .event(|e| match e {
            Event::VoiceSignal { from, signal } => Some((*from, signal.clone())),
            _ => None,
        })
        .await;
    assert_eq!(got, (admin_id, offer));
    let answer = Signal::Answer { sdp: "v=0 answer".into() };
    b.send(&ClientMsg::VoiceSignal { to: admin_id, signal: answer.clone() }).await;
    let got = a
        .event(|e| match e {
            Event::VoiceSignal { from, signal } => Some((*from, signal.clone())),
            _ => None,
        })
        .await;
    assert_eq!(got, (bob_id, answer));
    let overheard: Vec<Event> =
        c.sync().await.into_iter().filter(|e| matches!(e, Event::VoiceSignal { .. })).collect();
    assert!(overheard.is_empty(), "a signal leaked outside the call: {overheard:?}");

    // Nobody signals across the call's edge, either way.
    let candidate = Signal::Candidate {
        candidate: "candidate:1".into(),
        sdp_mid: Some("0".into()),
        sdp_mline_index: Some(0),
    };
    a.send(&ClientMsg::VoiceSignal { to: carol_id, signal: candidate.clone() }).await;
    assert_eq!(refusal(&mut a).await, (ErrorCode::Forbidden, Some("VoiceSignal".into())));
    c.send(&ClientMsg::VoiceSignal { to: admin_id, signal: candidate }).await;
    assert_eq!(refusal(&mut c).await, (ErrorCode::Forbidden, Some("VoiceSignal".into())));
    c.send(&ClientMsg::VoiceJoin { channel_id: general.id, muted: false, deafened: false }).await;
    assert_eq!(refusal(&mut c).await, (ErrorCode::NotFound, Some("VoiceJoin".into())));
    c.send(&ClientMsg::VoiceUpdate { muted: true, deafened: false, speaking: false }).await;
    assert_eq!(refusal(&mut c).await.0, ErrorCode::InvalidField);

    // Bob's connection drops: he leaves the call for everyone.
    b.drop_connection();
    for gw in [&mut a, &mut c] {
        let left = gw.event(voice).await;
        assert_eq!((left.user_id, left.channel_id, left.speaking), (bob_id, None, false));
    }
    a.send(&ClientMsg::VoiceLeave).await;
    let left = c.event(voice).await;
    assert_eq!((left.user_id, left.channel_id), (admin_id, None));
    let c3 = server.gateway(&carol).await;
    assert!(c3.ready.as_ref().unwrap().voice_states.is_empty());
}

both_backends!(
    a_dm_to_an_offline_member_waits_with_unread_and_mention_counts,
    a_group_dm_reaches_its_members_only,
    a_group_dm_holds_at_most_ten_members,
    presence_follows_status_and_devices,
    voice_state_is_shared_and_signals_reach_only_the_call,
);
