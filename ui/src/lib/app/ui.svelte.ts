//! Which panels and overlays are open. Esc closes the topmost.

import type { ChannelId, ChannelKind, UserId } from '../protocol/generated';

export type Overlay = 'switcher' | 'settings' | 'dm-picker' | 'network' | 'server' | 'channel' | null;

/** The server settings dialog's tabs. */
export type ServerTab = 'overview' | 'invites' | 'members' | 'bans' | 'audit';

/** The channel dialog: a new channel of a kind, or an existing one. */
export type ChannelDialog = { mode: 'create'; kind: ChannelKind } | { mode: 'edit'; id: ChannelId };

/** A member's menu (role, kick, ban, block, ownership), where it was opened. */
export interface MemberMenu {
  userId: UserId;
  x: number;
  y: number;
}

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
  memberMenu = $state<MemberMenu | null>(null);
  serverTab = $state<ServerTab>('overview');
  channelDialog = $state<ChannelDialog | null>(null);
  /** A short notice (e.g. a refused link), cleared after a few seconds. */
  notice = $state<string | null>(null);
  private noticeTimer: ReturnType<typeof setTimeout> | null = null;

  open(overlay: Exclude<Overlay, null>) {
    this.overlay = overlay;
  }

  openServer(tab: ServerTab) {
    this.serverTab = tab;
    this.memberMenu = null;
    this.overlay = 'server';
  }

  openChannelDialog(dialog: ChannelDialog) {
    this.channelDialog = dialog;
    this.overlay = 'channel';
  }

  /** Closes the topmost thing; returns whether anything was open. */
  closeTop(): boolean {
    if (this.volumeMenu) {
      this.volumeMenu = null;
      return true;
    }
    if (this.memberMenu) {
      this.memberMenu = null;
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
