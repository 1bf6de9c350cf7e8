//! Group administration through the engine against the real server, on SQLite and on
//! PostgreSQL: invites shared and used, channels managed with another member's list following
//! live, roles, moderation (kick, ban, block), ownership, settings and the audit log, and a
//! member's admin attempts refused by the server.

mod common;

use common::{Backend, PASSWORD, PNG, TestClient, TestServer, fast, temp_dir};
use hearth_client::{ConnectionStatus, Engine, Error, SessionEvent};
use hearth_protocol::api::{CreateChannelRequest, UpdateChannelRequest, UpdateServerSettingsRequest};
use hearth_protocol::gateway::{Event, close};
use hearth_protocol::model::{AuditAction, ChannelKind, Role};
use hearth_protocol::{ChannelId, ErrorCode};

both_backends!(
    the_owner_shares_an_invite_and_a_second_person_joins_with_the_link,
    channel_changes_by_an_admin_follow_live_in_another_members_list,
    a_members_admin_attempts_are_refused_by_the_server,
    roles_ownership_settings_and_the_audit_log,
    kicked_and_banned_members_stop_reconnecting_and_blocks_reach_the_blocker,
);

fn channel(name: &str, kind: ChannelKind) -> CreateChannelRequest {
    CreateChannelRequest { name: name.into(), kind, topic: None, private: false, members: vec![] }
}

fn code(result: Result<impl std::fmt::Debug, Error>) -> Option<ErrorCode> {
    result.expect_err("the server should refuse").api_code()
}

/// Waits until `client`'s cache satisfies `pred` (each cache change comes with an event).
async fn until_channels(client: &mut TestClient, pred: impl Fn(&[hearth_protocol::model::Channel]) -> bool) {
    loop {
        if pred(&client.engine.channels().await.expect("cached channels")) {
            return;
        }
        client.wait_for(|e| matches!(e, SessionEvent::Event(_)).then_some(())).await;
    }
}

/// The close code with which the server ended `client`'s connection, and whether it retries.
async fn closed_by_server(client: &mut TestClient) -> (u16, bool) {
    client
        .wait_for(|e| match e {
            SessionEvent::Closed { code, reconnecting, .. } => Some((*code, *reconnecting)),
            _ => None,
        })
        .await
}

async fn the_owner_shares_an_invite_and_a_second_person_joins_with_the_link(backend: Backend) {
    let server = TestServer::start_on(backend).await;
    let mut owner = TestClient::admin(&server).await;
    assert_eq!(owner.session.user().expect("me").role, Role::Owner);

    let shared = owner.engine.invite_create(Some(2), Some(3600)).await.expect("invite");
    assert_eq!(shared.invite.max_uses, Some(2));
    assert!(shared.invite.expires_at.is_some());
    assert!(shared.link.starts_with("hearth://join?server=http%3A%2F%2F127.0.0.1"), "{}", shared.link);
    assert!(shared.link.ends_with(&format!("&code={}", shared.invite.code)));
    assert_eq!(shared.page, format!("{}/invite/{}", server.url(), shared.invite.code));
    // The page link is the server's real page, which offers the app's own link.
    let page = reqwest::get(&shared.page).await.expect("invite page").text().await.expect("page text");
    assert!(page.contains("hearth://join"), "the invite page offers to open the app");

    // A second person joins with the copied link.
    let dir = temp_dir("bob");
    let engine = Engine::open_with(dir.path(), fast()).expect("engine");
    let account = engine.add_account_from_invite(&shared.link, "bob", PASSWORD).await.expect("join");
    let bob = TestClient::online(engine, &account.id, dir).await;
    assert_eq!(bob.session.user().expect("bob").role, Role::Member);
    owner
        .wait_for(|e| match e {
            SessionEvent::Event(Event::MemberAdd { user }) if user.username == "bob" => Some(()),
            _ => None,
        })
        .await;

    // One use left; revoking it ends the invite for everyone.
    let listed = owner.engine.invites().await.expect("invites");
    let mine = listed.iter().find(|i| i.invite.code == shared.invite.code).expect("still listed");
    assert_eq!(mine.invite.uses, 1);
    assert_eq!(mine.link, shared.link);
    owner.engine.invite_revoke(&shared.invite.code).await.expect("revoke");
    assert!(
        owner.engine.invites().await.expect("invites").iter().all(|i| i.invite.code != shared.invite.code)
    );
    let late = Engine::open_with(temp_dir("carol").path(), fast()).expect("engine");
    let refused = late.add_account_from_invite(&shared.link, "carol", PASSWORD).await;
    assert_eq!(code(refused), Some(ErrorCode::InvalidInvite));
    assert_eq!(code(owner.engine.invite_revoke("no-such-code").await), Some(ErrorCode::NotFound));
}

