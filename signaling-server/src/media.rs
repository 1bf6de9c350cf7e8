//! Bounded image decoding: every image the server reads (avatars, the server icon, attachment
//! thumbnails) is decoded here, so that no upload can make the server spend unbounded memory or
//! time.
//!
//! Three bounds, each checked before the work it protects:
//! - **Pixels, from the header.** The format is sniffed from the bytes (PNG, JPEG, GIF, WebP
//!   only); the dimensions and sample layout are read from the header and the memory the decode
//!   would need is computed *before* a pixel is decoded. A 200-byte file that claims to be
//!   60000 × 60000 is refused in microseconds.
//! - **Memory, by decoding small.** Callers ask for an image that fits a box (a 256 px avatar, a
//!   thumbnail). JPEG is decoded with DCT scaling (1/2, 1/4, 1/8), PNG row by row with an area
//!   filter, so the full-size pixels of a big photo or screenshot never exist in memory. GIF,
//!   WebP and interlaced PNG are decoded whole, within [`DecodeLimits::max_alloc`], and refused
//!   beyond it.
//! - **Concurrency and time, by the pool.** [`ImagePool`] runs decodes on a few dedicated
//!   threads with a short queue. An upload takes its place in the pool ([`ImagePool::admit`])
//!   *before* its body is read, so the bytes of waiting uploads are bounded too; a full pool
//!   answers "busy, try again" at once. Input is read through a reader that fails after the
//!   deadline, so a slow decode stops itself, and the caller stops waiting at the deadline.
//!
//! The resulting bound on memory over idle is
//! `(workers + queue) × largest upload + workers × max_alloc` (with the defaults: 4 × 8 MiB +
//! 1 × 32 MiB = 64 MiB), whatever the number of concurrent uploads.

use std::io::{self, BufRead, Read, Seek, SeekFrom};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use hearth_protocol::ErrorCode;
use image::imageops::FilterType;
use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, RgbaImage};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

use crate::error::AppError;

/// Why an image was not decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum MediaError {
    /// Not a PNG, JPEG, GIF or WebP file, or a broken one.
    #[error("not a PNG, JPEG, GIF or WebP image")]
    NotAnImage,
    /// Decoding it would take more pixels or memory than allowed.
    #[error("the image is too large to read")]
    TooLarge,
    /// Decoding did not finish within the time limit.
    #[error("the image took too long to read")]
    TimedOut,
    /// Every place in the pool is taken.
    #[error("busy reading other images")]
    Busy,
}

impl From<MediaError> for AppError {
    fn from(e: MediaError) -> AppError {
        match e {
            MediaError::NotAnImage => {
                AppError::new(ErrorCode::UnsupportedMedia, "the file is not a PNG, JPEG, GIF or WebP image")
            }
            MediaError::TooLarge => AppError::new(
                ErrorCode::PayloadTooLarge,
                "the image is too large to read; use a smaller picture (fewer pixels)",
            ),
            MediaError::TimedOut => {
                AppError::new(ErrorCode::UnsupportedMedia, "the image took too long to read")
            }
            MediaError::Busy => AppError::Client(hearth_protocol::ApiError {
                code: ErrorCode::Unavailable,
                message: "the server is busy reading other images; try again in a moment".into(),
                retry_after_ms: Some(1000),
            }),
        }
    }
}

/// How much one decode may cost.
#[derive(Debug, Clone, Copy)]
pub struct DecodeLimits {
    /// Pixels of the source image (width × height from its header). Even a scaled JPEG decode
    /// reads every coefficient, so this bounds time as well as memory.
    pub max_source_pixels: u64,
    /// Bytes one decode may allocate for pixel data (the decoded image, or a progressive JPEG's
    /// coefficients).
    pub max_alloc: u64,
    /// How long one decode may take.
    pub timeout: Duration,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits { max_source_pixels: 100_000_000, max_alloc: 32 << 20, timeout: Duration::from_secs(5) }
    }
}

/// The formats we read, sniffed from the first bytes (never from a name or a header).
pub fn sniff(bytes: &[u8]) -> Option<ImageFormat> {
    match image::guess_format(bytes).ok()? {
        f @ (ImageFormat::Png | ImageFormat::Jpeg | ImageFormat::Gif | ImageFormat::WebP) => Some(f),
        _ => None,
    }
}

