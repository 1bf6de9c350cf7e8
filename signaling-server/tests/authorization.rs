//! Who may do what: every HTTP route and gateway op tried without a token, with a bad token,
//! as a plain member on routes that need a permission (or ownership), as a member outside a
//! DM, and as a kicked member; voice signalling only within a call; a deleted channel's
//! history gone for everyone.

mod common;

use std::collections::BTreeSet;

use common::{Backend, Client, Gateway, PASSWORD, TestServer, expect_api_error, say};
use hearth_protocol::api::Invite;
use hearth_protocol::gateway::{ClientMsg, Event, ServerMsg, close};
use hearth_protocol::model::{AuditEntry, Ban, Channel, Message, Permission, Role, ServerSettings, Signal};
use hearth_protocol::{ChannelId, ErrorCode, MessageId, PROTOCOL_VERSION, UserId};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// Who may use a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    /// Anyone, without a token.
    Public,
    /// The WebSocket upgrade: the token comes in `Identify`, tested over the gateway.
    Gateway,
    /// Any current member with a valid access token.
    Member,
    /// Members whose role holds the permission (owners and admins always do).
    Needs(Permission),
    /// Owners only.
    Owner,
}

use Access::{Gateway as Ws, Member, Needs, Owner, Public};
use Permission::{ManageChannels, ManageInvites, ManageMembers, ManageServer};

/// Every access class but the public ones.
const GUARDED: [Access; 6] =
    [Member, Needs(ManageChannels), Needs(ManageInvites), Needs(ManageMembers), Needs(ManageServer), Owner];
/// The classes a plain member is refused.
const PRIVILEGED: [Access; 5] =
    [Needs(ManageChannels), Needs(ManageInvites), Needs(ManageMembers), Needs(ManageServer), Owner];

/// Every route of `src/http/mod.rs`, spelled as the router spells it. Paths are under
/// `/api/v1` except `/healthz` and `/metrics`.
/// [`every_route_is_in_the_authorization_table`] keeps this in step with the router.
const ROUTES: &[(&str, &str, Access)] = &[
    ("GET", "/server", Public),
    ("GET", "/server/settings", Member),
    ("PATCH", "/server/settings", Needs(ManageServer)),
    ("PUT", "/server/icon", Needs(ManageServer)),
    ("DELETE", "/server/icon", Needs(ManageServer)),
    ("GET", "/server/icon/{file}", Public),
    ("POST", "/server/transfer-ownership", Owner),
    ("GET", "/audit-log", Needs(ManageServer)),
    ("GET", "/turn", Member),
    ("GET", "/gateway", Ws),
    ("POST", "/auth/register", Public),
    ("POST", "/auth/login", Public),
    ("POST", "/auth/refresh", Public),
    ("POST", "/auth/logout", Member),
    ("GET", "/users", Member),
    ("GET", "/users/@me", Member),
    ("PATCH", "/users/@me", Member),
    ("PUT", "/users/@me/avatar", Member),
    ("DELETE", "/users/@me/avatar", Member),
    ("POST", "/users/@me/password", Member),
    ("PUT", "/users/@me/blocks/{id}", Member),
    ("DELETE", "/users/@me/blocks/{id}", Member),
    ("PATCH", "/users/{id}", Needs(ManageMembers)),
    ("POST", "/users/{id}/kick", Needs(ManageMembers)),
    ("GET", "/bans", Needs(ManageMembers)),
    ("PUT", "/bans/{id}", Needs(ManageMembers)),
    ("DELETE", "/bans/{id}", Needs(ManageMembers)),
    ("GET", "/avatars/{file}", Member),
    ("GET", "/invites", Needs(ManageInvites)),
    ("POST", "/invites", Needs(ManageInvites)),
    ("DELETE", "/invites/{code}", Needs(ManageInvites)),
    ("GET", "/channels", Member),
    ("POST", "/channels", Needs(ManageChannels)),
    ("PUT", "/channels/order", Needs(ManageChannels)),
    ("GET", "/channels/{id}", Member),
    ("PATCH", "/channels/{id}", Needs(ManageChannels)),
    ("DELETE", "/channels/{id}", Needs(ManageChannels)),
    ("PUT", "/channels/{id}/members", Needs(ManageChannels)),
    ("GET", "/channels/{id}/messages", Member),
    ("POST", "/channels/{id}/messages", Member),
    ("GET", "/channels/{id}/messages/{message_id}", Member),
    ("POST", "/dms", Member),
    ("GET", "/search", Member),
    ("POST", "/uploads", Member),
    ("GET", "/uploads/{id}", Member),
    ("PATCH", "/uploads/{id}", Member),
    ("DELETE", "/uploads/{id}", Member),
    ("POST", "/uploads/{id}/finish", Member),
    ("GET", "/attachments/{id}", Member),
    ("GET", "/attachments/{id}/thumbnail", Member),
    ("GET", "/healthz", Public),
    ("GET", "/metrics", Public),
    ("GET", "/invite/{code}", Public),
];

