// Generated from crates/protocol by `cargo test -p hearth-protocol --test typescript`.
// Do not edit: change the Rust types and run the test again.

export type UserId = string;

export type ChannelId = string;

export type MessageId = string;

export type ErrorCode = "malformed_request" | "invalid_field" | "unauthorized" | "forbidden" | "not_found" | "conflict" | "rate_limited" | "payload_too_large" | "unsupported_media" | "invalid_credentials" | "invalid_invite" | "invalid_refresh_token" | "not_identified" | "unsupported_protocol" | "unknown_op" | "unavailable" | "internal";

export type ApiError = { code: ErrorCode, message: string, 
/**
 * For `RateLimited`: how long to wait before trying again.
 */
retry_after_ms?: number | null, };

export type User = { id: UserId, username: string, display_name: string, 
/**
 * Content hash of the avatar, fetched from `/api/v1/avatars/{hash}`.
 */
avatar: string | null, is_admin: boolean, };

export type ChannelKind = "text" | "voice" | "dm" | "group_dm";

export type Channel = { id: ChannelId, kind: ChannelKind, 
/**
 * Empty for DMs (clients show the other members' names).
 */
name: string, position: number, 
/**
 * Members of a private channel; empty for group channels (everyone is a member).
 */
members: Array<UserId>, 
/**
 * Newest message, for unread badges.
 */
last_message_id: MessageId | null, };

export type Reaction = { emoji: string, users: Array<UserId>, };

export type Message = { id: MessageId, channel_id: ChannelId, author_id: UserId, content: string, 
/**
 * Milliseconds since the Unix epoch.
 */
created_at: number, edited_at: number | null, reply_to: MessageId | null, mentions: Array<UserId>, reactions: Array<Reaction>, };

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

export type ClientMsg = { "op": "Identify", token: string, protocol_version: number, status: Status | null, } | { "op": "Resume", token: string, session_id: string, last_seq: number, protocol_version: number, } | { "op": "Heartbeat", last_seq: number | null, } | { "op": "SendMessage", channel_id: ChannelId, nonce: string, content: string, reply_to: MessageId | null, } | { "op": "EditMessage", channel_id: ChannelId, message_id: MessageId, content: string, } | { "op": "DeleteMessage", channel_id: ChannelId, message_id: MessageId, } | { "op": "AddReaction", channel_id: ChannelId, message_id: MessageId, emoji: string, } | { "op": "RemoveReaction", channel_id: ChannelId, message_id: MessageId, emoji: string, } | { "op": "Typing", channel_id: ChannelId, } | { "op": "MarkRead", channel_id: ChannelId, message_id: MessageId, } | { "op": "SetStatus", status: Status, } | { "op": "VoiceJoin", channel_id: ChannelId, muted: boolean, deafened: boolean, } | { "op": "VoiceLeave" } | { "op": "VoiceUpdate", muted: boolean, deafened: boolean, speaking: boolean, } | { "op": "VoiceSignal", to: UserId, signal: Signal, };

export type Ready = { session_id: string, user: User, channels: Array<Channel>, members: Array<User>, presences: Array<Presence>, read_states: Array<ReadState>, voice_states: Array<VoiceState>, ice_servers: Array<IceServer>, };

export type ServerMsg = { "op": "Hello", heartbeat_interval_ms: number, identify_timeout_ms: number, protocol_version: number, } | { "op": "Ready", seq: number, ready: Ready, } | { "op": "Resumed", seq: number, replayed: number, } | { "op": "InvalidSession" } | { "op": "HeartbeatAck" } | { "op": "Dispatch", seq: number, event: Event, } | { "op": "Error", 
/**
 * The op that was refused, when the frame could be parsed that far.
 */
failed_op?: string | null, nonce?: string | null, code: ErrorCode, message: string, 
/**
 * For `RateLimited`: how long to wait before trying again.
 */
retry_after_ms?: number | null, };

export type Event = { "t": "MessageCreate", message: Message, nonce: string | null, } | { "t": "MessageUpdate", message: Message, } | { "t": "MessageDelete", channel_id: ChannelId, message_id: MessageId, } | { "t": "ReactionAdd", channel_id: ChannelId, message_id: MessageId, user_id: UserId, emoji: string, } | { "t": "ReactionRemove", channel_id: ChannelId, message_id: MessageId, user_id: UserId, emoji: string, } | { "t": "TypingStart", channel_id: ChannelId, user_id: UserId, at: number, } | { "t": "ChannelCreate", channel: Channel, } | { "t": "ChannelUpdate", channel: Channel, } | { "t": "ChannelDelete", channel_id: ChannelId, } | { "t": "MemberAdd", user: User, } | { "t": "MemberUpdate", user: User, } | { "t": "MemberRemove", user_id: UserId, } | { "t": "PresenceUpdate", presence: Presence, } | { "t": "ReadStateUpdate", read_state: ReadState, } | { "t": "VoiceStateUpdate", state: VoiceState, } | { "t": "VoiceSignal", from: UserId, signal: Signal, };

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
expires_at: number | null, created_by: UserId, };

export type CreateChannelRequest = { name: string, kind: ChannelKind, };

export type UpdateChannelRequest = { name: string | null, position: number | null, };

export type CreateDmRequest = { recipients: Array<UserId>, };

export type HistoryQuery = { before: MessageId | null, after: MessageId | null, 
/**
 * 1..=100, default 50.
 */
limit: number | null, };

export type SendMessageRequest = { nonce: string, content: string, reply_to: MessageId | null, };

export type TurnCredentials = { ice_servers: Array<IceServer>, 
/**
 * Seconds the credentials stay valid.
 */
ttl_secs: number, };

export type ServerInfo = { name: string, protocol_version: number, 
/**
 * True until the first account is made with the setup token.
 */
needs_setup: boolean, };

export const PROTOCOL_VERSION = 1;
export const MAX_FRAME_BYTES = 65536;
export const MAX_MESSAGE_CHARS = 4000;
export const MAX_GROUP_DM_MEMBERS = 10;
