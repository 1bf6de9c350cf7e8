//! The record of an unfinished transfer, one JSON file per transfer under the account's
//! `transfers/` folder, written whole and renamed into place (a crash leaves the old one or
//! the new one, never half of either). The receiver's holds its verified chunks: a chunk is
//! in the record only after it was checked against its hash and written.

use std::io;
use std::path::{Path, PathBuf};

use hearth_protocol::UserId;
use serde::{Deserialize, Serialize};

use super::files::Targets;
use super::machine::Role;
use super::wire::Manifest;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(remote = "Role")]
enum RoleDef {
    Send,
    Receive,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    #[serde(with = "RoleDef")]
    pub role: Role,
    pub peer: UserId,
    pub name: String,
    pub size: u64,
    pub files: u32,
    pub manifest: Option<Manifest>,
    /// Sender: the file behind each manifest entry.
    pub sources: Vec<PathBuf>,
    /// Receiver: where each file goes.
    pub targets: Option<Targets>,
    /// Receiver: verified chunks per file, one bit each.
    pub verified: Vec<Vec<u64>>,
    pub paused_by_me: bool,
}

fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

impl Record {
    fn path(dir: &Path, id: &str) -> PathBuf {
        dir.join(format!("{id}.json"))
    }

    pub fn save(&self, dir: &Path) -> io::Result<()> {
        if !valid_id(&self.id) {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "bad transfer id"));
        }
        std::fs::create_dir_all(dir)?;
        let json = serde_json::to_vec(self).map_err(io::Error::other)?;
        let tmp = dir.join(format!("{}.json.tmp", self.id));
        std::fs::write(&tmp, json)?;
        std::fs::rename(&tmp, Self::path(dir, &self.id))
    }

    pub fn remove(dir: &Path, id: &str) {
        if valid_id(id)
            && let Err(e) = std::fs::remove_file(Self::path(dir, id))
            && e.kind() != io::ErrorKind::NotFound
        {
            tracing::warn!(error = %e, "a transfer record could not be removed");
        }
    }
}

/// Every readable record in `dir` (an unreadable one is logged and left alone).
pub fn load_all(dir: &Path) -> Vec<Record> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    entries
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .filter_map(|e| {
            let text = std::fs::read(e.path()).ok()?;
            match serde_json::from_slice::<Record>(&text) {
                Ok(r) if valid_id(&r.id) => Some(r),
                Ok(_) => None,
                Err(err) => {
                    tracing::warn!(error = %err, path = %e.path().display(), "unreadable transfer record");
                    None
                }
            }
        })
        .collect()
}
