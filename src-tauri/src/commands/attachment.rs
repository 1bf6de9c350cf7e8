//! `attachment_*`: files stored by the server. Upload a local file (or a pasted or dropped one,
//! staged in pieces) with
//! progress and cancel, list the files inside dropped folders, download an attachment to a
//! path chosen with the native save dialog with progress, and fetch an image (its thumbnail or
//! the whole picture) as a `data:` URL for the message pane and the viewer (the window's CSP
//! allows `data:` images). Progress reaches the UI as `attachment://progress` events, each
//! naming the UI's job id; `attachment_cancel(job)` stops an upload or download.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use hearth_client::attachments::Progress;
use hearth_protocol::AttachmentId;
use hearth_protocol::model::Attachment;
use serde::Serialize;
use tauri::{AppHandle, State};
use tauri_plugin_dialog::DialogExt;
use tokio_util::sync::CancellationToken;

use crate::error::{CommandError, CommandResult};
use crate::events;
use crate::shell::{Shell, lock};

/// Largest image shown at full size in the viewer (the server's default file limit).
const MAX_VIEW_BYTES: u64 = 64 << 20;
/// Files a folder may expand to at once.
const MAX_FOLDER_FILES: usize = 1000;

/// Uploads and downloads under way, by the UI's job id.
#[derive(Default)]
pub struct AttachmentJobs(Mutex<HashMap<String, CancellationToken>>);

struct JobGuard<'a> {
    jobs: &'a AttachmentJobs,
    job: String,
}

impl Drop for JobGuard<'_> {
    fn drop(&mut self) {
        lock(&self.jobs.0).remove(&self.job);
    }
}

impl AttachmentJobs {
    fn start(&self, job: &str) -> CommandResult<(CancellationToken, JobGuard<'_>)> {
        check_job(job)?;
        let mut jobs = lock(&self.0);
        if jobs.contains_key(job) {
            return Err(CommandError::invalid_field("job: already running"));
        }
        let token = CancellationToken::new();
        jobs.insert(job.to_string(), token.clone());
        Ok((token, JobGuard { jobs: self, job: job.to_string() }))
    }
}

fn check_job(job: &str) -> CommandResult<()> {
    if job.is_empty() || job.len() > 64 || job.chars().any(char::is_control) {
        return Err(CommandError::invalid_field("job: 1 to 64 printable characters"));
    }
    Ok(())
}

/// `attachment://progress`.
#[derive(Debug, Clone, Serialize, ts_rs::TS)]
pub struct AttachmentProgress {
    pub job: String,
    #[ts(type = "number")]
    pub done: u64,
    #[ts(type = "number")]
    pub total: u64,
}

fn reporter(app: &AppHandle, job: &str) -> Arc<dyn Fn(Progress) + Send + Sync> {
    let (app, job) = (app.clone(), job.to_string());
    Arc::new(move |p: Progress| {
        events::emit(
            &app,
            events::ATTACHMENT_PROGRESS,
            AttachmentProgress { job: job.clone(), done: p.done, total: p.total },
        )
    })
}

fn file_name(path: &Path) -> CommandResult<String> {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| !n.is_empty())
        .ok_or_else(|| CommandError::invalid_field("path: not a file"))
}

/// Uploads the file at `path`; the attachment goes with `message_send(…, attachments)`.
#[tauri::command]
pub async fn attachment_upload(
    app: AppHandle,
    shell: State<'_, Shell>,
    jobs: State<'_, AttachmentJobs>,
    job: String,
    path: String,
) -> CommandResult<Attachment> {
    let path = PathBuf::from(path);
    let meta = tokio::fs::metadata(&path).await.map_err(|e| CommandError::new("file", e.to_string()))?;
    if !meta.is_file() {
        return Err(CommandError::invalid_field("path: not a file"));
    }
    let name = file_name(&path)?;
    let (cancel, _guard) = jobs.start(&job)?;
    Ok(shell.engine.upload_attachment(&path, &name, &cancel, reporter(&app, &job)).await?)
}

