//! The mock's voice side: who sits in which voice channel (as the server would broadcast it),
//! this device's call, peers with believable link numbers (Bob direct and close, Carol through a
//! TURN relay, Dave far away on a lossy line), speaking on timers, a synthetic microphone for the
//! mic test, and devices. `MockBackend` delegates its voice methods here.

import type { ChannelId, Event, UserId, VoiceState } from '../protocol/generated';
import {
  type AudioDevices,
  BackendError,
  DEFAULT_VOICE_SETTINGS,
  LEVEL_FLOOR_DBFS,
  type MicLevel,
  NO_CALL,
  type PeerQuality,
  type SpeakingUpdate,
  THRESHOLD_RANGE_DBFS,
  type Unsubscribe,
  USER_VOLUME_RANGE,
  type VoiceCall,
  type VoiceConnection,
  type VoiceDeviceError,
  type VoiceSettings,
} from './backend';

/** What the voice mock needs from the rest of the mock. */
export interface MockVoiceHost {
  meId(): UserId;
  isVoiceChannel(id: ChannelId): boolean;
  connected(): boolean;
  emit(event: Event): void;
}

class Emitter<T> {
  private listeners = new Set<(value: T) => void>();
  on(listener: (value: T) => void): Unsubscribe {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
  emit(value: T) {
    for (const l of [...this.listeners]) l(structuredClone(value));
  }
}

/** How each seeded member's link looks from here. */
const PROFILES: Record<UserId, Omit<PeerQuality, 'user_id' | 'state'>> = {
  u2: { rtt_ms: 24, loss: 0.004, jitter_ms: 3, path: 'direct' },
  u3: { rtt_ms: 86, loss: 0.021, jitter_ms: 11, path: 'relayed' },
  u4: { rtt_ms: 182, loss: 0.07, jitter_ms: 38, path: 'direct' },
};
const DEFAULT_PROFILE = { rtt_ms: 40, loss: 0.01, jitter_ms: 5, path: 'direct' } as const;

/** Accelerators the mock pretends another application has taken. */
const TAKEN_SHORTCUTS = new Set(['Control+Alt+Delete', 'Super+KeyL']);

/** `[Modifier+]*Code`, the accelerator format of the contract. */
export function isAccelerator(key: string): boolean {
  const parts = key.split('+');
  const code = parts.pop() ?? '';
  const modifiers = new Set(['Control', 'Alt', 'Shift', 'Super']);
  return (
    parts.every((p) => modifiers.has(p)) &&
    new Set(parts).size === parts.length &&
    /^[A-Za-z][A-Za-z0-9]*$/.test(code) &&
    !modifiers.has(code) &&
    !/^(Control|Alt|Shift|Meta|OS)(Left|Right)?$/.test(code)
  );
}

export class MockVoice {
  /** Every voice command in order, as `[method, ...args]` (tests look at what reached the backend). */
  readonly calls: [string, ...unknown[]][] = [];
  states: VoiceState[] = [];
  call: VoiceCall = { ...NO_CALL };
  settings: VoiceSettings = structuredClone(DEFAULT_VOICE_SETTINGS);
  devices: AudioDevices = {
    inputs: [
      { id: 'mic-builtin', name: 'Built-in Microphone', is_default: true },
      { id: 'mic-yeti', name: 'Blue Yeti (USB)', is_default: false },
      { id: 'mic-headset', name: 'Headset Microphone', is_default: false },
    ],
    outputs: [
      { id: 'out-speakers', name: 'Speakers', is_default: true },
      { id: 'out-headset', name: 'Headset', is_default: false },
    ],
  };
  connectDelayMs: number;

  readonly callEvents = new Emitter<VoiceCall>();
  readonly speakingEvents = new Emitter<SpeakingUpdate[]>();
  readonly qualityEvents = new Emitter<PeerQuality>();
  readonly levelEvents = new Emitter<MicLevel>();
  readonly deviceErrors = new Emitter<VoiceDeviceError>();

