//! What server processes tell each other over PostgreSQL `NOTIFY`: one [`Note`] per
//! notification, in an [`Envelope`] naming the sender. A notification's payload holds at most
//! 8000 bytes; a new message travels as its id only (the receiver reads it from `messages`), and
//! any other note whose JSON is larger is stored in `bus_spill` and travels as that row's id.

use hearth_protocol::gateway::Event;
use hearth_protocol::model::{Channel, ServerSettings, Signal, Status, User, VoiceState};
use hearth_protocol::{ChannelId, MessageId, UserId};
use serde::{Deserialize, Serialize};

/// A server process on the database: its leased worker id (also the worker bits of its ids).
pub type NodeId = i64;

/// The PostgreSQL notification channel every process listens on.
pub const CHANNEL: &str = "hearth_bus";

/// Largest payload sent inline; PostgreSQL refuses more than 8000 bytes.
pub const MAX_INLINE: usize = 7900;

/// Most message ids in one `Messages` note (20 digits and a comma each, well under the limit).
pub const MAX_IDS: usize = 300;

/// Who a fanned-out event is for (each process applies its own visibility rules).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "to", content = "id", rename_all = "snake_case")]
pub enum Audience {
    Channel(ChannelId),
    User(UserId),
    All,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum Note {
    /// A process started (or lost notes and starts over): the others announce what only they
    /// know (their members' presence, their calls).
    Hello,
    /// An event the sender fanned out to its own sessions.
    Dispatch {
        to: Audience,
        event: Event,
    },
    /// Messages the sender's writer committed, by id, in commit order; sent inside the commit's
    /// transaction, so a stored message is always announced and an announced one is stored.
    Messages {
        ids: Vec<MessageId>,
    },
    /// The best status among the sender's live connections of `user` (offline: none).
    Presence {
        user: UserId,
        status: Status,
    },
    /// A member's voice state in a call joined through the sender (`channel_id` none: left).
    Voice {
        state: VoiceState,
    },
    /// Call signalling for `to`, who is in the same call through the receiver.
    Signal {
        from: UserId,
        to: UserId,
        signal: Signal,
    },
    /// Direct-transfer signalling for `to`'s sessions (or the one whose device tag is given).
    Transfer {
        to: UserId,
        device: Option<String>,
        event: Event,
    },
    Settings {
        settings: ServerSettings,
    },
    Block {
        blocker: UserId,
        blocked: UserId,
        on: bool,
    },
    User {
        user: User,
    },
    RemoveUser {
        user: UserId,
        close_code: u16,
    },
    Revoke {
        family: String,
    },
    Channel {
        channel: Channel,
    },
    DeleteChannel {
        channel: ChannelId,
    },
    Purged {
        before: MessageId,
    },
}

/// One notification's payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub from: NodeId,
    #[serde(flatten)]
    pub body: Body,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[expect(
    clippy::large_enum_variant,
    reason = "one short-lived value per notification; boxing would only add an allocation"
)]
pub enum Body {
    Note(Note),
    /// The note is in `bus_spill` under this id.
    Spill(i64),
}

impl Envelope {
    pub fn encode(&self) -> String {
        // Serializing our own types of strings and numbers cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_note_survives_the_wire_and_a_full_batch_of_ids_fits_a_notification() {
        let ids: Vec<MessageId> = (0..MAX_IDS as i64).map(|i| MessageId(i64::MAX - i)).collect();
        let envelope = Envelope { from: 63, body: Body::Note(Note::Messages { ids }) };
        let text = envelope.encode();
        assert!(text.len() <= MAX_INLINE, "{} bytes", text.len());
        assert_eq!(serde_json::from_str::<Envelope>(&text).unwrap(), envelope);
        let spilled = Envelope { from: 1, body: Body::Spill(42) };
        assert_eq!(serde_json::from_str::<Envelope>(&spilled.encode()).unwrap(), spilled);
    }
}
