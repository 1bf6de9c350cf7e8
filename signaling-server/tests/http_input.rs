//! Exact HTTP answers to bad input: bodies of the wrong JSON shape (an array for an object,
//! wrong types, unknown fields, trailing garbage, no JSON content type) are 400
//! `malformed_request` on every route with a body, logout and the PATCHes included, and change
//! nothing; ids in paths and queries have one spelling (a malformed one is 400, an unknown one
//! 404); request heads and bodies are bounded per route (431 / 413 with the typed body), and
//! hyper's own bound on the head holds for heads larger still.

mod common;

use common::{Backend, Client, TestServer, expect_api_error};
use hearth_protocol::ErrorCode;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// Sends `body` as it is, with a JSON content type unless `content_type` says otherwise.
async fn raw(
    client: &Client,
    method: Method,
    path: &str,
    body: &str,
    content_type: Option<&str>,
) -> (StatusCode, Value) {
    let mut req = client.http.request(method, format!("{}/api/v1{path}", client.base)).body(body.to_string());
    if let Some(token) = &client.token {
        req = req.bearer_auth(token);
    }
    if let Some(ct) = content_type.or(Some("application/json")).filter(|ct| !ct.is_empty()) {
        req = req.header("content-type", ct);
    }
    let resp = req.send().await.expect("HTTP request");
    let status = resp.status();
    let text = resp.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// An oversized body: the server answers 413 from `Content-Length` without reading it and may
/// close before the client finished sending, so the client can see a reset instead of the
/// answer (the raw-socket case below reads the 413 itself). Any answer that arrives must be it.
async fn too_large(client: &Client, method: Method, path: &str, body: &str) {
    let mut req = client.http.request(method, format!("{}/api/v1{path}", client.base)).body(body.to_string());
    if let Some(token) = &client.token {
        req = req.bearer_auth(token);
    }
    match req.header("content-type", "application/json").send().await {
        Ok(resp) => {
            let status = resp.status();
            let body: Value = resp.json().await.unwrap_or(Value::Null);
            expect_api_error(&(status, body), ErrorCode::PayloadTooLarge);
        }
        Err(e) => eprintln!("{path}: connection closed before the answer was read: {e}"),
    }
}

/// Wrong shapes of one valid body: each must be refused as malformed.
fn wrong_shapes(valid: &Value) -> Vec<String> {
    let mut shapes = vec![
        format!("[{valid}]"),
        "null".to_string(),
        "42".to_string(),
        "\"text\"".to_string(),
        format!("{valid} trailing"),
        "{".to_string(),
    ];
    if let Some(object) = valid.as_object() {
        let mut unknown = object.clone();
        unknown.insert("no_such_field".into(), json!(true));
        shapes.push(Value::Object(unknown).to_string());
        for (key, value) in object {
            let mut wrong_type = object.clone();
            let swapped = if value.is_string() { json!(12345) } else { json!("a string") };
            wrong_type.insert(key.clone(), swapped);
            shapes.push(Value::Object(wrong_type).to_string());
        }
    }
    shapes
}

async fn every_route_refuses_bodies_of_the_wrong_shape_and_changes_nothing(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin().await;
    let bob = server.member(&admin, "bob").await;
    let general = admin.text_channel("general").await;
    let refresh = admin.session().refresh_token.clone();
    let invite = admin.invite().await;
    let routes: Vec<(Method, String, Value)> = vec![
        (
            Method::POST,
            "/auth/register".into(),
            json!({"invite": invite.code, "username": "eve", "password": "long enough pw"}),
        ),
        (Method::POST, "/auth/login".into(), json!({"username": "admin", "password": common::PASSWORD})),
        (Method::POST, "/auth/refresh".into(), json!({"refresh_token": refresh})),
        (Method::POST, "/auth/logout".into(), json!({"everywhere": true})),
        (Method::PATCH, "/users/@me".into(), json!({"display_name": "Changed"})),
        (
            Method::POST,
            "/users/@me/password".into(),
            json!({"current_password": common::PASSWORD, "new_password": "another long one"}),
        ),
        (Method::POST, "/invites".into(), json!({"max_uses": 3})),
        (Method::POST, "/channels".into(), json!({"name": "new", "kind": "text"})),
        (Method::PATCH, format!("/channels/{}", general.id), json!({"name": "renamed"})),
        (Method::POST, format!("/channels/{}/messages", general.id), json!({"nonce": "n1", "content": "hi"})),
        (Method::POST, "/dms".into(), json!({"recipients": [bob.session().user.id]})),
    ];
    for (method, path, valid) in &routes {
        for body in wrong_shapes(valid) {
            let answer = raw(&admin, method.clone(), path, &body, None).await;
            expect_api_error(&answer, ErrorCode::MalformedRequest);
        }
        // A JSON body sent as something else.
        let answer = raw(&admin, method.clone(), path, &valid.to_string(), Some("text/plain")).await;
        expect_api_error(&answer, ErrorCode::MalformedRequest);
    }
    // Nothing was changed by any of it: the login still works, names and channels are as they
    // were, no message, invite, channel or account was made.
    let me: Value = admin.ok(Method::GET, "/users/@me", None, StatusCode::OK).await;
    assert_eq!(me["display_name"], "admin");
    let channel: Value =
        admin.ok(Method::GET, &format!("/channels/{}", general.id), None, StatusCode::OK).await;
    assert_eq!(channel["name"], "general");
    assert!(admin.history(general.id, "").await.is_empty());
    let channels: Vec<Value> = admin.ok(Method::GET, "/channels", None, StatusCode::OK).await;
    assert_eq!(channels.len(), 1);
    let members: Vec<Value> = admin.ok(Method::GET, "/users", None, StatusCode::OK).await;
    assert_eq!(members.len(), 2);
    let invites: Vec<Value> = admin.ok(Method::GET, "/invites", None, StatusCode::OK).await;
    assert_eq!(invites.len(), 1);

    // Logout's body is optional; given, it is as strict as any other.
    let (status, _) = raw(&bob, Method::POST, "/auth/logout", "", Some("")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(bob.get("/users/@me").await.0, StatusCode::UNAUTHORIZED);
}

async fn ids_have_one_spelling(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin().await;
    let general = admin.text_channel("general").await;
    let id = general.id.to_string();
    let (status, _) = admin.get(&format!("/channels/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    for spelling in [
        format!("+{id}"),
        format!("0{id}"),
        format!("%20{id}"),
        format!("{id}%20"),
        format!("-{id}"),
        "x".into(),
    ] {
        let answer = admin.get(&format!("/channels/{spelling}")).await;
        expect_api_error(&answer, ErrorCode::MalformedRequest);
        let answer = admin.get(&format!("/channels/{id}/messages?before={spelling}")).await;
        expect_api_error(&answer, ErrorCode::MalformedRequest);
    }
    // Well-formed but nobody's: not found.
    let answer = admin.get("/channels/4242424242").await;
    expect_api_error(&answer, ErrorCode::NotFound);
    // In bodies too.
    let answer = raw(&admin, Method::POST, "/dms", &format!(r#"{{"recipients":["0{id}"]}}"#), None).await;
    expect_api_error(&answer, ErrorCode::MalformedRequest);
}

async fn heads_and_bodies_are_bounded_per_route(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut admin = server.admin().await;
    let general = admin.text_channel("general").await;

    // Auth routes take 4 KiB bodies; the message route 32 KiB.
    let big_login = json!({"username": "admin", "password": "p".repeat(5000)}).to_string();
    too_large(&admin, Method::POST, "/auth/login", &big_login).await;
    // Escaped control characters: 6 bytes each on the wire, 3000 characters of content.
    let escaped = json!({"nonce": "esc", "content": "\u{1}".repeat(3000)}).to_string();
    assert!(escaped.len() > 16 * 1024);
    let (status, body) =
        raw(&admin, Method::POST, &format!("/channels/{}/messages", general.id), &escaped, None).await;
    assert!(status.is_success(), "{status} {body}");
    let huge = json!({"nonce": "big", "content": "x".repeat(40 * 1024)}).to_string();
    too_large(&admin, Method::POST, &format!("/channels/{}/messages", general.id), &huge).await;
    // Other routes: 16 KiB.
    let long_name = json!({"display_name": "y".repeat(20_000)}).to_string();
    too_large(&admin, Method::PATCH, "/users/@me", &long_name).await;

    // A body announced larger than the limit is refused before it is sent in full.
    let mut stream = tokio::net::TcpStream::connect(&server.addr).await.expect("connect");
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let head = "POST /api/v1/auth/login HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 10000000\r\n\r\n{";
    stream.write_all(head.as_bytes()).await.expect("write");
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(common::WAIT, stream.read(&mut answer))
        .await
        .expect("answer in time")
        .expect("read");
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("payload_too_large"), "{answer}");

    // Heads: 4 KiB on auth routes, 8 KiB elsewhere, typed 431; past 16 KiB hyper refuses.
    let header = |n: usize| "h".repeat(n);
    let login = |pad: String| {
        let client = admin.http.clone();
        let base = admin.base.clone();
        async move {
            let resp = client
                .post(format!("{base}/api/v1/auth/login"))
                .header("x-pad", pad)
                .json(&json!({"username": "admin", "password": common::PASSWORD}))
                .send()
                .await
                .expect("request");
            let status = resp.status();
            (status, resp.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    assert_eq!(login(header(2000)).await.0, StatusCode::OK);
    let answer = login(header(5000)).await;
    assert_eq!(answer.0, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    assert_eq!(answer.1["code"], "payload_too_large");
    let me = |pad: String| {
        let client = admin.http.clone();
        let base = admin.base.clone();
        let token = admin.token().to_string();
        async move {
            let resp = client
                .get(format!("{base}/api/v1/users/@me"))
                .bearer_auth(token)
                .header("x-pad", pad)
                .send()
                .await;
            resp.map(|r| r.status())
        }
    };
    assert_eq!(me(header(6000)).await.ok(), Some(StatusCode::OK));
    assert_eq!(me(header(12_000)).await.ok(), Some(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE));
    match me(header(40_000)).await {
        Ok(status) => assert_eq!(status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE),
        Err(e) => eprintln!("hyper closed on the 40 KB head: {e}"),
    }
    // The server is fine.
    let (status, _) = admin.login("admin", common::PASSWORD).await;
    assert_eq!(status, StatusCode::OK);
}

async fn a_gateway_request_that_is_not_a_websocket_upgrade_is_a_typed_400(backend: Backend) {
    let server = TestServer::start(backend).await;
    let client = server.client();
    let answer = client.get("/gateway").await;
    expect_api_error(&answer, ErrorCode::MalformedRequest);
}

both_backends!(
    every_route_refuses_bodies_of_the_wrong_shape_and_changes_nothing,
    ids_have_one_spelling,
    heads_and_bodies_are_bounded_per_route,
    a_gateway_request_that_is_not_a_websocket_upgrade_is_a_typed_400,
);
