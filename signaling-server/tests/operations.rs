//! Running the server: health and metrics, TURN credentials, avatars and profile updates,
//! the command line, and state that survives a restart with zero configuration.

mod common;

use std::io::Cursor;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use common::{Backend, TestServer, say};
use hearth_protocol::gateway::Event;
use hearth_protocol::model::{IceServer, User};
use hearth_protocol::{ErrorCode, UserId};
use hmac::{Hmac, Mac};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const TURN_ARGS: [&str; 6] = [
    "--turn-urls",
    "turn:127.0.0.1:3478?transport=udp,stun:127.0.0.1:3478",
    "--turn-secret",
    "s3cret",
    "--turn-ttl-secs",
    "600",
];

/// base64(HMAC-SHA1(secret, username)), the coturn REST credential, computed here on its own.
fn coturn_credential(secret: &str, username: &str) -> String {
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(username.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_secs()
}

/// Checks ICE servers as the TURN flags above make them: a STUN entry without credentials,
/// a TURN entry with a coturn REST username and credential valid for 600 s.
fn check_ice_servers(servers: &[Value], user: UserId, asked_at: u64) {
    assert_eq!(servers.len(), 2, "{servers:?}");
    let by_scheme = |scheme: &str| {
        servers
            .iter()
            .find(|s| {
                s["urls"]
                    .as_array()
                    .is_some_and(|u| u.iter().all(|u| u.as_str().unwrap().starts_with(scheme)))
            })
            .unwrap_or_else(|| panic!("no {scheme} entry in {servers:?}"))
    };
    let stun = by_scheme("stun:");
    assert_eq!(stun["urls"], json!(["stun:127.0.0.1:3478"]));
    assert!(
        stun.get("username").is_none() && stun.get("credential").is_none(),
        "STUN with credentials: {stun}"
    );

    let turn = by_scheme("turn:");
    assert_eq!(turn["urls"], json!(["turn:127.0.0.1:3478?transport=udp"]));
    let username = turn["username"].as_str().expect("TURN username");
    let (expiry, uid) = username.split_once(':').expect("<expiry>:<user id>");
    let expiry: u64 = expiry.parse().expect("expiry in seconds");
    assert!((asked_at + 600..=now_secs() + 600).contains(&expiry), "expiry {expiry}, asked at {asked_at}");
    assert_eq!(uid, user.to_string());
    assert_eq!(turn["credential"].as_str(), Some(coturn_credential("s3cret", username).as_str()));
}

fn png(width: u32, height: u32, noisy: bool) -> Vec<u8> {
    let image = image::RgbImage::from_fn(width, height, |x, y| {
        if noisy {
            image::Rgb(rand::random::<[u8; 3]>())
        } else {
            image::Rgb(if (x / 20 + y / 20) % 2 == 0 { [200, 40, 40] } else { [40, 40, 200] })
        }
    });
    let mut out = Vec::new();
    image.write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png).expect("encoding a PNG");
    out
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).permissions().mode() & 0o777
}

async fn health_and_metrics_follow_connections_and_messages(backend: Backend) {
    let server = TestServer::start(backend).await;
    assert_eq!(server.get_text("/healthz").await, (StatusCode::OK, "ok".to_string()));
    let admin = server.admin().await;
    let general = admin.text_channel("general").await;

    let (status, text) = server.get_text("/metrics").await;
    assert_eq!(status, StatusCode::OK);
    assert!(text.contains("# TYPE hearth_gateway_latency_seconds histogram"), "{text}");
    assert!(text.contains("hearth_gateway_latency_seconds_bucket{le=\"+Inf\"}"), "{text}");
    assert_eq!(server.metric("hearth_connected_users").await, 0.0);
    let messages = server.metric("hearth_messages_total").await;
    let latencies = server.metric("hearth_gateway_latency_seconds_count").await;

    let mut a = server.gateway(&admin).await;
    assert_eq!(server.metric("hearth_connected_users").await, 1.0);
    assert_eq!(server.metric("hearth_gateway_connections").await, 1.0);
    a.send(&say(general.id, "counted")).await;
    a.event(|e| matches!(e, Event::MessageCreate { .. }).then_some(())).await;
    assert_eq!(server.metric("hearth_messages_total").await, messages + 1.0);
    assert_eq!(server.metric("hearth_gateway_latency_seconds_count").await, latencies + 1.0);

    a.close_and_wait().await;
    assert_eq!(server.metric("hearth_connected_users").await, 0.0);
    assert_eq!(server.get_text("/healthz").await.0, StatusCode::OK);
}

