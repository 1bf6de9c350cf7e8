// The message pane over a long mock history: the DOM holds a bounded window of rows while the
// reader scrolls through thousands of messages, the view holds still when rows come and go at the
// window's edges, and the live end, "Jump to present", own sends and search jumps behave.
//
// jsdom does no layout, so `fakeLayout` gives the pane one: every child is ROW_PX tall, stacked
// in order, in a viewport VIEW_PX tall whose scrollTop is clamped like a browser's.
import { fireEvent, screen, waitFor, within } from '@testing-library/svelte';
import { afterEach, describe, expect, it } from 'vitest';
import { composer, renderApp } from '../app/testing';
import { WINDOW_ROWS } from './window';

const ROW_PX = 40;
const VIEW_PX = 400;

function fakeLayout(pane: HTMLElement) {
  let scrollTop = 0;
  const height = () => pane.childElementCount * ROW_PX;
  Object.defineProperties(pane, {
    clientHeight: { configurable: true, get: () => VIEW_PX },
    scrollHeight: { configurable: true, get: height },
    scrollTop: {
      configurable: true,
      get: () => scrollTop,
      set: (v: number) => (scrollTop = Math.max(0, Math.min(v, height() - VIEW_PX))),
    },
  });
  const box = (top: number, h: number) => ({ top, bottom: top + h, left: 0, right: 800, width: 800, height: h, x: 0, y: top, toJSON: () => ({}) });
  const original = Element.prototype.getBoundingClientRect;
  Element.prototype.getBoundingClientRect = function (this: Element) {
    if (this === pane) return box(0, VIEW_PX) as DOMRect;
    if (this.parentElement === pane) {
      let index = 0;
      for (let e = this.previousElementSibling; e; e = e.previousElementSibling) index++;
      return box(index * ROW_PX - scrollTop, ROW_PX) as DOMRect;
    }
    return original.call(this);
  };
  restoreLayout = () => (Element.prototype.getBoundingClientRect = original);
}

let restoreLayout = () => {};
afterEach(() => restoreLayout());

const pane = () => screen.getByTestId('message-pane');
const domRows = () => pane().querySelectorAll('[data-row-key]').length;
const domMessages = () => pane().querySelectorAll('[data-testid=message]').length;
const settle = () => new Promise((resolve) => setTimeout(resolve, 0));

/** Every rendered row's offset from the viewport's top (as `fakeLayout` places them). */
function offsets(): Map<string, number> {
  const map = new Map<string, number>();
  const el = pane();
  let top = -el.scrollTop;
  for (let row = el.firstElementChild; row; row = row.nextElementSibling, top += ROW_PX) {
    const key = (row as HTMLElement).dataset.rowKey;
    if (key) map.set(key, top);
  }
  return map;
}

/** The rows in view in `before` that are still rendered are where they were. */
function expectHeldStill(before: Map<string, number>) {
  const after = offsets();
  const kept = [...before].filter(([key, top]) => top > -ROW_PX && top < VIEW_PX && after.has(key));
  expect(kept.length).toBeGreaterThan(0);
  for (const [key, top] of kept) expect([key, after.get(key)]).toEqual([key, top]);
}

/** Scrolls to the top (as a user holding the scrollbar there) until `done`, checking the bound. */
async function scrollUpUntil(done: () => boolean, maxSteps = 200) {
  let max = 0;
  for (let step = 0; !done(); step++) {
    if (step >= maxSteps) throw new Error(`not done after ${maxSteps} scrolls (${domRows()} rows in the DOM)`);
    pane().scrollTop = 0;
    await fireEvent.scroll(pane());
    await settle();
    max = Math.max(max, domRows());
    expect(domRows()).toBeLessThanOrEqual(WINDOW_ROWS);
  }
  return max;
}

/** Scrolls the window up until it no longer holds the newest message. */
async function leaveLiveEnd() {
  await scrollUpUntil(() => screen.queryByTestId('jump-to-present') !== null);
  await scrollUpUntil(() => screen.queryByText(/Here is the list/) === null);
}

async function longChannel(filler = 2000) {
  const app = await renderApp({ fillerMessages: filler });
  fakeLayout(pane());
  pane().scrollTop = 1e9;
  return app;
}

