//! Channels (text, voice, DMs), which one is open, read states and unread/mention badges.

import type { Channel, ChannelId, Event, Message, Ready, ReadState, UserId, VoiceState } from '../protocol/generated';
import { compareIds } from '../messages/ids';

export interface Badge {
  unread: number;
  mentions: number;
}

export const isDm = (c: Channel) => c.kind === 'dm' || c.kind === 'group_dm';

export class ChannelsState {
  all = $state<Record<ChannelId, Channel>>({});
  reads = $state<Record<ChannelId, ReadState>>({});
  voiceStates = $state<Record<UserId, VoiceState>>({});
  selectedId = $state<ChannelId | null>(null);

  text = $derived(this.sorted((c) => c.kind === 'text'));
  voice = $derived(this.sorted((c) => c.kind === 'voice'));
  /** DMs, most recent activity first. */
  dms = $derived(
    Object.values(this.all)
      .filter(isDm)
      .sort((a, b) => compareIds(b.last_message_id ?? b.id, a.last_message_id ?? a.id)),
  );
  selected = $derived(this.selectedId ? (this.all[this.selectedId] ?? null) : null);

  reset(ready: Ready) {
    this.all = Object.fromEntries(ready.channels.map((c) => [c.id, c]));
    this.reads = Object.fromEntries(ready.read_states.map((r) => [r.channel_id, r]));
    this.voiceStates = Object.fromEntries(
      ready.voice_states.filter((v) => v.channel_id).map((v) => [v.user_id, v]),
    );
    if (!this.selectedId || !this.all[this.selectedId]) {
      this.selectedId = this.text[0]?.id ?? this.dms[0]?.id ?? null;
    }
  }

  /** `meId` and `viewing` decide whether a new message counts as unread. */
  apply(event: Event, meId: UserId | null, viewing: ChannelId | null) {
    switch (event.t) {
      case 'ChannelCreate':
      case 'ChannelUpdate':
        this.all[event.channel.id] = { ...this.all[event.channel.id], ...event.channel };
        break;
      case 'ChannelDelete':
        delete this.all[event.channel_id];
        delete this.reads[event.channel_id];
        if (this.selectedId === event.channel_id) this.selectedId = this.text[0]?.id ?? null;
        break;
      case 'ReadStateUpdate':
        this.reads[event.read_state.channel_id] = event.read_state;
        break;
      case 'MessageCreate':
        this.onMessage(event.message, meId, viewing);
        break;
      case 'VoiceStateUpdate':
        if (event.state.channel_id) this.voiceStates[event.state.user_id] = event.state;
        else delete this.voiceStates[event.state.user_id];
        break;
    }
  }

  select(id: ChannelId) {
    if (this.all[id]) this.selectedId = id;
  }

  badge(id: ChannelId): Badge {
    const r = this.reads[id];
    return { unread: r?.unread_count ?? 0, mentions: r?.mention_count ?? 0 };
  }

  /** Members in a voice channel, from voice states. */
  inVoice(id: ChannelId): VoiceState[] {
    return Object.values(this.voiceStates).filter((v) => v.channel_id === id);
  }

  /** Clears the badge locally at once; the backend's ReadStateUpdate confirms it. */
  markReadLocally(id: ChannelId, messageId: string) {
    this.reads[id] = { channel_id: id, last_read: messageId, unread_count: 0, mention_count: 0 };
  }

  /** True when the channel has messages after its read marker. */
  hasUnreadAfter(id: ChannelId): boolean {
    const c = this.all[id];
    const r = this.reads[id];
    if (!c?.last_message_id) return false;
    return !r?.last_read || compareIds(c.last_message_id, r.last_read) > 0;
  }

  private onMessage(message: Message, meId: UserId | null, viewing: ChannelId | null) {
    const channel = this.all[message.channel_id];
    if (!channel) return;
    if (!channel.last_message_id || compareIds(message.id, channel.last_message_id) > 0) {
      channel.last_message_id = message.id;
    }
    if (message.author_id === meId) {
      // Writing in a channel means having read it.
      this.markReadLocally(channel.id, message.id);
      return;
    }
    if (viewing === channel.id) return;
    const r = this.reads[channel.id] ?? { channel_id: channel.id, last_read: null, unread_count: 0, mention_count: 0 };
    if (r.last_read && compareIds(message.id, r.last_read) <= 0) return; // a replay of something read
    const mentioned = isDm(channel) || (meId !== null && message.mentions.includes(meId));
    this.reads[channel.id] = {
      ...r,
      unread_count: Math.min(r.unread_count + 1, 1000),
      mention_count: r.mention_count + (mentioned ? 1 : 0),
    };
  }

  private sorted(filter: (c: Channel) => boolean): Channel[] {
    return Object.values(this.all)
      .filter(filter)
      .sort((a, b) => a.position - b.position || a.name.localeCompare(b.name));
  }
}
