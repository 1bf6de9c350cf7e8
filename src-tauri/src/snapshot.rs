//! The session snapshot the UI reads with `session_snapshot`: the last `Ready` with every later
//! event applied, so that a window that subscribes late still starts from the present.

use hearth_protocol::ChannelId;
use hearth_protocol::gateway::{Event, Ready};
use hearth_protocol::model::{ChannelKind, ReadState, Status};

/// Folds one event into the snapshot. Message contents are not part of `Ready`; only what the
/// snapshot holds (channels, members, presences, read states, voice states) changes.
pub fn apply(ready: &mut Ready, event: &Event) {
    match event {
        Event::MessageCreate { message, .. } => {
            if let Some(channel) = ready.channels.iter_mut().find(|c| c.id == message.channel_id) {
                channel.last_message_id = Some(message.id);
            }
            let me = ready.user.id;
            let direct = channel_kind(ready, message.channel_id)
                .is_some_and(|k| matches!(k, ChannelKind::Dm | ChannelKind::GroupDm));
            let state = read_state(ready, message.channel_id);
            if message.author_id == me {
                // Writing in a channel reads it.
                state.last_read = Some(message.id);
                state.unread_count = 0;
                state.mention_count = 0;
            } else {
                state.unread_count = state.unread_count.saturating_add(1);
                if direct || message.mentions.contains(&me) {
                    state.mention_count = state.mention_count.saturating_add(1);
                }
            }
        }
        Event::ChannelCreate { channel } | Event::ChannelUpdate { channel } => {
            match ready.channels.iter_mut().find(|c| c.id == channel.id) {
                Some(existing) => *existing = channel.clone(),
                None => ready.channels.push(channel.clone()),
            }
        }
        Event::ChannelDelete { channel_id } => {
            ready.channels.retain(|c| c.id != *channel_id);
            ready.read_states.retain(|r| r.channel_id != *channel_id);
        }
        Event::MemberAdd { user } | Event::MemberUpdate { user } => {
            if user.id == ready.user.id {
                ready.user = user.clone();
            }
            match ready.members.iter_mut().find(|m| m.id == user.id) {
                Some(existing) => *existing = user.clone(),
                None => ready.members.push(user.clone()),
            }
        }
        Event::MemberRemove { user_id } => {
            ready.members.retain(|m| m.id != *user_id);
            ready.presences.retain(|p| p.user_id != *user_id);
        }
        Event::PresenceUpdate { presence } => {
            match ready.presences.iter_mut().find(|p| p.user_id == presence.user_id) {
                Some(existing) => *existing = presence.clone(),
                None => ready.presences.push(presence.clone()),
            }
        }
        Event::ReadStateUpdate { read_state } => {
            *self::read_state(ready, read_state.channel_id) = read_state.clone();
        }
        Event::VoiceStateUpdate { state } => {
            ready.voice_states.retain(|v| v.user_id != state.user_id);
            if state.channel_id.is_some() {
                ready.voice_states.push(state.clone());
            }
        }
        Event::ServerUpdate { server } => ready.server = server.clone(),
        Event::BlockUpdate { user_id, blocked } => {
            ready.blocked.retain(|u| u != user_id);
            if *blocked {
                ready.blocked.push(*user_id);
            }
        }
        Event::MessageUpdate { .. }
        | Event::MessagesPurged { .. }
        | Event::MessageDelete { .. }
        | Event::ReactionAdd { .. }
        | Event::ReactionRemove { .. }
        | Event::TypingStart { .. }
        | Event::VoiceSignal { .. }
        | Event::TransferSignal { .. } => {}
    }
}

pub fn channel_kind(ready: &Ready, channel: ChannelId) -> Option<ChannelKind> {
    ready.channels.iter().find(|c| c.id == channel).map(|c| c.kind)
}

/// My own status as the server last reported it (online when it has not said).
pub fn my_status(ready: &Ready) -> Status {
    ready.presences.iter().find(|p| p.user_id == ready.user.id).map(|p| p.status).unwrap_or_default()
}

/// Unread messages over all channels, leaving out the channels `skip` names (muted ones).
pub fn unread_total(ready: &Ready, skip: impl Fn(ChannelId) -> bool) -> u32 {
    ready
        .read_states
        .iter()
        .filter(|r| !skip(r.channel_id))
        .fold(0u32, |sum, r| sum.saturating_add(r.unread_count))
}

fn read_state(ready: &mut Ready, channel_id: ChannelId) -> &mut ReadState {
    let index = match ready.read_states.iter().position(|r| r.channel_id == channel_id) {
        Some(i) => i,
        None => {
            ready.read_states.push(ReadState {
                channel_id,
                last_read: None,
                unread_count: 0,
                mention_count: 0,
            });
            ready.read_states.len() - 1
        }
    };
    &mut ready.read_states[index]
}

