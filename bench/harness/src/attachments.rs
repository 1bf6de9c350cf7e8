//! `attachments`: a 100 MB file uploaded to and downloaded from a real `hearth-server` through
//! its attachment API, beside a plain file copy through the same HTTP stack; and the time the
//! server takes to make the thumbnail of a 24-megapixel JPEG.
//!
//! - Upload: `POST /uploads`, one `PATCH` with the whole body, `POST /uploads/{id}/finish`
//!   (hashing, sniffing, storing into the content-addressed store): the time from the first
//!   request to the attachment returned. Each round changes the file's first bytes, so the
//!   store never deduplicates it.
//! - Download: `GET /attachments/{id}`, the body read to the end and counted.
//! - Peer: this binary's hidden `attach-peer` command, its own process: axum (the same axum,
//!   hyper and tokio as the server) with `PUT /files/{name}` streaming the body to a file through
//!   the same 1 MiB buffered writer, and `GET /files/{name}` serving it with the same 256 KiB
//!   reader stream. No auth, no database, no hashing: a plain file copy over HTTP.
//! - Thumbnail: a 24 MP JPEG (6000×4000, generated with the `image` crate, a different one each
//!   round) is uploaded; `thumbnail_ms` is the time of its `finish` call, which returns once the
//!   thumbnail is stored (hash, sniff, bounded decode on the image pool, resize to 480 px, JPEG
//!   encode, database rows); the thumbnail is then fetched to check it exists. Peer: the same
//!   JPEG decoded whole with `image::load_from_memory`, resized to fit 480 px (Triangle) and
//!   encoded as JPEG quality 82, in this process.
//!
//! Each figure is the median of the rounds, Hearth and the peer alternating in each round.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use hearth_protocol::api::UploadStatus;
use hearth_protocol::model::{Attachment, AttachmentKind};
use reqwest::StatusCode;
use serde_json::json;

use crate::process::{ScratchDir, ServerProcess};
use crate::report::{Metric, fmt_opt, ratio};
use crate::server::{HearthServer, Paths};

const BENCH: &str = "attachments";

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Size of the uploaded and downloaded file, in MB (10^6 bytes).
    #[arg(long, env = "BENCH_ATTACH_MB", default_value_t = 100)]
    pub size_mb: u64,
    /// Rounds of upload/download (Hearth and the peer each round); the median is reported.
    #[arg(long, env = "BENCH_ATTACH_ROUNDS", default_value_t = 3)]
    pub rounds: usize,
    /// Rounds of the thumbnail measurement (a new JPEG each).
    #[arg(long, env = "BENCH_ATTACH_THUMB_ROUNDS", default_value_t = 3)]
    pub thumb_rounds: usize,
    /// Width and height of the JPEG, in pixels (24 megapixels by default).
    #[arg(long, env = "BENCH_ATTACH_JPEG", default_value = "6000x4000")]
    pub jpeg: String,
}

#[derive(Debug, Clone, clap::Args)]
pub struct PeerArgs {
    /// Where the peer keeps its files.
    #[arg(long)]
    pub dir: PathBuf,
    /// Where to write the bound address.
    #[arg(long)]
    pub addr_file: PathBuf,
}

/// Longer side of the server's thumbnails (signaling-server's `attachments::THUMBNAIL_FIT`).
const THUMBNAIL_FIT: u32 = hearth_server::attachments::THUMBNAIL_FIT;

