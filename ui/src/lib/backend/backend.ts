//! The one door from the UI to the rest of the app. The Tauri shell implements it over the client
//! engine (`tauri.ts`); `mock.ts` implements it in memory for tests and `npm run dev:mock`.
//! Components never call Tauri directly: they use the domain states, which use this interface.

import type {
  ApiError,
  Attachment,
  AttachmentId,
  AuditEntry,
  AuditEntryId,
  Ban,
  Channel,
  ChannelId,
  CreateChannelRequest,
  ErrorCode,
  Event,
  LoginRequest,
  Message,
  MessageId,
  Ready,
  RegisterRequest,
  SearchResults,
  Role,
  ServerInfo,
  ServerSettings,
  Status,
  UpdateChannelRequest,
  UpdateServerSettingsRequest,
  User,
  UserId,
} from '../protocol/generated';

// What the commands take and return beyond the protocol: generated from src-tauri's Rust types.
export type {
  Account,
  AttachmentProgress,
  AudioDevice,
  AudioDevices,
  ChannelNotify,
  HistoryPage,
  InputMode,
  InviteView,
  Language,
  MicLevel,
  NotificationSettings,
  NotifyLevel,
  PeerQuality,
  Removal,
  SendFailure,
  SessionStatus,
  Settings,
  SpeakingUpdate,
  Theme,
  TransferInfo,
  TransferState,
  VoiceCall,
  VoiceConnection,
  VoiceDeviceError,
  VoiceSettings,
} from './generated';
import type {
  Account,
  AttachmentProgress,
  AudioDevices,
  HistoryPage,
  InviteView,
  MicLevel,
  PeerQuality,
  SendFailure,
  SessionStatus,
  Settings,
  SpeakingUpdate,
  TransferInfo,
  VoiceCall,
  VoiceDeviceError,
  VoiceSettings,
} from './generated';

/** The gateway connection as the engine sees it. The UI shows nothing while `connected`. */
export type ConnectionState = SessionStatus['state'];
export type PeerPath = PeerQuality['path'];
export type PeerLinkState = PeerQuality['state'];

/** The history a jump to a message loads, oldest first. */
export interface AroundPage {
  messages: Message[];
  /** The window stops short of the channel's start. */
  has_older: boolean;
  /** The window stops short of the present: newer messages exist. */
  has_newer: boolean;
}

export interface SendMessage {
  channel_id: ChannelId;
  content: string;
  reply_to: MessageId | null;
  /**
   * The UI picks the nonce so that it can show the pending message before the call returns; a
   * retry passes the same nonce again, which the server answers with the original message.
   */
  nonce: string;
  /** Finished uploads (`attachmentUpload`) sent with the message; with them `content` may be empty. */
  attachments?: AttachmentId[];
}

export const DEFAULT_SETTINGS: Settings = {
  theme: 'dark',
  language: 'en',
  notifications: { level: 'all', channels: {} },
};

export type Unsubscribe = () => void;

// --- voice ------------------------------------------------------------------------------------
// Who is in which voice channel, muted or deafened, comes from the protocol (`VoiceState` in
// `Ready.voice_states` and `VoiceStateUpdate` events). What follows is what only this device
// knows: its own call, what it hears and measures, and its audio settings.

export const NO_CALL: VoiceCall = { channel_id: null, state: 'disconnected', muted: false, deafened: false };

/** Levels are dBFS of 20 ms frames after noise suppression: -100 (silence) to 0 (full scale). */
export const LEVEL_FLOOR_DBFS = -100;

export const DEFAULT_VOICE_SETTINGS: VoiceSettings = {
  input_device: null,
  output_device: null,
  input_mode: 'voice_activity',
  ptt_key: null,
  input_threshold_dbfs: -50,
  noise_suppression: true,
  echo_cancellation: true,
  sounds: true,
  user_volumes: {},
};

export const THRESHOLD_RANGE_DBFS = { min: -80, max: -20 } as const;
export const USER_VOLUME_RANGE = { min: 0, max: 200 } as const;

/** Codes the backend adds to the server's `ErrorCode`s for failures that happen before the server. */
export type BackendErrorCode =
  | ErrorCode
  | 'network'
  | 'invalid_url'
  | 'cancelled'
  /** An audio device could not be opened (missing, busy, or no permission). */
  | 'audio_device'
  /** A push-to-talk accelerator could not be parsed or registered (e.g. taken by another app). */
  | 'invalid_shortcut'
  /** Updates (`checkUpdate`, `installUpdate`): none newer, server unreachable, signature refused, install failed. */
  | 'update_none'
  | 'update_unreachable'
  | 'update_bad_signature'
  | 'update_failed';