async fn turn_credentials_follow_the_coturn_rest_scheme(backend: Backend) {
    // The helper itself against a value computed with openssl.
    assert_eq!(coturn_credential("s3cret", "1700000000:42"), "pkGfLzidB0U1T2lLkxNy/vgk7ZE=");

    let server = TestServer::start_with(backend, &TURN_ARGS).await;
    let admin = server.admin().await;
    let me = admin.session().user.id;

    let asked_at = now_secs();
    let (status, body) = admin.get("/turn").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["ttl_secs"], 600);
    check_ice_servers(body["ice_servers"].as_array().expect("ice_servers"), me, asked_at);
    assert_eq!(server.client().get("/turn").await.0, StatusCode::UNAUTHORIZED);

    let asked_at = now_secs();
    let gw = server.gateway(&admin).await;
    let ready: Vec<IceServer> = gw.ready.as_ref().unwrap().ice_servers.clone();
    let ready: Vec<Value> = ready.iter().map(common::json).collect();
    check_ice_servers(&ready, me, asked_at);
}

async fn avatars_are_resized_served_and_announced(backend: Backend) {
    let server = TestServer::start_with(backend, &["--max-avatar-bytes", "10000"]).await;
    let admin = server.admin().await;
    let bob = server.member(&admin, "bob").await;
    let mut b = server.gateway(&bob).await;

    let upload = png(300, 200, false);
    assert!(upload.len() < 10_000, "test image is {} bytes", upload.len());
    let (status, body) = admin.send_bytes(Method::PUT, "/users/@me/avatar", upload).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let user: User = serde_json::from_value(body).expect("user");
    let hash = user.avatar.clone().expect("avatar hash");
    assert!(hash.len() == 32 && hash.bytes().all(|c| c.is_ascii_hexdigit()), "hash {hash}");

    let announced = b
        .event(|e| match e {
            Event::MemberUpdate { user } => Some(user.clone()),
            _ => None,
        })
        .await;
    assert_eq!(announced, user);

    let (status, kind, bytes) = bob.get_bytes(&format!("/avatars/{hash}.png")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(kind.as_deref(), Some("image/png"));
    let served = image::load_from_memory_with_format(&bytes, image::ImageFormat::Png).expect("a PNG");
    assert_eq!((served.width(), served.height()), (256, 256));
    assert_eq!(server.client().get_bytes(&format!("/avatars/{hash}.png")).await.0, StatusCode::UNAUTHORIZED);

    let (status, body) =
        // A GIF signature and a 1 × 1 screen, then junk: sniffed as GIF, not decodable.
        admin.send_bytes(Method::PUT, "/users/@me/avatar", b"GIF89a\x01\x00\x01\x00 but not really".to_vec()).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{body}");
    assert_eq!(body["code"], "unsupported_media");
    let big = png(100, 100, true);
    assert!(big.len() > 10_000);
    let (status, body) = admin.send_bytes(Method::PUT, "/users/@me/avatar", big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(body["code"], "payload_too_large");
    let (_, me) = admin.get("/users/@me").await;
    assert_eq!(me["avatar"].as_str(), Some(hash.as_str()), "a refused upload changed the avatar");

    let (status, body) = admin.patch("/users/@me", json!({"display_name": "The Admin"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let renamed = b
        .event(|e| match e {
            Event::MemberUpdate { user } => Some(user.clone()),
            _ => None,
        })
        .await;
    assert_eq!((renamed.id, renamed.display_name.as_str()), (user.id, "The Admin"));
    assert_eq!(renamed.avatar, Some(hash));
}

async fn an_avatar_larger_than_a_json_body_is_accepted_by_default(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin().await;
    // Photos are usually far larger than the 64 KiB JSON body limit.
    let upload = png(256, 256, true);
    assert!(upload.len() > 128 * 1024, "test image is {} bytes", upload.len());
    let (status, body) = admin.send_bytes(Method::PUT, "/users/@me/avatar", upload).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["avatar"].is_string());
}

async fn a_zero_configuration_server_keeps_its_secrets_logins_and_history(backend: Backend) {
    let mut server = TestServer::start(backend.clone()).await;
    let secrets = server.data_dir.join("secrets.json");
    let setup = server.data_dir.join("setup-token");
    assert_eq!(mode(&secrets), 0o600, "secrets.json must be owner-only");
    assert_eq!(mode(&setup), 0o600, "setup-token must be owner-only");
    if matches!(backend, Backend::Sqlite) {
        assert!(server.data_dir.join("hearth.db").exists(), "SQLite database not in the data dir");
    }
    let (_, info) = server.client().get("/server").await;
    assert_eq!(info["needs_setup"], true);
    let setup_token = server.setup_token();
    let keys = std::fs::read_to_string(&secrets).expect("secrets.json");

    let admin = server.admin().await;
    assert!(!setup.exists(), "the setup token file outlived its use");
    let general = admin.text_channel("general").await;
    let (status, body) = admin
        .post(&format!("/channels/{}/messages", general.id), json!({"nonce": "keep", "content": "kept"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    assert!(server.terminate().await, "unclean exit on SIGTERM");
    server.restart().await;
    assert_eq!(std::fs::read_to_string(&secrets).expect("secrets.json"), keys, "secrets changed on restart");
    assert_eq!(mode(&secrets), 0o600);
    assert!(!setup.exists(), "a setup token was made although the group has members");
    let (_, info) = server.client().get("/server").await;
    assert_eq!(info["needs_setup"], false);
    let (status, body) = server
        .client()
        .post(
            "/auth/register",
            json!({"invite": setup_token, "username": "eve", "password": common::PASSWORD}),
        )
        .await;
    common::expect_api_error(&(status, body), ErrorCode::InvalidInvite);

    // The access token from before the restart still works: same signing key.
    let mut admin = admin.at(&server);
    let (status, me) = admin.get("/users/@me").await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["id"], json!(admin.session().user.id.to_string()));
    let history = admin.whole_history(general.id).await;
    assert_eq!(history.iter().map(|m| m.content.as_str()).collect::<Vec<_>>(), ["kept"]);
    let gw = server.gateway(&admin).await;
    assert!(gw.ready.as_ref().unwrap().channels.iter().any(|c| c.id == general.id));
    let refresh = admin.session().refresh_token.clone();
    assert_eq!(admin.refresh_session(&refresh).await.0, StatusCode::OK);
}

/// Every option the server documents, as `--help` must list it.
const OPTIONS: [&str; 24] = [
    "--config",
    "--data-dir",
    "--listen",
    "--public-url",
    "--server-name",
    "--database-url",
    "--log-format",
    "--turn-secret",
    "--turn-urls",
    "--turn-ttl-secs",
    "--access-token-ttl-secs",
    "--refresh-token-ttl-days",
    "--limit-login-per-account",
    "--limit-login-per-ip",
    "--limit-messages-per-sec",
    "--limit-message-burst",
    "--limit-frames-per-sec",
    "--argon2-concurrency",
    "--max-avatar-bytes",
    "--heartbeat-interval-ms",
    "--identify-timeout-ms",
    "--resume-window-secs",
    "--replay-buffer",
    "--shutdown-grace-ms",
];

fn hearth_server(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_hearth-server"))
        .args(args)
        .env("HEARTH_LOG", "warn")
        .output()
        .expect("running hearth-server")
}

#[test]
fn help_lists_every_option_and_exits_zero() {
    let out = hearth_server(&["--help"]);
    assert!(out.status.success(), "--help exited with {}", out.status);
    let help = String::from_utf8_lossy(&out.stdout);
    for option in OPTIONS {
        assert!(help.contains(option), "--help does not mention {option}:\n{help}");
    }
}

#[test]
fn bad_option_values_stop_the_server_with_a_clear_message() {
    let dir = std::env::temp_dir().join(format!("hearth-cli-{}", std::process::id()));
    let data_dir = dir.to_str().expect("UTF-8 temp path");
    let cases: [(&[&str], &[&str]); 4] = [
        (&["--log-format", "xml"], &["log-format", "xml"]),
        (&["--limit-messages-per-sec", "0"], &["limit-messages-per-sec"]),
        (&["--database-url", "mysql://localhost/hearth"], &["database-url"]),
        (&["--listen", "not-an-address"], &["--listen"]),
    ];
    for (args, words) in cases {
        let mut all = vec!["--data-dir", data_dir];
        all.extend_from_slice(args);
        let out = hearth_server(&all);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} was accepted");
        for word in words {
            assert!(stderr.contains(word), "the error for {args:?} does not mention {word}: {stderr}");
        }
        assert!(!dir.exists(), "{args:?} got as far as creating the data directory");
    }
}

both_backends!(
    health_and_metrics_follow_connections_and_messages,
    turn_credentials_follow_the_coturn_rest_scheme,
    avatars_are_resized_served_and_announced,
    an_avatar_larger_than_a_json_body_is_accepted_by_default,
    a_zero_configuration_server_keeps_its_secrets_logins_and_history,
);
