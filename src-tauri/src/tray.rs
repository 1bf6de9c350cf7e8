//! The tray icon: Show and Quit, and the unread count in the tooltip and title with a badge
//! icon while anything is unread (muted channels left out).

use tauri::image::Image;
use tauri::menu::{Menu, MenuItem};
use tauri::tray::{MouseButton, MouseButtonState, TrayIconBuilder, TrayIconEvent};
use tauri::{AppHandle, Manager};

use crate::shell::Shell;
use crate::snapshot;

const TRAY_ID: &str = "main";
const ICON: &[u8] = include_bytes!("../icons/tray.png");
const ICON_UNREAD: &[u8] = include_bytes!("../icons/tray-unread.png");

pub fn build(app: &AppHandle) -> tauri::Result<()> {
    let show = MenuItem::with_id(app, "show", "Show Hearth", true, None::<&str>)?;
    let quit = MenuItem::with_id(app, "quit", "Quit", true, None::<&str>)?;
    let menu = Menu::with_items(app, &[&show, &quit])?;
    TrayIconBuilder::with_id(TRAY_ID)
        .icon(Image::from_bytes(ICON)?)
        .tooltip("Hearth")
        .menu(&menu)
        .show_menu_on_left_click(false)
        .on_menu_event(|app, event| match event.id.as_ref() {
            "show" => show_window(app),
            "quit" => app.exit(0),
            _ => {}
        })
        .on_tray_icon_event(|tray, event| {
            if let TrayIconEvent::Click {
                button: MouseButton::Left,
                button_state: MouseButtonState::Up,
                ..
            } = event
            {
                show_window(tray.app_handle());
            }
        })
        .build(app)?;
    Ok(())
}

/// Brings the main window to the front.
pub fn show_window(app: &AppHandle) {
    if let Some(window) = app.get_webview_window("main") {
        let shown = window.show().and_then(|()| window.unminimize()).and_then(|()| window.set_focus());
        if let Err(e) = shown {
            tracing::warn!("cannot show the window: {e}");
        }
    }
}

/// The tooltip for `unread` messages.
pub fn label(unread: u32) -> String {
    match unread {
        0 => "Hearth".to_string(),
        1 => "Hearth — 1 unread message".to_string(),
        n => format!("Hearth — {n} unread messages"),
    }
}

/// Recounts unread messages from the snapshot and updates the tray.
pub fn refresh(app: &AppHandle) {
    let Some(tray) = app.tray_by_id(TRAY_ID) else { return };
    let shell = app.state::<Shell>();
    let channels = shell.settings().notifications.channels;
    let unread = shell
        .snapshot()
        .map(|ready| {
            snapshot::unread_total(&ready, |c| channels.get(&c.to_string()).is_some_and(|s| s.muted))
        })
        .unwrap_or(0);
    let icon = if unread > 0 { ICON_UNREAD } else { ICON };
    let updated = Image::from_bytes(icon)
        .and_then(|image| tray.set_icon(Some(image)))
        .and_then(|()| tray.set_tooltip(Some(label(unread))))
        // Linux app indicators show no tooltip, only a title next to the icon.
        .and_then(|()| tray.set_title(if unread > 0 { Some(unread.to_string()) } else { None }));
    if let Err(e) = updated {
        tracing::warn!("cannot update the tray: {e}");
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_label_counts_unread_messages() {
        assert_eq!(super::label(0), "Hearth");
        assert_eq!(super::label(1), "Hearth — 1 unread message");
        assert_eq!(super::label(12), "Hearth — 12 unread messages");
    }
}
