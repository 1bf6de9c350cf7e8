//! The updater end to end, except for the installer itself: the app's updater configuration
//! (tauri.conf.json, with the test's own key and endpoint) against a release served from
//! 127.0.0.1. A release signed by the key is found and its download verified; one whose
//! signature does not match (another key, altered bytes, or a signature made for another
//! version) is refused. The key pair is made here, at test time, with the minisign library the
//! Tauri CLI's `signer generate` uses; no private key is in the repository.
//!
//! The app runs on Tauri's mock runtime (no window); the updater plugin and the `update`
//! module are the real ones. Only this test allows plain HTTP (`dangerousInsecureTransportProtocol`).

use std::io::Cursor;
use std::net::SocketAddr;

use axum::Router;
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hearth_desktop::update::{self, UpdateError};
use serde_json::{Value, json};
use tauri::test::{MockRuntime, mock_builder, mock_context, noop_assets};

/// What the release "contains": the bytes the updater downloads.
const PAYLOAD: &[u8] = b"the Hearth 9.9.9 installer, as far as this test is concerned";

/// A minisign key pair as `tauri signer generate` writes it: the public key as the base64 of
/// its minisign text form (what `plugins.updater.pubkey` holds).
struct Signer {
    keys: minisign::KeyPair,
}

impl Signer {
    fn generate() -> Signer {
        Signer { keys: minisign::KeyPair::generate_unencrypted_keypair().expect("key pair") }
    }

    fn pubkey(&self) -> String {
        BASE64.encode(self.keys.pk.to_box().expect("public key box").into_string())
    }

    /// The `.sig` content as the Tauri CLI makes it (base64 of the minisign signature file),
    /// with the version recorded in the trusted comment.
    fn sign(&self, data: &[u8], version: &str) -> String {
        let trusted = format!("timestamp:1700000000\tfile:Hearth_{version}_x64-setup.exe\tversion:{version}");
        let signature = minisign::sign(Some(&self.keys.pk), &self.keys.sk, Cursor::new(data), Some(&trusted), None)
            .expect("signing");
        BASE64.encode(signature.into_string())
    }
}

/// The release manifest (`latest.json`, as tauri-action writes it) for every desktop platform.
fn manifest(version: &str, url: &str, signature: &str) -> Value {
    let entry = json!({ "url": url, "signature": signature });
    json!({
        "version": version,
        "notes": "Faster voice.",
        "pub_date": "2026-12-01T12:00:00Z",
        "platforms": {
            "linux-x86_64": entry,
            "windows-x86_64": entry,
            "darwin-x86_64": entry,
            "darwin-aarch64": entry,
        }
    })
}