pub async fn run(paths: &Paths, args: &Args) -> Result<Vec<Metric>> {
    ensure!(
        args.size_mb > 0 && args.rounds > 0 && args.thumb_rounds > 0,
        "sizes and rounds must be positive"
    );
    let (jpeg_w, jpeg_h) = parse_size(&args.jpeg)?;
    let size = args.size_mb * 1_000_000;

    let server = HearthServer::start(paths, "attachments", &[]).await?;
    let group = server.bootstrap(0, "files").await?;
    let token = group.admin.access_token.clone();
    let http = client()?;
    let base = format!("http://{}/api/v1", server.addr);
    // The default limit is 25 MB a file: raise it as an admin would.
    let resp = http
        .patch(format!("{base}/server/settings"))
        .bearer_auth(&token)
        .json(&json!({"max_upload_bytes": size.max(64_000_000) * 2}))
        .send()
        .await?;
    ensure!(resp.status().is_success(), "raising max_upload_bytes: HTTP {}", resp.status());
    let hearth = HearthApi { http: http.clone(), base, token };

    let peer_dir = ScratchDir::new("attachments-peer")?;
    let peer = PeerServer::start(paths, peer_dir.path()).await?;
    let peer_base = format!("http://{}", peer.addr);

    eprintln!(
        "== attachments: {} MB file, {} rounds; Hearth and a plain axum file copy alternate",
        args.size_mb, args.rounds
    );
    let mut data = pseudo_random(size as usize);
    let (mut up, mut up_peer, mut down, mut down_peer) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 0..args.rounds {
        // A different file each round: the content-addressed store must not deduplicate it.
        data[..8].copy_from_slice(&(round as u64 + 1).to_le_bytes());

        let body = bytes_of(&data);
        let started = Instant::now();
        let attachment = hearth.upload(&format!("big-{round}.bin"), body).await?;
        let t_up = started.elapsed();
        ensure!(attachment.size == size, "Hearth stored {} bytes of {size}", attachment.size);

        let body = bytes_of(&data);
        let started = Instant::now();
        let resp = http.put(format!("{peer_base}/files/big-{round}.bin")).body(body).send().await?;
        ensure!(resp.status().is_success(), "peer upload: HTTP {}", resp.status());
        let t_up_peer = started.elapsed();

        let started = Instant::now();
        let got = hearth.download(&format!("/attachments/{}", attachment.id)).await?;
        let t_down = started.elapsed();
        ensure!(got == size, "Hearth served {got} bytes of {size}");

        let started = Instant::now();
        let got = read_all(http.get(format!("{peer_base}/files/big-{round}.bin"))).await?;
        let t_down_peer = started.elapsed();
        ensure!(got == size, "the peer served {got} bytes of {size}");

        let mb = size as f64 / 1e6;
        let rates = [t_up, t_up_peer, t_down, t_down_peer].map(|t| mb / t.as_secs_f64());
        eprintln!(
            "  round {}: upload {:.0} MB/s (peer {:.0}), download {:.0} MB/s (peer {:.0})",
            round + 1,
            rates[0],
            rates[1],
            rates[2],
            rates[3]
        );
        up.push(rates[0]);
        up_peer.push(rates[1]);
        down.push(rates[2]);
        down_peer.push(rates[3]);
        // Keep the disk use flat: the peer's copy is not needed any more.
        let _ = std::fs::remove_file(peer_dir.path().join(format!("big-{round}.bin")));
    }
    drop(data);

    eprintln!("== thumbnail of a {jpeg_w}x{jpeg_h} JPEG, {} rounds", args.thumb_rounds);
    let (mut thumb, mut thumb_peer) = (Vec::new(), Vec::new());
    for round in 0..args.thumb_rounds {
        let jpeg = tokio::task::spawn_blocking(move || photo(jpeg_w, jpeg_h, round as u32)).await??;
        let jpeg_len = jpeg.len();
        let body = reqwest::Body::from(jpeg.clone());
        let status = hearth.create(&format!("photo-{round}.jpg"), jpeg_len as u64).await?;
        hearth.append(&status, body).await?;
        let started = Instant::now();
        let attachment = hearth.finish(&status).await?;
        let t_thumb = started.elapsed();
        ensure!(
            attachment.kind == AttachmentKind::Image && attachment.thumbnail,
            "the server made no thumbnail of the JPEG ({:?}, thumbnail {})",
            attachment.kind,
            attachment.thumbnail
        );
        let got = hearth.download(&format!("/attachments/{}/thumbnail", attachment.id)).await?;
        ensure!(got > 0, "the thumbnail is empty");

        let started = Instant::now();
        let peer_bytes = tokio::task::spawn_blocking(move || plain_thumbnail(&jpeg)).await??;
        let t_peer = started.elapsed();
        ensure!(peer_bytes > 0, "the peer's thumbnail is empty");

        let (ms, peer_ms) = (t_thumb.as_secs_f64() * 1e3, t_peer.as_secs_f64() * 1e3);
        eprintln!(
            "  round {}: {:.1} MB JPEG, Hearth finish with thumbnail {ms:.0} ms, image crate decode+resize+encode {peer_ms:.0} ms",
            round + 1,
            jpeg_len as f64 / 1e6
        );
        thumb.push(ms);
        thumb_peer.push(peer_ms);
    }

    peer.process.stop().await?;
    server.stop().await?;

    let med = |v: &mut Vec<f64>| median(v);
    let (up, up_peer) = (med(&mut up), med(&mut up_peer));
    let (down, down_peer) = (med(&mut down), med(&mut down_peer));
    let (thumb, thumb_peer) = (med(&mut thumb), med(&mut thumb_peer));
    eprintln!(
        "upload   {} MB/s vs plain axum copy {} MB/s ({}x)",
        fmt_opt(up, 0),
        fmt_opt(up_peer, 0),
        fmt_opt(ratio(up, up_peer), 2)
    );
    eprintln!(
        "download {} MB/s vs plain axum copy {} MB/s ({}x)",
        fmt_opt(down, 0),
        fmt_opt(down_peer, 0),
        fmt_opt(ratio(down, down_peer), 2)
    );
    eprintln!(
        "thumbnail {} ms (upload finish to thumbnail stored) vs image crate alone {} ms",
        fmt_opt(thumb, 0),
        fmt_opt(thumb_peer, 0)
    );
    let peer_name = "axum 0.8 file copy";
    Ok(vec![
        Metric::new(BENCH, "upload_mb_s", up, "MB/s").peer(peer_name, up_peer),
        Metric::new(BENCH, "download_mb_s", down, "MB/s").peer(peer_name, down_peer),
        Metric::new(BENCH, "thumbnail_ms", thumb, "ms").peer("image 0.25 decode+resize+encode", thumb_peer),
    ])
}

