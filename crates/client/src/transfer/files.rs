//! The disk side of a transfer, on threads of its own so hashing and file I/O never hold up
//! the async runtime: the sender's manifest (every file hashed once before it is offered) and
//! its reader (requested chunks read, each hashed as it goes out); the receiver's partial files
//! (named safely inside the chosen folder), its writer (every chunk's hash checked before it is
//! written in place, each file's whole SHA-256 checked at the end), the final rename and the
//! removal of everything a cancelled transfer created.

use std::collections::{HashMap, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use super::names;
use super::wire::{CHUNK_SIZE, ChunkRange, FileEntry, Manifest, Wire};

/// The suffix of a file still being received.
pub const PART_SUFFIX: &str = ".hearth-part";

#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("nothing to send")]
    Empty,
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> FilesError + '_ {
    move |source| FilesError::Io { path: path.to_path_buf(), source }
}

/// The files under `paths` (folders walked; symbolic links skipped, so a link never sends
/// what it points to), each with its path relative to the chosen item's parent.
pub fn collect(paths: &[PathBuf]) -> Result<Vec<(PathBuf, String)>, FilesError> {
    let mut out = Vec::new();
    for root in paths {
        let name =
            root.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "file".into());
        let meta = fs::symlink_metadata(root).map_err(io_err(root))?;
        if meta.is_file() {
            out.push((root.clone(), name));
        } else if meta.is_dir() {
            let mut queue = VecDeque::from([(root.clone(), name)]);
            while let Some((dir, rel)) = queue.pop_front() {
                let mut entries: Vec<_> = fs::read_dir(&dir)
                    .map_err(io_err(&dir))?
                    .collect::<Result<_, _>>()
                    .map_err(io_err(&dir))?;
                entries.sort_by_key(|e| e.file_name());
                for entry in entries {
                    let child_rel = format!("{rel}/{}", entry.file_name().to_string_lossy());
                    let kind = entry.file_type().map_err(io_err(&entry.path()))?;
                    if kind.is_dir() {
                        queue.push_back((entry.path(), child_rel));
                    } else if kind.is_file() {
                        out.push((entry.path(), child_rel));
                    }
                }
            }
        }
    }
    if out.is_empty() {
        return Err(FilesError::Empty);
    }
    Ok(out)
}

/// SHA-256 of a whole file, hex.
pub fn hash_file(path: &Path) -> Result<(u64, String), FilesError> {
    let mut file = File::open(path).map_err(io_err(path))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(io_err(path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((size, hex::encode(hasher.finalize())))
}

/// The manifest of `sources` (blocking: reads every byte).
pub fn manifest(sources: &[(PathBuf, String)]) -> Result<Manifest, FilesError> {
    let files = sources
        .iter()
        .map(|(path, rel)| {
            let (size, sha256) = hash_file(path)?;
            Ok(FileEntry { path: rel.clone(), size, sha256 })
        })
        .collect::<Result<_, FilesError>>()?;
    Ok(Manifest { chunk_size: CHUNK_SIZE, files })
}

/// Test hook: the sender flips one byte of this chunk, once, after hashing it (a byte
/// damaged on the way, which the receiver must catch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault {
    pub file: u32,
    pub index: u64,
}

/// What the sender's reader reports besides the chunks it queues.
#[derive(Debug)]
pub enum ReaderNote {
    Failed { file: u32, message: String },
}

/// Starts the sender's reader: it reads the ranges it is given, in order, and queues each
/// chunk as a data-channel message on `out` (bounded: it waits while the link is behind).
/// Ends when `out` closes (the link went) or `ranges` does.
pub fn start_reader(
    sources: Vec<PathBuf>,
    manifest: Manifest,
    ranges: std::sync::mpsc::Receiver<Vec<ChunkRange>>,
    out: mpsc::Sender<bytes::BytesMut>,
    notes: mpsc::UnboundedSender<ReaderNote>,
    mut fault: Option<Fault>,
    pace: Option<std::time::Duration>,
) -> io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new().name("hearth-transfer-read".into()).spawn(move || {
        let mut open: Option<(u32, File)> = None;
        let mut buf = vec![0u8; CHUNK_SIZE as usize];
        while let Ok(batch) = ranges.recv() {
            for range in batch {
                let (Some(source), Some(entry)) =
                    (sources.get(range.file as usize), manifest.files.get(range.file as usize))
                else {
                    continue;
                };
                for index in range.first..range.end.min(entry.chunks()) {
                    if let Some(pace) = pace {
                        std::thread::sleep(pace);
                    }
                    if open.as_ref().is_none_or(|(f, _)| *f != range.file) {
                        match File::open(source) {
                            Ok(f) => open = Some((range.file, f)),
                            Err(e) => {
                                let _gone = notes
                                    .send(ReaderNote::Failed { file: range.file, message: e.to_string() });
                                return;
                            }
                        }
                    }
                    let Some((_, file)) = open.as_ref() else { return };
                    let offset = index * u64::from(CHUNK_SIZE);
                    let len = (entry.size - offset).min(u64::from(CHUNK_SIZE)) as usize;
                    if let Err(e) = read_at(file, &mut buf[..len], offset) {
                        let _gone =
                            notes.send(ReaderNote::Failed { file: range.file, message: e.to_string() });
                        return;
                    }
                    let sha256: [u8; 32] = Sha256::digest(&buf[..len]).into();
                    let mut data = Bytes::copy_from_slice(&buf[..len]);
                    if fault.is_some_and(|f| f.file == range.file && f.index == index) && len > 0 {
                        fault = None;
                        let mut damaged = data.to_vec();
                        damaged[len / 2] ^= 0x40;
                        data = Bytes::from(damaged);
                    }
                    let message = Wire::Chunk { file: range.file, index, sha256, data }.encode();
                    if out.blocking_send(message).is_err() {
                        return;
                    }
                }
            }
        }
    })
}