/// Paths served outside `/api/v1`.
fn outside_api(path: &str) -> bool {
    matches!(path, "/healthz" | "/metrics" | "/invite/{code}")
}

/// What a public route answers a caller without a valid token, given the bodies of
/// [`body_for`]: never `unauthorized`.
fn public_answer(path: &str) -> &'static str {
    match path {
        "/auth/register" => "400 invalid_invite",
        "/auth/login" => "401 invalid_credentials",
        "/auth/refresh" => "401 invalid_refresh_token",
        "/server/icon/{file}" => "404 not_found",
        _ => "200",
    }
}

/// The real things a test's routes point at.
struct Targets {
    channel: ChannelId,
    message: MessageId,
    user: UserId,
    invite: String,
}

fn fill(path: &str, t: &Targets) -> String {
    path.replace("/users/{id}", &format!("/users/{}", t.user))
        .replace("/blocks/{id}", &format!("/blocks/{}", t.user))
        .replace("/bans/{id}", &format!("/bans/{}", t.user))
        .replace("{id}", &t.channel.to_string())
        .replace("{message_id}", &t.message.to_string())
        .replace("{code}", &t.invite)
        .replace("{file}", "0123456789abcdef.png")
}

/// A well-formed body for each route that takes one, so only the token decides the answer.
fn body_for(method: &str, path: &str, t: &Targets) -> Option<Value> {
    Some(match (method, path) {
        ("POST", "/auth/register") => {
            json!({"invite": "no-such-invite", "username": "mallory", "password": PASSWORD})
        }
        ("POST", "/auth/login") => json!({"username": "admin", "password": "not the password"}),
        ("POST", "/auth/refresh") => json!({"refresh_token": "no-such-token"}),
        ("PATCH", "/users/@me") => json!({"display_name": "Hijacked"}),
        ("POST", "/users/@me/password") => {
            json!({"current_password": PASSWORD, "new_password": "taken over!"})
        }
        ("POST", "/invites") => json!({"max_uses": 5}),
        ("POST", "/channels") => json!({"name": "sneaky", "kind": "text"}),
        ("PUT", "/channels/order") => json!({"channel_ids": [t.channel]}),
        ("PATCH", "/channels/{id}") => json!({"name": "renamed", "position": 99, "private": true}),
        ("PUT", "/channels/{id}/members") => json!({"members": []}),
        ("PATCH", "/server/settings") => json!({"name": "Hijacked", "member_permissions": ["manage_server"]}),
        ("POST", "/server/transfer-ownership") => json!({"user_id": t.user}),
        ("PATCH", "/users/{id}") => json!({"role": "owner"}),
        ("POST", "/users/{id}/kick") => json!({"reason": "no reason"}),
        ("PUT", "/bans/{id}") => json!({"reason": "no reason"}),
        ("POST", "/channels/{id}/messages") => {
            json!({"nonce": "intruder", "content": "I should not be here"})
        }
        ("POST", "/dms") => json!({"recipients": [t.user]}),
        _ => return None,
    })
}

/// Calls a route of the table and describes the answer as "STATUS code" (or "STATUS").
async fn call(client: &Client, method: &str, path: &str, t: &Targets) -> String {
    let method_ = Method::from_bytes(method.as_bytes()).expect("an HTTP method");
    let body = body_for(method, path, t);
    let (status, value) = if outside_api(path) {
        let mut req = client.http.request(method_, format!("{}{}", client.base, fill(path, t)));
        if let Some(token) = &client.token {
            req = req.bearer_auth(token);
        }
        let resp = req.send().await.expect("HTTP request");
        (resp.status(), Value::Null)
    } else {
        client.request(method_, &fill(path, t), body).await
    };
    match value.get("code").and_then(Value::as_str) {
        Some(code) => format!("{} {code}", status.as_u16()),
        None => status.as_u16().to_string(),
    }
}

