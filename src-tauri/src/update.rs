//! Signed updates (tauri-plugin-updater): the app asks the release endpoint of
//! `plugins.updater.endpoints` (tauri.conf.json) for a newer version, downloads it, and installs
//! it only when its minisign signature matches `plugins.updater.pubkey` and names the version
//! the endpoint announced (`requireSignedVersion`, so a replayed old release cannot pose as a
//! new one). The private key signs releases in the release workflow and is never in the tree.
//!
//! [`find`] and [`fetch`] are generic over the runtime so that `tests/updater.rs` drives them
//! with Tauri's mock runtime against a local endpoint; the commands are the thin wrappers.

use serde::Serialize;
use tauri::{AppHandle, Runtime};
use tauri_plugin_updater::{Update, UpdaterExt};

use crate::error::{CommandError, CommandResult};

/// Why an update was not found or not installed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UpdateError {
    /// The endpoint or the download could not be reached, or answered with something that is
    /// not a release.
    #[error("the update server cannot be reached or gave no usable release: {0}")]
    Unreachable(tauri_plugin_updater::Error),
    /// The download does not carry a valid signature by the app's key, or was signed for
    /// another version than the one announced. Nothing is installed.
    #[error("the update's signature does not match: {0}")]
    BadSignature(tauri_plugin_updater::Error),
    /// Anything else: the app's updater configuration, or installing on this system.
    #[error("the update cannot be installed: {0}")]
    Install(tauri_plugin_updater::Error),
}

impl From<tauri_plugin_updater::Error> for UpdateError {
    fn from(err: tauri_plugin_updater::Error) -> UpdateError {
        use tauri_plugin_updater::Error as E;
        match err {
            E::Minisign(_)
            | E::Base64(_)
            | E::SignatureUtf8(_)
            | E::SignedVersionMismatch { .. }
            | E::MissingSignedVersion => UpdateError::BadSignature(err),
            E::Reqwest(_)
            | E::Network(_)
            | E::ReleaseNotFound
            | E::Serialization(_)
            | E::TargetNotFound(_)
            | E::TargetsNotFound(_) => UpdateError::Unreachable(err),
            _ => UpdateError::Install(err),
        }
    }
}

impl From<UpdateError> for CommandError {
    fn from(err: UpdateError) -> CommandError {
        tracing::warn!("update: {err}");
        match err {
            UpdateError::Unreachable(_) => {
                CommandError::new("update_unreachable", "Cannot reach the update server; try again later.")
            }
            UpdateError::BadSignature(_) => CommandError::new(
                "update_bad_signature",
                "The update is not signed by the Hearth release key; it was not installed.",
            ),
            UpdateError::Install(_) => CommandError::new("update_failed", "The update could not be installed."),
        }
    }
}

/// A newer version, as the UI shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UpdateInfo {
    pub version: String,
    pub current_version: String,
    pub notes: Option<String>,
}

impl From<&Update> for UpdateInfo {
    fn from(update: &Update) -> UpdateInfo {
        UpdateInfo {
            version: update.version.clone(),
            current_version: update.current_version.clone(),
            notes: update.body.clone(),
        }
    }
}

/// Asks the configured endpoints for a version newer than this one.
pub async fn find<R: Runtime>(app: &AppHandle<R>) -> Result<Option<Update>, UpdateError> {
    Ok(app.updater()?.check().await?)
}

/// Downloads an update and checks its signature; the bytes are returned only when it matches.
pub async fn fetch(update: &Update) -> Result<Vec<u8>, UpdateError> {
    Ok(update.download(|_, _| {}, || {}).await?)
}

#[tauri::command]
pub async fn update_check(app: AppHandle) -> CommandResult<Option<UpdateInfo>> {
    Ok(find(&app).await?.as_ref().map(UpdateInfo::from))
}

/// Downloads, verifies and installs the newest version, then restarts into it (on Windows the
/// installer closes the app itself).
#[tauri::command]
pub async fn update_install(app: AppHandle) -> CommandResult<()> {
    let Some(update) = find(&app).await? else {
        return Err(CommandError::new("update_none", "Hearth is up to date."));
    };
    let bytes = fetch(&update).await?;
    update.install(bytes).map_err(UpdateError::from)?;
    app.restart()
}
