//! Attachments against the real server, on SQLite and PostgreSQL: resumable uploads streamed
//! to disk, the content-addressed store (dedup, freed with the last message), types sniffed
//! from bytes (only raster images previewed), the headers every download carries, Range
//! requests, membership on every download, and location metadata removed from photos.

mod common;

use std::io::Cursor;

use common::files::{append, fetch, files_in, header, send, upload};
use common::{Backend, TestServer};
use hearth_protocol::ErrorCode;
use hearth_protocol::api::UploadStatus;
use hearth_protocol::model::{Attachment, AttachmentKind};
use reqwest::{Method, StatusCode};
use serde_json::json;
use sha2::Digest;
use tokio::io::AsyncWriteExt;

fn jpeg(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([(x % 251) as u8, (y % 241) as u8, 90]));
    let mut out = Vec::new();
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut Cursor::new(&mut out), image::ImageFormat::Jpeg)
        .unwrap();
    out
}

fn png_with_alpha(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbaImage::from_fn(w, h, |x, _| image::Rgba([200, 10, 10, (x % 256) as u8]));
    let mut out = Vec::new();
    img.write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png).unwrap();
    out
}

fn assert_protected(headers: &reqwest::header::HeaderMap) {
    assert_eq!(header(headers, "x-content-type-options"), "nosniff");
    assert_eq!(header(headers, "content-security-policy"), "sandbox");
}