  private peers = new Map<UserId, PeerQuality>();
  private heard = new Map<UserId, SpeakingUpdate>();
  private muteBeforeDeafen = false;
  private timers = new Set<ReturnType<typeof setTimeout>>();
  private micTimer: ReturnType<typeof setInterval> | null = null;
  private host: MockVoiceHost;

  constructor(host: MockVoiceHost, connectDelayMs: number) {
    this.host = host;
    this.connectDelayMs = connectDelayMs;
  }

  /** A new session: Bob and Carol (muted) are in the Lounge; this device is in no call. */
  seed() {
    this.clearTimers();
    this.states = [
      { user_id: 'u2', channel_id: 'c4', muted: false, deafened: false, speaking: false },
      { user_id: 'u3', channel_id: 'c4', muted: true, deafened: false, speaking: false },
    ];
    this.call = { ...NO_CALL, muted: this.call.muted, deafened: this.call.deafened };
    this.peers.clear();
    this.heard.clear();
  }

  // --- Backend methods --------------------------------------------------------------------

  async status(): Promise<VoiceCall> {
    return { ...this.call };
  }

  async join(channelId: ChannelId): Promise<VoiceCall> {
    this.calls.push(['join', channelId]);
    if (!this.host.isVoiceChannel(channelId)) throw new BackendError('not_found', 'no such voice channel');
    if (!this.host.connected()) throw new BackendError('unavailable', 'not connected');
    if (this.call.channel_id === channelId) return { ...this.call };
    this.clearTimers();
    this.peers.clear();
    this.heard.clear();
    this.call = { ...this.call, channel_id: channelId, state: 'connecting' };
    this.callEvents.emit(this.call);
    this.setOwnState(channelId);
    for (const s of this.states) {
      if (s.channel_id === channelId && s.user_id !== this.host.meId()) this.addPeer(s.user_id);
    }
    this.later(this.connectDelayMs, () => {
      this.setConnection('connected');
      for (const id of this.peers.keys()) this.connectPeer(id);
    });
    return { ...this.call };
  }

  async leave() {
    this.calls.push(['leave']);
    if (!this.call.channel_id) return;
    this.clearTimers();
    this.peers.clear();
    this.heard.clear();
    this.call = { ...this.call, channel_id: null, state: 'disconnected' };
    this.callEvents.emit(this.call);
    this.setOwnState(null);
  }

  async setMute(muted: boolean) {
    this.calls.push(['setMute', muted]);
    this.call = { ...this.call, muted, deafened: muted ? this.call.deafened : false };
    this.announceSelf();
  }

  async setDeafen(deafened: boolean) {
    this.calls.push(['setDeafen', deafened]);
    if (deafened && !this.call.deafened) this.muteBeforeDeafen = this.call.muted;
    this.call = { ...this.call, deafened, muted: deafened ? true : this.muteBeforeDeafen };
    this.announceSelf();
  }

  async setUserVolume(userId: UserId, volume: number) {
    this.calls.push(['setUserVolume', userId, volume]);
    if (!Number.isInteger(volume) || volume < USER_VOLUME_RANGE.min || volume > USER_VOLUME_RANGE.max) {
      throw new BackendError('invalid_field', 'volume: a whole number from 0 to 200');
    }
    if (volume === 100) delete this.settings.user_volumes[userId];
    else this.settings.user_volumes[userId] = volume;
  }

  async peerList(): Promise<PeerQuality[]> {
    return structuredClone([...this.peers.values()]);
  }

  async deviceList(): Promise<AudioDevices> {
    return structuredClone(this.devices);
  }

  async getSettings(): Promise<VoiceSettings> {
    return structuredClone(this.settings);
  }

