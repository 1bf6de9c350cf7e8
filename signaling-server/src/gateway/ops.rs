//! Gateway ops after identify, one function each. An op either finishes at once (hub-only
//! work: typing, presence, voice) or returns a future that does its database work beside the
//! connection loop. Side effects reach clients only through the hub's dispatch.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use futures_util::future::BoxFuture;
use hearth_protocol::gateway::{ClientMsg, Event};
use hearth_protocol::model::{
    AuditAction, Channel, ChannelKind, MAX_TRANSFER_ID_CHARS, Message, Signal, Status, TransferSignal,
};
use hearth_protocol::{
    AttachmentId, ChannelId, ErrorCode, MAX_ATTACHMENTS_PER_MESSAGE, MAX_MESSAGE_CHARS, MessageId, UserId,
};

use super::session::GatewaySession;
use crate::db::messages::{NewMessage, Stored};
use crate::db::now_ms;
use crate::error::{AppError, AppResult};
use crate::hub::payload;
use crate::state::AppState;
use crate::writer::WriteError;

/// Most different emoji on one message.
pub const MAX_REACTIONS: i64 = 20;

pub struct Ctx {
    pub state: AppState,
    pub session: Arc<GatewaySession>,
    pub received: Instant,
}

pub enum Handled {
    Done(AppResult<()>),
    Later(BoxFuture<'static, AppResult<()>>),
}

fn later(f: impl Future<Output = AppResult<()>> + Send + 'static) -> Handled {
    Handled::Later(Box::pin(f))
}

pub fn handle(ctx: Ctx, op: ClientMsg) -> Handled {
    match op {
        ClientMsg::SendMessage { channel_id, nonce, content, reply_to, attachments } => {
            match send_message(ctx, channel_id, nonce, content, reply_to, attachments) {
                Ok(f) => Handled::Later(f),
                Err(e) => Handled::Done(Err(e)),
            }
        }
        ClientMsg::EditMessage { channel_id, message_id, content } => {
            later(edit_message(ctx, channel_id, message_id, content))
        }
        ClientMsg::DeleteMessage { channel_id, message_id } => {
            later(delete_message(ctx, channel_id, message_id))
        }
        ClientMsg::AddReaction { channel_id, message_id, emoji } => {
            later(react(ctx, channel_id, message_id, emoji, true))
        }
        ClientMsg::RemoveReaction { channel_id, message_id, emoji } => {
            later(react(ctx, channel_id, message_id, emoji, false))
        }
        ClientMsg::MarkRead { channel_id, message_id } => later(mark_read(ctx, channel_id, message_id)),
        ClientMsg::Typing { channel_id } => Handled::Done(typing(&ctx, channel_id)),
        ClientMsg::SetStatus { status } => Handled::Done(set_status(&ctx, status)),
        ClientMsg::VoiceJoin { channel_id, muted, deafened } => Handled::Done(
            ctx.state
                .hub
                .voice_join(&ctx.session, channel_id, muted, deafened)
                .ok_or_else(|| AppError::not_found("voice channel")),
        ),
        ClientMsg::VoiceLeave => {
            ctx.state.hub.voice_leave(&ctx.session);
            Handled::Done(Ok(()))
        }
        ClientMsg::VoiceUpdate { muted, deafened, speaking } => Handled::Done(
            ctx.state
                .hub
                .voice_update(&ctx.session, muted, deafened, speaking)
                .ok_or_else(|| AppError::invalid("you are not in a voice channel")),
        ),
        ClientMsg::VoiceSignal { to, signal } => Handled::Done(voice_signal(&ctx, to, signal)),
        ClientMsg::TransferSignal { to, device, transfer_id, signal } => {
            Handled::Done(transfer_signal(&ctx, to, device, transfer_id, signal))
        }
        ClientMsg::Identify { .. } | ClientMsg::Resume { .. } | ClientMsg::Heartbeat { .. } => {
            Handled::Done(Err(AppError::invalid("not an op for this stage")))
        }
    }
}

/// A channel the user may post in: visible, and not a voice channel.
pub fn text_channel(state: &AppState, user: UserId, id: ChannelId) -> AppResult<Channel> {
    let channel = state.hub.visible_channel(user, id).ok_or_else(|| AppError::not_found("channel"))?;
    if channel.kind == ChannelKind::Voice {
        return Err(AppError::invalid("voice channels have no messages"));
    }
    Ok(channel)
}

/// In a DM, `blocked` when the other member has blocked `user`.
pub fn refuse_if_blocked(state: &AppState, channel: &Channel, user: UserId) -> AppResult<()> {
    if channel.kind == ChannelKind::Dm
        && channel.members.iter().any(|m| *m != user && state.hub.has_blocked(*m, user))
    {
        return Err(AppError::new(ErrorCode::Blocked, "this member does not accept messages from you"));
    }
    Ok(())
}

pub fn check_content(content: &str) -> AppResult<()> {
    if content.trim().is_empty() {
        return Err(AppError::invalid("message is empty"));
    }
    if content.chars().count() > MAX_MESSAGE_CHARS {
        return Err(AppError::new(
            ErrorCode::PayloadTooLarge,
            format!("messages are limited to {MAX_MESSAGE_CHARS} characters"),
        ));
    }
    Ok(())
}

pub fn check_rate(state: &AppState, user: UserId) -> AppResult<()> {
    state.messages_by_user.check(&user, Instant::now()).map_err(|wait| {
        state.metrics.rate_limited.fetch_add(1, Ordering::Relaxed);
        AppError::rate_limited(wait.as_millis() as u64)
    })
}

/// Users mentioned as `<@id>` who can see the channel, each once.
pub fn mentions(state: &AppState, channel: &Channel, content: &str) -> Vec<UserId> {
    let mut found = Vec::new();
    let mut rest = content;
    while let Some(start) = rest.find("<@") {
        rest = &rest[start + 2..];
        let Some(end) = rest.find('>') else { break };
        if let Ok(id) = rest[..end].parse::<i64>() {
            let user = UserId(id);
            let visible = state.hub.user(user).is_some() && channel.is_visible_to(user);
            if visible && !found.contains(&user) {
                found.push(user);
            }
        }
        if found.len() >= 50 {
            break;
        }
    }
    found
}

/// Checks a message a user wants to post and makes it ready for the writer. Shared by the
/// gateway's `SendMessage` and `POST /channels/{id}/messages`.
pub fn prepare_message(
    state: &AppState,
    user: UserId,
    channel_id: ChannelId,
    nonce: String,
    content: String,
    reply_to: Option<MessageId>,
    attachments: Vec<AttachmentId>,
) -> AppResult<NewMessage> {
    let channel = text_channel(state, user, channel_id)?;
    refuse_if_blocked(state, &channel, user)?;
    if nonce.is_empty() || nonce.len() > 64 || nonce.chars().any(char::is_control) {
        return Err(AppError::invalid("nonce must be 1 to 64 printable characters"));
    }
    if attachments.len() > MAX_ATTACHMENTS_PER_MESSAGE {
        return Err(AppError::invalid(format!(
            "a message carries at most {MAX_ATTACHMENTS_PER_MESSAGE} attachments"
        )));
    }
    // Files alone make a message; text alone must not be blank.
    if attachments.is_empty() || !content.is_empty() {
        check_content(&content)?;
    }
    check_rate(state, user)?;
    Ok(NewMessage {
        channel_id,
        author_id: user,
        nonce,
        mentions: mentions(state, &channel, &content),
        content,
        reply_to,
        attachments,
    })
}

/// Tells everyone who can see the channel about a newly stored message.
pub fn publish(state: &AppState, message: &Message, nonce: &str, received: Instant) {
    state.metrics.observe_gateway_latency(received.elapsed());
    state.hub.set_last_message(message.channel_id, message.id);
    // The other processes were told inside the commit (`cluster`).
    state.hub.dispatch_channel_here(
        message.channel_id,
        &Event::MessageCreate { message: message.clone(), nonce: Some(nonce.to_string()) },
    );
}

/// Validates and queues a message; the returned future waits for the commit, then fans out.
/// Validation and queuing happen in call order so one connection's messages keep their order.
fn send_message(
    ctx: Ctx,
    channel_id: ChannelId,
    nonce: String,
    content: String,
    reply_to: Option<MessageId>,
    attachments: Vec<AttachmentId>,
) -> AppResult<BoxFuture<'static, AppResult<()>>> {
    let message =
        prepare_message(&ctx.state, ctx.session.user_id, channel_id, nonce, content, reply_to, attachments)?;
    Ok(Box::pin(async move {
        let nonce = message.nonce.clone();
        match commit(&ctx.state, message).await? {
            Stored::Created(message) => publish(&ctx.state, &message, &nonce, ctx.received),
            // A resend: only this session hears of it again, with the original message.
            Stored::Duplicate(message) => {
                ctx.session.dispatch(&payload(&Event::MessageCreate { message, nonce: Some(nonce) }))
            }
            Stored::BadReply => return Err(AppError::not_found("message to reply to")),
            Stored::BadAttachment => return Err(bad_attachment()),
        }
        Ok(())
    }))
}

