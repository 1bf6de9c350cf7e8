//! How a channel is named in lists and headers: `#name` for group channels, the other members'
//! names for DMs (which have no name of their own).

import type { Channel, UserId } from '../protocol/generated';

export function channelLabel(channel: Channel, nameOf: (id: UserId) => string, meId: UserId | null): string {
  if (channel.kind === 'dm' || channel.kind === 'group_dm') {
    const others = channel.members.filter((m) => m !== meId);
    return (others.length ? others : channel.members).map(nameOf).join(', ');
  }
  return channel.name;
}
