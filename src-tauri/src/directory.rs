//! What the UI shows of each saved account that the engine does not keep: the server's name
//! and the user's last known profile. Kept as JSON next to the settings; no secrets in it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use hearth_client::AccountInfo;
use hearth_protocol::model::User;
use serde::{Deserialize, Serialize};

/// An account as the UI sees it (`Account` in `backend.ts`): never a token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ts_rs::TS)]
pub struct Account {
    pub id: String,
    pub server_url: String,
    pub server_name: String,
    pub user: User,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Entry {
    server_name: Option<String>,
    user: Option<User>,
}

/// Server names and profiles by account id.
#[derive(Debug)]
pub struct Directory {
    path: PathBuf,
    entries: HashMap<String, Entry>,
}

impl Directory {
    pub fn load(dir: &Path) -> Directory {
        let path = dir.join("accounts-view.json");
        let entries = std::fs::read(&path)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        Directory { path, entries }
    }

    pub fn set_server_name(&mut self, account_id: &str, name: &str) {
        self.entries.entry(account_id.to_string()).or_default().server_name = Some(name.to_string());
        self.save();
    }

    pub fn set_user(&mut self, account_id: &str, user: &User) {
        let entry = self.entries.entry(account_id.to_string()).or_default();
        if entry.user.as_ref() != Some(user) {
            entry.user = Some(user.clone());
            self.save();
        }
    }

    pub fn forget(&mut self, account_id: &str) {
        if self.entries.remove(account_id).is_some() {
            self.save();
        }
    }

    /// The UI's view of a saved account; before any profile is known, one made from the
    /// username, and the server's address as its name.
    pub fn account(&self, info: &AccountInfo) -> Account {
        let entry = self.entries.get(&info.id);
        let user = entry.and_then(|e| e.user.clone()).unwrap_or_else(|| User {
            id: info.user_id,
            username: info.username.clone(),
            display_name: info.username.clone(),
            avatar: None,
            role: hearth_protocol::model::Role::Member,
        });
        let server_name = entry.and_then(|e| e.server_name.clone()).unwrap_or_else(|| host_of(&info.server));
        Account { id: info.id.clone(), server_url: info.server.clone(), server_name, user }
    }

    fn save(&self) {
        // The view is a convenience; failing to save it costs a server name until next login.
        let written = serde_json::to_vec(&self.entries)
            .map_err(std::io::Error::other)
            .and_then(|json| std::fs::write(&self.path, json));
        if let Err(e) = written {
            tracing::warn!("cannot save {}: {e}", self.path.display());
        }
    }
}

fn host_of(server: &str) -> String {
    url::Url::parse(server)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_else(|| server.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hearth_protocol::UserId;

    fn info() -> AccountInfo {
        AccountInfo {
            id: "a1".into(),
            server: "https://chat.example.org".into(),
            user_id: UserId(5),
            username: "alice".into(),
            active: true,
        }
    }

    #[test]
    fn unknown_accounts_fall_back_to_username_and_host() {
        let dir = std::env::temp_dir().join(format!("hearth-dir-empty-{}", std::process::id()));
        let account = Directory::load(&dir).account(&info());
        assert_eq!(account.server_name, "chat.example.org");
        assert_eq!(account.user.display_name, "alice");
    }

    #[test]
    fn names_and_profiles_survive_a_restart() {
        let dir = std::env::temp_dir().join(format!("hearth-dir-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut d = Directory::load(&dir);
        d.set_server_name("a1", "Our Place");
        let mut user = d.account(&info()).user;
        user.display_name = "Alice A.".into();
        d.set_user("a1", &user);
        let again = Directory::load(&dir).account(&info());
        assert_eq!((again.server_name.as_str(), again.user.display_name.as_str()), ("Our Place", "Alice A."));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
