//! Removing members and keeping them out: a kick closes every session at once and a new
//! invite (with their own password) brings them back with their history; a ban closes the
//! sessions too and refuses login and registration until lifted; blocks refuse DMs.

mod common;

use common::{Backend, Client, PASSWORD, TestServer, expect_api_error, say};
use hearth_protocol::api::Session;
use hearth_protocol::gateway::{ClientMsg, Event, ServerMsg, close};
use hearth_protocol::model::{AuditAction, AuditEntry, Ban, Channel, Message, Role, User};
use hearth_protocol::{ErrorCode, PROTOCOL_VERSION};
use reqwest::{Method, StatusCode};
use serde_json::json;

async fn register(
    server: &TestServer,
    invite: &str,
    username: &str,
    password: &str,
) -> (StatusCode, serde_json::Value) {
    server
        .client()
        .post("/auth/register", json!({"invite": invite, "username": username, "password": password}))
        .await
}

async fn members(client: &Client) -> Vec<String> {
    let list: Vec<User> = client.ok(Method::GET, "/users", None, StatusCode::OK).await;
    list.into_iter().map(|u| u.username).collect()
}

async fn a_kicked_member_is_closed_out_at_once_and_may_come_back_with_a_new_invite(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin().await;
    let bob = server.member(&admin, "bob").await;
    let general = admin.text_channel("general").await;
    let said: Message = bob
        .ok(
            Method::POST,
            &format!("/channels/{}/messages", general.id),
            Some(json!({"nonce": "n1", "content": "hello from bob"})),
            StatusCode::CREATED,
        )
        .await;
    // Two devices, both closed.
    let mut phone = server.gateway(&bob).await;
    let mut laptop = server.gateway(&bob).await;
    let mut a = server.gateway(&admin).await;

    let (status, body) =
        admin.post(&format!("/users/{}/kick", bob.id()), json!({"reason": "cooling off"})).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(phone.closed().await, Some(close::KICKED));
    assert_eq!(laptop.closed().await, Some(close::KICKED));
    a.event(|e| matches!(e, Event::MemberRemove { user_id } if *user_id == bob.id()).then_some(())).await;
    // A resume of the old session is refused too.
    let (error, _, code) = common::Gateway::refused(
        &server.ws_url(),
        &ClientMsg::Identify { token: bob.token().into(), protocol_version: PROTOCOL_VERSION, status: None },
    )
    .await;
    assert_eq!((error.code, code), (ErrorCode::Unauthorized, Some(close::AUTHENTICATION_FAILED)));
    let log: Vec<AuditEntry> = admin.ok(Method::GET, "/audit-log?limit=1", None, StatusCode::OK).await;
    assert_eq!(
        (log[0].action, log[0].target_user_id, log[0].reason.as_deref()),
        (AuditAction::MemberKick, Some(bob.id()), Some("cooling off"))
    );

    // Nobody else may take the name; Bob needs a new invite and his own password.
    let invite = admin.invite().await;
    expect_api_error(&register(&server, &invite.code, "bob", "someone else's pw").await, ErrorCode::Conflict);
    expect_api_error(&register(&server, "no-such-invite", "bob", PASSWORD).await, ErrorCode::InvalidInvite);
    let (status, body) = register(&server, &invite.code, "BOB", PASSWORD).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let back: Session = serde_json::from_value(body).expect("session");
    assert_eq!(back.user.id, bob.id(), "the same account comes back");
    assert_eq!(back.user.role, Role::Member);
    let added = a
        .event(|e| match e {
            Event::MemberAdd { user } => Some(user.id),
            _ => None,
        })
        .await;
    assert_eq!(added, bob.id());
    let bob = server.client().with_token(&back.access_token);
    let history = bob.history(general.id, "").await;
    assert_eq!(history, vec![said], "his history is kept");
    assert_eq!(members(&admin).await, ["admin", "bob"]);
    // The invite was used.
    expect_api_error(&register(&server, &invite.code, "carol", PASSWORD).await, ErrorCode::InvalidInvite);
}

async fn a_banned_member_cannot_log_in_or_register_until_unbanned(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin().await;
    let bob = server.member(&admin, "bob").await;
    let mut live = server.gateway(&bob).await;

    admin.no_content(Method::PUT, &format!("/bans/{}", bob.id()), Some(json!({"reason": "spam"}))).await;
    assert_eq!(live.closed().await, Some(close::BANNED), "the open gateway session is closed at once");
    expect_api_error(&bob.get("/users/@me").await, ErrorCode::Unauthorized);
    let refresh = bob.session().refresh_token.clone();
    expect_api_error(&bob.clone().refresh_session(&refresh).await, ErrorCode::InvalidRefreshToken);

    // Login: the right password learns of the ban; a wrong one learns nothing.
    expect_api_error(&server.client().login("bob", PASSWORD).await, ErrorCode::Banned);
    expect_api_error(&server.client().login("bob", "wrong password!").await, ErrorCode::InvalidCredentials);
    // Registration with a fresh invite is refused and does not use the invite up.
    let invite = admin.invite().await;
    expect_api_error(&register(&server, &invite.code, "bob", PASSWORD).await, ErrorCode::Banned);
    let bans: Vec<Ban> = admin.ok(Method::GET, "/bans", None, StatusCode::OK).await;
    assert_eq!(bans.len(), 1);
    assert_eq!(
        (bans[0].user.id, bans[0].reason.as_deref(), bans[0].banned_by),
        (bob.id(), Some("spam"), admin.id())
    );
    // Banning again changes nothing.
    admin.no_content(Method::PUT, &format!("/bans/{}", bob.id()), None).await;
    assert_eq!(admin.ok::<Vec<Ban>>(Method::GET, "/bans", None, StatusCode::OK).await.len(), 1);

    admin.no_content(Method::DELETE, &format!("/bans/{}", bob.id()), None).await;
    expect_api_error(&admin.delete(&format!("/bans/{}", bob.id())).await, ErrorCode::NotFound);
    // Unbanned is not back: login still needs the new invite.
    expect_api_error(&server.client().login("bob", PASSWORD).await, ErrorCode::InvalidCredentials);
    let (status, body) = register(&server, &invite.code, "bob", PASSWORD).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let actions: Vec<AuditAction> = admin
        .ok::<Vec<AuditEntry>>(Method::GET, "/audit-log", None, StatusCode::OK)
        .await
        .iter()
        .map(|e| e.action)
        .collect();
    assert_eq!(&actions[..3], [AuditAction::MemberUnban, AuditAction::InviteCreate, AuditAction::MemberBan]);
}

