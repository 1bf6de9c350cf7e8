//! Attachments from the client's side: a file uploaded to the server in chunks with progress,
//! cancellable, resuming from the offset the server reports after a dropped connection; and an
//! attachment downloaded to a path with progress, resuming a partial download (`<path>.part`)
//! with a Range request. Neither holds more than one chunk in memory.

use std::path::{Path, PathBuf};
use std::time::Duration;

use hearth_protocol::api::CreateUploadRequest;
use hearth_protocol::model::Attachment;
use hearth_protocol::{AttachmentId, UploadId};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use crate::api::Api;
use crate::error::{Error, Result};

/// Bytes per append: a dropped connection loses at most this much work.
pub const CHUNK: usize = 4 << 20;
/// Attempts after a network error before the transfer gives up (each waits a little longer).
const RETRIES: u32 = 5;

/// Where a transfer stands: bytes done of the total.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub done: u64,
    pub total: u64,
}

/// Starts an upload of the file at `path` (named `name`); returns its id, to pass to
/// [`upload`] (and to keep, so that an upload cut off by a restart can go on).
pub async fn start_upload(api: &Api, token: &str, path: &Path, name: &str) -> Result<UploadId> {
    let size = tokio::fs::metadata(path).await?.len();
    let status = api.create_upload(token, &CreateUploadRequest { name: name.to_string(), size }).await?;
    Ok(status.id)
}

/// Sends the rest of upload `id` from `path`, starting at the offset the server has, then
/// finishes it. Network errors are retried from the server's offset; `cancel` deletes the
/// upload on the server and returns [`Error::Cancelled`].
pub async fn upload(
    api: &Api,
    token: &str,
    id: UploadId,
    path: &Path,
    cancel: &CancellationToken,
    mut progress: impl FnMut(Progress),
) -> Result<Attachment> {
    let mut file = tokio::fs::File::open(path).await?;
    let mut failures = 0;
    let mut buf = vec![0u8; CHUNK];
    loop {
        if cancel.is_cancelled() {
            // Best effort: an upload left behind is swept by the server.
            let _ = api.cancel_upload(token, id).await;
            return Err(Error::Cancelled);
        }
        let status = match api.upload_status(token, id).await {
            Ok(status) => status,
            Err(Error::Network(e)) if failures < RETRIES => {
                failures += 1;
                tracing::debug!(error = %e, "upload status failed; retrying");
                tokio::time::sleep(Duration::from_millis(200 << failures)).await;
                continue;
            }
            Err(e) => return Err(e),
        };
        progress(Progress { done: status.offset, total: status.size });
        if status.offset >= status.size {
            return api.finish_upload(token, id).await;
        }
        file.seek(std::io::SeekFrom::Start(status.offset)).await?;
        let want = CHUNK.min((status.size - status.offset) as usize);
        let mut read = 0;
        while read < want {
            let n = file.read(&mut buf[read..want]).await?;
            if n == 0 {
                return Err(Error::Corrupt("the file became shorter while it was being sent".into()));
            }
            read += n;
        }
        let sent = tokio::select! {
            sent = api.append_upload(token, id, status.offset, buf[..read].to_vec()) => sent,
            _ = cancel.cancelled() => continue,
        };
        match sent {
            Ok(_) => failures = 0,
            // A drop or a conflict: ask the server where it is and go on from there.
            Err(Error::Network(_)) if failures < RETRIES => {
                failures += 1;
                tokio::time::sleep(Duration::from_millis(200 << failures)).await;
            }
            Err(Error::Api(e)) if e.code == hearth_protocol::ErrorCode::Conflict && failures < RETRIES => {
                failures += 1;
                tokio::time::sleep(Duration::from_millis(100 << failures)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// The partial file a download writes before it is complete.
pub fn partial_path(dest: &Path) -> PathBuf {
    let mut name = dest.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".part");
    dest.with_file_name(name)
}

/// Downloads attachment `id` (of `size` bytes) to `dest`, resuming `<dest>.part` when one is
/// there; the file appears at `dest` only when complete.
pub async fn download(
    api: &Api,
    token: &str,
    id: AttachmentId,
    size: u64,
    dest: &Path,
    cancel: &CancellationToken,
    mut progress: impl FnMut(Progress),
) -> Result<()> {
    let part = partial_path(dest);
    let mut failures = 0;
    loop {
        let mut file = tokio::fs::OpenOptions::new().create(true).append(true).open(&part).await?;
        let have = file.metadata().await?.len();
        progress(Progress { done: have, total: size });
        if have >= size {
            file.sync_all().await?;
            drop(file);
            tokio::fs::rename(&part, dest).await?;
            return Ok(());
        }
        let result: Result<()> = async {
            let mut resp = api.download_attachment(token, id, have).await?;
            if have > 0 && resp.status() != reqwest::StatusCode::PARTIAL_CONTENT {
                return Err(Error::Protocol("the server did not resume the download".into()));
            }
            let mut done = have;
            loop {
                let chunk = tokio::select! {
                    chunk = resp.chunk() => chunk.map_err(|e| Error::Network(e.without_url().to_string()))?,
                    _ = cancel.cancelled() => return Err(Error::Cancelled),
                };
                let Some(chunk) = chunk else { break };
                file.write_all(&chunk).await?;
                done += chunk.len() as u64;
                progress(Progress { done, total: size });
            }
            file.flush().await?;
            Ok(())
        }
        .await;
        match result {
            Ok(()) => {}
            Err(Error::Network(_)) if failures < RETRIES => {
                failures += 1;
                tokio::time::sleep(Duration::from_millis(200 << failures)).await;
            }
            Err(e) => return Err(e),
        }
    }
}
