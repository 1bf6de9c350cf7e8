//! Voice & audio preferences of this device (devices, input mode and push-to-talk key,
//! sensitivity, noise suppression, echo cancellation, per-user volume) and the mic test.

import {
  type AudioDevices,
  type Backend,
  DEFAULT_VOICE_SETTINGS,
  type MicLevel,
  USER_VOLUME_RANGE,
  type VoiceSettings,
} from '../backend/backend';
import type { UserId } from '../protocol/generated';

export class AudioSettingsState {
  current = $state<VoiceSettings>(structuredClone(DEFAULT_VOICE_SETTINGS));
  devices = $state<AudioDevices>({ inputs: [], outputs: [] });
  micTesting = $state(false);
  /** The latest mic-test level, while the test runs. */
  micLevel = $state<MicLevel | null>(null);

  private backend: Backend;

  constructor(backend: Backend) {
    this.backend = backend;
  }

  async load() {
    try {
      this.current = await this.backend.voiceSettings();
    } catch (err) {
      console.error('voice settings could not be loaded; using defaults', err);
    }
  }

  /** Devices come and go (a headset plugged in): read them each time the settings open. */
  async loadDevices() {
    this.devices = await this.backend.voiceDevices();
  }

  /** Saves a change; when the shell refuses it (a taken shortcut, a missing device) nothing changes. */
  async update(change: Partial<VoiceSettings>) {
    const before = $state.snapshot(this.current) as VoiceSettings;
    const next = { ...before, ...change };
    this.current = next;
    try {
      await this.backend.saveVoiceSettings(structuredClone(next));
    } catch (err) {
      this.current = before;
      throw err;
    }
  }

  volume(userId: UserId): number {
    return this.current.user_volumes[userId] ?? 100;
  }

  async setUserVolume(userId: UserId, volume: number) {
    const v = Math.round(Math.min(USER_VOLUME_RANGE.max, Math.max(USER_VOLUME_RANGE.min, volume)));
    if (v === 100) delete this.current.user_volumes[userId];
    else this.current.user_volumes[userId] = v;
    await this.backend.voiceSetUserVolume(userId, v);
  }

  async startMicTest() {
    if (this.micTesting) return;
    this.micTesting = true;
    try {
      await this.backend.voiceMicTestStart();
    } catch (err) {
      this.micTesting = false;
      throw err;
    }
  }

  async stopMicTest() {
    if (!this.micTesting) return;
    this.micTesting = false;
    this.micLevel = null;
    await this.backend.voiceMicTestStop();
  }

  applyLevel(level: MicLevel) {
    if (this.micTesting) this.micLevel = level;
  }
}
