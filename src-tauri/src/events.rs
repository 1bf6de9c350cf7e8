//! The one task per running session that turns its [`SessionEvent`]s into window events
//! (names in `ui/src/lib/backend/README.md`), keeps the snapshot current, raises
//! notifications and updates the tray's unread count.

use hearth_client::{SessionEvent, SessionHandle};
use hearth_protocol::gateway::Event;
use hearth_protocol::model::ChannelKind;
use hearth_protocol::{ApiError, ChannelId};
use serde::Serialize;
use tauri::{AppHandle, Emitter, Manager};
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;

use crate::notify::{self, Incoming, Notification};
use crate::shell::{Removal, SessionStatus, Shell};
use crate::{snapshot, tray};

pub const STATUS: &str = "session://status";
pub const READY: &str = "session://ready";
pub const EVENT: &str = "session://event";
/// A direct transfer changed (`TransferInfo`).
pub const TRANSFER: &str = "transfer://changed";
pub const SEND_FAILED: &str = "message://failed";
/// Upload or download progress of an attachment job (`commands::attachment`).
pub const ATTACHMENT_PROGRESS: &str = "attachment://progress";
/// A `hearth://join|setup|message...` deep link, payload: the URL as a string.
pub const LINK_OPEN: &str = "link://open";
/// The user clicked a notification; payload: `{ channel_id }`.
pub const NOTIFICATION_OPEN: &str = "notification://open";

#[derive(Debug, Clone, Serialize, ts_rs::TS)]
pub struct SendFailure {
    pub channel_id: ChannelId,
    pub nonce: String,
    pub error: ApiError,
}

#[derive(Debug, Clone, Serialize, ts_rs::TS)]
pub struct OpenChannel {
    pub channel_id: ChannelId,
}

/// Emits to the window; a failed emit (window gone while quitting) is only logged.
pub fn emit<S: Serialize + Clone>(app: &AppHandle, name: &str, payload: S) {
    if let Err(e) = app.emit(name, payload) {
        tracing::warn!("cannot emit {name}: {e}");
    }
}

/// Starts forwarding `session`'s `events` (a subscription made before it connected, so the
/// first `Ready` is among them), replacing the previous session's forwarder.
pub fn forward(app: &AppHandle, session: SessionHandle, mut events: broadcast::Receiver<SessionEvent>) {
    let shell = app.state::<Shell>();
    shell.set_removal(None);
    emit(app, STATUS, shell.status());
    let owner = app.clone();
    let mut transfers = shell.engine.transfers().ok().map(|t| t.subscribe());
    let task = tauri::async_runtime::spawn(async move {
        let app = owner;
        loop {
            let transfer = async {
                match transfers.as_mut() {
                    Some(rx) => rx.recv().await,
                    None => std::future::pending().await,
                }
            };
            let next = tokio::select! {
                event = events.recv() => event,
                changed = transfer => {
                    match changed {
                        Ok(info) => on_transfer(&app, info),
                        Err(RecvError::Lagged(_)) => {}
                        Err(RecvError::Closed) => transfers = None,
                    }
                    continue;
                }
            };
            match next {
                Ok(event) => on_event(&app, &session, event).await,
                Err(RecvError::Lagged(missed)) => {
                    // The UI may now be behind; a fresh snapshot makes it reload from the cache.
                    tracing::warn!("event forwarder fell {missed} events behind");
                    if let Some(ready) = app.state::<Shell>().snapshot() {
                        emit(&app, READY, ready);
                    }
                }
                Err(RecvError::Closed) => break,
            }
        }
    });
    app.state::<Shell>().set_forwarder(Some(task));
}

/// A transfer changed: the UI hears of it, and a new incoming offer is a notification.
fn on_transfer(app: &AppHandle, info: hearth_client::transfer::TransferInfo) {
    use hearth_client::transfer::{Direction, TransferState};
    let shell = app.state::<Shell>();
    let offered = info.direction == Direction::Incoming && info.state == TransferState::Offered;
    if offered
        && !shell.focused()
        && let Some(notification) = shell.with_snapshot(|ready| transfer_notification(ready, &info)).flatten()
        && let Err(e) = shell.notifier.show(&notification)
    {
        tracing::warn!("cannot show a notification: {e}");
    }
    emit(app, TRANSFER, info);
}

