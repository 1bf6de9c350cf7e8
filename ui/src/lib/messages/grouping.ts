//! Turns a channel's messages into rows: day separators, and messages grouped under one header
//! when the same author writes again within a few minutes. Always over the whole timeline: the
//! pane renders a slice of these rows (`window.ts`), and a row at the slice's top edge keeps the
//! grouping its predecessor outside the slice gives it.

import type { Message, MessageId, UserId } from '../protocol/generated';
import type { PendingMessage } from './messages.svelte';

export const GROUP_WINDOW_MS = 7 * 60_000;

export type Row =
  /** Keyed by the row below it (`day-` + its key): loading older messages of the same day moves
   *  the separator up to them, under a new key, instead of keeping a key whose place changed. */
  | { kind: 'day'; key: string; at: number }
  | { kind: 'message'; key: string; message: Message; grouped: boolean }
  | { kind: 'pending'; key: string; pending: PendingMessage; grouped: boolean };

const dayOf = (ms: number) => new Date(ms).setHours(0, 0, 0, 0);

export function buildRows(messages: Message[], pending: PendingMessage[], meId: UserId | null): Row[] {
  const rows: Row[] = [];
  let prev: { author: UserId; at: number; day: number } | null = null;
  const push = (key: string, author: UserId, at: number, replyTo: MessageId | null): boolean => {
    const day = dayOf(at);
    if (!prev || prev.day !== day) rows.push({ kind: 'day', key: `day-${key}`, at });
    const grouped = !!prev && prev.author === author && at - prev.at < GROUP_WINDOW_MS && prev.day === day && !replyTo;
    prev = { author, at, day };
    return grouped;
  };
  for (const m of messages) {
    const grouped = push(m.id, m.author_id, m.created_at, m.reply_to);
    rows.push({ kind: 'message', key: m.id, message: m, grouped });
  }
  for (const p of pending) {
    const key = `pending-${p.nonce}`;
    const grouped = push(key, meId ?? '', p.created_at, p.reply_to);
    rows.push({ kind: 'pending', key, pending: p, grouped });
  }
  return rows;
}
