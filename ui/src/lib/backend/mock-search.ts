//! The mock backend's search and history windows: the server's rules over in-memory messages,
//! close enough for the UI to be exercised (filters, ranges, paging, errors), not its ranking.
//! Words match case-insensitively as substrings (so Chinese works as on the server); results
//! are newest first.

import type { Channel, Message, MessageId, SearchHit, SearchResults, TextRange, User } from '../protocol/generated';
import { compareIds } from '../messages/ids';
import { type AroundPage, BackendError } from './backend';

export const MOCK_SEARCH_PAGE = 25;

interface Parsed {
  words: string[];
  from: string[];
  within: string[];
  hasFile: boolean;
  before: number | null;
  after: number | null;
}

function parseDate(value: string, field: string): number {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(value);
  const at = m ? Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3])) : NaN;
  if (Number.isNaN(at)) throw new BackendError('invalid_field', `${field}: a date such as 2024-05-31`);
  return at;
}

function parse(query: string): Parsed {
  const p: Parsed = { words: [], from: [], within: [], hasFile: false, before: null, after: null };
  for (const token of query.split(/\s+/).filter(Boolean)) {
    const [, key, value] = /^(from|in|has|before|after):(.*)$/i.exec(token) ?? [];
    if (key === undefined) p.words.push(token.toLowerCase());
    else if (!value) throw new BackendError('invalid_field', `${key}: needs a value`);
    else if (key.toLowerCase() === 'from') p.from.push(value.replace(/^@/, '').toLowerCase());
    else if (key.toLowerCase() === 'in') p.within.push(value.replace(/^#/, '').toLowerCase());
    else if (key.toLowerCase() === 'has') {
      if (value.toLowerCase() !== 'file') throw new BackendError('invalid_field', 'has: only has:file');
      p.hasFile = true;
    } else if (key.toLowerCase() === 'before') p.before = parseDate(value, 'before');
    else p.after = parseDate(value, 'after') + 86_400_000;
  }
  return p;
}

/** Where each word occurs in `content` (UTF-16 offsets, as JavaScript indexes), in order,
 *  merged where they overlap. */
export function wordRanges(content: string, words: string[]): TextRange[] {
  const lower = content.toLowerCase();
  const found: TextRange[] = [];
  for (const w of words) {
    for (let at = lower.indexOf(w); at >= 0 && w; at = lower.indexOf(w, at + w.length)) {
      found.push({ start: at, end: at + w.length });
    }
  }
  found.sort((a, b) => a.start - b.start);
  const merged: TextRange[] = [];
  for (const r of found) {
    const last = merged.at(-1);
    if (last && r.start <= last.end) last.end = Math.max(last.end, r.end);
    else merged.push({ ...r });
  }
  return merged;
}

export function mockSearch(
  query: string,
  offset: number | null,
  messages: Message[],
  users: User[],
  channels: Channel[],
): SearchResults {
  if (!query.trim()) throw new BackendError('invalid_field', 'query: type a word or a filter');
  const p = parse(query);
  const authors = p.from.flatMap((name) =>
    users.filter((u) => u.username.toLowerCase() === name || u.display_name.toLowerCase() === name).map((u) => u.id),
  );
  if (p.from.length && authors.length === 0) throw new BackendError('invalid_field', `no member is called ${p.from.join(' or ')}`);
  const inChannels = channels.filter((c) => c.kind === 'text' && p.within.includes(c.name.toLowerCase())).map((c) => c.id);
  if (p.within.length && inChannels.length === 0) throw new BackendError('invalid_field', `no channel is called ${p.within.join(' or ')}`);
  if (p.hasFile) return { hits: [], total: 0, next_offset: null };
  const matching = messages
    .filter((m) => {
      const text = m.content.toLowerCase();
      return (
        p.words.every((w) => text.includes(w)) &&
        (!authors.length || authors.includes(m.author_id)) &&
        (!inChannels.length || inChannels.includes(m.channel_id)) &&
        (p.before === null || m.created_at < p.before) &&
        (p.after === null || m.created_at >= p.after)
      );
    })
    .sort((a, b) => compareIds(b.id, a.id));
  const start = offset ?? 0;
  const hits: SearchHit[] = matching
    .slice(start, start + MOCK_SEARCH_PAGE)
    .map((m) => ({ message: structuredClone(m), highlights: wordRanges(m.content, p.words) }));
  const next = start + MOCK_SEARCH_PAGE;
  return { hits, total: matching.length, next_offset: next < matching.length ? next : null };
}

/** The message with up to `limit / 2` older and `(limit - 1) / 2` newer, as the server answers. */
export function mockAround(all: Message[], id: MessageId, limit: number): AroundPage {
  const wantOlder = Math.floor(limit / 2);
  const wantNewer = Math.floor((limit - 1) / 2);
  const older = all.filter((m) => compareIds(m.id, id) < 0);
  const newer = all.filter((m) => compareIds(m.id, id) > 0);
  const at = all.filter((m) => m.id === id);
  const window = [...older.slice(Math.max(0, older.length - wantOlder)), ...at, ...newer.slice(0, wantNewer)];
  return { messages: structuredClone(window), has_older: older.length > wantOlder, has_newer: newer.length > wantNewer };
}
