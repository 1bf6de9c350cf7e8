//! An action a dialog runs for the user, whose failure it shows inline in the user's language
//! (the same text as a notice would use, never internal detail).

import { errorKey } from '../session/session.svelte';
import type { I18n } from '../i18n/i18n.svelte';

export class Attempt {
  /** The last failure's text, until the next attempt. */
  error = $state<string | null>(null);
  private t: I18n['t'];

  constructor(t: I18n['t']) {
    this.t = t;
  }

  /** Runs `action`; true when it succeeded. */
  async run(action: () => Promise<unknown>): Promise<boolean> {
    this.error = null;
    try {
      await action();
      return true;
    } catch (err) {
      const { key, detail } = errorKey(err);
      this.error = this.t(key, { detail });
      return false;
    }
  }
}
