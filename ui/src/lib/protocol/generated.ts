// Generated from crates/protocol by `cargo test -p hearth-protocol --test typescript`.
// Do not edit: change the Rust types and run the test again.

export type UserId = string;

export type ChannelId = string;

export type MessageId = string;

export type AuditEntryId = string;

export type AttachmentId = string;

export type UploadId = string;

export type ErrorCode = "malformed_request" | "invalid_field" | "unauthorized" | "forbidden" | "missing_permission" | "banned" | "blocked" | "not_found" | "conflict" | "rate_limited" | "payload_too_large" | "unsupported_media" | "invalid_credentials" | "invalid_invite" | "invalid_refresh_token" | "not_identified" | "unsupported_protocol" | "unknown_op" | "unavailable" | "insufficient_storage" | "internal";

export type ApiError = { code: ErrorCode, message: string, 
/**
 * For `RateLimited`: how long to wait before trying again.
 */
retry_after_ms?: number | null, };

export type Role = "member" | "admin" | "owner";

export type Permission = "manage_channels" | "manage_invites" | "manage_members" | "manage_server";

export type User = { id: UserId, username: string, display_name: string, 
/**
 * Content hash of the avatar, fetched from `/api/v1/avatars/{hash}`.
 */
avatar: string | null, role: Role, };

export type ServerSettings = { name: string, description: string, 
/**
 * Content hash of the icon, fetched from `/api/v1/server/icon/{hash}.png` (no login needed).
 */
icon: string | null, 
/**
 * Messages older than this many days are deleted (with their search entries); `None`
 * keeps everything.
 */
retention_days: number | null, 
/**
 * Permissions every member holds (owners and admins hold all).
 */
member_permissions: Array<Permission>, 
/**
 * Largest attachment, in bytes.
 */
max_upload_bytes: number, 
/**
 * Attachment bytes one member may keep on the server; `None` for no quota.
 */
upload_quota_bytes: number | null, };

export type ChannelKind = "text" | "voice" | "dm" | "group_dm";

export type Channel = { id: ChannelId, kind: ChannelKind, 
/**
 * Empty for DMs (clients show the other members' names).
 */
name: string, 
/**
 * What the channel is for, shown in its header; empty when unset.
 */
topic: string, position: number, 
/**
 * A text or voice channel only its `members` can see (DMs are always private).
 */
private: boolean, 
/**
 * Members of a private channel or DM; empty for open channels (everyone is a member).
 */
members: Array<UserId>, 
/**
 * Newest message, for unread badges.
 */
last_message_id: MessageId | null, };

export type Reaction = { emoji: string, users: Array<UserId>, };

export type AttachmentKind = "image" | "file";

export type Attachment = { id: AttachmentId, 
/**
 * The name the uploader gave (shown; never used as a path by the server).
 */
name: string, size: number, 
/**
 * The type sniffed from the bytes (`application/octet-stream` when unknown).
 */
content_type: string, kind: AttachmentKind, 
/**
 * Pixels of an image, as shown (EXIF orientation applied).
 */
width: number | null, height: number | null, 
/**
 * A preview exists (images only).
 */
thumbnail: boolean, };

export type Message = { id: MessageId, channel_id: ChannelId, author_id: UserId, content: string, 
/**
 * Milliseconds since the Unix epoch.
 */
created_at: number, edited_at: number | null, reply_to: MessageId | null, mentions: Array<UserId>, reactions: Array<Reaction>, 
/**
 * Files stored by the server, in the order the author attached them.
 */
attachments: Array<Attachment>, };

export type Status = "online" | "idle" | "dnd" | "invisible" | "offline";

export type Presence = { user_id: UserId, status: Status, };

export type ReadState = { channel_id: ChannelId, last_read: MessageId | null, 
/**
 * Messages after `last_read`, by others (capped by the server at 1000).
 */
unread_count: number, 
/**
 * Of those, how many mention this user (every message in a DM counts).
 */
mention_count: number, };

export type VoiceState = { user_id: UserId, 
/**
 * `None` once the user has left.
 */
channel_id: ChannelId | null, muted: boolean, deafened: boolean, speaking: boolean, };

export type IceServer = { urls: Array<string>, username?: string | null, credential?: string | null, };

export type Signal = { "kind": "offer", sdp: string, } | { "kind": "answer", sdp: string, } | { "kind": "candidate", candidate: string, sdp_mid: string | null, sdp_mline_index: number | null, };

export type TransferSignal = { "kind": "propose", name: string, size: number, files: number, } | { "kind": "decline" } | { "kind": "connect", sdp: string, } | { "kind": "answer", sdp: string, } | { "kind": "candidate", candidate: string, sdp_mid: string | null, sdp_mline_index: number | null, } | { "kind": "pause" } | { "kind": "resume" } | { "kind": "cancel" } | { "kind": "done" } | { "kind": "taken" };

