//! How the app starts and where its window goes: the window's size and position are those of
//! last time (tauri-plugin-window-state), and "start with the system" (tauri-plugin-autostart)
//! registers a login item that passes [`START_MINIMISED`], so that such a start opens in the
//! tray instead of in the user's face.
//!
//! The main window is created hidden (`visible: false` in tauri.conf.json) and [`show_at_start`]
//! decides: shown, unless started minimised with a tray to come back from.

use tauri::plugin::TauriPlugin;
use tauri::{AppHandle, Runtime};
use tauri_plugin_autostart::ManagerExt;
use tauri_plugin_window_state::StateFlags;

use crate::error::{CommandError, CommandResult};
use crate::tray;

/// The argument of a start by the system's login item.
pub const START_MINIMISED: &str = "--minimised";

/// Remembers the main window's size, position and maximised state. Visibility is left out:
/// whether the window shows is decided at each start ([`show_at_start`]).
pub fn window_state<R: Runtime>() -> TauriPlugin<R> {
    tauri_plugin_window_state::Builder::default()
        .with_state_flags(StateFlags::all() & !StateFlags::VISIBLE)
        .build()
}

/// The login item: Hearth with [`START_MINIMISED`] (a LaunchAgent on macOS, the `Run` key of
/// HKCU on Windows, an XDG autostart entry on Linux). Off until the user turns it on.
pub fn autostart<R: Runtime>() -> TauriPlugin<R> {
    tauri_plugin_autostart::Builder::new().arg(START_MINIMISED).build()
}

/// True when the command line asks for a start in the tray.
pub fn starts_minimised<I, S>(args: I) -> bool
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    args.into_iter().skip(1).any(|arg| arg.as_ref() == START_MINIMISED)
}

/// Shows the main window unless this start asked for the tray and the tray exists (without a
/// tray a hidden window could never be found again).
pub fn show_at_start(app: &AppHandle, has_tray: bool) {
    if has_tray && starts_minimised(std::env::args()) {
        tracing::info!("started minimised to the tray");
        return;
    }
    tray::show_window(app);
    tracing::info!("main window shown");
}

/// Whether Hearth starts with the system.
pub fn autostart_enabled(app: &AppHandle) -> CommandResult<bool> {
    app.autolaunch().is_enabled().map_err(|e| CommandError::internal("reading the login item", e))
}

pub fn set_autostart(app: &AppHandle, enabled: bool) -> CommandResult<()> {
    let launcher = app.autolaunch();
    let done = if enabled { launcher.enable() } else { launcher.disable() };
    done.map_err(|e| CommandError::internal("changing the login item", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_login_items_argument_starts_minimised() {
        assert!(starts_minimised(["hearth", START_MINIMISED]));
        assert!(starts_minimised(["hearth", "hearth://join?x", START_MINIMISED]));
    }

    #[test]
    fn other_starts_show_the_window() {
        assert!(!starts_minimised(["hearth"]));
        assert!(!starts_minimised(["hearth", "hearth://join?server=x&code=--minimised"]));
        // The program's own path is not an argument.
        assert!(!starts_minimised([START_MINIMISED]));
    }
}