describe('message pane window', { timeout: 120_000 }, () => {
  it('keeps the DOM bounded while scrolling up through 2,000 messages to the first', async () => {
    const { hearth } = await longChannel(2000);
    expect(pane().dataset.loadedCount).toBe('50');
    const max = await scrollUpUntil(() => document.querySelector('.channel-start') !== null);
    expect(max).toBeGreaterThan(WINDOW_ROWS / 2);
    expect(screen.getByText('Older message 1')).toBeTruthy();
    expect(screen.getByText('This is the beginning of #general.')).toBeTruthy();
    expect(hearth.messages.timeline('c1').messages).toHaveLength(2005);
    expect(pane().dataset.loadedCount).toBe('2005');
    expect(domMessages()).toBeLessThanOrEqual(WINDOW_ROWS);
    expect(screen.queryByText(/Here is the list/)).toBeNull();
    // Nothing is fetched again on the way back down: the window walks down through memory.
    let steps = 0;
    while (!screen.queryByText(/Here is the list/)) {
      expect(steps++).toBeLessThan(100);
      pane().scrollTop = 1e9;
      await fireEvent.scroll(pane());
      await settle();
      expect(domRows()).toBeLessThanOrEqual(WINDOW_ROWS);
    }
    expect(screen.queryByTestId('jump-to-present')).toBeNull();
    expect(document.querySelector('.channel-start')).toBeNull();
  });

  it('holds the rows in view still when rows are added above or trimmed', async () => {
    await longChannel(600);
    // Up: rows come in above (from the server, then from memory) while the bottom is trimmed.
    for (let i = 0; i < 8; i++) {
      pane().scrollTop = 0;
      const before = offsets();
      await fireEvent.scroll(pane());
      await settle();
      expectHeldStill(before);
      expect(pane().scrollTop).toBeGreaterThan(0);
      expect(domRows()).toBeLessThanOrEqual(WINDOW_ROWS);
    }
    expect(screen.getByTestId('jump-to-present')).toBeTruthy();
    // Down: rows come in below while the top is trimmed.
    for (let i = 0; i < 3; i++) {
      pane().scrollTop = 1e9;
      const before = offsets();
      await fireEvent.scroll(pane());
      await settle();
      expectHeldStill(before);
      expect(pane().scrollHeight - pane().scrollTop - VIEW_PX).toBeGreaterThan(0);
      expect(domRows()).toBeLessThanOrEqual(WINDOW_ROWS);
    }
  });

  it('follows new messages at the live end, and not when the reader has scrolled up', async () => {
    const { backend } = await longChannel(100);
    backend.simulateIncoming('c1', 'u2', 'first news');
    await screen.findByText('first news');
    const pane_ = pane();
    expect(pane_.scrollTop).toBe(pane_.scrollHeight - VIEW_PX);
    pane_.scrollTop = pane_.scrollHeight - VIEW_PX - 5 * ROW_PX;
    await fireEvent.scroll(pane_);
    const before = offsets();
    backend.simulateIncoming('c1', 'u3', 'second news');
    await screen.findByText('second news');
    expectHeldStill(before);
    expect(pane_.scrollHeight - pane_.scrollTop - VIEW_PX).toBe(6 * ROW_PX);
    expect(screen.queryByTestId('jump-to-present')).toBeNull();
  });

  it('keeps arrivals out of a window away from the present until Jump to present', async () => {
    const { backend } = await longChannel(600);
    await leaveLiveEnd();
    const before = offsets();
    backend.simulateIncoming('c1', 'u2', 'while you were reading');
    await settle();
    expect(screen.queryByText('while you were reading')).toBeNull();
    expectHeldStill(before);
    await fireEvent.click(screen.getByRole('button', { name: 'Jump to present' }));
    await screen.findByText('while you were reading');
    expect(screen.queryByTestId('jump-to-present')).toBeNull();
    expect(pane().scrollTop).toBe(pane().scrollHeight - VIEW_PX);
    expect(domRows()).toBeLessThanOrEqual(WINDOW_ROWS);
  });

  it('jumps to the present when the reader sends a message from up in the history', async () => {
    const { user } = await longChannel(600);
    await leaveLiveEnd();
    await user.type(composer(), 'back to now{Enter}');
    await screen.findByTestId('pending-message');
    await screen.findByText(/Here is the list/);
    expect(screen.queryByTestId('jump-to-present')).toBeNull();
    expect(pane().scrollTop).toBe(pane().scrollHeight - VIEW_PX);
  });

  it('moves the window to a search hit outside it, also from another channel', async () => {
    const { hearth, user } = await longChannel(1000);
    while (hearth.messages.timeline('c1').hasMore) await hearth.messages.loadOlder('c1');
    expect(screen.queryByText('Older message 100')).toBeNull();
    await user.click(document.querySelector<HTMLElement>('button[data-channel-id="c2"]')!);
    await waitFor(() => expect(screen.getByTestId('channel-title').textContent).toBe('#random'));
    await user.keyboard('{Control>}f{/Control}');
    // Matches "Older message 100" and "Older message 1000".
    await user.type(await screen.findByTestId('search-input'), 'message 100{Enter}');
    const hit = await screen.findByRole('button', { name: /Older message 100$/ });
    await user.click(hit);
    await waitFor(() => expect(screen.getByTestId('channel-title').textContent).toBe('#general'));
    const shown = await within(pane()).findByText('Older message 100');
    expect(shown.closest('article')!.classList.contains('highlight')).toBe(true);
    expect(domRows()).toBeLessThanOrEqual(WINDOW_ROWS);
    expect(screen.getByTestId('jump-to-present')).toBeTruthy();
    expect(hearth.messages.jumpTarget).toBeNull();
  });
});

