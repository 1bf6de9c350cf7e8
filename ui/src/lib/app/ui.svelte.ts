//! Which panels and overlays are open. Esc closes the topmost.

export type Overlay = 'switcher' | 'settings' | 'dm-picker' | null;

export class UiState {
  overlay = $state<Overlay>(null);
  searchOpen = $state(false);
  membersOpen = $state(true);
  /** A short notice (e.g. a refused link), cleared after a few seconds. */
  notice = $state<string | null>(null);
  private noticeTimer: ReturnType<typeof setTimeout> | null = null;

  open(overlay: Exclude<Overlay, null>) {
    this.overlay = overlay;
  }

  /** Closes the topmost thing; returns whether anything was open. */
  closeTop(): boolean {
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