/// Largest piece of a staged file one `attachment_stage` call carries.
pub const STAGE_CHUNK_MAX: usize = 16 << 20;

/// Where the bytes of a pasted or dropped file wait, under the data dir, until they are uploaded.
fn staged_path(data_dir: &Path, job: &str) -> PathBuf {
    // The job id is the UI's; only its printable ASCII letters and digits name the file.
    let name: String = job.chars().filter(char::is_ascii_alphanumeric).collect();
    data_dir.join("upload-tmp").join(format!("{name}.bin"))
}

/// Writes `bytes` at `offset` of the staged file: offset 0 starts it afresh; any other offset
/// must be where it ends (pieces come in order, none skipped or sent twice). Returns its length.
pub fn stage_append(path: &Path, offset: u64, bytes: &[u8]) -> std::io::Result<u64> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut file = if offset == 0 {
        std::fs::File::create(path)?
    } else {
        let file = std::fs::OpenOptions::new().append(true).open(path)?;
        let len = file.metadata()?.len();
        if len != offset {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("offset {offset} is not the end of the staged file ({len} bytes)"),
            ));
        }
        file
    };
    file.write_all(bytes)?;
    Ok(offset + bytes.len() as u64)
}

/// Stages a piece of a file the window holds (a pasted image, a file dropped into the page):
/// the body is the raw bytes (not JSON), the headers `x-hearth-job` and `x-hearth-offset` say
/// whose and where. The window sends a file in pieces of at most [`STAGE_CHUNK_MAX`] read with
/// `Blob.slice`, so neither side ever holds a big file whole; `attachment_upload_staged` then
/// uploads it. Returns the staged length.
#[tauri::command]
pub async fn attachment_stage(
    request: tauri::ipc::Request<'_>,
    shell: State<'_, Shell>,
) -> CommandResult<u64> {
    let header = |name: &str| request.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let job = header("x-hearth-job").ok_or_else(|| CommandError::invalid_field("x-hearth-job: missing"))?;
    check_job(&job)?;
    let offset: u64 = header("x-hearth-offset")
        .and_then(|o| o.parse().ok())
        .ok_or_else(|| CommandError::invalid_field("x-hearth-offset: a byte offset"))?;
    // The raw body; a webview that fell back to JSON IPC sends the bytes as a number array.
    let bytes: Vec<u8> = match request.body() {
        tauri::ipc::InvokeBody::Raw(bytes) => bytes.clone(),
        tauri::ipc::InvokeBody::Json(value) => serde_json::from_value(value.clone())
            .map_err(|_| CommandError::invalid_field("body: the file's bytes"))?,
    };
    if bytes.len() > STAGE_CHUNK_MAX {
        return Err(CommandError::invalid_field("body: at most 16 MiB a piece"));
    }
    let path = staged_path(shell.engine.data_dir(), &job);
    tokio::task::spawn_blocking(move || stage_append(&path, offset, &bytes))
        .await
        .map_err(|e| CommandError::internal("stage", e))?
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::InvalidInput | std::io::ErrorKind::NotFound => {
                CommandError::invalid_field(format!("x-hearth-offset: {e}"))
            }
            _ => CommandError::internal("stage", e),
        })
}

/// Uploads the file staged for `job` (which must hold `size` bytes) under `name`, then removes
/// the staged copy, whatever the outcome.
#[tauri::command]
pub async fn attachment_upload_staged(
    app: AppHandle,
    shell: State<'_, Shell>,
    jobs: State<'_, AttachmentJobs>,
    job: String,
    name: String,
    size: u64,
) -> CommandResult<Attachment> {
    let name = name.trim().to_string();
    if name.is_empty() || name.chars().count() > 255 || name.chars().any(char::is_control) {
        return Err(CommandError::invalid_field("name: 1 to 255 printable characters"));
    }
    let (cancel, _guard) = jobs.start(&job)?;
    let staged = staged_path(shell.engine.data_dir(), &job);
    let result = match tokio::fs::metadata(&staged).await {
        Ok(meta) if meta.len() == size => shell
            .engine
            .upload_attachment(&staged, &name, &cancel, reporter(&app, &job))
            .await
            .map_err(Into::into),
        Ok(meta) => {
            Err(CommandError::invalid_field(format!("size: {size} bytes announced, {} staged", meta.len())))
        }
        Err(_) => Err(CommandError::invalid_field("job: nothing staged")),
    };
    let _ = tokio::fs::remove_file(&staged).await;
    result
}