/// Tries every route with `access` in `which` as `client`; returns each answer that is not
/// `expected(path)`.
async fn sweep(
    client: &Client,
    t: &Targets,
    which: &[Access],
    expected: impl Fn(&str) -> &'static str,
) -> Vec<String> {
    let mut wrong = Vec::new();
    for (method, path, access) in ROUTES {
        if !which.contains(access) {
            continue;
        }
        let got = call(client, method, path, t).await;
        let want = expected(path);
        if got != want {
            wrong.push(format!("{method} {path}: expected {want}, got {got}"));
        }
    }
    wrong
}

/// One of each client op, aimed at `channel`/`message`/`user`.
fn every_op(channel: ChannelId, message: MessageId, user: UserId, token: &str) -> Vec<ClientMsg> {
    let ops = vec![
        ClientMsg::Identify { token: token.into(), protocol_version: PROTOCOL_VERSION, status: None },
        ClientMsg::Resume {
            token: token.into(),
            session_id: "s".into(),
            last_seq: 0,
            protocol_version: PROTOCOL_VERSION,
        },
        ClientMsg::Heartbeat { last_seq: None },
        ClientMsg::SendMessage {
            channel_id: channel,
            nonce: "intruder".into(),
            content: "hello?".into(),
            reply_to: None,
            attachments: Vec::new(),
        },
        ClientMsg::EditMessage { channel_id: channel, message_id: message, content: "edited".into() },
        ClientMsg::DeleteMessage { channel_id: channel, message_id: message },
        ClientMsg::AddReaction { channel_id: channel, message_id: message, emoji: "👀".into() },
        ClientMsg::RemoveReaction { channel_id: channel, message_id: message, emoji: "👀".into() },
        ClientMsg::Typing { channel_id: channel },
        ClientMsg::MarkRead { channel_id: channel, message_id: message },
        ClientMsg::SetStatus { status: hearth_protocol::model::Status::Dnd },
        ClientMsg::VoiceJoin { channel_id: channel, muted: false, deafened: false },
        ClientMsg::VoiceLeave,
        ClientMsg::VoiceUpdate { muted: true, deafened: false, speaking: false },
        ClientMsg::VoiceSignal { to: user, signal: Signal::Offer { sdp: "v=0".into() } },
        ClientMsg::TransferSignal {
            to: user,
            device: None,
            transfer_id: "t1".into(),
            signal: hearth_protocol::model::TransferSignal::Cancel,
        },
    ];
    // No wildcard: a new op does not compile here until it has a number, and then the
    // assertion fails until it is in the list above.
    fn number(op: &ClientMsg) -> usize {
        match op {
            ClientMsg::Identify { .. } => 0,
            ClientMsg::Resume { .. } => 1,
            ClientMsg::Heartbeat { .. } => 2,
            ClientMsg::SendMessage { .. } => 3,
            ClientMsg::EditMessage { .. } => 4,
            ClientMsg::DeleteMessage { .. } => 5,
            ClientMsg::AddReaction { .. } => 6,
            ClientMsg::RemoveReaction { .. } => 7,
            ClientMsg::Typing { .. } => 8,
            ClientMsg::MarkRead { .. } => 9,
            ClientMsg::SetStatus { .. } => 10,
            ClientMsg::VoiceJoin { .. } => 11,
            ClientMsg::VoiceLeave => 12,
            ClientMsg::VoiceUpdate { .. } => 13,
            ClientMsg::VoiceSignal { .. } => 14,
            ClientMsg::TransferSignal { .. } => 15,
        }
    }
    let numbers: BTreeSet<usize> = ops.iter().map(number).collect();
    assert_eq!(numbers, (0..16).collect(), "every_op must hold one of each op");
    ops
}

/// The next frame must be an `Error` with `code` for `op`.
async fn expect_refusal(gateway: &mut Gateway, op: &str, code: ErrorCode) {
    match gateway.error().await {
        ServerMsg::Error { error, failed_op, .. } => {
            assert_eq!(error.code, code, "{op} was refused with {error}");
            assert_eq!(failed_op.as_deref(), Some(op));
        }
        _ => unreachable!("Gateway::error returns only errors"),
    }
}

fn mentions(event: &Event, id: impl ToString) -> bool {
    serde_json::to_string(event).expect("serializing").contains(&format!("\"{}\"", id.to_string()))
}

/// Admin, Bob and Carol; a text channel with one message of the admin's; an unused invite.
struct Group {
    server: TestServer,
    admin: Client,
    bob: Client,
    carol: Client,
    general: Channel,
    message: Message,
    invite: Invite,
    settings: ServerSettings,
    audit: Vec<AuditEntry>,
}