/// Serves `/latest.json` (made by `latest` from the server's own address, so that it can name
/// the download beside it) and `/download` from 127.0.0.1 until the test ends.
async fn serve(latest: impl FnOnce(SocketAddr) -> Value, download: Vec<u8>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let latest = latest(addr);
    let app = Router::new()
        .route("/latest.json", get(move || async move { axum::Json(latest) }))
        .route("/download", get(move || async move { download }));
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// The shipped `plugins.updater` section of tauri.conf.json.
fn shipped_updater_config() -> Value {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tauri.conf.json")).expect("tauri.conf.json");
    let config: Value = serde_json::from_str(&text).expect("tauri.conf.json is JSON");
    config["plugins"]["updater"].clone()
}

/// The app as shipped (version 0.1.0 in the mock context), except that its updater trusts
/// `pubkey` and asks `addr` over plain HTTP.
fn app_with_updater(pubkey: &str, addr: SocketAddr) -> tauri::App<MockRuntime> {
    let mut updater = shipped_updater_config();
    updater["pubkey"] = json!(pubkey);
    updater["endpoints"] = json!([format!("http://{addr}/latest.json")]);
    updater["dangerousInsecureTransportProtocol"] = json!(true);
    let mut context = mock_context(noop_assets());
    context.config_mut().plugins.0.insert("updater".into(), updater);
    mock_builder()
        .plugin(tauri_plugin_updater::Builder::new().build())
        .build(context)
        .expect("mock app")
}

/// Serves a release of `version` with `signature`, whose download is `served`, and asks the
/// app's updater (trusting `app_key`) for it.
async fn offer(
    app_key: &Signer,
    version: &str,
    signature: String,
    served: &[u8],
) -> (tauri::App<MockRuntime>, Option<tauri_plugin_updater::Update>) {
    let addr = serve(|addr| manifest(version, &format!("http://{addr}/download"), &signature), served.to_vec()).await;
    let app = app_with_updater(&app_key.pubkey(), addr);
    let found = update::find(app.handle()).await.expect("the endpoint answers");
    (app, found)
}

#[tokio::test]
async fn a_release_signed_by_the_apps_key_is_found_and_verified() {
    let key = Signer::generate();
    let (_app, found) = offer(&key, "9.9.9", key.sign(PAYLOAD, "9.9.9"), PAYLOAD).await;
    let update = found.expect("9.9.9 is newer than 0.1.0");
    assert_eq!(update.version, "9.9.9");
    assert_eq!(update.current_version, "0.1.0");
    assert_eq!(update.body.as_deref(), Some("Faster voice."));
    let bytes = update::fetch(&update).await.expect("the signature matches");
    assert_eq!(bytes, PAYLOAD);
}

#[tokio::test]
async fn a_release_signed_by_another_key_is_refused() {
    let app_key = Signer::generate();
    let stranger = Signer::generate();
    let (_app, found) = offer(&app_key, "9.9.9", stranger.sign(PAYLOAD, "9.9.9"), PAYLOAD).await;
    let update = found.expect("the manifest itself is fine");
    let err = update::fetch(&update).await.expect_err("another key's signature");
    assert!(matches!(err, UpdateError::BadSignature(_)), "{err:?}");
}

#[tokio::test]
async fn an_altered_download_is_refused() {
    let key = Signer::generate();
    let mut altered = PAYLOAD.to_vec();
    altered[4] ^= 0x20;
    let (_app, found) = offer(&key, "9.9.9", key.sign(PAYLOAD, "9.9.9"), &altered).await;
    let err = update::fetch(&found.expect("update")).await.expect_err("bytes differ from the signed ones");
    assert!(matches!(err, UpdateError::BadSignature(_)), "{err:?}");
}

#[tokio::test]
async fn an_old_release_announced_as_new_is_refused() {
    // A genuine, validly signed 0.0.9 package behind a manifest that claims 9.9.9: the signed
    // version must match the announced one (requireSignedVersion in tauri.conf.json).
    let key = Signer::generate();
    let (_app, found) = offer(&key, "9.9.9", key.sign(PAYLOAD, "0.0.9"), PAYLOAD).await;
    let err = update::fetch(&found.expect("update")).await.expect_err("signed for 0.0.9");
    assert!(matches!(err, UpdateError::BadSignature(_)), "{err:?}");
}

#[tokio::test]
async fn an_older_or_equal_version_is_no_update() {
    let key = Signer::generate();
    for version in ["0.1.0", "0.0.9"] {
        let (_app, found) = offer(&key, version, key.sign(PAYLOAD, version), PAYLOAD).await;
        assert!(found.is_none(), "{version} is not an update of 0.1.0");
    }
}

#[tokio::test]
async fn an_unreachable_endpoint_is_a_typed_error() {
    let key = Signer::generate();
    // Bound then closed: nothing listens there.
    let addr = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind").local_addr().expect("addr");
    let app = app_with_updater(&key.pubkey(), addr);
    match update::find(app.handle()).await {
        Err(UpdateError::Unreachable(_)) => {}
        Err(other) => panic!("expected Unreachable, got {other:?}"),
        Ok(found) => panic!("nothing listens, yet found {:?}", found.map(|u| u.version)),
    }
}

#[test]
fn the_shipped_config_has_a_valid_key_https_endpoints_and_no_dangerous_option() {
    let updater = shipped_updater_config();
    let pubkey = updater["pubkey"].as_str().expect("plugins.updater.pubkey");
    let text = String::from_utf8(BASE64.decode(pubkey).expect("base64")).expect("UTF-8");
    minisign::PublicKeyBox::from_string(&text)
        .and_then(|b| b.into_public_key())
        .expect("plugins.updater.pubkey is a minisign public key");
    let endpoints = updater["endpoints"].as_array().expect("plugins.updater.endpoints");
    assert!(!endpoints.is_empty());
    for endpoint in endpoints {
        assert!(endpoint.as_str().is_some_and(|e| e.starts_with("https://")), "{endpoint}");
    }
    // The plugin (2.14) only enforces https for endpoints given through its builder, and only
    // warns about a plain-HTTP download: https is this config's job, checked here.
    assert_eq!(updater["requireSignedVersion"], json!(true));
    for (key, _) in updater.as_object().expect("object") {
        assert!(!key.starts_with("dangerous"), "tauri.conf.json must not set {key}");
    }
}
