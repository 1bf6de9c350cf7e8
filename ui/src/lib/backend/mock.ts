//! An in-memory `Backend`: a small group (four people, a few channels, some history) that
//! acknowledges sends after a delay (or when a test says so) and can simulate others' messages,
//! typing and connection changes. Used by the component tests, the browser tests and
//! `npm run dev:mock`. The voice side lives in `mock-voice.ts`.

import type {
  Attachment,
  AttachmentId,
  AuditEntryId,
  Channel,
  ChannelId,
  CreateChannelRequest,
  ErrorCode,
  Event,
  LoginRequest,
  Message,
  MessageId,
  Presence,
  Ready,
  ReadState,
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
import { PROTOCOL_VERSION } from '../protocol/generated';
import {
  bytesOf,
  type Account,
  type AttachmentProgress,
  type AroundPage,
  type Backend,
  BackendError,
  DEFAULT_SETTINGS,
  type HistoryPage,
  isExternalUrl,
  type MicLevel,
  type PeerQuality,
  type SendFailure,
  type SendMessage,
  type SessionStatus,
  type Settings,
  type TransferInfo,
  type SpeakingUpdate,
  type Unsubscribe,
  type UpdateInfo,
  type VoiceCall,
  type VoiceDeviceError,
  type VoiceSettings,
} from './backend';
import { compareIds } from '../messages/ids';
import { MockAttachments } from './mock-attachments';
import { mockAround, mockSearch } from './mock-search';
import { MockTransfers } from './mock-transfers';
import { MockVoice } from './mock-voice';
import { MockAdmin } from './mock-admin';

export interface MockOptions {
  /** Start with a saved, connected account (tests of the main window). */
  signedIn?: boolean;
  /** Delay before a sent message is acknowledged; `'manual'` waits for `ackPending()`. */
  ackDelayMs?: number | 'manual';
  /** Delay between login and `Ready`. */
  connectDelayMs?: number;
  /** Deliver `Ready` before the login/register call returns (a fast server: the real app can). */
  readyBeforeReply?: boolean;
  /** The `hearth://join` link the app is started with. */
  startupLink?: string | null;
  /** How many filler messages #general has before the recent conversation (for paging). */
  fillerMessages?: number;
  /** Delay between joining a voice channel (or a peer arriving) and the links being up. */
  voiceConnectDelayMs?: number;
  /** The release the updater finds (`null`: up to date). */
  update?: UpdateInfo | null;
  /** The signed-in user's role (default `member`). */
  role?: Role;
  /**
   * A server that still needs its first account: the group has no channels, `serverInfo` says
   * `needs_setup`, and registering makes the owner.
   */
  firstRun?: boolean;
}

const EPOCH_MS = 1_704_067_200_000; // 2024-01-01, as the server's snowflakes
export const MOCK_SERVER_URL = 'https://hearth.example';
export const MOCK_INVITE = 'WELCOME';

interface Queued {
  message: SendMessage;
  timer: ReturnType<typeof setTimeout> | null;
}

class Emitter<T> {
  private listeners = new Set<(value: T) => void>();
  on(listener: (value: T) => void): Unsubscribe {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
  emit(value: T) {
    for (const l of [...this.listeners]) l(value);
  }
}

export class MockBackend implements Backend {
  readonly opened: string[] = [];
  /** Every `sendMessage` call, in order (tests look at what reached the backend). */
  readonly sent: SendMessage[] = [];
  readonly typingCalls: ChannelId[] = [];
  /** Every `search` query, in order. */
  readonly searches: string[] = [];
  settings: Settings = structuredClone(DEFAULT_SETTINGS);

  private seq = 0;
  private lastMs = 0;
  private accounts: Account[] = [];
  private active: Account | null = null;
  private status: SessionStatus = { state: 'offline' };
  private ready: Ready | null = null;
  private users: User[] = [];
  private server: ServerSettings = {
    name: 'The Hearth',
    description: '',
    icon: null,
    retention_days: null,
    member_permissions: [],
    max_upload_bytes: 25 * 1024 * 1024,
    upload_quota_bytes: null,
  };
  private presences: Presence[] = [];
  private channels: Channel[] = [];
  private readStates: ReadState[] = [];
  private messages = new Map<ChannelId, Message[]>();
  private queue: Queued[] = [];
  private options: Required<MockOptions>;
  private statusEvents = new Emitter<SessionStatus>();
  private readyEvents = new Emitter<Ready>();
  private links = new Emitter<string>();
  private openChannels = new Emitter<ChannelId>();
  private events = new Emitter<Event>();
  private failures = new Emitter<SendFailure>();
  /** The voice side: call, peers, devices, voice settings (tests drive it directly). */
  readonly voice: MockVoice;
  /** Direct transfers (tests drive the other side directly: offers, dialog answers). */
  readonly transfers = new MockTransfers(() => 'u2');
  readonly attachments = new MockAttachments();
  /** Group administration (tests look at invites, bans, blocks and the audit log). */
  readonly admin: MockAdmin;

  constructor(options: MockOptions = {}) {
    this.options = {
      signedIn: false,
      ackDelayMs: 250,
      connectDelayMs: 150,
      readyBeforeReply: false,
      startupLink: null,
      update: null,
      fillerMessages: 60,
      voiceConnectDelayMs: 400,
      role: 'member',
      firstRun: false,
      ...options,
    };
    this.admin = new MockAdmin({
      me: () => this.users.find((u) => u.id === this.requireMe().id) ?? this.requireMe(),
      users: () => this.users,
      channels: () => this.channels,
      server: () => this.server,
      serverUrl: () => this.active?.server_url ?? MOCK_SERVER_URL,
      addChannel: (c) => {
        this.channels.push(c);
        this.messages.set(c.id, []);
        this.readStates.push({ channel_id: c.id, last_read: null, unread_count: 0, mention_count: 0 });
      },
      removeChannel: (id) => {
        this.channels = this.channels.filter((c) => c.id !== id);
        this.messages.delete(id);
        this.readStates = this.readStates.filter((r) => r.channel_id !== id);
      },
      removeUser: (id) => {
        this.users = this.users.filter((u) => u.id !== id);
        this.presences = this.presences.filter((p) => p.user_id !== id);
      },
      emit: (event) => this.emit(event),
    });
    this.voice = new MockVoice(
      {
        meId: () => this.requireMe().id,
        isVoiceChannel: (id) => this.channels.some((c) => c.id === id && c.kind === 'voice'),
        connected: () => this.status.state === 'connected',
        emit: (event) => this.emit(event),
      },
      this.options.voiceConnectDelayMs,
    );
    if (this.options.signedIn) {
      const me = this.makeUser('1', 'ada', 'Ada');
      this.startSession(me, { delayed: false });
    }
  }

  // --- test controls --------------------------------------------------------------------

  get me(): User | null {
    return this.active?.user ?? null;
  }

  /** Ids of the seeded group, for tests. */
  get ids() {
    return { general: 'c1', random: 'c2', news: 'c3', lounge: 'c4', dmBob: 'c5', bob: 'u2', carol: 'u3', dave: 'u4' };
  }

  /**
   * For `npm run dev:mock`: every `everyMs`, someone types for a moment and then says something
   * in a random text channel or the DM. Returns a function that stops it.
   */
  startChatter(everyMs = 20_000): () => void {
    const stopVoice = this.voice.startSimulation();
    const lines = ['Anyone up for a game tonight?', 'Just pushed the photos to the shared folder', 'brb ☕', 'lol', 'Did you see `the new build`?'];
    const timer = setInterval(() => {
      if (!this.active) return;
      const channels = ['c1', 'c2', 'c3', 'c5'];
      const channel = channels[Math.floor(Math.random() * channels.length)];
      const author = channel === 'c5' ? 'u2' : ['u2', 'u3', 'u4'][Math.floor(Math.random() * 3)];
      this.simulateTyping(channel, author);
      setTimeout(() => this.simulateIncoming(channel, author, lines[Math.floor(Math.random() * lines.length)]), 2500);
    }, everyMs);
    return () => {
      clearInterval(timer);
      stopVoice();
    };
  }

  /** The stored message of a channel with exactly this content (tests name messages by text). */
  messageWith(channelId: ChannelId, content: string): Message | undefined {
    return this.messages.get(channelId)?.find((m) => m.content === content);
  }

  /** Someone (an author, a moderator) deletes a message. */
  simulateDelete(channelId: ChannelId, messageId: MessageId) {
    this.messages.set(
      channelId,
      (this.messages.get(channelId) ?? []).filter((m) => m.id !== messageId),
    );
    this.emit({ t: 'MessageDelete', channel_id: channelId, message_id: messageId });
  }

  /** Changes the acknowledgement delay for messages sent from now on. */
  setAckDelay(delay: number | 'manual') {
    this.options.ackDelayMs = delay;
  }

  /** Acknowledges every queued message (for `ackDelayMs: 'manual'`). */
  ackPending() {
    for (const q of this.queue.splice(0)) {
      if (q.timer) clearTimeout(q.timer);
      this.commit(q.message);
    }
  }

  /** Fails every queued message with `code`, as the engine does when it gives up. */
  failPending(code: ErrorCode = 'unavailable') {
    for (const q of this.queue.splice(0)) {
      if (q.timer) clearTimeout(q.timer);
      this.failures.emit({ channel_id: q.message.channel_id, nonce: q.message.nonce, error: { code, message: code } });
    }
  }

  get pendingCount() {
    return this.queue.length;
  }

  /** A message from someone else arrives. */
  simulateIncoming(channelId: ChannelId, authorId: UserId, content: string, replyTo: MessageId | null = null): Message {
    const mentions = [...content.matchAll(/<@(\d+|u\d+)>/g)].map((m) => m[1]);
    const message: Message = {
      id: this.nextId(),
      channel_id: channelId,
      author_id: authorId,
      content,
      created_at: Date.now(),
      edited_at: null,
      reply_to: replyTo,
      mentions,
      reactions: [],
      attachments: [],
    };
    this.store(message);
    if (this.offlineGap) return message;
    this.emit({ t: 'MessageCreate', message, nonce: null });
    // Like the server, the mock sends no read-state change here: clients count unread messages
    // themselves from MessageCreate; the stored counts only matter for the next Ready.
    const rs = this.readStates.find((r) => r.channel_id === channelId);
    if (rs && this.me && authorId !== this.me.id) {
      rs.unread_count += 1;
      const channel = this.channels.find((c) => c.id === channelId);
      const isDm = channel?.kind === 'dm' || channel?.kind === 'group_dm';
      if (isDm || mentions.includes(this.me.id)) rs.mention_count += 1;
    }
    return message;
  }

  /** While true, incoming messages are stored but not sent as events (a connection gap). */
  offlineGap = false;

  /** The connection comes back with a fresh `Ready` (a refused resume after a gap). */
  simulateFreshReady() {
    this.offlineGap = false;
    this.ready = this.buildReady();
    this.readyEvents.emit(this.buildReady());
  }

  simulateTyping(channelId: ChannelId, userId: UserId) {
    this.emit({ t: 'TypingStart', channel_id: channelId, user_id: userId, at: Date.now() });
  }

  simulateStatus(state: SessionStatus['state']) {
    this.setStatusState(state);
  }

  /** The server removes this account from the group (close 4015 or 4014): no reconnecting. */
  simulateRemoval(removed: 'kicked' | 'banned') {
    this.status = { state: 'offline', removed };
    this.statusEvents.emit({ ...this.status });
  }

  simulatePresence(userId: UserId, status: Status) {
    const p = this.presences.find((x) => x.user_id === userId);
    if (p) p.status = status;
    this.emit({ t: 'PresenceUpdate', presence: { user_id: userId, status } });
  }

  // --- accounts -------------------------------------------------------------------------

  async listAccounts() {
    return this.accounts.map((a) => structuredClone(a));
  }

  async activeAccount() {
    return this.active ? structuredClone(this.active) : null;
  }

  async serverInfo(serverUrl: string): Promise<ServerInfo> {
    if (!isExternalUrl(serverUrl)) throw new BackendError('invalid_url', 'not an http(s) URL');
    if (new URL(serverUrl).hostname.endsWith('.invalid')) {
      throw new BackendError('network', 'could not reach the server');
    }
    return {
      name: this.server.name,
      description: this.server.description,
      icon: this.server.icon,
      protocol_version: PROTOCOL_VERSION,
      needs_setup: this.options.firstRun && this.accounts.length === 0,
    };
  }

  async register(serverUrl: string, request: RegisterRequest): Promise<Account> {
    await this.serverInfo(serverUrl);
    if (request.invite.trim() === '' || request.invite === 'EXPIRED') {
      throw new BackendError('invalid_invite', 'This invite is not valid.');
    }
    if (!/^[a-z0-9_.-]{2,32}$/i.test(request.username)) {
      throw new BackendError('invalid_field', 'username: 2 to 32 letters, digits, _ . -');
    }
    if (request.password.length < 8) {
      throw new BackendError('invalid_field', 'password: at least 8 characters');
    }
    const me = this.makeUser('1', request.username, request.display_name || request.username);
    return this.startSession(me, { delayed: true, serverUrl });
  }

  async login(serverUrl: string, request: LoginRequest): Promise<Account> {
    await this.serverInfo(serverUrl);
    if (request.password === 'wrong' || request.password.length === 0) {
      throw new BackendError('invalid_credentials', 'Wrong username or password.');
    }
    const me = this.makeUser('1', request.username, request.username);
    return this.startSession(me, { delayed: true, serverUrl });
  }

  async logout(accountId: string) {
    this.accounts = this.accounts.filter((a) => a.id !== accountId);
    if (this.active?.id === accountId) {
      this.active = null;
      this.ready = null;
      this.setStatusState('offline');
    }
  }

  async switchAccount(accountId: string) {
    const account = this.accounts.find((a) => a.id === accountId);
    if (!account) throw new BackendError('not_found', 'no such account');
    this.startSession(account.user, { delayed: true, serverUrl: account.server_url });
  }

  // --- session --------------------------------------------------------------------------

  async sessionStatus() {
    return { ...this.status };
  }

  async snapshot() {
    return this.ready ? this.buildReady() : null;
  }

  onStatus(listener: (status: SessionStatus) => void) {
    return this.statusEvents.on(listener);
  }
  onReady(listener: (ready: Ready) => void) {
    return this.readyEvents.on(listener);
  }
  onEvent(listener: (event: Event) => void) {
    return this.events.on(listener);
  }
  onSendFailed(listener: (failure: SendFailure) => void) {
    return this.failures.on(listener);
  }
  onLink(listener: (url: string) => void) {
    return this.links.on(listener);
  }
  onOpenChannel(listener: (channelId: ChannelId) => void) {
    return this.openChannels.on(listener);
  }
  /** A `hearth://` link is opened while the app runs (the shell's `link://open`). */
  simulateLink(url: string) {
    this.links.emit(url);
  }
  /** A desktop notification for `channelId` is clicked. */
  simulateNotificationClick(channelId: ChannelId) {
    this.openChannels.emit(channelId);
  }

  // --- messages -------------------------------------------------------------------------

  async history(channelId: ChannelId, before: MessageId | null, limit: number): Promise<HistoryPage> {
    this.requireChannel(channelId);
    const all = this.messages.get(channelId) ?? [];
    const older = before ? all.filter((m) => compareIds(m.id, before) < 0) : all;
    const page = older.slice(Math.max(0, older.length - limit));
    return { messages: structuredClone(page), has_more: older.length > page.length };
  }

  async historyAround(channelId: ChannelId, messageId: MessageId, limit: number): Promise<AroundPage> {
    this.requireChannel(channelId);
    return mockAround(this.messages.get(channelId) ?? [], messageId, limit);
  }

  async historyAfter(channelId: ChannelId, after: MessageId, limit: number): Promise<HistoryPage> {
    this.requireChannel(channelId);
    const newer = (this.messages.get(channelId) ?? []).filter((m) => compareIds(m.id, after) > 0);
    return { messages: structuredClone(newer.slice(0, limit)), has_more: newer.length > limit };
  }

  async search(query: string, offset: number | null): Promise<SearchResults> {
    this.requireMe();
    this.searches.push(query);
    const readable = this.channels.filter((c) => c.kind !== 'voice');
    const all = readable.flatMap((c) => this.messages.get(c.id) ?? []);
    return mockSearch(query, offset, all, this.users, readable);
  }

  async sendMessage(message: SendMessage): Promise<string> {
    const channel = this.requireChannel(message.channel_id);
    this.sent.push({ ...message });
    if (channel.kind === 'dm' && channel.members.some((m) => this.admin.blockedBy.has(m))) {
      // The server refuses it for good: the engine keeps it as failed, with the reason.
      queueMicrotask(() =>
        this.failures.emit({ channel_id: message.channel_id, nonce: message.nonce, error: { code: 'blocked', message: 'blocked' } }),
      );
      return message.nonce;
    }
    if (this.status.state !== 'connected') {
      // The engine keeps it in the outbox; the mock fails it so the retry path can be seen.
      queueMicrotask(() =>
        this.failures.emit({
          channel_id: message.channel_id,
          nonce: message.nonce,
          error: { code: 'unavailable', message: 'offline' },
        }),
      );
      return message.nonce;
    }
    const queued: Queued = { message: { ...message }, timer: null };
    this.queue.push(queued);
    if (this.options.ackDelayMs !== 'manual') {
      queued.timer = setTimeout(() => {
        this.queue = this.queue.filter((q) => q !== queued);
        this.commit(queued.message);
      }, this.options.ackDelayMs);
    }
    return message.nonce;
  }

  async editMessage(channelId: ChannelId, messageId: MessageId, content: string) {
    const m = this.ownMessage(channelId, messageId);
    m.content = content;
    m.edited_at = Date.now();
    this.emit({ t: 'MessageUpdate', message: structuredClone(m) });
  }

  async deleteMessage(channelId: ChannelId, messageId: MessageId) {
    this.ownMessage(channelId, messageId);
    const list = this.messages.get(channelId) ?? [];
    this.messages.set(
      channelId,
      list.filter((m) => m.id !== messageId),
    );
    this.emit({ t: 'MessageDelete', channel_id: channelId, message_id: messageId });
  }

  async addReaction(channelId: ChannelId, messageId: MessageId, emoji: string) {
    const m = this.findMessage(channelId, messageId);
    const me = this.requireMe();
    let r = m.reactions.find((x) => x.emoji === emoji);
    if (!r) m.reactions.push((r = { emoji, users: [] }));
    if (r.users.includes(me.id)) return;
    r.users.push(me.id);
    this.emit({ t: 'ReactionAdd', channel_id: channelId, message_id: messageId, user_id: me.id, emoji });
  }

  async removeReaction(channelId: ChannelId, messageId: MessageId, emoji: string) {
    const m = this.findMessage(channelId, messageId);
    const me = this.requireMe();
    const r = m.reactions.find((x) => x.emoji === emoji);
    if (!r || !r.users.includes(me.id)) return;
    r.users = r.users.filter((u) => u !== me.id);
    if (r.users.length === 0) m.reactions = m.reactions.filter((x) => x !== r);
    this.emit({ t: 'ReactionRemove', channel_id: channelId, message_id: messageId, user_id: me.id, emoji });
  }

  async typing(channelId: ChannelId) {
    this.typingCalls.push(channelId);
  }

  async markRead(channelId: ChannelId, messageId: MessageId) {
    const rs = this.readStates.find((r) => r.channel_id === channelId);
    if (!rs) return;
    rs.last_read = messageId;
    rs.unread_count = 0;
    rs.mention_count = 0;
    this.emit({ t: 'ReadStateUpdate', read_state: { ...rs } });
  }

  // --- people ---------------------------------------------------------------------------

  async setStatus(status: Status) {
    const me = this.requireMe();
    const p = this.presences.find((x) => x.user_id === me.id);
    if (p) p.status = status;
    // Others see invisible as offline; the user's own sessions see what they chose.
    this.emit({ t: 'PresenceUpdate', presence: { user_id: me.id, status } });
  }

  async openDm(recipients: UserId[]): Promise<Channel> {
    const me = this.requireMe();
    if (recipients.some((r) => this.admin.blockedBy.has(r))) {
      throw new BackendError('blocked', 'this member does not take direct messages from you');
    }
    const members = [...new Set([me.id, ...recipients])].sort();
    const existing = this.channels.find(
      (c) => (c.kind === 'dm' || c.kind === 'group_dm') && [...c.members].sort().join() === members.join(),
    );
    if (existing) return structuredClone(existing);
    const channel: Channel = {
      id: `c${this.channels.length + 10}`,
      kind: members.length > 2 ? 'group_dm' : 'dm',
      name: '',
      topic: '',
      position: 0,
      private: false,
      members,
      last_message_id: null,
    };
    this.channels.push(channel);
    this.messages.set(channel.id, []);
    this.readStates.push({ channel_id: channel.id, last_read: null, unread_count: 0, mention_count: 0 });
    this.emit({ t: 'ChannelCreate', channel: structuredClone(channel) });
    return structuredClone(channel);
  }

  async updateProfile(displayName: string | null): Promise<User> {
    const me = this.requireMe();
    const user = this.users.find((u) => u.id === me.id)!;
    user.display_name = displayName?.trim() || user.username;
    this.active!.user = structuredClone(user);
    this.emit({ t: 'MemberUpdate', user: structuredClone(user) });
    return structuredClone(user);
  }

  async pickAvatarFile() {
    return '/home/ada/Pictures/me.png';
  }

  async setAvatar(path: string): Promise<User> {
    const me = this.requireMe();
    if (!/\.(png|jpe?g|gif|webp)$/i.test(path)) {
      throw new BackendError('unsupported_media', 'not an image');
    }
    const user = this.users.find((u) => u.id === me.id)!;
    user.avatar = `mock${++this.seq}`;
    this.active!.user = structuredClone(user);
    this.emit({ t: 'MemberUpdate', user: structuredClone(user) });
    return structuredClone(user);
  }

  async avatarUrl(hash: string) {
    // A coloured square stands in for the resized PNG the server would return.
    let h = 0;
    for (const ch of hash) h = (h * 31 + ch.charCodeAt(0)) % 360;
    const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"><rect width="64" height="64" fill="hsl(${h},60%,50%)"/><circle cx="32" cy="26" r="12" fill="#fff"/><rect x="14" y="42" width="36" height="22" rx="11" fill="#fff"/></svg>`;
    return `data:image/svg+xml,${encodeURIComponent(svg)}`;
  }

  // --- device ---------------------------------------------------------------------------

  async getSettings() {
    return structuredClone(this.settings);
  }

  async saveSettings(settings: Settings) {
    this.settings = structuredClone(settings);
  }

  /** Whether "start with the system" is on. */
  autostart = false;
  /** How many times an update was installed. */
  updatesInstalled = 0;

  async getAutostart() {
    return this.autostart;
  }
  async setAutostart(enabled: boolean) {
    this.autostart = enabled;
  }
  async checkUpdate() {
    return structuredClone(this.options.update ?? null);
  }
  async installUpdate() {
    if (!this.options.update) throw new BackendError('update_none', 'Hearth is up to date.');
    this.updatesInstalled += 1;
  }
  async takeStartupLink() {
    const link = this.options.startupLink;
    this.options.startupLink = null;
    return link;
  }
  async openExternal(url: string) {
    if (!isExternalUrl(url)) throw new BackendError('invalid_url', 'only http(s) links open');
    this.opened.push(url);
  }

  // --- voice (see mock-voice.ts) --------------------------------------------------------

  voiceStatus() {
    return this.voice.status();
  }
  voiceJoin(channelId: ChannelId) {
    return this.voice.join(channelId);
  }
  voiceLeave() {
    return this.voice.leave();
  }
  voiceSetMute(muted: boolean) {
    return this.voice.setMute(muted);
  }
  voiceSetDeafen(deafened: boolean) {
    return this.voice.setDeafen(deafened);
  }
  voiceSetUserVolume(userId: UserId, volume: number) {
    return this.voice.setUserVolume(userId, volume);
  }
  voicePeers() {
    return this.voice.peerList();
  }
  voiceDevices() {
    return this.voice.deviceList();
  }
  voiceSettings() {
    return this.voice.getSettings();
  }
  saveVoiceSettings(settings: VoiceSettings) {
    return this.voice.saveSettings(settings);
  }
  voiceMicTestStart() {
    return this.voice.micTestStart();
  }
  voiceMicTestStop() {
    return this.voice.micTestStop();
  }
  onVoiceCall(listener: (call: VoiceCall) => void) {
    return this.voice.callEvents.on(listener);
  }
  onSpeaking(listener: (updates: SpeakingUpdate[]) => void) {
    return this.voice.speakingEvents.on(listener);
  }
  onQuality(listener: (quality: PeerQuality) => void) {
    return this.voice.qualityEvents.on(listener);
  }
  onMicLevel(listener: (level: MicLevel) => void) {
    return this.voice.levelEvents.on(listener);
  }
  onVoiceDeviceError(listener: (error: VoiceDeviceError) => void) {
    return this.voice.deviceErrors.on(listener);
  }

  // --- internals ------------------------------------------------------------------------

  private emit(event: Event) {
    this.events.emit(structuredClone(event));
  }

  private setStatusState(state: SessionStatus['state']) {
    this.status = state === 'reconnecting' ? { state, retry_in_ms: 2000 } : { state };
    this.statusEvents.emit({ ...this.status });
    // Like the engine: the server drops a session's call with its connection, and it is rejoined.
    this.voice.setConnection(state === 'connected' ? 'connected' : 'reconnecting');
  }

  private nextId(ms = Date.now()): MessageId {
    // Snowflakes as the server makes them: strictly increasing even within one millisecond.
    const t = Math.max(ms, this.lastMs);
    this.lastMs = t;
    return ((BigInt(t - EPOCH_MS) << 22n) | BigInt(++this.seq & 0x3fffff)).toString();
  }

  /** The signed-in user (always id 1), with the role the options give. */
  private makeUser(id: UserId, username: string, display: string): User {
    return { id, username, display_name: display, avatar: null, role: this.options.firstRun ? 'owner' : this.options.role };
  }

  private startSession(me: User, opts: { delayed: boolean; serverUrl?: string }): Account {
    this.seed(me);
    const account: Account = {
      id: `${opts.serverUrl ?? MOCK_SERVER_URL}#${me.id}`,
      server_url: opts.serverUrl ?? MOCK_SERVER_URL,
      server_name: 'The Hearth',
      user: structuredClone(me),
    };
    this.accounts = [account, ...this.accounts.filter((a) => a.id !== account.id)];
    this.active = account;
    if (!opts.delayed) {
      this.status = { state: 'connected' };
      this.ready = this.buildReady();
    } else if (this.options.readyBeforeReply) {
      this.ready = this.buildReady();
      this.setStatusState('connected');
      this.readyEvents.emit(this.buildReady());
    } else {
      this.setStatusState('connecting');
      setTimeout(() => {
        this.ready = this.buildReady();
        this.setStatusState('connected');
        this.readyEvents.emit(this.buildReady());
      }, this.options.connectDelayMs);
    }
    return structuredClone(account);
  }

  private buildReady(): Ready {
    const me = this.requireMe();
    return structuredClone({
      session_id: 'mock-session',
      user: this.users.find((u) => u.id === me.id)!,
      channels: this.channels,
      members: this.users,
      presences: this.presences,
      read_states: this.readStates,
      voice_states: this.voice.states,
      ice_servers: [],
      server: this.server,
      blocked: [...this.admin.blocked],
    });
  }

  private seed(me: User) {
    this.voice.seed();
    this.admin.reset();
    if (this.options.firstRun) {
      // A brand-new group: its owner and nothing else.
      this.users = [me];
      this.presences = [{ user_id: me.id, status: 'online' }];
      this.channels = [];
      this.messages = new Map();
      this.readStates = [];
      return;
    }
    this.users = [
      me,
      { id: 'u2', username: 'bob', display_name: 'Bob', avatar: 'bob', role: 'admin' },
      { id: 'u3', username: 'carol', display_name: 'Carol', avatar: null, role: 'member' },
      { id: 'u4', username: 'dave', display_name: 'Dave', avatar: null, role: 'member' },
    ];
    this.presences = [
      { user_id: me.id, status: 'online' },
      { user_id: 'u2', status: 'online' },
      { user_id: 'u3', status: 'idle' },
      { user_id: 'u4', status: 'offline' },
    ];
    const chan = (id: string, kind: Channel['kind'], name: string, position: number, members: UserId[] = []): Channel => ({
      id,
      kind,
      name,
      topic: '',
      position,
      private: false,
      members,
      last_message_id: null,
    });
    this.channels = [
      chan('c1', 'text', 'general', 0),
      chan('c2', 'text', 'random', 1),
      chan('c3', 'text', 'announcements', 2),
      chan('c4', 'voice', 'Lounge', 3),
      chan('c5', 'dm', '', 0, [me.id, 'u2']),
    ];
    this.messages = new Map(this.channels.map((c) => [c.id, []]));
    this.seq = 0;
    this.lastMs = 0;

    const day = 86_400_000;
    const now = Date.now();
    const add = (channelId: ChannelId, author: UserId, content: string, at: number, extra: Partial<Message> = {}) => {
      const m: Message = {
        id: this.nextId(at),
        channel_id: channelId,
        author_id: author,
        content,
        created_at: at,
        edited_at: null,
        reply_to: null,
        mentions: [...content.matchAll(/<@(\w+)>/g)].map((x) => x[1]),
        reactions: [],
        attachments: [],
        ...extra,
      };
      this.store(m);
      return m;
    };
    const start = now - 3 * day;
    for (let i = 0; i < this.options.fillerMessages; i++) {
      add('c1', i % 2 ? 'u2' : 'u3', `Older message ${i + 1}`, start + i * 60_000);
    }
    add('c1', 'u2', 'Welcome to **Hearth**, everyone!', now - day - 3_600_000);
    add('c1', 'u3', 'Glad to be here. The docs are at https://hearth.example/docs', now - day - 3_500_000, {
      reactions: [{ emoji: '👍', users: ['u2'] }],
    });
    const q = add('c1', 'u2', 'Who is bringing snacks on Saturday?', now - 3_600_000);
    add('c1', me.id, 'I can bring cake 🍰', now - 3_500_000, { reply_to: q.id });
    add('c1', 'u3', `Great, thanks <@${me.id}>! Here is the list:\n\n\`\`\`\ncake\nchips\njuice\n\`\`\``, now - 3_400_000, {
      edited_at: now - 3_300_000,
    });
    add('c2', 'u4', 'Anyone seen my keys?', now - 7_200_000);
    add('c2', 'u2', 'Check the couch', now - 7_100_000);
    add('c3', 'u2', 'Server maintenance on Sunday at 10:00.', now - 2 * day);
    add('c5', 'u2', `Hey <@${me.id}>, can you call me later?`, now - 600_000);

    const lastOf = (id: ChannelId) => (this.messages.get(id) ?? []).at(-1)?.id ?? null;
    const rs = (id: ChannelId, unread: number, mentions: number): ReadState => {
      const list = this.messages.get(id) ?? [];
      return { channel_id: id, last_read: list.at(-1 - unread)?.id ?? null, unread_count: unread, mention_count: mentions };
    };
    this.readStates = [rs('c1', 0, 0), rs('c2', 2, 0), rs('c3', 0, 0), rs('c5', 1, 1)];
  }

  private store(message: Message) {
    const list = this.messages.get(message.channel_id);
    if (!list) return;
    list.push(message);
    const channel = this.channels.find((c) => c.id === message.channel_id);
    if (channel) channel.last_message_id = message.id;
  }

  private commit(message: SendMessage) {
    const me = this.requireMe();
    const stored: Message = {
      id: this.nextId(),
      channel_id: message.channel_id,
      author_id: me.id,
      content: message.content,
      created_at: Date.now(),
      edited_at: null,
      reply_to: message.reply_to,
      mentions: [...message.content.matchAll(/<@(\w+)>/g)].map((x) => x[1]),
      reactions: [],
      attachments: this.attachments.resolve(message.attachments ?? []),
    };
    this.store(stored);
    this.emit({ t: 'MessageCreate', message: stored, nonce: message.nonce });
  }

  private requireMe(): User {
    if (!this.active) throw new BackendError('unauthorized', 'not logged in');
    return this.active.user;
  }

  private requireChannel(channelId: ChannelId): Channel {
    const c = this.channels.find((x) => x.id === channelId);
    if (!c) throw new BackendError('not_found', 'no such channel');
    return c;
  }

  private findMessage(channelId: ChannelId, messageId: MessageId): Message {
    const m = (this.messages.get(channelId) ?? []).find((x) => x.id === messageId);
    if (!m) throw new BackendError('not_found', 'no such message');
    return m;
  }

  private ownMessage(channelId: ChannelId, messageId: MessageId): Message {
    const m = this.findMessage(channelId, messageId);
    if (m.author_id !== this.requireMe().id) throw new BackendError('forbidden', 'not your message');
    return m;
  }

  async transferList() {
    return this.transfers.list();
  }
  async transferPick(folders: boolean) {
    const picked = this.transfers.pickedFiles;
    return picked && folders ? picked.map((p) => p.replace(/\/[^/]*$/, '')) : picked;
  }
  async transferSend(userId: UserId, paths: string[]) {
    if (userId === this.requireMe().id) throw new BackendError('invalid_field', 'userId: choose someone else');
    return this.transfers.send(userId, paths);
  }
  async transferAccept(id: string) {
    return this.transfers.accept(id);
  }
  async transferDecline(id: string) {
    this.transfers.decline(id);
  }
  async transferPause(id: string) {
    this.transfers.pause(id);
  }
  async transferResume(id: string) {
    this.transfers.resume(id);
  }
  async transferCancel(id: string) {
    this.transfers.cancel(id);
  }
  onTransfer(listener: (transfer: TransferInfo) => void) {
    return this.transfers.on(listener);
  }

  async attachmentPick() {
    return this.attachments.picked;
  }
  async attachmentExpand(paths: string[]) {
    return this.attachments.expand(paths);
  }
  attachmentUpload(job: string, path: string) {
    return this.attachments.uploadPath(job, path);
  }
  async attachmentUploadBlob(job: string, name: string, file: Blob) {
    return this.attachments.upload(job, name, await bytesOf(file));
  }
  attachmentDownload(job: string, attachment: Attachment) {
    return this.attachments.download(job, attachment);
  }
  async attachmentCancel(job: string) {
    return this.attachments.cancel(job);
  }
  async attachmentImage(id: AttachmentId) {
    return this.attachments.image(id);
  }
  onAttachmentProgress(listener: (progress: AttachmentProgress) => void) {
    return this.attachments.on(listener);
  }

  // --- group administration (see mock-admin.ts) -----------------------------------------

  inviteCreate(maxUses: number | null, expiresInSecs: number | null) {
    return this.admin.inviteCreate(maxUses, expiresInSecs);
  }
  inviteList() {
    return this.admin.inviteList();
  }
  inviteRevoke(code: string) {
    return this.admin.inviteRevoke(code);
  }
  channelCreate(request: CreateChannelRequest) {
    return this.admin.channelCreate(request);
  }
  channelUpdate(channelId: ChannelId, request: UpdateChannelRequest) {
    return this.admin.channelUpdate(channelId, request);
  }
  channelSetMembers(channelId: ChannelId, members: UserId[]) {
    return this.admin.channelSetMembers(channelId, members);
  }
  channelReorder(channelIds: ChannelId[]) {
    return this.admin.channelReorder(channelIds);
  }
  channelDelete(channelId: ChannelId) {
    return this.admin.channelDelete(channelId);
  }
  memberSetRole(userId: UserId, role: Role) {
    return this.admin.memberSetRole(userId, role);
  }
  memberKick(userId: UserId, reason: string | null) {
    return this.admin.memberKick(userId, reason);
  }
  memberBan(userId: UserId, reason: string | null) {
    return this.admin.memberBan(userId, reason);
  }
  memberUnban(userId: UserId) {
    return this.admin.memberUnban(userId);
  }
  banList() {
    return this.admin.banList();
  }
  memberBlock(userId: UserId, blocked: boolean) {
    return this.admin.memberBlock(userId, blocked);
  }
  ownershipTransfer(userId: UserId) {
    return this.admin.ownershipTransfer(userId);
  }
  serverSettingsUpdate(request: UpdateServerSettingsRequest) {
    return this.admin.serverSettingsUpdate(request);
  }
  serverSetIcon(path: string | null) {
    return this.admin.serverSetIcon(path);
  }
  async serverIconUrl(hash: string) {
    // A flame on a coloured disc stands in for the group's icon.
    let h = 0;
    for (const ch of hash) h = (h * 31 + ch.charCodeAt(0)) % 360;
    const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"><circle cx="32" cy="32" r="32" fill="hsl(${h},60%,45%)"/><path d="M32 12c6 10 14 16 14 28a14 14 0 0 1-28 0c0-8 6-12 8-20 2 6 6 8 6 8z" fill="#fff"/></svg>`;
    return `data:image/svg+xml,${encodeURIComponent(svg)}`;
  }
  auditLog(before: AuditEntryId | null, limit: number) {
    return this.admin.auditLog(before, limit);
  }
}
