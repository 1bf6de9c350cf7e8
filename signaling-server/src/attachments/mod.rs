//! Attachments: files members send with messages, stored by the server.
//!
//! An upload is a session (`uploads` row, bytes in `DATA_DIR/uploads/<id>.part`) that grows by
//! appends at the offset the server has, so a dropped connection resumes where it stopped; the
//! body is streamed to the file, never held whole. Finishing it ([`finish`]) removes location
//! metadata from JPEGs ([`location`]), hashes the bytes (SHA-256) and stores them once under
//! `DATA_DIR/attachments/<hash>`: the same file sent twice is one blob with two attachment
//! rows. The type is sniffed from the bytes ([`content_type`]); a raster image is decoded once
//! through the bounded image pool ([`crate::media`]) to a thumbnail (`<hash>.thumb`), and one
//! that does not decode within the limits is kept as a plain file, never previewed.
//!
//! Invariant: a blob's files exist while its `blobs` row does, and the row exists while an
//! attachment row names it. Both the step that stores a new blob and the step that frees an
//! unreferenced one ([`AttachmentStore::collect`]) hold the store's lock, so a file is never
//! removed under an upload that just found its blob (one process per data directory).

pub mod location;

use std::collections::HashSet;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use hearth_protocol::model::{Attachment, AttachmentKind};
use hearth_protocol::{AttachmentId, ErrorCode, UploadId};
use image::ImageFormat;
use sha2::{Digest, Sha256};

use crate::db::Db;
use crate::db::attachments::{Blob, Upload};
use crate::error::{AppError, AppResult};
use crate::media::{self, MediaError};
use crate::state::AppState;

/// Longer side of a thumbnail, in pixels.
pub const THUMBNAIL_FIT: u32 = 480;
/// How long a finish waits for a place in the image pool before keeping the file unpreviewed.
const POOL_WAIT: Duration = Duration::from_secs(30);

/// The files of attachments and uploads under the data directory.
pub struct AttachmentStore {
    blobs: PathBuf,
    uploads: PathBuf,
    /// Held while a new blob's files are put in place and its row written, and while
    /// unreferenced blobs are deleted with their files (see the module's invariant). An async
    /// lock: database work happens under it.
    lock: tokio::sync::Mutex<()>,
    /// Uploads with an append or a finish in progress: a second one at the same time is a
    /// conflict, so two writers never interleave in one file.
    busy: Mutex<HashSet<UploadId>>,
}

/// An upload being written; frees its place when dropped.
pub struct Busy<'a> {
    store: &'a AttachmentStore,
    id: UploadId,
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.store.busy.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.id);
    }
}

impl AttachmentStore {
    pub fn open(data_dir: &Path) -> std::io::Result<AttachmentStore> {
        let store = AttachmentStore {
            blobs: data_dir.join("attachments"),
            uploads: data_dir.join("uploads"),
            lock: Default::default(),
            busy: Default::default(),
        };
        std::fs::create_dir_all(&store.blobs)?;
        std::fs::create_dir_all(&store.uploads)?;
        Ok(store)
    }

    /// The directory of blobs (backups copy it).
    pub fn blobs_dir(&self) -> &Path {
        &self.blobs
    }

    pub fn part_path(&self, id: UploadId) -> PathBuf {
        self.uploads.join(format!("{}.part", id.0))
    }

    /// Where a blob lives; `None` for anything that is not a SHA-256 we made.
    pub fn blob_path(&self, hash: &str) -> Option<PathBuf> {
        is_hash(hash).then(|| self.blobs.join(hash))
    }

    pub fn thumbnail_path(&self, hash: &str) -> Option<PathBuf> {
        is_hash(hash).then(|| self.blobs.join(format!("{hash}.thumb")))
    }

