//! Location metadata removed from JPEG photos, losslessly and in place: the image data is not
//! touched and the file keeps its length, so a stored photo is its upload minus where it was
//! taken.
//!
//! - **EXIF** (the APP1 segment starting `Exif\0\0`): the GPS IFD pointer (tag 0x8825) is taken
//!   out of IFD0 (the entries after it move up, the count drops by one and the next-IFD offset
//!   follows them; the freed 12 bytes are zeroed), then the GPS IFD and every value it points
//!   to are zeroed. Nothing else moves, so every other offset in the segment stays right.
//! - **XMP** (the APP1 segment starting with Adobe's namespace) that mentions GPS: its marker
//!   becomes a comment (COM) and its bytes are zeroed; the photo keeps nothing of it.
//!
//! Only the segments before the image data (SOS) are read; a malformed segment stops the walk
//! and leaves the rest as it was (a file that is not a well-formed JPEG is a plain file anyway).

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

const EXIF: &[u8] = b"Exif\0\0";
const XMP: &[u8] = b"http://ns.adobe.com/xap/1.0/\0";
const GPS_IFD: u16 = 0x8825;

/// Removes location data from the JPEG at `path` in place. Returns whether anything was
/// removed. Files that are not JPEGs are left alone.
pub fn strip(path: &Path) -> io::Result<bool> {
    let mut file = File::options().read(true).write(true).open(path)?;
    let mut head = [0u8; 2];
    if file.read_exact(&mut head).is_err() || head != [0xFF, 0xD8] {
        return Ok(false);
    }
    let mut changed = false;
    let mut at: u64 = 2;
    loop {
        let mut marker = [0u8; 2];
        if file.read_exact(&mut marker).is_err() || marker[0] != 0xFF {
            return Ok(changed);
        }
        match marker[1] {
            // Fill bytes before a marker.
            0xFF => {
                file.seek(SeekFrom::Start(at + 1))?;
                at += 1;
                continue;
            }
            // Start of scan or end of image: no metadata after this point that we read.
            0xDA | 0xD9 => return Ok(changed),
            // Markers without a length.
            0x01 | 0xD0..=0xD7 => {
                at += 2;
                continue;
            }
            _ => {}
        }
        let mut len = [0u8; 2];
        file.read_exact(&mut len)?;
        let len = usize::from(u16::from_be_bytes(len));
        if len < 2 {
            return Ok(changed);
        }
        let body_at = at + 4;
        let mut body = vec![0u8; len - 2];
        if file.read_exact(&mut body).is_err() {
            return Ok(changed);
        }
        if marker[1] == 0xE1 {
            let rewritten = if body.starts_with(EXIF) {
                strip_exif(&mut body[EXIF.len()..])
            } else if body.starts_with(XMP) && contains(&body, b"GPS") {
                body.fill(0);
                file.seek(SeekFrom::Start(at + 1))?;
                file.write_all(&[0xFE])?;
                true
            } else {
                false
            };
            if rewritten {
                file.seek(SeekFrom::Start(body_at))?;
                file.write_all(&body)?;
                changed = true;
            }
        }
        at = body_at + body.len() as u64;
        file.seek(SeekFrom::Start(at))?;
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// A TIFF structure's byte order.
#[derive(Clone, Copy)]
enum Order {
    Little,
    Big,
}

impl Order {
    fn u16(self, b: &[u8], at: usize) -> Option<u16> {
        let s: [u8; 2] = b.get(at..at + 2)?.try_into().ok()?;
        Some(match self {
            Order::Little => u16::from_le_bytes(s),
            Order::Big => u16::from_be_bytes(s),
        })
    }

    fn u32(self, b: &[u8], at: usize) -> Option<u32> {
        let s: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
        Some(match self {
            Order::Little => u32::from_le_bytes(s),
            Order::Big => u32::from_be_bytes(s),
        })
    }

    fn put_u16(self, b: &mut [u8], at: usize, v: u16) {
        let bytes = match self {
            Order::Little => v.to_le_bytes(),
            Order::Big => v.to_be_bytes(),
        };
        b[at..at + 2].copy_from_slice(&bytes);
    }
}

/// Bytes of one value of each TIFF type (1 BYTE … 12 DOUBLE).
fn type_size(kind: u16) -> usize {
    match kind {
        1 | 2 | 6 | 7 => 1,
        3 | 8 => 2,
        4 | 9 | 11 => 4,
        5 | 10 | 12 => 8,
        _ => 0,
    }
}

/// Takes the GPS IFD out of a TIFF structure (an EXIF segment after `Exif\0\0`). Returns
/// whether it was there.
fn strip_exif(tiff: &mut [u8]) -> bool {
    strip_gps(tiff).is_some()
}

fn strip_gps(tiff: &mut [u8]) -> Option<()> {
    let order = match tiff.get(0..2)? {
        b"II" => Order::Little,
        b"MM" => Order::Big,
        _ => return None,
    };
    let ifd0 = order.u32(tiff, 4)? as usize;
    let count = usize::from(order.u16(tiff, ifd0)?);
    let entries = ifd0 + 2;
    let end = entries + count * 12;
    // The next-IFD offset follows the entries.
    tiff.get(end..end + 4)?;
    let index = (0..count).find(|i| order.u16(tiff, entries + i * 12) == Some(GPS_IFD))?;
    let gps = order.u32(tiff, entries + index * 12 + 8)? as usize;
    // Out of IFD0: the later entries and the next-IFD offset move up by one entry.
    tiff.copy_within(entries + (index + 1) * 12..end + 4, entries + index * 12);
    tiff[end - 8..end + 4].fill(0);
    order.put_u16(tiff, ifd0, (count - 1) as u16);
    // The GPS IFD and the values it points to, zeroed.
    if let Some(n) = order.u16(tiff, gps) {
        let n = usize::from(n);
        for i in 0..n {
            let entry = gps + 2 + i * 12;
            let (Some(kind), Some(values)) = (order.u16(tiff, entry + 2), order.u32(tiff, entry + 4)) else {
                break;
            };
            let bytes = type_size(kind).saturating_mul(values as usize);
            if bytes > 4
                && let Some(offset) = order.u32(tiff, entry + 8)
            {
                let offset = offset as usize;
                if let Some(data) = tiff.get_mut(offset..offset.saturating_add(bytes)) {
                    data.fill(0);
                }
            }
        }
        let ifd_end = (gps + 2 + n * 12 + 4).min(tiff.len());
        if gps < ifd_end {
            tiff[gps..ifd_end].fill(0);
        }
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A little-endian TIFF with IFD0 = [Orientation, GPS pointer, Make] and a GPS IFD with a
    /// latitude (3 rationals, out of line).
    pub(crate) fn tiff_with_gps() -> Vec<u8> {
        let mut t = vec![b'I', b'I', 42, 0, 8, 0, 0, 0];
        // IFD0 at 8: 3 entries.
        t.extend_from_slice(&3u16.to_le_bytes());
        // Orientation (0x0112) SHORT 1 = 6.
        t.extend_from_slice(&[0x12, 0x01, 3, 0, 1, 0, 0, 0, 6, 0, 0, 0]);
        // GPS pointer LONG 1 → 50.
        t.extend_from_slice(&[0x25, 0x88, 4, 0, 1, 0, 0, 0, 50, 0, 0, 0]);
        // Make (0x010F) ASCII 4 "ACME" inline.
        t.extend_from_slice(&[0x0F, 0x01, 2, 0, 4, 0, 0, 0, b'A', b'C', b'M', b'E']);
        t.extend_from_slice(&0u32.to_le_bytes());
        assert_eq!(t.len(), 50);
        // GPS IFD at 50: 1 entry, latitude RATIONAL 3 → 68.
        t.extend_from_slice(&1u16.to_le_bytes());
        t.extend_from_slice(&[0x02, 0x00, 5, 0, 3, 0, 0, 0, 68, 0, 0, 0]);
        t.extend_from_slice(&0u32.to_le_bytes());
        assert_eq!(t.len(), 68);
        for v in [48u32, 1, 51, 1, 30, 1] {
            t.extend_from_slice(&v.to_le_bytes());
        }
        t
    }

    #[test]
    fn the_gps_ifd_leaves_and_the_other_tags_stay() {
        let mut t = tiff_with_gps();
        let len = t.len();
        assert!(strip_exif(&mut t));
        assert_eq!(t.len(), len);
        let order = Order::Little;
        assert_eq!(order.u16(&t, 8), Some(2));
        assert_eq!(order.u16(&t, 10), Some(0x0112));
        assert_eq!(order.u16(&t, 22), Some(0x010F));
        assert_eq!(&t[30..34], b"ACME");
        assert_eq!(order.u32(&t, 34), Some(0), "next-IFD offset after the entries");
        assert!(t[50..].iter().all(|b| *b == 0), "the GPS IFD and its values are zeroed");
        // Nothing left to strip the second time.
        assert!(!strip_exif(&mut t));
    }

    #[test]
    fn broken_tiff_is_left_alone() {
        let mut t = tiff_with_gps();
        t.truncate(20);
        let before = t.clone();
        assert!(!strip_exif(&mut t));
        assert_eq!(t, before);
        assert!(!strip_exif(&mut []));
    }
}
