//! How the app starts and where its window goes: the window's size and position are those of
//! last time (tauri-plugin-window-state), and "start with the system" (tauri-plugin-autostart)
//! registers a login item that passes [`START_MINIMISED`], so that such a start opens in the
//! tray instead of in the user's face.
//!
//! The geometry is written shortly after each move or resize ([`save_geometry_soon`]), not
//! only when the app exits cleanly.
//!
//! The main window is created hidden (`visible: false` in tauri.conf.json) and [`show_at_start`]
//! decides: shown, unless started minimised with a tray to come back from.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tauri::plugin::TauriPlugin;
use tauri::{AppHandle, Manager, Runtime};
use tauri_plugin_autostart::ManagerExt;
use tauri_plugin_window_state::{AppHandleExt, StateFlags};

use crate::error::{CommandError, CommandResult};
use crate::tray;

/// The argument of a start by the system's login item.
pub const START_MINIMISED: &str = "--minimised";

/// What the window remembers: size, position and maximised state. Visibility is left out:
/// whether the window shows is decided at each start ([`show_at_start`]).
fn remembered() -> StateFlags {
    StateFlags::all() & !StateFlags::VISIBLE
}

/// Remembers the main window's geometry ([`remembered`]). The plugin writes its file when the
/// app exits cleanly; [`save_geometry_soon`] writes it after each move too.
pub fn window_state<R: Runtime>() -> TauriPlugin<R> {
    tauri_plugin_window_state::Builder::default().with_state_flags(remembered()).build()
}

/// How long the window must stay still before its geometry is written: a drag sends a move
/// per frame, and only where it ends matters.
const SETTLE: Duration = Duration::from_millis(500);

/// Counts moves and resizes, so that a pending save can tell that another one came after it.
#[derive(Default)]
pub struct GeometryChanges(Arc<AtomicU64>);

/// Writes the window's geometry once it has not moved or changed size for [`SETTLE`]. The
/// plugin alone writes only on a clean exit, and an app ended otherwise (the session's SIGTERM
/// at logout, a crash, a killed process) would come back where it was the time before.
pub fn save_geometry_soon(app: &AppHandle) {
    let Some(changes) = app.try_state::<GeometryChanges>() else { return };
    let counter = changes.0.clone();
    let this_change = counter.fetch_add(1, Ordering::SeqCst) + 1;
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        tokio::time::sleep(SETTLE).await;
        if counter.load(Ordering::SeqCst) != this_change {
            return; // moved again since: that change's save writes the end result
        }
        if let Err(e) = app.save_window_state(remembered()) {
            tracing::warn!("cannot save the window's size and position: {e}");
        }
    });
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