/// "mum wants to send you holiday (2.1 GB)", opening the DM with the sender when clicked.
fn transfer_notification(
    ready: &hearth_protocol::gateway::Ready,
    info: &hearth_client::transfer::TransferInfo,
) -> Option<Notification> {
    let sender = ready.members.iter().find(|m| m.id == info.peer)?;
    let name =
        if sender.display_name.is_empty() { sender.username.clone() } else { sender.display_name.clone() };
    // The notification names a conversation to open; the DM with the sender when there is one.
    let dm = ready.channels.iter().find(|c| c.kind == ChannelKind::Dm && c.members.contains(&info.peer))?;
    let size = format!("{:.1} MB", info.size as f64 / 1e6);
    Some(Notification::new(dm.id, name, &format!("wants to send you {} ({size})", info.name)))
}

async fn on_event(app: &AppHandle, session: &SessionHandle, event: SessionEvent) {
    tracing::debug!(event = event_name(&event), "forwarding a session event");
    let shell = app.state::<Shell>();
    match event {
        SessionEvent::ConnectionStatus(status) => {
            emit(app, STATUS, shell.status_of(&status));
        }
        SessionEvent::Ready(ready) => {
            if let Some(account) = shell.engine.active_account() {
                shell.directory().set_user(&account.id, &ready.user);
            }
            shell.set_snapshot(Some((*ready).clone()));
            emit(app, READY, *ready);
            tray::refresh(app);
        }
        SessionEvent::Event(event) => {
            // Decided before the event is applied, then shown outside the snapshot's lock.
            let notification = shell
                .with_snapshot(|ready| {
                    let n = notification_for(&shell, ready, &event);
                    snapshot::apply(ready, &event);
                    n
                })
                .flatten();
            if let Some(n) = notification
                && let Err(e) = shell.notifier.show(&n)
            {
                tracing::warn!("cannot show a notification: {e}");
            }
            let unread_changed = matches!(
                event,
                Event::MessageCreate { .. } | Event::ReadStateUpdate { .. } | Event::ChannelDelete { .. }
            );
            emit(app, EVENT, event);
            if unread_changed {
                tray::refresh(app);
            }
        }
        SessionEvent::MessageFailed { nonce, error } => {
            let channel_id = match session.store().outbox().await {
                Ok(entries) => entries.into_iter().find(|e| e.nonce == nonce).map(|e| e.channel_id),
                Err(e) => {
                    tracing::warn!("cannot read the outbox: {e}");
                    None
                }
            };
            match channel_id {
                Some(channel_id) => emit(app, SEND_FAILED, SendFailure { channel_id, nonce, error }),
                None => tracing::warn!("a failed message is no longer in the outbox"),
            }
        }
        SessionEvent::OpFailed { op, error, .. } => {
            tracing::warn!(op = op.as_deref().unwrap_or("?"), code = ?error.code, "the server refused an operation");
        }
        SessionEvent::LoggedOut => {
            emit(app, STATUS, SessionStatus::offline());
        }
        SessionEvent::Resumed { replayed } => {
            tracing::info!("session resumed, {replayed} events replayed");
        }
        SessionEvent::Closed { code, reason, reconnecting } => {
            // The status that follows (reconnecting or offline) is what the window shows; a
            // removal from the group rides on that offline status.
            tracing::info!(code, %reason, reconnecting, "the server closed the gateway connection");
            if !reconnecting && let Some(removal) = Removal::from_close(code) {
                shell.set_removal(Some(removal));
            }
        }
    }
}

/// The notification a new message deserves, decided before the message is applied.
fn notification_for(
    shell: &Shell,
    ready: &hearth_protocol::gateway::Ready,
    event: &Event,
) -> Option<Notification> {
    let Event::MessageCreate { message, .. } = event else { return None };
    let channel = ready.channels.iter().find(|c| c.id == message.channel_id)?;
    let me = ready.user.id;
    let incoming = Incoming {
        channel_id: channel.id,
        channel_kind: channel.kind,
        from_me: message.author_id == me,
        mentions_me: message.mentions.contains(&me),
    };
    let settings = shell.settings();
    if !notify::should_notify(&incoming, shell.focused(), snapshot::my_status(ready), &settings.notifications)
    {
        return None;
    }
    let author = ready
        .members
        .iter()
        .find(|m| m.id == message.author_id)
        .map(|m| if m.display_name.is_empty() { m.username.clone() } else { m.display_name.clone() })
        .unwrap_or_else(|| "Hearth".to_string());
    let title = if channel.name.is_empty() { author } else { format!("{author} (#{})", channel.name) };
    Some(Notification::new(channel.id, title, &message.content))
}

fn event_name(event: &SessionEvent) -> &'static str {
    match event {
        SessionEvent::ConnectionStatus(_) => "status",
        SessionEvent::Ready(_) => "ready",
        SessionEvent::Resumed { .. } => "resumed",
        SessionEvent::Event(_) => "event",
        SessionEvent::MessageFailed { .. } => "message failed",
        SessionEvent::OpFailed { .. } => "op failed",
        _ => "other",
    }
}
