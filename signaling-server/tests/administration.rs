//! Running the group from the app: server settings (durable, announced, public where they
//! should be), the icon, permissions granted to members and taken back at once, roles under
//! the rank rule, handing over ownership, the audit log, and the invite page.

mod common;

use std::io::Cursor;

use common::{Backend, Client, Gateway, TestServer, expect_api_error};
use hearth_protocol::ErrorCode;
use hearth_protocol::api::{Invite, ServerInfo};
use hearth_protocol::gateway::Event;
use hearth_protocol::model::{AuditAction, AuditEntry, Channel, Role, ServerSettings, User};
use reqwest::{Method, StatusCode};
use serde_json::json;

async fn settings(client: &Client) -> ServerSettings {
    client.ok(Method::GET, "/server/settings", None, StatusCode::OK).await
}

async fn audit(client: &Client, query: &str) -> Vec<AuditEntry> {
    client.ok(Method::GET, &format!("/audit-log{query}"), None, StatusCode::OK).await
}

async fn next_server_update(gw: &mut Gateway) -> ServerSettings {
    gw.event(|e| match e {
        Event::ServerUpdate { server } => Some(server.clone()),
        _ => None,
    })
    .await
}

async fn set_role(actor: &Client, target: &Client, role: &str) -> (StatusCode, serde_json::Value) {
    actor.patch(&format!("/users/{}", target.id()), json!({ "role": role })).await
}

fn png(width: u32, height: u32) -> Vec<u8> {
    let image = image::RgbImage::from_fn(width, height, |x, y| image::Rgb([x as u8, y as u8, 90]));
    let mut out = Vec::new();
    image.write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png).expect("encoding a PNG");
    out
}

async fn settings_are_durable_announced_and_public_where_they_should_be(backend: Backend) {
    let mut server = TestServer::start_with(backend, &["--server-name", "The Smiths"]).await;
    let admin = server.admin().await;
    let bob = server.member(&admin, "bob").await;
    let mut b = server.gateway(&bob).await;
    let ready = b.ready.clone().expect("ready");
    assert_eq!(ready.server.name, "The Smiths", "the name comes from --server-name until changed");
    assert_eq!(ready.server.retention_days, None);
    assert_eq!(ready.server.max_upload_bytes, 25 * 1024 * 1024);
    assert!(ready.server.member_permissions.is_empty());

    let changed: ServerSettings = admin
        .ok(
            Method::PATCH,
            "/server/settings",
            Some(
                json!({"name": "Smith family", "description": "Sundays at grandma's", "retention_days": 365,
                        "max_upload_bytes": 1000000, "upload_quota_bytes": 5000000}),
            ),
            StatusCode::OK,
        )
        .await;
    assert_eq!(changed.name, "Smith family");
    assert_eq!(changed.retention_days, Some(365));
    assert_eq!(changed.upload_quota_bytes, Some(5_000_000));
    assert_eq!(next_server_update(&mut b).await, changed, "members hear of the change at once");
    assert_eq!(settings(&bob).await, changed);

    // The name and description are public (the sign-in screen shows them).
    let info: ServerInfo = server.client().ok(Method::GET, "/server", None, StatusCode::OK).await;
    assert_eq!((info.name.as_str(), info.description.as_str()), ("Smith family", "Sundays at grandma's"));

    // Bad values are refused and change nothing.
    for body in [
        json!({"name": " "}),
        json!({"retention_days": 100000}),
        json!({"max_upload_bytes": 0}),
        json!({"description": "x".repeat(hearth_protocol::MAX_DESCRIPTION_CHARS + 1)}),
    ] {
        expect_api_error(&admin.patch("/server/settings", body).await, ErrorCode::InvalidField);
    }
    expect_api_error(
        &admin.patch("/server/settings", json!({"member_permissions": ["rule_the_world"]})).await,
        ErrorCode::MalformedRequest,
    );
    assert_eq!(settings(&admin).await, changed);

    // Settings survive a restart (--server-name no longer wins once the name was chosen).
    server.restart().await;
    let admin = admin.at(&server);
    assert_eq!(settings(&admin).await, changed);
    let fresh = server.gateway(&admin).await;
    assert_eq!(fresh.ready.expect("ready").server, changed);

    // Keeping everything again: retention 0 is "none".
    let kept: ServerSettings =
        admin.ok(Method::PATCH, "/server/settings", Some(json!({"retention_days": 0})), StatusCode::OK).await;
    assert_eq!(kept.retention_days, None);
}