    /// Marks an upload as being written, or says another request is writing it.
    pub fn begin(&self, id: UploadId) -> AppResult<Busy<'_>> {
        let mut busy = self.busy.lock().unwrap_or_else(|p| p.into_inner());
        if !busy.insert(id) {
            return Err(AppError::new(
                ErrorCode::Conflict,
                "another request is writing this upload; wait for it or ask for the offset",
            ));
        }
        Ok(Busy { store: self, id })
    }

    /// Deletes the blobs (rows and files) that no attachment names any more, among
    /// `candidates` or, with `None`, all of them. Returns how many were freed.
    pub async fn collect(&self, db: &Db, candidates: Option<&[String]>) -> sqlx::Result<usize> {
        if candidates.is_some_and(|c| c.is_empty()) {
            return Ok(0);
        }
        // This process's turn first, then the other processes' (so that waiting holds at most
        // one database connection per process).
        let _held = self.lock.lock().await;
        let shared = db.store_lock().await?;
        let freed = db.unreferenced_blobs(candidates).await;
        if let Ok(freed) = &freed {
            for hash in freed {
                for path in [self.blob_path(hash), self.thumbnail_path(hash)].into_iter().flatten() {
                    remove_quietly(&path).await;
                }
            }
        }
        shared.release().await;
        Ok(freed?.len())
    }
}

