import { describe, expect, it } from 'vitest';
import { MockBackend } from '../backend/mock';
import { MembersState } from '../members/members.svelte';
import type { ServerSettings } from '../protocol/generated';
import { AdminState } from './admin.svelte';
import { allows, grantable, outranks } from './permissions';

const settings = (member_permissions: ServerSettings['member_permissions'] = []): ServerSettings => ({
  name: 'g',
  description: '',
  icon: null,
  retention_days: null,
  member_permissions,
  max_upload_bytes: 1,
  upload_quota_bytes: null,
});

describe('permissions mirror the server', () => {
  it('ranks: strictly above, or owner on owner', () => {
    expect(outranks('admin', 'member')).toBe(true);
    expect(outranks('admin', 'admin')).toBe(false);
    expect(outranks('member', 'member')).toBe(false);
    expect(outranks('owner', 'owner')).toBe(true);
    expect(outranks('admin', 'owner')).toBe(false);
  });
  it('admins hold every permission, members only those granted', () => {
    expect(allows(settings(), 'admin', 'manage_server')).toBe(true);
    expect(allows(settings(), 'member', 'manage_channels')).toBe(false);
    expect(allows(settings(['manage_channels']), 'member', 'manage_channels')).toBe(true);
    expect(allows(null, 'member', 'manage_invites')).toBe(false);
  });
  it('roles are granted up to one’s own', () => {
    expect(grantable('admin')).toEqual(['member', 'admin']);
    expect(grantable('owner')).toEqual(['member', 'admin', 'owner']);
  });
});

describe('admin state', () => {
  it('follows the snapshot and the events: settings, blocks, what this member may do', async () => {
    const backend = new MockBackend({ signedIn: true, role: 'admin' });
    const members = new MembersState(backend);
    const admin = new AdminState(backend, members);
    const ready = (await backend.snapshot())!;
    members.reset(ready);
    admin.reset(ready);
    expect(admin.can('manage_members')).toBe(true);
    // Bob is an admin too: an admin may not act on an equal; Carol is a member.
    expect(admin.canModerate(members.users['u2'])).toBe(false);
    expect(admin.canModerate(members.users['u3'])).toBe(true);
    expect(admin.canModerate(members.users['1'])).toBe(false);
    admin.apply({ t: 'ServerUpdate', server: { ...ready.server, name: 'Renamed' } });
    expect(admin.server?.name).toBe('Renamed');
    admin.apply({ t: 'BlockUpdate', user_id: 'u3', blocked: true });
    expect(admin.isBlocked('u3')).toBe(true);
    admin.apply({ t: 'BlockUpdate', user_id: 'u3', blocked: false });
    expect(admin.isBlocked('u3')).toBe(false);
  });

  it('a member is refused by the (mock) server even when the UI is bypassed', async () => {
    const backend = new MockBackend({ signedIn: true, role: 'member' });
    await expect(backend.inviteCreate(1, null)).rejects.toMatchObject({ code: 'missing_permission' });
    await expect(backend.channelDelete('c1')).rejects.toMatchObject({ code: 'missing_permission' });
    await expect(backend.ownershipTransfer('u2')).rejects.toMatchObject({ code: 'forbidden' });
  });
});
