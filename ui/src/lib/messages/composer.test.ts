import { screen, waitFor, within } from '@testing-library/svelte';
import { describe, expect, it } from 'vitest';
import { composer, renderApp } from '../app/testing';

describe('sending messages', () => {
  it('shows a sent message as pending until the server acknowledges it', async () => {
    const { backend, user } = await renderApp();
    await user.type(composer(), 'hello there{Enter}');

    const pending = await screen.findByTestId('pending-message');
    expect(pending.textContent).toContain('hello there');
    expect(pending.textContent).toContain('Sending…');
    expect(composer().value).toBe('');
    expect(backend.sent.map((m) => m.content)).toEqual(['hello there']);

    backend.ackPending();
    await waitFor(() => expect(screen.queryByTestId('pending-message')).toBeNull());
    const messages = screen.getAllByTestId('message');
    expect(messages.at(-1)!.textContent).toContain('hello there');
  });

  it('Enter sends while Shift+Enter adds a line', async () => {
    const { backend, user } = await renderApp();
    await user.type(composer(), 'line one{Shift>}{Enter}{/Shift}line two');
    expect(composer().value).toBe('line one\nline two');
    expect(backend.sent).toHaveLength(0);

    await user.keyboard('{Enter}');
    expect(backend.sent.map((m) => m.content)).toEqual(['line one\nline two']);
  });

  it('offers Retry for a failed send and retries with the same nonce', async () => {
    const { backend, user } = await renderApp();
    await user.type(composer(), 'flaky{Enter}');
    backend.failPending('unavailable');
    const retry = await screen.findByRole('button', { name: 'Retry' });
    expect(screen.getByTestId('pending-message').textContent).toContain('Not sent.');

    await user.click(retry);
    expect(backend.sent).toHaveLength(2);
    expect(backend.sent[1].nonce).toBe(backend.sent[0].nonce);
    backend.ackPending();
    await waitFor(() => expect(screen.queryByTestId('pending-message')).toBeNull());
  });

  it('Up in an empty composer edits your last message', async () => {
    const { backend, user } = await renderApp();
    composer().focus();
    await user.keyboard('{ArrowUp}');
    expect(composer().value).toBe('I can bring cake 🍰');
    expect(screen.getByText(/Editing message/)).toBeTruthy();

    await user.clear(composer());
    await user.type(composer(), 'I can bring pie{Enter}');
    const edited = await screen.findByText('I can bring pie');
    const article = edited.closest('article')!;
    expect(within(article).getByText('(edited)')).toBeTruthy();
    expect(backend.sent).toHaveLength(0);
  });

  it('completes @mentions: shows @Name, sends <@id>', async () => {
    const { backend, user } = await renderApp();
    await user.type(composer(), 'hi @bo');
    const option = await screen.findByRole('option');
    expect(option.textContent).toContain('Bob');
    await user.keyboard('{Enter}');
    expect(composer().value).toBe('hi @Bob ');
    await user.type(composer(), 'look{Enter}');
    expect(backend.sent[0].content).toBe('hi <@u2> look');
  });

  it('replies with a quoted preview', async () => {
    const { backend, user } = await renderApp();
    const question = screen
      .getAllByText('Who is bringing snacks on Saturday?')
      .find((el) => el.closest('.body'))!
      .closest('article')!;
    await user.click(within(question).getByRole('button', { name: 'Reply' }));
    expect(screen.getByTestId('reply-bar').textContent).toContain('Replying to Bob');
    await user.type(composer(), 'me!{Enter}');
    expect(backend.sent[0].reply_to).toBe(question.dataset.messageId);
    backend.ackPending();
    await waitFor(() => expect(screen.queryByTestId('pending-message')).toBeNull());
    const reply = screen.getByText('me!').closest('article')!;
    expect(reply.querySelector('.reply-quote')?.textContent).toContain('Who is bringing snacks');
  });

  it('tells the backend about typing and shows who else is typing', async () => {
    const { backend, user } = await renderApp();
    await user.type(composer(), 'abc');
    expect(backend.typingCalls).toEqual(['c1']);
    backend.simulateTyping('c1', 'u2');
    await waitFor(() => expect(screen.getByTestId('typing').textContent).toBe('Bob is typing…'));
    backend.simulateIncoming('c1', 'u2', 'done typing');
    await waitFor(() => expect(screen.getByTestId('typing').textContent).toBe(''));
  });
});