async fn a_kicked_member_can_still_be_banned(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin().await;
    let bob = server.member(&admin, "bob").await;
    admin.no_content(Method::POST, &format!("/users/{}/kick", bob.id()), None).await;
    admin.no_content(Method::PUT, &format!("/bans/{}", bob.id()), None).await;
    let invite = admin.invite().await;
    expect_api_error(&register(&server, &invite.code, "bob", PASSWORD).await, ErrorCode::Banned);
    expect_api_error(&admin.put(&format!("/bans/{}", admin.id()), json!({})).await, ErrorCode::InvalidField);
    expect_api_error(&admin.put("/bans/12345", json!({})).await, ErrorCode::NotFound);
}

async fn a_block_refuses_dms_from_the_blocked_member(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin().await;
    let bob = server.member(&admin, "bob").await;
    let carol = server.member(&admin, "carol").await;
    let dm = bob.dm(&[carol.id()]).await;
    let mut c = server.gateway(&carol).await;
    let mut b = server.gateway(&bob).await;

    carol.no_content(Method::PUT, &format!("/users/@me/blocks/{}", bob.id()), None).await;
    let update = c
        .event(|e| match e {
            Event::BlockUpdate { user_id, blocked } => Some((*user_id, *blocked)),
            _ => None,
        })
        .await;
    assert_eq!(update, (bob.id(), true));
    assert_eq!(server.gateway(&carol).await.ready.expect("ready").blocked, vec![bob.id()]);
    assert!(server.gateway(&bob).await.ready.expect("ready").blocked.is_empty(), "Bob is told nothing");

    // Bob can no longer reach Carol: not in the DM, not in a new group DM, not over HTTP.
    b.send(&say(dm.id, "hey?")).await;
    match b.error().await {
        ServerMsg::Error { error, failed_op, .. } => {
            assert_eq!((error.code, failed_op.as_deref()), (ErrorCode::Blocked, Some("SendMessage")))
        }
        _ => unreachable!(),
    }
    expect_api_error(
        &bob.post(&format!("/channels/{}/messages", dm.id), json!({"nonce": "x", "content": "hey"})).await,
        ErrorCode::Blocked,
    );
    expect_api_error(&bob.post("/dms", json!({"recipients": [carol.id()]})).await, ErrorCode::Blocked);
    expect_api_error(
        &bob.post("/dms", json!({"recipients": [carol.id(), admin.id()]})).await,
        ErrorCode::Blocked,
    );
    // Carol still can, and the group is unaffected.
    carol
        .ok::<Message>(
            Method::POST,
            &format!("/channels/{}/messages", dm.id),
            Some(json!({"nonce": "c1", "content": "I can still write"})),
            StatusCode::CREATED,
        )
        .await;
    assert!(
        c.sync()
            .await
            .iter()
            .all(|e| !matches!(e, Event::MessageCreate { message, .. } if message.author_id == bob.id()))
    );

    expect_api_error(
        &carol.put(&format!("/users/@me/blocks/{}", carol.id()), json!({})).await,
        ErrorCode::InvalidField,
    );
    carol.no_content(Method::DELETE, &format!("/users/@me/blocks/{}", bob.id()), None).await;
    let update = c
        .event(|e| match e {
            Event::BlockUpdate { user_id, blocked } => Some((*user_id, *blocked)),
            _ => None,
        })
        .await;
    assert_eq!(update, (bob.id(), false));
    let again: Message = bob
        .ok(
            Method::POST,
            &format!("/channels/{}/messages", dm.id),
            Some(json!({"nonce": "b2", "content": "friends again"})),
            StatusCode::CREATED,
        )
        .await;
    assert_eq!(again.author_id, bob.id());
    let reopened: Channel = bob.dm(&[carol.id()]).await;
    assert_eq!(reopened.id, dm.id);
}

both_backends!(
    a_kicked_member_is_closed_out_at_once_and_may_come_back_with_a_new_invite,
    a_banned_member_cannot_log_in_or_register_until_unbanned,
    a_kicked_member_can_still_be_banned,
    a_block_refuses_dms_from_the_blocked_member,
);
