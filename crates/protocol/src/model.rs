//! The things Hearth is about, as both sides see them.

use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::ids::{AttachmentId, AuditEntryId, ChannelId, MessageId, UserId};

/// Where a member stands in the group. Ranks are ordered: `Owner > Admin > Member`.
///
/// Who may do what to whom: an action on another member (change their role, kick, ban) needs
/// the permission and a rank strictly above the target's, except that an owner may act on
/// other owners; a role can be granted only up to the granter's own (so only owners make
/// owners). The group always keeps at least one owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Member,
    Admin,
    /// The first account is the owner; ownership can be handed over or shared.
    Owner,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Member => "member",
            Role::Admin => "admin",
            Role::Owner => "owner",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "member" => Role::Member,
            "admin" => Role::Admin,
            "owner" => Role::Owner,
            _ => return None,
        })
    }

    /// Whether a member of this role may act on (change the role of, kick, ban) one of `target`.
    pub fn outranks(self, target: Role) -> bool {
        self > target || (self == Role::Owner && target == Role::Owner)
    }
}

/// What a role may do beyond taking part. Owners and admins hold every permission; members
/// hold those the group grants them ([`ServerSettings::member_permissions`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    /// Create, rename, reorder and delete channels; set topics; choose a private channel's
    /// members (of channels the member can see).
    ManageChannels,
    /// Create, list and revoke invites.
    ManageInvites,
    /// Change roles, kick and ban (members of lower rank only).
    ManageMembers,
    /// Change the server's name, icon, description, retention and limits; read the audit log.
    ManageServer,
}

impl Permission {
    pub const ALL: [Permission; 4] = [
        Permission::ManageChannels,
        Permission::ManageInvites,
        Permission::ManageMembers,
        Permission::ManageServer,
    ];
}

/// A member of the group, as others see them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct User {
    pub id: UserId,
    pub username: String,
    pub display_name: String,
    /// Content hash of the avatar, fetched from `/api/v1/avatars/{hash}`.
    pub avatar: Option<String>,
    pub role: Role,
}

impl User {
    pub fn is_admin(&self) -> bool {
        self.role >= Role::Admin
    }
}

/// The group's settings, as every member sees them (changed with [`Permission::ManageServer`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct ServerSettings {
    pub name: String,
    pub description: String,
    /// Content hash of the icon, fetched from `/api/v1/server/icon/{hash}.png` (no login needed).
    pub icon: Option<String>,
    /// Messages older than this many days are deleted (with their search entries); `None`
    /// keeps everything.
    pub retention_days: Option<u32>,
    /// Permissions every member holds (owners and admins hold all).
    pub member_permissions: Vec<Permission>,
    /// Largest attachment, in bytes.
    #[ts(type = "number")]
    pub max_upload_bytes: u64,
    /// Attachment bytes one member may keep on the server; `None` for no quota.
    #[ts(type = "number | null")]
    pub upload_quota_bytes: Option<u64>,
}

impl ServerSettings {
    /// Whether a member of `role` holds `permission` in this group.
    pub fn allows(&self, role: Role, permission: Permission) -> bool {
        role >= Role::Admin || self.member_permissions.contains(&permission)
    }
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
    /// DMs and group DMs: conversations between members, not channels of the group. They are
    /// always private.
    pub fn is_direct(self) -> bool {
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
    /// What the channel is for, shown in its header; empty when unset.
    #[serde(default)]
    pub topic: String,
    pub position: i32,
    /// A text or voice channel only its `members` can see (DMs are always private).
    #[serde(default)]
    pub private: bool,
    /// Members of a private channel or DM; empty for open channels (everyone is a member).
    #[serde(default)]
    pub members: Vec<UserId>,
    /// Newest message, for unread badges.
    pub last_message_id: Option<MessageId>,
}

impl Channel {
    /// Visible only to `members`: a DM, a group DM, or a private text or voice channel.
    pub fn is_private(&self) -> bool {
        self.private || self.kind.is_direct()
    }

