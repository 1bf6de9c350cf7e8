//! `VoiceSettings` of the contract (`ui/src/lib/backend/README.md`, "Voice"): validation (all
//! or nothing), the mapping to the engine's [`hearth_client::VoiceSettings`], and the JSON file
//! in the app data directory. Per-user volumes belong to an account (the same user id means
//! nothing on another server), so the file keeps them by account id.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use hearth_client::voice::TransmitMode;
use hearth_protocol::UserId;
use serde::{Deserialize, Serialize};
use tauri_plugin_global_shortcut::Shortcut;

use crate::error::CommandError;

/// The threshold range of the contract, in dBFS.
pub const THRESHOLD_MIN_DBFS: f64 = -80.0;
pub const THRESHOLD_MAX_DBFS: f64 = -20.0;
pub const DEFAULT_THRESHOLD_DBFS: f64 = -50.0;
/// Per-user volume, integer percent.
pub const VOLUME_MAX: f64 = 200.0;
pub const VOLUME_DEFAULT: u32 = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum InputMode {
    #[default]
    VoiceActivity,
    PushToTalk,
}

/// `VoiceSettings` of `backend.ts`, exactly as the UI sends and reads it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct VoiceSettings {
    pub input_device: Option<String>,
    pub output_device: Option<String>,
    pub input_mode: InputMode,
    pub ptt_key: Option<String>,
    pub input_threshold_dbfs: f64,
    pub noise_suppression: bool,
    pub echo_cancellation: bool,
    pub sounds: bool,
    /// Percent 0..200 by user id (decimal string); absent = 100. Numbers as the UI sends them,
    /// checked by [`VoiceSettings::validate`].
    pub user_volumes: BTreeMap<String, f64>,
}

impl Default for VoiceSettings {
    fn default() -> Self {
        VoiceSettings {
            input_device: None,
            output_device: None,
            input_mode: InputMode::VoiceActivity,
            ptt_key: None,
            input_threshold_dbfs: DEFAULT_THRESHOLD_DBFS,
            noise_suppression: true,
            echo_cancellation: true,
            sounds: true,
            user_volumes: BTreeMap::new(),
        }
    }
}

impl VoiceSettings {
    /// Checks every field that needs no device or OS: threshold, volumes, user ids and the
    /// push-to-talk accelerator's syntax. Returns the parsed accelerator to register, if any.
    pub fn validate(&self) -> Result<Option<Shortcut>, CommandError> {
        if !(THRESHOLD_MIN_DBFS..=THRESHOLD_MAX_DBFS).contains(&self.input_threshold_dbfs) {
            return Err(CommandError::invalid_field("input_threshold_dbfs: -80 to -20"));
        }
        for (user, volume) in &self.user_volumes {
            parse_user(user)?;
            check_volume(*volume)?;
        }
        let shortcut = match &self.ptt_key {
            Some(key) => Some(parse_shortcut(key)?),
            None => None,
        };
        Ok(shortcut.filter(|_| self.input_mode == InputMode::PushToTalk))
    }

    /// The engine's settings for a call (or the mic test) with this device's mute/deafen.
    pub fn engine(&self, muted: bool, deafened: bool) -> hearth_client::VoiceSettings {
        hearth_client::VoiceSettings {
            muted,
            deafened,
            mode: match self.input_mode {
                InputMode::VoiceActivity => TransmitMode::VoiceActivity,
                InputMode::PushToTalk => TransmitMode::PushToTalk,
            },
            sensitivity: sensitivity(self.input_threshold_dbfs),
            noise_suppression: self.noise_suppression,
            echo_cancellation: self.echo_cancellation,
            user_volumes: self
                .user_volumes
                .iter()
                .filter_map(|(user, volume)| Some((UserId::from_str(user).ok()?, gain(*volume))))
                .collect(),
            sounds: self.sounds,
        }
    }
}

/// The engine's sensitivity (0..1) for a threshold in dBFS: `threshold = -20 - 60 × sensitivity`.
pub fn sensitivity(threshold_dbfs: f64) -> f32 {
    ((THRESHOLD_MAX_DBFS - threshold_dbfs) / 60.0).clamp(0.0, 1.0) as f32
}

