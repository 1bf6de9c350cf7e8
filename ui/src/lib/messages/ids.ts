//! Message ids are decimal u64 snowflakes (time-sortable) sent as strings.

/** Orders snowflake strings numerically: a longer decimal is a larger number. */
export function compareIds(a: string, b: string): number {
  if (a.length !== b.length) return a.length - b.length;
  return a < b ? -1 : a > b ? 1 : 0;
}
