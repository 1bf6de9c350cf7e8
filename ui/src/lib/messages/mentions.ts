//! The composer shows mentions as `@Name`; the wire format is `<@id>`. These convert between the
//! two using the mentions the user picked (so a plain "@Bob" typed by hand stays text).

import type { UserId } from '../protocol/generated';

export interface Mention {
  name: string;
  id: UserId;
}

const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Replaces each picked `@Name` with `<@id>` (longest names first, so "@Ann" does not eat "@Anna"). */
export function toWire(text: string, mentions: Mention[]): string {
  let out = text;
  for (const m of [...mentions].sort((a, b) => b.name.length - a.name.length)) {
    out = out.replace(new RegExp(`@${escapeRe(m.name)}(?![\\p{L}\\p{N}_])`, 'gu'), `<@${m.id}>`);
  }
  return out;
}

/** Shows `<@id>` as `@Name` for editing, returning the mentions so they convert back on save. */
export function toDisplay(content: string, nameOf: (id: UserId) => string): { text: string; mentions: Mention[] } {
  const mentions: Mention[] = [];
  const text = content.replace(/<@([A-Za-z0-9]{1,32})>/g, (_, id: string) => {
    const name = nameOf(id);
    if (!mentions.some((m) => m.id === id)) mentions.push({ name, id });
    return `@${name}`;
  });
  return { text, mentions };
}

/** The `@query` being typed just before the caret, if any. */
export function mentionQuery(text: string, caret: number): { start: number; query: string } | null {
  const before = text.slice(0, caret);
  const match = /(^|\s)@([^\s@<>]{0,32})$/u.exec(before);
  if (!match) return null;
  return { start: caret - match[2].length - 1, query: match[2] };
}