/// An attachment that is not the sender's own finished upload, or that another message has.
pub fn bad_attachment() -> AppError {
    AppError::not_found("attachment (upload it again: it is not yours, not finished, or already sent)")
}

/// Queues a message with the writer and waits until it is durable.
pub async fn commit(state: &AppState, message: NewMessage) -> AppResult<Stored> {
    let unavailable =
        || AppError::new(ErrorCode::Unavailable, "the server is shutting down; send again later");
    let reply = state.writer.submit(message).await.map_err(|_| unavailable())?;
    match reply.await {
        Ok(Ok(stored)) => {
            if matches!(stored, Stored::Created(_)) {
                state.metrics.message_stored();
            }
            Ok(stored)
        }
        Ok(Err(WriteError::Database)) => Err(AppError::Internal(anyhow::anyhow!("message commit failed"))),
        Ok(Err(WriteError::ShuttingDown)) | Err(_) => Err(unavailable()),
    }
}

async fn edit_message(
    ctx: Ctx,
    channel_id: ChannelId,
    message_id: MessageId,
    content: String,
) -> AppResult<()> {
    let state = &ctx.state;
    let user = ctx.session.user_id;
    let channel = text_channel(state, user, channel_id)?;
    check_content(&content)?;
    check_rate(state, user)?;
    let message =
        state.db.message(channel_id, message_id).await?.ok_or_else(|| AppError::not_found("message"))?;
    if message.author_id != user {
        return Err(AppError::new(ErrorCode::Forbidden, "only the author can edit a message"));
    }
    let mentioned = mentions(state, &channel, &content);
    state.db.edit_message(&message, &content, &mentioned).await?;
    let message =
        state.db.message(channel_id, message_id).await?.ok_or_else(|| AppError::not_found("message"))?;
    state.hub.dispatch_channel(channel_id, &Event::MessageUpdate { message });
    Ok(())
}

