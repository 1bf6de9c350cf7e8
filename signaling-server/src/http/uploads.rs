//! Resumable uploads (`/api/v1/uploads`): create with a name and a size, append at the offset
//! the server has (`PATCH` with `Upload-Offset`), ask for the offset after a drop (`HEAD` or
//! `GET`), finish into an attachment, or cancel. Bodies are streamed to the upload's file and
//! never held whole; a body that would pass the announced size is refused with 413 before a
//! byte of it is written when its length is announced, and stops at the size otherwise.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use hearth_protocol::api::{CreateUploadRequest, UploadStatus};
use hearth_protocol::model::Attachment;
use hearth_protocol::{ErrorCode, MAX_ATTACHMENT_NAME_BYTES, UploadId};
use tokio::io::AsyncWriteExt;

use super::extract::{Json, Path};
use crate::attachments;
use crate::auth::AuthUser;
use crate::db::attachments::Upload;
use crate::error::{AppError, AppResult};
use crate::state::AppState;

/// The header that carries an upload's offset, both ways.
pub const UPLOAD_OFFSET: &str = "upload-offset";

fn mib(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1_000_000.0)
}

pub async fn create(
    State(state): State<AppState>,
    user: AuthUser,
    Json(req): Json<CreateUploadRequest>,
) -> AppResult<(StatusCode, Json<UploadStatus>)> {
    let name = req.name.trim().to_string();
    if name.is_empty() || name.len() > MAX_ATTACHMENT_NAME_BYTES || name.chars().any(char::is_control) {
        return Err(AppError::invalid(format!(
            "a file name is 1 to {MAX_ATTACHMENT_NAME_BYTES} bytes without control characters"
        )));
    }
    let settings = state.server_settings();
    if req.size > settings.max_upload_bytes {
        return Err(AppError::new(
            ErrorCode::PayloadTooLarge,
            format!("files are limited to {} on this server", mib(settings.max_upload_bytes)),
        ));
    }
    if let Some(quota) = settings.upload_quota_bytes {
        let used = state.db.upload_usage(user.id).await?;
        if used.saturating_add(req.size) > quota {
            return Err(AppError::new(
                ErrorCode::PayloadTooLarge,
                format!(
                    "this would pass your storage quota of {} ({} used); delete old files or ask an admin",
                    mib(quota),
                    mib(used)
                ),
            ));
        }
    }
    attachments::check_disk(&state, req.size)?;
    let upload = Upload { id: UploadId(state.ids.next()), user_id: user.id, name, size: req.size };
    let path = state.attachments.part_path(upload.id);
    tokio::fs::File::create(&path).await.map_err(|e| AppError::Internal(e.into()))?;
    state.db.create_upload(&upload).await?;
    let status = UploadStatus { id: upload.id, name: upload.name, size: upload.size, offset: 0 };
    Ok((StatusCode::CREATED, Json(status)))
}

/// The caller's own upload, or `not_found`.
async fn own(state: &AppState, user: &AuthUser, id: UploadId) -> AppResult<Upload> {
    match state.db.upload(id).await? {
        Some(upload) if upload.user_id == user.id => Ok(upload),
        _ => Err(AppError::not_found("upload")),
    }
}