/// Decodes `input` to an image whose longer side is at most `fit` pixels (never enlarged),
/// with the EXIF orientation applied (JPEG, WebP). Runs on the calling thread: call it from
/// [`ImagePool::run`].
pub fn decode_fitted<R: BufRead + Seek>(
    input: R,
    fit: u32,
    limits: &DecodeLimits,
    deadline: Instant,
) -> Result<RgbaImage, MediaError> {
    let mut input = Deadline { inner: input, deadline };
    let format = {
        let head = input.fill_buf().map_err(io_error)?;
        sniff(head).ok_or(MediaError::NotAnImage)?
    };
    let fit = fit.max(1);
    let (image, orientation) = match format {
        ImageFormat::Jpeg => decode_jpeg(&mut input, fit, limits)?,
        ImageFormat::Png => match decode_png_rows(&mut input, fit, limits)? {
            Some(image) => (image, Orientation::NoTransforms),
            None => {
                input.seek(SeekFrom::Start(0)).map_err(io_error)?;
                decode_whole(input, format, limits)?
            }
        },
        _ => decode_whole(input, format, limits)?,
    };
    let mut image = DynamicImage::ImageRgba8(image);
    if image.width() > fit || image.height() > fit {
        image = image.resize(fit, fit, FilterType::Triangle);
    }
    image.apply_orientation(orientation);
    Ok(image.into_rgba8())
}

fn io_error(e: io::Error) -> MediaError {
    if e.kind() == io::ErrorKind::TimedOut { MediaError::TimedOut } else { MediaError::NotAnImage }
}

fn check_source(width: u64, height: u64, limits: &DecodeLimits) -> Result<(), MediaError> {
    if width == 0 || height == 0 {
        return Err(MediaError::NotAnImage);
    }
    if width.saturating_mul(height) > limits.max_source_pixels {
        return Err(MediaError::TooLarge);
    }
    Ok(())
}

fn check_alloc(bytes: u64, limits: &DecodeLimits) -> Result<(), MediaError> {
    if bytes > limits.max_alloc { Err(MediaError::TooLarge) } else { Ok(()) }
}

/// JPEG through `jpeg-decoder` with DCT scaling to the smallest size at least `fit` on one
/// side. Baseline JPEGs are decoded a row of blocks at a time into the scaled output; a
/// progressive one keeps every coefficient until its last scan, so that memory is computed
/// from the frame header and checked first.
fn decode_jpeg<R: BufRead + Seek>(
    input: &mut R,
    fit: u32,
    limits: &DecodeLimits,
) -> Result<(RgbaImage, Orientation), MediaError> {
    let frame = jpeg_frame(input)?;
    input.seek(SeekFrom::Start(0)).map_err(io_error)?;
    check_source(u64::from(frame.width), u64::from(frame.height), limits)?;
    if frame.progressive {
        check_alloc(frame.coefficient_bytes(), limits)?;
    }
    let mut decoder = jpeg_decoder::Decoder::new(input);
    decoder.set_max_decoding_buffer_size(usize::try_from(limits.max_alloc).unwrap_or(usize::MAX));
    decoder.read_info().map_err(jpeg_error)?;
    let request = u16::try_from(fit).unwrap_or(u16::MAX);
    let (width, height) = decoder.scale(request, request).map_err(jpeg_error)?;
    let info = decoder.info().ok_or(MediaError::NotAnImage)?;
    let pixels = u64::from(width) * u64::from(height);
    check_alloc(pixels * (info.pixel_format.pixel_bytes() as u64 + 4), limits)?;
    let data = decoder.decode().map_err(jpeg_error)?;
    let orientation =
        decoder.exif_data().and_then(Orientation::from_exif_chunk).unwrap_or(Orientation::NoTransforms);
    let (width, height) = (u32::from(width), u32::from(height));
    let rgba: Vec<u8> = match info.pixel_format {
        jpeg_decoder::PixelFormat::L8 => data.iter().flat_map(|&l| [l, l, l, 255]).collect(),
        // Big-endian 16-bit luminance: keep the high byte.
        jpeg_decoder::PixelFormat::L16 => {
            data.chunks_exact(2).flat_map(|l| [l[0], l[0], l[0], 255]).collect()
        }
        jpeg_decoder::PixelFormat::RGB24 => {
            data.chunks_exact(3).flat_map(|p| [p[0], p[1], p[2], 255]).collect()
        }
        // Adobe JPEGs store CMYK inverted; the decoder hands them over as stored.
        jpeg_decoder::PixelFormat::CMYK32 => data
            .chunks_exact(4)
            .flat_map(|p| {
                let k = u32::from(p[3]);
                let channel = |c: u8| ((u32::from(c) * k) / 255) as u8;
                [channel(p[0]), channel(p[1]), channel(p[2]), 255]
            })
            .collect(),
    };
    let image = RgbaImage::from_raw(width, height, rgba).ok_or(MediaError::NotAnImage)?;
    Ok((image, orientation))
}