async fn delete_message(ctx: Ctx, channel_id: ChannelId, message_id: MessageId) -> AppResult<()> {
    let state = &ctx.state;
    let user = ctx.session.user_id;
    text_channel(state, user, channel_id)?;
    let message =
        state.db.message(channel_id, message_id).await?.ok_or_else(|| AppError::not_found("message"))?;
    let blobs = if message.author_id == user {
        state.db.delete_message(message_id, None).await?
    } else {
        // A moderator's delete is an administrative action: it is audited.
        let is_admin = state.hub.user(user).is_some_and(|u| u.is_admin());
        if !is_admin {
            return Err(AppError::new(
                ErrorCode::Forbidden,
                "only the author or an admin can delete a message",
            ));
        }
        let mut entry = crate::audit::on_user(state, user, AuditAction::MessageDelete, message.author_id);
        entry.target_channel_id = Some(channel_id);
        entry.changes = vec![crate::audit::change("message_id", Some(&message_id.to_string()), None)];
        state.db.delete_message(message_id, Some(&entry)).await?
    };
    state.hub.dispatch_channel(channel_id, &Event::MessageDelete { channel_id, message_id });
    // The files no other message names are freed.
    state.attachments.collect(&state.db, Some(&blobs)).await?;
    Ok(())
}

fn check_emoji(emoji: &str) -> AppResult<()> {
    if emoji.is_empty() || emoji.len() > 64 || emoji.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(AppError::invalid("emoji must be 1 to 64 bytes without spaces"));
    }
    Ok(())
}

async fn react(
    ctx: Ctx,
    channel_id: ChannelId,
    message_id: MessageId,
    emoji: String,
    add: bool,
) -> AppResult<()> {
    let state = &ctx.state;
    let user = ctx.session.user_id;
    text_channel(state, user, channel_id)?;
    check_emoji(&emoji)?;
    check_rate(state, user)?;
    let message =
        state.db.message(channel_id, message_id).await?.ok_or_else(|| AppError::not_found("message"))?;
    if add {
        let known = message.reactions.iter().any(|r| r.emoji == emoji);
        if !known && state.db.distinct_reactions(message_id).await? >= MAX_REACTIONS {
            return Err(AppError::invalid(format!(
                "a message can carry at most {MAX_REACTIONS} different reactions"
            )));
        }
        if state.db.add_reaction(message_id, &emoji, user).await? {
            state.hub.dispatch_channel(
                channel_id,
                &Event::ReactionAdd { channel_id, message_id, user_id: user, emoji },
            );
        }
    } else if state.db.remove_reaction(message_id, &emoji, user).await? {
        state.hub.dispatch_channel(
            channel_id,
            &Event::ReactionRemove { channel_id, message_id, user_id: user, emoji },
        );
    }
    Ok(())
}

