//! The one door from the UI to the rest of the app. The Tauri shell implements it over the client
//! engine (`tauri.ts`); `mock.ts` implements it in memory for tests and `npm run dev:mock`.
//! Components never call Tauri directly: they use the domain states, which use this interface.

import type {
  ApiError,
  Channel,
  ChannelId,
  ErrorCode,
  Event,
  LoginRequest,
  Message,
  MessageId,
  Ready,
  RegisterRequest,
  ServerInfo,
  Status,
  User,
  UserId,
} from '../protocol/generated';

/** The gateway connection as the engine sees it. The UI shows nothing while `connected`. */
export type ConnectionState = 'connecting' | 'connected' | 'reconnecting' | 'offline';

export interface SessionStatus {
  state: ConnectionState;
  /** While `reconnecting`: milliseconds until the next attempt, when known. */
  retry_in_ms?: number | null;
}

/** A login saved by the engine (tokens stay in Rust; the UI never sees them). */
export interface Account {
  /** Stable local id of this saved login (server URL + user id is unique). */
  id: string;
  server_url: string;
  server_name: string;
  user: User;
}

/** One page of history, oldest first. */
export interface HistoryPage {
  messages: Message[];
  /** False once the start of the channel has been reached. */
  has_more: boolean;
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
}

/** Sent when the engine gives up on a queued message (it is never retried silently after this). */
export interface SendFailure {
  channel_id: ChannelId;
  nonce: string;
  error: ApiError;
}

export type Theme = 'dark' | 'light';
export type Language = 'en' | 'zh-TW' | 'fr';
export type NotifyLevel = 'all' | 'mentions' | 'none';

export interface ChannelNotify {
  muted: boolean;
  /** `null`: use the default level. */
  level: NotifyLevel | null;
}

/** Local preferences, stored by the engine per device (not on the server). */
export interface Settings {
  theme: Theme;
  language: Language;
  notifications: {
    level: NotifyLevel;
    channels: Record<ChannelId, ChannelNotify>;
  };
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

/** This device's call. `disconnected` always has `channel_id: null`. */
export type VoiceConnection = 'disconnected' | 'connecting' | 'connected' | 'reconnecting';

/** Payload of `voice://state` and the answer of `voice_status` / `voice_join`. */
export interface VoiceCall {
  channel_id: ChannelId | null;
  state: VoiceConnection;
  /** Own microphone muted (also true while deafened). Kept outside calls: the next join uses it. */
  muted: boolean;
  /** Own playback deafened. Kept outside calls like `muted`. */
  deafened: boolean;
}

export const NO_CALL: VoiceCall = { channel_id: null, state: 'disconnected', muted: false, deafened: false };

/** Levels are dBFS of 20 ms frames after noise suppression: -100 (silence) to 0 (full scale). */
export const LEVEL_FLOOR_DBFS = -100;

/** One member's speaking state as this device hears it (the local user included). */
export interface SpeakingUpdate {
  user_id: UserId;
  speaking: boolean;
  /** Smoothed level of the member's voice, dBFS (see `LEVEL_FLOOR_DBFS`). */
  level_dbfs: number;
}

export type PeerPath = 'direct' | 'relayed' | 'unknown';
export type PeerLinkState = 'connecting' | 'connected' | 'reconnecting' | 'failed';

/** The link from this device to one other member of the call (payload of `voice://quality`). */
export interface PeerQuality {
  user_id: UserId;
  state: PeerLinkState;
  /** Round-trip time; `null` until measured. */
  rtt_ms: number | null;
  /** Fraction 0..1 of the peer's packets that did not arrive (over the last report interval). */
  loss: number;
  /** Interarrival jitter of the peer's audio (RFC 3550); `null` until measured. */
  jitter_ms: number | null;
  path: PeerPath;
}

/** A microphone or output as the system names it. */
export interface AudioDevice {
  /** Stable identifier passed back in `VoiceSettings` (the engine may use the device name). */
  id: string;
  /** What the user sees. */
  name: string;
  /** The system's current default device. */
  is_default: boolean;
}

export interface AudioDevices {
  inputs: AudioDevice[];
  outputs: AudioDevice[];
}

export type InputMode = 'voice_activity' | 'push_to_talk';

/** Per-device audio preferences, stored by the engine (not on the server). */
export interface VoiceSettings {
  /** `AudioDevice.id`, or `null` to follow the system default. */
  input_device: string | null;
  output_device: string | null;
  input_mode: InputMode;
  /**
   * Push-to-talk shortcut as an accelerator: modifiers (`Control`, `Alt`, `Shift`, `Super`) then
   * one key named by its `KeyboardEvent.code` (`KeyV`, `Digit1`, `F13`, `Backquote`, `Space`…),
   * joined with `+`, e.g. `Control+Shift+KeyV`. `null`: not bound.
   */
  ptt_key: string | null;
  /**
   * Voice activity opens the microphone above this level, dBFS in -80..-20 (lower = more
   * sensitive; the voice crate's sensitivity s in 0..1 is -20 - 60 s).
   */
  input_threshold_dbfs: number;
  noise_suppression: boolean;
  echo_cancellation: boolean;
  /** The engine plays join and leave sounds. */
  sounds: boolean;
  /** Per-user playback volume in percent, 0..200; a missing user plays at 100. */
  user_volumes: Record<UserId, number>;
}

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

/** Payload of `voice://device_error`: a device failed during a call or the mic test. */
export interface VoiceDeviceError {
  device: 'input' | 'output';
  /** For logs; the UI shows its own text. */
  message: string;
}

/** Payload of `voice://level`: the microphone while the mic test runs. */
export interface MicLevel {
  level_dbfs: number;
  /** The voice activity detector hears speech (threshold, attack and hangover applied). */
  voice_detected: boolean;
}

/** Codes the backend adds to the server's `ErrorCode`s for failures that happen before the server. */
export type BackendErrorCode =
  | ErrorCode
  | 'network'
  | 'invalid_url'
  | 'cancelled'
  /** An audio device could not be opened (missing, busy, or no permission). */
  | 'audio_device'
  /** A push-to-talk accelerator could not be parsed or registered (e.g. taken by another app). */
  | 'invalid_shortcut';

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
  /** A `hearth://join?...` link opened the app or arrived while it runs (the URL as given). */
  onJoinLink(listener: (url: string) => void): Unsubscribe;
  /** The user clicked a desktop notification: show this conversation. */
  onOpenChannel(listener: (channelId: ChannelId) => void): Unsubscribe;

