// Generated from src-tauri by `cargo test -p hearth-desktop --lib bindings`.
// Do not edit: change the Rust types and run the test again.

import type { ApiError, ChannelId, Invite, Message, User, UserId } from '../protocol/generated';

export type CommandError = { code: string, message: string, };

export type Account = { id: string, server_url: string, server_name: string, user: User, };

export type SessionStatus = { state: 'connecting' | 'connected' | 'reconnecting' | 'offline', 
/**
 * While `reconnecting`: milliseconds until the next attempt, when known.
 */
retry_in_ms?: number, 
/**
 * While `offline`: the server removed this account from the group.
 */
removed?: Removal, };

export type Removal = "kicked" | "banned";

export type HistoryPage = { messages: Array<Message>, 
/**
 * False once the start of the channel has been reached.
 */
has_more: boolean, };

export type SendFailure = { channel_id: ChannelId, nonce: string, error: ApiError, };

export type OpenChannel = { channel_id: ChannelId, };

export type Theme = "dark" | "light";

export type Language = "en" | "zh-TW" | "fr";

export type NotifyLevel = "all" | "mentions" | "none";

export type ChannelNotify = { muted: boolean, level: NotifyLevel | null, };

export type NotificationSettings = { level: NotifyLevel, 
/**
 * Keyed by channel id (as the UI writes it: the id's decimal string).
 */
channels: { [key in string]: ChannelNotify }, };

export type Settings = { theme: Theme, language: Language, notifications: NotificationSettings, };

export type VoiceConnection = "disconnected" | "connecting" | "connected" | "reconnecting";

export type VoiceCall = { channel_id: ChannelId | null, state: VoiceConnection, muted: boolean, deafened: boolean, };

export type SpeakingUpdate = { user_id: UserId, speaking: boolean, level_dbfs: number, };

export type PeerQuality = { user_id: UserId, state: 'connecting' | 'connected' | 'reconnecting' | 'failed', rtt_ms: number | null, loss: number, jitter_ms: number | null, path: 'direct' | 'relayed' | 'unknown', };

export type AudioDevice = { id: string, name: string, is_default: boolean, };

export type AudioDevices = { inputs: Array<AudioDevice>, outputs: Array<AudioDevice>, };

export type InputMode = "voice_activity" | "push_to_talk";

export type VoiceSettings = { input_device: string | null, output_device: string | null, input_mode: InputMode, ptt_key: string | null, input_threshold_dbfs: number, noise_suppression: boolean, echo_cancellation: boolean, sounds: boolean, 
/**
 * Percent 0..200 by user id (decimal string); absent = 100. Numbers as the UI sends them,
 * checked by [`VoiceSettings::validate`].
 */
user_volumes: { [key in string]: number }, };

export type MicLevel = { level_dbfs: number, voice_detected: boolean, };

export type VoiceDeviceError = { device: 'input' | 'output', message: string, };

export type Direction = "outgoing" | "incoming";

export type TransferState = "offered" | "connecting" | "moving" | "paused" | "waiting" | "done" | "declined" | "cancelled" | "failed" | "taken_elsewhere";

export type TransferPath = "unknown" | "direct" | "relayed";

export type TransferInfo = { id: string, direction: Direction, peer: UserId, 
/**
 * The first file or folder's name (as offered; received files get safe names).
 */
name: string, size: number, files: number, state: TransferState, 
/**
 * Paused by this side (only this side can resume it).
 */
paused_by_me: boolean, error: string | null, bytes_done: number, speed_bps: number | null, eta_secs: number | null, path: TransferPath, 
/**
 * Incoming: chunks that arrived damaged and were fetched again.
 */
refetched_chunks: number, 
/**
 * Incoming: the folder it is saved into, once accepted.
 */
folder: string | null, };

export type InviteView = { invite: Invite, 
/**
 * `hearth://join?server=…&code=…`, which the app opens (or is pasted into it).
 */
link: string, 
/**
 * `https://SERVER/invite/CODE`: the server's page for someone without the app yet.
 */
page: string, };

export type AttachmentProgress = { job: string, done: number, total: number, };
