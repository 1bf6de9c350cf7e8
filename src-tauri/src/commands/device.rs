//! `settings_*`, `link_open`, `link_take_startup` and `autostart_*`: this computer's
//! preferences, the system browser, the deep link the app was started with, and whether Hearth
//! starts with the system.

use tauri::{AppHandle, State};
use tauri_plugin_opener::OpenerExt;

use crate::error::{CommandError, CommandResult};
use crate::launch;
use crate::links;
use crate::settings::Settings;
use crate::shell::Shell;
use crate::tray;

#[tauri::command]
pub fn settings_get(shell: State<'_, Shell>) -> Settings {
    shell.settings()
}

#[tauri::command]
pub fn settings_set(app: AppHandle, shell: State<'_, Shell>, settings: Settings) -> CommandResult<()> {
    shell.set_settings(settings).map_err(|e| CommandError::internal("saving settings", e))?;
    // Muting a channel changes the unread count the tray shows.
    tray::refresh(&app);
    Ok(())
}

/// Opens an http(s) link in the system browser; anything else is refused.
#[tauri::command]
pub fn link_open(app: AppHandle, url: String) -> CommandResult<()> {
    let url = links::external_url(&url).ok_or_else(CommandError::invalid_url)?;
    app.opener().open_url(url.as_str(), None::<&str>).map_err(|e| CommandError::internal("opening a link", e))
}

/// The `hearth://` link (join, setup or message) the app was started with, once.
#[tauri::command]
pub fn link_take_startup(shell: State<'_, Shell>) -> Option<String> {
    shell.take_startup_link()
}

/// Whether Hearth starts (minimised to the tray) when the user logs in.
#[tauri::command]
pub fn autostart_get(app: AppHandle) -> CommandResult<bool> {
    launch::autostart_enabled(&app)
}

#[tauri::command]
pub fn autostart_set(app: AppHandle, enabled: bool) -> CommandResult<()> {
    launch::set_autostart(&app, enabled)
}
