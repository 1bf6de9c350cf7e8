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

/** Codes the backend adds to the server's `ErrorCode`s for failures that happen before the server. */
export type BackendErrorCode = ErrorCode | 'network' | 'invalid_url' | 'cancelled';

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
