//! Attachments through the engine against the real server: an upload with progress that
//! resumes from the server's offset after part of it was sent, cancel, and a download that
//! resumes a partial file with a Range request.

mod common;

use common::{PASSWORD, TestServer, temp_dir};
use hearth_client::api::Api;
use hearth_client::attachments::{self, Progress};
use hearth_client::error::Error;
use hearth_protocol::api::{CreateChannelRequest, CreateUploadRequest, RegisterRequest, SendMessageRequest};
use hearth_protocol::model::{AttachmentKind, ChannelKind};
use sha2::Digest;
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_resume_from_the_server_offset_and_downloads_from_the_partial_file() {
    let server = TestServer::start().await;
    let api = Api::new(&server.url()).unwrap();
    let admin = api
        .register(&RegisterRequest {
            invite: server.setup_token(),
            username: "admin".into(),
            password: PASSWORD.into(),
            display_name: None,
        })
        .await
        .unwrap();
    let token = admin.access_token.clone();
    let request = CreateChannelRequest {
        name: "files".into(),
        kind: ChannelKind::Text,
        topic: None,
        private: false,
        members: Vec::new(),
    };
    let channel = api.create_channel(&token, &request).await.unwrap();
    let dir = temp_dir("attachments");
    let bytes: Vec<u8> = (0..(attachments::CHUNK * 2 + 12_345) as u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 11) as u8)
        .collect();
    let source = dir.path().join("video.bin");
    std::fs::write(&source, &bytes).unwrap();

    // A first attempt got the first 1 MB to the server before the connection dropped.
    let id = attachments::start_upload(&api, &token, &source, "video.bin").await.unwrap();
    api.append_upload(&token, id, 0, bytes[..1_000_000].to_vec()).await.unwrap();
    let mut seen: Vec<Progress> = Vec::new();
    let cancel = CancellationToken::new();
    let attachment = attachments::upload(&api, &token, id, &source, &cancel, |p| seen.push(p)).await.unwrap();
    assert_eq!(seen.first().map(|p| p.done), Some(1_000_000), "resumed at the server's offset");
    assert_eq!(seen.last(), Some(&Progress { done: bytes.len() as u64, total: bytes.len() as u64 }));
    assert_eq!(attachment.kind, AttachmentKind::File);
    let req = SendMessageRequest {
        nonce: "with-file".into(),
        content: String::new(),
        reply_to: None,
        attachments: vec![attachment.id],
    };
    let message = api.send_message(&token, channel.id, &req).await.unwrap();
    assert_eq!(message.attachments, vec![attachment.clone()]);

    // A download that stopped at 3 MB goes on from there.
    let dest = dir.path().join("saved.bin");
    std::fs::write(attachments::partial_path(&dest), &bytes[..3_000_000]).unwrap();
    let mut first = None;
    attachments::download(&api, &token, attachment.id, attachment.size, &dest, &cancel, |p| {
        first.get_or_insert(p.done);
    })
    .await
    .unwrap();
    assert_eq!(first, Some(3_000_000));
    let saved = std::fs::read(&dest).unwrap();
    assert_eq!(sha2::Sha256::digest(&saved), sha2::Sha256::digest(&bytes));
    assert!(!attachments::partial_path(&dest).exists());

    // Cancelling an upload deletes it on the server.
    let id =
        api.create_upload(&token, &CreateUploadRequest { name: "x.bin".into(), size: 10 }).await.unwrap().id;
    let cancelled = CancellationToken::new();
    cancelled.cancel();
    let refused = attachments::upload(&api, &token, id, &source, &cancelled, |_| {}).await.unwrap_err();
    assert!(matches!(refused, Error::Cancelled), "{refused:?}");
    assert_eq!(
        api.upload_status(&token, id).await.unwrap_err().api_code(),
        Some(hearth_protocol::ErrorCode::NotFound)
    );
}
