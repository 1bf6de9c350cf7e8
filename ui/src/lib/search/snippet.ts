//! A search hit's snippet: the message's text cut around its first match and split into plain and
//! marked pieces from the server's ranges (UTF-16 offsets, which is how JavaScript indexes
//! strings). Pieces are rendered as text nodes, never as HTML, so nothing in a message can become
//! markup; mentions (`<@id>`) read as names.

import type { TextRange } from '../protocol/generated';

export interface Piece {
  text: string;
  mark: boolean;
}

/** Characters of context kept before the first match. */
const LEAD = 40;
/** Longest snippet, in UTF-16 units (the rest is cut with an ellipsis). */
const MAX = 240;

const isLowSurrogate = (code: number) => code >= 0xdc00 && code <= 0xdfff;

/** Moves an offset off the middle of a surrogate pair. */
function snap(text: string, at: number): number {
  return at > 0 && at < text.length && isLowSurrogate(text.charCodeAt(at)) ? at - 1 : at;
}

/** The ranges that are valid for `text`, in order, without overlaps. */
function clean(text: string, ranges: TextRange[]): TextRange[] {
  const out: TextRange[] = [];
  for (const r of [...ranges].sort((a, b) => a.start - b.start)) {
    const start = Math.max(0, Math.min(r.start, text.length));
    const end = Math.max(start, Math.min(r.end, text.length));
    const last = out.at(-1);
    if (end === start) continue;
    if (last && start < last.end) last.end = Math.max(last.end, end);
    else out.push({ start, end });
  }
  return out;
}

/** Replaces mentions with `@name` in a piece of plain text. */
function names(text: string, nameOf: (id: string) => string): string {
  return text.replace(/<@(\w+)>/g, (_, id: string) => `@${nameOf(id)}`);
}

/**
 * The snippet of `content` for a hit: at most [`MAX`] units starting a little before the first
 * marked range, split into pieces. Line breaks become spaces (a snippet is one line).
 */
export function snippet(content: string, ranges: TextRange[], nameOf: (id: string) => string): Piece[] {
  const marks = clean(content, ranges);
  const first = marks[0]?.start ?? 0;
  const from = snap(content, first > LEAD ? first - LEAD : 0);
  const to = snap(content, Math.min(content.length, from + MAX));
  const pieces: Piece[] = [];
  const push = (text: string, mark: boolean) => {
    const flat = text.replace(/\s+/g, ' ');
    if (flat) pieces.push({ text: mark ? flat : names(flat, nameOf), mark });
  };
  let at = from;
  for (const r of marks) {
    if (r.end <= from || r.start >= to) continue;
    const start = Math.max(r.start, from);
    const end = Math.min(r.end, to);
    push(content.slice(at, start), false);
    push(content.slice(start, end), true);
    at = end;
  }
  push(content.slice(at, to), false);
  if (from > 0) pieces.unshift({ text: '…', mark: false });
  if (to < content.length) pieces.push({ text: '…', mark: false });
  return pieces;
}