/** Every rejected promise from a `Backend` carries one of these. */
export class BackendError extends Error {
  constructor(
    readonly code: BackendErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'BackendError';
  }

  static from(err: unknown): BackendError {
    if (err instanceof BackendError) return err;
    if (err && typeof err === 'object' && 'code' in err && 'message' in err) {
      const e = err as { code: unknown; message: unknown };
      if (typeof e.code === 'string' && typeof e.message === 'string') {
        return new BackendError(e.code as BackendErrorCode, e.message);
      }
    }
    return new BackendError('internal', String(err));
  }
}

/** A newer release the updater found (`update_check`). */
export interface UpdateInfo {
  version: string;
  current_version: string;
  notes: string | null;
}

export interface Backend {
  // --- accounts and servers -------------------------------------------------------------
  /** Saved logins, most recently used first. */
  listAccounts(): Promise<Account[]>;
  /** The account the session runs for, if any (set by login, register or switch). */
  activeAccount(): Promise<Account | null>;
  /** Probes a server (`https://host[:port]`) before registering or logging in. */
  serverInfo(serverUrl: string): Promise<ServerInfo>;
  /** Creates an account with an invite (or the setup token on a new server) and starts its session. */
  register(serverUrl: string, request: RegisterRequest): Promise<Account>;
  /** Logs in and starts the session for that account. */
  login(serverUrl: string, request: LoginRequest): Promise<Account>;
  /** Ends the session and forgets the account's tokens (the server revokes them). */
  logout(accountId: string): Promise<void>;
  /** Stops the current session and starts the one for a saved account. */
  switchAccount(accountId: string): Promise<void>;

  // --- session --------------------------------------------------------------------------
  /** The current connection state (so a UI that starts late does not wait for a change). */
  sessionStatus(): Promise<SessionStatus>;
  /**
   * The current snapshot: the last `Ready` with every event since applied, or `null` before the
   * first `Ready`. Subscribe to events first, then read the snapshot; handlers are idempotent.
   */
  snapshot(): Promise<Ready | null>;
  onStatus(listener: (status: SessionStatus) => void): Unsubscribe;
  /** A fresh snapshot: after login, after switching account, after an `InvalidSession` resync. */
  onReady(listener: (ready: Ready) => void): Unsubscribe;
  onEvent(listener: (event: Event) => void): Unsubscribe;
  onSendFailed(listener: (failure: SendFailure) => void): Unsubscribe;
  /**
   * A `hearth://` link (join, setup or message) arrived while the app runs (the URL as given);
   * the UI parses it.
   */
  onLink(listener: (url: string) => void): Unsubscribe;
  /** The user clicked a desktop notification: show this conversation. */
  onOpenChannel(listener: (channelId: ChannelId) => void): Unsubscribe;

  // --- messages -------------------------------------------------------------------------
  /** Messages strictly before `before` (or the newest when `null`), oldest first. */
  history(channelId: ChannelId, before: MessageId | null, limit: number): Promise<HistoryPage>;
  /** The message (if it still exists) with up to `limit / 2` older and `(limit - 1) / 2` newer. */
  historyAround(channelId: ChannelId, messageId: MessageId, limit: number): Promise<AroundPage>;
  /** Messages strictly after `after`, oldest first; `has_more`: more before the present. */
  historyAfter(channelId: ChannelId, after: MessageId, limit: number): Promise<HistoryPage>;
  /** Full-text search over everything the user can read: words and `from:` `in:` `has:file`
   *  `before:` `after:` filters; `offset` is the previous page's `next_offset`. */
  search(query: string, offset: number | null): Promise<SearchResults>;
  /**
   * Queues a message in the engine's outbox and returns its nonce. The acknowledgement is the
   * `MessageCreate` event carrying that nonce; a failure arrives through `onSendFailed`.
   */
  sendMessage(message: SendMessage): Promise<string>;
  editMessage(channelId: ChannelId, messageId: MessageId, content: string): Promise<void>;
  deleteMessage(channelId: ChannelId, messageId: MessageId): Promise<void>;
  addReaction(channelId: ChannelId, messageId: MessageId, emoji: string): Promise<void>;
  removeReaction(channelId: ChannelId, messageId: MessageId, emoji: string): Promise<void>;
  /** Tells the others this user is typing (the UI calls it at most every few seconds). */
  typing(channelId: ChannelId): Promise<void>;
  markRead(channelId: ChannelId, messageId: MessageId): Promise<void>;