#[cfg(unix)]
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

#[cfg(windows)]
fn read_at(file: &File, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
    while !buf.is_empty() {
        let n = std::os::windows::fs::FileExt::seek_read(file, buf, offset)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf = &mut buf[n..];
        offset += n as u64;
    }
    Ok(())
}

#[cfg(unix)]
fn write_at(file: &File, buf: &[u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(file, buf, offset)
}

#[cfg(windows)]
fn write_at(file: &File, mut buf: &[u8], mut offset: u64) -> io::Result<()> {
    while !buf.is_empty() {
        let n = std::os::windows::fs::FileExt::seek_write(file, buf, offset)?;
        buf = &buf[n..];
        offset += n as u64;
    }
    Ok(())
}

/// Where the receiver puts each file: final and partial paths, and the folders it created.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Targets {
    pub root: PathBuf,
    /// Final path of each file (inside `root`).
    pub finals: Vec<PathBuf>,
    /// Folders created for the transfer, parents first.
    pub created_dirs: Vec<PathBuf>,
}

impl Targets {
    pub fn part(&self, file: usize) -> Option<PathBuf> {
        self.finals.get(file).map(|f| part_path(f))
    }
}

fn part_path(final_path: &Path) -> PathBuf {
    let mut s = final_path.as_os_str().to_owned();
    s.push(PART_SUFFIX);
    PathBuf::from(s)
}

/// Chooses safe, free paths inside `root` for every file of `manifest` and creates each
/// partial file (empty) and the folders they need. A name already taken (by a file, a folder,
/// a link, or another file of the same transfer) gets a number; an existing link is never
/// followed. On error, whatever was created is removed again.
pub fn prepare(root: &Path, manifest: &Manifest) -> Result<Targets, FilesError> {
    let mut targets = Targets { root: root.to_path_buf(), finals: Vec::new(), created_dirs: Vec::new() };
    let result = (|| {
        let mut dirs: HashMap<PathBuf, PathBuf> = HashMap::new();
        for entry in &manifest.files {
            let rel = names::safe_relative(&entry.path);
            let mut parent = root.to_path_buf();
            let components: Vec<_> = rel.iter().map(|c| c.to_string_lossy().into_owned()).collect();
            let (file_name, folders) = components.split_last().ok_or(FilesError::Empty)?;
            let mut wanted = root.to_path_buf();
            for folder in folders {
                wanted.push(folder);
                if let Some(mapped) = dirs.get(&wanted) {
                    parent = mapped.clone();
                    continue;
                }
                let dir = free_dir(&parent, folder, &mut targets.created_dirs)?;
                dirs.insert(wanted.clone(), dir.clone());
                parent = dir;
            }
            let final_path = free_file(&parent, file_name, &targets.finals)?;
            if !names::stays_inside(root, &final_path) {
                return Err(FilesError::Io {
                    path: final_path,
                    source: io::Error::new(io::ErrorKind::InvalidInput, "outside the folder"),
                });
            }
            targets.finals.push(final_path);
        }
        Ok(())
    })();
    match result {
        Ok(()) => Ok(targets),
        Err(e) => {
            remove_partial(&targets);
            Err(e)
        }
    }
}

/// `parent/name`, or a numbered alternative, as a folder of ours: an existing real folder is
/// shared; a file or link in the way makes us pick another name.
fn free_dir(parent: &Path, name: &str, created: &mut Vec<PathBuf>) -> Result<PathBuf, FilesError> {
    for n in 0..10_000 {
        let candidate = parent.join(if n == 0 { name.to_string() } else { names::numbered(name, n) });
        match fs::symlink_metadata(&candidate) {
            Ok(meta) if meta.is_dir() => return Ok(candidate),
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir(&candidate).map_err(io_err(&candidate))?;
                created.push(candidate.clone());
                return Ok(candidate);
            }
            Err(e) => return Err(FilesError::Io { path: candidate, source: e }),
        }
    }
    Err(FilesError::Io { path: parent.join(name), source: io::Error::other("no free name") })
}

