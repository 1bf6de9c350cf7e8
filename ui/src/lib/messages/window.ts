//! The message pane's window: which contiguous slice of a channel's rows is in the DOM.
//!
//! The store (`messages.svelte.ts`) keeps every loaded message, and `buildRows` turns the whole
//! timeline into rows (so day separators and author grouping are right at the slice's edges);
//! the pane renders only `rows.slice(start, end)`, at most `WINDOW_ROWS` of them. Reaching the top
//! of the slice extends it upward (from memory, then from the server) and trims the bottom;
//! reaching the bottom extends it downward and trims the top. This is Element's timeline window,
//! not a virtual list: rows are never estimated, the slice is real DOM, and the pane keeps the
//! reader's place by anchoring to a row that stays ([`chooseAnchor`]).
//!
//! The edges are kept as row keys ([`Bounds`]), not indices, because loading an older page shifts
//! every index. Everything here is pure: the pane holds a `Bounds` in its state and asks these
//! functions where the slice is and what the next one should be.

import type { Row } from './grouping';
import { compareIds } from './ids';

/**
 * At most this many rows (messages, pending sends, day separators) are in the DOM. A row is
 * 22 px (a grouped one-liner) to a few hundred (code, quotes); 200 rows are at least 4,400 px,
 * several screens even of a tall window, so the reader never reaches an edge before the next
 * step is rendered, and at ~30 nodes a message the pane stays near 6,000 nodes, which WebKitGTK
 * lays out in milliseconds. Four steps: a slice full of one direction's history can turn round.
 */
export const WINDOW_ROWS = 200;
/** Rows added at an edge per extension: one history page (`PAGE_SIZE`). */
export const WINDOW_STEP = 50;

/**
 * The slice's edges by row key. `first`: its first row (null: the newest `WINDOW_ROWS` rows).
 * `last`: its last row (null: it follows the newest row, "the live end", so arrivals are shown).
 */
export interface Bounds {
  readonly first: string | null;
  readonly last: string | null;
}

/** The live end: the newest rows, following new ones. Where a channel opens. */
export const LIVE: Bounds = { first: null, last: null };

/** Where the slice is in the current rows: `rows.slice(start, end)`. */
export interface Slice {
  start: number;
  end: number;
  /** The slice ends at the newest row, so arrivals are rendered. */
  live: boolean;
  /** The bounds named rows that no longer exist (the history was replaced): placed as [`LIVE`]. */
  lost: boolean;
}

/** Key → index per rows array (rows are rebuilt, never mutated, so the map stays true). */
const indexes = new WeakMap<Row[], Map<string, number>>();

function indexOf(rows: Row[], key: string): number | undefined {
  let map = indexes.get(rows);
  if (!map) {
    map = new Map(rows.map((r, i) => [r.key, i]));
    indexes.set(rows, map);
  }
  return map.get(key);
}

/**
 * Where the row `key` is, or would be if it no longer exists: a deleted message's place is the
 * first row after it (ids are time-sortable), a day separator's the message it stood above (its
 * key is `day-` + that row's key), an acknowledged pending send's the first pending row.
 */
function locate(rows: Row[], key: string): { index: number; exact: boolean } {
  const found = indexOf(rows, key);
  if (found !== undefined) return { index: found, exact: true };
  if (key.startsWith('day-')) return { index: locate(rows, key.slice(4)).index, exact: false };
  let index = rows.findIndex((r) =>
    key.startsWith('pending-') ? r.kind === 'pending' : r.kind === 'pending' || (r.kind === 'message' && compareIds(r.key, key) > 0),
  );
  if (index < 0) index = rows.length;
  // A day separator belongs to the row below it: the place is above the separator.
  if (index > 0 && rows[index - 1].kind === 'day') index -= 1;
  return { index, exact: false };
}

