//! The typed HTTP client against the real server: every route it wraps, and errors that carry
//! the server's code.

mod common;

use common::{PASSWORD, PNG, TestServer};
use hearth_client::api::Api;
use hearth_protocol::ErrorCode;
use hearth_protocol::api::{
    CreateInviteRequest, HistoryQuery, RegisterRequest, SendMessageRequest, UpdateProfileRequest,
};
use hearth_protocol::model::ChannelKind;

fn register(invite: &str, username: &str) -> RegisterRequest {
    RegisterRequest {
        invite: invite.into(),
        username: username.into(),
        password: PASSWORD.into(),
        display_name: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_of_the_http_client_works_against_the_server() {
    let server = TestServer::start().await;
    let api = Api::new(&format!("{}/", server.url())).unwrap();
    assert_eq!(api.base(), server.url());
    let info = api.server_info().await.unwrap();
    assert!(info.needs_setup);

    let admin = api.register(&register(&server.setup_token(), "admin")).await.unwrap();
    let token = admin.access_token.clone();
    assert_eq!(admin.user.role, hearth_protocol::model::Role::Owner);
    assert!(!api.server_info().await.unwrap().needs_setup);

    // Invites: create, list, use, revoke.
    let invite = api
        .create_invite(&token, &CreateInviteRequest { max_uses: Some(1), expires_in_secs: None })
        .await
        .unwrap();
    let spare = api.create_invite(&token, &CreateInviteRequest::default()).await.unwrap();
    assert_eq!(api.invites(&token).await.unwrap().len(), 2);
    let bob = api.register(&register(&invite.code, "bob")).await.unwrap();
    api.revoke_invite(&token, &spare.code).await.unwrap();
    let refused = api.register(&register(&spare.code, "carol")).await.unwrap_err();
    assert_eq!(refused.api_code(), Some(ErrorCode::InvalidInvite));

    // Profile and avatar.
    let me = api
        .update_profile(&bob.access_token, &UpdateProfileRequest { display_name: Some("Bob B.".into()) })
        .await
        .unwrap();
    assert_eq!(me.display_name, "Bob B.");
    let me = api.upload_avatar(&bob.access_token, PNG.to_vec()).await.unwrap();
    assert!(me.avatar.is_some());
    let bad = api.upload_avatar(&bob.access_token, b"not an image".to_vec()).await.unwrap_err();
    assert_eq!(bad.api_code(), Some(ErrorCode::UnsupportedMedia), "{bad}");
    assert_eq!(api.me(&bob.access_token).await.unwrap(), me);
    assert_eq!(api.members(&token).await.unwrap().len(), 2);
    // Another member downloads it: the server's 256 px PNG re-encoding.
    let png = api.avatar(&token, me.avatar.as_deref().unwrap()).await.unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let missing = api.avatar(&token, "0123456789abcdef0123456789abcdef").await.unwrap_err();
    assert_eq!(missing.api_code(), Some(ErrorCode::NotFound), "{missing}");

    // Channels, DMs, messages over HTTP, history cursors.
    let general = api.create_channel(&token, &open_channel("general", ChannelKind::Text)).await.unwrap();
    let forbidden =
        api.create_channel(&bob.access_token, &open_channel("mine", ChannelKind::Text)).await.unwrap_err();
    assert_eq!(forbidden.api_code(), Some(ErrorCode::MissingPermission));
    assert!(api.channels(&bob.access_token).await.unwrap().iter().any(|c| c.id == general.id));
    let dm = api.open_dm(&bob.access_token, vec![admin.user.id]).await.unwrap();
    assert_eq!(dm.kind, ChannelKind::Dm);

    let mut sent = Vec::new();
    for i in 0..5 {
        let req = SendMessageRequest {
            nonce: format!("n{i}"),
            content: format!("m{i}"),
            reply_to: None,
            attachments: Vec::new(),
        };
        sent.push(api.send_message(&token, general.id, &req).await.unwrap());
    }
    let again = SendMessageRequest {
        nonce: "n0".into(),
        content: "m0".into(),
        reply_to: None,
        attachments: Vec::new(),
    };
    assert_eq!(
        api.send_message(&token, general.id, &again).await.unwrap().id,
        sent[0].id,
        "same nonce, same message"
    );
    let newest = api
        .history(&token, general.id, &HistoryQuery { limit: Some(2), ..Default::default() })
        .await
        .unwrap();
    assert_eq!(newest.iter().map(|m| m.content.as_str()).collect::<Vec<_>>(), ["m4", "m3"]);
    let before = api
        .history(
            &token,
            general.id,
            &HistoryQuery { before: Some(sent[2].id), limit: Some(10), ..Default::default() },
        )
        .await
        .unwrap();
    assert_eq!(before.iter().map(|m| m.content.as_str()).collect::<Vec<_>>(), ["m1", "m0"]);
    let after = api
        .history(
            &token,
            general.id,
            &HistoryQuery { after: Some(sent[2].id), limit: Some(10), ..Default::default() },
        )
        .await
        .unwrap();
    assert_eq!(after.iter().map(|m| m.content.as_str()).collect::<Vec<_>>(), ["m3", "m4"]);

    let turn = api.turn(&token).await.unwrap();
    assert!(turn.ttl_secs > 0);

    // Refresh rotates; the spent token is refused; logout ends the login.
    let next = api.refresh(&bob.refresh_token).await.unwrap();
    assert_ne!(next.refresh_token, bob.refresh_token);
    api.logout(&next.access_token, false).await.unwrap();
    let gone = api.refresh(&next.refresh_token).await.unwrap_err();
    assert_eq!(gone.api_code(), Some(ErrorCode::InvalidRefreshToken));
    let unauthorized = api.me("not a token").await.unwrap_err();
    assert_eq!(unauthorized.code(), "unauthorized");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_is_a_network_error() {
    let mut server = TestServer::start().await;
    let api = Api::new(&server.url()).unwrap();
    server.stop().await;
    let e = api.server_info().await.unwrap_err();
    assert_eq!(e.code(), "network", "{e}");
    assert!(e.is_transient());
}

fn open_channel(name: &str, kind: ChannelKind) -> hearth_protocol::api::CreateChannelRequest {
    hearth_protocol::api::CreateChannelRequest {
        name: name.into(),
        kind,
        topic: None,
        private: false,
        members: vec![],
    }
}