/// The threshold in dBFS for an engine sensitivity (0..1).
pub fn threshold_dbfs(sensitivity: f32) -> f64 {
    THRESHOLD_MAX_DBFS - 60.0 * f64::from(sensitivity.clamp(0.0, 1.0))
}

/// The engine's gain (0.0..2.0) for a volume in percent.
pub fn gain(volume: f64) -> f32 {
    (volume / 100.0).clamp(0.0, 2.0) as f32
}

/// A volume must be an integer percent 0..200.
pub fn check_volume(volume: f64) -> Result<u32, CommandError> {
    if !(0.0..=VOLUME_MAX).contains(&volume) || volume.fract() != 0.0 {
        return Err(CommandError::invalid_field("volume: a whole number from 0 to 200"));
    }
    Ok(volume as u32)
}

pub fn parse_user(user: &str) -> Result<UserId, CommandError> {
    UserId::from_str(user).map_err(|_| CommandError::invalid_field("user_volumes: keys are user ids"))
}

/// Parses a push-to-talk accelerator (`Control+Shift+KeyV`, `F13`, `Backquote`…).
pub fn parse_shortcut(key: &str) -> Result<Shortcut, CommandError> {
    Shortcut::from_str(key.trim()).map_err(|e| {
        tracing::debug!("push-to-talk key {key:?} refused: {e}");
        invalid_shortcut("This key cannot be used for push-to-talk.")
    })
}

pub fn invalid_shortcut(message: &str) -> CommandError {
    CommandError::new("invalid_shortcut", message)
}

/// What the file holds: the device-wide settings and each account's volumes.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
struct Saved {
    #[serde(flatten)]
    device: DeviceWide,
    /// By account id, then by user id.
    #[serde(default)]
    user_volumes: BTreeMap<String, BTreeMap<String, f64>>,
}

/// The fields of [`VoiceSettings`] that do not depend on the account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
struct DeviceWide {
    input_device: Option<String>,
    output_device: Option<String>,
    input_mode: InputMode,
    ptt_key: Option<String>,
    input_threshold_dbfs: f64,
    noise_suppression: bool,
    echo_cancellation: bool,
    sounds: bool,
}

impl Default for DeviceWide {
    fn default() -> Self {
        DeviceWide::of(&VoiceSettings::default())
    }
}

impl DeviceWide {
    fn of(s: &VoiceSettings) -> DeviceWide {
        DeviceWide {
            input_device: s.input_device.clone(),
            output_device: s.output_device.clone(),
            input_mode: s.input_mode,
            ptt_key: s.ptt_key.clone(),
            input_threshold_dbfs: s.input_threshold_dbfs,
            noise_suppression: s.noise_suppression,
            echo_cancellation: s.echo_cancellation,
            sounds: s.sounds,
        }
    }
}

/// The voice settings file (`voice.json`) of one app data directory, and its contents.
#[derive(Debug)]
pub struct VoiceSettingsFile {
    path: PathBuf,
    saved: Saved,
}

