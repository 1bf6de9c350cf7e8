//! The server's permission rules, mirrored so the UI can hide what a member may not do (the
//! server enforces them; this never replaces its check).

import type { Permission, Role, ServerSettings } from '../protocol/generated';

const RANK: Record<Role, number> = { member: 0, admin: 1, owner: 2 };

/** Whether `actor` may change the role of, kick or ban a member of `target`'s role. */
export function outranks(actor: Role, target: Role): boolean {
  return RANK[actor] > RANK[target] || (actor === 'owner' && target === 'owner');
}

/** Owners and admins hold every permission; members those the group grants them. */
export function allows(settings: ServerSettings | null, role: Role, permission: Permission): boolean {
  return RANK[role] >= RANK.admin || (settings?.member_permissions.includes(permission) ?? false);
}

/** The roles a member of `actor`'s role may hand out (up to their own). */
export function grantable(actor: Role): Role[] {
  return (['member', 'admin', 'owner'] as const).filter((r) => RANK[r] <= RANK[actor]);
}