fn jpeg_error(e: jpeg_decoder::Error) -> MediaError {
    match e {
        jpeg_decoder::Error::Io(e) => io_error(e),
        jpeg_decoder::Error::Format(m) if m.contains("exceeds maximum") => MediaError::TooLarge,
        _ => MediaError::NotAnImage,
    }
}

/// What a JPEG's frame header (SOFn) says, read without decoding anything.
#[derive(Debug, Clone, PartialEq, Eq)]
struct JpegFrame {
    width: u16,
    height: u16,
    progressive: bool,
    /// Horizontal and vertical sampling factor of each component.
    sampling: Vec<(u8, u8)>,
}

impl JpegFrame {
    /// Bytes of DCT coefficients a progressive decode holds: 64 × i16 per 8 × 8 block of every
    /// component, at the component's own resolution.
    fn coefficient_bytes(&self) -> u64 {
        let h_max = self.sampling.iter().map(|s| s.0).max().unwrap_or(1).max(1);
        let v_max = self.sampling.iter().map(|s| s.1).max().unwrap_or(1).max(1);
        let mcus_x = u64::from(self.width).div_ceil(8 * u64::from(h_max));
        let mcus_y = u64::from(self.height).div_ceil(8 * u64::from(v_max));
        self.sampling.iter().map(|&(h, v)| mcus_x * u64::from(h) * mcus_y * u64::from(v) * 64 * 2).sum()
    }
}

/// Walks the markers from SOI to the first SOFn.
fn jpeg_frame<R: Read>(input: &mut R) -> Result<JpegFrame, MediaError> {
    fn byte<R: Read>(r: &mut R) -> Result<u8, MediaError> {
        let mut b = [0u8; 1];
        r.read_exact(&mut b).map_err(io_error)?;
        Ok(b[0])
    }
    fn length<R: Read>(r: &mut R) -> Result<usize, MediaError> {
        let len = (usize::from(byte(r)?) << 8) | usize::from(byte(r)?);
        len.checked_sub(2).ok_or(MediaError::NotAnImage)
    }
    if byte(input)? != 0xFF || byte(input)? != 0xD8 {
        return Err(MediaError::NotAnImage);
    }
    loop {
        // Markers may be padded with any number of 0xFF.
        let mut marker = byte(input)?;
        if marker != 0xFF {
            return Err(MediaError::NotAnImage);
        }
        while marker == 0xFF {
            marker = byte(input)?;
        }
        match marker {
            // SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC).
            0xC0..=0xCF if !matches!(marker, 0xC4 | 0xC8 | 0xCC) => {
                let len = length(input)?;
                let mut body = vec![0u8; len];
                input.read_exact(&mut body).map_err(io_error)?;
                let [_precision, h1, h0, w1, w0, count, rest @ ..] = &body[..] else {
                    return Err(MediaError::NotAnImage);
                };
                let sampling: Vec<(u8, u8)> = rest
                    .chunks_exact(3)
                    .take(usize::from(*count))
                    .map(|c| (c[1] >> 4, c[1] & 0x0F))
                    .collect();
                if sampling.is_empty() || sampling.len() != usize::from(*count) {
                    return Err(MediaError::NotAnImage);
                }
                return Ok(JpegFrame {
                    width: u16::from_be_bytes([*w1, *w0]),
                    height: u16::from_be_bytes([*h1, *h0]),
                    // SOF2, SOF6, SOF10, SOF14 are progressive.
                    progressive: matches!(marker, 0xC2 | 0xC6 | 0xCA | 0xCE),
                    sampling,
                });
            }
            // Standalone markers carry no length.
            0x01 | 0xD0..=0xD7 => {}
            // Start of scan or end of image before any frame header: not a JPEG we can read.
            0xD9 | 0xDA => return Err(MediaError::NotAnImage),
            _ => {
                let len = length(input)?;
                io::copy(&mut input.by_ref().take(len as u64), &mut io::sink()).map_err(io_error)?;
            }
        }
    }
}

