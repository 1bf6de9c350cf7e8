//! The group administration side of the mock backend: invites, channel management, roles,
//! kicks and bans, blocks, ownership, server settings and icon, and an audit log, with the
//! server's permission rules (`missing_permission` without the permission, `forbidden` on a
//! member of equal or higher rank). Changes are announced as the server's gateway events.

import type {
  AuditAction,
  AuditEntry,
  AuditEntryId,
  Ban,
  Channel,
  ChannelId,
  CreateChannelRequest,
  Event,
  Permission,
  Role,
  ServerSettings,
  UpdateChannelRequest,
  UpdateServerSettingsRequest,
  User,
  UserId,
} from '../protocol/generated';
import { allows, grantable, outranks } from '../admin/permissions';
import { MAX_DESCRIPTION_CHARS, MAX_TOPIC_CHARS } from '../protocol/generated';
import { BackendError } from './backend';
import type { InviteView } from './generated';

/** What the admin side needs of the rest of the mock. */
export interface MockGroup {
  me(): User;
  users(): User[];
  channels(): Channel[];
  server(): ServerSettings;
  serverUrl(): string;
  addChannel(channel: Channel): void;
  removeChannel(id: ChannelId): void;
  removeUser(id: UserId): void;
  emit(event: Event): void;
}


export class MockAdmin {
  private invites: InviteView[] = [];
  private bans: Ban[] = [];
  private audit: AuditEntry[] = [];
  private nextId = 100;
  /** Members this user blocked. */
  readonly blocked = new Set<UserId>();
  /** Members who blocked this user (tests set it): their DMs are refused. */
  readonly blockedBy = new Set<UserId>();

  constructor(private group: MockGroup) {}

  reset() {
    this.invites = [];
    this.bans = [];
    this.audit = [];
    this.blocked.clear();
    this.blockedBy.clear();
  }

  // --- invites --------------------------------------------------------------------------

  async inviteCreate(maxUses: number | null, expiresInSecs: number | null): Promise<InviteView> {
    this.require('manage_invites');
    if (maxUses !== null && (!Number.isInteger(maxUses) || maxUses < 1)) {
      throw new BackendError('invalid_field', 'max_uses: at least 1');
    }
    if (expiresInSecs !== null && expiresInSecs < 1) throw new BackendError('invalid_field', 'expires_in_secs: at least 1');
    const code = `INV${++this.nextId}`;
    const server = this.group.serverUrl();
    const view: InviteView = {
      invite: {
        code,
        max_uses: maxUses,
        uses: 0,
        expires_at: expiresInSecs === null ? null : Date.now() + expiresInSecs * 1000,
        created_by: this.group.me().id,
        created_at: Date.now(),
      },
      link: `hearth://join?server=${encodeURIComponent(server)}&code=${code}`,
      page: `${server}/invite/${code}`,
    };
    this.invites.push(view);
    this.record('invite_create', { target_invite: code });
    return structuredClone(view);
  }

  async inviteList(): Promise<InviteView[]> {
    this.require('manage_invites');
    return structuredClone(this.invites);
  }

  async inviteRevoke(code: string) {
    this.require('manage_invites');
    if (!this.invites.some((i) => i.invite.code === code)) throw new BackendError('not_found', 'invite');
    this.invites = this.invites.filter((i) => i.invite.code !== code);
    this.record('invite_revoke', { target_invite: code });
  }

  /** Someone joins with `code` (tests): its use count goes up, a spent invite goes away. */
  useInvite(code: string) {
    const view = this.invites.find((i) => i.invite.code === code);
    if (!view) throw new BackendError('invalid_invite', 'invite');
    view.invite.uses += 1;
    if (view.invite.max_uses !== null && view.invite.uses >= view.invite.max_uses) {
      this.invites = this.invites.filter((i) => i !== view);
    }
  }

  // --- channels -------------------------------------------------------------------------

  async channelCreate(request: CreateChannelRequest): Promise<Channel> {
    this.require('manage_channels');
    if (request.kind !== 'text' && request.kind !== 'voice') throw new BackendError('invalid_field', 'kind: text or voice');
    const name = checkName(request.name);
    const me = this.group.me().id;
    const group = this.group.channels().filter((c) => c.kind === 'text' || c.kind === 'voice');
    const channel: Channel = {
      id: `c${++this.nextId}`,
      kind: request.kind,
      name,
      topic: request.topic ?? '',
      position: group.reduce((max, c) => Math.max(max, c.position + 1), 0),
      private: request.private,
      members: request.private ? [...new Set([me, ...request.members])] : [],
      last_message_id: null,
    };
    this.group.addChannel(channel);
    this.record('channel_create', { target_channel_id: channel.id, changes: [{ field: 'name', old: null, new: name }] });
    this.group.emit({ t: 'ChannelCreate', channel: structuredClone(channel) });
    return structuredClone(channel);
  }