/** Where `bounds` puts the slice in `rows`: never more than `max` rows, never empty if rows are not. */
export function place(rows: Row[], bounds: Bounds, max = WINDOW_ROWS): Slice {
  const n = rows.length;
  if (bounds.first === null && bounds.last === null) {
    return { start: Math.max(0, n - max), end: n, live: true, lost: false };
  }
  let end = n;
  if (bounds.last !== null) {
    const at = locate(rows, bounds.last);
    end = at.exact ? at.index + 1 : at.index;
  }
  let start = bounds.first === null ? Math.max(0, end - max) : locate(rows, bounds.first).index;
  if (end <= start) return { ...place(rows, LIVE, max), lost: n > 0 };
  if (end - start > max) {
    // Rows arrived inside the slice: at the live end the oldest go, elsewhere the newest.
    if (end === n) start = end - max;
    else end = start + max;
  }
  return { start, end, live: end === n, lost: false };
}

/** Bounds naming exactly `rows[start..end)` (live when it reaches the newest row). */
function boundsOf(rows: Row[], start: number, end: number): Bounds {
  if (start >= end) return LIVE;
  return { first: rows[start].key, last: end === rows.length ? null : rows[end - 1].key };
}

/**
 * The same slice with both edges named, so rows added above it (an older page) stay outside
 * until [`extendUp`] takes them in.
 */
export function pin(rows: Row[], bounds: Bounds, max = WINDOW_ROWS): Bounds {
  const s = place(rows, bounds, max);
  return boundsOf(rows, s.start, s.end);
}

/** The slice grown `step` rows upward; if that makes it longer than `max`, its bottom goes. */
export function extendUp(rows: Row[], bounds: Bounds, step = WINDOW_STEP, max = WINDOW_ROWS): Bounds {
  const s = place(rows, bounds, max);
  if (s.start === 0) return pin(rows, bounds, max);
  let start = Math.max(0, s.start - step);
  // Not a message without the day separator just above it.
  if (start > 0 && rows[start - 1].kind === 'day') start -= 1;
  return boundsOf(rows, start, Math.min(s.end, start + max));
}

/** The slice grown `step` rows downward; if that makes it longer than `max`, its top goes. */
export function extendDown(rows: Row[], bounds: Bounds, step = WINDOW_STEP, max = WINDOW_ROWS): Bounds {
  const s = place(rows, bounds, max);
  if (s.live) return bounds;
  const end = Math.min(rows.length, s.end + step);
  return boundsOf(rows, Math.max(s.start, end - max), end);
}

/** A slice with the row `key` in its middle (a search hit), or null when it is not loaded. */
export function centreOn(rows: Row[], key: string, max = WINDOW_ROWS): Bounds | null {
  const i = indexOf(rows, key);
  if (i === undefined) return null;
  const end = Math.min(rows.length, Math.max(0, i - Math.floor(max / 2)) + max);
  return boundsOf(rows, Math.max(0, end - max), end);
}

/** A rendered row's box, relative to the top of the scroll viewport (negative: above it). */
export interface RowBox {
  key: string;
  top: number;
  bottom: number;
}

/**
 * The row to hold still while the slice changes, among the `count` rendered rows (top to bottom,
 * `box(i)` measures one): the first row that reaches below the viewport's top edge and is still
 * in the next slice (`stays`), which is the top visible row unless the change removes it;
 * failing that, the lowest staying row above the viewport. Null when no rendered row stays.
 * Rows are found by bisection, so a change measures a handful of rows, not the whole slice.
 */
export function chooseAnchor(count: number, box: (i: number) => RowBox, stays: (key: string) => boolean): RowBox | null {
  // The first row whose bottom is below the viewport's top.
  let lo = 0;
  let hi = count;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (box(mid).bottom > 0) hi = mid;
    else lo = mid + 1;
  }
  for (let i = lo; i < count; i++) {
    const b = box(i);
    if (stays(b.key)) return b;
  }
  for (let i = lo - 1; i >= 0; i--) {
    const b = box(i);
    if (stays(b.key)) return b;
  }
  return null;
}