async fn channel_changes_by_an_admin_follow_live_in_another_members_list(backend: Backend) {
    let server = TestServer::start_on(backend).await;
    let admin = TestClient::admin(&server).await;
    let mut bob = TestClient::member(&admin, "bob").await;

    let news = admin.engine.channel_create(channel("news", ChannelKind::Text)).await.expect("news");
    let talk = admin.engine.channel_create(channel("talk", ChannelKind::Voice)).await.expect("talk");
    let id = news.id;
    until_channels(&mut bob, |cs| cs.iter().any(|c| c.id == id) && cs.iter().any(|c| c.id == talk.id)).await;

    // Rename and topic.
    let req = UpdateChannelRequest {
        name: Some("family-news".into()),
        topic: Some("What happened".into()),
        ..Default::default()
    };
    let renamed = admin.engine.channel_update(id, req).await.expect("rename");
    assert_eq!((renamed.name.as_str(), renamed.topic.as_str()), ("family-news", "What happened"));
    until_channels(&mut bob, |cs| {
        cs.iter().any(|c| c.id == id && c.name == "family-news" && c.topic == "What happened")
    })
    .await;
    let bad = admin
        .engine
        .channel_update(id, UpdateChannelRequest { name: Some(String::new()), ..Default::default() })
        .await;
    assert_eq!(code(bad), Some(ErrorCode::InvalidField));

    // Reorder: bob's list follows the new order.
    let order = vec![talk.id, id];
    let arranged = admin.engine.channel_reorder(order.clone()).await.expect("reorder");
    let mut got: Vec<_> = arranged.iter().map(|c| (c.position, c.id)).collect();
    got.sort();
    assert_eq!(got.into_iter().map(|(_, id)| id).collect::<Vec<_>>(), order);
    until_channels(&mut bob, |cs| {
        let pos = |id: ChannelId| cs.iter().find(|c| c.id == id).map(|c| c.position);
        pos(talk.id) < pos(id)
    })
    .await;
    let partial = admin.engine.channel_reorder(vec![id]).await;
    assert_eq!(code(partial), Some(ErrorCode::InvalidField));

    // A private channel appears for bob only once he is a member, and goes when he is not.
    let parents = CreateChannelRequest { private: true, ..channel("parents", ChannelKind::Text) };
    let parents = admin.engine.channel_create(parents).await.expect("private channel");
    assert!(parents.private);
    admin
        .engine
        .channel_set_members(parents.id, vec![bob.session.user().expect("bob").id])
        .await
        .expect("add bob");
    until_channels(&mut bob, |cs| cs.iter().any(|c| c.id == parents.id)).await;
    let members = admin.engine.channel_set_members(parents.id, vec![]).await.expect("remove bob");
    assert_eq!(
        members.members,
        vec![admin.session.user().expect("admin").id],
        "the one who changes it stays"
    );
    until_channels(&mut bob, |cs| cs.iter().all(|c| c.id != parents.id)).await;

    // Delete.
    admin.engine.channel_delete(id).await.expect("delete");
    until_channels(&mut bob, |cs| cs.iter().all(|c| c.id != id)).await;
    assert_eq!(code(admin.engine.channel_delete(id).await), Some(ErrorCode::NotFound));
}

