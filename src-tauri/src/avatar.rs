//! Preparing a profile picture on this machine: the file is read and decoded here (never by the
//! webview) with size and memory limits, cropped square and scaled to 256 px, and sent as PNG.
//! The server decodes and re-encodes it again; this keeps uploads small and odd files local.

use std::io::{Cursor, Read};
use std::path::Path;

use image::imageops::FilterType;
use image::{ImageFormat, ImageReader, Limits};

/// Edge of the uploaded square, in pixels.
pub const AVATAR_SIZE: u32 = 256;
/// Largest file we read.
pub const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;
/// Largest picture we decode, per side.
const MAX_SIDE: u32 = 8192;
/// Most memory the decoder may allocate.
const MAX_ALLOC: u64 = 256 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum AvatarError {
    #[error("the file is larger than {} MB", MAX_FILE_BYTES / (1024 * 1024))]
    TooLarge,
    #[error("the file is not a PNG, JPEG, GIF or WebP picture, or it is too large")]
    NotAnImage,
    #[error("cannot read the file: {0}")]
    Io(#[from] std::io::Error),
}

/// Reads the picture at `path` (capped at [`MAX_FILE_BYTES`]) and prepares it.
pub fn prepare_file(path: &Path) -> Result<Vec<u8>, AvatarError> {
    let file = std::fs::File::open(path)?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(AvatarError::TooLarge);
    }
    prepare(&bytes)
}

/// Decodes with limits, crops to the centred square, scales to [`AVATAR_SIZE`], encodes PNG.
pub fn prepare(bytes: &[u8]) -> Result<Vec<u8>, AvatarError> {
    let mut reader = ImageReader::new(Cursor::new(bytes)).with_guessed_format()?;
    if !matches!(
        reader.format(),
        Some(ImageFormat::Png | ImageFormat::Jpeg | ImageFormat::Gif | ImageFormat::WebP)
    ) {
        return Err(AvatarError::NotAnImage);
    }
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_ALLOC);
    reader.limits(limits);
    let image = reader.decode().map_err(|_| AvatarError::NotAnImage)?;
    let square = image.resize_to_fill(AVATAR_SIZE, AVATAR_SIZE, FilterType::Lanczos3);
    let mut out = Vec::new();
    square.write_to(&mut Cursor::new(&mut out), ImageFormat::Png).map_err(|_| AvatarError::NotAnImage)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{DynamicImage, GenericImageView, RgbaImage};

    fn encoded(w: u32, h: u32, format: ImageFormat) -> Vec<u8> {
        let img = DynamicImage::ImageRgba8(RgbaImage::from_pixel(w, h, image::Rgba([200, 80, 10, 255])));
        let img = if format == ImageFormat::Jpeg { DynamicImage::ImageRgb8(img.to_rgb8()) } else { img };
        let mut out = Vec::new();
        img.write_to(&mut Cursor::new(&mut out), format).unwrap();
        out
    }

    #[test]
    fn wide_pictures_become_256_px_squares() {
        let png = prepare(&encoded(800, 300, ImageFormat::Png)).unwrap();
        let out = image::load_from_memory_with_format(&png, ImageFormat::Png).unwrap();
        assert_eq!(out.dimensions(), (AVATAR_SIZE, AVATAR_SIZE));
    }

    #[test]
    fn small_jpegs_are_scaled_up_to_png() {
        let png = prepare(&encoded(40, 64, ImageFormat::Jpeg)).unwrap();
        assert_eq!(image::guess_format(&png).unwrap(), ImageFormat::Png);
        assert_eq!(image::load_from_memory(&png).unwrap().dimensions(), (256, 256));
    }

    #[test]
    fn non_images_are_refused() {
        assert!(matches!(prepare(b"#!/bin/sh\necho hi\n"), Err(AvatarError::NotAnImage)));
        let mut truncated = encoded(64, 64, ImageFormat::Png);
        truncated.truncate(40);
        assert!(matches!(prepare(&truncated), Err(AvatarError::NotAnImage)));
    }

    #[test]
    fn huge_dimensions_are_refused_before_decoding() {
        // A valid PNG header that claims 20000 x 20000 pixels.
        let mut png = encoded(1, 1, ImageFormat::Png);
        png[16..20].copy_from_slice(&20000u32.to_be_bytes());
        png[20..24].copy_from_slice(&20000u32.to_be_bytes());
        assert!(matches!(prepare(&png), Err(AvatarError::NotAnImage)));
    }

    #[test]
    fn files_over_the_cap_are_refused() {
        let path = std::env::temp_dir().join(format!("hearth-avatar-big-{}", std::process::id()));
        std::fs::write(&path, vec![0u8; (MAX_FILE_BYTES + 1) as usize]).unwrap();
        assert!(matches!(prepare_file(&path), Err(AvatarError::TooLarge)));
        std::fs::remove_file(path).unwrap();
    }
}
