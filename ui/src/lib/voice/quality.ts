//! How a peer link's numbers read to a person: a grade (bars and colour) and a one-line summary.

import type { PeerQuality } from '../backend/backend';

export type Grade = 'good' | 'fair' | 'poor' | 'failed' | 'pending';

/** Good enough that nobody notices: conversational delay and losses FEC hides. */
const GOOD = { rtt: 80, loss: 0.02, jitter: 20 };
/** Beyond these people talk over each other or hear gaps. */
const POOR = { rtt: 150, loss: 0.05, jitter: 50 };

export function grade(q: PeerQuality | null): Grade {
  if (!q || q.state === 'connecting') return 'pending';
  if (q.state === 'failed') return 'failed';
  if (q.state === 'reconnecting') return 'poor';
  const rtt = q.rtt_ms ?? 0;
  const jitter = q.jitter_ms ?? 0;
  if (rtt > POOR.rtt || q.loss > POOR.loss || jitter > POOR.jitter) return 'poor';
  if (rtt <= GOOD.rtt && q.loss <= GOOD.loss && jitter <= GOOD.jitter) return 'good';
  return 'fair';
}

export const BARS: Record<Grade, number> = { good: 3, fair: 2, poor: 1, failed: 0, pending: 0 };

const ORDER: Grade[] = ['failed', 'poor', 'fair', 'good', 'pending'];

/** The worst grade among links (what the panel's single indicator shows). */
export function worst(grades: Grade[]): Grade {
  if (grades.length === 0) return 'pending';
  return grades.reduce((a, b) => (ORDER.indexOf(a) <= ORDER.indexOf(b) ? a : b));
}

/** Loss as a percentage in the user's locale (`0.4%`, `0,4 %`), one decimal below 10 %. */
export function percent(loss: number, locale: string): string {
  return new Intl.NumberFormat(locale, { style: 'percent', maximumFractionDigits: loss < 0.1 ? 1 : 0 }).format(loss);
}

/** Milliseconds in the user's locale (`24 ms`, `24 毫秒`); a dash until measured. */
export function ms(value: number | null, locale: string): string {
  if (value === null) return '–';
  return new Intl.NumberFormat(locale, { style: 'unit', unit: 'millisecond', maximumFractionDigits: 0 }).format(value);
}
