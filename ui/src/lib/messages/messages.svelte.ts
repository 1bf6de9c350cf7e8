//! Loaded history per channel, pending (unacknowledged) and failed sends, typing indicators,
//! the message being edited or replied to, and jumps to a message (a search hit, a reply's
//! parent): the window around it is merged into what is loaded when the two overlap, and
//! replaces it when they do not, so a timeline is always one contiguous run of history.

import { type AroundPage, type Backend, BackendError } from '../backend/backend';
import type { Attachment, ChannelId, Event, Message, MessageId, UserId } from '../protocol/generated';
import { compareIds } from './ids';

export const PAGE_SIZE = 50;
/** Messages a jump loads around its target: 25 on each side. */
export const AROUND_SIZE = 51;
/** How long a typing indicator lasts without a new TypingStart (the server's cadence is ~8 s). */
export const TYPING_TTL_MS = 10_000;
/** The UI tells the backend "typing" at most this often. */
export const TYPING_SEND_INTERVAL_MS = 8_000;

export interface PendingMessage {
  nonce: string;
  channel_id: ChannelId;
  content: string;
  reply_to: MessageId | null;
  created_at: number;
  state: 'sending' | 'failed';
  error: string | null;
  /** Uploaded files going with it (shown by name while pending). */
  attachments: Attachment[];
}

export interface Timeline {
  /** Replaced, never changed in place, when a message comes, goes or is edited (the pane
   *  derives its rows from the array alone, not from each element). Reactions change in place. */
  messages: Message[];
  pending: PendingMessage[];
  /** False once the start of the channel is loaded. */
  hasMore: boolean;
  /** The loaded run stops short of the present (after a jump into older history): arrivals are
   *  not added (they would leave a gap), pages towards the present are loaded instead. */
  hasNewer: boolean;
  loading: boolean;
  loadingNewer: boolean;
  /** The first page has been fetched. */
  loaded: boolean;
}

const emptyTimeline = (): Timeline => ({
  messages: [],
  pending: [],
  hasMore: true,
  hasNewer: false,
  loading: false,
  loadingNewer: false,
  loaded: false,
});

