//! Desktop notifications: the pure decision of whether a new message deserves one
//! ([`should_notify`]), and the [`Notifier`] that shows it — notify-rust for real, or a file
//! of JSON lines when `HEARTH_NOTIFY_RECORD` names one (end-to-end tests run without a
//! notification daemon).

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use hearth_protocol::ChannelId;
use hearth_protocol::model::{ChannelKind, Status};
use serde::Serialize;

use crate::settings::{NotificationSettings, NotifyLevel};

/// What is known about a new message when deciding.
#[derive(Debug, Clone, Copy)]
pub struct Incoming {
    pub channel_id: ChannelId,
    pub channel_kind: ChannelKind,
    pub from_me: bool,
    pub mentions_me: bool,
}

/// Whether a message should raise a desktop notification: never for my own messages, while
/// the window has focus, or in do-not-disturb; never in a muted channel; otherwise by the
/// channel's level (or the global one): `all`, `mentions` (a DM counts as a mention), `none`.
pub fn should_notify(
    incoming: &Incoming,
    focused: bool,
    my_status: Status,
    settings: &NotificationSettings,
) -> bool {
    if incoming.from_me || focused || my_status == Status::Dnd {
        return false;
    }
    let channel = settings.channels.get(&incoming.channel_id.to_string());
    if channel.is_some_and(|c| c.muted) {
        return false;
    }
    let level = channel.and_then(|c| c.level).unwrap_or(settings.level);
    let direct = matches!(incoming.channel_kind, ChannelKind::Dm | ChannelKind::GroupDm);
    match level {
        NotifyLevel::All => true,
        NotifyLevel::Mentions => direct || incoming.mentions_me,
        NotifyLevel::None => false,
    }
}

/// A notification to show. Clicking it opens `channel_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Notification {
    pub channel_id: ChannelId,
    pub title: String,
    pub body: String,
}

/// Longest body shown, in characters; the rest is cut with an ellipsis.
const BODY_CHARS: usize = 200;

impl Notification {
    pub fn new(channel_id: ChannelId, title: String, content: &str) -> Notification {
        let mut body: String = content.chars().take(BODY_CHARS).collect();
        if content.chars().count() > BODY_CHARS {
            body.push('…');
        }
        Notification { channel_id, title, body }
    }
}

/// Shows notifications. Failures are logged by the caller and never stop event delivery.
pub trait Notifier: Send + Sync {
    fn show(&self, notification: &Notification) -> anyhow::Result<()>;
}

/// Called with the channel when the user clicks a notification.
pub type OnClick = Arc<dyn Fn(ChannelId) + Send + Sync>;

/// The system's notification service through notify-rust.
pub struct SystemNotifier {
    #[cfg_attr(not(all(unix, not(target_os = "macos"))), allow(dead_code))]
    on_click: OnClick,
}

impl SystemNotifier {
    pub fn new(on_click: OnClick) -> SystemNotifier {
        SystemNotifier { on_click }
    }
}

impl Notifier for SystemNotifier {
    fn show(&self, n: &Notification) -> anyhow::Result<()> {
        let mut notification = notify_rust::Notification::new();
        notification.appname("Hearth").summary(&n.title).body(&n.body);
        // On freedesktop servers the "default" action is a click on the notification.
        #[cfg(all(unix, not(target_os = "macos")))]
        notification.action("default", "Open");
        #[cfg(any(target_os = "windows", all(unix, not(target_os = "macos"))))]
        {
            let handle = notification.show()?;
            let on_click = self.on_click.clone();
            let channel = n.channel_id;
            // Waiting blocks until the notification is clicked or closed.
            std::thread::Builder::new().name("notification".into()).spawn(move || {
                if clicked(handle) {
                    on_click(channel);
                }
            })?;
        }
        #[cfg(target_os = "macos")]
        {
            notification.show()?;
        }
        Ok(())
    }
}

/// Waits until the notification is clicked (`true`) or closed.
#[cfg(all(unix, not(target_os = "macos")))]
fn clicked(handle: notify_rust::NotificationHandle) -> bool {
    let mut clicked = false;
    handle.wait_for_action(|action| clicked = action == "default");
    clicked
}

/// Waits until the toast is clicked (`true`: its activation without an action) or closed.
#[cfg(target_os = "windows")]
fn clicked(handle: notify_rust::NotificationHandle) -> bool {
    let mut clicked = false;
    let _closed = handle.wait_for_response(|response: &notify_rust::NotificationResponse| {
        clicked = response.is_default_action();
    });
    clicked
}

/// Appends each notification as a JSON line to a file (for tests).
pub struct RecordingNotifier {
    path: PathBuf,
    /// Serializes appends so that lines never interleave.
    file: Mutex<()>,
}

impl RecordingNotifier {
    pub fn new(path: PathBuf) -> RecordingNotifier {
        RecordingNotifier { path, file: Mutex::new(()) }
    }
}

