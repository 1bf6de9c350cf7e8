//! Which panels and overlays are open. Esc closes the topmost.

import type { UserId } from '../protocol/generated';

export type Overlay = 'switcher' | 'settings' | 'dm-picker' | 'network' | null;

/** The per-user volume menu of a member in a voice channel, where it was opened. */
export interface VolumeMenu {
  userId: UserId;
  x: number;
  y: number;
}

export class UiState {
  overlay = $state<Overlay>(null);
  searchOpen = $state(false);
  membersOpen = $state(true);
  volumeMenu = $state<VolumeMenu | null>(null);
  /** A short notice (e.g. a refused link), cleared after a few seconds. */
  notice = $state<string | null>(null);
  private noticeTimer: ReturnType<typeof setTimeout> | null = null;

  open(overlay: Exclude<Overlay, null>) {
    this.overlay = overlay;
  }

  /** Closes the topmost thing; returns whether anything was open. */
  closeTop(): boolean {
    if (this.volumeMenu) {
      this.volumeMenu = null;
      return true;
    }
    if (this.overlay) {
      this.overlay = null;
      return true;
    }
    if (this.searchOpen) {
      this.searchOpen = false;
      return true;
    }
    return false;
  }

  notify(text: string) {
    this.notice = text;
    if (this.noticeTimer) clearTimeout(this.noticeTimer);
    this.noticeTimer = setTimeout(() => (this.notice = null), 4000);
  }
}