/// The middle value (the mean of the two middle ones for an even count).
fn median(values: &mut Vec<f64>) -> Option<f64> {
    values.retain(|v| v.is_finite());
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(values[n / 2]),
        _ => Some((values[n / 2 - 1] + values[n / 2]) / 2.0),
    }
}

fn parse_size(text: &str) -> Result<(u32, u32)> {
    let (w, h) = text.split_once('x').context("--jpeg takes WIDTHxHEIGHT")?;
    let (w, h): (u32, u32) = (w.trim().parse()?, h.trim().parse()?);
    ensure!(w > 0 && h > 0, "--jpeg sides must be positive");
    Ok((w, h))
}

fn client() -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .no_proxy()
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(600))
        .build()
        .context("building HTTP client")
}

/// Incompressible bytes (xorshift), made once.
fn pseudo_random(len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A body of its own for each request (the copy is made before the clock starts).
fn bytes_of(data: &[u8]) -> reqwest::Body {
    reqwest::Body::from(data.to_vec())
}

/// A photo-like JPEG (gradients and texture, so it does not compress to nothing), different
/// for each `seed`.
fn photo(w: u32, h: u32, seed: u32) -> Result<Vec<u8>> {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        let n = x.wrapping_mul(2_654_435_761).wrapping_add(y.wrapping_mul(40_503)).wrapping_add(seed) >> 28;
        image::Rgb([((x * 255) / w) as u8 ^ n as u8, ((y * 255) / h) as u8, ((x + y + seed) % 256) as u8])
    });
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90).encode_image(&img)?;
    Ok(out)
}

