//! The things Hearth is about, as both sides see them.

use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::ids::{ChannelId, MessageId, UserId};

/// A member of the group, as others see them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct User {
    pub id: UserId,
    pub username: String,
    pub display_name: String,
    /// Content hash of the avatar, fetched from `/api/v1/avatars/{hash}`.
    pub avatar: Option<String>,
    pub is_admin: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum ChannelKind {
    /// A text channel every member of the group can read.
    Text,
    /// A voice channel every member can join.
    Voice,
    /// A private conversation of two.
    Dm,
    /// A private conversation of up to [`crate::MAX_GROUP_DM_MEMBERS`].
    GroupDm,
}

impl ChannelKind {
    /// Private channels are visible only to their members.
    pub fn is_private(self) -> bool {
        matches!(self, ChannelKind::Dm | ChannelKind::GroupDm)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ChannelKind::Text => "text",
            ChannelKind::Voice => "voice",
            ChannelKind::Dm => "dm",
            ChannelKind::GroupDm => "group_dm",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "text" => ChannelKind::Text,
            "voice" => ChannelKind::Voice,
            "dm" => ChannelKind::Dm,
            "group_dm" => ChannelKind::GroupDm,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct Channel {
    pub id: ChannelId,
    pub kind: ChannelKind,
    /// Empty for DMs (clients show the other members' names).
    pub name: String,
    pub position: i32,
    /// Members of a private channel; empty for group channels (everyone is a member).
    #[serde(default)]
    pub members: Vec<UserId>,
    /// Newest message, for unread badges.
    pub last_message_id: Option<MessageId>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct Reaction {
    pub emoji: String,
    pub users: Vec<UserId>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct Message {
    pub id: MessageId,
    pub channel_id: ChannelId,
    pub author_id: UserId,
    pub content: String,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
    pub edited_at: Option<i64>,
    pub reply_to: Option<MessageId>,
    #[serde(default)]
    pub mentions: Vec<UserId>,
    #[serde(default)]
    pub reactions: Vec<Reaction>,
}

/// What a person chose to show. `Invisible` is seen by others as `Offline`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default, TS)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    #[default]
    Online,
    Idle,
    Dnd,
    Invisible,
    Offline,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Online => "online",
            Status::Idle => "idle",
            Status::Dnd => "dnd",
            Status::Invisible => "invisible",
            Status::Offline => "offline",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct Presence {
    pub user_id: UserId,
    pub status: Status,
}

/// How far a user has read a channel, and what is waiting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct ReadState {
    pub channel_id: ChannelId,
    pub last_read: Option<MessageId>,
    /// Messages after `last_read`, by others (capped by the server at 1000).
    pub unread_count: u32,
    /// Of those, how many mention this user (every message in a DM counts).
    pub mention_count: u32,
}

/// Where a user is in voice, and how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct VoiceState {
    pub user_id: UserId,
    /// `None` once the user has left.
    pub channel_id: Option<ChannelId>,
    pub muted: bool,
    pub deafened: bool,
    pub speaking: bool,
}

/// A STUN or TURN server for the client's ICE agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct IceServer {
    pub urls: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// WebRTC signalling between two members of the same call; the server relays it untouched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Signal {
    Offer { sdp: String },
    Answer { sdp: String },
    Candidate { candidate: String, sdp_mid: Option<String>, sdp_mline_index: Option<u16> },
}