async fn group(backend: Backend) -> Group {
    let server = TestServer::start(backend).await;
    let admin = server.admin().await;
    let bob = server.member(&admin, "bob").await;
    let carol = server.member(&admin, "carol").await;
    let general = admin.text_channel("general").await;
    let message: Message = admin
        .ok(
            Method::POST,
            &format!("/channels/{}/messages", general.id),
            Some(json!({"nonce": "first", "content": "welcome"})),
            StatusCode::CREATED,
        )
        .await;
    let invite = admin.invite().await;
    let settings = admin.ok(Method::GET, "/server/settings", None, StatusCode::OK).await;
    let audit = admin.ok(Method::GET, "/audit-log", None, StatusCode::OK).await;
    Group { server, admin, bob, carol, general, message, invite, settings, audit }
}

impl Group {
    /// Routes point at the text channel, its message, Carol and the invite.
    fn targets(&self) -> Targets {
        Targets {
            channel: self.general.id,
            message: self.message.id,
            user: self.carol.session().user.id,
            invite: self.invite.code.clone(),
        }
    }

    /// Nothing the refused requests asked for happened.
    async fn unchanged(&self) {
        let channels: Vec<Channel> = self.admin.ok(Method::GET, "/channels", None, StatusCode::OK).await;
        let channels: Vec<(ChannelId, &str, i32, bool)> =
            channels.iter().map(|c| (c.id, c.name.as_str(), c.position, c.private)).collect();
        assert_eq!(
            channels,
            [(self.general.id, "general", self.general.position, false)],
            "channels changed"
        );
        let history = self.admin.history(self.general.id, "").await;
        assert_eq!(history, vec![self.message.clone()], "history changed");
        let members: Vec<hearth_protocol::model::User> =
            self.admin.ok(Method::GET, "/users", None, StatusCode::OK).await;
        let names: Vec<(&str, &str)> =
            members.iter().map(|u| (u.username.as_str(), u.display_name.as_str())).collect();
        assert_eq!(names, [("admin", "admin"), ("bob", "bob"), ("carol", "carol")], "members changed");
        let roles: Vec<Role> = members.iter().map(|u| u.role).collect();
        assert_eq!(roles, [Role::Owner, Role::Member, Role::Member], "roles changed");
        let invites: Vec<Invite> = self.admin.ok(Method::GET, "/invites", None, StatusCode::OK).await;
        assert_eq!(invites, vec![self.invite.clone()], "invites changed");
        let settings: ServerSettings =
            self.admin.ok(Method::GET, "/server/settings", None, StatusCode::OK).await;
        assert_eq!(settings, self.settings, "settings changed");
        let bans: Vec<Ban> = self.admin.ok(Method::GET, "/bans", None, StatusCode::OK).await;
        assert!(bans.is_empty(), "someone was banned: {bans:?}");
        let audit: Vec<AuditEntry> = self.admin.ok(Method::GET, "/audit-log", None, StatusCode::OK).await;
        assert_eq!(audit, self.audit, "a refused request left an audit entry");
        for name in ["admin", "bob", "carol"] {
            let (status, body) = self.server.client().login(name, PASSWORD).await;
            assert_eq!(status, StatusCode::OK, "{name} can no longer log in: {body}");
        }
    }
}

/// The route table matches the router: a new route must be classified here before it is
/// tested (and so before it can ship unchecked).
#[test]
fn every_route_is_in_the_authorization_table() {
    let source = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/http/mod.rs"))
        .expect("reading the router");
    let mut in_router = BTreeSet::new();
    for piece in source.split(".route(\"").skip(1) {
        let (path, rest) = piece.split_once('"').expect("a quoted path");
        let handlers = rest.split(".route(").next().unwrap_or(rest);
        let handlers = handlers.split(".fallback(").next().unwrap_or(handlers);
        for method in ["get", "post", "put", "patch", "delete"] {
            let called = handlers.match_indices(&format!("{method}(")).any(|(at, _)| {
                handlers[..at]
                    .chars()
                    .next_back()
                    .is_none_or(|c| !(c.is_alphanumeric() || c == '_' || c == ':'))
            });
            if called {
                in_router.insert((method.to_uppercase(), path.to_string()));
            }
        }
    }
    let in_table: BTreeSet<(String, String)> =
        ROUTES.iter().map(|(m, p, _)| (m.to_string(), p.to_string())).collect();
    assert!(in_router.len() > 20, "the router could not be read: {in_router:?}");
    let missing: Vec<_> = in_router.difference(&in_table).collect();
    let stale: Vec<_> = in_table.difference(&in_router).collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "not in the table: {missing:?}; not in the router: {stale:?}"
    );
}

