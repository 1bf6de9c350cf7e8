//! The messages of a transfer's data channel, in binary: one tag byte, then fixed
//! little-endian fields. Chunks are the bulk: `file u32 | index u64 | SHA-256 of the data |
//! data` (at most [`CHUNK_SIZE`] bytes of data). Everything else is small: the manifest (JSON,
//! in parts, since a folder of thousands of files outgrows one message), the receiver's
//! requests (ranges of chunks), and the sender's report that a file can no longer be read.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};

/// Bytes of file data per chunk (and per message).
pub const CHUNK_SIZE: u32 = 64 * 1024;
/// Header of a chunk message before its data.
pub const CHUNK_HEADER: usize = 1 + 4 + 8 + 32;
/// The largest message either side sends or accepts; both ends announce it as their SCTP
/// max-message-size (the default 64 KiB would not hold a chunk and its header).
pub const MAX_MESSAGE: usize = 128 * 1024;
/// Manifest JSON bytes per message.
const MANIFEST_PART: usize = 60 * 1024;
/// The largest manifest a receiver takes (about 200,000 files).
pub const MAX_MANIFEST_BYTES: usize = 64 * 1024 * 1024;
/// Ranges per request message.
const RANGES_PER_REQUEST: usize = 4096;

const TAG_MANIFEST_PART: u8 = 1;
const TAG_MANIFEST_END: u8 = 2;
const TAG_REQUEST: u8 = 3;
const TAG_CHUNK: u8 = 4;
const TAG_SOURCE_ERROR: u8 = 5;

/// One file of a transfer as the sender announces it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Relative path with `/` between components, as the sender names it (the receiver makes
    /// it safe before using it).
    pub path: String,
    pub size: u64,
    /// SHA-256 of the whole file, hex.
    pub sha256: String,
}

impl FileEntry {
    pub fn chunks(&self) -> u64 {
        self.size.div_ceil(u64::from(CHUNK_SIZE))
    }
}

/// Everything the receiver needs before the first chunk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub chunk_size: u32,
    pub files: Vec<FileEntry>,
}

/// Chunks `first..end` of file `file`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkRange {
    pub file: u32,
    pub first: u64,
    pub end: u64,
}

/// A message on the data channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wire {
    ManifestPart { data: Bytes, last: bool },
    Request(Vec<ChunkRange>),
    Chunk { file: u32, index: u64, sha256: [u8; 32], data: Bytes },
    SourceError { file: u32, message: String },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("malformed transfer message: {0}")]
