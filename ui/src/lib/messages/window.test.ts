import { describe, expect, it } from 'vitest';
import type { Message } from '../protocol/generated';
import { buildRows, type Row } from './grouping';
import type { PendingMessage } from './messages.svelte';
import {
  type Bounds,
  centreOn,
  chooseAnchor,
  extendDown,
  extendUp,
  LIVE,
  pin,
  place,
  type RowBox,
  WINDOW_ROWS,
  WINDOW_STEP,
} from './window';

const MORNING = new Date(2024, 0, 10, 8, 0).getTime();

/** Message `i` (ids sort as numbers), one a minute from 08:00, authors in streaks of two. */
function message(i: number, at = MORNING + i * 60_000): Message {
  return {
    id: String(1_000_000 + i),
    channel_id: 'c1',
    author_id: Math.floor(i / 2) % 2 ? 'u2' : 'u3',
    content: `message ${i}`,
    created_at: at,
    edited_at: null,
    reply_to: null,
    mentions: [],
    reactions: [],
    attachments: [],
  };
}

/** Messages `from..to` (inclusive), all on one day: one day separator, then the messages. */
const history = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, k) => message(from + k));

const rowsOf = (messages: Message[], pending: PendingMessage[] = []) => buildRows(messages, pending, 'u1');

const shownKeys = (rows: Row[], bounds: Bounds) => {
  const s = place(rows, bounds);
  return rows.slice(s.start, s.end).map((r) => r.key);
};

const id = (i: number) => String(1_000_000 + i);

describe('message window', () => {
  it('opens at the live end: the newest rows, at most the bound', () => {
    const rows = rowsOf(history(0, 499));
    const s = place(rows, LIVE);
    expect(s).toEqual({ start: rows.length - WINDOW_ROWS, end: rows.length, live: true, lost: false });
    expect(rows[s.end - 1].key).toBe(id(499));
  });

  it('shows a short channel whole, from its first row', () => {
    const rows = rowsOf(history(0, 9));
    expect(place(rows, LIVE)).toMatchObject({ start: 0, end: rows.length, live: true });
    expect(rows[0]).toMatchObject({ kind: 'day' });
  });

  it('follows arrivals at the live end and drops the oldest rows beyond the bound', () => {
    const bounds = pin(rowsOf(history(0, 250)), LIVE);
    const rows = rowsOf(history(0, 260));
    const keys = shownKeys(rows, bounds);
    expect(keys).toHaveLength(WINDOW_ROWS);
    expect(keys.at(-1)).toBe(id(260));
    expect(place(rows, bounds).live).toBe(true);
  });

  it('extends upward from memory and trims the bottom, leaving the live end', () => {
    const rows = rowsOf(history(0, 499));
    const up = extendUp(rows, LIVE);
    const s = place(rows, up);
    expect(s.start).toBe(rows.length - WINDOW_ROWS - WINDOW_STEP);
    expect(s.end - s.start).toBe(WINDOW_ROWS);
    expect(s.live).toBe(false);
    expect(rows[s.end - 1].key).toBe(id(499 - WINDOW_STEP));
  });

  it('does not render arrivals into a slice away from the live end', () => {
    const before = rowsOf(history(0, 499));
    const up = extendUp(before, LIVE);
    const keys = shownKeys(before, up);
    const after = rowsOf(history(0, 520));
    expect(shownKeys(after, up)).toEqual(keys);
    expect(place(after, up).live).toBe(false);
  });

  it('extends downward back to the live end, trimming the top', () => {
    const rows = rowsOf(history(0, 499));
    let bounds = extendUp(rows, extendUp(rows, LIVE));
    expect(place(rows, bounds).live).toBe(false);
    bounds = extendDown(rows, bounds);
    const s = place(rows, bounds);
    expect(s.end - s.start).toBe(WINDOW_ROWS);
    expect(s.live).toBe(false);
    bounds = extendDown(rows, bounds);
    expect(place(rows, bounds)).toMatchObject({ end: rows.length, live: true });
    expect(bounds.last).toBeNull();
    // At the live end there is nothing below to add.
    expect(extendDown(rows, bounds)).toBe(bounds);
  });

  it('keeps its rows when an older page loads above, then takes the page in', () => {
    const newest = rowsOf(history(400, 449));
    const pinned = pin(newest, LIVE);
    const keys = shownKeys(newest, pinned);
    const loaded = rowsOf(history(350, 449));
    // The day separator moved up to the older page; the slice starts at the same message.
    expect(shownKeys(loaded, pinned)).toEqual(keys.filter((k) => !k.startsWith('day-')));
    const up = extendUp(loaded, pinned);
    const s = place(loaded, up);
    expect(s.start).toBe(0);
    expect(loaded[0]).toMatchObject({ kind: 'day', key: `day-${id(350)}` });
    expect(s.live).toBe(true);
  });

  it('reaches the channel start by extending up, never over the bound', () => {
    const rows = rowsOf(history(0, 999));
    let bounds = LIVE;
    for (let steps = 0; place(rows, bounds).start > 0; steps++) {
      expect(steps).toBeLessThan(100);
      bounds = extendUp(rows, bounds);
      const s = place(rows, bounds);
      expect(s.end - s.start).toBeLessThanOrEqual(WINDOW_ROWS);
    }
    expect(rows.slice(0, 2).map((r) => r.key)).toEqual([`day-${id(0)}`, id(0)]);
    expect(place(rows, bounds).start).toBe(0);
    // At the start there is nothing above: the edges stay.
    expect(shownKeys(rows, extendUp(rows, bounds))).toEqual(shownKeys(rows, bounds));
  });

  it('groups the row at its top edge by the message before it, outside the slice', () => {
    const rows = rowsOf(history(0, 499));
    const bounds = extendUp(rows, LIVE, 51);
    const top = rows[place(rows, bounds).start];
    // Messages come in streaks of two from one author; the slice starts at a streak's second.
    expect(top).toMatchObject({ kind: 'message', grouped: true });
    expect(Number(top.key) % 2).toBe(1);
  });

  it('puts day separators above the first message of each day, also at the edges', () => {
    const day = 86_400_000;
    const messages = [...history(0, 99).map((m, i) => message(i, MORNING - day + i * 60_000)), ...history(100, 399)];
    const rows = rowsOf(messages);
    expect(rows.filter((r) => r.kind === 'day').map((r) => r.key)).toEqual([`day-${id(0)}`, `day-${id(100)}`]);
    const bounds = centreOn(rows, id(100))!;
    const keys = shownKeys(rows, bounds);
    expect(keys[keys.indexOf(id(100)) - 1]).toBe(`day-${id(100)}`);
  });

  it('centres on a search hit, and is live when the hit is near the end', () => {
    const rows = rowsOf(history(0, 999));
    const far = centreOn(rows, id(300))!;
    const s = place(rows, far);
    const at = rows.findIndex((r) => r.key === id(300));
    expect(s.end - s.start).toBe(WINDOW_ROWS);
    expect(at - s.start).toBe(WINDOW_ROWS / 2);
    expect(s.live).toBe(false);
    expect(place(rows, centreOn(rows, id(990))!)).toMatchObject({ end: rows.length, live: true });
    expect(place(rows, centreOn(rows, id(3))!)).toMatchObject({ start: 0 });
    expect(centreOn(rows, id(5000))).toBeNull();
  });

  it('holds its place when the message at an edge is deleted', () => {
    const rows = rowsOf(history(0, 999));
    const bounds = centreOn(rows, id(500))!;
    const keys = shownKeys(rows, bounds);
    const gone = new Set([keys[0], keys.at(-1)]);
    const after = rowsOf(history(0, 999).filter((m) => !gone.has(m.id)));
    expect(shownKeys(after, bounds)).toEqual(keys.slice(1, -1));
  });

  it('goes back to the live end when the history is replaced under it', () => {
    const rows = rowsOf(history(0, 999));
    const bounds = centreOn(rows, id(300))!;
    const replaced = rowsOf(history(950, 999));
    expect(place(replaced, bounds)).toEqual({ start: 0, end: replaced.length, live: true, lost: true });
  });

  it('keeps a pending send at the live end only', () => {
    const pending: PendingMessage = {
      nonce: 'n1',
      channel_id: 'c1',
      content: 'hi',
      reply_to: null,
      created_at: MORNING + 600 * 60_000,
      state: 'sending',
      error: null,
      attachments: [],
    };
    const rows = rowsOf(history(0, 499), [pending]);
    expect(shownKeys(rows, LIVE).at(-1)).toBe('pending-n1');
    expect(shownKeys(rows, extendUp(rows, LIVE))).not.toContain('pending-n1');
  });
});