async fn mark_read(ctx: Ctx, channel_id: ChannelId, message_id: MessageId) -> AppResult<()> {
    let state = &ctx.state;
    let user = ctx.session.user_id;
    let channel = text_channel(state, user, channel_id)?;
    if channel.last_message_id.is_none_or(|last| message_id > last) {
        return Err(AppError::not_found("message"));
    }
    state.db.mark_read(user, channel_id, message_id).await?;
    let current = state.hub.channel(channel_id).and_then(|c| c.last_message_id);
    let read_state = state.db.read_state(user, channel_id, channel.kind.is_direct(), current).await?;
    state.hub.dispatch_user(user, &Event::ReadStateUpdate { read_state });
    Ok(())
}

fn typing(ctx: &Ctx, channel_id: ChannelId) -> AppResult<()> {
    let user = ctx.session.user_id;
    text_channel(&ctx.state, user, channel_id)?;
    ctx.state
        .hub
        .dispatch_channel(channel_id, &Event::TypingStart { channel_id, user_id: user, at: now_ms() });
    Ok(())
}

fn set_status(ctx: &Ctx, status: Status) -> AppResult<()> {
    if status == Status::Offline {
        return Err(AppError::invalid("choose invisible to appear offline"));
    }
    ctx.state.hub.set_status(&ctx.session, status);
    Ok(())
}

/// Largest SDP or candidate relayed.
const MAX_SIGNAL_BYTES: usize = 32 * 1024;

fn voice_signal(ctx: &Ctx, to: UserId, signal: Signal) -> AppResult<()> {
    let size = match &signal {
        Signal::Offer { sdp } | Signal::Answer { sdp } => sdp.len(),
        Signal::Candidate { candidate, .. } => candidate.len(),
    };
    if size > MAX_SIGNAL_BYTES {
        return Err(AppError::new(ErrorCode::PayloadTooLarge, "signal too large"));
    }
    ctx.state
        .hub
        .voice_signal(&ctx.session, to, signal)
        .ok_or_else(|| AppError::new(ErrorCode::Forbidden, "you can only signal members of your call"))
}

/// Longest file or folder name in a transfer offer, in bytes.
const MAX_OFFER_NAME_BYTES: usize = 1024;

fn transfer_signal(
    ctx: &Ctx,
    to: UserId,
    device: Option<String>,
    transfer_id: String,
    signal: TransferSignal,
) -> AppResult<()> {
    if transfer_id.is_empty()
        || transfer_id.len() > MAX_TRANSFER_ID_CHARS
        || !transfer_id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return Err(AppError::invalid("transfer_id must be 1-64 letters, digits or '-'"));
    }
    let size = match &signal {
        TransferSignal::Connect { sdp } | TransferSignal::Answer { sdp } => sdp.len(),
        TransferSignal::Candidate { candidate, .. } => candidate.len(),
        TransferSignal::Propose { name, .. } => {
            if name.len() > MAX_OFFER_NAME_BYTES {
                return Err(AppError::invalid("the offered name is too long"));
            }
            0
        }
        _ => 0,
    };
    if size > MAX_SIGNAL_BYTES {
        return Err(AppError::new(ErrorCode::PayloadTooLarge, "signal too large"));
    }
    if device.as_ref().is_some_and(|d| d.len() > MAX_TRANSFER_ID_CHARS) {
        return Err(AppError::invalid("no such device"));
    }
    use crate::hub::TransferRefusal;
    ctx.state.hub.transfer_signal(&ctx.session, to, device.as_deref(), transfer_id, signal).map_err(|r| {
        match r {
            TransferRefusal::NotMember => AppError::not_found("member"),
            TransferRefusal::Blocked => {
                AppError::new(ErrorCode::Blocked, "direct transfers between you and this member are blocked")
            }
            TransferRefusal::Offline => AppError::new(ErrorCode::Unavailable, "this member is not online"),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_rules() {
        assert!(check_content("hi").is_ok());
        assert!(check_content("  \n ").is_err());
        assert!(check_content(&"é".repeat(MAX_MESSAGE_CHARS)).is_ok());
        assert!(check_content(&"é".repeat(MAX_MESSAGE_CHARS + 1)).is_err());
    }

    #[test]
    fn emoji_rules() {
        assert!(check_emoji("👍").is_ok());
        assert!(check_emoji("").is_err());
        assert!(check_emoji("a b").is_err());
        assert!(check_emoji(&"x".repeat(65)).is_err());
    }
}
