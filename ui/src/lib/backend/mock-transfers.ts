//! The mock's direct transfers: an offer you send is accepted by the other side after a moment
//! and then moves at a believable speed (direct to Bob, through the relay to anyone else); an
//! offer to you (`offerIncoming`, used by tests and the demo) waits for Accept or Decline.
//! Pause, resume and cancel act as the engine's do. `MockBackend` delegates here.

import type { UserId } from '../protocol/generated';
import { BackendError, type TransferInfo, type Unsubscribe } from './backend';

const TICK_MS = 200;
/** 40 MB/s direct, 8 MB/s relayed. */
const SPEED = { direct: 40e6, relayed: 8e6 };

export class MockTransfers {
  private all = new Map<string, TransferInfo>();
  private listeners = new Set<(t: TransferInfo) => void>();
  private timers = new Map<string, ReturnType<typeof setInterval>>();
  private seq = 0;
  /** The folder the mock's "dialog" picks (null: the user cancels). */
  pickedFolder: string | null = '/home/ada/Downloads';
  /** The files the mock's "dialog" picks (null: the user cancels). */
  pickedFiles: string[] | null = ['/home/ada/Videos/holiday.mp4'];
  /** Delay before the other side accepts an offer of ours. */
  acceptDelayMs = 600;

  constructor(private directPeer: () => UserId | null) {}

  on(listener: (t: TransferInfo) => void): Unsubscribe {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  list(): TransferInfo[] {
    return [...this.all.values()].map((t) => structuredClone(t));
  }

  private update(id: string, change: Partial<TransferInfo>) {
    const t = this.all.get(id);
    if (!t) return;
    Object.assign(t, change);
    for (const l of [...this.listeners]) l(structuredClone(t));
  }

  private require(id: string): TransferInfo {
    const t = this.all.get(id);
    if (!t) throw new BackendError('not_found', 'no such transfer');
    return t;
  }

  private add(t: TransferInfo) {
    this.all.set(t.id, t);
    this.update(t.id, {});
  }

  send(peer: UserId, paths: string[]): string {
    const id = `mock-transfer-${++this.seq}`;
    const name = paths[0]?.split(/[\\/]/).pop() ?? 'file';
    this.add(blank(id, 'outgoing', peer, name, 1_500_000_000 * paths.length, paths.length));
    setTimeout(() => {
      if (this.all.get(id)?.state === 'offered') this.start(id);
    }, this.acceptDelayMs);
    return id;
  }

  /** An offer from `peer` arrives. */
  offerIncoming(peer: UserId, name: string, size: number, files = 1): string {
    const id = `mock-transfer-${++this.seq}`;
    this.add(blank(id, 'incoming', peer, name, size, files));
    return id;
  }

  accept(id: string): boolean {
    const t = this.require(id);
    if (this.pickedFolder === null) return false;
    if (t.direction !== 'incoming' || t.state !== 'offered') throw new BackendError('invalid_field', 'not an offer');
    this.update(id, { folder: this.pickedFolder });
    this.start(id);
    return true;
  }

  decline(id: string) {
    this.require(id);
    this.stop(id, { state: 'declined' });
  }

  pause(id: string) {
    const t = this.require(id);
    if (t.state !== 'moving' && t.state !== 'connecting') return;
    this.clearTimer(id);
    this.update(id, { state: 'paused', paused_by_me: true, speed_bps: null, eta_secs: null });
  }

  resume(id: string) {
    const t = this.require(id);
    if (t.state === 'paused' && t.paused_by_me) this.start(id);
  }

  cancel(id: string) {
    this.require(id);
    this.stop(id, { state: 'cancelled' });
  }

  private start(id: string) {
    const t = this.require(id);
    const path = t.peer === this.directPeer() ? 'direct' : 'relayed';
    this.update(id, { state: 'moving', paused_by_me: false, path });
    this.clearTimer(id);
    this.timers.set(
      id,
      setInterval(() => {
        const now = this.all.get(id);
        if (!now) return;
        const speed = SPEED[path];
        const done = Math.min(now.size, now.bytes_done + (speed * TICK_MS) / 1000);
        if (done >= now.size) {
          this.stop(id, { state: 'done', bytes_done: now.size });
        } else {
          this.update(id, { bytes_done: done, speed_bps: speed, eta_secs: (now.size - done) / speed });
        }
      }, TICK_MS),
    );
  }

  private stop(id: string, change: Partial<TransferInfo>) {
    this.clearTimer(id);
    this.update(id, { speed_bps: null, eta_secs: null, ...change });
  }

  private clearTimer(id: string) {
    const timer = this.timers.get(id);
    if (timer) clearInterval(timer);
    this.timers.delete(id);
  }

  stopAll() {
    for (const id of [...this.timers.keys()]) this.clearTimer(id);
  }
}

function blank(
  id: string,
  direction: 'incoming' | 'outgoing',
  peer: UserId,
  name: string,
  size: number,
  files: number,
): TransferInfo {
  return {
    id,
    direction,
    peer,
    name,
    size,
    files,
    state: 'offered',
    paused_by_me: false,
    error: null,
    bytes_done: 0,
    speed_bps: null,
    eta_secs: null,
    path: 'unknown',
    refetched_chunks: 0,
    folder: null,
  };
}