/// Removes whatever was staged and never uploaded (an app stopped mid-paste).
pub fn clear_staged(data_dir: &Path) {
    let _ = std::fs::remove_dir_all(data_dir.join("upload-tmp"));
}

/// The files in `paths`, folders replaced by the files inside them (recursively, sorted),
/// for drag and drop of folders.
#[tauri::command]
pub async fn attachment_expand(paths: Vec<String>) -> CommandResult<Vec<String>> {
    tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        for p in paths {
            expand(Path::new(&p), &mut out)?;
        }
        Ok(out.into_iter().map(|p| p.to_string_lossy().into_owned()).collect())
    })
    .await
    .map_err(|e| CommandError::internal("expand", e))?
}

fn expand(path: &Path, out: &mut Vec<PathBuf>) -> CommandResult<()> {
    let meta = std::fs::symlink_metadata(path).map_err(|e| CommandError::new("file", e.to_string()))?;
    if meta.is_file() {
        if out.len() >= MAX_FOLDER_FILES {
            return Err(CommandError::invalid_field(format!("paths: at most {MAX_FOLDER_FILES} files")));
        }
        out.push(path.to_path_buf());
    } else if meta.is_dir() {
        let mut entries = std::fs::read_dir(path)
            .and_then(|d| d.map(|e| e.map(|e| e.path())).collect::<Result<Vec<_>, _>>())
            .map_err(|e| CommandError::new("file", e.to_string()))?;
        entries.sort();
        for entry in entries {
            expand(&entry, out)?;
        }
    }
    // Symbolic links and special files are skipped: a folder never sends what lies outside it.
    Ok(())
}

/// Asks where to save `name`, then downloads attachment `id` there with progress; `None` when
/// the dialog was cancelled, else the path written.
#[tauri::command]
pub async fn attachment_download(
    app: AppHandle,
    shell: State<'_, Shell>,
    jobs: State<'_, AttachmentJobs>,
    job: String,
    id: AttachmentId,
    size: u64,
    name: String,
) -> CommandResult<Option<String>> {
    check_job(&job)?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    app.dialog().file().set_file_name(&name).save_file(move |picked| {
        let _ = tx.send(picked);
    });
    let Some(picked) = rx.await.map_err(|_| CommandError::cancelled())? else { return Ok(None) };
    let dest = picked.into_path().map_err(|e| CommandError::internal("file dialog", e))?;
    let (cancel, _guard) = jobs.start(&job)?;
    shell.engine.download_attachment(id, size, &dest, &cancel, reporter(&app, &job)).await?;
    Ok(Some(dest.to_string_lossy().into_owned()))
}

/// Stops upload or download `job` (and drops what was staged for it); false when it is not
/// running.
#[tauri::command]
pub fn attachment_cancel(shell: State<'_, Shell>, jobs: State<'_, AttachmentJobs>, job: String) -> bool {
    match lock(&jobs.0).get(&job) {
        Some(token) => {
            token.cancel();
            true
        }
        None => {
            if check_job(&job).is_ok() {
                let _ = std::fs::remove_file(staged_path(shell.engine.data_dir(), &job));
            }
            false
        }
    }
}

