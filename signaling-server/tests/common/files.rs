//! Attachments over HTTP: resumable uploads, downloads with Range, messages that carry them.

use std::path::Path;

use hearth_protocol::ChannelId;
use hearth_protocol::api::UploadStatus;
use hearth_protocol::model::{Attachment, Message};
use reqwest::{Method, StatusCode};
use serde_json::json;

use super::Client;

/// `POST /uploads`, then the bytes in `chunks` appends, then finish.
pub async fn upload(client: &Client, name: &str, bytes: &[u8], chunks: usize) -> Attachment {
    let status: UploadStatus = client
        .ok(Method::POST, "/uploads", Some(json!({"name": name, "size": bytes.len()})), StatusCode::CREATED)
        .await;
    assert_eq!(status.offset, 0);
    let step = bytes.len().div_ceil(chunks.max(1)).max(1);
    let mut offset = 0;
    while offset < bytes.len() {
        let end = (offset + step).min(bytes.len());
        let (code, headers) =
            append(client, &status.id.to_string(), offset, bytes[offset..end].to_vec()).await;
        assert_eq!(code, StatusCode::NO_CONTENT);
        assert_eq!(header(&headers, "upload-offset"), end.to_string());
        offset = end;
    }
    client.ok(Method::POST, &format!("/uploads/{}/finish", status.id), None, StatusCode::CREATED).await
}

pub async fn append(
    client: &Client,
    id: &str,
    offset: usize,
    body: Vec<u8>,
) -> (StatusCode, reqwest::header::HeaderMap) {
    let resp = client
        .http
        .patch(format!("{}/api/v1/uploads/{id}", client.base))
        .bearer_auth(client.token())
        .header("Upload-Offset", offset.to_string())
        .header("Content-Type", "application/offset+octet-stream")
        .body(body)
        .send()
        .await
        .expect("PATCH");
    (resp.status(), resp.headers().clone())
}

pub fn header(headers: &reqwest::header::HeaderMap, name: &str) -> String {
    headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string()
}

/// GET with optional Range: status, headers, body.
pub async fn fetch(
    client: &Client,
    path: &str,
    range: Option<&str>,
) -> (StatusCode, reqwest::header::HeaderMap, Vec<u8>) {
    let mut req = client.http.get(format!("{}/api/v1{path}", client.base)).bearer_auth(client.token());
    if let Some(range) = range {
        req = req.header("Range", range);
    }
    let resp = req.send().await.expect("GET");
    let status = resp.status();
    let headers = resp.headers().clone();
    (status, headers, resp.bytes().await.expect("body").to_vec())
}

pub async fn send(
    client: &Client,
    channel: ChannelId,
    content: &str,
    attachments: &[&Attachment],
) -> Message {
    let ids: Vec<String> = attachments.iter().map(|a| a.id.to_string()).collect();
    let nonce = format!("n{}", rand_nonce());
    let body = json!({"nonce": nonce, "content": content, "attachments": ids});
    client.ok(Method::POST, &format!("/channels/{channel}/messages"), Some(body), StatusCode::CREATED).await
}

pub fn rand_nonce() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(1);
    N.fetch_add(1, Ordering::Relaxed)
}

pub fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    names.sort();
    names
}
