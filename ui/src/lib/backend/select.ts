//! Picks the backend at startup: the Tauri shell when the page runs inside it, else the mock.

import type { Backend } from './backend';

export function insideTauri(): boolean {
  return typeof window !== 'undefined' && '__TAURI_INTERNALS__' in window;
}

export async function createBackend(): Promise<Backend> {
  if (!__HEARTH_FORCE_MOCK__ && insideTauri()) {
    const { TauriBackend } = await import('./tauri');
    return new TauriBackend();
  }
  const { MockBackend } = await import('./mock');
  // `?filler=N` starts signed in with N older messages in #general (long-history checks);
  // `?role=owner|admin|member` signs in with that role; `?firstRun` is a brand-new server
  // (the first account registers with the setup link and owns an empty group).
  const query = new URLSearchParams(window.location.search);
  const filler = Number(query.get('filler'));
  const role = query.get('role');
  const mock = new MockBackend({
    ...(Number.isInteger(filler) && filler > 0 ? { fillerMessages: filler, signedIn: true, connectDelayMs: 0 } : {}),
    ...(role === 'owner' || role === 'admin' || role === 'member' ? { role, signedIn: true, connectDelayMs: 0 } : {}),
    ...(query.has('firstRun') ? { firstRun: true } : {}),
  });
  // Only the dev server chats by itself; built mock pages (browser tests) stay deterministic.
  if (import.meta.env.DEV) mock.startChatter();
  // The browser tests drive the fake group through this handle; it exists only with the mock.
  (window as unknown as { __hearthMock?: unknown }).__hearthMock = mock;
  return mock;
}