impl VoiceSettingsFile {
    /// Reads the file; defaults when there is none or it is unreadable or out of range (a
    /// broken preferences file must not keep the app from starting or from joining).
    pub fn load(dir: &Path) -> VoiceSettingsFile {
        let path = dir.join("voice.json");
        let saved = match std::fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice::<Saved>(&bytes) {
                Ok(saved) => saved,
                Err(e) => {
                    tracing::warn!("ignoring unreadable voice settings {}: {e}", path.display());
                    Saved::default()
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Saved::default(),
            Err(e) => {
                tracing::warn!("cannot read voice settings {}: {e}", path.display());
                Saved::default()
            }
        };
        let mut file = VoiceSettingsFile { path, saved };
        if file.get(None).validate().is_err() {
            tracing::warn!("voice settings out of range; using defaults");
            file.saved.device = DeviceWide::default();
        }
        file
    }

    /// The settings as the UI sees them with `account`'s volumes.
    pub fn get(&self, account: Option<&str>) -> VoiceSettings {
        let d = &self.saved.device;
        VoiceSettings {
            input_device: d.input_device.clone(),
            output_device: d.output_device.clone(),
            input_mode: d.input_mode,
            ptt_key: d.ptt_key.clone(),
            input_threshold_dbfs: d.input_threshold_dbfs,
            noise_suppression: d.noise_suppression,
            echo_cancellation: d.echo_cancellation,
            sounds: d.sounds,
            user_volumes: account
                .and_then(|a| self.saved.user_volumes.get(a))
                .map(|volumes| {
                    // Entries a hand-edited file got wrong are left out rather than failing.
                    volumes
                        .iter()
                        .filter(|(_, v)| check_volume(**v).is_ok())
                        .map(|(k, v)| (k.clone(), *v))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// Replaces the settings (and `account`'s volumes) and writes the file. On a write error
    /// nothing changes.
    pub fn set(&mut self, account: Option<&str>, settings: &VoiceSettings) -> std::io::Result<()> {
        let mut next = self.saved.clone();
        next.device = DeviceWide::of(settings);
        if let Some(account) = account {
            // 100 is the default: no entry.
            let volumes: BTreeMap<String, f64> = settings
                .user_volumes
                .iter()
                .filter(|(_, v)| **v != f64::from(VOLUME_DEFAULT))
                .map(|(k, v)| (k.clone(), *v))
                .collect();
            if volumes.is_empty() {
                next.user_volumes.remove(account);
            } else {
                next.user_volumes.insert(account.to_string(), volumes);
            }
        }
        self.write(&next)?;
        self.saved = next;
        Ok(())
    }

    /// Sets one user's volume for `account` (100 removes the entry) and writes the file.
    pub fn set_volume(&mut self, account: &str, user: UserId, volume: u32) -> std::io::Result<()> {
        let mut settings = self.get(Some(account));
        if volume == VOLUME_DEFAULT {
            settings.user_volumes.remove(&user.to_string());
        } else {
            settings.user_volumes.insert(user.to_string(), f64::from(volume));
        }
        self.set(Some(account), &settings)
    }

    fn write(&self, saved: &Saved) -> std::io::Result<()> {
        crate::settings::write_json_atomically(&self.path, saved)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("hearth-desktop-voice-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn defaults_are_the_contracts() {
        let json = serde_json::to_value(VoiceSettings::default()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "input_device": null, "output_device": null, "input_mode": "voice_activity",
                "ptt_key": null, "input_threshold_dbfs": -50.0, "noise_suppression": true,
                "echo_cancellation": true, "sounds": true, "user_volumes": {}
            })
        );
        let engine = VoiceSettings::default().engine(false, false);
        assert_eq!(engine, hearth_client::VoiceSettings::default());
    }

    #[test]
    fn threshold_maps_to_sensitivity_and_back() {
        assert_eq!(sensitivity(-20.0), 0.0);
        assert_eq!(sensitivity(-80.0), 1.0);
        assert_eq!(sensitivity(-50.0), 0.5);
        for threshold in [-80.0, -65.0, -50.0, -35.5, -20.0] {
            assert!((threshold_dbfs(sensitivity(threshold)) - threshold).abs() < 1e-4, "{threshold}");
        }
    }

    #[test]
    fn volume_percent_is_gain_times_100() {
        assert_eq!(gain(0.0), 0.0);
        assert_eq!(gain(100.0), 1.0);
        assert_eq!(gain(200.0), 2.0);
        assert_eq!(gain(50.0), 0.5);
        assert_eq!(check_volume(150.0), Ok(150));
        for bad in [-1.0, 201.0, 50.5, f64::NAN] {
            assert_eq!(check_volume(bad).unwrap_err().code, "invalid_field", "{bad}");
        }
    }

    #[test]
    fn validation_rejects_each_bad_field() {
        let ok = VoiceSettings::default();
        assert_eq!(ok.validate(), Ok(None));

        let s = VoiceSettings { input_threshold_dbfs: -81.0, ..ok.clone() };
        assert_eq!(s.validate().unwrap_err().code, "invalid_field");
        let s = VoiceSettings { input_threshold_dbfs: -19.5, ..ok.clone() };
        assert_eq!(s.validate().unwrap_err().code, "invalid_field");

        let mut s = ok.clone();
        s.user_volumes.insert("42".into(), 250.0);
        assert_eq!(s.validate().unwrap_err().code, "invalid_field");
        let mut s = ok.clone();
        s.user_volumes.insert("not-a-user".into(), 50.0);
        assert_eq!(s.validate().unwrap_err().code, "invalid_field");

        let s = VoiceSettings { ptt_key: Some("Control+Nope".into()), ..ok.clone() };
        assert_eq!(s.validate().unwrap_err().code, "invalid_shortcut");
    }

    #[test]
    fn a_shortcut_is_registered_only_in_push_to_talk_mode() {
        let vad = VoiceSettings { ptt_key: Some("Control+Shift+KeyV".into()), ..VoiceSettings::default() };
        assert_eq!(vad.validate(), Ok(None));
        let ptt = VoiceSettings { input_mode: InputMode::PushToTalk, ..vad };
        assert_eq!(ptt.validate().unwrap().map(|s| s.to_string()), Some("shift+control+KeyV".into()));
        let unbound = VoiceSettings { input_mode: InputMode::PushToTalk, ..VoiceSettings::default() };
        assert_eq!(unbound.validate(), Ok(None));
    }

    #[test]
    fn the_contracts_accelerators_parse_and_others_do_not() {
        for key in ["Control+Shift+KeyV", "F13", "Backquote", "Alt+Digit1", "Space", "Super+KeyP"] {
            assert!(parse_shortcut(key).is_ok(), "{key}");
        }
        for key in ["", "Control+", "Control+Shift", "KeyV+KeyB", "Hyper+KeyV", "Ctrl+Ctrl"] {
            assert_eq!(parse_shortcut(key).unwrap_err().code, "invalid_shortcut", "{key:?}");
        }
    }

    #[test]
    fn engine_settings_follow_the_fields() {
        let mut s = VoiceSettings {
            input_mode: InputMode::PushToTalk,
            input_threshold_dbfs: -80.0,
            noise_suppression: false,
            echo_cancellation: false,
            sounds: false,
            ..VoiceSettings::default()
        };
        s.user_volumes.insert("7".into(), 150.0);
        let e = s.engine(true, true);
        assert!(e.muted && e.deafened);
        assert_eq!(e.mode, TransmitMode::PushToTalk);
        assert_eq!(e.sensitivity, 1.0);
        assert!(!e.noise_suppression && !e.echo_cancellation && !e.sounds);
        assert_eq!(e.user_volumes.get(&UserId(7)), Some(&1.5));
    }

    #[test]
    fn volumes_are_kept_per_account() {
        let dir = temp_dir("accounts");
        let mut file = VoiceSettingsFile::load(&dir);
        file.set_volume("a1", UserId(7), 150).unwrap();
        file.set_volume("a2", UserId(7), 30).unwrap();
        let mut s = file.get(Some("a1"));
        s.input_threshold_dbfs = -60.0;
        file.set(Some("a1"), &s).unwrap();

        let file = VoiceSettingsFile::load(&dir);
        assert_eq!(file.get(Some("a1")).user_volumes.get("7"), Some(&150.0));
        assert_eq!(file.get(Some("a2")).user_volumes.get("7"), Some(&30.0));
        assert_eq!(file.get(Some("a3")).user_volumes.len(), 0);
        assert_eq!(file.get(Some("a2")).input_threshold_dbfs, -60.0, "device-wide fields are shared");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn volume_100_removes_the_entry() {
        let dir = temp_dir("hundred");
        let mut file = VoiceSettingsFile::load(&dir);
        file.set_volume("a1", UserId(7), 150).unwrap();
        file.set_volume("a1", UserId(7), 100).unwrap();
        assert!(file.get(Some("a1")).user_volumes.is_empty());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_corrupt_or_out_of_range_file_gives_defaults() {
        let dir = temp_dir("corrupt");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("voice.json"), b"{not json").unwrap();
        assert_eq!(VoiceSettingsFile::load(&dir).get(None), VoiceSettings::default());
        std::fs::write(dir.join("voice.json"), br#"{"input_threshold_dbfs": 12}"#).unwrap();
        assert_eq!(VoiceSettingsFile::load(&dir).get(None), VoiceSettings::default());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
