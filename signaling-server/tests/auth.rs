//! Accounts and logins: the setup token, invites, registration rules, login and its rate
//! limits, access-token expiry and forgery, refresh-token rotation and reuse, logout, and
//! password changes.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{Backend, Client, Gateway, PASSWORD, TestServer, expect_api_error};
use hearth_protocol::api::{Invite, ServerInfo, Session};
use hearth_protocol::gateway::{ClientMsg, close};
use hearth_protocol::{ErrorCode, PROTOCOL_VERSION};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const NEW_PASSWORD: &str = "a much better passphrase";

async fn server_info(client: &Client) -> ServerInfo {
    client.ok(Method::GET, "/server", None, StatusCode::OK).await
}

async fn register(client: &Client, invite: &str, username: &str, password: &str) -> (StatusCode, Value) {
    client.post("/auth/register", json!({"invite": invite, "username": username, "password": password})).await
}

async fn create_invite(admin: &Client, body: Value) -> Invite {
    admin.ok(Method::POST, "/invites", Some(body), StatusCode::CREATED).await
}

async fn usable_invites(admin: &Client) -> Vec<String> {
    let invites: Vec<Invite> = admin.ok(Method::GET, "/invites", None, StatusCode::OK).await;
    invites.into_iter().map(|i| i.code).collect()
}

/// A second, independent login of `username` (its own refresh-token family).
async fn login_again(server: &TestServer, username: &str) -> Client {
    let mut c = server.client();
    let (status, body) = c.login(username, PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "login answered {body}");
    c
}

fn identify(token: &str) -> ClientMsg {
    ClientMsg::Identify { token: token.into(), protocol_version: PROTOCOL_VERSION, status: None }
}

/// The gateway refuses `token`: an `Error` frame with `unauthorized` for `Identify`, then
/// close 4004.
async fn gateway_refuses(server: &TestServer, token: &str) {
    let (error, op, code) = Gateway::refused(&server.ws_url(), &identify(token)).await;
    assert_eq!(error.code, ErrorCode::Unauthorized, "{error}");
    assert_eq!(op.as_deref(), Some("Identify"));
    assert_eq!(code, Some(close::AUTHENTICATION_FAILED));
}

async fn me_is_refused(client: &Client) {
    expect_api_error(&client.get("/users/@me").await, ErrorCode::Unauthorized);
}

async fn me_works(client: &Client) {
    let (status, body) = client.get("/users/@me").await;
    assert_eq!(status, StatusCode::OK, "GET /users/@me answered {body}");
}

fn jwt_part(token: &str, index: usize) -> Value {
    let part = token.split('.').nth(index).expect("a JWT has three parts");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("base64url")).expect("JSON")
}

fn encode_part(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).expect("serializing"))
}

fn unix_now() -> Duration {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970")
}

async fn the_first_account_needs_the_setup_token_and_becomes_admin(backend: Backend) {
    let mut server = TestServer::start(backend).await;
    let anonymous = server.client();
    assert!(server_info(&anonymous).await.needs_setup);
    let token = server.setup_token();
    let token_file = server.data_dir.join("setup-token");

    // Anything but the setup token is refused while the group is empty.
    expect_api_error(
        &register(&anonymous, "not-the-token", "mallory", PASSWORD).await,
        ErrorCode::InvalidInvite,
    );
    assert!(server_info(&anonymous).await.needs_setup);
    assert!(token_file.exists(), "a refused registration must not use up the setup token");

    let mut admin = server.client();
    let session = admin.register(&token, "admin").await;
    assert_eq!(session.user.role, hearth_protocol::model::Role::Owner, "the first account is the owner");
    assert!(!token_file.exists(), "the used setup token file must be removed");
    assert!(!server_info(&anonymous).await.needs_setup);

    // The setup token is single use.
    expect_api_error(&register(&anonymous, &token, "second", PASSWORD).await, ErrorCode::InvalidInvite);

    // A member who joins by invite is not an admin.
    let bob = server.member(&admin, "bob").await;
    assert_eq!(bob.session().user.role, hearth_protocol::model::Role::Member);

    // Nor does a restart bring the setup token back.
    server.restart().await;
    let anonymous = server.client();
    assert!(!server_info(&anonymous).await.needs_setup);
    assert!(!token_file.exists());
    expect_api_error(&register(&anonymous, &token, "third", PASSWORD).await, ErrorCode::InvalidInvite);
}