  async saveSettings(settings: VoiceSettings) {
    this.calls.push(['saveSettings', structuredClone(settings)]);
    const known = (list: { id: string }[], id: string | null) => id === null || list.some((d) => d.id === id);
    if (!known(this.devices.inputs, settings.input_device) || !known(this.devices.outputs, settings.output_device)) {
      throw new BackendError('audio_device', 'that device is not available');
    }
    if (settings.ptt_key !== null && (!isAccelerator(settings.ptt_key) || TAKEN_SHORTCUTS.has(settings.ptt_key))) {
      throw new BackendError('invalid_shortcut', 'that shortcut cannot be registered');
    }
    const t = settings.input_threshold_dbfs;
    if (!(t >= THRESHOLD_RANGE_DBFS.min && t <= THRESHOLD_RANGE_DBFS.max)) {
      throw new BackendError('invalid_field', 'input_threshold_dbfs: -80 to -20');
    }
    this.settings = structuredClone(settings);
  }

  async micTestStart() {
    this.calls.push(['micTestStart']);
    if (this.micTimer) return;
    const started = Date.now();
    this.micTimer = setInterval(() => {
      // Syllables (a 5 Hz wobble) inside phrases (a slow envelope) over a room-noise floor.
      const t = (Date.now() - started) / 1000;
      const phrase = Math.max(0, Math.sin(t * 1.7));
      const level = Math.max(LEVEL_FLOOR_DBFS, -68 + phrase * (42 + 8 * Math.sin(t * 31)));
      this.levelEvents.emit({ level_dbfs: level, voice_detected: level >= this.settings.input_threshold_dbfs });
    }, 100);
  }

  async micTestStop() {
    this.calls.push(['micTestStop']);
    if (this.micTimer) clearInterval(this.micTimer);
    this.micTimer = null;
  }

  get micTestRunning() {
    return this.micTimer !== null;
  }

  // --- test and dev controls --------------------------------------------------------------

  /** Someone joins a voice channel (or moves); in our channel a link to them is made. */
  simulateJoin(userId: UserId, channelId: ChannelId) {
    const state: VoiceState = { user_id: userId, channel_id: channelId, muted: false, deafened: false, speaking: false };
    this.states = [...this.states.filter((s) => s.user_id !== userId), state];
    this.host.emit({ t: 'VoiceStateUpdate', state });
    if (this.call.channel_id === channelId) {
      this.addPeer(userId);
      this.later(this.connectDelayMs, () => this.connectPeer(userId));
    } else if (this.peers.delete(userId)) {
      this.heard.delete(userId);
    }
  }

  simulateLeave(userId: UserId) {
    this.states = this.states.filter((s) => s.user_id !== userId);
    this.peers.delete(userId);
    this.heard.delete(userId);
    this.host.emit({ t: 'VoiceStateUpdate', state: { user_id: userId, channel_id: null, muted: false, deafened: false, speaking: false } });
  }

  /** Another member's own client changes its flags (seen by everyone through the server). */
  simulateFlags(userId: UserId, flags: Partial<Pick<VoiceState, 'muted' | 'deafened' | 'speaking'>>) {
    const s = this.states.find((x) => x.user_id === userId);
    if (!s) return;
    Object.assign(s, flags);
    this.host.emit({ t: 'VoiceStateUpdate', state: { ...s } });
  }

  /**
   * A member talks, as it happens for real: this device hears it (a local speaking update) when
   * the member is in our call, and their client tells the server (a `VoiceStateUpdate`).
   */
  simulateSpeaking(userId: UserId, speaking: boolean, levelDbfs = -22) {
    if (this.peers.has(userId) || (userId === this.host.meId() && this.call.channel_id)) {
      this.emitSpeaking([{ user_id: userId, speaking, level_dbfs: speaking ? levelDbfs : LEVEL_FLOOR_DBFS }]);
    }
    if (this.states.find((s) => s.user_id === userId)?.speaking !== speaking) this.simulateFlags(userId, { speaking });
  }

  /** A device fails (unplugged mid-call): the engine carries on with silence and says so. */
  simulateDeviceError(device: VoiceDeviceError['device']) {
    this.deviceErrors.emit({ device, message: `${device} device disappeared` });
  }