fn is_hash(hash: &str) -> bool {
    hash.len() == 64 && hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Removes a file that may already be gone; other failures are logged (a leftover file costs
/// disk, not correctness).
async fn remove_quietly(path: &Path) {
    if let Err(e) = tokio::fs::remove_file(path).await
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(error = %e, path = %path.display(), "removing an attachment file");
    }
}

/// The type of a file from its first bytes, and whether it is a raster image we may preview.
/// Never from the name or a client's header. Anything not recognised (SVG and HTML included)
/// is `application/octet-stream`.
pub fn content_type(head: &[u8]) -> (&'static str, bool) {
    if let Some(format) = media::sniff(head) {
        return match format {
            ImageFormat::Png => ("image/png", true),
            ImageFormat::Jpeg => ("image/jpeg", true),
            ImageFormat::Gif => ("image/gif", true),
            _ => ("image/webp", true),
        };
    }
    let kind = if head.starts_with(b"%PDF-") {
        "application/pdf"
    } else if head.starts_with(b"PK\x03\x04") {
        "application/zip"
    } else if head.len() >= 12 && &head[4..8] == b"ftyp" {
        "video/mp4"
    } else if head.starts_with(b"ID3") || head.starts_with(&[0xFF, 0xFB]) {
        "audio/mpeg"
    } else if head.starts_with(b"OggS") {
        "audio/ogg"
    } else {
        "application/octet-stream"
    };
    (kind, false)
}

/// A free-disk check: bytes available to the server's user on the file system of `path`.
pub fn free_bytes(path: &Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::other("path with a NUL byte"))?;
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `stat` a writable statvfs.
    if unsafe { libc::statvfs(c.as_ptr(), &mut stat) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((stat.f_bavail as u64).saturating_mul(stat.f_frsize as u64))
}

/// Refuses `more` bytes when they would leave less than the configured reserve free.
pub fn check_disk(state: &AppState, more: u64) -> AppResult<()> {
    let reserve = state.config.uploads.disk_reserve_bytes;
    let free = free_bytes(&state.config.files_dir).map_err(|e| AppError::Internal(e.into()))?;
    if free.saturating_sub(more) < reserve {
        return Err(AppError::new(
            ErrorCode::InsufficientStorage,
            "the server's disk is nearly full, so it takes no more files for now (messages still work); tell the server's owner",
        ));
    }
    Ok(())
}

/// What finishing learned from the bytes, before the store decides whether they are new.
struct Hashed {
    hash: String,
    size: u64,
    head: Vec<u8>,
}

/// Hashes a finished upload (after taking location metadata out of a JPEG).
fn hash_file(path: &Path, strip_location: bool) -> std::io::Result<Hashed> {
    let file = std::fs::File::open(path)?;
    file.sync_all()?;
    drop(file);
    if strip_location {
        location::strip(path)?;
    }
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut head = Vec::new();
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        if head.len() < 64 {
            head.extend_from_slice(&buf[..n.min(64)]);
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok(Hashed { hash: hex::encode(hasher.finalize()), size, head })
}

/// A thumbnail and the image's size as shown.
struct Thumbnail {
    bytes: Vec<u8>,
    width: u32,
    height: u32,
}

/// Decodes an image file on the pool into its thumbnail: JPEG, or PNG when it has
/// transparency. `None` when it is not an image we can read within the limits.
async fn thumbnail(state: &AppState, path: PathBuf) -> Option<Thumbnail> {
    let started = tokio::time::Instant::now();
    let admission = loop {
        match state.images.admit() {
            Ok(admission) => break admission,
            Err(_) if started.elapsed() < POOL_WAIT => tokio::time::sleep(Duration::from_millis(50)).await,
            Err(_) => {
                tracing::warn!("image pool busy for too long: an attachment is kept without preview");
                return None;
            }
        }
    };
    let made = state
        .images
        .run(admission, move |limits, deadline| {
            let open = || std::fs::File::open(&path).map(BufReader::new).map_err(|_| MediaError::NotAnImage);
            let (source_w, source_h) = image::ImageReader::new(open()?)
                .with_guessed_format()
                .map_err(|_| MediaError::NotAnImage)?
                .into_dimensions()
                .map_err(|_| MediaError::NotAnImage)?;
            let image = media::decode_fitted(open()?, THUMBNAIL_FIT, limits, deadline)?;
            // The decode applied the EXIF orientation: a quarter turn swaps the sides.
            let turned = (image.width() > image.height()) != (source_w > source_h) && source_w != source_h;
            let (width, height) = if turned { (source_h, source_w) } else { (source_w, source_h) };
            let opaque = image.pixels().all(|p| p.0[3] == 255);
            let mut bytes = Vec::new();
            let encoded = if opaque {
                let rgb = image::DynamicImage::ImageRgba8(image).into_rgb8();
                image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 82).encode_image(&rgb)
            } else {
                image.write_to(&mut std::io::Cursor::new(&mut bytes), ImageFormat::Png)
            };
            encoded.map_err(|_| MediaError::NotAnImage)?;
            Ok(Thumbnail { bytes, width, height })
        })
        .await;
    match made {
        Ok(thumbnail) => Some(thumbnail),
        Err(e) => {
            tracing::debug!(error = %e, "an attachment that looks like an image is kept as a file");
            None
        }
    }
}

/// Turns a complete upload into an attachment (see the module's doc).
pub async fn finish(state: &AppState, upload: &Upload) -> AppResult<Attachment> {
    let store = &state.attachments;
    let part = store.part_path(upload.id);
    let strip = !state.config.uploads.keep_location;
    let path = part.clone();
    let hashed = tokio::task::spawn_blocking(move || hash_file(&path, strip))
        .await
        .map_err(|e| AppError::Internal(e.into()))?
        .map_err(|e| AppError::Internal(e.into()))?;
    if hashed.size != upload.size {
        return Err(AppError::new(ErrorCode::Conflict, "the upload is not complete"));
    }
    let known = state.db.blob(&hashed.hash).await?;
    let (blob, thumb) = match known {
        Some(blob) => (blob, None),
        None => {
            let (content_type, raster) = content_type(&hashed.head);
            let thumb = if raster { thumbnail(state, part.clone()).await } else { None };
            let blob = Blob {
                hash: hashed.hash.clone(),
                size: hashed.size,
                // An image that did not decode is a file, served as bytes.
                content_type: if raster && thumb.is_none() {
                    "application/octet-stream"
                } else {
                    content_type
                }
                .to_string(),
                kind: if thumb.is_some() { AttachmentKind::Image } else { AttachmentKind::File },
                width: thumb.as_ref().map(|t| t.width),
                height: thumb.as_ref().map(|t| t.height),
                thumbnail: thumb.is_some(),
            };
            (blob, thumb)
        }
    };
    let id = AttachmentId(state.ids.next());
    let _held = store.lock.lock().await;
    let shared = state.db.store_lock().await?;
    // The attachment row is written under the locks too: a blob found here must not be freed
    // before a row names it.
    let done = async {
        let blob = store_blob(state, &part, blob, thumb).await?;
        Ok(state.db.finish_upload(upload, id, &blob).await?)
    }
    .await;
    shared.release().await;
    done
}

/// Puts a finished upload's bytes in the store as `blob`, unless a blob with its hash is there
/// already (the upload's file is then dropped). Runs under the store's locks.
async fn store_blob(state: &AppState, part: &Path, blob: Blob, thumb: Option<Thumbnail>) -> AppResult<Blob> {
    let store = &state.attachments;
    let internal = |e: std::io::Error| AppError::Internal(e.into());
    Ok(match state.db.blob(&blob.hash).await? {
        Some(existing) => {
            remove_quietly(part).await;
            existing
        }
        None => {
            let target =
                store.blob_path(&blob.hash).ok_or_else(|| internal(std::io::Error::other("bad hash")))?;
            let mut blob = blob;
            match thumb {
                Some(thumb) => {
                    let path = store
                        .thumbnail_path(&blob.hash)
                        .ok_or_else(|| internal(std::io::Error::other("bad hash")))?;
                    tokio::fs::write(&path, &thumb.bytes).await.map_err(internal)?;
                }
                // Known a moment ago but freed meanwhile: stored again, without its preview.
                None if blob.thumbnail => {
                    blob.thumbnail = false;
                    blob.kind = AttachmentKind::File;
                    blob.content_type = "application/octet-stream".into();
                }
                None => {}
            }
            tokio::fs::rename(part, &target).await.map_err(internal)?;
            blob
        }
    })
}

/// Drops an upload: its row and its bytes.
pub async fn cancel(state: &AppState, id: UploadId) -> sqlx::Result<bool> {
    let removed = state.db.delete_upload(id).await?;
    remove_quietly(&state.attachments.part_path(id)).await;
    Ok(removed)
}

/// One sweep at `now_ms`: uploads no byte reached within the stale time, finished uploads no
/// message took within it, then every blob nothing names.
pub async fn sweep(state: &AppState, now_ms: i64) -> sqlx::Result<()> {
    let before = now_ms - state.config.uploads.stale_after.as_millis() as i64;
    for id in state.db.stale_uploads(before).await? {
        if let Ok(_busy) = state.attachments.begin(id) {
            cancel(state, id).await?;
        }
    }
    state.db.delete_unsent_attachments(before).await?;
    let freed = state.attachments.collect(&state.db, None).await?;
    if freed > 0 {
        tracing::info!(freed, "attachment files freed");
    }
    Ok(())
}

/// The sweeping task: at start, then every quarter of the stale time (at most 10 minutes).
pub async fn run(state: AppState) {
    let every =
        (state.config.uploads.stale_after / 4).clamp(Duration::from_secs(1), Duration::from_secs(600));
    loop {
        tokio::select! {
            result = sweep(&state, crate::db::now_ms()) => {
                if let Err(e) = result {
                    tracing::error!(error = %e, "attachment sweep failed; trying again later");
                }
            }
            _ = state.shutdown.cancelled() => return,
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = state.shutdown.cancelled() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_come_from_bytes_and_only_raster_images_preview() {
        assert_eq!(content_type(b"\x89PNG\r\n\x1a\n0000"), ("image/png", true));
        assert_eq!(content_type(b"\xFF\xD8\xFF\xE0"), ("image/jpeg", true));
        assert_eq!(content_type(b"GIF89a"), ("image/gif", true));
        assert_eq!(content_type(b"%PDF-1.7"), ("application/pdf", false));
        assert_eq!(
            content_type(b"<svg xmlns='http://www.w3.org/2000/svg'/>"),
            ("application/octet-stream", false)
        );
        assert_eq!(content_type(b"<!doctype html><script>"), ("application/octet-stream", false));
    }

    #[test]
    fn only_our_hashes_are_paths() {
        let store = AttachmentStore {
            blobs: PathBuf::from("/d/attachments"),
            uploads: PathBuf::from("/d/uploads"),
            lock: Default::default(),
            busy: Default::default(),
        };
        assert!(store.blob_path("../../etc/passwd").is_none());
        assert!(store.blob_path(&"A".repeat(64)).is_none());
        assert!(store.blob_path(&"a".repeat(64)).is_some());
        let first = store.begin(UploadId(1)).unwrap();
        assert!(store.begin(UploadId(1)).is_err());
        drop(first);
        assert!(store.begin(UploadId(1)).is_ok());
    }
}