  async channelUpdate(channelId: ChannelId, request: UpdateChannelRequest): Promise<Channel> {
    this.require('manage_channels');
    const channel = this.groupChannel(channelId);
    const changes = [];
    if (request.name != null) {
      const name = checkName(request.name);
      changes.push({ field: 'name', old: channel.name, new: name });
      channel.name = name;
    }
    if (request.topic != null) {
      if (request.topic.length > MAX_TOPIC_CHARS) throw new BackendError('invalid_field', `topic: at most ${MAX_TOPIC_CHARS} characters`);
      changes.push({ field: 'topic', old: channel.topic, new: request.topic });
      channel.topic = request.topic;
    }
    if (request.private != null && request.private !== channel.private) {
      channel.private = request.private;
      channel.members = request.private ? [this.group.me().id] : [];
      changes.push({ field: 'private', old: String(!request.private), new: String(request.private) });
    }
    this.record('channel_update', { target_channel_id: channelId, changes });
    this.group.emit({ t: 'ChannelUpdate', channel: structuredClone(channel) });
    return structuredClone(channel);
  }

  async channelSetMembers(channelId: ChannelId, members: UserId[]): Promise<Channel> {
    this.require('manage_channels');
    const channel = this.groupChannel(channelId);
    if (!channel.private) throw new BackendError('invalid_field', 'the channel is not private');
    const known = new Set(this.group.users().map((u) => u.id));
    if (members.some((m) => !known.has(m))) throw new BackendError('not_found', 'member');
    channel.members = [...new Set([this.group.me().id, ...members])];
    this.record('channel_members_update', { target_channel_id: channelId });
    this.group.emit({ t: 'ChannelUpdate', channel: structuredClone(channel) });
    return structuredClone(channel);
  }

  async channelReorder(channelIds: ChannelId[]): Promise<Channel[]> {
    this.require('manage_channels');
    const group = this.group.channels().filter((c) => c.kind === 'text' || c.kind === 'voice');
    const have = group.map((c) => c.id).sort();
    if ([...channelIds].sort().join() !== have.join()) {
      throw new BackendError('invalid_field', 'channel_ids must list every channel you can see, each once');
    }
    channelIds.forEach((id, position) => {
      const c = group.find((x) => x.id === id)!;
      if (c.position !== position) {
        c.position = position;
        this.group.emit({ t: 'ChannelUpdate', channel: structuredClone(c) });
      }
    });
    this.record('channel_reorder', { changes: [{ field: 'order', old: null, new: channelIds.join(',') }] });
    return structuredClone(group);
  }

  async channelDelete(channelId: ChannelId) {
    this.require('manage_channels');
    const channel = this.groupChannel(channelId);
    this.group.removeChannel(channelId);
    this.record('channel_delete', { target_channel_id: channelId, changes: [{ field: 'name', old: channel.name, new: null }] });
    this.group.emit({ t: 'ChannelDelete', channel_id: channelId });
  }

  // --- members --------------------------------------------------------------------------

  async memberSetRole(userId: UserId, role: Role): Promise<User> {
    this.require('manage_members');
    const target = this.target(userId);
    const me = this.group.me();
    if (!grantable(me.role).includes(role)) throw new BackendError('forbidden', 'you cannot grant a role above your own');
    if (target.role === 'owner' && role !== 'owner' && this.group.users().filter((u) => u.role === 'owner').length === 1) {
      throw new BackendError('forbidden', 'the group must keep an owner');
    }
    const old = target.role;
    target.role = role;
    this.record('member_role_update', { target_user_id: userId, changes: [{ field: 'role', old, new: role }] });
    this.group.emit({ t: 'MemberUpdate', user: structuredClone(target) });
    return structuredClone(target);
  }

  async memberKick(userId: UserId, reason: string | null) {
    this.require('manage_members');
    this.target(userId);
    this.group.removeUser(userId);
    this.record('member_kick', { target_user_id: userId, reason });
    this.group.emit({ t: 'MemberRemove', user_id: userId });
  }

  async memberBan(userId: UserId, reason: string | null) {
    this.require('manage_members');
    const target = this.target(userId);
    this.group.removeUser(userId);
    this.bans.push({ user: structuredClone(target), reason, banned_by: this.group.me().id, created_at: Date.now() });
    this.record('member_ban', { target_user_id: userId, reason });
    this.group.emit({ t: 'MemberRemove', user_id: userId });
  }

  async memberUnban(userId: UserId) {
    this.require('manage_members');
    if (!this.bans.some((b) => b.user.id === userId)) throw new BackendError('not_found', 'ban');
    this.bans = this.bans.filter((b) => b.user.id !== userId);
    this.record('member_unban', { target_user_id: userId });
  }

  async banList(): Promise<Ban[]> {
    this.require('manage_members');
    return structuredClone(this.bans);
  }

