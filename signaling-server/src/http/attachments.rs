//! Downloads of attachments (`/api/v1/attachments/{id}`, with Range requests) and their
//! thumbnails. Membership is checked on every request: an attachment of a message is readable
//! by whoever can see its channel (403 `forbidden` for anyone else, private channels and DMs
//! included); one not sent yet only by its uploader. Every answer carries
//! `X-Content-Type-Options: nosniff` and `Content-Security-Policy: sandbox`; anything but a
//! previewable image is `Content-Disposition: attachment`.

use std::io::SeekFrom;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hearth_protocol::AttachmentId;
use hearth_protocol::model::AttachmentKind;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::io::ReaderStream;

use super::extract::Path;
use crate::auth::AuthUser;
use crate::db::attachments::Stored;
use crate::error::{AppError, AppResult};
use crate::state::AppState;

/// The attachment, if `user` may read it.
async fn readable(state: &AppState, user: &AuthUser, id: AttachmentId) -> AppResult<Stored> {
    let stored = state.db.attachment(id).await?.ok_or_else(|| AppError::not_found("attachment"))?;
    match stored.channel_id {
        Some(channel) if state.hub.visible_channel(user.id, channel).is_some() => Ok(stored),
        Some(_) => Err(AppError::forbidden()),
        None if stored.uploader_id == user.id => Ok(stored),
        None => Err(AppError::not_found("attachment")),
    }
}

/// A byte range of a file of `size` bytes, from a `Range` header. `Ok(None)`: the whole file
/// (no header, or one we do not serve as ranges, such as several ranges); `Err`: 416.
pub fn parse_range(value: &str, size: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(spec) = value.trim().strip_prefix("bytes=") else { return Ok(None) };
    if spec.contains(',') {
        return Ok(None);
    }
    let (start, end) = spec.split_once('-').ok_or(())?;
    let (start, end) = (start.trim(), end.trim());
    let range = if start.is_empty() {
        // The last `end` bytes.
        let n: u64 = end.parse().map_err(|_| ())?;
        if n == 0 {
            return Err(());
        }
        (size.saturating_sub(n), size.checked_sub(1).ok_or(())?)
    } else {
        let start: u64 = start.parse().map_err(|_| ())?;
        let last = if end.is_empty() { size.saturating_sub(1) } else { end.parse().map_err(|_| ())? };
        if start >= size || last < start {
            return Err(());
        }
        (start, last.min(size - 1))
    };
    Ok(Some(range))
}

/// `filename*` in RFC 5987 form (any name is safe in it) plus a plain ASCII fallback.
fn disposition(kind: &str, name: &str) -> HeaderValue {
    let ascii: String =
        name.chars()
            .map(|c| {
                if c.is_ascii_graphic() && !matches!(c, '"' | '\\' | ';' | '%') || c == ' ' { c } else { '_' }
            })
            .collect();
    let encoded: String = name
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    HeaderValue::from_str(&format!("{kind}; filename=\"{ascii}\"; filename*=UTF-8''{encoded}"))
        .unwrap_or_else(|_| HeaderValue::from_static("attachment"))
}

fn protect(headers: &mut HeaderMap) {
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("sandbox"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, max-age=31536000, immutable"));
}

pub async fn download(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<AttachmentId>,
    request: HeaderMap,
) -> AppResult<Response> {
    let stored = readable(&state, &user, id).await?;
    let path = state.attachments.blob_path(&stored.hash).ok_or_else(|| AppError::not_found("attachment"))?;
    let mut file = tokio::fs::File::open(&path).await.map_err(|e| AppError::Internal(e.into()))?;
    let size = stored.attachment.size;
    let range = match request.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        Some(value) => match parse_range(value, size) {
            Ok(range) => range,
            Err(()) => {
                let mut response = StatusCode::RANGE_NOT_SATISFIABLE.into_response();
                protect(response.headers_mut());
                if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                    response.headers_mut().insert(header::CONTENT_RANGE, v);
                }
                return Ok(response);
            }
        },
        None => None,
    };
    let (status, start, len) = match range {
        Some((start, last)) => (StatusCode::PARTIAL_CONTENT, start, last - start + 1),
        None => (StatusCode::OK, 0, size),
    };
    if start > 0 {
        file.seek(SeekFrom::Start(start)).await.map_err(|e| AppError::Internal(e.into()))?;
    }
    let body = Body::from_stream(ReaderStream::with_capacity(file.take(len), 256 * 1024));
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    protect(headers);
    let image = stored.attachment.kind == AttachmentKind::Image;
    let content_type =
        if image { stored.attachment.content_type.as_str() } else { "application/octet-stream" };
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(content_type).unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    headers.insert(
        header::CONTENT_DISPOSITION,
        disposition(if image { "inline" } else { "attachment" }, &stored.attachment.name),
    );
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    if let Ok(tag) = HeaderValue::from_str(&format!("\"{}\"", stored.hash)) {
        headers.insert(header::ETAG, tag);
    }
    if status == StatusCode::PARTIAL_CONTENT
        && let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{}/{size}", start + len - 1))
    {
        headers.insert(header::CONTENT_RANGE, v);
    }
    Ok(response)
}

pub async fn thumbnail(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<AttachmentId>,
) -> AppResult<Response> {
    let stored = readable(&state, &user, id).await?;
    if !stored.attachment.thumbnail {
        return Err(AppError::not_found("thumbnail"));
    }
    let path =
        state.attachments.thumbnail_path(&stored.hash).ok_or_else(|| AppError::not_found("thumbnail"))?;
    let bytes = tokio::fs::read(&path).await.map_err(|_| AppError::not_found("thumbnail"))?;
    // We made it: a JPEG, or a PNG when the image has transparency.
    let content_type = if bytes.starts_with(&[0xFF, 0xD8]) { "image/jpeg" } else { "image/png" };
    let mut response = bytes.into_response();
    let headers = response.headers_mut();
    protect(headers);
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_as_rfc_9110_reads_them() {
        assert_eq!(parse_range("bytes=0-99", 1000), Ok(Some((0, 99))));
        assert_eq!(parse_range("bytes=900-", 1000), Ok(Some((900, 999))));
        assert_eq!(parse_range("bytes=-100", 1000), Ok(Some((900, 999))));
        assert_eq!(parse_range("bytes=-5000", 1000), Ok(Some((0, 999))));
        assert_eq!(parse_range("bytes=990-5000", 1000), Ok(Some((990, 999))));
        assert_eq!(parse_range("bytes=1000-", 1000), Err(()));
        assert_eq!(parse_range("bytes=5-1", 1000), Err(()));
        assert_eq!(parse_range("bytes=0-1,5-6", 1000), Ok(None));
        assert_eq!(parse_range("items=0-1", 1000), Ok(None));
        assert_eq!(parse_range("bytes=-0", 1000), Err(()));
    }

    #[test]
    fn any_name_makes_a_safe_disposition() {
        let v = disposition("attachment", "a\"b\r\n;c é.txt");
        let s = v.to_str().unwrap();
        assert!(s.starts_with("attachment; filename=\"a_b___c _.txt\""), "{s}");
        assert!(s.contains("filename*=UTF-8''a%22b%0D%0A%3Bc%20%C3%A9.txt"), "{s}");
    }
}