/// An image attachment as a `data:` URL: its thumbnail, or the whole picture (`full`). Only
/// PNG, JPEG, GIF and WebP bytes are returned; anything else is `unsupported_media`.
#[tauri::command]
pub async fn attachment_image(
    shell: State<'_, Shell>,
    id: AttachmentId,
    full: bool,
) -> CommandResult<String> {
    let bytes = if full {
        shell.engine.attachment_bytes(id, MAX_VIEW_BYTES).await?
    } else {
        shell.engine.attachment_thumbnail(id).await?
    };
    let mime = image_mime(&bytes).ok_or_else(|| CommandError::new("unsupported_media", "not an image"))?;
    Ok(format!("data:{mime};base64,{}", base64::engine::general_purpose::STANDARD.encode(&bytes)))
}

/// The type of raster image the bytes start with (never SVG or anything a browser would run).
pub fn image_mime(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if bytes.starts_with(&[0xff, 0xd8, 0xff]) {
        Some("image/jpeg")
    } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        Some("image/gif")
    } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        Some("image/webp")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_are_staged_in_order_and_a_gap_or_a_repeat_is_refused() {
        let dir = std::env::temp_dir().join(format!("hearth-stage-{}", std::process::id()));
        let path = staged_path(&dir, "job-1/../x");
        assert_eq!(path, dir.join("upload-tmp").join("job1x.bin"), "the job id cannot name another place");
        assert_eq!(stage_append(&path, 0, b"hello ").unwrap(), 6);
        assert_eq!(stage_append(&path, 6, b"world").unwrap(), 11);
        for bad in [6, 12, 3] {
            let e = stage_append(&path, bad, b"!").unwrap_err();
            assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "offset {bad}");
        }
        assert_eq!(std::fs::read(&path).unwrap(), b"hello world", "a refused piece changes nothing");
        // Offset 0 starts over.
        assert_eq!(stage_append(&path, 0, b"again").unwrap(), 5);
        assert_eq!(std::fs::read(&path).unwrap(), b"again");
        // Nothing staged for a job: a later piece is refused.
        let other = staged_path(&dir, "other");
        assert_eq!(stage_append(&other, 5, b"x").unwrap_err().kind(), std::io::ErrorKind::NotFound);
        clear_staged(&dir);
        assert!(!path.exists());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn only_raster_images_get_a_data_url_type() {
        assert_eq!(image_mime(b"\x89PNG\r\n\x1a\n...."), Some("image/png"));
        assert_eq!(image_mime(&[0xff, 0xd8, 0xff, 0xe0]), Some("image/jpeg"));
        assert_eq!(image_mime(b"GIF89a.."), Some("image/gif"));
        assert_eq!(image_mime(b"RIFF\0\0\0\0WEBPVP8 "), Some("image/webp"));
        assert_eq!(image_mime(b"<svg xmlns='http://www.w3.org/2000/svg'/>"), None);
        assert_eq!(image_mime(b"<html>"), None);
        assert_eq!(image_mime(b""), None);
    }

    struct TempDir(PathBuf);
    impl TempDir {
        fn path(&self) -> &Path {
            &self.0
        }
    }
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn folders_expand_to_their_files_in_order() {
        let dir = TempDir(std::env::temp_dir().join(format!("hearth-expand-{}", std::process::id())));
        std::fs::create_dir_all(dir.path().join("album/inner")).unwrap();
        std::fs::write(dir.path().join("album/b.jpg"), b"b").unwrap();
        std::fs::write(dir.path().join("album/a.jpg"), b"a").unwrap();
        std::fs::write(dir.path().join("album/inner/c.txt"), b"c").unwrap();
        std::fs::write(dir.path().join("solo.txt"), b"s").unwrap();
        let mut out = Vec::new();
        expand(&dir.path().join("album"), &mut out).unwrap();
        expand(&dir.path().join("solo.txt"), &mut out).unwrap();
        let names: Vec<_> = out.iter().map(|p| p.strip_prefix(dir.path()).unwrap().to_path_buf()).collect();
        assert_eq!(
            names,
            vec![
                PathBuf::from("album/a.jpg"),
                PathBuf::from("album/b.jpg"),
                PathBuf::from("album/inner/c.txt"),
                PathBuf::from("solo.txt")
            ]
        );
        assert_eq!(expand(&dir.path().join("missing"), &mut out).unwrap_err().code, "file");
    }
}