  // --- people ---------------------------------------------------------------------------
  setStatus(status: Status): Promise<void>;
  /** Opens (or finds) the DM with one user, or a group DM with several. */
  openDm(recipients: UserId[]): Promise<Channel>;
  updateProfile(displayName: string | null): Promise<User>;
  /** Shows the system file dialog for an image; `null` when the user cancels. */
  pickAvatarFile(): Promise<string | null>;
  /** Reads, resizes and uploads the image at `path` (done in Rust, never in the webview). */
  setAvatar(path: string): Promise<User>;
  /** A URL an `<img>` can show for an avatar hash (a blob or asset URL), or `null`. */
  avatarUrl(hash: string): Promise<string | null>;

  // --- device ---------------------------------------------------------------------------
  getSettings(): Promise<Settings>;
  saveSettings(settings: Settings): Promise<void>;
  /** Opens an http(s) URL in the system browser; anything else is refused. */
  openExternal(url: string): Promise<void>;
  /**
   * The `hearth://` link the app was started with, once (then `null`): it arrives before the
   * window can listen for `onLink`.
   */
  takeStartupLink(): Promise<string | null>;
  /** Whether Hearth starts when the user logs in to this computer (minimised to the tray). */
  getAutostart(): Promise<boolean>;
  setAutostart(enabled: boolean): Promise<void>;
  /** A newer signed release of the app, or `null` when this one is the newest. */
  checkUpdate(): Promise<UpdateInfo | null>;
  /**
   * Downloads the newest release, installs it only if its signature matches the app's release
   * key, and restarts into it. Fails with `update_none`, `update_unreachable`,
   * `update_bad_signature` or `update_failed`.
   */
  installUpdate(): Promise<void>;

  // --- voice ----------------------------------------------------------------------------
  /** This device's call now (so a UI that starts late does not wait for `onVoiceCall`). */
  voiceStatus(): Promise<VoiceCall>;
  /** Joins a voice channel (leaving any other call first); answers at once with `connecting`. */
  voiceJoin(channelId: ChannelId): Promise<VoiceCall>;
  /** Leaves the call; nothing happens outside a call. */
  voiceLeave(): Promise<void>;
  /** Mutes or unmutes the microphone; unmuting while deafened also undeafens. */
  voiceSetMute(muted: boolean): Promise<void>;
  /** Deafens (which also mutes) or undeafens (which restores the mute from before). */
  voiceSetDeafen(deafened: boolean): Promise<void>;
  /** Playback volume of one member in percent, 0..200; applies at once and is saved. */
  voiceSetUserVolume(userId: UserId, volume: number): Promise<void>;
  /** The links to the other members of the current call (empty outside a call). */
  voicePeers(): Promise<PeerQuality[]>;
  voiceDevices(): Promise<AudioDevices>;
  voiceSettings(): Promise<VoiceSettings>;
  /** Saves and applies every field; the push-to-talk shortcut is (re)registered by the shell. */
  saveVoiceSettings(settings: VoiceSettings): Promise<void>;
  /** Opens the input device (if no call has it open) and streams `onMicLevel` until stopped. */
  voiceMicTestStart(): Promise<void>;
  voiceMicTestStop(): Promise<void>;
  onVoiceCall(listener: (call: VoiceCall) => void): Unsubscribe;
  onSpeaking(listener: (updates: SpeakingUpdate[]) => void): Unsubscribe;
  onQuality(listener: (quality: PeerQuality) => void): Unsubscribe;
  onMicLevel(listener: (level: MicLevel) => void): Unsubscribe;
  onVoiceDeviceError(listener: (error: VoiceDeviceError) => void): Unsubscribe;

  // --- direct transfers -----------------------------------------------------------------
  transferList(): Promise<TransferInfo[]>;
  /** The native dialog: files, or folders; null when cancelled. */
  transferPick(folders: boolean): Promise<string[] | null>;
  /** Offers the files to a member; resolves with the transfer id once every file is hashed. */
  transferSend(userId: UserId, paths: string[]): Promise<string>;
  /** Asks where to save (native folder dialog) and accepts; false when the dialog was cancelled. */
  transferAccept(id: string): Promise<boolean>;
  transferDecline(id: string): Promise<void>;
  transferPause(id: string): Promise<void>;
  transferResume(id: string): Promise<void>;
  transferCancel(id: string): Promise<void>;
  onTransfer(listener: (transfer: TransferInfo) => void): Unsubscribe;