/// The peer of the thumbnail step: the image crate's plain way, whole decode, resize, encode.
fn plain_thumbnail(jpeg: &[u8]) -> Result<usize> {
    let image = image::load_from_memory_with_format(jpeg, image::ImageFormat::Jpeg)?;
    let small = image.resize(THUMBNAIL_FIT, THUMBNAIL_FIT, image::imageops::FilterType::Triangle).into_rgb8();
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 82).encode_image(&small)?;
    Ok(out.len())
}

/// Reads a response body to its end without keeping it; the byte count.
async fn read_all(req: reqwest::RequestBuilder) -> Result<u64> {
    let mut resp = req.send().await?;
    if !resp.status().is_success() {
        bail!("HTTP {}", resp.status());
    }
    let mut n = 0u64;
    while let Some(chunk) = resp.chunk().await? {
        n += chunk.len() as u64;
    }
    Ok(n)
}

/// Hearth's upload and download API.
struct HearthApi {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl HearthApi {
    async fn create(&self, name: &str, size: u64) -> Result<UploadStatus> {
        let resp = self
            .http
            .post(format!("{}/uploads", self.base))
            .bearer_auth(&self.token)
            .json(&json!({"name": name, "size": size}))
            .send()
            .await?;
        ensure!(resp.status() == StatusCode::CREATED, "POST /uploads: HTTP {}", resp.status());
        Ok(resp.json().await?)
    }

    async fn append(&self, status: &UploadStatus, body: reqwest::Body) -> Result<()> {
        let resp = self
            .http
            .patch(format!("{}/uploads/{}", self.base, status.id))
            .bearer_auth(&self.token)
            .header("Upload-Offset", status.offset.to_string())
            .header("Content-Type", "application/offset+octet-stream")
            .body(body)
            .send()
            .await?;
        ensure!(resp.status() == StatusCode::NO_CONTENT, "PATCH /uploads: HTTP {}", resp.status());
        Ok(())
    }

    async fn finish(&self, status: &UploadStatus) -> Result<Attachment> {
        let resp = self
            .http
            .post(format!("{}/uploads/{}/finish", self.base, status.id))
            .bearer_auth(&self.token)
            .send()
            .await?;
        ensure!(resp.status() == StatusCode::CREATED, "finishing the upload: HTTP {}", resp.status());
        Ok(resp.json().await?)
    }

    async fn upload(&self, name: &str, body: reqwest::Body) -> Result<Attachment> {
        let len = body.as_bytes().map(|b| b.len() as u64).context("an in-memory body")?;
        let status = self.create(name, len).await?;
        self.append(&status, body).await?;
        self.finish(&status).await
    }