describe('scroll anchor', () => {
  const box = (key: string, top: number, height = 40): RowBox => ({ key, top, bottom: top + height });
  const boxes = [box('a', -120), box('b', -80), box('c', -40), box('d', 0), box('e', 40), box('f', 80)];
  const anchor = (list: RowBox[], stays: (key: string) => boolean) => chooseAnchor(list.length, (i) => list[i], stays)?.key ?? null;

  it('holds the top row in view', () => {
    // 'c' ends exactly at the viewport's top: 'd' is the first row in view.
    expect(anchor(boxes, () => true)).toBe('d');
    expect(anchor([box('x', -10), ...boxes.slice(4)], () => true)).toBe('x');
    expect(anchor([box('x', 500)], () => true)).toBe('x');
  });

  it('skips rows the change removes', () => {
    expect(anchor(boxes, (k) => k !== 'd')).toBe('e');
  });

  it('falls back to the lowest staying row above the view, or none', () => {
    expect(anchor(boxes, (k) => k === 'a' || k === 'b')).toBe('b');
    expect(anchor(boxes, () => false)).toBeNull();
    expect(anchor([], () => true)).toBeNull();
  });

  it('measures a few rows, not all of them', () => {
    const many = Array.from({ length: 200 }, (_, i) => box(`r${i}`, i * 40 - 4000));
    let measured = 0;
    const found = chooseAnchor(many.length, (i) => (measured++, many[i]), () => true);
    expect(found?.key).toBe('r100');
    expect(measured).toBeLessThan(12);
  });
});
