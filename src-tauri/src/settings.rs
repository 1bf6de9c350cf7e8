//! Per-device preferences the UI saves with `settings_set` (theme, language, notifications),
//! kept as JSON in the app data directory. The shell reads `notifications` itself to decide on
//! desktop notifications.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use ts_rs::TS;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, TS)]
#[serde(rename_all = "lowercase")]
pub enum Theme {
    #[default]
    Dark,
    Light,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, TS)]
pub enum Language {
    #[default]
    #[serde(rename = "en")]
    En,
    #[serde(rename = "zh-TW")]
    ZhTw,
    #[serde(rename = "fr")]
    Fr,
}

/// Which messages may raise a desktop notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, TS)]
#[serde(rename_all = "lowercase")]
pub enum NotifyLevel {
    All,
    /// Mentions of me, and every message in a DM.
    #[default]
    Mentions,
    None,
}

/// A channel's override of the global level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, TS)]
#[ts(rename = "ChannelNotify")]
pub struct ChannelNotifications {
    #[serde(default)]
    pub muted: bool,
    #[serde(default)]
    pub level: Option<NotifyLevel>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, TS)]
pub struct NotificationSettings {
    #[serde(default)]
    pub level: NotifyLevel,
    /// Keyed by channel id (as the UI writes it: the id's decimal string).
    #[serde(default)]
    pub channels: HashMap<String, ChannelNotifications>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, TS)]
pub struct Settings {
    #[serde(default)]
    pub theme: Theme,
    #[serde(default)]
    pub language: Language,
    #[serde(default)]
    pub notifications: NotificationSettings,
}

/// The settings file of one app data directory.
#[derive(Debug, Clone)]
pub struct SettingsFile {
    path: PathBuf,
}

impl SettingsFile {
    pub fn in_dir(dir: &Path) -> SettingsFile {
        SettingsFile { path: dir.join("settings.json") }
    }

    /// The saved settings; defaults when there are none or the file cannot be read (a broken
    /// preferences file must not keep the app from starting).
    pub fn load(&self) -> Settings {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                tracing::warn!("ignoring unreadable settings file {}: {e}", self.path.display());
                Settings::default()
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Settings::default(),
            Err(e) => {
                tracing::warn!("cannot read settings file {}: {e}", self.path.display());
                Settings::default()
            }
        }
    }

    pub fn save(&self, settings: &Settings) -> std::io::Result<()> {
        write_json_atomically(&self.path, settings)
    }
}

/// Writes `value` as pretty JSON to `path` (a `.json` file) atomically: a temporary file, then
/// a rename, so a crash never leaves half a file.
pub fn write_json_atomically(path: &Path, value: &impl Serialize) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let json = serde_json::to_vec_pretty(value).map_err(std::io::Error::other)?;
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, json)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("hearth-desktop-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn defaults_when_nothing_is_saved() {
        let file = SettingsFile::in_dir(&temp_dir("none"));
        assert_eq!(file.load(), Settings::default());
        assert_eq!(file.load().notifications.level, NotifyLevel::Mentions);
    }

    #[test]
    fn saved_settings_are_read_back() {
        let dir = temp_dir("roundtrip");
        let file = SettingsFile::in_dir(&dir);
        let mut settings = Settings { theme: Theme::Light, language: Language::ZhTw, ..Default::default() };
        settings.notifications.level = NotifyLevel::All;
        settings
            .notifications
            .channels
            .insert("42".into(), ChannelNotifications { muted: true, level: None });
        file.save(&settings).unwrap();
        assert_eq!(SettingsFile::in_dir(&dir).load(), settings);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn reads_the_uis_json_shape() {
        let json = r#"{"theme":"light","language":"zh-TW","notifications":{"level":"none",
            "channels":{"7":{"muted":false,"level":"all"}}}}"#;
        let s: Settings = serde_json::from_str(json).unwrap();
        assert_eq!(s.language, Language::ZhTw);
        assert_eq!(s.notifications.level, NotifyLevel::None);
        assert_eq!(s.notifications.channels["7"].level, Some(NotifyLevel::All));
    }

    #[test]
    fn a_corrupt_file_gives_defaults() {
        let dir = temp_dir("corrupt");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("settings.json"), b"{not json").unwrap();
        assert_eq!(SettingsFile::in_dir(&dir).load(), Settings::default());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
