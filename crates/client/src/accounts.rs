//! Saved accounts (server, user, refresh token) in `DATA_DIR/accounts.json`, written
//! atomically and readable only by the owner, since the refresh token is a secret.

use std::io::Write;
use std::path::{Path, PathBuf};

use hearth_protocol::UserId;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

const FILE_NAME: &str = "accounts.json";
const FORMAT_VERSION: u32 = 1;

/// One saved login. `Debug` leaves the refresh token out.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Account {
    /// Stable local id: `USER_ID@SERVER`.
    pub id: String,
    /// The server's base URL.
    pub server: String,
    pub user_id: UserId,
    pub username: String,
    refresh_token: String,
}

impl std::fmt::Debug for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Account")
            .field("id", &self.id)
            .field("server", &self.server)
            .field("user_id", &self.user_id)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl Account {
    pub fn new(server: &str, user_id: UserId, username: &str, refresh_token: &str) -> Account {
        Account {
            id: format!("{user_id}@{server}"),
            server: server.to_string(),
            user_id,
            username: username.to_string(),
            refresh_token: refresh_token.to_string(),
        }
    }

    pub fn refresh_token(&self) -> &str {
        &self.refresh_token
    }

    /// A name for this account's folder: the id with everything but letters and digits
    /// replaced, so it is safe on every file system.
    pub fn dir_name(&self) -> String {
        self.id.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect()
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct AccountsFile {
    version: u32,
    active: Option<String>,
    accounts: Vec<Account>,
}

/// The saved accounts and which one is active.
#[derive(Debug)]
pub struct Accounts {
    path: PathBuf,
    file: AccountsFile,
}

impl Accounts {
    /// Reads `dir/accounts.json`, or starts empty when there is none.
    pub fn load(dir: &Path) -> Result<Accounts> {
        let path = dir.join(FILE_NAME);
        let file = match std::fs::read(&path) {
            Ok(bytes) => {
                let file: AccountsFile = serde_json::from_slice(&bytes)
                    .map_err(|e| Error::Corrupt(format!("{}: {e}", path.display())))?;
                if file.version > FORMAT_VERSION {
                    return Err(Error::Corrupt(format!("{} was written by a newer version", path.display())));
                }
                file
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => AccountsFile::default(),
            Err(e) => return Err(e.into()),
        };
        Ok(Accounts { path, file })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn list(&self) -> &[Account] {
        &self.file.accounts
    }

    pub fn get(&self, id: &str) -> Option<&Account> {
        self.file.accounts.iter().find(|a| a.id == id)
    }

    pub fn active(&self) -> Option<&Account> {
        self.file.active.as_deref().and_then(|id| self.get(id))
    }

    /// Adds the account, or replaces the saved login of the same user on the same server.
    pub fn upsert(&mut self, account: Account) -> Result<()> {
        match self.file.accounts.iter_mut().find(|a| a.id == account.id) {
            Some(existing) => *existing = account,
            None => self.file.accounts.push(account),
        }
        self.save()
    }

    pub fn set_active(&mut self, id: &str) -> Result<()> {
        if self.get(id).is_none() {
            return Err(Error::NoSuchAccount(id.to_string()));
        }
        self.file.active = Some(id.to_string());
        self.save()
    }

    /// Saves the successor of a spent refresh token.
    pub fn set_refresh_token(&mut self, id: &str, token: &str) -> Result<()> {
        let account = self
            .file
            .accounts
            .iter_mut()
            .find(|a| a.id == id)
            .ok_or_else(|| Error::NoSuchAccount(id.to_string()))?;
        account.refresh_token = token.to_string();
        self.save()
    }

    pub fn remove(&mut self, id: &str) -> Result<Option<Account>> {
        let Some(i) = self.file.accounts.iter().position(|a| a.id == id) else {
            return Ok(None);
        };
        let removed = self.file.accounts.remove(i);
        if self.file.active.as_deref() == Some(id) {
            self.file.active = None;
        }
        self.save()?;
        Ok(Some(removed))
    }

    /// Writes a temporary file (mode 0600 on unix), syncs it and renames it over the old one,
    /// so a crash leaves either the old or the new file, never half of one.
    fn save(&mut self) -> Result<()> {
        self.file.version = FORMAT_VERSION;
        let bytes = serde_json::to_vec_pretty(&self.file).map_err(|e| Error::Corrupt(e.to_string()))?;
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)?;
        let tmp = self.path.with_extension("json.tmp");
        match std::fs::remove_file(&tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut f = options.open(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, &self.path)?;
        #[cfg(unix)]
        if let Ok(d) = std::fs::File::open(dir) {
            // Makes the rename itself durable; failing here loses nothing already written.
            if let Err(e) = d.sync_all() {
                tracing::debug!(error = %e, "could not sync the data directory");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("hearth-accounts-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn accounts_survive_a_reload_and_switch() {
        let dir = temp_dir();
        let mut a = Accounts::load(&dir).unwrap();
        let alice = Account::new("https://h.example", UserId(1), "alice", "r1");
        let bob = Account::new("https://other.example", UserId(2), "bob", "r2");
        a.upsert(alice.clone()).unwrap();
        a.upsert(bob.clone()).unwrap();
        a.set_active(&alice.id).unwrap();
        a.set_refresh_token(&alice.id, "r1b").unwrap();
        let mut b = Accounts::load(&dir).unwrap();
        assert_eq!(b.list().len(), 2);
        assert_eq!(b.active().unwrap().refresh_token(), "r1b");
        b.set_active(&bob.id).unwrap();
        assert_eq!(Accounts::load(&dir).unwrap().active().unwrap().username, "bob");
        assert!(matches!(b.set_active("nobody"), Err(Error::NoSuchAccount(_))));
        b.remove(&bob.id).unwrap();
        assert!(Accounts::load(&dir).unwrap().active().is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn debug_output_never_shows_the_refresh_token() {
        let a = Account::new("https://h.example", UserId(1), "alice", "very-secret-token");
        assert!(!format!("{a:?}").contains("very-secret"));
    }

    #[cfg(unix)]
    #[test]
    fn the_file_is_private_to_its_owner() {
        use std::os::unix::fs::PermissionsExt;
        let dir = temp_dir();
        let mut a = Accounts::load(&dir).unwrap();
        a.upsert(Account::new("https://h.example", UserId(1), "alice", "r")).unwrap();
        let mode = std::fs::metadata(a.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_corrupt_file_is_reported_not_overwritten() {
        let dir = temp_dir();
        std::fs::write(dir.join(FILE_NAME), b"{not json").unwrap();
        assert!(matches!(Accounts::load(&dir), Err(Error::Corrupt(_))));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
