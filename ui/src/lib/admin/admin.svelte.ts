//! The group as its administrators see it: server settings, what this member may do, who they
//! blocked, and the lists only admins load (invites, bans, audit log). Every change goes to
//! the server through the backend; what changed comes back as gateway events to everyone.

import type { Backend } from '../backend/backend';
import type { InviteView } from '../backend/generated';
import type { MembersState } from '../members/members.svelte';
import type {
  AuditEntry,
  Ban,
  Event,
  Permission,
  Ready,
  Role,
  ServerSettings,
  User,
  UserId,
} from '../protocol/generated';
import { allows, grantable, outranks } from './permissions';

/** Audit entries fetched per page. */
export const AUDIT_PAGE = 50;

export class AdminState {
  server = $state<ServerSettings | null>(null);
  /** Members this user blocked: their messages are hidden, their DMs refused. */
  blocked = $state<Record<UserId, true>>({});
  invites = $state<InviteView[]>([]);
  bans = $state<Ban[]>([]);
  audit = $state<AuditEntry[]>([]);
  /** False once the audit log's oldest entry has been loaded. */
  auditMore = $state(true);

  private backend: Backend;
  private members: MembersState;

  constructor(backend: Backend, members: MembersState) {
    this.backend = backend;
    this.members = members;
  }

  /** This member's role (a member until the snapshot says otherwise). */
  role: Role = $derived.by(() => this.members.me?.role ?? 'member');
  /** Whether any administration screen has something for this member. */
  anyAdmin = $derived(
    (['manage_channels', 'manage_invites', 'manage_members', 'manage_server'] as const).some((p) =>
      allows(this.server, this.role, p),
    ),
  );

  reset(ready: Ready) {
    this.server = ready.server;
    this.blocked = Object.fromEntries(ready.blocked.map((id) => [id, true as const]));
  }

  apply(event: Event) {
    switch (event.t) {
      case 'ServerUpdate':
        this.server = event.server;
        break;
      case 'BlockUpdate':
        if (event.blocked) this.blocked[event.user_id] = true;
        else delete this.blocked[event.user_id];
        break;
    }
  }

  can(permission: Permission): boolean {
    return allows(this.server, this.role, permission);
  }

  /** Whether this member may change `user`'s role, kick or ban them. */
  canModerate(user: User): boolean {
    return user.id !== this.members.meId && this.can('manage_members') && outranks(this.role, user.role);
  }

  /** Roles this member may give. */
  roles(): Role[] {
    return grantable(this.role);
  }

  isBlocked(id: UserId): boolean {
    return this.blocked[id] === true;
  }

  async loadInvites() {
    this.invites = await this.backend.inviteList();
  }

  async createInvite(maxUses: number | null, expiresInSecs: number | null): Promise<InviteView> {
    const view = await this.backend.inviteCreate(maxUses, expiresInSecs);
    this.invites = [...this.invites.filter((i) => i.invite.code !== view.invite.code), view];
    return view;
  }

  async revokeInvite(code: string) {
    await this.backend.inviteRevoke(code);
    this.invites = this.invites.filter((i) => i.invite.code !== code);
  }

  async loadBans() {
    this.bans = await this.backend.banList();
  }

  async unban(id: UserId) {
    await this.backend.memberUnban(id);
    this.bans = this.bans.filter((b) => b.user.id !== id);
  }

  async ban(id: UserId, reason: string | null) {
    await this.backend.memberBan(id, reason);
    if (this.can('manage_members')) await this.loadBans();
  }

  async setBlocked(id: UserId, blocked: boolean) {
    await this.backend.memberBlock(id, blocked);
    // BlockUpdate confirms; showing it at once is what the person who clicked expects.
    if (blocked) this.blocked[id] = true;
    else delete this.blocked[id];
  }

  /** The newest page, or (`more`) the page after what is loaded. */
  async loadAudit(more = false) {
    const before = more ? (this.audit.at(-1)?.id ?? null) : null;
    const page = await this.backend.auditLog(before, AUDIT_PAGE);
    this.audit = more ? [...this.audit, ...page] : page;
    this.auditMore = page.length === AUDIT_PAGE;
  }
}