async fn a_single_use_invite_works_once(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin().await;
    let invite = create_invite(&admin, json!({"max_uses": 1})).await;
    assert_eq!((invite.max_uses, invite.uses), (Some(1), 0));
    let anonymous = server.client();

    let (status, body) = register(&anonymous, &invite.code, "bob", PASSWORD).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let session: Session = serde_json::from_value(body).expect("session");
    assert_eq!(session.user.username, "bob");
    assert_eq!(session.user.role, hearth_protocol::model::Role::Member);

    expect_api_error(&register(&anonymous, &invite.code, "carol", PASSWORD).await, ErrorCode::InvalidInvite);
    assert!(!usable_invites(&admin).await.contains(&invite.code), "a used-up invite is still listed");
}

async fn a_multi_use_invite_works_up_to_its_limit(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin().await;
    let invite = create_invite(&admin, json!({"max_uses": 2})).await;
    let anonymous = server.client();

    let (status, body) = register(&anonymous, &invite.code, "bob", PASSWORD).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let listed: Vec<Invite> = admin.ok(Method::GET, "/invites", None, StatusCode::OK).await;
    let listed = listed.iter().find(|i| i.code == invite.code).expect("still usable once more");
    assert_eq!(listed.uses, 1);

    let (status, body) = register(&anonymous, &invite.code, "carol", PASSWORD).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    expect_api_error(&register(&anonymous, &invite.code, "dave", PASSWORD).await, ErrorCode::InvalidInvite);
    assert!(!usable_invites(&admin).await.contains(&invite.code));
}

async fn an_expired_invite_is_refused(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin().await;
    let invite = create_invite(&admin, json!({"expires_in_secs": 1})).await;
    let expires_at = invite.expires_at.expect("an expiring invite has expires_at");
    assert!(usable_invites(&admin).await.contains(&invite.code));

    // Time passing is the behaviour under test, so this waits for the clock, just past expiry.
    let now_ms = unix_now().as_millis() as i64;
    tokio::time::sleep(Duration::from_millis((expires_at - now_ms).max(0) as u64 + 200)).await;

    expect_api_error(
        &register(&server.client(), &invite.code, "bob", PASSWORD).await,
        ErrorCode::InvalidInvite,
    );
    assert!(!usable_invites(&admin).await.contains(&invite.code), "an expired invite is still listed");
}

async fn a_revoked_invite_is_refused(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin().await;
    let revoked = create_invite(&admin, json!({})).await;
    let kept = create_invite(&admin, json!({})).await;

    let (status, body) = admin.delete(&format!("/invites/{}", revoked.code)).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    expect_api_error(&admin.delete(&format!("/invites/{}", revoked.code)).await, ErrorCode::NotFound);
    assert_eq!(usable_invites(&admin).await, vec![kept.code.clone()]);

    let anonymous = server.client();
    expect_api_error(&register(&anonymous, &revoked.code, "bob", PASSWORD).await, ErrorCode::InvalidInvite);
    let (status, body) = register(&anonymous, &kept.code, "bob", PASSWORD).await;
    assert_eq!(status, StatusCode::CREATED, "the other invite still works: {body}");
}

