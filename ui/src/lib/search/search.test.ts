// Search: the snippet built from the server's ranges (text only, never markup), the results panel
// over the mock server (filters, names to complete them, paging, errors), and the quick switcher's
// fuzzy matching with people.
import { screen, waitFor, within } from '@testing-library/svelte';
import { describe, expect, it } from 'vitest';
import { renderApp } from '../app/testing';
import { fuzzyScore } from '../channels/fuzzy';
import { snippet } from './snippet';

const text = (pieces: { text: string; mark: boolean }[]) => pieces.map((p) => (p.mark ? `[${p.text}]` : p.text)).join('');
const nameOf = (id: string) => ({ u2: 'Bob' })[id] ?? id;

describe('snippet', () => {
  it('marks the server’s ranges and reads mentions as names', () => {
    expect(text(snippet('Hey <@u2>, the teapot is here', [{ start: 15, end: 21 }], nameOf))).toBe('Hey @Bob, the [teapot] is here');
  });

  it('counts in UTF-16 units, so text after emoji and Chinese is marked where it is', () => {
    const content = '🎉 我們明天去台北 🎉 teapot';
    const start = content.indexOf('台北');
    const tea = content.indexOf('teapot');
    expect(text(snippet(content, [{ start, end: start + 2 }, { start: tea, end: tea + 6 }], nameOf))).toBe('🎉 我們明天去[台北] 🎉 [teapot]');
  });

  it('cuts long messages around the first match, never inside a surrogate pair', () => {
    const content = `${'😀'.repeat(100)} needle ${'x'.repeat(500)}`;
    const at = content.indexOf('needle');
    const pieces = snippet(content, [{ start: at, end: at + 6 }], nameOf);
    expect(pieces[0].text).toBe('…');
    expect(pieces.at(-1)!.text).toBe('…');
    expect(text(pieces)).toContain('[needle]');
    expect(text(pieces)).not.toMatch(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/);
  });

  it('ignores ranges outside the text and merges overlapping ones', () => {
    expect(text(snippet('abcdef', [{ start: 1, end: 3 }, { start: 2, end: 4 }, { start: 40, end: 50 }], nameOf))).toBe('a[bcd]ef');
  });
});

describe('fuzzy matching', () => {
  it('prefers a prefix, then a word start, then letters in order', () => {
    const prefix = fuzzyScore('gen', 'general')!;
    const word = fuzzyScore('gen', 'the general')!;
    const inside = fuzzyScore('era', 'general')!;
    const scattered = fuzzyScore('gnrl', 'general')!;
    expect(prefix).toBeGreaterThan(word);
    expect(word).toBeGreaterThan(inside);
    expect(inside).toBeGreaterThan(scattered);
    expect(scattered).toBeGreaterThan(0);
    expect(fuzzyScore('xyz', 'general')).toBeNull();
    expect(fuzzyScore('GEN', 'General')).toBe(prefix);
  });
});

describe('search panel', () => {
  it('shows the filters, completes names, and renders a message’s markup as text', async () => {
    const { backend, user } = await renderApp();
    backend.simulateIncoming('c2', 'u3', '<img src=x onerror=alert(1)> teapot');
    await user.click(screen.getByTestId('search-input'));
    const panel = await screen.findByTestId('search-panel');
    await user.click(within(panel).getByRole('button', { name: /from:/ }));
    expect((screen.getByTestId('search-input') as HTMLInputElement).value).toBe('from:');
    await user.keyboard('car');
    await user.click(await within(panel).findByRole('button', { name: 'Carol (carol)' }));
    expect((screen.getByTestId('search-input') as HTMLInputElement).value).toBe('from:carol ');
    await user.keyboard('teapot{Enter}');
    const hit = await within(panel).findByTestId('search-hit');
    expect(hit.querySelector('img')).toBeNull();
    expect(hit.textContent).toContain('<img src=x onerror=alert(1)>');
    expect(hit.querySelector('mark')!.textContent).toBe('teapot');
    expect(hit.textContent).toContain('#random');
    expect(hit.textContent).toContain('Carol');
  });

  it('pages with More results, and shows the server’s words for a bad filter', async () => {
    const { user } = await renderApp({ fillerMessages: 60 });
    await user.click(screen.getByTestId('search-input'));
    await user.keyboard('older{Enter}');
    const panel = await screen.findByTestId('search-panel');
    await waitFor(() => expect(within(panel).getAllByTestId('search-hit').length).toBe(25));
    expect(within(panel).getByTestId('search-count').textContent).toBe('60 results');
    await user.click(within(panel).getByTestId('search-more'));
    await waitFor(() => expect(within(panel).getAllByTestId('search-hit').length).toBe(50));
    await user.click(within(panel).getByTestId('search-more'));
    await waitFor(() => expect(within(panel).getAllByTestId('search-hit').length).toBe(60));
    expect(within(panel).queryByTestId('search-more')).toBeNull();
    const ids = within(panel).getAllByTestId('search-hit').map((h) => h.dataset.messageId);
    expect(new Set(ids).size).toBe(60);

    await user.clear(screen.getByTestId('search-input'));
    await user.keyboard('older from:nobody{Enter}');
    expect((await within(panel).findByRole('alert')).textContent).toBe('no member is called nobody');
    expect(within(panel).queryAllByTestId('search-hit')).toHaveLength(0);
  });

  it('drops a deleted message from the results', async () => {
    const { backend, user } = await renderApp();
    await user.click(screen.getByTestId('search-input'));
    await user.keyboard('couch{Enter}');
    const panel = await screen.findByTestId('search-panel');
    await within(panel).findByTestId('search-hit');
    backend.simulateDelete('c2', backend.messageWith('c2', 'Check the couch')!.id);
    await waitFor(() => expect(within(panel).queryAllByTestId('search-hit')).toHaveLength(0));
  });
});

describe('quick switcher', () => {
  it('finds people too, and Enter on one opens the DM with them', async () => {
    const { user } = await renderApp();
    await user.keyboard('{Control>}k{/Control}');
    await user.type(await screen.findByTestId('switcher-input'), 'crl');
    const options = screen.getAllByTestId('switcher-option');
    expect(options[0].dataset.key).toBe('user-u3');
    await user.keyboard('{Enter}');
    await waitFor(() => expect(screen.getByTestId('channel-title').textContent).toBe('Carol'));
    expect(screen.queryByTestId('switcher-input')).toBeNull();
  });

  it('moves with the arrow keys and matches letters in order', async () => {
    const { user } = await renderApp();
    await user.keyboard('{Control>}k{/Control}');
    await user.type(await screen.findByTestId('switcher-input'), 'anc');
    expect(screen.getAllByTestId('switcher-option')[0].textContent).toContain('announcements');
    await user.clear(screen.getByTestId('switcher-input'));
    await user.type(screen.getByTestId('switcher-input'), 'r');
    await user.keyboard('{ArrowDown}{ArrowUp}{Enter}');
    await waitFor(() => expect(screen.getByTestId('channel-title').textContent).toBe('#random'));
  });
});
