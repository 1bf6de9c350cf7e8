//! `hearth-desktop`: the Tauri 2 shell of Hearth. It owns the window, tray, notifications,
//! deep links and native dialogs, and exposes the `hearth-client` engine to the UI through the
//! commands and events of `ui/src/lib/backend/README.md`. It holds no protocol logic itself.
//!
//! Map of the crate:
//! - [`commands`]: the Tauri commands, one file per domain (account, session, message,
//!   people, device, voice).
//! - [`shell`]: [`shell::Shell`], the managed state (engine, snapshot, settings, focus).
//! - [`events`]: the task that forwards a session's events to the window.
//! - [`snapshot`]: folding events into the last `Ready` (pure).
//! - [`notify`]: the notification decision (pure) and the [`notify::Notifier`]s.
//! - [`settings`], [`directory`]: JSON files in the app data directory.
//! - [`avatar`], [`links`]: checking what comes from files and URLs.
//! - [`voice`]: [`voice::VoiceLine`], this device's call, mic test, voice settings and
//!   push-to-talk shortcut, and the task forwarding a call's events (`voice://*`).
//! - [`tray`]: the tray icon and its unread count.
//! - [`launch`]: the remembered window geometry and "start with the system" (in the tray).
//! - [`update`]: signed updates from the release endpoint.
//! - [`error`]: the `{ code, message }` every command fails with.

pub mod avatar;
pub mod bindings;
pub mod commands;
pub mod directory;
pub mod error;
pub mod events;
pub mod launch;
pub mod links;
pub mod navigation;
pub mod notify;
pub mod settings;
pub mod shell;
pub mod snapshot;
pub mod tray;
pub mod update;
pub mod voice;

use std::sync::Arc;

use anyhow::Context;
use tauri::{AppHandle, Manager, RunEvent, WindowEvent};
use tauri_plugin_deep_link::DeepLinkExt;

use crate::events::{LINK_OPEN, NOTIFICATION_OPEN, OpenChannel};
use crate::shell::Shell;
use crate::voice::VoiceLine;

/// Builds and runs the app; returns when it quits.
pub fn run() -> anyhow::Result<()> {
    init_logging();
    let app = tauri::Builder::default()
        // First, so that a second start hands over before anything else runs. With the
        // `deep-link` feature the second start's `hearth://` link reaches `on_open_url` below;
        // here the running window comes to the front. (Linux finds the first instance on the
        // D-Bus session bus; without one, every start runs on its own.)
        .plugin(tauri_plugin_single_instance::init(|app, _args, _cwd| tray::show_window(app)))
        // The window never leaves the app's own origin (links go to the system browser).
        .plugin(navigation::guard())
        .plugin(tauri_plugin_opener::init())
        .plugin(tauri_plugin_dialog::init())
        .plugin(tauri_plugin_deep_link::init())
        // Push-to-talk: registered from Rust only (the webview gets no permission for it).
        .plugin(tauri_plugin_global_shortcut::Builder::new().build())
        .plugin(launch::window_state())
        .plugin(launch::autostart())
        .plugin(tauri_plugin_updater::Builder::new().build())
        .setup(|app| {
            setup(app.handle())?;
            Ok(())
        })
        .on_window_event(|window, event| match event {
            WindowEvent::Focused(focused) => window.state::<Shell>().set_focused(*focused),
            WindowEvent::Moved(_) | WindowEvent::Resized(_) => {
                launch::save_geometry_soon(window.app_handle())
            }
            _ => {}
        })
        .invoke_handler(tauri::generate_handler![
            commands::account::account_list,
            commands::account::account_active,
            commands::account::server_info,
            commands::account::account_register,
            commands::account::account_login,
            commands::account::account_logout,
            commands::account::account_switch,
            commands::session::session_status,
            commands::session::session_snapshot,
            commands::message::message_history,
            commands::message::message_send,
            commands::message::message_edit,
            commands::message::message_delete,
            commands::message::reaction_add,
            commands::message::reaction_remove,
            commands::message::channel_typing,
            commands::message::channel_mark_read,
            commands::search::search_messages,
            commands::search::message_history_around,
            commands::search::message_history_after,
            commands::people::presence_set_status,
            commands::people::dm_open,
            commands::people::profile_update,
            commands::people::profile_pick_avatar,
            commands::people::profile_set_avatar,
            commands::people::avatar_get,
            commands::device::settings_get,
            commands::device::settings_set,
            commands::device::link_open,
            commands::device::link_take_startup,
            commands::device::autostart_get,
            commands::device::autostart_set,
            update::update_check,
            update::update_install,
            commands::voice::voice_status,
            commands::voice::voice_join,
            commands::voice::voice_leave,
            commands::voice::voice_set_mute,
            commands::voice::voice_set_deafen,
            commands::voice::voice_set_user_volume,
            commands::voice::voice_peers,
            commands::voice::voice_devices,
            commands::voice::voice_settings_get,
            commands::voice::voice_settings_set,
            commands::voice::voice_mic_test_start,
            commands::voice::voice_mic_test_stop,
            commands::transfer::transfer_list,
            commands::transfer::transfer_pick,
            commands::transfer::transfer_send,
            commands::transfer::transfer_accept,
            commands::transfer::transfer_decline,
            commands::transfer::transfer_pause,
            commands::transfer::transfer_resume,
            commands::transfer::transfer_cancel,
            commands::attachment::attachment_upload,
            commands::attachment::attachment_stage,
            commands::attachment::attachment_upload_staged,
            commands::attachment::attachment_expand,
            commands::attachment::attachment_download,
            commands::attachment::attachment_cancel,
            commands::attachment::attachment_image,
            commands::admin::invite_create,
            commands::admin::invite_list,
            commands::admin::invite_revoke,
            commands::admin::channel_create,
            commands::admin::channel_update,
            commands::admin::channel_set_members,
            commands::admin::channel_reorder,
            commands::admin::channel_delete,
            commands::admin::member_set_role,
            commands::admin::member_kick,
            commands::admin::member_ban,
            commands::admin::member_unban,
            commands::admin::ban_list,
            commands::admin::member_block,
            commands::admin::ownership_transfer,
            commands::admin::server_settings_update,
            commands::admin::server_set_icon,
            commands::admin::server_icon_get,
            commands::admin::audit_log,
        ])
        .build(tauri::generate_context!())
        .context("cannot start the app")?;
    app.run(|app, event| {
        if let RunEvent::Exit = event {
            // Leaves the call (the others hear the leave at once, not after a timeout), then
            // closes the connection cleanly and flushes the cache before the process ends.
            let engine = app.state::<Shell>().engine.clone();
            let handle = app.clone();
            tauri::async_runtime::block_on(async move {
                handle.state::<VoiceLine>().leave(&handle).await;
                engine.shutdown().await
            });
        }
    });
    Ok(())
}