export type AuditEntry = { id: AuditEntryId, 
/**
 * Who did it.
 */
actor_id: UserId, action: AuditAction, target_user_id: UserId | null, target_channel_id: ChannelId | null, 
/**
 * The invite code, for invite actions.
 */
target_invite: string | null, 
/**
 * What changed, field by field (a rename: `name`, old, new).
 */
changes: Array<AuditChange>, 
/**
 * The reason the actor gave (kick, ban), if any.
 */
reason: string | null, 
/**
 * Milliseconds since the Unix epoch.
 */
created_at: number, };

export type AuditAction = "invite_create" | "invite_revoke" | "channel_create" | "channel_update" | "channel_delete" | "channel_reorder" | "channel_members_update" | "member_role_update" | "member_kick" | "member_ban" | "member_unban" | "ownership_transfer" | "server_update" | "message_delete";

export type AuditChange = { field: string, old: string | null, new: string | null, };

export type Ban = { user: User, reason: string | null, banned_by: UserId, 
/**
 * Milliseconds since the Unix epoch.
 */
created_at: number, };

export type ClientMsg = { "op": "Identify", token: string, protocol_version: number, status: Status | null, } | { "op": "Resume", token: string, session_id: string, last_seq: number, protocol_version: number, } | { "op": "Heartbeat", last_seq: number | null, } | { "op": "SendMessage", channel_id: ChannelId, nonce: string, content: string, reply_to: MessageId | null, 
/**
 * Finished uploads of this author (`POST /api/v1/uploads/{id}/finish`), not yet sent
 * with another message; at most [`crate::MAX_ATTACHMENTS_PER_MESSAGE`]. With
 * attachments, `content` may be empty.
 */
attachments?: Array<AttachmentId>, } | { "op": "EditMessage", channel_id: ChannelId, message_id: MessageId, content: string, } | { "op": "DeleteMessage", channel_id: ChannelId, message_id: MessageId, } | { "op": "AddReaction", channel_id: ChannelId, message_id: MessageId, emoji: string, } | { "op": "RemoveReaction", channel_id: ChannelId, message_id: MessageId, emoji: string, } | { "op": "Typing", channel_id: ChannelId, } | { "op": "MarkRead", channel_id: ChannelId, message_id: MessageId, } | { "op": "SetStatus", status: Status, } | { "op": "VoiceJoin", channel_id: ChannelId, muted: boolean, deafened: boolean, } | { "op": "VoiceLeave" } | { "op": "VoiceUpdate", muted: boolean, deafened: boolean, speaking: boolean, } | { "op": "VoiceSignal", to: UserId, signal: Signal, } | { "op": "TransferSignal", to: UserId, device?: string | null, transfer_id: string, signal: TransferSignal, };

export type Ready = { session_id: string, user: User, server: ServerSettings, channels: Array<Channel>, members: Array<User>, presences: Array<Presence>, read_states: Array<ReadState>, voice_states: Array<VoiceState>, ice_servers: Array<IceServer>, 
/**
 * Members this user has blocked: their messages are hidden here, their DMs refused.
 */
blocked: Array<UserId>, };

export type ServerMsg = { "op": "Hello", heartbeat_interval_ms: number, identify_timeout_ms: number, protocol_version: number, } | { "op": "Ready", seq: number, ready: Ready, } | { "op": "Resumed", seq: number, replayed: number, } | { "op": "InvalidSession" } | { "op": "HeartbeatAck" } | { "op": "Dispatch", seq: number, event: Event, } | { "op": "Error", 
/**
 * The op that was refused, when the frame could be parsed that far.
 */
failed_op?: string | null, nonce?: string | null, code: ErrorCode, message: string, 
/**
 * For `RateLimited`: how long to wait before trying again.
 */
retry_after_ms?: number | null, };

export type Event = { "t": "MessageCreate", message: Message, nonce: string | null, } | { "t": "MessageUpdate", message: Message, } | { "t": "MessageDelete", channel_id: ChannelId, message_id: MessageId, } | { "t": "ReactionAdd", channel_id: ChannelId, message_id: MessageId, user_id: UserId, emoji: string, } | { "t": "ReactionRemove", channel_id: ChannelId, message_id: MessageId, user_id: UserId, emoji: string, } | { "t": "TypingStart", channel_id: ChannelId, user_id: UserId, at: number, } | { "t": "ChannelCreate", channel: Channel, } | { "t": "ChannelUpdate", channel: Channel, } | { "t": "ChannelDelete", channel_id: ChannelId, } | { "t": "MemberAdd", user: User, } | { "t": "MemberUpdate", user: User, } | { "t": "MemberRemove", user_id: UserId, } | { "t": "PresenceUpdate", presence: Presence, } | { "t": "ReadStateUpdate", read_state: ReadState, } | { "t": "VoiceStateUpdate", state: VoiceState, } | { "t": "VoiceSignal", from: UserId, signal: Signal, } | { "t": "TransferSignal", from: UserId, device: string, transfer_id: string, signal: TransferSignal, } | { "t": "ServerUpdate", server: ServerSettings, } | { "t": "BlockUpdate", user_id: UserId, blocked: boolean, } | { "t": "MessagesPurged", before: MessageId, };