async fn without_a_valid_token_only_public_routes_answer(backend: Backend) {
    let g = group(backend).await;
    let t = g.targets();
    let mut wrong = Vec::new();
    for caller in [g.server.client(), g.server.client().with_token("garbage")] {
        let expected = |path: &str| match ROUTES.iter().find(|(_, p, _)| *p == path).map(|r| r.2) {
            Some(Public) => public_answer(path),
            _ => "401 unauthorized",
        };
        let who = if caller.token.is_some() { "garbage token" } else { "no token" };
        let mut which = vec![Public];
        which.extend(GUARDED);
        for line in sweep(&caller, &t, &which, expected).await {
            wrong.push(format!("{who}: {line}"));
        }
    }
    assert!(wrong.is_empty(), "wrong answers:\n{}", wrong.join("\n"));
    g.unchanged().await;
}

async fn the_gateway_serves_nothing_before_a_valid_identify(backend: Backend) {
    let g = group(backend).await;
    let url = g.server.ws_url();
    let bob_id = g.bob.session().user.id;
    let mut admin_live = g.server.gateway(&g.admin).await;

    // Every op other than Identify and Resume is refused, and the connection stays open.
    let mut ws = Gateway::open(&url).await;
    for op in every_op(g.general.id, g.message.id, bob_id, "unused") {
        if matches!(op, ClientMsg::Identify { .. } | ClientMsg::Resume { .. }) {
            continue;
        }
        common::send_on(&mut ws, &op).await;
        match common::next_frame(&mut ws).await {
            Ok(ServerMsg::Error { error, failed_op, .. }) => {
                assert_eq!(error.code, ErrorCode::NotIdentified, "{} before Identify: {error}", op.op());
                assert_eq!(failed_op.as_deref(), Some(op.op()));
            }
            other => panic!("{} before Identify answered {other:?}", op.op()),
        }
    }
    common::send_on(
        &mut ws,
        &ClientMsg::Identify {
            token: g.bob.token().into(),
            protocol_version: PROTOCOL_VERSION,
            status: None,
        },
    )
    .await;
    assert!(
        matches!(common::next_frame(&mut ws).await, Ok(ServerMsg::Ready { .. })),
        "a valid Identify still works"
    );

    // A missing or bad token ends the connection with 4004.
    let resume_bad = |token: &str| ClientMsg::Resume {
        token: token.into(),
        session_id: admin_live.session_id.clone(),
        last_seq: 0,
        protocol_version: PROTOCOL_VERSION,
    };
    for (first, op) in [
        (
            ClientMsg::Identify { token: String::new(), protocol_version: PROTOCOL_VERSION, status: None },
            "Identify",
        ),
        (
            ClientMsg::Identify { token: "garbage".into(), protocol_version: PROTOCOL_VERSION, status: None },
            "Identify",
        ),
        (resume_bad("garbage"), "Resume"),
        (resume_bad(""), "Resume"),
    ] {
        let (error, failed_op, code) = Gateway::refused(&url, &first).await;
        assert_eq!(error.code, ErrorCode::Unauthorized, "{op}: {error}");
        assert_eq!(failed_op.as_deref(), Some(op));
        assert_eq!(code, Some(close::AUTHENTICATION_FAILED), "{op} with a bad token");
    }

    // A valid token does not open someone else's session, nor another login's.
    let other_admin_login = {
        let mut c = g.server.client();
        let (status, body) = c.login("admin", PASSWORD).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        c
    };
    for token in [g.bob.token(), other_admin_login.token()] {
        let mut ws = Gateway::open(&url).await;
        common::send_on(&mut ws, &resume_bad(token)).await;
        let answer = common::next_frame(&mut ws).await;
        assert!(
            matches!(answer, Ok(ServerMsg::InvalidSession)),
            "resuming another login's session answered {answer:?}"
        );
    }

    // The admin's session was not taken over and nothing reached the group.
    assert!(
        admin_live
            .sync()
            .await
            .iter()
            .all(|e| !matches!(e, Event::MessageCreate { .. } | Event::TypingStart { .. }))
    );
    g.unchanged().await;
}