#[cfg(test)]
mod tests {
    use super::*;
    use hearth_protocol::model::{Channel, Message, Presence, User, VoiceState};
    use hearth_protocol::{MessageId, UserId};

    fn user(id: i64, name: &str) -> User {
        User {
            id: UserId(id),
            username: name.into(),
            display_name: name.into(),
            avatar: None,
            role: hearth_protocol::model::Role::Member,
        }
    }

    fn channel(id: i64, kind: ChannelKind) -> Channel {
        Channel {
            id: ChannelId(id),
            kind,
            name: "general".into(),
            topic: String::new(),
            position: 0,
            private: false,
            members: vec![],
            last_message_id: None,
        }
    }

    fn ready() -> Ready {
        Ready {
            session_id: "s".into(),
            user: user(1, "me"),
            channels: vec![channel(10, ChannelKind::Text), channel(11, ChannelKind::Dm)],
            members: vec![user(1, "me"), user(2, "bob")],
            presences: vec![],
            read_states: vec![],
            voice_states: vec![],
            ice_servers: vec![],
            server: hearth_protocol::model::ServerSettings {
                name: "Hearth".into(),
                description: String::new(),
                icon: None,
                retention_days: None,
                member_permissions: vec![],
                max_upload_bytes: 1,
                upload_quota_bytes: None,
            },
            blocked: vec![],
        }
    }

    fn message(id: i64, channel: i64, author: i64, mentions: Vec<UserId>) -> Event {
        Event::MessageCreate {
            message: Message {
                id: MessageId(id),
                channel_id: ChannelId(channel),
                author_id: UserId(author),
                content: "hi".into(),
                created_at: 0,
                edited_at: None,
                reply_to: None,
                mentions,
                reactions: vec![],
                attachments: Vec::new(),
            },
            nonce: None,
        }
    }

    #[test]
    fn messages_from_others_count_as_unread_and_dms_as_mentions() {
        let mut r = ready();
        apply(&mut r, &message(100, 10, 2, vec![]));
        apply(&mut r, &message(101, 10, 2, vec![UserId(1)]));
        apply(&mut r, &message(102, 11, 2, vec![]));
        let text = r.read_states.iter().find(|s| s.channel_id == ChannelId(10)).unwrap();
        assert_eq!((text.unread_count, text.mention_count), (2, 1));
        let dm = r.read_states.iter().find(|s| s.channel_id == ChannelId(11)).unwrap();
        assert_eq!((dm.unread_count, dm.mention_count), (1, 1));
        assert_eq!(r.channels[0].last_message_id, Some(MessageId(101)));
        assert_eq!(unread_total(&r, |_| false), 3);
        assert_eq!(unread_total(&r, |c| c == ChannelId(10)), 1);
    }

    #[test]
    fn my_own_message_marks_the_channel_read() {
        let mut r = ready();
        apply(&mut r, &message(100, 10, 2, vec![]));
        apply(&mut r, &message(101, 10, 1, vec![]));
        assert_eq!(unread_total(&r, |_| false), 0);
    }

    #[test]
    fn channels_members_presences_and_voice_follow_events() {
        let mut r = ready();
        apply(&mut r, &Event::ChannelCreate { channel: channel(12, ChannelKind::Voice) });
        apply(&mut r, &Event::ChannelDelete { channel_id: ChannelId(10) });
        assert_eq!(r.channels.iter().map(|c| c.id.0).collect::<Vec<_>>(), vec![11, 12]);

        let mut renamed = user(1, "me");
        renamed.display_name = "Me!".into();
        apply(&mut r, &Event::MemberUpdate { user: renamed });
        assert_eq!(r.user.display_name, "Me!");
        apply(&mut r, &Event::MemberRemove { user_id: UserId(2) });
        assert_eq!(r.members.len(), 1);

        apply(
            &mut r,
            &Event::PresenceUpdate { presence: Presence { user_id: UserId(1), status: Status::Dnd } },
        );
        assert_eq!(my_status(&r), Status::Dnd);

        let joined = VoiceState {
            user_id: UserId(1),
            channel_id: Some(ChannelId(12)),
            muted: false,
            deafened: false,
            speaking: false,
        };
        apply(&mut r, &Event::VoiceStateUpdate { state: joined.clone() });
        assert_eq!(r.voice_states, vec![joined]);
        let left = VoiceState { channel_id: None, ..r.voice_states[0].clone() };
        apply(&mut r, &Event::VoiceStateUpdate { state: left });
        assert!(r.voice_states.is_empty());
    }

    #[test]
    fn read_state_updates_replace_counts() {
        let mut r = ready();
        apply(&mut r, &message(100, 10, 2, vec![]));
        let read = ReadState {
            channel_id: ChannelId(10),
            last_read: Some(MessageId(100)),
            unread_count: 0,
            mention_count: 0,
        };
        apply(&mut r, &Event::ReadStateUpdate { read_state: read.clone() });
        assert_eq!(r.read_states, vec![read]);
    }
}