    /// Whether `user` (a member of the group) may see this channel.
    pub fn is_visible_to(&self, user: UserId) -> bool {
        !self.is_private() || self.members.contains(&user)
    }
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
    /// Files stored by the server, in the order the author attached them.
    #[serde(default)]
    pub attachments: Vec<Attachment>,
}

/// How a client may show an attachment. Decided by the server from the bytes: only raster
/// images (PNG, JPEG, GIF, WebP) that decoded within the limits are `Image`; everything else
/// (SVG, HTML, a file named `.png` that is not one, an image too large to decode) is `File`,
/// offered for download only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum AttachmentKind {
    Image,
    File,
}

/// A file stored by the server: `GET /api/v1/attachments/{id}` (Range requests work) and, when
/// `thumbnail` is true, `GET /api/v1/attachments/{id}/thumbnail`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct Attachment {
    pub id: AttachmentId,
    /// The name the uploader gave (shown; never used as a path by the server).
    pub name: String,
    #[ts(type = "number")]
    pub size: u64,
    /// The type sniffed from the bytes (`application/octet-stream` when unknown).
    pub content_type: String,
    pub kind: AttachmentKind,
    /// Pixels of an image, as shown (EXIF orientation applied).
    #[serde(default)]
    pub width: Option<u32>,
    #[serde(default)]
    pub height: Option<u32>,
    /// A preview exists (images only).
    #[serde(default)]
    pub thumbnail: bool,
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

/// Signalling of a direct (peer-to-peer) file transfer between two members' devices; the
/// server relays it untouched. The files themselves never pass through the server: they go
/// over a WebRTC data channel that the receiver opens (`Connect`) and the sender answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TransferSignal {
    /// The sender offers files: what the receiver sees before it accepts (the first file or
    /// folder's name, the total size, how many files).
    Propose { name: String, size: u64, files: u32 },
    /// The receiver refuses the offer.
    Decline,
    /// The receiver accepted (or resumes) and opens the connection: its WebRTC offer.
    Connect { sdp: String },
    /// The sender's WebRTC answer to `Connect`.
    Answer { sdp: String },
    /// A trickled ICE candidate, either way.
    Candidate { candidate: String, sdp_mid: Option<String>, sdp_mline_index: Option<u16> },
    /// Either side paused: the connection closes and nothing moves until the same side resumes.
    Pause,
    /// The side that paused goes on (the receiver then connects again).
    Resume,
    /// Either side gave up the transfer for good.
    Cancel,
    /// The receiver has every file, each with the announced SHA-256.
    Done,
    /// Sent by the receiver to its own other devices: one of them accepted the offer.
    Taken,
}

/// Longest transfer id: the sender picks 128 random bits, written in hex.
pub const MAX_TRANSFER_ID_CHARS: usize = 64;

/// One administrative action, as the audit log shows it to admins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct AuditEntry {
    pub id: AuditEntryId,
    /// Who did it.
    pub actor_id: UserId,
    pub action: AuditAction,
    #[serde(default)]
    pub target_user_id: Option<UserId>,
    #[serde(default)]
    pub target_channel_id: Option<ChannelId>,
    /// The invite code, for invite actions.
    #[serde(default)]
    pub target_invite: Option<String>,
    /// What changed, field by field (a rename: `name`, old, new).
    #[serde(default)]
    pub changes: Vec<AuditChange>,
    /// The reason the actor gave (kick, ban), if any.
    #[serde(default)]
    pub reason: Option<String>,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum AuditAction {
    InviteCreate,
    InviteRevoke,
    ChannelCreate,
    ChannelUpdate,
    ChannelDelete,
    ChannelReorder,
    /// A private channel's member list changed (`changes`: `added` / `removed` user ids).
    ChannelMembersUpdate,
    MemberRoleUpdate,
    MemberKick,
    MemberBan,
    MemberUnban,
    OwnershipTransfer,
    ServerUpdate,
    /// A moderator deleted someone else's message.
    MessageDelete,
}

/// One field of an audited change. Values are shown as text (ids as decimal strings).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct AuditChange {
    pub field: String,
    #[serde(default)]
    pub old: Option<String>,
    #[serde(default)]
    pub new: Option<String>,
}

/// A member who may not come back, as the ban list shows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct Ban {
    pub user: User,
    #[serde(default)]
    pub reason: Option<String>,
    pub banned_by: UserId,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
}