async fn members_cannot_use_admin_routes(backend: Backend) {
    let g = group(backend).await;
    let t = g.targets();
    let expected = |path: &str| match ROUTES.iter().find(|(_, p, _)| *p == path).map(|r| r.2) {
        Some(Owner) => "403 forbidden",
        _ => "403 missing_permission",
    };
    let wrong = sweep(&g.bob, &t, &PRIVILEGED, expected).await;
    assert!(wrong.is_empty(), "a member used admin routes:\n{}", wrong.join("\n"));
    g.unchanged().await;
}

async fn members_outside_a_dm_cannot_see_or_touch_it(backend: Backend) {
    let g = group(backend).await;
    let (admin, bob, carol) = (&g.admin, &g.bob, &g.carol);
    let mut c = g.server.gateway(carol).await;
    let mut a = g.server.gateway(admin).await;
    let mut b = g.server.gateway(bob).await;

    let dm = admin.dm(&[bob.session().user.id]).await;
    a.send(&say(dm.id, "just between us")).await;
    let secret = b
        .event(|e| match e {
            Event::MessageCreate { message, .. } => Some(message.clone()),
            _ => None,
        })
        .await;
    assert_eq!(secret.channel_id, dm.id);

    // Over HTTP the DM does not exist for Carol.
    let channel = format!("/channels/{}", dm.id);
    let not_found = [
        carol.get(&channel).await,
        carol.patch(&channel, json!({"name": "mine"})).await,
        carol.delete(&channel).await,
        carol.get(&format!("{channel}/messages")).await,
        carol.get(&format!("{channel}/messages/{}", secret.id)).await,
        carol.post(&format!("{channel}/messages"), json!({"nonce": "in", "content": "let me in"})).await,
    ];
    for answer in &not_found {
        expect_api_error(answer, ErrorCode::NotFound);
    }
    let listed: Vec<Channel> = carol.ok(Method::GET, "/channels", None, StatusCode::OK).await;
    assert!(listed.iter().all(|ch| ch.id != dm.id), "Carol's channel list shows the DM");
    let own = carol.dm(&[bob.session().user.id]).await;
    assert_ne!(own.id, dm.id, "Carol's DM with Bob must be her own, not the admin's");

    // Over the gateway too.
    let refused = [
        ClientMsg::SendMessage {
            channel_id: dm.id,
            nonce: "in".into(),
            content: "let me in".into(),
            reply_to: None,
            attachments: Vec::new(),
        },
        ClientMsg::EditMessage { channel_id: dm.id, message_id: secret.id, content: "mine now".into() },
        ClientMsg::DeleteMessage { channel_id: dm.id, message_id: secret.id },
        ClientMsg::AddReaction { channel_id: dm.id, message_id: secret.id, emoji: "👀".into() },
        ClientMsg::RemoveReaction { channel_id: dm.id, message_id: secret.id, emoji: "👀".into() },
        ClientMsg::Typing { channel_id: dm.id },
        ClientMsg::MarkRead { channel_id: dm.id, message_id: secret.id },
        ClientMsg::VoiceJoin { channel_id: dm.id, muted: false, deafened: false },
    ];
    for op in &refused {
        c.send(op).await;
        expect_refusal(&mut c, op.op(), ErrorCode::NotFound).await;
    }

    // The members' conversation goes on; none of it, and nothing of Carol's, crosses over.
    a.send(&say(dm.id, "still private")).await;
    let mut seen_by_bob = Vec::new();
    b.event(|e| {
        seen_by_bob.push(e.clone());
        matches!(e, Event::MessageCreate { message, .. } if message.content == "still private").then_some(())
    })
    .await;
    seen_by_bob.extend(b.sync().await);
    let carol_id = carol.session().user.id;
    let from_carol: Vec<&Event> = seen_by_bob.iter().filter(|e| mentions(e, carol_id)).collect();
    // Carol's own DM with Bob is the one thing of hers Bob may hear about.
    assert!(
        from_carol.iter().all(|e| matches!(e, Event::ChannelCreate { channel } if channel.id == own.id)),
        "Bob heard of Carol's refused ops: {from_carol:?}"
    );
    let leaked: Vec<Event> = c.sync().await.into_iter().filter(|e| mentions(e, dm.id)).collect();
    assert!(leaked.is_empty(), "Carol received events of the DM: {leaked:?}");
    let fresh = g.server.gateway(carol).await;
    assert!(
        fresh.ready.expect("ready").channels.iter().all(|ch| ch.id != dm.id),
        "Carol's Ready lists the DM"
    );

    let history = bob.history(dm.id, "").await;
    let contents: Vec<(&str, bool, usize)> =
        history.iter().map(|m| (m.content.as_str(), m.edited_at.is_some(), m.reactions.len())).collect();
    assert_eq!(contents, [("still private", false, 0), ("just between us", false, 0)]);
}