    async fn download(&self, path: &str) -> Result<u64> {
        read_all(self.http.get(format!("{}{path}", self.base)).bearer_auth(&self.token))
            .await
            .with_context(|| format!("GET {path}"))
    }
}

/// The peer process, stopped when dropped.
struct PeerServer {
    process: ServerProcess,
    addr: SocketAddr,
}

impl PeerServer {
    async fn start(paths: &Paths, dir: &Path) -> Result<Self> {
        let addr_file = dir.join("peer.addr");
        std::fs::create_dir_all(&paths.out_dir)?;
        let log_path = paths.out_dir.join("attachments.peer.log");
        let me = std::env::current_exe().context("finding the harness binary")?;
        let args = vec![
            "attach-peer".to_owned(),
            "--dir".to_owned(),
            dir.display().to_string(),
            "--addr-file".to_owned(),
            addr_file.display().to_string(),
        ];
        let mut process = ServerProcess::spawn("attachments peer", &me, &args, &[], &log_path)?;
        let text = process.wait_for_file(&addr_file, Duration::from_secs(30)).await?;
        let addr = text.parse().with_context(|| format!("peer addr file holds {text:?}"))?;
        Ok(PeerServer { process, addr })
    }
}

/// The peer: a plain file copy over the same HTTP stack as the server.
pub async fn serve_peer(args: &PeerArgs) -> Result<()> {
    use axum::Router;
    use axum::routing::get;

    let dir = args.dir.clone();
    let app = Router::new()
        .route("/files/{name}", get(peer_get).put(peer_put))
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(dir);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let tmp = args.addr_file.with_extension("tmp");
    std::fs::write(&tmp, listener.local_addr()?.to_string())?;
    std::fs::rename(&tmp, &args.addr_file)?;
    axum::serve(listener, app).await?;
    Ok(())
}

fn safe_name(name: &str) -> Option<&str> {
    (!name.is_empty()
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        && !name.starts_with('.'))
    .then_some(name)
}

async fn peer_put(
    axum::extract::State(dir): axum::extract::State<PathBuf>,
    axum::extract::Path(name): axum::extract::Path<String>,
    body: axum::body::Body,
) -> axum::http::StatusCode {
    use futures_util::StreamExt;
    use tokio::io::AsyncWriteExt;
    let Some(name) = safe_name(&name) else { return axum::http::StatusCode::BAD_REQUEST };
    let Ok(file) = tokio::fs::File::create(dir.join(name)).await else {
        return axum::http::StatusCode::INTERNAL_SERVER_ERROR;
    };
    // The same buffered writer as the server's upload append.
    let mut file = tokio::io::BufWriter::with_capacity(1 << 20, file);
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let Ok(chunk) = chunk else { return axum::http::StatusCode::BAD_REQUEST };
        if file.write_all(&chunk).await.is_err() {
            return axum::http::StatusCode::INTERNAL_SERVER_ERROR;
        }
    }
    if file.flush().await.is_err() {
        return axum::http::StatusCode::INTERNAL_SERVER_ERROR;
    }
    axum::http::StatusCode::NO_CONTENT
}

async fn peer_get(
    axum::extract::State(dir): axum::extract::State<PathBuf>,
    axum::extract::Path(name): axum::extract::Path<String>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let Some(name) = safe_name(&name) else { return axum::http::StatusCode::BAD_REQUEST.into_response() };
    let Ok(file) = tokio::fs::File::open(dir.join(name)).await else {
        return axum::http::StatusCode::NOT_FOUND.into_response();
    };
    let Ok(meta) = file.metadata().await else {
        return axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    // The same reader stream as the server's download.
    let body = axum::body::Body::from_stream(tokio_util::io::ReaderStream::with_capacity(file, 256 * 1024));
    let mut response = body.into_response();
    response
        .headers_mut()
        .insert(axum::http::header::CONTENT_LENGTH, axum::http::HeaderValue::from(meta.len()));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_even_and_nothing() {
        assert_eq!(median(&mut vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&mut vec![4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&mut vec![f64::NAN]), None);
    }

    #[test]
    fn jpeg_size_and_peer_names_are_checked() {
        assert_eq!(parse_size("6000x4000").unwrap(), (6000, 4000));
        assert!(parse_size("6000").is_err() && parse_size("0x10").is_err());
        assert_eq!(safe_name("big-1.bin"), Some("big-1.bin"));
        assert_eq!(safe_name("../etc"), None);
        assert_eq!(safe_name(".hidden"), None);
    }

    #[test]
    fn the_generated_photo_is_a_jpeg_the_peer_can_thumbnail() {
        let jpeg = photo(640, 480, 1).unwrap();
        assert_eq!(&jpeg[..2], &[0xFF, 0xD8]);
        assert_ne!(jpeg, photo(640, 480, 2).unwrap());
        assert!(plain_thumbnail(&jpeg).unwrap() > 0);
    }
}
