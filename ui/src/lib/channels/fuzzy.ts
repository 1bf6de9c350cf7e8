//! Fuzzy matching for the quick switcher: how well a typed query matches a name, so that "gen"
//! finds "general", "ann" finds "announcements" and "gnrl" still finds "general".

/**
 * A score for `query` against `text` (case-insensitive), higher is better, or null when the
 * query's letters do not all occur in order. A prefix beats a word start, which beats a match
 * inside a word, which beats letters scattered in order (fewer gaps first); shorter names first.
 */
export function fuzzyScore(query: string, text: string): number | null {
  const q = query.trim().toLowerCase();
  const t = text.toLowerCase();
  if (!q) return 0;
  if (t.startsWith(q)) return 4000 - t.length;
  const at = t.indexOf(q);
  if (at > 0) return (/[\p{L}\p{N}]/u.test(t[at - 1]) ? 2000 : 3000) - at - t.length;
  // Letters in order: count the characters skipped between them.
  let gaps = 0;
  let i = 0;
  for (const ch of q) {
    const found = t.indexOf(ch, i);
    if (found < 0) return null;
    if (found > i && i > 0) gaps += found - i;
    i = found + ch.length;
  }
  return Math.max(1, 1000 - gaps * 10 - t.length);
}