async fn an_admin_cannot_read_a_dm_they_are_not_in(backend: Backend) {
    let g = group(backend).await;
    let dm = g.bob.dm(&[g.carol.session().user.id]).await;
    let message: Message = g
        .bob
        .ok(
            Method::POST,
            &format!("/channels/{}/messages", dm.id),
            Some(json!({"nonce": "p", "content": "private"})),
            StatusCode::CREATED,
        )
        .await;
    let channel = format!("/channels/{}", dm.id);
    for answer in [
        g.admin.get(&channel).await,
        g.admin.patch(&channel, json!({"name": "x"})).await,
        g.admin.delete(&channel).await,
        g.admin.get(&format!("{channel}/messages")).await,
        g.admin.get(&format!("{channel}/messages/{}", message.id)).await,
        g.admin.post(&format!("{channel}/messages"), json!({"nonce": "a", "content": "hi"})).await,
    ] {
        expect_api_error(&answer, ErrorCode::NotFound);
    }
    let mut a = g.server.gateway(&g.admin).await;
    a.send(&ClientMsg::DeleteMessage { channel_id: dm.id, message_id: message.id }).await;
    expect_refusal(&mut a, "DeleteMessage", ErrorCode::NotFound).await;
    assert_eq!(g.carol.history(dm.id, "").await, vec![message]);
}

async fn a_kicked_member_loses_access_at_once(backend: Backend) {
    let g = group(backend).await;
    let mut bob = g.bob.clone();
    let bob_id = bob.session().user.id;
    let mut bob_live = g.server.gateway(&bob).await;
    let mut carol_live = g.server.gateway(&g.carol).await;

    let (status, body) = g.admin.post(&format!("/users/{bob_id}/kick"), json!({})).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let removed = carol_live
        .event(|e| match e {
            Event::MemberRemove { user_id } => Some(*user_id),
            _ => None,
        })
        .await;
    assert_eq!(removed, bob_id);

    // Bob's access token opens nothing any more.
    let t = g.targets();
    let wrong = sweep(&bob, &t, &GUARDED, |_| "401 unauthorized").await;
    assert!(wrong.is_empty(), "a removed member's token still works:\n{}", wrong.join("\n"));
    let (error, _, code) = Gateway::refused(
        &g.server.ws_url(),
        &ClientMsg::Identify { token: bob.token().into(), protocol_version: PROTOCOL_VERSION, status: None },
    )
    .await;
    assert_eq!((error.code, code), (ErrorCode::Unauthorized, Some(close::AUTHENTICATION_FAILED)));

    // Nor can Bob get a new one.
    expect_api_error(&g.server.client().login("bob", PASSWORD).await, ErrorCode::InvalidCredentials);
    let refresh = bob.session().refresh_token.clone();
    expect_api_error(&bob.refresh_session(&refresh).await, ErrorCode::InvalidRefreshToken);

    // The others see him gone; removing him again finds no one.
    let members: Vec<hearth_protocol::model::User> =
        g.carol.ok(Method::GET, "/users", None, StatusCode::OK).await;
    assert!(members.iter().all(|u| u.id != bob_id), "Bob is still listed");
    expect_api_error(&g.admin.post(&format!("/users/{bob_id}/kick"), json!({})).await, ErrorCode::NotFound);
    expect_api_error(
        &g.admin.post(&format!("/users/{}/kick", g.admin.session().user.id), json!({})).await,
        ErrorCode::InvalidField,
    );

    // His live connection was ended, with the code that tells the app not to reconnect.
    assert_eq!(bob_live.closed().await, Some(close::KICKED));
}

