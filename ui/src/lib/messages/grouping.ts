//! Turns a channel's messages into rows: day separators, and messages grouped under one header
//! when the same author writes again within a few minutes.

import type { Message, MessageId, UserId } from '../protocol/generated';
import type { PendingMessage } from './messages.svelte';

export const GROUP_WINDOW_MS = 7 * 60_000;

export type Row =
  | { kind: 'day'; key: string; at: number }
  | { kind: 'message'; key: string; message: Message; grouped: boolean }
  | { kind: 'pending'; key: string; pending: PendingMessage; grouped: boolean };

const dayOf = (ms: number) => new Date(ms).setHours(0, 0, 0, 0);

export function buildRows(messages: Message[], pending: PendingMessage[], meId: UserId | null): Row[] {
  const rows: Row[] = [];
  let prev: { author: UserId; at: number } | null = null;
  const push = (author: UserId, at: number, replyTo: MessageId | null): boolean => {
    if (!prev || dayOf(prev.at) !== dayOf(at)) rows.push({ kind: 'day', key: `day-${dayOf(at)}`, at });
    const grouped = !!prev && prev.author === author && at - prev.at < GROUP_WINDOW_MS && dayOf(prev.at) === dayOf(at) && !replyTo;
    prev = { author, at };
    return grouped;
  };
  for (const m of messages) {
    const grouped = push(m.author_id, m.created_at, m.reply_to);
    rows.push({ kind: 'message', key: m.id, message: m, grouped });
  }
  for (const p of pending) {
    const grouped = push(meId ?? '', p.created_at, p.reply_to);
    rows.push({ kind: 'pending', key: `pending-${p.nonce}`, pending: p, grouped });
  }
  return rows;
}
