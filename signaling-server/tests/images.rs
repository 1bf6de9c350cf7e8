//! Image uploads against the real server: bounded decoding (`signaling-server/src/media.rs`).
//! A file that lies about its size is refused from its header, and any number of concurrent
//! uploads of images that are expensive to decode keeps the server's memory within the bound
//! the image pool states (workers × decode budget + waiting uploads × largest upload).

mod common;

use std::io::Cursor;

use common::{Backend, TestServer};
use reqwest::{Method, StatusCode};

fn encode(image: &image::DynamicImage, format: image::ImageFormat) -> Vec<u8> {
    let mut out = Vec::new();
    image.write_to(&mut Cursor::new(&mut out), format).expect("encoding a test image");
    out
}

/// A 1 × 1 PNG whose header claims `w × h` (the header's CRC fixed, so only the size lies).
fn png_claiming(w: u32, h: u32) -> Vec<u8> {
    let mut bytes = encode(&image::DynamicImage::new_rgb8(1, 1), image::ImageFormat::Png);
    bytes[16..20].copy_from_slice(&w.to_be_bytes());
    bytes[20..24].copy_from_slice(&h.to_be_bytes());
    let crc = crc32fast::hash(&bytes[12..29]);
    bytes[29..33].copy_from_slice(&crc.to_be_bytes());
    bytes
}

/// Kibibytes the kernel reports for a process (`VmRSS`, `VmHWM` = peak RSS).
fn proc_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("reading /proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.trim().strip_suffix("kB")?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_that_lies_about_its_size_is_refused_from_its_header() {
    let server = TestServer::start(Backend::Sqlite).await;
    let admin = server.admin().await;
    let bomb = png_claiming(60_000, 60_000);
    assert!(bomb.len() < 100);
    let (status, body) = admin.send_bytes(Method::PUT, "/users/@me/avatar", bomb).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(body["code"], "payload_too_large");
    // The server is fine and reads a real image right after.
    let photo = encode(&image::DynamicImage::new_rgb8(640, 480), image::ImageFormat::Jpeg);
    let (status, body) = admin.send_bytes(Method::PUT, "/users/@me/avatar", photo).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_image_uploads_keep_the_servers_memory_bounded() {
    // Time is not what this test is about: a busy CI machine must not turn it into a timeout.
    let server = TestServer::start_with(Backend::Sqlite, &["--image-timeout-ms", "120000"]).await;
    let admin = server.admin().await;
    // Small files, big pixels. A 4000 × 4000 PNG is 64 MB as RGBA; a 1800 × 1800 WebP decodes
    // whole (23 MB with its RGBA copy, under the 32 MiB budget). Unbounded, 24 of them at once
    // would take gigabytes.
    let png = encode(&image::DynamicImage::new_luma8(4000, 4000), image::ImageFormat::Png);
    let webp = encode(&image::DynamicImage::new_rgb8(1800, 1800), image::ImageFormat::WebP);
    assert!(png.len() < 1 << 20 && webp.len() < 1 << 20, "test images are small files");

    let pid = server.pid();
    let idle_kib = proc_kib(pid, "VmRSS:");
    let uploads = (0..24).map(|i| {
        let client = admin.clone();
        let body = if i % 2 == 0 { png.clone() } else { webp.clone() };
        tokio::spawn(async move { client.send_bytes(Method::PUT, "/users/@me/avatar", body).await })
    });
    let mut busy = 0;
    for upload in futures_util::future::join_all(uploads).await {
        let (status, body) = upload.expect("upload task");
        match status {
            StatusCode::OK => {}
            StatusCode::SERVICE_UNAVAILABLE => {
                // A full pool says so at once, with when to try again.
                assert_eq!(body["code"], "unavailable", "{body}");
                assert!(body["retry_after_ms"].as_u64().is_some(), "{body}");
                busy += 1;
            }
            other => panic!("upload answered {other}: {body}"),
        }
    }
    let peak_kib = proc_kib(pid, "VmHWM:");
    let growth_mib = peak_kib.saturating_sub(idle_kib) as f64 / 1024.0;
    eprintln!(
        "idle {} MiB, peak {} MiB, growth {growth_mib:.1} MiB, {busy} of 24 told busy",
        idle_kib / 1024,
        peak_kib / 1024
    );
    // The stated bound: 1 worker × 32 MiB + 4 places × the largest upload (here 1 MiB), plus
    // room for the allocator and the HTTP buffers.
    assert!(growth_mib <= 64.0, "server memory grew by {growth_mib:.1} MiB during concurrent image uploads");
    assert!(busy < 24, "some uploads were decoded");

    // Whoever was told "busy" succeeds on a retry.
    let (status, body) = admin.send_bytes(Method::PUT, "/users/@me/avatar", webp).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}
