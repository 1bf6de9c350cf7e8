//! Device preferences (theme, language, notifications), loaded from and saved to the backend,
//! and applied to the document.

import { type Backend, type ChannelNotify, DEFAULT_SETTINGS, type Language, type NotifyLevel, type Settings, type Theme } from '../backend/backend';
import type { I18n } from '../i18n/i18n.svelte';
import type { ChannelId } from '../protocol/generated';

export class SettingsState {
  current = $state<Settings>(structuredClone(DEFAULT_SETTINGS));

  private backend: Backend;
  private i18n: I18n;

  constructor(backend: Backend, i18n: I18n) {
    this.backend = backend;
    this.i18n = i18n;
  }

  async load() {
    try {
      this.current = await this.backend.getSettings();
    } catch (err) {
      console.error('settings could not be loaded; using defaults', err);
    }
    this.apply();
  }

  setTheme(theme: Theme) {
    this.current.theme = theme;
    return this.save();
  }

  setLanguage(language: Language) {
    this.current.language = language;
    return this.save();
  }

  setLevel(level: NotifyLevel) {
    this.current.notifications.level = level;
    return this.save();
  }

  channel(channelId: ChannelId): ChannelNotify {
    return this.current.notifications.channels[channelId] ?? { muted: false, level: null };
  }

  setChannel(channelId: ChannelId, notify: ChannelNotify) {
    if (!notify.muted && notify.level === null) delete this.current.notifications.channels[channelId];
    else this.current.notifications.channels[channelId] = notify;
    return this.save();
  }

  isMuted(channelId: ChannelId): boolean {
    return this.channel(channelId).muted;
  }

  private async save() {
    this.apply();
    await this.backend.saveSettings($state.snapshot(this.current) as Settings);
  }

  private apply() {
    this.i18n.language = this.current.language;
    if (typeof document !== 'undefined') {
      document.documentElement.dataset.theme = this.current.theme;
      document.documentElement.lang = this.current.language;
    }
  }
}