async fn a_members_admin_attempts_are_refused_by_the_server(backend: Backend) {
    let server = TestServer::start_on(backend).await;
    let mut admin = TestClient::admin(&server).await;
    let general = admin.text_channel("general").await;
    let bob = TestClient::member(&admin, "bob").await;
    let carol = TestClient::member(&admin, "carol").await;
    let carol_id = carol.session.user().expect("carol").id;
    let admin_id = admin.session.user().expect("admin").id;
    let missing = Some(ErrorCode::MissingPermission);

    let e = &bob.engine;
    assert_eq!(code(e.invite_create(None, None).await), missing);
    assert_eq!(code(e.invites().await), missing);
    assert_eq!(code(e.channel_create(channel("mine", ChannelKind::Text)).await), missing);
    let rename = UpdateChannelRequest { name: Some("mine".into()), ..Default::default() };
    assert_eq!(code(e.channel_update(general, rename).await), missing);
    assert_eq!(code(e.channel_reorder(vec![general]).await), missing);
    assert_eq!(code(e.channel_delete(general).await), missing);
    assert_eq!(code(e.member_set_role(carol_id, Role::Admin).await), missing);
    assert_eq!(code(e.member_kick(carol_id, None).await), missing);
    assert_eq!(code(e.member_ban(carol_id, None).await), missing);
    assert_eq!(code(e.bans().await), missing);
    let rename_server = UpdateServerSettingsRequest { name: Some("Mine".into()), ..Default::default() };
    assert_eq!(code(e.server_settings_update(rename_server).await), missing);
    assert_eq!(code(e.server_icon_set(None).await), missing);
    assert_eq!(code(e.audit_log(None, 50).await), missing);
    assert_eq!(code(e.transfer_ownership(carol_id).await), Some(ErrorCode::Forbidden));

    // An admin may not act on the owner; nothing above changed anything.
    admin
        .engine
        .member_set_role(bob.session.user().expect("bob").id, Role::Admin)
        .await
        .expect("promote bob");
    assert_eq!(code(bob.engine.member_kick(admin_id, None).await), Some(ErrorCode::Forbidden));
    assert_eq!(
        code(bob.engine.member_set_role(bob.session.user().expect("bob").id, Role::Owner).await),
        Some(ErrorCode::Forbidden)
    );
    let channels = admin.engine.channels().await.expect("channels");
    assert!(channels.iter().any(|c| c.id == general && c.name == "general"));
    assert!(
        admin
            .engine
            .members()
            .await
            .expect("members")
            .iter()
            .any(|m| m.id == carol_id && m.role == Role::Member)
    );
    let log = admin.engine.audit_log(None, 100).await.expect("audit log");
    assert!(log.iter().all(|entry| entry.actor_id == admin_id), "only the admin's own actions were recorded");
}

async fn roles_ownership_settings_and_the_audit_log(backend: Backend) {
    let server = TestServer::start_on(backend).await;
    let owner = TestClient::admin(&server).await;
    let mut bob = TestClient::member(&owner, "bob").await;
    let bob_id = bob.session.user().expect("bob").id;
    let owner_id = owner.session.user().expect("owner").id;

    let promoted = owner.engine.member_set_role(bob_id, Role::Admin).await.expect("promote");
    assert_eq!(promoted.role, Role::Admin);
    bob.wait_for(|e| match e {
        SessionEvent::Event(Event::MemberUpdate { user })
            if user.id == bob_id && user.role == Role::Admin =>
        {
            Some(())
        }
        _ => None,
    })
    .await;
    assert_eq!(bob.session.user().expect("bob").role, Role::Admin);

    // Settings reach every member.
    let req = UpdateServerSettingsRequest {
        name: Some("The Smiths".into()),
        description: Some("Family things".into()),
        retention_days: Some(30),
        ..Default::default()
    };
    let settings = owner.engine.server_settings_update(req).await.expect("settings");
    assert_eq!((settings.name.as_str(), settings.retention_days), ("The Smiths", Some(30)));
    bob.wait_for(|e| match e {
        SessionEvent::Event(Event::ServerUpdate { server }) if server.name == "The Smiths" => Some(()),
        _ => None,
    })
    .await;
    assert_eq!(bob.engine.server_settings().await.expect("settings").description, "Family things");
    let keep_all = UpdateServerSettingsRequest { retention_days: Some(0), ..Default::default() };
    assert_eq!(owner.engine.server_settings_update(keep_all).await.expect("keep all").retention_days, None);
    let bad = UpdateServerSettingsRequest { name: Some(" ".into()), ..Default::default() };
    assert_eq!(code(owner.engine.server_settings_update(bad).await), Some(ErrorCode::InvalidField));

    // An icon, through the same bounded decoding as avatars, served publicly.
    let icon = owner.engine.server_icon_set(Some(PNG.to_vec())).await.expect("icon");
    let hash = icon.icon.expect("icon hash");
    assert_eq!(&owner.engine.server_icon(&hash).await.expect("icon bytes")[..8], b"\x89PNG\r\n\x1a\n");
    assert_eq!(
        code(owner.engine.server_icon_set(Some(b"not an image".to_vec())).await),
        Some(ErrorCode::UnsupportedMedia)
    );
    assert_eq!(owner.engine.server_icon_set(None).await.expect("no icon").icon, None);

    // Ownership handed over: bob is the owner, the old owner an admin.
    let heir = owner.engine.transfer_ownership(bob_id).await.expect("transfer");
    assert_eq!(heir.role, Role::Owner);
    bob.wait_for(|e| match e {
        SessionEvent::Event(Event::MemberUpdate { user })
            if user.id == owner_id && user.role == Role::Admin =>
        {
            Some(())
        }
        _ => None,
    })
    .await;

    // The audit log tells who did what to whom, newest first, in pages.
    let log = bob.engine.audit_log(None, 100).await.expect("audit log");
    let actions: Vec<_> = log.iter().map(|e| e.action).collect();
    assert_eq!(actions.first(), Some(&AuditAction::OwnershipTransfer), "{actions:?}");
    assert!(actions.contains(&AuditAction::MemberRoleUpdate));
    assert!(actions.contains(&AuditAction::ServerUpdate));
    let role = log.iter().find(|e| e.action == AuditAction::MemberRoleUpdate).expect("role entry");
    assert_eq!((role.actor_id, role.target_user_id), (owner_id, Some(bob_id)));
    let first = bob.engine.audit_log(None, 1).await.expect("page 1");
    let second = bob.engine.audit_log(Some(first[0].id), 1).await.expect("page 2");
    assert_eq!(second[0], log[1]);
    assert_eq!(code(bob.engine.audit_log(None, 0).await), Some(ErrorCode::InvalidField));
}

