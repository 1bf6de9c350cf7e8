//! Joining through an invite link, logging in, and the saved accounts file.

mod common;

use common::{PASSWORD, TestClient, TestServer, fast, temp_dir};
use hearth_client::invite::LinkError;
use hearth_client::{Engine, Error};
use hearth_protocol::ErrorCode;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_joins_through_an_invite_link_and_logs_in_elsewhere() {
    let server = TestServer::start().await;
    let admin = TestClient::admin(&server).await;
    let (invite, link) = admin.engine.create_invite(Some(1), None).await.unwrap();
    assert!(link.starts_with("hearth://join?server=http%3A%2F%2F127.0.0.1"), "{link}");
    assert!(link.ends_with(&format!("code={}", invite.code)));

    let dir = temp_dir("bob");
    let engine = Engine::open_with(dir.path(), fast()).unwrap();
    let bob = engine.add_account_from_invite(&link, "bob", PASSWORD).await.unwrap();
    assert_eq!(bob.username, "bob");
    assert_eq!(bob.server, server.url());
    assert!(bob.active);
    let session = engine.activate(&bob.id).await.unwrap();
    session.connected().await.unwrap();
    assert_eq!(session.user().unwrap().username, "bob");
    assert!(engine.members().await.unwrap().iter().any(|m| m.username == "admin"));

    // The single-use invite is spent.
    let carol_dir = temp_dir("carol");
    let again = Engine::open_with(carol_dir.path(), fast()).unwrap();
    let refused = again.add_account_from_invite(&link, "carol", PASSWORD).await.unwrap_err();
    assert_eq!(refused.api_code(), Some(ErrorCode::InvalidInvite), "{refused}");

    // Another device logs in with the server's address alone.
    let laptop_dir = temp_dir("laptop");
    let laptop = Engine::open_with(laptop_dir.path(), fast()).unwrap();
    let account = laptop.login(&server.url(), "bob", PASSWORD).await.unwrap();
    assert_eq!(account.user_id, bob.user_id);
    let wrong = laptop.login(&server.url(), "bob", "not the password").await.unwrap_err();
    assert_eq!(wrong.code(), "invalid_credentials");
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_without_an_invite_are_refused_clearly() {
    let dir = temp_dir("links");
    let engine = Engine::open(dir.path()).unwrap();
    let e = engine.add_account_from_invite("https://chat.example.org", "bob", PASSWORD).await.unwrap_err();
    assert!(matches!(e, Error::Link(LinkError::MissingCode)), "{e:?}");
    assert_eq!(e.code(), "invalid_link");
    let e = engine.add_account_from_invite("mailto:bob@example.org", "bob", PASSWORD).await.unwrap_err();
    assert!(matches!(e, Error::Link(_)), "{e:?}");
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_saved_accounts_file_is_readable_only_by_its_owner() {
    use std::os::unix::fs::PermissionsExt;
    let server = TestServer::start().await;
    let admin = TestClient::admin(&server).await;
    let path = admin.engine.accounts_path();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{}", path.display());
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("refresh_token"));

    // Switching: a second account on the same engine, then back.
    let member = TestClient::member(&admin, "bob").await;
    drop(member);
    let bob = admin.engine.login(&server.url(), "bob", PASSWORD).await.unwrap();
    assert_eq!(admin.engine.accounts().len(), 2);
    assert_eq!(admin.engine.active_account().unwrap().id, bob.id);
    let session = admin.engine.activate(&bob.id).await.unwrap();
    session.connected().await.unwrap();
    assert_eq!(session.user().unwrap().username, "bob");
    let first = admin.engine.accounts().into_iter().find(|a| a.username == "admin").unwrap();
    let session = admin.engine.activate(&first.id).await.unwrap();
    session.connected().await.unwrap();
    assert_eq!(session.user().unwrap().username, "admin");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    admin.engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_subscription_from_activation_has_the_first_ready_however_late_it_is_read() {
    let server = TestServer::start().await;
    let admin = TestClient::admin(&server).await;
    let account = admin.engine.active_account().unwrap();
    admin.engine.deactivate().await;

    let (session, mut events) = admin.engine.activate_subscribed(&account.id).await.unwrap();
    // By now the session has connected and sent its Ready; a subscribe() now would miss it.
    session.connected().await.unwrap();
    let first_ready = loop {
        match events.try_recv() {
            Ok(hearth_client::SessionEvent::Ready(ready)) => break ready,
            Ok(_) => continue,
            Err(e) => panic!("no Ready in the early subscription: {e}"),
        }
    };
    assert_eq!(first_ready.user.username, "admin");
}