async fn voice_signals_reach_only_members_of_the_same_call(backend: Backend) {
    let g = group(backend).await;
    let voice = |name: &str| json!({"name": name, "kind": "voice"});
    let lounge: Channel =
        g.admin.ok(Method::POST, "/channels", Some(voice("lounge")), StatusCode::CREATED).await;
    let studio: Channel =
        g.admin.ok(Method::POST, "/channels", Some(voice("studio")), StatusCode::CREATED).await;
    let (admin_id, bob_id, carol_id) =
        (g.admin.session().user.id, g.bob.session().user.id, g.carol.session().user.id);
    let mut a = g.server.gateway(&g.admin).await;
    let mut b = g.server.gateway(&g.bob).await;
    let mut c = g.server.gateway(&g.carol).await;

    async fn join(gw: &mut Gateway, me: UserId, channel: ChannelId) {
        gw.send(&ClientMsg::VoiceJoin { channel_id: channel, muted: false, deafened: false }).await;
        gw.event(|e| match e {
            Event::VoiceStateUpdate { state } if state.user_id == me && state.channel_id == Some(channel) => {
                Some(())
            }
            _ => None,
        })
        .await;
    }
    let offer = |to: UserId| ClientMsg::VoiceSignal { to, signal: Signal::Offer { sdp: "v=0".into() } };

    join(&mut a, admin_id, lounge.id).await;
    join(&mut b, bob_id, studio.id).await;
    // Another channel, no call at all, oneself, and a caller who is in no call.
    for to in [bob_id, carol_id, admin_id] {
        a.send(&offer(to)).await;
        expect_refusal(&mut a, "VoiceSignal", ErrorCode::Forbidden).await;
    }
    c.send(&offer(admin_id)).await;
    expect_refusal(&mut c, "VoiceSignal", ErrorCode::Forbidden).await;
    for gw in [&mut a, &mut b, &mut c] {
        let relayed: Vec<Event> =
            gw.sync().await.into_iter().filter(|e| matches!(e, Event::VoiceSignal { .. })).collect();
        assert!(relayed.is_empty(), "a refused signal was relayed: {relayed:?}");
    }

    // In the same call the signal goes through (so the refusals above were about the call).
    join(&mut b, bob_id, lounge.id).await;
    a.send(&offer(bob_id)).await;
    let from = b
        .event(|e| match e {
            Event::VoiceSignal { from, .. } => Some(*from),
            _ => None,
        })
        .await;
    assert_eq!(from, admin_id);

    // Once Bob leaves, it stops again.
    b.send(&ClientMsg::VoiceLeave).await;
    a.event(|e| match e {
        Event::VoiceStateUpdate { state } if state.user_id == bob_id && state.channel_id.is_none() => {
            Some(())
        }
        _ => None,
    })
    .await;
    a.send(&offer(bob_id)).await;
    expect_refusal(&mut a, "VoiceSignal", ErrorCode::Forbidden).await;
    assert!(b.sync().await.iter().all(|e| !matches!(e, Event::VoiceSignal { .. })));
}

async fn a_deleted_channel_has_no_history_for_anyone(backend: Backend) {
    let mut g = group(backend).await;
    let (id, message) = (g.general.id, g.message.id);
    assert_eq!(g.bob.history(id, "").await.len(), 1);
    let mut b = g.server.gateway(&g.bob).await;

    let (status, body) = g.admin.delete(&format!("/channels/{id}")).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let deleted = b
        .event(|e| match e {
            Event::ChannelDelete { channel_id } => Some(*channel_id),
            _ => None,
        })
        .await;
    assert_eq!(deleted, id);

    async fn gone(client: &Client, id: ChannelId, message: MessageId) {
        let channel = format!("/channels/{id}");
        for answer in [
            client.get(&channel).await,
            client.get(&format!("{channel}/messages")).await,
            client.get(&format!("{channel}/messages/{message}")).await,
            client.post(&format!("{channel}/messages"), json!({"nonce": "late", "content": "anyone?"})).await,
        ] {
            expect_api_error(&answer, ErrorCode::NotFound);
        }
        let listed: Vec<Channel> = client.ok(Method::GET, "/channels", None, StatusCode::OK).await;
        assert!(listed.iter().all(|c| c.id != id), "a deleted channel is still listed");
    }
    for client in [&g.admin, &g.bob, &g.carol] {
        gone(client, id, message).await;
    }
    b.send(&say(id, "anyone?")).await;
    expect_refusal(&mut b, "SendMessage", ErrorCode::NotFound).await;

    // It stays gone after a restart.
    g.server.restart().await;
    let admin = g.server.client().with_token(g.admin.token());
    let bob = g.server.client().with_token(g.bob.token());
    for client in [&admin, &bob] {
        gone(client, id, message).await;
    }
}

both_backends!(
    without_a_valid_token_only_public_routes_answer,
    the_gateway_serves_nothing_before_a_valid_identify,
    members_cannot_use_admin_routes,
    members_outside_a_dm_cannot_see_or_touch_it,
    an_admin_cannot_read_a_dm_they_are_not_in,
    a_kicked_member_loses_access_at_once,
    voice_signals_reach_only_members_of_the_same_call,
    a_deleted_channel_has_no_history_for_anyone,
);
