//! The data directory's lock: one `hearth-server` process at a time owns a data directory.
//! The server holds it while it runs; `restore` and offline `admin` commands take it so that
//! no server starts under them. A second server on the same data directory (and so the same
//! SQLite file) is refused with a plain message instead of fighting over the database.

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::Context;

const LOCK_FILE: &str = "hearth.lock";

/// Held while alive; the kernel releases it when the process ends, however it ends.
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
    pub path: PathBuf,
}

/// Someone else holds the lock: a running server (or an admin command in progress).
#[derive(Debug, thiserror::Error)]
#[error(
    "another hearth-server is running with the data directory {0} (it holds {LOCK_FILE}); stop it \
     first, or use `hearth-server admin`, which talks to the running server"
)]
pub struct InUse(pub PathBuf);

impl DataDirLock {
    /// Takes the lock without waiting; `Err` with [`InUse`] inside when it is held.
    pub fn acquire(data_dir: &Path) -> anyhow::Result<DataDirLock> {
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("creating data directory {}", data_dir.display()))?;
        let path = data_dir.join(LOCK_FILE);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        lock(&file).map_err(|e| match e.kind() {
            std::io::ErrorKind::WouldBlock => anyhow::Error::new(InUse(data_dir.to_path_buf())),
            _ => anyhow::Error::new(e).context(format!("locking {}", path.display())),
        })?;
        Ok(DataDirLock { _file: file, path })
    }

    /// Whether a process holds the lock now (without taking it).
    pub fn is_held(data_dir: &Path) -> bool {
        match DataDirLock::acquire(data_dir) {
            Ok(_released_on_drop) => false,
            Err(e) => e.is::<InUse>(),
        }
    }
}

/// `flock` on Unix, `LockFileEx` on Windows (std's advisory lock).
fn lock(file: &File) -> std::io::Result<()> {
    file.try_lock().map_err(|e| match e {
        std::fs::TryLockError::WouldBlock => std::io::ErrorKind::WouldBlock.into(),
        std::fs::TryLockError::Error(e) => e,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_until_the_first_lets_go() {
        let dir = std::env::temp_dir().join(format!("hearth-lock-{}", std::process::id()));
        let first = DataDirLock::acquire(&dir).unwrap();
        let second = DataDirLock::acquire(&dir).unwrap_err();
        assert!(second.is::<InUse>(), "{second:#}");
        assert!(DataDirLock::is_held(&dir));
        drop(first);
        assert!(!DataDirLock::is_held(&dir));
        DataDirLock::acquire(&dir).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