/// A final path not taken on disk (nor its partial file) nor by another file of this
/// transfer; its partial file is created (empty, `create_new`: never through a link).
fn free_file(parent: &Path, name: &str, taken: &[PathBuf]) -> Result<PathBuf, FilesError> {
    for n in 0..10_000 {
        let candidate = parent.join(if n == 0 { name.to_string() } else { names::numbered(name, n) });
        let lower = candidate.to_string_lossy().to_lowercase();
        // Compared without case: on Windows and macOS two such names are one file.
        if taken.iter().any(|t| t.to_string_lossy().to_lowercase() == lower)
            || fs::symlink_metadata(&candidate).is_ok()
        {
            continue;
        }
        match OpenOptions::new().write(true).create_new(true).open(part_path(&candidate)) {
            Ok(_) => return Ok(candidate),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(FilesError::Io { path: candidate, source: e }),
        }
    }
    Err(FilesError::Io { path: parent.join(name), source: io::Error::other("no free name") })
}

/// Removes every partial file and the folders created for them (if nothing else is inside).
pub fn remove_partial(targets: &Targets) {
    for i in 0..targets.finals.len() {
        if let Some(part) = targets.part(i)
            && let Err(e) = fs::remove_file(&part)
            && e.kind() != io::ErrorKind::NotFound
        {
            tracing::warn!(error = %e, "a partial file could not be removed");
        }
    }
    for dir in targets.created_dirs.iter().rev() {
        // Fails (and stays) when the user put something of theirs in it.
        let _kept_when_not_empty = fs::remove_dir(dir);
    }
}

/// Renames every partial file to its final name (a name taken meanwhile gets a number).
pub fn finalize(targets: &mut Targets) -> Result<(), FilesError> {
    for i in 0..targets.finals.len() {
        let part = part_path(&targets.finals[i]);
        let mut final_path = targets.finals[i].clone();
        let mut n = 0;
        while fs::symlink_metadata(&final_path).is_ok() {
            n += 1;
            let name =
                targets.finals[i].file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            final_path = targets.finals[i].with_file_name(names::numbered(&name, n));
        }
        fs::rename(&part, &final_path).map_err(io_err(&part))?;
        targets.finals[i] = final_path;
    }
    Ok(())
}

/// What the receiver's writer is asked to do.
#[derive(Debug)]
pub enum WriterMsg {
    Chunk {
        file: u32,
        index: u64,
        sha256: [u8; 32],
        data: Bytes,
    },
    /// Every chunk of the file is in: check its whole hash.
    Check(u32),
}

/// What the writer found.
#[derive(Debug, PartialEq, Eq)]
pub enum WriterNote {
    Verified { file: u32, index: u64, bytes: u64 },
    Corrupt { file: u32, index: u64 },
    FileVerified(u32),
    FileMismatch(u32),
    Failed(String),
}

/// The hash of a file's contiguous prefix, fed as chunks arrive in order; the rest is read
/// back from disk at the end (after a resume or a re-fetched chunk).
struct Running {
    hasher: Sha256,
    upto: u64,
}

/// Starts the receiver's writer thread.
pub fn start_writer(
    targets: Targets,
    manifest: Manifest,
    mut inbox: mpsc::Receiver<WriterMsg>,
    notes: mpsc::UnboundedSender<WriterNote>,
) -> io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new().name("hearth-transfer-write".into()).spawn(move || {
        let mut open: HashMap<u32, File> = HashMap::new();
        let mut running: HashMap<u32, Running> = HashMap::new();
        while let Some(msg) = inbox.blocking_recv() {
            let note = match msg {
                WriterMsg::Chunk { file, index, sha256, data } => {
                    write_chunk(&targets, &manifest, &mut open, &mut running, file, index, sha256, &data)
                }
                WriterMsg::Check(file) => {
                    open.remove(&file);
                    check_file(&targets, &manifest, running.remove(&file), file)
                }
            };
            if notes.send(note).is_err() {
                return;
            }
        }
    })
}

