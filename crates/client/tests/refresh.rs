//! Access tokens expire and are refreshed without the user noticing; a revoked login ends in
//! `LoggedOut`.

mod common;

use std::time::Duration;

use common::{PASSWORD, TestClient, TestServer, fast, temp_dir};
use hearth_client::{Engine, SessionEvent};
use hearth_server::config::Options;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_access_token_is_refreshed_and_the_session_keeps_working() {
    let server =
        TestServer::start_with(|| Options { access_token_ttl_secs: Some(1), ..Default::default() }).await;
    let mut admin = TestClient::admin(&server).await;
    let general = admin.text_channel("general").await;
    let saved_before = std::fs::read_to_string(admin.engine.accounts_path()).unwrap();

    // Past expiry plus the server's 5 s clock leeway: only waiting makes a token expire.
    tokio::time::sleep(Duration::from_secs(7)).await;

    // HTTP: refused once, refreshed, retried.
    let (invite, _) = admin.engine.create_invite(None, None).await.unwrap();
    assert!(!invite.code.is_empty());
    let saved_after = std::fs::read_to_string(admin.engine.accounts_path()).unwrap();
    assert_ne!(saved_before, saved_after, "the rotated refresh token was saved");

    // Gateway: a reconnect with the old token is refused, refreshed, and resumes.
    tokio::time::sleep(Duration::from_secs(7)).await;
    admin.session.simulate_outage(Duration::ZERO).await.unwrap();
    admin.wait_for(|e| matches!(e, SessionEvent::Resumed { .. }).then_some(())).await;
    admin.session.connected().await.unwrap();
    admin.engine.send_message(general, "still here", None).await.unwrap();
    admin.wait_message("still here").await;
    assert!(admin.engine.outbox().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logging_out_everywhere_ends_other_devices_with_logged_out() {
    let server = TestServer::start().await;
    let admin = TestClient::admin(&server).await;
    let dir = temp_dir("phone");
    let phone = Engine::open_with(dir.path(), fast()).unwrap();
    let account = phone.login(&server.url(), "admin", PASSWORD).await.unwrap();
    let mut phone = TestClient::online(phone, &account.id, dir).await;

    admin.engine.logout(true).await.unwrap();
    assert!(admin.engine.accounts().is_empty());
    phone.wait_for(|e| matches!(e, SessionEvent::LoggedOut).then_some(())).await;
    assert_eq!(phone.session.status(), hearth_client::ConnectionStatus::Offline);
}