async fn the_icon_is_processed_like_an_avatar_and_served_to_anyone(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin().await;
    let bob = server.member(&admin, "bob").await;
    let mut b = server.gateway(&bob).await;

    let (status, body) = admin.send_bytes(Method::PUT, "/server/icon", png(300, 200)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let with_icon: ServerSettings = serde_json::from_value(body).expect("settings");
    let hash = with_icon.icon.clone().expect("an icon hash");
    assert_eq!(next_server_update(&mut b).await.icon.as_deref(), Some(hash.as_str()));

    // Served without a login, as a square PNG.
    let anonymous = server.client();
    let info: ServerInfo = anonymous.ok(Method::GET, "/server", None, StatusCode::OK).await;
    assert_eq!(info.icon.as_deref(), Some(hash.as_str()));
    let (status, kind, bytes) = anonymous.get_bytes(&format!("/server/icon/{hash}.png")).await;
    assert_eq!((status, kind.as_deref()), (StatusCode::OK, Some("image/png")));
    let image = image::load_from_memory(&bytes).expect("a PNG");
    assert_eq!((image.width(), image.height()), (256, 256));

    // Not an image: refused, nothing changed. Members may not set it.
    let (status, body) =
        admin.send_bytes(Method::PUT, "/server/icon", b"<svg onload=alert(1)>".to_vec()).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{body}");
    let (status, _) = bob.send_bytes(Method::PUT, "/server/icon", png(64, 64)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(settings(&admin).await.icon.as_deref(), Some(hash.as_str()));
    let (status, _, _) = anonymous.get_bytes("/server/icon/..%2F..%2Fsecrets.json").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let cleared: ServerSettings = admin.ok(Method::DELETE, "/server/icon", None, StatusCode::OK).await;
    assert_eq!(cleared.icon, None);
    assert_eq!(next_server_update(&mut b).await.icon, None);
}

async fn permissions_granted_to_members_apply_and_lapse_at_once(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin().await;
    let bob = server.member(&admin, "bob").await;
    let channel = json!({"name": "bobs-corner", "kind": "text"});
    expect_api_error(&bob.post("/channels", channel.clone()).await, ErrorCode::MissingPermission);
    expect_api_error(&bob.post("/invites", json!({})).await, ErrorCode::MissingPermission);

    admin
        .ok::<ServerSettings>(
            Method::PATCH,
            "/server/settings",
            Some(json!({"member_permissions": ["manage_channels", "manage_invites"]})),
            StatusCode::OK,
        )
        .await;
    // Bob's token from before the change carries the new permissions.
    let made: Channel = bob.ok(Method::POST, "/channels", Some(channel.clone()), StatusCode::CREATED).await;
    bob.ok::<Invite>(Method::POST, "/invites", Some(json!({"max_uses": 1})), StatusCode::CREATED).await;
    // Not the ones he was not given.
    expect_api_error(&bob.get("/audit-log").await, ErrorCode::MissingPermission);
    expect_api_error(
        &bob.patch("/server/settings", json!({"name": "Bob's"})).await,
        ErrorCode::MissingPermission,
    );

    admin
        .ok::<ServerSettings>(
            Method::PATCH,
            "/server/settings",
            Some(json!({"member_permissions": []})),
            StatusCode::OK,
        )
        .await;
    expect_api_error(
        &bob.patch(&format!("/channels/{}", made.id), json!({"name": "mine"})).await,
        ErrorCode::MissingPermission,
    );
    expect_api_error(&bob.post("/invites", json!({})).await, ErrorCode::MissingPermission);
}

async fn roles_follow_the_rank_rule_and_the_group_keeps_an_owner(backend: Backend) {
    let server = TestServer::start(backend).await;
    let owner = server.admin().await;
    let bob = server.member(&owner, "bob").await;
    let carol = server.member(&owner, "carol").await;
    let dave = server.member(&owner, "dave").await;
    let mut c = server.gateway(&carol).await;

    let promoted: User = owner
        .ok(Method::PATCH, &format!("/users/{}", bob.id()), Some(json!({"role": "admin"})), StatusCode::OK)
        .await;
    assert_eq!(promoted.role, Role::Admin);
    let seen = c
        .event(|e| match e {
            Event::MemberUpdate { user } if user.id == bob.id() => Some(user.role),
            _ => None,
        })
        .await;
    assert_eq!(seen, Role::Admin, "everyone sees the new role");

    // Bob (admin) may manage members below him, but not grant more than he holds nor act on
    // his equals or betters.
    let (status, body) = set_role(&bob, &carol, "admin").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    expect_api_error(&set_role(&bob, &dave, "owner").await, ErrorCode::Forbidden);
    expect_api_error(&set_role(&bob, &carol, "member").await, ErrorCode::Forbidden);
    expect_api_error(&set_role(&bob, &owner, "member").await, ErrorCode::Forbidden);
    expect_api_error(
        &bob.post(&format!("/users/{}/kick", owner.id()), json!({})).await,
        ErrorCode::Forbidden,
    );
    expect_api_error(&bob.put(&format!("/bans/{}", carol.id()), json!({})).await, ErrorCode::Forbidden);
    // A plain member has no say at all.
    expect_api_error(&set_role(&dave, &dave, "admin").await, ErrorCode::MissingPermission);

    // The last owner can neither be demoted nor removed.
    expect_api_error(&set_role(&owner, &owner, "admin").await, ErrorCode::InvalidField);
    expect_api_error(
        &owner.post(&format!("/users/{}/kick", owner.id()), json!({})).await,
        ErrorCode::InvalidField,
    );

    // Handing over: Bob becomes the owner, the old owner an admin, at once for everyone.
    expect_api_error(
        &bob.post("/server/transfer-ownership", json!({"user_id": bob.id()})).await,
        ErrorCode::Forbidden,
    );
    let heir: User = owner
        .ok(Method::POST, "/server/transfer-ownership", Some(json!({"user_id": bob.id()})), StatusCode::OK)
        .await;
    assert_eq!(heir.role, Role::Owner);
    let members: Vec<User> = dave.ok(Method::GET, "/users", None, StatusCode::OK).await;
    let roles: Vec<(&str, Role)> = members.iter().map(|u| (u.username.as_str(), u.role)).collect();
    assert_eq!(
        roles,
        [("admin", Role::Admin), ("bob", Role::Owner), ("carol", Role::Admin), ("dave", Role::Member)]
    );
    // The former owner now ranks below Bob.
    expect_api_error(&set_role(&owner, &bob, "member").await, ErrorCode::Forbidden);
    expect_api_error(
        &owner.post("/server/transfer-ownership", json!({"user_id": carol.id()})).await,
        ErrorCode::Forbidden,
    );
    // With two owners, one may step down; then the other is the last again.
    let (status, body) = set_role(&bob, &owner, "owner").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = set_role(&owner, &owner, "admin").await;
    assert_eq!(status, StatusCode::OK, "an owner steps down while another remains: {body}");
    expect_api_error(&set_role(&bob, &bob, "member").await, ErrorCode::InvalidField);

    // Every change is in the audit log, newest first, with who did what to whom.
    let log = audit(&owner, "").await;
    let kinds: Vec<(AuditAction, Option<hearth_protocol::UserId>)> =
        log.iter().map(|e| (e.action, e.target_user_id)).collect();
    assert_eq!(
        kinds,
        [
            (AuditAction::MemberRoleUpdate, Some(owner.id())),
            (AuditAction::MemberRoleUpdate, Some(owner.id())),
            (AuditAction::OwnershipTransfer, Some(bob.id())),
            (AuditAction::MemberRoleUpdate, Some(carol.id())),
            (AuditAction::MemberRoleUpdate, Some(bob.id())),
            (AuditAction::InviteCreate, None),
            (AuditAction::InviteCreate, None),
            (AuditAction::InviteCreate, None),
        ]
    );
    assert_eq!(log[3].actor_id, bob.id());
    assert_eq!(log[3].changes[0].old.as_deref(), Some("member"));
    assert_eq!(log[3].changes[0].new.as_deref(), Some("admin"));
}

async fn the_audit_log_pages_newest_first_for_those_allowed(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin().await;
    let bob = server.member(&admin, "bob").await;
    let general = admin.text_channel("general").await;
    admin
        .ok::<Channel>(
            Method::PATCH,
            &format!("/channels/{}", general.id),
            Some(json!({"name": "lounge", "topic": "tea"})),
            StatusCode::OK,
        )
        .await;
    let invite = admin.invite().await;
    admin.no_content(Method::DELETE, &format!("/invites/{}", invite.code), None).await;
    admin.no_content(Method::DELETE, &format!("/channels/{}", general.id), None).await;

    let all = audit(&admin, "").await;
    let actions: Vec<AuditAction> = all.iter().map(|e| e.action).collect();
    assert_eq!(
        actions,
        [
            AuditAction::ChannelDelete,
            AuditAction::InviteRevoke,
            AuditAction::InviteCreate,
            AuditAction::ChannelUpdate,
            AuditAction::ChannelCreate,
            AuditAction::InviteCreate,
        ]
    );
    assert!(all.windows(2).all(|w| w[0].id > w[1].id && w[0].created_at >= w[1].created_at));
    assert_eq!(all[1].target_invite.as_deref(), Some(invite.code.as_str()));
    let rename = &all[3];
    assert_eq!(rename.target_channel_id, Some(general.id));
    let fields: Vec<(&str, Option<&str>, Option<&str>)> =
        rename.changes.iter().map(|c| (c.field.as_str(), c.old.as_deref(), c.new.as_deref())).collect();
    assert_eq!(fields, [("name", Some("general"), Some("lounge")), ("topic", Some(""), Some("tea"))]);

    let first = audit(&admin, "?limit=2").await;
    assert_eq!(first, all[..2]);
    let rest = audit(&admin, &format!("?limit=100&before={}", first[1].id)).await;
    assert_eq!(rest, all[2..]);
    expect_api_error(&admin.get("/audit-log?limit=0").await, ErrorCode::InvalidField);
    expect_api_error(&bob.get("/audit-log").await, ErrorCode::MissingPermission);
}

async fn the_invite_page_names_the_group_and_opens_the_app(backend: Backend) {
    let server = TestServer::start_with(
        backend,
        &[
            "--public-url",
            "https://home.example:8443",
            "--download-url",
            "https://example.org/hearth/releases",
        ],
    )
    .await;
    let admin = server.admin().await;
    admin
        .ok::<ServerSettings>(
            Method::PATCH,
            "/server/settings",
            Some(json!({"name": "<script>alert('x')</script> & co"})),
            StatusCode::OK,
        )
        .await;
    let invite: Invite =
        admin.ok(Method::POST, "/invites", Some(json!({"max_uses": 1})), StatusCode::CREATED).await;

    let page = |code: String, lang: &'static str| {
        let url = format!("{}/invite/{code}", server.base);
        async move {
            let resp =
                common::http_client().get(url).header("accept-language", lang).send().await.expect("GET");
            let status = resp.status();
            let headers = resp.headers().clone();
            (status, headers, resp.text().await.expect("body"))
        }
    };
    let (status, headers, html) = page(invite.code.clone(), "en-GB,en;q=0.9").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    let csp = headers["content-security-policy"].to_str().expect("CSP");
    assert!(csp.starts_with("default-src 'none'") && !csp.contains("unsafe"), "{csp}");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert!(!html.contains("<script>"), "the group's name must be escaped: {html}");
    assert!(html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; co"), "{html}");
    let link = format!("hearth://join?server=https%3A%2F%2Fhome.example%3A8443&amp;code={}", invite.code);
    assert!(html.contains(&format!("href=\"{link}\"")), "no Open in Hearth link in {html}");
    assert!(html.contains("href=\"https://example.org/hearth/releases\""), "{html}");
    assert!(!html.contains("http://") && !html.contains("src=\"http"), "no external resources: {html}");

    let (_, _, french) = page(invite.code.clone(), "fr-FR,fr;q=0.9").await;
    assert!(french.contains("Ouvrir dans Hearth") && french.contains("lang=\"fr\""));
    let (_, _, chinese) = page(invite.code.clone(), "zh-TW").await;
    assert!(chinese.contains("在 Hearth 開啟"));

    // Unknown, then used-up and revoked codes: a page that says so.
    let (status, _, html) = page("no-such-code".into(), "en").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(html.contains("Invite not found"));
    server.client().register(&invite.code, "bob").await;
    assert_eq!(page(invite.code.clone(), "en").await.0, StatusCode::NOT_FOUND);
    let other = admin.invite().await;
    assert_eq!(page(other.code.clone(), "en").await.0, StatusCode::OK);
    admin.no_content(Method::DELETE, &format!("/invites/{}", other.code), None).await;
    assert_eq!(page(other.code, "en").await.0, StatusCode::NOT_FOUND);
}

both_backends!(
    settings_are_durable_announced_and_public_where_they_should_be,
    the_icon_is_processed_like_an_avatar_and_served_to_anyone,
    permissions_granted_to_members_apply_and_lapse_at_once,
    roles_follow_the_rank_rule_and_the_group_keeps_an_owner,
    the_audit_log_pages_newest_first_for_those_allowed,
    the_invite_page_names_the_group_and_opens_the_app,
);