async fn only_members_allowed_to_manage_invites_create_list_and_revoke_them(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin().await;
    let bob = server.member(&admin, "bob").await;
    let invite = create_invite(&admin, json!({})).await;

    expect_api_error(&bob.post("/invites", json!({"max_uses": 1})).await, ErrorCode::MissingPermission);
    expect_api_error(&bob.get("/invites").await, ErrorCode::MissingPermission);
    expect_api_error(&bob.delete(&format!("/invites/{}", invite.code)).await, ErrorCode::MissingPermission);

    // Nothing changed: the admin's invite is the only one and still works.
    assert_eq!(usable_invites(&admin).await, vec![invite.code.clone()]);
    let (status, body) = register(&server.client(), &invite.code, "carol", PASSWORD).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

async fn a_username_is_taken_whatever_its_case(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin().await;
    server.member(&admin, "Bob").await;
    let invite = create_invite(&admin, json!({"max_uses": 1})).await;
    let anonymous = server.client();

    for name in ["Bob", "bob", "BOB"] {
        expect_api_error(&register(&anonymous, &invite.code, name, PASSWORD).await, ErrorCode::Conflict);
    }
    expect_api_error(&register(&anonymous, &invite.code, "ADMIN", PASSWORD).await, ErrorCode::Conflict);

    // A refused registration does not use up the invite.
    let (status, body) = register(&anonymous, &invite.code, "bobby", PASSWORD).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

async fn bad_usernames_and_short_passwords_are_refused(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin().await;
    let invite = create_invite(&admin, json!({"max_uses": 1})).await;
    let anonymous = server.client();

    let long = "x".repeat(33);
    for name in ["", "b", "has space", "semi;colon", "slash/y", "<script>", "tab\tname", long.as_str()] {
        let error = expect_api_error(
            &register(&anonymous, &invite.code, name, PASSWORD).await,
            ErrorCode::InvalidField,
        );
        assert!(!error.message.is_empty());
    }
    for password in ["", "short", "7 chars"] {
        expect_api_error(&register(&anonymous, &invite.code, "bob", password).await, ErrorCode::InvalidField);
    }
    let huge = "p".repeat(2000);
    expect_api_error(&register(&anonymous, &invite.code, "bob", &huge).await, ErrorCode::InvalidField);

    // None of those used the invite; a good registration still can.
    let (status, body) = register(&anonymous, &invite.code, "bob", PASSWORD).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

async fn login_accepts_only_the_right_password(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin().await;
    let bob = server.member(&admin, "bob").await;

    let mut c = server.client();
    let (status, body) = c.login("bob", PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(c.session().user.id, bob.session().user.id);
    me_works(&c).await;

    // Usernames are case-insensitive, as their uniqueness is.
    let (status, body) = server.client().login("BoB", PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let wrong = expect_api_error(
        &server.client().login("bob", "not the password").await,
        ErrorCode::InvalidCredentials,
    );
    let unknown =
        expect_api_error(&server.client().login("nobody", PASSWORD).await, ErrorCode::InvalidCredentials);
    assert_eq!(wrong.message, unknown.message, "the answer must not tell which of the two was wrong");
}

async fn too_many_logins_for_one_account_are_rate_limited(backend: Backend) {
    let server = TestServer::start_with(backend, &["--limit-login-per-account", "3"]).await;
    let admin = server.admin().await;
    server.member(&admin, "bob").await;

    let anonymous = server.client();
    for _ in 0..3 {
        expect_api_error(
            &anonymous.clone().login("bob", "wrong password").await,
            ErrorCode::InvalidCredentials,
        );
    }
    // The fourth attempt is refused before the password is looked at, even the right one, and
    // whatever the case of the name.
    for name in ["bob", "BOB"] {
        let login = json!({"username": name, "password": PASSWORD});
        let (status, headers, body) =
            anonymous.request_with_headers(Method::POST, "/auth/login", Some(login)).await;
        let error = expect_api_error(&(status, body), ErrorCode::RateLimited);
        let retry_ms = error.retry_after_ms.expect("retry_after_ms");
        assert!(retry_ms > 0);
        let header: u64 = headers
            .get(reqwest::header::RETRY_AFTER)
            .expect("a Retry-After header")
            .to_str()
            .expect("ASCII")
            .parse()
            .expect("whole seconds");
        assert_eq!(header, retry_ms.div_ceil(1000).max(1));
    }

    // Another account is not affected.
    let (status, body) = server.client().login("admin", PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

async fn too_many_logins_from_one_address_are_rate_limited(backend: Backend) {
    // Registering counts too: the admin's and bob's registrations take two of the three.
    // (Three a minute refill one every 20 s, longer than this test takes.)
    let server = TestServer::start_with(backend, &["--limit-login-per-ip", "3"]).await;
    let admin = server.admin().await;
    server.member(&admin, "bob").await;
    let (status, body) = server.client().login("admin", PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Any account, right password or not.
    for (name, password) in [("bob", PASSWORD), ("admin", PASSWORD), ("nobody", "whatever it is")] {
        let login = json!({"username": name, "password": password});
        let (status, headers, body) =
            server.client().request_with_headers(Method::POST, "/auth/login", Some(login)).await;
        let error = expect_api_error(&(status, body), ErrorCode::RateLimited);
        let retry_ms = error.retry_after_ms.expect("retry_after_ms");
        let header: u64 = headers
            .get(reqwest::header::RETRY_AFTER)
            .expect("a Retry-After header")
            .to_str()
            .expect("ASCII")
            .parse()
            .expect("whole seconds");
        assert!(header >= 1);
        assert_eq!(header, retry_ms.div_ceil(1000).max(1));
    }
    let invite = admin.invite().await;
    expect_api_error(
        &register(&server.client(), &invite.code, "carol", PASSWORD).await,
        ErrorCode::RateLimited,
    );
}

async fn an_access_token_stops_working_when_it_expires(backend: Backend) {
    let server = TestServer::start_with(backend, &["--access-token-ttl-secs", "1"]).await;
    let mut admin = server.admin().await;
    assert_eq!(admin.session().expires_in, 1);
    me_works(&admin).await;
    let expired = admin.clone();

    // The server allows 5 s of clock skew past `exp` (whole seconds), so the token is refused
    // once the clock reads exp + 6 s. Waiting for the clock is the behaviour under test.
    let exp = jwt_part(admin.token(), 1)["exp"].as_u64().expect("exp claim");
    let refused_from = Duration::from_secs(exp + 6) + Duration::from_millis(200);
    tokio::time::sleep(refused_from.saturating_sub(unix_now())).await;

    me_is_refused(&expired).await;
    gateway_refuses(&server, expired.token()).await;

    // The login itself lives on: refreshing gives a working token.
    let refresh = admin.session().refresh_token.clone();
    let (status, body) = admin.refresh_session(&refresh).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    me_works(&admin).await;
    server.gateway(&admin).await;
}

async fn forged_unsigned_and_garbage_tokens_are_refused(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin().await;
    let bob = server.member(&admin, "bob").await;
    let token = bob.token().to_string();
    let [header, payload, signature]: [&str; 3] =
        token.split('.').collect::<Vec<_>>().try_into().expect("a JWT has three parts");

    // Bob's token made to speak for the admin, with Bob's signature.
    let mut claims = jwt_part(&token, 1);
    claims["sub"] = json!(admin.session().user.id.to_string());
    let tampered = format!("{header}.{}.{signature}", encode_part(&claims));
    // The same claims, unsigned.
    let none_header = encode_part(&json!({"alg": "none", "typ": "JWT"}));
    let unsigned = format!("{none_header}.{payload}.");
    let unsigned_admin = format!("{none_header}.{}.", encode_part(&claims));
    // Signed, but with a key that is not the server's.
    let foreign = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(b"not the server's secret, but long enough"),
    )
    .expect("signing");
    // Bob's token with its signature changed.
    let mut bad_signature = token.clone();
    let last = bad_signature.pop().expect("non-empty");
    bad_signature.push(if last == 'A' { 'B' } else { 'A' });

    for bad in [tampered, unsigned, unsigned_admin, foreign, bad_signature, "garbage".into(), "a.b.c".into()]
    {
        me_is_refused(&bob.with_token(&bad)).await;
        gateway_refuses(&server, &bad).await;
    }
    // The real token still works.
    me_works(&bob).await;
    server.gateway(&bob).await;
}

async fn refresh_rotates_and_reuse_revokes_the_whole_login(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin().await;
    let mut bob = server.member(&admin, "bob").await;
    let other_login = login_again(&server, "bob").await;
    let first = bob.session().clone();

    let (status, body) = bob.refresh_session(&first.refresh_token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let second = bob.session().clone();
    assert_ne!(second.refresh_token, first.refresh_token);
    assert_eq!(second.user.id, first.user.id);
    me_works(&bob).await;
    let mut live = server.gateway(&bob).await;
    let mut other_live = server.gateway(&other_login).await;

    // The spent refresh token comes back: the whole login ends.
    let mut thief = server.client();
    expect_api_error(&thief.refresh_session(&first.refresh_token).await, ErrorCode::InvalidRefreshToken);
    expect_api_error(&thief.refresh_session(&second.refresh_token).await, ErrorCode::InvalidRefreshToken);
    me_is_refused(&bob).await;
    me_is_refused(&bob.with_token(&first.access_token)).await;
    gateway_refuses(&server, bob.token()).await;

    // Bob's other login is untouched.
    me_works(&other_login).await;
    other_live.sync().await;
    let mut other_login = other_login;
    let refresh = other_login.session().refresh_token.clone();
    let (status, body) = other_login.refresh_session(&refresh).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // The revoked login's live connection was closed.
    assert_eq!(live.closed().await, Some(close::SESSION_REVOKED));
}

async fn logout_ends_this_login_only(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin().await;
    let bob = server.member(&admin, "bob").await;
    let mut other_login = login_again(&server, "bob").await;
    let mut live = server.gateway(&bob).await;
    let mut other_live = server.gateway(&other_login).await;

    let (status, body) = bob.request(Method::POST, "/auth/logout", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    me_is_refused(&bob).await;
    gateway_refuses(&server, bob.token()).await;
    expect_api_error(
        &server.client().refresh_session(&bob.session().refresh_token).await,
        ErrorCode::InvalidRefreshToken,
    );

    me_works(&other_login).await;
    other_live.sync().await;
    let refresh = other_login.session().refresh_token.clone();
    let (status, body) = other_login.refresh_session(&refresh).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    me_works(&other_login).await;

    // The logged-out login's live connection was closed.
    assert_eq!(live.closed().await, Some(close::SESSION_REVOKED));
}

async fn logout_everywhere_ends_every_login(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin().await;
    let bob = server.member(&admin, "bob").await;
    let other_login = login_again(&server, "bob").await;
    let mut live = server.gateway(&bob).await;
    let mut other_live = server.gateway(&other_login).await;
    let mut admin_live = server.gateway(&admin).await;

    let (status, body) = bob.post("/auth/logout", json!({"everywhere": true})).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    for login in [&bob, &other_login] {
        me_is_refused(login).await;
        gateway_refuses(&server, login.token()).await;
        expect_api_error(
            &server.client().refresh_session(&login.session().refresh_token).await,
            ErrorCode::InvalidRefreshToken,
        );
    }
    // Someone else's login is not part of "everywhere".
    me_works(&admin).await;
    admin_live.sync().await;
    // Bob can log in again.
    me_works(&login_again(&server, "bob").await).await;
    assert_eq!(live.closed().await, Some(close::SESSION_REVOKED));
    assert_eq!(other_live.closed().await, Some(close::SESSION_REVOKED));
}

async fn changing_the_password_ends_the_other_logins(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin().await;
    let bob = server.member(&admin, "bob").await;
    let other_login = login_again(&server, "bob").await;
    let mut live = server.gateway(&bob).await;
    let mut other_live = server.gateway(&other_login).await;

    let wrong = json!({"current_password": "not my password", "new_password": NEW_PASSWORD});
    expect_api_error(&bob.post("/users/@me/password", wrong).await, ErrorCode::InvalidCredentials);
    let short = json!({"current_password": PASSWORD, "new_password": "short"});
    expect_api_error(&bob.post("/users/@me/password", short).await, ErrorCode::InvalidField);
    // Neither refusal changed anything.
    me_works(&other_login).await;
    let (status, body) = server.client().login("bob", PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let change = json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD});
    let (status, body) = bob.post("/users/@me/password", change).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");

    // Every other login ends at once: the logins made before, with their connections.
    me_is_refused(&other_login).await;
    expect_api_error(
        &server.client().refresh_session(&other_login.session().refresh_token).await,
        ErrorCode::InvalidRefreshToken,
    );

    // The old password no longer works, the new one does.
    expect_api_error(&server.client().login("bob", PASSWORD).await, ErrorCode::InvalidCredentials);
    let (status, body) = server.client().login("bob", NEW_PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // The login that made the change carries on.
    me_works(&bob).await;
    live.sync().await;
    let mut bob = bob;
    let refresh = bob.session().refresh_token.clone();
    let (status, body) = bob.refresh_session(&refresh).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(other_live.closed().await, Some(close::SESSION_REVOKED));
}

both_backends!(
    the_first_account_needs_the_setup_token_and_becomes_admin,
    a_single_use_invite_works_once,
    a_multi_use_invite_works_up_to_its_limit,
    an_expired_invite_is_refused,
    a_revoked_invite_is_refused,
    only_members_allowed_to_manage_invites_create_list_and_revoke_them,
    a_username_is_taken_whatever_its_case,
    bad_usernames_and_short_passwords_are_refused,
    login_accepts_only_the_right_password,
    too_many_logins_for_one_account_are_rate_limited,
    too_many_logins_from_one_address_are_rate_limited,
    an_access_token_stops_working_when_it_expires,
    forged_unsigned_and_garbage_tokens_are_refused,
    refresh_rotates_and_reuse_revokes_the_whole_login,
    logout_ends_this_login_only,
    logout_everywhere_ends_every_login,
    changing_the_password_ends_the_other_logins,
);