async fn photo_round_trips_with_a_thumbnail(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin().await;
    let channel = admin.text_channel("photos").await;
    let photo = jpeg(1200, 800);
    let attachment = upload(&admin, "holiday.jpg", &photo, 3).await;
    assert_eq!(attachment.kind, AttachmentKind::Image);
    assert_eq!(attachment.content_type, "image/jpeg");
    assert_eq!((attachment.width, attachment.height), (Some(1200), Some(800)));
    assert!(attachment.thumbnail);
    assert_eq!(attachment.size, photo.len() as u64);

    let sent = send(&admin, channel.id, "", &[&attachment]).await;
    assert_eq!(sent.attachments, vec![attachment.clone()]);
    let history = admin.history(channel.id, "").await;
    assert_eq!(history[0].attachments, vec![attachment.clone()]);

    let (status, headers, body) = fetch(&admin, &format!("/attachments/{}", attachment.id), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, photo);
    assert_protected(&headers);
    assert_eq!(header(&headers, "content-type"), "image/jpeg");
    assert!(header(&headers, "content-disposition").starts_with("inline"));
    assert_eq!(header(&headers, "accept-ranges"), "bytes");

    // A download resumes with Range.
    let (status, headers, tail) =
        fetch(&admin, &format!("/attachments/{}", attachment.id), Some("bytes=1000-")).await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(tail, photo[1000..]);
    assert_eq!(header(&headers, "content-range"), format!("bytes 1000-{}/{}", photo.len() - 1, photo.len()));
    let (status, _, _) =
        fetch(&admin, &format!("/attachments/{}", attachment.id), Some("bytes=999999999-")).await;
    assert_eq!(status, StatusCode::RANGE_NOT_SATISFIABLE);

    let (status, headers, thumb) =
        fetch(&admin, &format!("/attachments/{}/thumbnail", attachment.id), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_protected(&headers);
    let thumb = image::load_from_memory(&thumb).expect("the thumbnail is an image");
    assert_eq!((thumb.width(), thumb.height()), (480, 320));

    // A transparent PNG keeps its transparency in a PNG thumbnail.
    let clear = upload(&admin, "logo.png", &png_with_alpha(300, 200), 1).await;
    assert_eq!(clear.kind, AttachmentKind::Image);
    let (_, headers, _) = fetch(&admin, &format!("/attachments/{}/thumbnail", clear.id), None).await;
    assert_eq!(header(&headers, "content-type"), "image/png");

    // has:file finds messages with files, and only those.
    send(&admin, channel.id, "no file here", &[]).await;
    let found: hearth_protocol::api::SearchResults =
        admin.ok(Method::GET, "/search?q=has%3Afile", None, StatusCode::OK).await;
    assert_eq!(found.total, 1);
    assert_eq!(found.hits[0].message.id, sent.id);
}

async fn files_that_are_not_raster_images_are_downloads_only(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin().await;
    let channel = admin.text_channel("files").await;
    // Named like a photo, starts like a PNG, but is not one.
    let mut liar = b"\x89PNG\r\n\x1a\n".to_vec();
    liar.extend_from_slice(b"<script>alert(1)</script>".repeat(40).as_slice());
    let svg = b"<svg xmlns='http://www.w3.org/2000/svg' onload='alert(1)'><rect width='9' height='9'/></svg>"
        .to_vec();
    let html = b"<!doctype html><html><script>alert(1)</script></html>".to_vec();
    for (name, bytes) in [("photo.png", liar), ("drawing.svg", svg), ("page.html", html)] {
        let attachment = upload(&admin, name, &bytes, 1).await;
        assert_eq!(attachment.kind, AttachmentKind::File, "{name}");
        assert!(!attachment.thumbnail, "{name}");
        assert_eq!(attachment.content_type, "application/octet-stream", "{name}");
        send(&admin, channel.id, name, &[&attachment]).await;
        let (status, headers, body) = fetch(&admin, &format!("/attachments/{}", attachment.id), None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, bytes);
        assert_protected(&headers);
        assert_eq!(header(&headers, "content-type"), "application/octet-stream", "{name}");
        assert!(header(&headers, "content-disposition").starts_with("attachment;"), "{name}");
        let (status, _, _) = fetch(&admin, &format!("/attachments/{}/thumbnail", attachment.id), None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{name} has no preview");
    }
}

async fn oversize_and_over_quota_are_refused_before_anything_is_written(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin().await;
    let limits = json!({"max_upload_bytes": 10_000, "upload_quota_bytes": 15_000});
    let (status, body) = admin.patch("/server/settings", limits).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let uploads = server.data_dir.join("uploads");
    let before = files_in(&uploads);

    let answer = admin.post("/uploads", json!({"name": "big.bin", "size": 10_001})).await;
    common::expect_api_error(&answer, ErrorCode::PayloadTooLarge);
    assert_eq!(files_in(&uploads), before, "nothing written for a refused upload");

    // Within the limit, but more bytes than announced: refused before writing.
    let status: UploadStatus = admin
        .ok(Method::POST, "/uploads", Some(json!({"name": "a.bin", "size": 8_000})), StatusCode::CREATED)
        .await;
    let (code, _) = append(&admin, &status.id.to_string(), 0, vec![7u8; 8_001]).await;
    assert_eq!(code, StatusCode::PAYLOAD_TOO_LARGE);
    let part = uploads.join(format!("{}.part", status.id));
    assert_eq!(std::fs::metadata(&part).unwrap().len(), 0, "no byte of an oversize body is written");
    // The 8 000 announced count against the quota: 8 000 more do not fit in 15 000.
    let answer = admin.post("/uploads", json!({"name": "b.bin", "size": 8_000})).await;
    let error = common::expect_api_error(&answer, ErrorCode::PayloadTooLarge);
    assert!(error.message.contains("quota"), "{}", error.message);
    // Cancelling gives the room back.
    admin.no_content(Method::DELETE, &format!("/uploads/{}", status.id), None).await;
    assert!(!part.exists());
    upload(&admin, "b.bin", &[1u8; 8_000], 2).await;
}

async fn a_nearly_full_disk_refuses_uploads_and_chat_goes_on(backend: Backend) {
    // A reserve larger than any disk.
    let server = TestServer::start_with(backend, &["--upload-disk-reserve-mib", "1000000000"]).await;
    let admin = server.admin().await;
    let channel = admin.text_channel("general").await;
    let answer = admin.post("/uploads", json!({"name": "a.bin", "size": 10})).await;
    let error = common::expect_api_error(&answer, ErrorCode::InsufficientStorage);
    assert!(error.message.contains("disk"), "{}", error.message);
    send(&admin, channel.id, "still chatting", &[]).await;
}

async fn only_members_download(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin().await;
    let friend = server.member(&admin, "friend").await;
    let outsider = server.member(&admin, "outsider").await;
    let dm = admin.dm(&[friend.id()]).await;
    let photo = upload(&admin, "secret.jpg", &jpeg(64, 64), 1).await;
    // Not sent yet: only the uploader sees it.
    let (status, _, _) = fetch(&friend, &format!("/attachments/{}", photo.id), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Someone else cannot send it either.
    let body = json!({"nonce": "steal", "content": "mine", "attachments": [photo.id.to_string()]});
    let answer =
        outsider.post(&format!("/channels/{}/messages", outsider.dm(&[admin.id()]).await.id), body).await;
    common::expect_api_error(&answer, ErrorCode::NotFound);

    send(&admin, dm.id, "just for you", &[&photo]).await;
    let (status, _, _) = fetch(&friend, &format!("/attachments/{}", photo.id), None).await;
    assert_eq!(status, StatusCode::OK);
    for path in [format!("/attachments/{}", photo.id), format!("/attachments/{}/thumbnail", photo.id)] {
        let (status, _, body) = fetch(&outsider, &path, None).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
        assert!(!body.starts_with(&[0xFF, 0xD8]), "no bytes of the file");
    }
    // A private channel the outsider is not in: the same.
    let (status, value) = admin
        .patch(&format!("/channels/{}", admin.text_channel("inner").await.id), json!({"private": true}))
        .await;
    assert_eq!(status, StatusCode::OK, "{value}");
    let inner: hearth_protocol::model::Channel = serde_json::from_value(value).unwrap();
    let doc = upload(&admin, "plan.pdf", b"%PDF-1.7 plan", 1).await;
    send(&admin, inner.id, "", &[&doc]).await;
    let (status, _, _) = fetch(&outsider, &format!("/attachments/{}", doc.id), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

async fn the_same_file_is_stored_once_and_freed_with_its_last_message(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin().await;
    let mut gateway = server.gateway(&admin).await;
    let channel = admin.text_channel("family").await;
    let store = server.data_dir.join("attachments");
    let photo = jpeg(300, 200);
    let first = upload(&admin, "a.jpg", &photo, 1).await;
    let second = upload(&admin, "copy of a.jpg", &photo, 2).await;
    assert_ne!(first.id, second.id);
    let hash = hex::encode(sha2::Sha256::digest(&photo));
    assert_eq!(files_in(&store), vec![hash.clone(), format!("{hash}.thumb")]);
    let one = send(&admin, channel.id, "one", &[&first]).await;
    let two = send(&admin, channel.id, "two", &[&second]).await;
    // One attachment cannot go with two messages.
    let body = json!({"nonce": "again", "content": "three", "attachments": [first.id.to_string()]});
    common::expect_api_error(
        &admin.post(&format!("/channels/{}/messages", channel.id), body).await,
        ErrorCode::NotFound,
    );

    for (message, left) in [(one.id, 2), (two.id, 0)] {
        gateway
            .send(&hearth_protocol::gateway::ClientMsg::DeleteMessage {
                channel_id: channel.id,
                message_id: message,
            })
            .await;
        gateway
            .event(|e| match e {
                hearth_protocol::gateway::Event::MessageDelete { message_id, .. }
                    if *message_id == message =>
                {
                    Some(())
                }
                _ => None,
            })
            .await;
        // The files go after the delete is dispatched: wait for them.
        let deadline = std::time::Instant::now() + common::WAIT;
        while files_in(&store).len() != left && std::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert_eq!(files_in(&store).len(), left, "after deleting {message}");
    }
    let (status, _, _) = fetch(&admin, &format!("/attachments/{}", second.id), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn a_dropped_upload_resumes_from_the_servers_offset(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin().await;
    let bytes: Vec<u8> = (0..3_000_000u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    let status: UploadStatus = admin
        .ok(
            Method::POST,
            "/uploads",
            Some(json!({"name": "video.bin", "size": bytes.len()})),
            StatusCode::CREATED,
        )
        .await;
    // A raw connection announces every byte, sends a million and drops.
    let mut socket = tokio::net::TcpStream::connect(&server.addr).await.unwrap();
    let head = format!(
        "PATCH /api/v1/uploads/{} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nUpload-Offset: 0\r\n\
         Content-Length: {}\r\n\r\n",
        status.id,
        server.addr,
        admin.token(),
        bytes.len()
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    socket.write_all(&bytes[..1_000_000]).await.unwrap();
    socket.flush().await.unwrap();
    drop(socket);
    // The server keeps what reached it; ask until it has seen the drop.
    let deadline = std::time::Instant::now() + common::WAIT * 3;
    let offset = loop {
        let resp = admin
            .http
            .head(format!("{}/api/v1/uploads/{}", admin.base, status.id))
            .bearer_auth(admin.token())
            .send()
            .await
            .unwrap();
        let offset: u64 = header(resp.headers(), "upload-offset").parse().unwrap();
        // A second append while the first is still being written is a conflict; so is the
        // wrong offset. Once the dropped one is over, ours goes in.
        // Until the dropped request reached the server, it has nothing (the bytes it was sent
        // are in the socket, so it will have some).
        let (code, _) = append(&admin, &status.id.to_string(), offset as usize, Vec::new()).await;
        if offset > 0 && code == StatusCode::NO_CONTENT {
            break offset;
        }
        assert!(std::time::Instant::now() < deadline, "the dropped append never ended");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert!(offset > 0 && offset <= 1_000_000, "offset {offset}");
    // A wrong offset is a conflict that names the right one.
    let (code, headers) = append(&admin, &status.id.to_string(), 5, vec![1]).await;
    assert_eq!(code, StatusCode::CONFLICT);
    assert_eq!(header(&headers, "upload-offset"), offset.to_string());
    let (code, _) =
        append(&admin, &status.id.to_string(), offset as usize, bytes[offset as usize..].to_vec()).await;
    assert_eq!(code, StatusCode::NO_CONTENT);
    let attachment: Attachment =
        admin.ok(Method::POST, &format!("/uploads/{}/finish", status.id), None, StatusCode::CREATED).await;
    let channel = admin.text_channel("videos").await;
    send(&admin, channel.id, "", &[&attachment]).await;
    let (_, _, body) = fetch(&admin, &format!("/attachments/{}", attachment.id), None).await;
    assert_eq!(sha2::Sha256::digest(&body), sha2::Sha256::digest(&bytes));
}

/// A JPEG with an EXIF segment holding an orientation, a camera make and a GPS position.
fn photo_with_location() -> Vec<u8> {
    let mut t = vec![b'I', b'I', 42, 0, 8, 0, 0, 0];
    t.extend_from_slice(&3u16.to_le_bytes());
    t.extend_from_slice(&[0x12, 0x01, 3, 0, 1, 0, 0, 0, 1, 0, 0, 0]);
    t.extend_from_slice(&[0x25, 0x88, 4, 0, 1, 0, 0, 0, 50, 0, 0, 0]);
    t.extend_from_slice(&[0x0F, 0x01, 2, 0, 4, 0, 0, 0, b'A', b'C', b'M', b'E']);
    t.extend_from_slice(&0u32.to_le_bytes());
    t.extend_from_slice(&2u16.to_le_bytes());
    t.extend_from_slice(&[0x01, 0x00, 2, 0, 2, 0, 0, 0, b'N', 0, 0, 0]);
    t.extend_from_slice(&[0x02, 0x00, 5, 0, 3, 0, 0, 0, 80, 0, 0, 0]);
    t.extend_from_slice(&0u32.to_le_bytes());
    assert_eq!(t.len(), 80);
    for v in [48u32, 1, 51, 1, 2930, 100] {
        t.extend_from_slice(&v.to_le_bytes());
    }
    let mut app1 = b"Exif\0\0".to_vec();
    app1.extend_from_slice(&t);
    let plain = jpeg(200, 100);
    let mut out = plain[..2].to_vec();
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&((app1.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(&app1);
    out.extend_from_slice(&plain[2..]);
    out
}

async fn location_is_removed_from_photos(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin().await;
    let channel = admin.text_channel("trips").await;
    let photo = photo_with_location();
    let latitude: Vec<u8> = [48u32, 1, 51, 1].iter().flat_map(|v| v.to_le_bytes()).collect();
    assert!(photo.windows(latitude.len()).any(|w| w == latitude));
    let attachment = upload(&admin, "trip.jpg", &photo, 1).await;
    assert_eq!(attachment.kind, AttachmentKind::Image);
    send(&admin, channel.id, "", &[&attachment]).await;
    let (_, _, stored) = fetch(&admin, &format!("/attachments/{}", attachment.id), None).await;
    assert_eq!(stored.len(), photo.len(), "removed in place, nothing re-encoded");
    assert!(!stored.windows(latitude.len()).any(|w| w == latitude), "the GPS position is gone");
    assert_eq!(&stored[20..22], &2u16.to_le_bytes(), "IFD0 has two entries left, no GPS pointer");
    assert!(stored.windows(4).any(|w| w == b"ACME"), "the other tags stay");
    // The image data is untouched: everything after the EXIF segment is byte for byte the same.
    let header = 2 + 2 + 2 + 6 + 104;
    assert_eq!(stored[header..], photo[header..]);
    image::load_from_memory(&stored).expect("still a JPEG");
}

both_backends!(
    photo_round_trips_with_a_thumbnail,
    files_that_are_not_raster_images_are_downloads_only,
    oversize_and_over_quota_are_refused_before_anything_is_written,
    a_nearly_full_disk_refuses_uploads_and_chat_goes_on,
    only_members_download,
    the_same_file_is_stored_once_and_freed_with_its_last_message,
    a_dropped_upload_resumes_from_the_servers_offset,
    location_is_removed_from_photos,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_uploads_are_swept() {
    let server = TestServer::start_with(Backend::Sqlite, &["--upload-stale-secs", "1"]).await;
    let admin = server.admin().await;
    let status: UploadStatus = admin
        .ok(Method::POST, "/uploads", Some(json!({"name": "left.bin", "size": 100})), StatusCode::CREATED)
        .await;
    let unsent = upload(&admin, "never sent.pdf", b"%PDF-1.4 never sent", 1).await;
    let part = server.data_dir.join("uploads").join(format!("{}.part", status.id));
    assert!(part.exists());
    // The sweep runs every second here; stale after one second.
    let deadline = std::time::Instant::now() + common::WAIT;
    while (part.exists() || !files_in(&server.data_dir.join("attachments")).is_empty())
        && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(!part.exists(), "the incomplete upload's bytes are gone");
    assert!(
        files_in(&server.data_dir.join("attachments")).is_empty(),
        "the unsent attachment's file is gone"
    );
    let (status_code, _) = admin.get(&format!("/uploads/{}", status.id)).await;
    assert_eq!(status_code, StatusCode::NOT_FOUND);
    let (status_code, _, _) = fetch(&admin, &format!("/attachments/{}", unsent.id), None).await;
    assert_eq!(status_code, StatusCode::NOT_FOUND);
}