async fn kicked_and_banned_members_stop_reconnecting_and_blocks_reach_the_blocker(backend: Backend) {
    let server = TestServer::start_on(backend).await;
    let mut admin = TestClient::admin(&server).await;
    let mut bob = TestClient::member(&admin, "bob").await;
    let mut carol = TestClient::member(&admin, "carol").await;
    let bob_id = bob.session.user().expect("bob").id;
    let carol_id = carol.session.user().expect("carol").id;

    // Blocks: told to the blocker's sessions; a DM to the blocker is refused.
    carol.engine.member_block(bob_id, true).await.expect("block");
    carol
        .wait_for(|e| match e {
            SessionEvent::Event(Event::BlockUpdate { user_id, blocked: true }) if *user_id == bob_id => {
                Some(())
            }
            _ => None,
        })
        .await;
    assert_eq!(code(bob.engine.open_dm(vec![carol_id]).await), Some(ErrorCode::Blocked));
    carol.engine.member_block(bob_id, false).await.expect("unblock");
    bob.engine.open_dm(vec![carol_id]).await.expect("DM after unblock");

    // A kick ends bob's session for good: Closed 4015, then offline, no reconnects.
    admin.engine.member_kick(bob_id, Some("too loud".into())).await.expect("kick");
    let closed = closed_by_server(&mut bob).await;
    assert_eq!(closed, (close::KICKED, false));
    bob.wait_for(|e| matches!(e, SessionEvent::ConnectionStatus(ConnectionStatus::Offline)).then_some(()))
        .await;
    // The admin's member list is its cache: it drops bob when the MemberRemove event arrives,
    // which may come after bob's close.
    admin
        .wait_for(|e| match e {
            SessionEvent::Event(Event::MemberRemove { user_id, .. }) if *user_id == bob_id => Some(()),
            _ => None,
        })
        .await;
    assert!(admin.engine.members().await.expect("members").iter().all(|m| m.id != bob_id));

    // A ban: Closed 4014, and login is refused until the ban is lifted.
    admin.engine.member_ban(carol_id, None).await.expect("ban");
    let closed = closed_by_server(&mut carol).await;
    assert_eq!(closed, (close::BANNED, false));
    let bans = admin.engine.bans().await.expect("bans");
    assert_eq!(bans.iter().map(|b| b.user.id).collect::<Vec<_>>(), vec![carol_id]);
    let laptop = Engine::open_with(temp_dir("carol-laptop").path(), fast()).expect("engine");
    assert_eq!(code(laptop.login(&server.url(), "carol", PASSWORD).await), Some(ErrorCode::Banned));
    admin.engine.member_unban(carol_id).await.expect("unban");
    assert!(admin.engine.bans().await.expect("bans").is_empty());
    assert_eq!(code(admin.engine.member_unban(carol_id).await), Some(ErrorCode::NotFound));
}
