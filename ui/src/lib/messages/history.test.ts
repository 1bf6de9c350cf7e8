import { fireEvent, screen, waitFor } from '@testing-library/svelte';
import { describe, expect, it } from 'vitest';
import { renderApp } from '../app/testing';
import { MockBackend } from '../backend/mock';
import { MessagesState, PAGE_SIZE } from './messages.svelte';

describe('history', () => {
  it('pages backwards until the start of the channel', async () => {
    const backend = new MockBackend({ signedIn: true, fillerMessages: 120 });
    const messages = new MessagesState(backend);
    await messages.open('c1');
    expect(messages.timeline('c1').messages).toHaveLength(PAGE_SIZE);
    let total = PAGE_SIZE;
    while (messages.timeline('c1').hasMore) total += await messages.loadOlder('c1');
    const ids = messages.timeline('c1').messages.map((m) => m.id);
    expect(total).toBe(125);
    expect(new Set(ids).size).toBe(125);
    expect(ids).toEqual([...ids].sort((a, b) => (a.length - b.length) || (a < b ? -1 : 1)));
    expect(await messages.loadOlder('c1')).toBe(0);
  });

  it('loads older messages when scrolled to the top', async () => {
    await renderApp();
    expect(screen.queryByText('Older message 1')).toBeNull();
    const pane = screen.getByTestId('message-pane');
    pane.scrollTop = 0;
    await fireEvent.scroll(pane);
    await screen.findByText('Older message 1');
    await waitFor(() => expect(screen.getByText('This is the beginning of #general.')).toBeTruthy());
  });

  it('removes deleted messages and marks edited ones', async () => {
    const { backend, hearth } = await renderApp();
    const mine = hearth.messages.lastOwn('c1', '1')!;
    await backend.editMessage('c1', mine.id, 'cake and tea');
    expect((await screen.findByText('cake and tea')).closest('article')!.textContent).toContain('(edited)');
    await backend.deleteMessage('c1', mine.id);
    await waitFor(() => expect(screen.queryByText('cake and tea')).toBeNull());
  });
});

describe('failures', () => {
  it('shows a notice when an edit is refused', async () => {
    const { backend, hearth, user } = await renderApp();
    backend.editMessage = async () => {
      throw new (await import('../backend/backend')).BackendError('forbidden', 'no');
    };
    const { composer } = await import('../app/testing');
    composer().focus();
    await user.keyboard('{ArrowUp}');
    await user.type(composer(), '!{Enter}');
    await screen.findByText('You are not allowed to do this.');
    expect(hearth.messages.editing).toBeNull();
  });
});