async fn offset_of(state: &AppState, id: UploadId) -> AppResult<u64> {
    match tokio::fs::metadata(state.attachments.part_path(id)).await {
        Ok(meta) => Ok(meta.len()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(AppError::not_found("upload")),
        Err(e) => Err(AppError::Internal(e.into())),
    }
}

fn with_offset(mut response: Response, offset: u64) -> Response {
    response.headers_mut().insert(UPLOAD_OFFSET, HeaderValue::from(offset));
    response
}

/// `GET` (JSON) and `HEAD` (headers only): where the upload stands.
pub async fn status(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<UploadId>,
) -> AppResult<Response> {
    let upload = own(&state, &user, id).await?;
    let offset = offset_of(&state, id).await?;
    let mut response =
        Json(UploadStatus { id, name: upload.name, size: upload.size, offset }).into_response();
    response.headers_mut().insert("upload-length", HeaderValue::from(upload.size));
    Ok(with_offset(response, offset))
}

/// Appends the body at `Upload-Offset`.
pub async fn append(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<UploadId>,
    headers: HeaderMap,
    body: Body,
) -> AppResult<Response> {
    // In a task of its own: when the client goes away mid-body the server may drop this
    // request's future, and what had arrived (still in the write buffer) would be lost with
    // it. The task reads on to the body's end or error and keeps every byte that came.
    tokio::spawn(append_to_file(state, user, id, headers, body))
        .await
        .map_err(|e| AppError::Internal(e.into()))?
}

async fn append_to_file(
    state: AppState,
    user: AuthUser,
    id: UploadId,
    headers: HeaderMap,
    body: Body,
) -> AppResult<Response> {
    let upload = own(&state, &user, id).await?;
    let claimed: u64 = headers
        .get(UPLOAD_OFFSET)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| AppError::invalid("Upload-Offset must give the offset the bytes start at"))?;
    let _busy = state.attachments.begin(id)?;
    let offset = offset_of(&state, id).await?;
    if claimed != offset {
        let error =
            AppError::new(ErrorCode::Conflict, format!("the server has {offset} bytes of this upload"));
        return Ok(with_offset(error.into_response(), offset));
    }
    let room = upload.size - offset.min(upload.size);
    let announced = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > room) {
        return Err(AppError::new(
            ErrorCode::PayloadTooLarge,
            format!("this upload has room for {room} more bytes"),
        ));
    }
    attachments::check_disk(&state, room)?;
    let file = tokio::fs::OpenOptions::new()
        .append(true)
        .open(state.attachments.part_path(id))
        .await
        .map_err(|e| AppError::Internal(e.into()))?;
    let mut file = tokio::io::BufWriter::with_capacity(1 << 20, file);
    let mut written = 0u64;
    let mut stream = body.into_data_stream();
    let mut outcome = Ok(());
    while let Some(chunk) = stream.next().await {
        let chunk = match chunk {
            Ok(chunk) => chunk,
            // The client went away: what arrived stays, and it resumes from there.
            Err(_) => {
                outcome = Err(AppError::invalid("the upload's body ended early; resume from Upload-Offset"));
                break;
            }
        };
        if written + chunk.len() as u64 > room {
            outcome = Err(AppError::new(
                ErrorCode::PayloadTooLarge,
                format!("this upload has room for {room} more bytes"),
            ));
            break;
        }
        if let Err(e) = file.write_all(&chunk).await {
            outcome = Err(AppError::Internal(e.into()));
            break;
        }
        written += chunk.len() as u64;
    }
    file.flush().await.map_err(|e| AppError::Internal(e.into()))?;
    state.db.touch_upload(id).await?;
    let offset = offset + written;
    match outcome {
        Ok(()) => Ok(with_offset(StatusCode::NO_CONTENT.into_response(), offset)),
        Err(e) => Ok(with_offset(e.into_response(), offset)),
    }
}

pub async fn finish(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<UploadId>,
) -> AppResult<(StatusCode, Json<Attachment>)> {
    let upload = own(&state, &user, id).await?;
    let _busy = state.attachments.begin(id)?;
    let offset = offset_of(&state, id).await?;
    if offset != upload.size {
        return Err(AppError::new(
            ErrorCode::Conflict,
            format!("the server has {offset} of {} bytes; send the rest first", upload.size),
        ));
    }
    let attachment = attachments::finish(&state, &upload).await?;
    Ok((StatusCode::CREATED, Json(attachment)))
}

pub async fn cancel(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<UploadId>,
) -> AppResult<StatusCode> {
    own(&state, &user, id).await?;
    let _busy = state.attachments.begin(id)?;
    attachments::cancel(&state, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
