//! Saved accounts, the active one, the connection state, and the steps of signing in.

import { type Account, type Backend, BackendError, type SessionStatus } from '../backend/backend';
import type { ServerInfo } from '../protocol/generated';

/** What the window shows: nothing yet, the sign-in screens, or the group. */
export type Phase = 'loading' | 'signed-out' | 'waiting' | 'ready';

export class SessionState {
  accounts = $state<Account[]>([]);
  active = $state<Account | null>(null);
  status = $state<SessionStatus>({ state: 'offline' });
  /** True once a Ready snapshot has been applied for the active account. */
  hasSnapshot = $state(false);

  /** Signed in, and adding another server's account (from Settings or a join link). */
  adding = $state(false);
  /** A join link for the sign-in screen to open (it takes it, once). */
  pendingLink = $state<string | null>(null);

  private initialised = $state(false);

  phase: Phase = $derived(
    this.active === null || this.adding
      ? this.initialised
        ? 'signed-out'
        : 'loading'
      : this.hasSnapshot
        ? 'ready'
        : 'waiting',
  );

  private backend: Backend;

  constructor(backend: Backend) {
    this.backend = backend;
  }

  async init() {
    const [accounts, active, status] = await Promise.all([
      this.backend.listAccounts(),
      this.backend.activeAccount(),
      this.backend.sessionStatus(),
    ]);
    this.accounts = accounts;
    this.active = active;
    this.status = status;
    this.initialised = true;
  }

  /** A `hearth://join` link: the sign-in screen opens it (over the group when signed in). */
  openJoinLink(url: string) {
    this.pendingLink = url;
    if (this.active) this.adding = true;
  }

  /** Shows the sign-in screen for another server while staying signed in here. */
  startAdding() {
    this.adding = true;
  }

  cancelAdding() {
    this.adding = false;
    this.pendingLink = null;
  }

  /** The pending join link, once. */
  takeLink(): string | null {
    const link = this.pendingLink;
    this.pendingLink = null;
    return link;
  }

  setStatus(status: SessionStatus) {
    this.status = status;
  }

  serverInfo(url: string): Promise<ServerInfo> {
    return this.backend.serverInfo(url);
  }

  async register(serverUrl: string, invite: string, username: string, password: string, displayName: string | null) {
    await this.signIn(() =>
      this.backend.register(serverUrl, { invite, username, password, display_name: displayName?.trim() || null }),
    );
  }

  async login(serverUrl: string, username: string, password: string) {
    await this.signIn(() => this.backend.login(serverUrl, { username, password }));
  }

  async logout() {
    if (!this.active) return;
    await this.backend.logout(this.active.id);
    this.active = null;
    this.hasSnapshot = false;
    this.accounts = await this.backend.listAccounts();
  }

  async switchTo(accountId: string) {
    await this.signIn(async () => {
      await this.backend.switchAccount(accountId);
      const active = await this.backend.activeAccount();
      if (!active) throw new BackendError('not_found', 'no active account after switching');
      return active;
    });
  }

  /**
   * Starts another account's session. The new session's `Ready` may arrive before the call
   * returns, so the old snapshot is dropped before the call, not after (which would lose it);
   * if the call fails, the running session and its snapshot stay.
   */
  private async signIn(start: () => Promise<Account>) {
    const hadSnapshot = this.hasSnapshot;
    this.hasSnapshot = false;
    let account: Account;
    try {
      account = await start();
    } catch (err) {
      this.hasSnapshot = hadSnapshot;
      throw err;
    }
    this.active = account;
    this.adding = false;
    this.accounts = await this.backend.listAccounts();
  }
}

/** Maps a failure to an i18n key and its parameters, never showing internal text for unknown errors. */
export function errorKey(err: unknown): {
  key:
    | 'error.invalid_credentials'
    | 'error.invalid_invite'
    | 'error.invalid_field'
    | 'error.rate_limited'
    | 'error.network'
    | 'error.audio_device'
    | 'error.invalid_shortcut'
    | 'error.update_unreachable'
    | 'error.update_bad_signature'
    | 'error.update_none'
    | 'error.missing_permission'
    | 'error.forbidden'
    | 'error.blocked'
    | 'error.unsupported_media'
    | 'error.payload_too_large'
    | 'error.not_found'
    | 'error.generic';
  detail: string;
} {
  const e = BackendError.from(err);
  switch (e.code) {
    case 'invalid_credentials':
      return { key: 'error.invalid_credentials', detail: '' };
    case 'invalid_invite':
      return { key: 'error.invalid_invite', detail: '' };
    case 'invalid_field':
      // The server's message for invalid_field names the field and the rule; it is meant for users.
      return { key: 'error.invalid_field', detail: e.message };
    case 'rate_limited':
      return { key: 'error.rate_limited', detail: '' };
    case 'network':
    case 'unavailable':
      return { key: 'error.network', detail: '' };
    case 'audio_device':
      return { key: 'error.audio_device', detail: '' };
    case 'invalid_shortcut':
      return { key: 'error.invalid_shortcut', detail: '' };
    case 'missing_permission':
    case 'forbidden':
    case 'blocked':
    case 'unsupported_media':
    case 'payload_too_large':
    case 'not_found':
    case 'update_unreachable':
    case 'update_bad_signature':
    case 'update_none':
      return { key: `error.${e.code}`, detail: '' };
    default:
      return { key: 'error.generic', detail: '' };
  }
}