/// A non-interlaced PNG, read one row at a time and reduced on the fly with an area filter to
/// at most `2 × fit` on its longer side (the final resize makes it `fit`). `Ok(None)` for an
/// interlaced PNG, whose passes do not come in row order.
fn decode_png_rows<R: BufRead + Seek>(
    input: &mut R,
    fit: u32,
    limits: &DecodeLimits,
) -> Result<Option<RgbaImage>, MediaError> {
    let png_limits = png::Limits { bytes: usize::try_from(limits.max_alloc).unwrap_or(usize::MAX) };
    let mut decoder = png::Decoder::new_with_limits(input, png_limits);
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder.read_info().map_err(png_error)?;
    let (width, height, interlaced) = {
        let info = reader.info();
        (info.width, info.height, info.interlaced)
    };
    check_source(u64::from(width), u64::from(height), limits)?;
    if interlaced {
        return Ok(None);
    }
    let channels = match reader.output_color_type().0 {
        png::ColorType::Grayscale => 1,
        png::ColorType::GrayscaleAlpha => 2,
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        png::ColorType::Indexed => return Err(MediaError::NotAnImage),
    };
    let (out_w, out_h) = fitted(width, height, fit.saturating_mul(2));
    let mut out = RgbaImage::new(out_w, out_h);
    // Sums of the source pixels falling into each pixel of the current output row.
    let mut sums = vec![[0u32; 4]; out_w as usize];
    let mut counts = vec![0u32; out_w as usize];
    let column: Vec<u32> =
        (0..width).map(|x| (u64::from(x) * u64::from(out_w) / u64::from(width)) as u32).collect();
    let mut current_row = 0u32;
    let flush = |row: u32, sums: &mut [[u32; 4]], counts: &mut [u32], out: &mut RgbaImage| {
        for (x, (sum, count)) in sums.iter_mut().zip(counts.iter_mut()).enumerate() {
            if *count > 0 {
                let avg = sum.map(|s| ((s + *count / 2) / *count) as u8);
                out.put_pixel(x as u32, row, image::Rgba(avg));
            }
            *sum = [0; 4];
            *count = 0;
        }
    };
    for y in 0..height {
        let out_y = (u64::from(y) * u64::from(out_h) / u64::from(height)) as u32;
        if out_y != current_row {
            flush(current_row, &mut sums, &mut counts, &mut out);
            current_row = out_y;
        }
        let row = reader.next_row().map_err(png_error)?.ok_or(MediaError::NotAnImage)?;
        for (x, px) in row.data().chunks_exact(channels).enumerate().take(width as usize) {
            let rgba = match *px {
                [l] => [l, l, l, 255],
                [l, a] => [l, l, l, a],
                [r, g, b] => [r, g, b, 255],
                [r, g, b, a] => [r, g, b, a],
                _ => return Err(MediaError::NotAnImage),
            };
            let ox = column[x] as usize;
            for (s, v) in sums[ox].iter_mut().zip(rgba) {
                *s += u32::from(v);
            }
            counts[ox] += 1;
        }
    }
    flush(current_row, &mut sums, &mut counts, &mut out);
    Ok(Some(out))
}

fn png_error(e: png::DecodingError) -> MediaError {
    match e {
        png::DecodingError::IoError(e) => io_error(e),
        png::DecodingError::LimitsExceeded => MediaError::TooLarge,
        _ => MediaError::NotAnImage,
    }
}