#[allow(clippy::too_many_arguments)]
fn write_chunk(
    targets: &Targets,
    manifest: &Manifest,
    open: &mut HashMap<u32, File>,
    running: &mut HashMap<u32, Running>,
    file: u32,
    index: u64,
    sha256: [u8; 32],
    data: &[u8],
) -> WriterNote {
    let Some(entry) = manifest.files.get(file as usize) else { return WriterNote::Corrupt { file, index } };
    let offset = index * u64::from(CHUNK_SIZE);
    let expected = entry.size.saturating_sub(offset).min(u64::from(CHUNK_SIZE));
    if index >= entry.chunks()
        || data.len() as u64 != expected
        || <[u8; 32]>::from(Sha256::digest(data)) != sha256
    {
        return WriterNote::Corrupt { file, index };
    }
    if !open.contains_key(&file) {
        if open.len() >= 8 {
            open.clear();
        }
        let Some(part) = targets.part(file as usize) else { return WriterNote::Corrupt { file, index } };
        match OpenOptions::new().write(true).open(&part) {
            Ok(f) => {
                open.insert(file, f);
            }
            Err(e) => return WriterNote::Failed(format!("{}: {e}", part.display())),
        }
    }
    let Some(f) = open.get(&file) else { return WriterNote::Failed("file handle lost".into()) };
    if let Err(e) = write_at(f, data, offset) {
        return WriterNote::Failed(format!("writing a received file: {e}"));
    }
    let run = running.entry(file).or_insert_with(|| Running { hasher: Sha256::new(), upto: 0 });
    if run.upto == offset {
        run.hasher.update(data);
        run.upto += data.len() as u64;
    }
    WriterNote::Verified { file, index, bytes: data.len() as u64 }
}

fn check_file(targets: &Targets, manifest: &Manifest, run: Option<Running>, file: u32) -> WriterNote {
    let (Some(entry), Some(part)) = (manifest.files.get(file as usize), targets.part(file as usize)) else {
        return WriterNote::FileMismatch(file);
    };
    let mut run = run.unwrap_or(Running { hasher: Sha256::new(), upto: 0 });
    let result = (|| -> io::Result<bool> {
        let f = OpenOptions::new().read(true).write(true).open(&part)?;
        f.set_len(entry.size)?;
        let mut buf = vec![0u8; 1 << 20];
        while run.upto < entry.size {
            let n = (entry.size - run.upto).min(buf.len() as u64) as usize;
            read_at(&f, &mut buf[..n], run.upto)?;
            run.hasher.update(&buf[..n]);
            run.upto += n as u64;
        }
        Ok(hex::encode(run.hasher.finalize()) == entry.sha256)
    })();
    match result {
        Ok(true) => WriterNote::FileVerified(file),
        Ok(false) => WriterNote::FileMismatch(file),
        Err(e) => WriterNote::Failed(format!("{}: {e}", part.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("hearth-files-{:016x}", rand::random::<u64>()));
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn entry(path: &str) -> FileEntry {
        FileEntry { path: path.into(), size: 1, sha256: "0".repeat(64) }
    }

    #[test]
    fn hostile_names_land_inside_and_clashes_get_numbers() {
        let root = temp();
        fs::write(root.join("taken.txt"), b"mine").unwrap();
        let manifest = Manifest {
            chunk_size: CHUNK_SIZE,
            files: vec![
                entry("../../escape.txt"),
                entry("/etc/passwd"),
                entry("taken.txt"),
                entry("a/b/c.txt"),
                entry("A/b/C.TXT"),
                entry("CON.txt"),
            ],
        };
        let targets = prepare(&root, &manifest).unwrap();
        let rel: Vec<String> = targets
            .finals
            .iter()
            .map(|p| p.strip_prefix(&root).unwrap().to_string_lossy().replace('\\', "/"))
            .collect();
        assert_eq!(rel[0], "escape.txt");
        assert_eq!(rel[1], "etc/passwd");
        assert_eq!(rel[2], "taken (1).txt");
        assert_eq!(rel[3], "a/b/c.txt");
        assert!(rel[5].starts_with("_CON"), "{}", rel[5]);
        assert_eq!(fs::read(root.join("taken.txt")).unwrap(), b"mine", "an existing file is untouched");
        assert!(targets.finals.iter().all(|f| names::stays_inside(&root, f)));
        remove_partial(&targets);
        let mut left: Vec<_> = fs::read_dir(&root).unwrap().map(|e| e.unwrap().file_name()).collect();
        left.sort();
        assert_eq!(left, vec![std::ffi::OsString::from("taken.txt")], "removal leaves only what was there");
        fs::remove_dir_all(&root).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn a_link_in_the_folder_is_never_followed() {
        let root = temp();
        let outside = temp();
        std::os::unix::fs::symlink(&outside, root.join("photos")).unwrap();
        let manifest = Manifest { chunk_size: CHUNK_SIZE, files: vec![entry("photos/x.jpg")] };
        let targets = prepare(&root, &manifest).unwrap();
        assert_eq!(targets.finals[0], root.join("photos (1)").join("x.jpg"));
        assert_eq!(fs::read_dir(&outside).unwrap().count(), 0);
        fs::remove_dir_all(&root).unwrap();
        fs::remove_dir_all(&outside).unwrap();
    }
}