impl Notifier for RecordingNotifier {
    fn show(&self, n: &Notification) -> anyhow::Result<()> {
        let mut line = serde_json::to_vec(n)?;
        line.push(b'\n');
        let _guard = self.file.lock().unwrap_or_else(|p| p.into_inner());
        let mut file = std::fs::OpenOptions::new().create(true).append(true).open(&self.path)?;
        file.write_all(&line)?;
        Ok(())
    }
}

/// The notifier for this run: recording when `HEARTH_NOTIFY_RECORD` is set, else the system's.
pub fn from_env(on_click: OnClick) -> Box<dyn Notifier> {
    match std::env::var_os("HEARTH_NOTIFY_RECORD") {
        Some(path) if !path.is_empty() => Box::new(RecordingNotifier::new(PathBuf::from(path))),
        _ => Box::new(SystemNotifier::new(on_click)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::ChannelNotifications;

    const CHANNEL: ChannelId = ChannelId(7);

    fn msg(kind: ChannelKind, mentions_me: bool) -> Incoming {
        Incoming { channel_id: CHANNEL, channel_kind: kind, from_me: false, mentions_me }
    }

    fn settings(level: NotifyLevel) -> NotificationSettings {
        NotificationSettings { level, ..Default::default() }
    }

    fn with_channel(level: NotifyLevel, channel: ChannelNotifications) -> NotificationSettings {
        let mut s = settings(level);
        s.channels.insert(CHANNEL.to_string(), channel);
        s
    }

    const ONLINE: Status = Status::Online;

    #[test]
    fn dms_and_mentions_notify_when_unfocused() {
        let s = settings(NotifyLevel::Mentions);
        assert!(should_notify(&msg(ChannelKind::Dm, false), false, ONLINE, &s));
        assert!(should_notify(&msg(ChannelKind::GroupDm, false), false, ONLINE, &s));
        assert!(should_notify(&msg(ChannelKind::Text, true), false, ONLINE, &s));
        assert!(!should_notify(&msg(ChannelKind::Text, false), false, ONLINE, &s));
    }

    #[test]
    fn nothing_notifies_while_focused() {
        let s = settings(NotifyLevel::All);
        assert!(!should_notify(&msg(ChannelKind::Dm, true), true, ONLINE, &s));
        assert!(!should_notify(&msg(ChannelKind::Text, true), true, ONLINE, &s));
    }

    #[test]
    fn level_all_notifies_for_every_message() {
        let s = settings(NotifyLevel::All);
        assert!(should_notify(&msg(ChannelKind::Text, false), false, ONLINE, &s));
    }

    #[test]
    fn a_channel_set_to_all_overrides_mentions() {
        let s = with_channel(
            NotifyLevel::Mentions,
            ChannelNotifications { muted: false, level: Some(NotifyLevel::All) },
        );
        assert!(should_notify(&msg(ChannelKind::Text, false), false, ONLINE, &s));
    }

    #[test]
    fn muted_channels_never_notify() {
        let s = with_channel(
            NotifyLevel::All,
            ChannelNotifications { muted: true, level: Some(NotifyLevel::All) },
        );
        assert!(!should_notify(&msg(ChannelKind::Dm, true), false, ONLINE, &s));
        assert!(!should_notify(&msg(ChannelKind::Text, true), false, ONLINE, &s));
    }

    #[test]
    fn do_not_disturb_silences_everything() {
        let s = settings(NotifyLevel::All);
        assert!(!should_notify(&msg(ChannelKind::Dm, true), false, Status::Dnd, &s));
        assert!(should_notify(&msg(ChannelKind::Dm, true), false, Status::Idle, &s));
    }

    #[test]
    fn level_none_silences_even_dms() {
        let s = settings(NotifyLevel::None);
        assert!(!should_notify(&msg(ChannelKind::Dm, true), false, ONLINE, &s));
    }

    #[test]
    fn my_own_messages_never_notify() {
        let s = settings(NotifyLevel::All);
        let mine = Incoming { from_me: true, ..msg(ChannelKind::Dm, true) };
        assert!(!should_notify(&mine, false, ONLINE, &s));
    }

    #[test]
    fn long_bodies_are_cut() {
        let n = Notification::new(CHANNEL, "t".into(), &"é".repeat(500));
        assert_eq!(n.body.chars().count(), BODY_CHARS + 1);
        assert!(n.body.ends_with('…'));
    }

    #[test]
    fn the_recorder_appends_json_lines() {
        let path = std::env::temp_dir().join(format!("hearth-notify-{}.jsonl", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let rec = RecordingNotifier::new(path.clone());
        rec.show(&Notification::new(CHANNEL, "alice".into(), "hi")).unwrap();
        rec.show(&Notification::new(CHANNEL, "bob".into(), "yo")).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1]["title"], "bob");
        assert_eq!(lines[0]["channel_id"], serde_json::json!(CHANNEL));
        std::fs::remove_file(path).unwrap();
    }
}