  async memberBlock(userId: UserId, blocked: boolean) {
    if (userId === this.group.me().id) throw new BackendError('invalid_field', 'you cannot block yourself');
    if (blocked) this.blocked.add(userId);
    else this.blocked.delete(userId);
    this.group.emit({ t: 'BlockUpdate', user_id: userId, blocked });
  }

  async ownershipTransfer(userId: UserId): Promise<User> {
    const me = this.group.me();
    if (me.role !== 'owner') throw new BackendError('forbidden', 'only an owner can hand over ownership');
    const heir = this.target(userId, false);
    heir.role = 'owner';
    me.role = 'admin';
    this.record('ownership_transfer', { target_user_id: userId, changes: [{ field: 'role', old: 'member', new: 'owner' }] });
    this.group.emit({ t: 'MemberUpdate', user: structuredClone(heir) });
    this.group.emit({ t: 'MemberUpdate', user: structuredClone(me) });
    return structuredClone(heir);
  }

  // --- server ---------------------------------------------------------------------------

  async serverSettingsUpdate(request: UpdateServerSettingsRequest): Promise<ServerSettings> {
    this.require('manage_server');
    const server = this.group.server();
    const changes = [];
    if (request.name != null) {
      const name = checkName(request.name);
      changes.push({ field: 'name', old: server.name, new: name });
      server.name = name;
    }
    if (request.description != null) {
      if (request.description.length > MAX_DESCRIPTION_CHARS) throw new BackendError('invalid_field', `description: at most ${MAX_DESCRIPTION_CHARS} characters`);
      server.description = request.description;
    }
    if (request.retention_days != null) {
      if (request.retention_days > 36_500) throw new BackendError('invalid_field', 'retention_days: at most 36500');
      server.retention_days = request.retention_days === 0 ? null : request.retention_days;
    }
    if (request.max_upload_bytes != null) server.max_upload_bytes = request.max_upload_bytes;
    if (request.upload_quota_bytes != null) server.upload_quota_bytes = request.upload_quota_bytes === 0 ? null : request.upload_quota_bytes;
    if (request.member_permissions != null) server.member_permissions = request.member_permissions;
    this.record('server_update', { changes });
    this.group.emit({ t: 'ServerUpdate', server: structuredClone(server) });
    return structuredClone(server);
  }

  async serverSetIcon(path: string | null): Promise<ServerSettings> {
    this.require('manage_server');
    if (path !== null && !/\.(png|jpe?g|gif|webp)$/i.test(path)) throw new BackendError('unsupported_media', 'not an image');
    const server = this.group.server();
    server.icon = path === null ? null : `icon${++this.nextId}`;
    this.record('server_update', { changes: [{ field: 'icon', old: null, new: server.icon }] });
    this.group.emit({ t: 'ServerUpdate', server: structuredClone(server) });
    return structuredClone(server);
  }

  async auditLog(before: AuditEntryId | null, limit: number): Promise<AuditEntry[]> {
    this.require('manage_server');
    if (limit < 1 || limit > 100) throw new BackendError('invalid_field', 'limit: 1 to 100');
    const newest = [...this.audit].reverse();
    const from = before ? newest.findIndex((e) => e.id === before) + 1 : 0;
    return structuredClone(newest.slice(from, from + limit));
  }

  // --- internals ------------------------------------------------------------------------

  private require(permission: Permission) {
    if (!allows(this.group.server(), this.group.me().role, permission)) {
      throw new BackendError('missing_permission', `this needs ${permission}`);
    }
  }

  /** Another member this user may act on. */
  private target(userId: UserId, checkRank = true): User {
    const me = this.group.me();
    const target = this.group.users().find((u) => u.id === userId);
    if (!target) throw new BackendError('not_found', 'member');
    if (userId === me.id) throw new BackendError('invalid_field', 'you cannot do this to yourself');
    if (checkRank && !outranks(me.role, target.role)) throw new BackendError('forbidden', 'their role is not below yours');
    return target;
  }

  private groupChannel(id: ChannelId): Channel {
    const c = this.group.channels().find((x) => x.id === id && (x.kind === 'text' || x.kind === 'voice'));
    if (!c) throw new BackendError('not_found', 'channel');
    return c;
  }

  private record(action: AuditAction, fields: Partial<AuditEntry>) {
    this.audit.push({
      id: String(++this.nextId),
      actor_id: this.group.me().id,
      action,
      target_user_id: null,
      target_channel_id: null,
      target_invite: null,
      changes: [],
      reason: null,
      created_at: Date.now(),
      ...fields,
    });
  }
}

function checkName(name: string): string {
  const trimmed = name.trim();
  if (trimmed.length === 0 || [...trimmed].length > 64) throw new BackendError('invalid_field', 'name: 1 to 64 characters');
  return trimmed;
}