describe('jumps into history that is not loaded', { timeout: 120_000 }, () => {
  const ids = () => [...pane().querySelectorAll<HTMLElement>('[data-testid=message]')].map((m) => m.dataset.messageId!);

  it('loads the window around a search hit, then pages down to the present without gaps', async () => {
    const { hearth, user } = await longChannel(1000);
    expect(pane().dataset.loadedCount).toBe('50');
    await user.keyboard('{Control>}f{/Control}');
    await user.keyboard('message 300{Enter}');
    await user.click(await screen.findByRole('button', { name: /Older message 300$/ }));
    const shown = await within(pane()).findByText('Older message 300');
    expect(shown.closest('article')!.classList.contains('highlight')).toBe(true);
    // The window replaced the newest page: 25 before, the hit, 25 after.
    const t = hearth.messages.timeline('c1');
    expect(t.messages.length).toBe(51);
    expect(t.messages[0].content).toBe('Older message 275');
    expect(t.hasNewer).toBe(true);
    expect(screen.getByTestId('jump-to-present')).toBeTruthy();

    // Scrolling down pages the newer history in, to the newest message.
    for (let step = 0; step < 100 && !screen.queryByText(/Here is the list/); step++) {
      pane().scrollTop = 1e9;
      await fireEvent.scroll(pane());
      await settle();
      expect(domRows()).toBeLessThanOrEqual(WINDOW_ROWS);
    }
    await screen.findByText(/Here is the list/);
    const loaded = hearth.messages.timeline('c1').messages.map((m) => m.content);
    expect(new Set(loaded).size).toBe(loaded.length);
    expect(loaded.slice(0, 3)).toEqual(['Older message 275', 'Older message 276', 'Older message 277']);
    expect(loaded.filter((c) => c.startsWith('Older message')).length).toBe(1000 - 274);
    expect(hearth.messages.timeline('c1').hasNewer).toBe(false);
    await waitFor(() => expect(screen.queryByTestId('jump-to-present')).toBeNull());
  });

  it('keeps arrivals out while away from the present, and Jump to present shows them', async () => {
    const { backend, hearth, user } = await longChannel(1000);
    const target = backend.messageWith('c1', 'Older message 500')!;
    await hearth.jumpToMessage('c1', target.id);
    await within(pane()).findByText('Older message 500');
    backend.simulateIncoming('c1', 'u2', 'a brand new message');
    await settle();
    expect(hearth.messages.timeline('c1').messages.some((m) => m.content === 'a brand new message')).toBe(false);
    await user.click(screen.getByTestId('jump-to-present'));
    await screen.findByText('a brand new message');
    expect(hearth.messages.timeline('c1').hasNewer).toBe(false);
    expect(new Set(ids()).size).toBe(ids().length);
  });

  it('a reply’s quote jumps to its parent, loading it when needed', async () => {
    const { backend, user } = await longChannel(1000);
    const parent = backend.messageWith('c1', 'Older message 42')!;
    backend.simulateIncoming('c1', 'u3', 'replying to something old', parent.id);
    const reply = (await screen.findByText('replying to something old')).closest('article')!;
    await user.click(within(reply as HTMLElement).getByTestId('reply-quote'));
    const shown = await within(pane()).findByText('Older message 42');
    expect(shown.closest('article')!.classList.contains('highlight')).toBe(true);
  });

  it('a jump to a deleted message says so and shows where it was', async () => {
    const { backend, hearth } = await longChannel(1000);
    const target = backend.messageWith('c1', 'Older message 600')!;
    backend.simulateDelete('c1', target.id);
    await hearth.jumpToMessage('c1', target.id);
    await within(pane()).findByText('Older message 601');
    expect(await screen.findByText('That message no longer exists.')).toBeTruthy();
  });
});
