//! `attachment_*`: files stored by the server. Upload a local file (or pasted bytes) with
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

/// Uploads bytes the window holds (a pasted image, a file dropped into the page) under `name`:
/// they are written to a temporary file under the data dir first, so the upload can resume.
#[tauri::command]
pub async fn attachment_upload_bytes(
    app: AppHandle,
    shell: State<'_, Shell>,
    jobs: State<'_, AttachmentJobs>,
    job: String,
    name: String,
    bytes: Vec<u8>,
) -> CommandResult<Attachment> {
    let name = name.trim().to_string();
    if name.is_empty() || name.chars().count() > 255 || name.chars().any(char::is_control) {
        return Err(CommandError::invalid_field("name: 1 to 255 printable characters"));
    }
    let (cancel, _guard) = jobs.start(&job)?;
    let dir = shell.engine.data_dir().join("upload-tmp");
    tokio::fs::create_dir_all(&dir).await.map_err(|e| CommandError::internal("upload dir", e))?;
    // The job id is the UI's; only its printable characters name the temporary file.
    let tmp =
        dir.join(format!("{}.bin", job.chars().filter(char::is_ascii_alphanumeric).collect::<String>()));
    tokio::fs::write(&tmp, &bytes).await.map_err(|e| CommandError::internal("upload file", e))?;
    drop(bytes);
    let result = shell.engine.upload_attachment(&tmp, &name, &cancel, reporter(&app, &job)).await;
    let _ = tokio::fs::remove_file(&tmp).await;
    Ok(result?)
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

/// Stops upload or download `job`; false when it is not running.
#[tauri::command]
pub fn attachment_cancel(jobs: State<'_, AttachmentJobs>, job: String) -> bool {
    match lock(&jobs.0).get(&job) {
        Some(token) => {
            token.cancel();
            true
        }
        None => false,
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
