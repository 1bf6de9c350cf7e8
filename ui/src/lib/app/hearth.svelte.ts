//! The app's root state: builds one state object per domain over a `Backend` and routes the
//! backend's snapshots and events to them. The only place that subscribes to the backend.

import type { Backend, Unsubscribe } from '../backend/backend';
import { AdminState } from '../admin/admin.svelte';
import { ChannelsState } from '../channels/channels.svelte';
import { I18n } from '../i18n/i18n.svelte';
import { MembersState } from '../members/members.svelte';
import { MessagesState } from '../messages/messages.svelte';
import type { ChannelId, Event, MessageId, Ready, UserId } from '../protocol/generated';
import { errorKey, SessionState } from '../session/session.svelte';
import { isMessageLinkLike, type MessageLink, parseMessageLink, sameServer } from '../messages/links';
import { SearchState } from '../search/search.svelte';
import { SettingsState } from '../settings/settings.svelte';
import { AudioSettingsState } from '../voice/audio.svelte';
import { CallState } from '../voice/call.svelte';
import { TransfersState } from '../transfers/transfers.svelte';
import { UiState } from './ui.svelte';

export class Hearth {
  readonly backend: Backend;
  readonly i18n = new I18n();
  readonly session: SessionState;
  readonly channels = new ChannelsState();
  readonly members: MembersState;
  readonly messages: MessagesState;
  readonly settings: SettingsState;
  readonly call: CallState;
  readonly audio: AudioSettingsState;
  readonly transfers: TransfersState;
  readonly search: SearchState;
  readonly admin: AdminState;
  readonly ui = new UiState();

  private subscriptions: Unsubscribe[] = [];
  /** A message link waiting for the snapshot of its account (whose user is `userId`). */
  private pendingJump: { link: MessageLink; userId: UserId } | null = null;
  /** Whether the window has focus: a message in the open channel is read only if it is seen. */
  focused = $state(true);

  constructor(backend: Backend) {
    this.backend = backend;
    this.session = new SessionState(backend);
    this.members = new MembersState(backend);
    this.messages = new MessagesState(backend, (err) => {
      const { key, detail } = errorKey(err);
      this.ui.notify(this.i18n.t(key, { detail }));
    });
    this.settings = new SettingsState(backend, this.i18n);
    this.call = new CallState(backend, this.channels, () => this.members.meId, (err) => this.notifyError(err));
    this.audio = new AudioSettingsState(backend);
    this.transfers = new TransfersState(backend, (err) => this.notifyError(err));
    this.search = new SearchState(backend);
    this.admin = new AdminState(backend, this.members);
  }

  /** Shows a failed action as a short notice in the user's language. */
  notifyError(err: unknown) {
    const { key, detail } = errorKey(err);
    this.ui.notify(this.i18n.t(key, { detail }));
  }

  async start() {
    // Subscribe before reading the snapshot, so nothing falls between the two.
    this.subscriptions.push(
      this.backend.onStatus((s) => this.session.setStatus(s)),
      this.backend.onReady((r) => this.applyReady(r)),
      this.backend.onEvent((e) => this.applyEvent(e)),
      this.backend.onSendFailed((f) => this.messages.fail(f.channel_id, f.nonce, f.error.code)),
      this.backend.onVoiceCall((c) => this.call.setCall(c)),
      this.backend.onSpeaking((s) => this.call.applySpeaking(s)),
      this.backend.onQuality((q) => this.call.applyQuality(q)),
      this.backend.onMicLevel((l) => this.audio.applyLevel(l)),
      this.backend.onVoiceDeviceError(() => this.ui.notify(this.i18n.t('error.audio_device'))),
      this.backend.onLink((url) => void this.openLink(url)),
      this.backend.onOpenChannel((id) => this.showChannel(id)),
      this.backend.onTransfer((x) => this.transfers.apply(x)),
    );
    await Promise.all([this.settings.load(), this.session.init(), this.audio.load()]);
    const snapshot = await this.backend.snapshot();
    if (snapshot) this.applyReady(snapshot);
    const link = await this.backend.takeStartupLink();
    if (link) void this.openLink(link);
    await this.call.load();
    await this.transfers.load();
  }

  /** Brings a conversation to the front (a notification was clicked). */
  showChannel(id: ChannelId) {
    if (this.session.phase !== 'ready' || !this.channels.all[id]) return;
    this.session.cancelAdding();
    this.ui.overlay = null;
    void this.openChannel(id);
  }

  stop() {
    for (const unsubscribe of this.subscriptions.splice(0)) unsubscribe();
  }