/// GIF (first frame), WebP and interlaced PNG: decoded whole through the `image` crate, after
/// the decoded size from the header was checked against the limits.
fn decode_whole<R: BufRead + Seek>(
    input: R,
    format: ImageFormat,
    limits: &DecodeLimits,
) -> Result<(RgbaImage, Orientation), MediaError> {
    let mut reader = ImageReader::with_format(input, format);
    let mut image_limits = image::Limits::default();
    image_limits.max_alloc = Some(limits.max_alloc);
    reader.limits(image_limits);
    let mut decoder = reader.into_decoder().map_err(image_error)?;
    let (width, height) = decoder.dimensions();
    check_source(u64::from(width), u64::from(height), limits)?;
    // The decoded buffer, then its RGBA copy.
    check_alloc(decoder.total_bytes().saturating_add(u64::from(width) * u64::from(height) * 4), limits)?;
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let image = DynamicImage::from_decoder(decoder).map_err(image_error)?;
    Ok((image.into_rgba8(), orientation))
}

fn image_error(e: image::ImageError) -> MediaError {
    match e {
        image::ImageError::Limits(_) => MediaError::TooLarge,
        image::ImageError::IoError(e) => io_error(e),
        _ => MediaError::NotAnImage,
    }
}

/// The size of `width × height` scaled down (never up) to fit `fit × fit`, at least 1 × 1.
fn fitted(width: u32, height: u32, fit: u32) -> (u32, u32) {
    if width <= fit && height <= fit {
        return (width, height);
    }
    let scale = f64::from(fit) / f64::from(width.max(height));
    (((f64::from(width) * scale).round() as u32).max(1), ((f64::from(height) * scale).round() as u32).max(1))
}

/// A reader that fails with `TimedOut` once its deadline has passed, so that a decoder reading
/// its input stops by itself.
struct Deadline<R> {
    inner: R,
    deadline: Instant,
}

impl<R> Deadline<R> {
    fn check(&self) -> io::Result<()> {
        if Instant::now() > self.deadline {
            Err(io::Error::new(io::ErrorKind::TimedOut, "image decode deadline"))
        } else {
            Ok(())
        }
    }
}

impl<R: Read> Read for Deadline<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.check()?;
        self.inner.read(buf)
    }
}

impl<R: BufRead> BufRead for Deadline<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.check()?;
        self.inner.fill_buf()
    }

    fn consume(&mut self, amount: usize) {
        self.inner.consume(amount)
    }
}

impl<R: Seek> Seek for Deadline<R> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.inner.seek(pos)
    }
}

type Job = Box<dyn FnOnce() + Send>;

/// A few threads that decode images, with a short queue in front. Cheap to clone.
#[derive(Clone)]
pub struct ImagePool {
    jobs: mpsc::SyncSender<Job>,
    /// Places in the pool: running plus queued. Taken before an upload's body is read.
    places: Arc<Semaphore>,
    limits: DecodeLimits,
    /// How many decodes in a row a job may have to wait for, its own included.
    rounds: u32,
}

/// A place in the pool, held from before an upload is read until its decode ends.
pub struct Admission {
    _place: OwnedSemaphorePermit,
}

impl ImagePool {
    /// Starts `workers` decoding threads with room for `queue` more jobs waiting.
    pub fn new(workers: usize, queue: usize, limits: DecodeLimits) -> std::io::Result<ImagePool> {
        let workers = workers.max(1);
        let places = workers + queue;
        let (jobs, inbox) = mpsc::sync_channel::<Job>(places);
        let inbox = Arc::new(Mutex::new(inbox));
        for n in 0..workers {
            let inbox = inbox.clone();
            std::thread::Builder::new().name(format!("hearth-image-{n}")).spawn(move || {
                loop {
                    // The lock is held only while waiting for the next job, never during one;
                    // a poisoned lock still guards a working receiver.
                    let job = inbox.lock().unwrap_or_else(|p| p.into_inner()).recv();
                    match job {
                        Ok(job) => job(),
                        Err(_) => break,
                    }
                }
            })?;
        }
        let rounds = u32::try_from(places.div_ceil(workers)).unwrap_or(u32::MAX);
        Ok(ImagePool { jobs, places: Arc::new(Semaphore::new(places)), limits, rounds })
    }

    pub fn limits(&self) -> &DecodeLimits {
        &self.limits
    }