/// Logs to stdout, or appended to the file named by `HEARTH_LOG_FILE` (a started-from-menu app
/// has no terminal); `HEARTH_LOG` filters (default `info`).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("HEARTH_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let file = std::env::var_os("HEARTH_LOG_FILE")
        .filter(|p| !p.is_empty())
        .and_then(|p| std::fs::OpenOptions::new().create(true).append(true).open(p).ok());
    // A second initialisation (tests) is harmless.
    let _ = match file {
        Some(file) => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(false)
            .with_writer(std::sync::Mutex::new(file))
            .try_init(),
        None => tracing_subscriber::fmt().with_env_filter(filter).try_init(),
    };
}

fn setup(app: &AppHandle) -> anyhow::Result<()> {
    let data_dir = app.path().app_data_dir().context("no app data directory")?;
    let engine = hearth_client::Engine::open(&data_dir)
        .with_context(|| format!("cannot open the data directory {}", data_dir.display()))?;
    let clicked = app.clone();
    let notifier = notify::from_env(Arc::new(move |channel_id| {
        tray::show_window(&clicked);
        events::emit(&clicked, NOTIFICATION_OPEN, OpenChannel { channel_id });
    }));
    commands::attachment::clear_staged(engine.data_dir());
    app.manage(VoiceLine::new(engine.data_dir()));
    app.manage(Shell::new(engine, notifier));
    app.manage(commands::attachment::AttachmentJobs::default());
    app.manage(launch::GeometryChanges::default());
    app.state::<VoiceLine>().register_saved_shortcut(app, &app.state::<Shell>().engine);

    let has_tray = match tray::build(app) {
        Ok(()) => true,
        Err(e) => {
            // Desktops without a tray still get a working window.
            tracing::warn!("no tray icon: {e}");
            false
        }
    };
    launch::show_at_start(app, has_tray);
    setup_deep_links(app);

    // Go online with the account used last, if any.
    let handle = app.clone();
    tauri::async_runtime::spawn(async move {
        let shell = handle.state::<Shell>();
        let Some(account) = shell.engine.active_account() else { return };
        if let Err(e) = commands::account::start_session(&handle, &shell, &account.id).await {
            tracing::warn!("cannot resume the saved session: {}", e.code);
        }
    });
    Ok(())
}

/// Passes `hearth://join|setup|message...` links to the UI (as `link://open` with the URL),
/// whether they started the app or arrived while it runs.
fn setup_deep_links(app: &AppHandle) {
    // Installed builds register the scheme through their desktop entry / installer; a
    // development build registers itself so that links can be tried.
    #[cfg(all(debug_assertions, any(target_os = "linux", windows)))]
    if let Err(e) = app.deep_link().register_all() {
        tracing::warn!("cannot register the hearth:// scheme: {e}");
    }
    let handle = app.clone();
    app.deep_link().on_open_url(move |event| {
        for url in event.urls() {
            forward_link(&handle, &url);
        }
    });
    match app.deep_link().get_current() {
        // The window cannot listen yet: the UI asks for this one when it starts.
        Ok(Some(urls)) => {
            if let Some(url) = urls.iter().find(|url| links::is_app_link(url)) {
                app.state::<Shell>().set_startup_link(url.to_string());
            }
        }
        Ok(None) => {}
        Err(e) => tracing::warn!("cannot read the start-up link: {e}"),
    }
}

fn forward_link(app: &AppHandle, url: &url::Url) {
    if links::is_app_link(url) {
        tray::show_window(app);
        events::emit(app, LINK_OPEN, url.as_str());
    } else {
        tracing::info!("ignoring a deep link that is neither a join nor a message link");
    }
}