  // --- messages -------------------------------------------------------------------------
  /** Messages strictly before `before` (or the newest when `null`), oldest first. */
  history(channelId: ChannelId, before: MessageId | null, limit: number): Promise<HistoryPage>;
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
   * The `hearth://join` link the app was started with, once (then `null`): it arrives before
   * the window can listen for `onJoinLink`.
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
}

// --- direct transfers ---------------------------------------------------------------------
// Files and folders sent peer to peer ("send directly"); nothing is stored on the server.

export type TransferState =
  | 'offered'
  | 'connecting'
  | 'moving'
  | 'paused'
  | 'waiting'
  | 'done'
  | 'declined'
  | 'cancelled'
  | 'failed'
  | 'taken_elsewhere';

/** Payload of `transfer://changed` and an entry of `transfer_list`. */
export interface TransferInfo {
  id: string;
  direction: 'outgoing' | 'incoming';
  /** The other member. */
  peer: UserId;
  /** The first file or folder's name, as offered. */
  name: string;
  size: number;
  files: number;
  state: TransferState;
  /** Paused by this side: only this side can resume it. */
  paused_by_me: boolean;
  error: string | null;
  bytes_done: number;
  /** Bytes per second over the last seconds; null until measured. */
  speed_bps: number | null;
  eta_secs: number | null;
  /** How the bytes travel: peer to peer, or through the server's TURN relay. */
  path: 'direct' | 'relayed' | 'unknown';
  refetched_chunks: number;
  /** Incoming: the folder it is saved into, once accepted. */
  folder: string | null;
}

/** True for the only URLs the app ever hands to the system browser. */
export function isExternalUrl(url: string): boolean {
  try {
    const u = new URL(url);
    return u.protocol === 'http:' || u.protocol === 'https:';
  } catch {
    return false;
  }
}
