//! This device's voice call: which channel, its connection state, own mute/deafen, who this
//! device hears speaking, and the quality of each peer link. Who sits in which channel (for
//! everyone) stays in `ChannelsState.voiceStates`, from the protocol.

import {
  type Backend,
  NO_CALL,
  type PeerQuality,
  type SpeakingUpdate,
  type VoiceCall,
} from '../backend/backend';
import type { ChannelsState } from '../channels/channels.svelte';
import type { ChannelId, UserId, VoiceState } from '../protocol/generated';

export class CallState {
  call = $state<VoiceCall>({ ...NO_CALL });
  /** Speaking as this device hears it, by member; only during a call. */
  heard = $state<Record<UserId, SpeakingUpdate>>({});
  /** Our link to each other member of the call. */
  links = $state<Record<UserId, PeerQuality>>({});

  private backend: Backend;
  private channels: ChannelsState;
  private meId: () => UserId | null;
  private onError: (err: unknown) => void;

  constructor(backend: Backend, channels: ChannelsState, meId: () => UserId | null, onError: (err: unknown) => void) {
    this.backend = backend;
    this.channels = channels;
    this.meId = meId;
    this.onError = onError;
  }

  get channel() {
    return this.call.channel_id ? (this.channels.all[this.call.channel_id] ?? null) : null;
  }

  /** The other members of the call, as the server lists them. */
  get peers(): VoiceState[] {
    const id = this.call.channel_id;
    return id ? this.channels.inVoice(id).filter((v) => v.user_id !== this.meId()) : [];
  }

  /** Reads the call as it stands (the app may start while a call runs in the engine). */
  async load() {
    try {
      this.setCall(await this.backend.voiceStatus());
      if (this.call.channel_id) {
        for (const q of await this.backend.voicePeers()) this.links[q.user_id] = q;
      }
    } catch (err) {
      console.error('voice state could not be read', err);
    }
  }

  setCall(call: VoiceCall) {
    if (call.channel_id !== this.call.channel_id) {
      // A new call (or none): nothing heard or measured in the old one applies.
      this.heard = {};
      this.links = {};
    }
    this.call = call;
  }

  applySpeaking(updates: SpeakingUpdate[]) {
    if (!this.call.channel_id) return;
    for (const u of updates) this.heard[u.user_id] = u;
  }

  applyQuality(quality: PeerQuality) {
    if (!this.call.channel_id) return;
    this.links[quality.user_id] = quality;
  }

  /** A member left our channel: forget what we heard and measured of them. */
  applyVoiceState(state: VoiceState) {
    if (state.channel_id === this.call.channel_id) return;
    delete this.heard[state.user_id];
    delete this.links[state.user_id];
  }

  /**
   * Whether a member's speaking ring is lit. In our own call what this device hears wins (it is
   * immediate); elsewhere the flag the server broadcasts.
   */
  isSpeaking(state: VoiceState): boolean {
    if (state.channel_id && state.channel_id === this.call.channel_id) {
      const heard = this.heard[state.user_id];
      if (heard) return heard.speaking;
    }
    return state.speaking;
  }

  link(userId: UserId): PeerQuality | null {
    return this.links[userId] ?? null;
  }

  async join(channelId: ChannelId) {
    if (this.call.channel_id === channelId) return;
    await this.run(async () => {
      const call = await this.backend.voiceJoin(channelId);
      // `voice://state` may already have told us more (e.g. `connected`); the reply is older.
      if (this.call.channel_id !== call.channel_id) this.setCall(call);
    });
  }

  async leave() {
    await this.run(async () => {
      await this.backend.voiceLeave();
      if (this.call.channel_id) this.setCall({ ...this.call, channel_id: null, state: 'disconnected' });
    });
  }

  /** The engine answers with `voice://state`; the buttons follow it, not a guess. */
  toggleMute() {
    return this.run(() => this.backend.voiceSetMute(!this.call.muted));
  }

  toggleDeafen() {
    return this.run(() => this.backend.voiceSetDeafen(!this.call.deafened));
  }

  private async run(action: () => Promise<unknown>) {
    try {
      await action();
    } catch (err) {
      this.onError(err);
    }
  }
}
