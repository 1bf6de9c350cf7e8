//! The app's icons all come from one source image, `icons/hearth.png`: every platform size in
//! `src-tauri/icons` (PNGs, and the PNG images inside `icon.ico`) is that image scaled down
//! (`tauri icon icons/hearth.png`), so a changed source without regenerated icons, or an icon
//! replaced by hand, fails here. The tray icons are drawn apart (`icons/draw.py`: a smaller
//! flame, and a badge for unread messages) and are not compared.

use std::path::{Path, PathBuf};

use image::imageops::FilterType;
use image::{DynamicImage, RgbaImage};

/// The largest mean difference per channel (0–255, colour weighted by alpha) between an icon
/// and the source scaled to its size: resampling filters differ by a few levels, another
/// picture by tens.
const SAME_PICTURE: f64 = 6.0;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn source() -> DynamicImage {
    image::open(root().join("icons/hearth.png")).expect("icons/hearth.png is a PNG")
}

/// Mean absolute difference per channel, colours premultiplied by alpha (a transparent pixel's
/// colour does not matter).
fn difference(a: &RgbaImage, b: &RgbaImage) -> f64 {
    assert_eq!(a.dimensions(), b.dimensions());
    let mut total = 0.0;
    for (p, q) in a.pixels().zip(b.pixels()) {
        let (pa, qa) = (f64::from(p[3]) / 255.0, f64::from(q[3]) / 255.0);
        for c in 0..3 {
            total += (f64::from(p[c]) * pa - f64::from(q[c]) * qa).abs();
        }
        total += (f64::from(p[3]) - f64::from(q[3])).abs();
    }
    total / (f64::from(a.width()) * f64::from(a.height()) * 4.0)
}

fn scaled(source: &DynamicImage, width: u32, height: u32) -> RgbaImage {
    source.resize_exact(width, height, FilterType::Lanczos3).to_rgba8()
}

/// The PNG images inside an ICO file (`tauri icon` writes every size as PNG).
fn ico_pngs(data: &[u8]) -> Vec<RgbaImage> {
    assert_eq!(data.get(..4), Some(&[0u8, 0, 1, 0][..]), "an ICO header");
    let count = usize::from(u16::from_le_bytes([data[4], data[5]]));
    (0..count)
        .map(|i| {
            let entry = &data[6 + 16 * i..6 + 16 * (i + 1)];
            let size = u32::from_le_bytes(entry[8..12].try_into().expect("4 bytes")) as usize;
            let offset = u32::from_le_bytes(entry[12..16].try_into().expect("4 bytes")) as usize;
            let bytes = &data[offset..offset + size];
            assert!(bytes.starts_with(b"\x89PNG"), "ICO image {i} is a PNG");
            image::load_from_memory(bytes).expect("ICO image decodes").to_rgba8()
        })
        .collect()
}

#[test]
fn every_png_icon_is_the_source_image_scaled() {
    let source = source();
    let mut compared = Vec::new();
    for entry in std::fs::read_dir(root().join("src-tauri/icons")).expect("src-tauri/icons") {
        let path = entry.expect("dir entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
        if !name.ends_with(".png") || name.starts_with("tray") {
            continue;
        }
        let icon = image::open(&path).unwrap_or_else(|e| panic!("{name}: {e}")).to_rgba8();
        let (width, height) = icon.dimensions();
        assert_eq!(width, height, "{name} is square");
        let diff = difference(&icon, &scaled(&source, width, height));
        assert!(diff <= SAME_PICTURE, "{name} is not icons/hearth.png scaled (difference {diff:.1})");
        compared.push(name);
    }
    for needed in ["32x32.png", "128x128.png", "128x128@2x.png", "icon.png"] {
        assert!(compared.iter().any(|n| n == needed), "{needed} is missing: {compared:?}");
    }
}

#[test]
fn the_windows_icon_holds_the_source_image_at_every_size() {
    let source = source();
    let data = std::fs::read(root().join("src-tauri/icons/icon.ico")).expect("icon.ico");
    let images = ico_pngs(&data);
    let mut sizes: Vec<u32> = images.iter().map(|i| i.width()).collect();
    sizes.sort_unstable();
    for size in [16, 32, 256] {
        assert!(sizes.contains(&size), "icon.ico has {size} px: {sizes:?}");
    }
    for icon in &images {
        let diff = difference(icon, &scaled(&source, icon.width(), icon.height()));
        assert!(
            diff <= SAME_PICTURE,
            "the {} px image of icon.ico differs (difference {diff:.1})",
            icon.width()
        );
    }
}

/// The measure tells pictures apart: the source turned upside down is far from the icons.
#[test]
fn the_comparison_tells_another_picture_apart() {
    let source = source();
    let icon = image::open(root().join("src-tauri/icons/128x128.png")).expect("128x128.png").to_rgba8();
    let other = scaled(&source.flipv(), 128, 128);
    let diff = difference(&icon, &other);
    assert!(diff > 2.0 * SAME_PICTURE, "an upside-down icon is only {diff:.1} away");
}