pub struct WireError(pub &'static str);

impl Wire {
    pub fn encode(&self) -> BytesMut {
        match self {
            Wire::ManifestPart { data, last } => {
                let mut b = BytesMut::with_capacity(1 + data.len());
                b.put_u8(if *last { TAG_MANIFEST_END } else { TAG_MANIFEST_PART });
                b.put_slice(data);
                b
            }
            Wire::Request(ranges) => {
                let mut b = BytesMut::with_capacity(1 + 20 * ranges.len());
                b.put_u8(TAG_REQUEST);
                for r in ranges {
                    b.put_u32_le(r.file);
                    b.put_u64_le(r.first);
                    b.put_u64_le(r.end);
                }
                b
            }
            Wire::Chunk { file, index, sha256, data } => {
                let mut b = BytesMut::with_capacity(CHUNK_HEADER + data.len());
                b.put_u8(TAG_CHUNK);
                b.put_u32_le(*file);
                b.put_u64_le(*index);
                b.put_slice(sha256);
                b.put_slice(data);
                b
            }
            Wire::SourceError { file, message } => {
                let mut b = BytesMut::with_capacity(5 + message.len());
                b.put_u8(TAG_SOURCE_ERROR);
                b.put_u32_le(*file);
                b.put_slice(message.as_bytes());
                b
            }
        }
    }

    pub fn decode(mut b: Bytes) -> Result<Wire, WireError> {
        if b.len() > MAX_MESSAGE {
            return Err(WireError("message too large"));
        }
        if b.is_empty() {
            return Err(WireError("empty message"));
        }
        let tag = b.get_u8();
        match tag {
            TAG_MANIFEST_PART | TAG_MANIFEST_END => {
                Ok(Wire::ManifestPart { data: b, last: tag == TAG_MANIFEST_END })
            }
            TAG_REQUEST => {
                if !b.len().is_multiple_of(20) {
                    return Err(WireError("request of partial ranges"));
                }
                let mut ranges = Vec::with_capacity(b.len() / 20);
                while b.has_remaining() {
                    let r = ChunkRange { file: b.get_u32_le(), first: b.get_u64_le(), end: b.get_u64_le() };
                    if r.first >= r.end {
                        return Err(WireError("empty range"));
                    }
                    ranges.push(r);
                }
                Ok(Wire::Request(ranges))
            }
            TAG_CHUNK => {
                if b.len() < CHUNK_HEADER - 1 || b.len() > CHUNK_HEADER - 1 + CHUNK_SIZE as usize {
                    return Err(WireError("chunk of a wrong size"));
                }
                let file = b.get_u32_le();
                let index = b.get_u64_le();
                let mut sha256 = [0u8; 32];
                b.copy_to_slice(&mut sha256);
                Ok(Wire::Chunk { file, index, sha256, data: b })
            }
            TAG_SOURCE_ERROR => {
                if b.len() < 4 {
                    return Err(WireError("short source error"));
                }
                let file = b.get_u32_le();
                Ok(Wire::SourceError { file, message: String::from_utf8_lossy(&b).into_owned() })
            }
            _ => Err(WireError("unknown tag")),
        }
    }
}

/// The manifest as messages.
pub fn manifest_messages(manifest: &Manifest) -> Vec<Wire> {
    // Serializing our own struct of strings and numbers cannot fail.
    let json = Bytes::from(serde_json::to_vec(manifest).unwrap_or_default());
    let parts = json.len().div_ceil(MANIFEST_PART).max(1);
    (0..parts)
        .map(|i| {
            let end = ((i + 1) * MANIFEST_PART).min(json.len());
            Wire::ManifestPart { data: json.slice(i * MANIFEST_PART..end), last: i + 1 == parts }
        })
        .collect()
}

/// Requests for `ranges`, split so each message stays small.
pub fn request_messages(ranges: &[ChunkRange]) -> Vec<Wire> {
    ranges.chunks(RANGES_PER_REQUEST).map(|r| Wire::Request(r.to_vec())).collect()
}

/// Collects manifest parts until the last one.
#[derive(Default)]
pub struct ManifestReader {
    buf: Vec<u8>,
}

impl ManifestReader {
    /// Adds a part; `Some` with the manifest after the last one.
    pub fn push(&mut self, data: &[u8], last: bool) -> Result<Option<Manifest>, WireError> {
        if self.buf.len() + data.len() > MAX_MANIFEST_BYTES {
            return Err(WireError("manifest too large"));
        }
        self.buf.extend_from_slice(data);
        if !last {
            return Ok(None);
        }
        let manifest: Manifest = serde_json::from_slice(&std::mem::take(&mut self.buf))
            .map_err(|_| WireError("manifest is not valid"))?;
        if manifest.chunk_size != CHUNK_SIZE {
            return Err(WireError("unsupported chunk size"));
        }
        if manifest.files.is_empty() || manifest.files.len() > u32::MAX as usize {
            return Err(WireError("manifest without files"));
        }
        if manifest
            .files
            .iter()
            .any(|f| f.sha256.len() != 64 || !f.sha256.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            return Err(WireError("manifest with a bad hash"));
        }
        Ok(Some(manifest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_round_trips() {
        let messages = [
            Wire::Request(vec![
                ChunkRange { file: 2, first: 5, end: 9 },
                ChunkRange { file: 0, first: 0, end: 1 },
            ]),
            Wire::Chunk {
                file: 7,
                index: 1 << 40,
                sha256: [9; 32],
                data: Bytes::from(vec![1u8; CHUNK_SIZE as usize]),
            },
            Wire::Chunk { file: 0, index: 0, sha256: [0; 32], data: Bytes::new() },
            Wire::SourceError { file: 3, message: "gone".into() },
            Wire::ManifestPart { data: Bytes::from_static(b"{}"), last: true },
        ];
        for m in messages {
            let encoded = m.encode().freeze();
            assert!(encoded.len() <= MAX_MESSAGE);
            assert_eq!(Wire::decode(encoded).unwrap(), m);
        }
    }

    #[test]
    fn malformed_messages_are_refused() {
        assert!(Wire::decode(Bytes::new()).is_err());
        assert!(Wire::decode(Bytes::from_static(&[99])).is_err());
        assert!(Wire::decode(Bytes::from_static(&[TAG_REQUEST, 1, 2])).is_err());
        let mut empty_range = vec![TAG_REQUEST];
        empty_range.extend_from_slice(&[0; 20]);
        assert!(Wire::decode(Bytes::from(empty_range)).is_err());
        assert!(Wire::decode(Bytes::from_static(&[TAG_CHUNK, 0, 0])).is_err());
        let oversized = vec![TAG_CHUNK; CHUNK_HEADER + CHUNK_SIZE as usize + 1];
        assert!(Wire::decode(Bytes::from(oversized)).is_err());
    }

    #[test]
    fn a_large_manifest_goes_in_parts_and_comes_back_whole() {
        let files = (0..3000)
            .map(|i| FileEntry {
                path: format!("folder/sub/file-{i:05}.jpg"),
                size: i,
                sha256: "ab".repeat(32),
            })
            .collect();
        let manifest = Manifest { chunk_size: CHUNK_SIZE, files };
        let messages = manifest_messages(&manifest);
        assert!(messages.len() > 1);
        let mut reader = ManifestReader::default();
        let mut out = None;
        for m in messages {
            let encoded = m.encode().freeze();
            assert!(encoded.len() <= MAX_MESSAGE);
            let Wire::ManifestPart { data, last } = Wire::decode(encoded).unwrap() else { panic!("a part") };
            out = reader.push(&data, last).unwrap();
        }
        assert_eq!(out, Some(manifest));
    }

    #[test]
    fn a_manifest_with_bad_hashes_or_chunk_size_is_refused() {
        let bad = Manifest {
            chunk_size: CHUNK_SIZE,
            files: vec![FileEntry { path: "a".into(), size: 1, sha256: "zz".into() }],
        };
        let json = serde_json::to_vec(&bad).unwrap();
        assert!(ManifestReader::default().push(&json, true).is_err());
        let odd = Manifest {
            chunk_size: 1000,
            files: vec![FileEntry { path: "a".into(), size: 1, sha256: "0".repeat(64) }],
        };
        assert!(ManifestReader::default().push(&serde_json::to_vec(&odd).unwrap(), true).is_err());
    }
}