    /// Takes a place in the pool, or says at once that it is full.
    pub fn admit(&self) -> Result<Admission, MediaError> {
        self.places
            .clone()
            .try_acquire_owned()
            .map(|place| Admission { _place: place })
            .map_err(|_| MediaError::Busy)
    }

    /// Runs `decode` on a pool thread with the pool's limits and a deadline counted from when
    /// it starts, and waits no longer than every place ahead of it could take. A decoder that
    /// panics (a bug in a codec) counts as an unreadable image, not a crash.
    pub async fn run<T, F>(&self, admission: Admission, decode: F) -> Result<T, MediaError>
    where
        T: Send + 'static,
        F: FnOnce(&DecodeLimits, Instant) -> Result<T, MediaError> + Send + 'static,
    {
        let limits = self.limits;
        let (done, result) = oneshot::channel();
        let job: Job = Box::new(move || {
            let deadline = Instant::now() + limits.timeout;
            let outcome =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| decode(&limits, deadline)))
                    .unwrap_or(Err(MediaError::NotAnImage));
            // The place is given back only when the work is over, even if the caller gave up.
            drop(admission);
            let _ = done.send(outcome);
        });
        // The admission guarantees a free slot in the channel.
        self.jobs.try_send(job).map_err(|_| MediaError::Busy)?;
        // Queued behind at most every other place, each bounded by the time limit.
        let wait = self.limits.timeout * self.rounds + Duration::from_millis(100);
        match tokio::time::timeout(wait, result).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_)) => Err(MediaError::NotAnImage),
            Err(_) => Err(MediaError::TimedOut),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use image::{ImageEncoder, Rgb, RgbImage};

    use super::*;

    /// The error of a decode expected to fail (an image that decoded is named by its size only).
    fn refused(result: Result<RgbaImage, MediaError>) -> MediaError {
        match result {
            Ok(image) => panic!("decoded a {}x{} image", image.width(), image.height()),
            Err(e) => e,
        }
    }

    fn far() -> Instant {
        Instant::now() + Duration::from_secs(60)
    }

    fn encode(img: &RgbImage, format: ImageFormat) -> Vec<u8> {
        let mut out = Vec::new();
        img.write_to(&mut Cursor::new(&mut out), format).unwrap();
        out
    }

    fn gradient(w: u32, h: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| Rgb([(x * 255 / w) as u8, (y * 255 / h) as u8, 90]))
    }

    /// A 1 × 1 PNG whose header (IHDR, CRC fixed) claims `w × h`.
    fn png_claiming(w: u32, h: u32) -> Vec<u8> {
        let mut bytes = encode(&gradient(1, 1), ImageFormat::Png);
        // Signature (8), IHDR length (4) and type (4), then width and height.
        bytes[16..20].copy_from_slice(&w.to_be_bytes());
        bytes[20..24].copy_from_slice(&h.to_be_bytes());
        let crc = crc32fast::hash(&bytes[12..29]);
        bytes[29..33].copy_from_slice(&crc.to_be_bytes());
        bytes
    }

    /// A JPEG of one 8 × 8 block with its frame header patched to claim `w × h`.
    fn jpeg_claiming(w: u16, h: u16, progressive: bool) -> Vec<u8> {
        let mut bytes = encode(&gradient(8, 8), ImageFormat::Jpeg);
        let sof = bytes.windows(2).position(|m| m == [0xFF, 0xC0]).unwrap();
        if progressive {
            bytes[sof + 1] = 0xC2;
        }
        bytes[sof + 5..sof + 7].copy_from_slice(&h.to_be_bytes());
        bytes[sof + 7..sof + 9].copy_from_slice(&w.to_be_bytes());
        bytes
    }

    #[test]
    fn photos_are_decoded_small_and_keep_their_content() {
        let source = gradient(1600, 1200);
        for format in [ImageFormat::Jpeg, ImageFormat::Png, ImageFormat::Gif, ImageFormat::WebP] {
            let bytes = encode(&source, format);
            let out = decode_fitted(Cursor::new(&bytes), 256, &DecodeLimits::default(), far()).unwrap();
            assert_eq!((out.width(), out.height()), (256, 192), "{format:?}");
            // The gradient survives: left is dark red, right is bright red.
            let (left, right) = (out.get_pixel(4, 96)[0], out.get_pixel(251, 96)[0]);
            assert!(left < 30 && right > 220, "{format:?}: {left} {right}");
        }
    }

    #[test]
    fn small_images_are_not_enlarged() {
        let bytes = encode(&gradient(40, 30), ImageFormat::Png);
        let out = decode_fitted(Cursor::new(&bytes), 256, &DecodeLimits::default(), far()).unwrap();
        assert_eq!((out.width(), out.height()), (40, 30));
    }

    #[test]
    fn a_png_claiming_a_giant_size_is_refused_from_its_header() {
        let bytes = png_claiming(60_000, 60_000);
        assert!(bytes.len() < 100);
        let started = Instant::now();
        let err = refused(decode_fitted(Cursor::new(&bytes), 256, &DecodeLimits::default(), far()));
        assert_eq!(err, MediaError::TooLarge);
        assert!(started.elapsed() < Duration::from_millis(50), "took {:?}", started.elapsed());
    }

    #[test]
    fn a_jpeg_claiming_a_giant_size_is_refused_from_its_header() {
        let limits = DecodeLimits::default();
        for progressive in [false, true] {
            let bytes = jpeg_claiming(60_000, 60_000, progressive);
            assert_eq!(
                refused(decode_fitted(Cursor::new(&bytes), 256, &limits, far())),
                MediaError::TooLarge
            );
        }
        // Within the pixel cap, a progressive JPEG's coefficients are still bounded by max_alloc.
        let bytes = jpeg_claiming(8000, 6000, true);
        assert_eq!(refused(decode_fitted(Cursor::new(&bytes), 256, &limits, far())), MediaError::TooLarge);
    }

    #[test]
    fn whole_decodes_are_held_to_the_allocation_limit() {
        // 1600 × 1600 RGB decodes to 7.7 MB, and 10.2 MB more as RGBA.
        let bytes = encode(&gradient(1600, 1600), ImageFormat::WebP);
        let limits = DecodeLimits { max_alloc: 16 << 20, ..DecodeLimits::default() };
        assert_eq!(refused(decode_fitted(Cursor::new(&bytes), 256, &limits, far())), MediaError::TooLarge);
    }

    #[test]
    fn a_png_is_read_row_by_row_within_a_small_allocation_limit() {
        // 4000 × 3000 RGB is 36 MB decoded whole; row by row it fits in 4 MB.
        let bytes = encode(&gradient(4000, 3000), ImageFormat::Png);
        let limits = DecodeLimits { max_alloc: 4 << 20, ..DecodeLimits::default() };
        let out = decode_fitted(Cursor::new(&bytes), 256, &limits, far()).unwrap();
        assert_eq!((out.width(), out.height()), (256, 192));
    }

    #[test]
    fn a_passed_deadline_stops_the_decode() {
        let bytes = encode(&gradient(64, 64), ImageFormat::Png);
        let past = Instant::now() - Duration::from_millis(1);
        assert_eq!(
            refused(decode_fitted(Cursor::new(&bytes), 256, &DecodeLimits::default(), past)),
            MediaError::TimedOut
        );
    }

    #[test]
    fn non_images_and_truncated_images_are_refused() {
        let limits = DecodeLimits::default();
        for bytes in [
            b"MZ this is an exe".to_vec(),
            b"<svg xmlns='http://www.w3.org/2000/svg'/>".to_vec(),
            b"\xFF\xD8\xFF".to_vec(),
            Vec::new(),
        ] {
            assert_eq!(
                refused(decode_fitted(Cursor::new(&bytes), 64, &limits, far())),
                MediaError::NotAnImage
            );
        }
        for format in [ImageFormat::Png, ImageFormat::Jpeg, ImageFormat::Gif, ImageFormat::WebP] {
            let mut cut = encode(&gradient(64, 64), format);
            cut.truncate(cut.len() / 2);
            assert!(decode_fitted(Cursor::new(&cut), 64, &limits, far()).is_err(), "{format:?}");
        }
    }

    #[test]
    fn exif_orientation_is_applied() {
        // A wide JPEG whose EXIF says "rotate 90°" comes out tall.
        let mut jpeg = Vec::new();
        let mut encoder = image::codecs::jpeg::JpegEncoder::new(&mut jpeg);
        // A minimal little-endian TIFF with one entry: Orientation (0x0112) = 6.
        let exif: Vec<u8> = [
            &b"II*\0"[..],
            &8u32.to_le_bytes(),
            &1u16.to_le_bytes(),
            &0x0112u16.to_le_bytes(),
            &3u16.to_le_bytes(),
            &1u32.to_le_bytes(),
            &6u32.to_le_bytes(),
            &0u32.to_le_bytes(),
        ]
        .concat();
        encoder.set_exif_metadata(exif).unwrap();
        let wide = gradient(200, 100);
        encoder.write_image(wide.as_raw(), 200, 100, image::ExtendedColorType::Rgb8).unwrap();
        let out = decode_fitted(Cursor::new(&jpeg), 256, &DecodeLimits::default(), far()).unwrap();
        assert_eq!((out.width(), out.height()), (100, 200));
    }

    #[test]
    fn jpeg_frame_headers_give_the_coefficient_memory() {
        let bytes = encode(&gradient(1600, 1200), ImageFormat::Jpeg);
        let frame = jpeg_frame(&mut Cursor::new(&bytes)).unwrap();
        assert_eq!((frame.width, frame.height, frame.progressive), (1600, 1200, false));
        // The image crate writes 4:4:4: three components at full resolution, 2 bytes a sample.
        assert_eq!(frame.sampling, vec![(1, 1), (1, 1), (1, 1)]);
        assert_eq!(frame.coefficient_bytes(), 1600 * 1200 * 3 * 2);
        // A camera's 4:2:0: luma at full resolution, each chroma at a quarter.
        let camera = JpegFrame { sampling: vec![(2, 2), (1, 1), (1, 1)], ..frame };
        assert_eq!(camera.coefficient_bytes(), 1600 * 1200 * 3 / 2 * 2);
    }

    #[tokio::test]
    async fn a_full_pool_says_busy_at_once_and_frees_places_when_work_ends() {
        let pool = ImagePool::new(1, 1, DecodeLimits::default()).unwrap();
        let first = pool.admit().unwrap();
        let second = pool.admit().unwrap();
        assert!(matches!(pool.admit(), Err(MediaError::Busy)));
        let (release, hold) = std::sync::mpsc::channel::<()>();
        let running = {
            let pool = pool.clone();
            tokio::spawn(async move {
                pool.run(first, move |_, _| {
                    hold.recv().ok();
                    Ok(1)
                })
                .await
            })
        };
        let queued = {
            let pool = pool.clone();
            tokio::spawn(async move { pool.run(second, |_, _| Ok(2)).await })
        };
        assert!(matches!(pool.admit(), Err(MediaError::Busy)));
        release.send(()).unwrap();
        assert_eq!(running.await.unwrap(), Ok(1));
        assert_eq!(queued.await.unwrap(), Ok(2));
        assert!(pool.admit().is_ok());
    }

    #[tokio::test]
    async fn a_decode_past_its_time_limit_is_given_up() {
        let limits = DecodeLimits { timeout: Duration::from_millis(50), ..DecodeLimits::default() };
        let pool = ImagePool::new(1, 0, limits).unwrap();
        let (release, hold) = std::sync::mpsc::channel::<()>();
        let stuck = pool.run(pool.admit().unwrap(), move |_, _| {
            hold.recv().ok();
            Ok(())
        });
        assert_eq!(stuck.await, Err(MediaError::TimedOut));
        // Its place stays taken until the work really ends.
        assert!(matches!(pool.admit(), Err(MediaError::Busy)));
        release.send(()).unwrap();
    }

    #[tokio::test]
    async fn a_codec_panic_is_an_unreadable_image_not_a_crash() {
        let pool = ImagePool::new(1, 0, DecodeLimits::default()).unwrap();
        let panicked: Result<(), MediaError> =
            pool.run(pool.admit().unwrap(), |_, _| panic!("codec bug")).await;
        assert_eq!(panicked, Err(MediaError::NotAnImage));
        assert_eq!(pool.run(pool.admit().unwrap(), |_, _| Ok(7)).await, Ok(7));
    }
}