function newNonce(): string {
  if (typeof crypto !== 'undefined' && 'randomUUID' in crypto) return crypto.randomUUID();
  return `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
}

export class MessagesState {
  timelines = $state<Record<ChannelId, Timeline>>({});
  /** channel → user → expiry (ms since epoch). */
  typing = $state<Record<ChannelId, Record<UserId, number>>>({});
  replyTo = $state<Message | null>(null);
  editing = $state<Message | null>(null);
  /** A message to flash (from search). */
  highlight = $state<MessageId | null>(null);
  /** A message its channel's pane should bring into view; the pane takes it ([`jumpDone`]). */
  jumpTarget = $state<{ channelId: ChannelId; id: MessageId } | null>(null);

  private backend: Backend;
  /** Where failures of edits, deletes and reactions go (the root shows a notice). */
  private report: (err: BackendError) => void;
  private lastTypingSent = new Map<ChannelId, number>();
  private typingTimers = new Map<string, ReturnType<typeof setTimeout>>();

  constructor(backend: Backend, report: (err: BackendError) => void = () => undefined) {
    this.backend = backend;
    this.report = report;
  }

  private async attempt(action: () => Promise<void>) {
    try {
      await action();
    } catch (err) {
      this.report(BackendError.from(err));
    }
  }

  timeline(channelId: ChannelId): Timeline {
    return this.timelines[channelId] ?? emptyTimeline();
  }

  /** Scrolls the channel's pane to a loaded message and flashes it. */
  jumpTo(channelId: ChannelId, id: MessageId) {
    this.highlight = id;
    this.jumpTarget = { channelId, id };
  }

  /**
   * Jumps to any message of a channel: loads the history around it unless it is loaded, then
   * scrolls to it and flashes it. Returns false when the message no longer exists (the history
   * around its place is shown all the same) or could not be loaded (the failure is reported).
   */
  async jump(channelId: ChannelId, id: MessageId): Promise<boolean> {
    if (!this.find(channelId, id)) {
      let page: AroundPage;
      try {
        page = await this.backend.historyAround(channelId, id, AROUND_SIZE);
      } catch (err) {
        this.report(BackendError.from(err));
        return false;
      }
      this.merge(channelId, page);
    }
    const found = this.find(channelId, id) !== null;
    if (found) this.jumpTo(channelId, id);
    return found;
  }

  /**
   * Puts a window of history into a channel's timeline: joined to what is loaded when the two
   * overlap (each is a contiguous run, so their union is one), else in its place.
   */
  private merge(channelId: ChannelId, page: AroundPage) {
    const t = this.ensure(channelId);
    const window = [...page.messages].sort((a, b) => compareIds(a.id, b.id));
    const first = t.messages[0]?.id;
    const last = t.messages.at(-1)?.id;
    const overlaps =
      t.loaded &&
      first !== undefined &&
      last !== undefined &&
      window.length > 0 &&
      compareIds(window[0].id, last) <= 0 &&
      compareIds(window[window.length - 1].id, first) >= 0;
    if (!overlaps) {
      t.messages = window;
      t.hasMore = page.has_older;
      t.hasNewer = page.has_newer;
      t.loaded = true;
      return;
    }
    const known = new Set(t.messages.map((m) => m.id));
    const fresh = window.filter((m) => !known.has(m.id));
    if (fresh.length) t.messages = [...t.messages, ...fresh].sort((a, b) => compareIds(a.id, b.id));
    if (compareIds(window[0].id, first) < 0) t.hasMore = page.has_older;
    if (compareIds(window[window.length - 1].id, last) > 0) t.hasNewer = page.has_newer;
  }

  /** Loads the page after the newest loaded message, when the timeline stops short of the
   *  present. Returns how many arrived. */
  async loadNewer(channelId: ChannelId): Promise<number> {
    const t = this.ensure(channelId);
    const last = t.messages.at(-1)?.id;
    if (!t.hasNewer || t.loadingNewer || last === undefined) return 0;
    t.loadingNewer = true;
    try {
      const page = await this.backend.historyAfter(channelId, last, PAGE_SIZE);
      const known = new Set(t.messages.map((m) => m.id));
      const fresh = page.messages.filter((m) => !known.has(m.id) && compareIds(m.id, last) > 0);
      t.messages = [...t.messages, ...fresh.sort((a, b) => compareIds(a.id, b.id))];
      t.hasNewer = page.has_more;
      return fresh.length;
    } catch (err) {
      console.error('history page failed', BackendError.from(err).code);
      return 0;
    } finally {
      t.loadingNewer = false;
    }
  }

  /** The pane has shown the jump target (or cannot: it is not loaded any more). */
  jumpDone() {
    this.jumpTarget = null;
  }

  /**
   * Drops everything loaded (a new Ready may follow a gap), but keeps unacknowledged sends: they
   * are still in the engine's outbox and their acknowledgements will arrive. The channel on
   * screen (`keep`) stays as it is until [`reload`] replaces it, so the view does not flash empty.
   */
  reset(keep: ChannelId | null = null) {
    const kept: Record<ChannelId, Timeline> = {};
    for (const [id, t] of Object.entries(this.timelines)) {
      if (id === keep) kept[id] = t;
      else if (t.pending.length) kept[id] = { ...emptyTimeline(), pending: t.pending };
    }
    this.timelines = kept;
    this.typing = {};
    this.replyTo = null;
    this.editing = null;
  }

  /** Replaces a channel's loaded messages with its newest page, in one step. */
  async reload(channelId: ChannelId) {
    try {
      const page = await this.backend.history(channelId, null, PAGE_SIZE);
      const t = this.ensure(channelId);
      t.messages = [...page.messages].sort((a, b) => compareIds(a.id, b.id));
      t.hasMore = page.has_more;
      t.hasNewer = false;
      t.loaded = true;
    } catch (err) {
      console.error('history page failed', BackendError.from(err).code);
    }
  }

  private ensure(channelId: ChannelId): Timeline {
    if (!this.timelines[channelId]) this.timelines[channelId] = emptyTimeline();
    return this.timelines[channelId];
  }

  /** Loads the newest page the first time a channel is opened. */
  async open(channelId: ChannelId) {
    const t = this.ensure(channelId);
    if (t.loaded || t.loading) return;
    await this.loadOlder(channelId);
  }

  /**
   * Loads the page before the oldest loaded message. Returns how many arrived. `onAdded` runs
   * as soon as they are stored, before anything renders, so a caller can change what it shows
   * around them in the same update.
   */
  async loadOlder(channelId: ChannelId, onAdded?: (added: number) => void): Promise<number> {
    const t = this.ensure(channelId);
    if (t.loading || (t.loaded && !t.hasMore)) return 0;
    t.loading = true;
    try {
      const before = t.messages[0]?.id ?? null;
      const page = await this.backend.history(channelId, before, PAGE_SIZE);
      const older = [...page.messages].sort((a, b) => compareIds(a.id, b.id));
      const first = t.messages[0]?.id;
      let added = older.length;
      if (first === undefined || added === 0 || compareIds(older[added - 1].id, first) < 0) {
        // The usual case, the whole page before what is loaded: no merge over a long history.
        t.messages = [...older, ...t.messages];
      } else {
        const known = new Set(t.messages.map((m) => m.id));
        const fresh = older.filter((m) => !known.has(m.id));
        added = fresh.length;
        t.messages = [...fresh, ...t.messages].sort((a, b) => compareIds(a.id, b.id));
      }
      t.hasMore = page.has_more;
      t.loaded = true;
      onAdded?.(added);
      return added;
    } catch (err) {
      console.error('history page failed', BackendError.from(err).code);
      return 0;
    } finally {
      t.loading = false;
    }
  }

  /** Shows the message as pending at once and hands it to the backend. */
  async send(
    channelId: ChannelId,
    content: string,
    replyTo: MessageId | null = null,
    attachments: Attachment[] = [],
  ): Promise<string> {
    const nonce = newNonce();
    const t = this.ensure(channelId);
    t.pending.push({
      nonce,
      channel_id: channelId,
      content,
      reply_to: replyTo,
      created_at: Date.now(),
      state: 'sending',
      error: null,
      attachments,
    });
    await this.submit(channelId, nonce);
    return nonce;
  }

  /** Sends a failed message again with the same nonce (the server never stores it twice). */
  async retry(channelId: ChannelId, nonce: string) {
    const p = this.timeline(channelId).pending.find((x) => x.nonce === nonce);
    if (!p) return;
    p.state = 'sending';
    p.error = null;
    await this.submit(channelId, nonce);
  }

  discard(channelId: ChannelId, nonce: string) {
    const t = this.ensure(channelId);
    t.pending = t.pending.filter((p) => p.nonce !== nonce);
  }

  private async submit(channelId: ChannelId, nonce: string) {
    const p = this.timeline(channelId).pending.find((x) => x.nonce === nonce);
    if (!p) return;
    try {
      await this.backend.sendMessage({
        channel_id: channelId,
        content: p.content,
        reply_to: p.reply_to,
        nonce,
        attachments: p.attachments.map((a) => a.id),
      });
    } catch (err) {
      this.fail(channelId, nonce, BackendError.from(err).code);
    }
  }

  fail(channelId: ChannelId, nonce: string, code: string) {
    const p = this.timeline(channelId).pending.find((x) => x.nonce === nonce);
    if (p) {
      p.state = 'failed';
      p.error = code;
    }
  }

  async edit(message: Message, content: string) {
    if (content.trim() === '') return this.remove(message);
    if (content === message.content) return;
    await this.attempt(() => this.backend.editMessage(message.channel_id, message.id, content));
  }

  async remove(message: Message) {
    await this.attempt(() => this.backend.deleteMessage(message.channel_id, message.id));
  }

  async toggleReaction(message: Message, emoji: string, meId: UserId) {
    const mine = message.reactions.find((r) => r.emoji === emoji)?.users.includes(meId);
    await this.attempt(() =>
      mine
        ? this.backend.removeReaction(message.channel_id, message.id, emoji)
        : this.backend.addReaction(message.channel_id, message.id, emoji),
    );
  }

  /** Called on input in the composer: tells the backend, at most every few seconds. */
  userTyping(channelId: ChannelId, now = Date.now()) {
    const last = this.lastTypingSent.get(channelId) ?? 0;
    if (now - last < TYPING_SEND_INTERVAL_MS) return;
    this.lastTypingSent.set(channelId, now);
    this.backend.typing(channelId).catch(() => undefined);
  }

  /** The newest message by `userId` in a channel (for Up to edit). */
  lastOwn(channelId: ChannelId, userId: UserId): Message | null {
    const list = this.timeline(channelId).messages;
    for (let i = list.length - 1; i >= 0; i--) if (list[i].author_id === userId) return list[i];
    return null;
  }

  find(channelId: ChannelId, id: MessageId): Message | null {
    return this.timeline(channelId).messages.find((m) => m.id === id) ?? null;
  }

  typers(channelId: ChannelId, meId: UserId | null): UserId[] {
    const now = Date.now();
    return Object.entries(this.typing[channelId] ?? {})
      .filter(([user, until]) => user !== meId && until > now)
      .map(([user]) => user);
  }

  apply(event: Event) {
    switch (event.t) {
      case 'MessageCreate': {
        const t = this.timelines[event.message.channel_id];
        this.stopTyping(event.message.channel_id, event.message.author_id);
        if (!t) return; // not loaded: the first page will include it
        if (event.nonce) t.pending = t.pending.filter((p) => p.nonce !== event.nonce);
        // Away from the present, the pages towards it will bring this message in its place.
        if (t.hasNewer) return;
        if (t.messages.some((m) => m.id === event.message.id)) return;
        const list = [...t.messages, event.message];
        if (list.length > 1 && compareIds(list[list.length - 2].id, event.message.id) > 0) {
          list.sort((a, b) => compareIds(a.id, b.id));
        }
        t.messages = list;
        break;
      }
      case 'MessageUpdate': {
        const t = this.timelines[event.message.channel_id];
        if (!t) return;
        const i = t.messages.findIndex((m) => m.id === event.message.id);
        if (i >= 0) t.messages = t.messages.map((m, j) => (j === i ? event.message : m));
        break;
      }
      case 'MessageDelete': {
        const t = this.timelines[event.channel_id];
        if (t) t.messages = t.messages.filter((m) => m.id !== event.message_id);
        if (this.editing?.id === event.message_id) this.editing = null;
        if (this.replyTo?.id === event.message_id) this.replyTo = null;
        break;
      }
      case 'ReactionAdd':
      case 'ReactionRemove': {
        const m = this.find(event.channel_id, event.message_id);
        if (!m) return;
        let r = m.reactions.find((x) => x.emoji === event.emoji);
        if (event.t === 'ReactionAdd') {
          if (!r) {
            m.reactions.push({ emoji: event.emoji, users: [] });
            r = m.reactions[m.reactions.length - 1];
          }
          if (!r.users.includes(event.user_id)) r.users.push(event.user_id);
        } else if (r) {
          r.users = r.users.filter((u) => u !== event.user_id);
          if (r.users.length === 0) m.reactions = m.reactions.filter((x) => x.emoji !== event.emoji);
        }
        break;
      }
      case 'TypingStart': {
        const until = Date.now() + TYPING_TTL_MS;
        this.typing[event.channel_id] = { ...(this.typing[event.channel_id] ?? {}), [event.user_id]: until };
        const key = `${event.channel_id}/${event.user_id}`;
        clearTimeout(this.typingTimers.get(key));
        this.typingTimers.set(
          key,
          setTimeout(() => this.stopTyping(event.channel_id, event.user_id), TYPING_TTL_MS),
        );
        break;
      }
    }
  }

  private stopTyping(channelId: ChannelId, userId: UserId) {
    const c = this.typing[channelId];
    if (!c || !(userId in c)) return;
    const { [userId]: _gone, ...rest } = c;
    this.typing[channelId] = rest;
    const key = `${channelId}/${userId}`;
    clearTimeout(this.typingTimers.get(key));
    this.typingTimers.delete(key);
  }
}