  // --- attachments (stored by the server) ------------------------------------------------
  /** The native dialog: files to attach; null when cancelled. */
  attachmentPick(): Promise<string[] | null>;
  /** Dropped paths with folders replaced by the files inside them. */
  attachmentExpand(paths: string[]): Promise<string[]>;
  /** Uploads a local file under the UI's job id (progress through `onAttachmentProgress`). */
  attachmentUpload(job: string, path: string): Promise<Attachment>;
  /** Uploads a file the window holds (pasted or dropped) named `name`, read in pieces. */
  attachmentUploadBlob(job: string, name: string, file: Blob): Promise<Attachment>;
  /** Asks where to save, then downloads; the path written, or null when the dialog was cancelled. */
  attachmentDownload(job: string, attachment: Attachment): Promise<string | null>;
  /** Stops an upload or download; false when it is not running. */
  attachmentCancel(job: string): Promise<boolean>;
  /** A `data:` URL of an image attachment: its thumbnail, or the whole picture. */
  attachmentImage(id: AttachmentId, full: boolean): Promise<string>;
  onAttachmentProgress(listener: (progress: AttachmentProgress) => void): Unsubscribe;

  // --- group administration -------------------------------------------------------------
  // The server checks every permission (`missing_permission`, `forbidden`); the UI hides what
  // the member's role does not allow. Changes come back as gateway events, to everyone.
  /** `ManageInvites`: `null` for unlimited uses / never expiring. */
  inviteCreate(maxUses: number | null, expiresInSecs: number | null): Promise<InviteView>;
  /** `ManageInvites`: the invites that can still be used. */
  inviteList(): Promise<InviteView[]>;
  inviteRevoke(code: string): Promise<void>;
  /** `ManageChannels`: a text or voice channel, open or private (with its members). */
  channelCreate(request: CreateChannelRequest): Promise<Channel>;
  /** `ManageChannels`: rename, topic (empty clears it), private or open. */
  channelUpdate(channelId: ChannelId, request: UpdateChannelRequest): Promise<Channel>;
  /** `ManageChannels`: the whole member list of a private channel (the caller stays in). */
  channelSetMembers(channelId: ChannelId, members: UserId[]): Promise<Channel>;
  /** `ManageChannels`: every text and voice channel this member sees, top to bottom. */
  channelReorder(channelIds: ChannelId[]): Promise<Channel[]>;
  channelDelete(channelId: ChannelId): Promise<void>;
  /** `ManageMembers`: up to the caller's own role. */
  memberSetRole(userId: UserId, role: Role): Promise<User>;
  memberKick(userId: UserId, reason: string | null): Promise<void>;
  memberBan(userId: UserId, reason: string | null): Promise<void>;
  memberUnban(userId: UserId): Promise<void>;
  banList(): Promise<Ban[]>;
  /** Any member: hide their messages and refuse their DMs (or undo it); `BlockUpdate` follows. */
  memberBlock(userId: UserId, blocked: boolean): Promise<void>;
  /** Owners: `userId` becomes an owner and the caller an admin. */
  ownershipTransfer(userId: UserId): Promise<User>;
  /** `ManageServer`: only the fields given change. */
  serverSettingsUpdate(request: UpdateServerSettingsRequest): Promise<ServerSettings>;
  /** `ManageServer`: the image at `path` (from `pickAvatarFile`), shrunk in Rust; `null` removes it. */
  serverSetIcon(path: string | null): Promise<ServerSettings>;
  /** A URL an `<img>` can show for the group icon's hash, or `null`. */
  serverIconUrl(hash: string): Promise<string | null>;
  /** `ManageServer`: up to `limit` entries older than `before`, newest first. */
  auditLog(before: AuditEntryId | null, limit: number): Promise<AuditEntry[]>;
}

// --- direct transfers ---------------------------------------------------------------------
// Files and folders sent peer to peer ("send directly"); nothing is stored on the server.

/** True for the only URLs the app ever hands to the system browser. */
export function isExternalUrl(url: string): boolean {
  try {
    const u = new URL(url);
    return u.protocol === 'http:' || u.protocol === 'https:';
  } catch {
    return false;
  }
}

/** The bytes of a blob (FileReader: every webview and jsdom have it, `Blob.arrayBuffer` not all). */
export function bytesOf(blob: Blob): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(new Uint8Array(reader.result as ArrayBuffer));
    reader.onerror = () => reject(reader.error);
    reader.readAsArrayBuffer(blob);
  });
}
