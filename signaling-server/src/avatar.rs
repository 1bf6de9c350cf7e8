//! Avatars: an upload is decoded with the `image` crate (with size limits, so a decompression
//! bomb is refused), cropped to a square, resized to 256 px and re-encoded as PNG. Nothing of
//! the original file (metadata, trailing bytes) survives. Stored by content hash. The server's
//! icon goes through the same processing and is stored apart (it is public).

use std::io::Cursor;
use std::path::{Path, PathBuf};

use anyhow::Context;
use hearth_protocol::ErrorCode;
use image::imageops::FilterType;
use image::{ImageFormat, ImageReader, Limits};
use sha2::Digest;

use axum::body::Body;

use crate::error::AppError;
use crate::state::AppState;

pub const SIZE: u32 = 256;
const MAX_DIMENSION: u32 = 8192;

/// Turns uploaded bytes into the stored PNG and its hash.
pub fn process(bytes: &[u8]) -> Result<(String, Vec<u8>), AppError> {
    let not_image =
        || AppError::new(ErrorCode::UnsupportedMedia, "the file is not a PNG, JPEG, GIF or WebP image");
    let mut reader = ImageReader::new(Cursor::new(bytes)).with_guessed_format().map_err(|_| not_image())?;
    match reader.format() {
        Some(ImageFormat::Png | ImageFormat::Jpeg | ImageFormat::Gif | ImageFormat::WebP) => {}
        _ => return Err(not_image()),
    }
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_DIMENSION);
    limits.max_image_height = Some(MAX_DIMENSION);
    limits.max_alloc = Some(256 * 1024 * 1024);
    reader.limits(limits);
    let image = reader.decode().map_err(|_| not_image())?;
    let square = image.resize_to_fill(SIZE, SIZE, FilterType::Triangle);
    let mut png = Vec::new();
    square.write_to(&mut Cursor::new(&mut png), ImageFormat::Png).context("encoding avatar")?;
    let hash = hex::encode(&sha2::Sha256::digest(&png)[..16]);
    Ok((hash, png))
}

/// Reads an uploaded image (at most `--max-avatar-bytes`) and processes it off the async
/// threads: the stored PNG and its hash.
pub async fn receive(state: &AppState, body: Body) -> Result<(String, Vec<u8>), AppError> {
    let limit = state.config.limits.max_avatar_bytes;
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|_| {
        AppError::new(ErrorCode::PayloadTooLarge, format!("images are limited to {limit} bytes"))
    })?;
    tokio::task::spawn_blocking(move || process(&bytes))
        .await
        .map_err(|e| AppError::Internal(anyhow::Error::new(e).context("image task")))?
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
pub fn path(data_dir: &Path, hash: &str) -> Option<PathBuf> {
    stored(data_dir, "avatars", hash)
}

/// Where a server icon with this hash lives (apart from avatars: icons are public).
pub fn icon_path(data_dir: &Path, hash: &str) -> Option<PathBuf> {
    stored(data_dir, "icons", hash)
}

fn stored(data_dir: &Path, dir: &str, hash: &str) -> Option<PathBuf> {
    (hash.len() == 32 && hash.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| data_dir.join(dir).join(format!("{hash}.png")))
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
