//! Avatars: an upload is decoded by [`crate::media`] (bounded: pixels checked from the header,
//! decoded small, on the image pool), cropped to a square, resized to 256 px and re-encoded as
//! PNG. Nothing of the original file (metadata, trailing bytes) survives. Stored by content hash.
//! The server's icon goes through the same processing and is stored apart (it is public).

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::time::Instant;

use axum::body::Body;
use image::imageops::FilterType;
use image::{DynamicImage, ImageFormat};
use sha2::Digest;

use crate::error::AppError;
use crate::media::{self, DecodeLimits, MediaError};
use crate::state::AppState;

pub const SIZE: u32 = 256;

/// Turns uploaded bytes into the stored PNG and its hash. Runs on the image pool
/// ([`crate::media::ImagePool::run`]), which gives the limits and the deadline.
pub fn process(
    bytes: &[u8],
    limits: &DecodeLimits,
    deadline: Instant,
) -> Result<(String, Vec<u8>), MediaError> {
    // Twice the final size, so that the square crop still has pixels to spare.
    let image = media::decode_fitted(Cursor::new(bytes), SIZE * 2, limits, deadline)?;
    let square = DynamicImage::ImageRgba8(image).resize_to_fill(SIZE, SIZE, FilterType::Triangle);
    let mut png = Vec::new();
    // Encoding 256 × 256 pixels into memory fails only if the encoder has a bug.
    square.write_to(&mut Cursor::new(&mut png), ImageFormat::Png).map_err(|_| MediaError::NotAnImage)?;
    let hash = hex::encode(&sha2::Sha256::digest(&png)[..16]);
    Ok((hash, png))
}

/// Reads an uploaded image (at most `--max-avatar-bytes`) and processes it on the image pool:
/// the stored PNG and its hash. The pool's place is taken before the body is read, so the
/// bodies of uploads waiting to be decoded are bounded (see [`crate::media`]).
pub async fn receive(state: &AppState, body: Body) -> Result<(String, Vec<u8>), AppError> {
    let limit = state.config.limits.max_avatar_bytes;
    let admission = match state.images.admit() {
        Ok(admission) => admission,
        Err(busy) => {
            // Read the body to nowhere before answering, so that the client, still sending,
            // hears "busy" instead of a reset connection. Nothing of it is kept.
            discard(body, limit).await;
            return Err(busy.into());
        }
    };
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|_| {
        AppError::new(
            hearth_protocol::ErrorCode::PayloadTooLarge,
            format!("images are limited to {limit} bytes"),
        )
    })?;
    Ok(state.images.run(admission, move |limits, deadline| process(&bytes, limits, deadline)).await?)
}

/// Reads a request body to its end (at most `limit` bytes) without keeping it.
async fn discard(body: Body, limit: usize) {
    use futures_util::StreamExt;
    let mut stream = body.into_data_stream();
    let mut read = 0;
    while let Some(Ok(chunk)) = stream.next().await {
        read += chunk.len();
        if read > limit {
            break;
        }
    }
}

/// Writes a processed image where [`path`] or [`icon_path`] says.
pub async fn store(path: &Option<PathBuf>, png: &[u8]) -> Result<(), AppError> {
    let path = path.as_ref().ok_or_else(|| AppError::Internal(anyhow::anyhow!("bad image hash")))?;
    if let Some(dir) = path.parent() {
        tokio::fs::create_dir_all(dir).await.map_err(|e| AppError::Internal(e.into()))?;
    }
    tokio::fs::write(path, png).await.map_err(|e| AppError::Internal(e.into()))
}

/// Where an avatar with this hash lives; `None` for anything that is not a hash we made.
pub fn path(files_dir: &Path, hash: &str) -> Option<PathBuf> {
    stored(files_dir, "avatars", hash)
}

/// Where a server icon with this hash lives (apart from avatars: icons are public).
pub fn icon_path(files_dir: &Path, hash: &str) -> Option<PathBuf> {
    stored(files_dir, "icons", hash)
}

fn stored(files_dir: &Path, dir: &str, hash: &str) -> Option<PathBuf> {
    (hash.len() == 32 && hash.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| files_dir.join(dir).join(format!("{hash}.png")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(w: u32, h: u32) -> Vec<u8> {
        let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([x as u8, y as u8, 7]));
        let mut out = Vec::new();
        img.write_to(&mut Cursor::new(&mut out), ImageFormat::Png).unwrap();
        out
    }

    fn process(bytes: &[u8]) -> Result<(String, Vec<u8>), MediaError> {
        super::process(bytes, &DecodeLimits::default(), Instant::now() + std::time::Duration::from_secs(60))
    }

    #[test]
    fn images_are_squared_resized_and_reencoded() {
        let (hash, out) = process(&png(640, 480)).unwrap();
        let back = image::load_from_memory(&out).unwrap();
        assert_eq!((back.width(), back.height()), (SIZE, SIZE));
        assert_eq!(hash.len(), 32);
    }

    #[test]
    fn non_images_and_truncated_images_are_refused() {
        assert!(process(b"MZ this is an exe").is_err());
        assert!(process(b"<svg xmlns='http://www.w3.org/2000/svg'/>").is_err());
        let mut cut = png(64, 64);
        cut.truncate(cut.len() / 2);
        assert!(process(&cut).is_err());
    }

    #[test]
    fn hashes_outside_our_form_are_not_paths() {
        assert!(path(Path::new("/d"), "../../etc/passwd").is_none());
        assert!(path(Path::new("/d"), "0123456789abcdef0123456789abcdef").is_some());
    }
}