  /** Only the local speaking stream (`voice://speaking`), nothing from the server. */
  emitSpeaking(updates: SpeakingUpdate[]) {
    for (const u of updates) this.heard.set(u.user_id, u);
    this.speakingEvents.emit(updates);
  }

  /** Replaces a peer's link report (and sends it as `voice://quality`). */
  simulateQuality(quality: PeerQuality) {
    this.peers.set(quality.user_id, { ...quality });
    this.qualityEvents.emit(quality);
  }

  /** The engine's view of the call changes (e.g. `reconnecting` while the gateway is away). */
  setConnection(state: VoiceConnection) {
    if (!this.call.channel_id || this.call.state === state) return;
    this.call = { ...this.call, state };
    this.callEvents.emit(this.call);
  }

  /**
   * For `npm run dev:mock`: members talk in turns, links wobble every 2 s. Returns a stop function.
   */
  startSimulation(): () => void {
    const talk = new Map<UserId, number>();
    const tick = setInterval(() => {
      const me = this.host.meId();
      const local: SpeakingUpdate[] = [];
      for (const s of this.states) {
        if (!s.channel_id || s.user_id === me || s.muted) continue;
        const left = talk.get(s.user_id) ?? 0;
        const speaking = left > 0 ? left > 1 : Math.random() < 0.05;
        talk.set(s.user_id, left > 0 ? left - 1 : speaking ? 4 + Math.floor(Math.random() * 12) : 0);
        const level = speaking ? -34 + Math.random() * 22 : LEVEL_FLOOR_DBFS;
        if (this.peers.has(s.user_id) && (speaking || this.heard.get(s.user_id)?.speaking)) {
          local.push({ user_id: s.user_id, speaking, level_dbfs: level });
        }
        if (s.speaking !== speaking) this.simulateFlags(s.user_id, { speaking });
      }
      if (local.length) this.emitSpeaking(local);
    }, 250);
    const wobble = setInterval(() => {
      for (const [id, q] of this.peers) {
        if (q.state !== 'connected') continue;
        const base = PROFILES[id] ?? DEFAULT_PROFILE;
        const vary = (x: number) => Math.max(0, x * (0.8 + Math.random() * 0.4));
        this.simulateQuality({
          ...q,
          rtt_ms: Math.round(vary(base.rtt_ms ?? 40)),
          loss: Math.min(1, vary(base.loss)),
          jitter_ms: Math.round(vary(base.jitter_ms ?? 5) * 10) / 10,
        });
      }
    }, 2000);
    return () => {
      clearInterval(tick);
      clearInterval(wobble);
    };
  }

  // --- internals --------------------------------------------------------------------------

  private addPeer(userId: UserId) {
    this.simulateQuality({ user_id: userId, state: 'connecting', rtt_ms: null, loss: 0, jitter_ms: null, path: 'unknown' });
  }

  private connectPeer(userId: UserId) {
    if (!this.peers.has(userId)) return;
    this.simulateQuality({ user_id: userId, state: 'connected', ...(PROFILES[userId] ?? DEFAULT_PROFILE) });
  }

  /** Our own voice state as the server would broadcast it after `VoiceJoin`/`VoiceUpdate`. */
  private setOwnState(channelId: ChannelId | null) {
    const me = this.host.meId();
    const state: VoiceState = { user_id: me, channel_id: channelId, muted: this.call.muted, deafened: this.call.deafened, speaking: false };
    this.states = this.states.filter((s) => s.user_id !== me);
    if (channelId) this.states.push(state);
    this.host.emit({ t: 'VoiceStateUpdate', state });
  }

  private announceSelf() {
    this.callEvents.emit(this.call);
    if (this.call.channel_id) this.setOwnState(this.call.channel_id);
  }

  private later(ms: number, run: () => void) {
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      run();
    }, ms);
    this.timers.add(timer);
  }

  private clearTimers() {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
  }
}