  /** Opens a channel at the present: loads its newest page and marks it read. */
  async openChannel(id: ChannelId) {
    this.channels.select(id);
    this.messages.replyTo = null;
    this.messages.editing = null;
    // Left somewhere in its past by a jump: a channel opened from the list opens at the present.
    if (this.messages.timeline(id).hasNewer) await this.messages.reload(id);
    else await this.messages.open(id);
    this.markSeen(id);
  }

  /** Opens (or finds) the DM or group DM with these people and shows it. */
  async openDm(recipients: UserId[]) {
    const channel = await this.backend.openDm(recipients);
    this.channels.all[channel.id] ??= channel;
    this.ui.overlay = null;
    await this.openChannel(channel.id);
  }

  /**
   * Opens a message in its channel (a search hit, a reply's parent, a message link): the history
   * around it loaded, the message in view and highlighted. Tells the user when it is gone.
   */
  async jumpToMessage(channelId: ChannelId, messageId: MessageId) {
    if (!this.channels.all[channelId]) {
      this.ui.notify(this.i18n.t('jump.noChannel'));
      return;
    }
    this.channels.select(channelId);
    this.messages.replyTo = null;
    this.messages.editing = null;
    const found = await this.messages.jump(channelId, messageId);
    if (!found) this.ui.notify(this.i18n.t('jump.gone'));
    if (!this.messages.timeline(channelId).hasNewer) this.markSeen(channelId);
  }

  /**
   * A `hearth://` link, from outside (the scheme) or clicked in a message: a message link jumps
   * to its message; anything else goes to the sign-in screen, which parses join and setup links.
   */
  async openLink(url: string) {
    const target = parseMessageLink(url);
    if (target) await this.openMessageLink(target);
    else if (isMessageLinkLike(url)) this.ui.notify(this.i18n.t('link.invalid'));
    else this.session.openJoinLink(url);
  }

  /**
   * Jumps to a linked message: in the active account when it is on the link's server, else
   * after switching to this app's account there (the jump waits for its snapshot). A server the
   * app has no account on, a channel this member cannot read, a message that is gone: a notice.
   */
  async openMessageLink(link: MessageLink) {
    const active = this.session.active;
    const onServer = active && sameServer(active.server_url, link.serverUrl) ? active : null;
    const account = onServer ?? this.session.accounts.find((a) => sameServer(a.server_url, link.serverUrl));
    if (!account) {
      this.ui.notify(this.i18n.t('link.unknownServer'));
      return;
    }
    this.session.cancelAdding();
    this.ui.overlay = null;
    if (account.id !== active?.id) {
      const pending = (this.pendingJump = { link, userId: account.user.id });
      try {
        await this.session.switchTo(account.id);
      } catch (err) {
        this.pendingJump = null;
        this.notifyError(err);
        return;
      }
      // The new account's Ready may have come before the switch returned.
      if (this.pendingJump !== pending || !this.session.hasSnapshot) return;
    } else if (!this.session.hasSnapshot) {
      this.pendingJump = { link, userId: account.user.id };
      return;
    }
    this.pendingJump = null;
    await this.jumpToMessage(link.channelId, link.messageId);
  }

  /** Marks the open channel read up to its newest message, if there is anything unread. */
  markSeen(id: ChannelId | null = this.channels.selectedId) {
    if (!id || !this.focused) return;
    const newest = this.channels.all[id]?.last_message_id ?? this.messages.timeline(id).messages.at(-1)?.id;
    if (!newest) return;
    const badge = this.channels.badge(id);
    if (badge.unread === 0 && badge.mentions === 0 && !this.channels.hasUnreadAfter(id)) return;
    this.channels.markReadLocally(id, newest);
    this.backend.markRead(id, newest).catch(() => undefined);
  }

  private applyReady(ready: Ready) {
    // Another account's results are not this one's to see.
    if (this.members.meId !== ready.user.id) this.search.clear();
    this.members.reset(ready);
    this.admin.reset(ready);
    this.channels.reset(ready);
    const open = this.channels.selectedId;
    this.messages.reset(open);
    this.session.hasSnapshot = true;
    const jump = this.pendingJump;
    if (jump && jump.userId === ready.user.id) {
      this.pendingJump = null;
      void this.jumpToMessage(jump.link.channelId, jump.link.messageId);
    } else if (open) void this.messages.reload(open).then(() => this.markSeen(open));
  }

  private applyEvent(event: Event) {
    const viewing = this.focused ? this.channels.selectedId : null;
    this.members.apply(event);
    this.admin.apply(event);
    this.channels.apply(event, this.members.meId, viewing);
    this.messages.apply(event);
    this.search.apply(event);
    if (event.t === 'VoiceStateUpdate') this.call.applyVoiceState(event.state);
    if (event.t === 'MessageCreate' && event.message.channel_id === viewing && event.message.author_id !== this.members.meId) {
      this.markSeen(viewing);
    }
  }
}
