//! Direct transfers as this device sees them: the queue (offers waiting for an answer, moving,
//! paused, waiting for the peer) and what finished, newest change last; every action goes to the
//! backend, and the state follows `transfer://changed`.

import type { Backend, TransferInfo } from '../backend/backend';
import type { UserId } from '../protocol/generated';

const ACTIVE = new Set(['offered', 'connecting', 'moving', 'paused', 'waiting']);

export class TransfersState {
  byId = $state<Record<string, TransferInfo>>({});
  /** The panel is open (it opens by itself when an offer arrives). */
  open = $state(false);

  private backend: Backend;
  private onError: (err: unknown) => void;

  constructor(backend: Backend, onError: (err: unknown) => void) {
    this.backend = backend;
    this.onError = onError;
  }

  get all(): TransferInfo[] {
    return Object.values(this.byId).filter((t) => t.state !== 'taken_elsewhere');
  }

  /** Offers waiting for our answer, then everything still under way, then the finished ones. */
  get queue(): TransferInfo[] {
    const rank = (t: TransferInfo) => (t.direction === 'incoming' && t.state === 'offered' ? 0 : ACTIVE.has(t.state) ? 1 : 2);
    return this.all.sort((a, b) => rank(a) - rank(b));
  }

  get activeCount(): number {
    return this.all.filter((t) => ACTIVE.has(t.state)).length;
  }

  async load() {
    try {
      for (const t of await this.backend.transferList()) this.byId[t.id] = t;
    } catch (err) {
      console.error('transfers could not be read', err);
    }
  }

  apply(t: TransferInfo) {
    const isNewOffer = !this.byId[t.id] && t.direction === 'incoming' && t.state === 'offered';
    this.byId[t.id] = t;
    if (isNewOffer) this.open = true;
  }

  private async run(action: () => Promise<unknown>) {
    try {
      await action();
    } catch (err) {
      this.onError(err);
    }
  }

  /** Chooses files (or folders) with the native dialog and offers them to `userId`. */
  sendTo(userId: UserId, folders = false) {
    return this.run(async () => {
      const paths = await this.backend.transferPick(folders);
      if (!paths || paths.length === 0) return;
      this.open = true;
      await this.backend.transferSend(userId, paths);
    });
  }

  accept = (id: string) => this.run(() => this.backend.transferAccept(id));
  decline = (id: string) => this.run(() => this.backend.transferDecline(id));
  pause = (id: string) => this.run(() => this.backend.transferPause(id));
  resume = (id: string) => this.run(() => this.backend.transferResume(id));
  cancel = (id: string) => this.run(() => this.backend.transferCancel(id));

  /** Forgets finished transfers (they are not kept after a restart either). */
  clearFinished() {
    for (const t of Object.values(this.byId)) if (!ACTIVE.has(t.state)) delete this.byId[t.id];
  }
}
