//! The group's members, their presence and their avatars.

import type { Backend } from '../backend/backend';
import type { Event, Ready, Status, User, UserId } from '../protocol/generated';

export class MembersState {
  users = $state<Record<UserId, User>>({});
  presence = $state<Record<UserId, Status>>({});
  meId = $state<UserId | null>(null);
  /** Members who left (kicked, banned) while we watched: their names still label old messages. */
  private former: Record<UserId, User> = {};
  /** Avatar hash → displayable URL (`null` while loading or when missing). */
  private avatars = $state<Record<string, string | null>>({});
  private requested = new Set<string>();

  private backend: Backend;

  constructor(backend: Backend) {
    this.backend = backend;
  }

  me = $derived(this.meId ? (this.users[this.meId] ?? null) : null);

  /** Members sorted by name, split by whether others see them online. */
  online = $derived(this.sorted().filter((u) => this.isOnline(u.id)));
  offline = $derived(this.sorted().filter((u) => !this.isOnline(u.id)));

  reset(ready: Ready) {
    this.meId = ready.user.id;
    this.users = Object.fromEntries([...ready.members, ready.user].map((u) => [u.id, u]));
    this.presence = Object.fromEntries(ready.presences.map((p) => [p.user_id, p.status]));
  }

  apply(event: Event) {
    switch (event.t) {
      case 'MemberAdd':
      case 'MemberUpdate':
        this.users[event.user.id] = event.user;
        break;
      case 'MemberRemove':
        if (this.users[event.user_id]) this.former[event.user_id] = $state.snapshot(this.users[event.user_id]);
        delete this.users[event.user_id];
        delete this.presence[event.user_id];
        break;
      case 'PresenceUpdate':
        this.presence[event.presence.user_id] = event.presence.status;
        break;
    }
  }

  name(id: UserId): string {
    const u = this.users[id] ?? this.former[id];
    return u ? u.display_name || u.username : id;
  }

  status(id: UserId): Status {
    return this.presence[id] ?? 'offline';
  }

  isOnline(id: UserId): boolean {
    const s = this.status(id);
    return s !== 'offline' && s !== 'invisible';
  }

  /** The avatar URL for a user, loading it on first use. */
  avatar(id: UserId): string | null {
    const hash = this.users[id]?.avatar;
    if (!hash) return null;
    if (!this.requested.has(hash)) {
      this.requested.add(hash);
      // Called from templates, where state must not change: the answer lands later.
      this.backend.avatarUrl(hash).then(
        (url) => (this.avatars[hash] = url),
        () => undefined,
      );
    }
    return this.avatars[hash] ?? null;
  }

  private sorted(): User[] {
    return Object.values(this.users).sort((a, b) => this.name(a.id).localeCompare(this.name(b.id)));
  }
}