export type RegisterRequest = { invite: string, username: string, password: string, display_name: string | null, };

export type LoginRequest = { username: string, password: string, };

export type RefreshRequest = { refresh_token: string, };

export type LogoutRequest = { everywhere: boolean, };

export type Session = { access_token: string, 
/**
 * Seconds until `access_token` expires.
 */
expires_in: number, refresh_token: string, user: User, };

export type UpdateProfileRequest = { display_name: string | null, };

export type ChangePasswordRequest = { current_password: string, new_password: string, };

export type CreateInviteRequest = { 
/**
 * `None` for unlimited uses.
 */
max_uses: number | null, 
/**
 * `None` for an invite that never expires.
 */
expires_in_secs: number | null, };

export type Invite = { code: string, max_uses: number | null, uses: number, 
/**
 * Milliseconds since the Unix epoch.
 */
expires_at: number | null, created_by: UserId, 
/**
 * Milliseconds since the Unix epoch.
 */
created_at: number, };

export type CreateChannelRequest = { name: string, kind: ChannelKind, topic: string | null, private: boolean, 
/**
 * For a private channel: who may see it (the creator is added).
 */
members: Array<UserId>, };

export type UpdateChannelRequest = { name: string | null, 
/**
 * An empty string clears the topic.
 */
topic: string | null, position: number | null, private: boolean | null, };

export type SetChannelMembersRequest = { members: Array<UserId>, };

export type ReorderChannelsRequest = { channel_ids: Array<ChannelId>, };

export type UpdateMemberRequest = { role: Role | null, };

export type ModerationRequest = { reason: string | null, };

export type TransferOwnershipRequest = { user_id: UserId, };

export type UpdateServerSettingsRequest = { name: string | null, description: string | null, 
/**
 * Days to keep messages; `0` keeps everything.
 */
retention_days: number | null, member_permissions: Array<Permission> | null, max_upload_bytes: number | null, 
/**
 * `0` for no quota.
 */
upload_quota_bytes: number | null, };

export type AuditLogQuery = { before: AuditEntryId | null, 
/**
 * 1..=100, default 50.
 */
limit: number | null, };

export type SearchQuery = { q: string, offset: number | null, 
/**
 * 1..=50, default 25.
 */
limit: number | null, };

export type TextRange = { start: number, end: number, };

export type SearchHit = { message: Message, 
/**
 * Where the query's words occur in `message.content`, in order, not overlapping.
 */
highlights: Array<TextRange>, };

export type SearchResults = { hits: Array<SearchHit>, 
/**
 * Matching messages in all (counted up to 1000).
 */
total: number, 
/**
 * The `offset` of the next page, when there is one.
 */
next_offset: number | null, };

export type CreateDmRequest = { recipients: Array<UserId>, };

export type HistoryQuery = { before: MessageId | null, after: MessageId | null, around: MessageId | null, 
/**
 * 1..=100, default 50.
 */
limit: number | null, };

export type SendMessageRequest = { nonce: string, content: string, reply_to: MessageId | null, attachments: Array<AttachmentId>, };

export type CreateUploadRequest = { name: string, size: number, };

export type UploadStatus = { id: UploadId, name: string, size: number, 
/**
 * Bytes the server has: the next `PATCH` starts here.
 */
offset: number, };

export type TurnCredentials = { ice_servers: Array<IceServer>, 
/**
 * Seconds the credentials stay valid.
 */
ttl_secs: number, };

export type ServerInfo = { name: string, description: string, 
/**
 * Content hash of the icon (`/api/v1/server/icon/{hash}.png`).
 */
icon: string | null, protocol_version: number, 
/**
 * True until the first account is made with the setup token.
 */
needs_setup: boolean, };

export const PROTOCOL_VERSION = 2;
export const MAX_FRAME_BYTES = 65536;
export const MAX_MESSAGE_CHARS = 4000;
export const MAX_GROUP_DM_MEMBERS = 10;
export const MAX_TOPIC_CHARS = 1024;
export const MAX_REASON_CHARS = 512;
export const MAX_DESCRIPTION_CHARS = 1024;
export const MAX_ATTACHMENTS_PER_MESSAGE = 10;
export const MAX_ATTACHMENT_NAME_BYTES = 255;
