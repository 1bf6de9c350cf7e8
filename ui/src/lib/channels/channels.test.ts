import { screen, waitFor } from '@testing-library/svelte';
import { describe, expect, it } from 'vitest';
import { renderApp } from '../app/testing';

const channelButton = (id: string) => document.querySelector(`button[data-channel-id="${id}"]`) as HTMLButtonElement;

describe('channel list', () => {
  it('shows unread and mention badges from Ready and from new messages', async () => {
    const { backend } = await renderApp();
    // From Ready: #random has unread messages, the DM with Bob a mention.
    expect(channelButton('c2').classList.contains('unread')).toBe(true);
    expect(channelButton('c5').querySelector('[data-testid="mention-badge"]')?.textContent?.trim()).toBe('1');
    expect(channelButton('c3').classList.contains('unread')).toBe(false);

    backend.simulateIncoming('c3', 'u2', 'plain news');
    await waitFor(() => expect(channelButton('c3').classList.contains('unread')).toBe(true));
    expect(channelButton('c3').querySelector('[data-testid="mention-badge"]')).toBeNull();

    backend.simulateIncoming('c3', 'u2', 'hey <@1>');
    backend.simulateIncoming('c3', 'u3', 'and again <@1>');
    await waitFor(() =>
      expect(channelButton('c3').querySelector('[data-testid="mention-badge"]')?.textContent?.trim()).toBe('2'),
    );
  });

  it('counts nothing for the open channel and clears a badge when the channel is opened', async () => {
    const { backend, user } = await renderApp();
    backend.simulateIncoming('c1', 'u2', 'in the open channel');
    await screen.findByText('in the open channel');
    expect(channelButton('c1').classList.contains('unread')).toBe(false);

    await user.click(channelButton('c2'));
    await waitFor(() => expect(screen.getByTestId('channel-title').textContent).toBe('#random'));
    await waitFor(() => expect(channelButton('c2').classList.contains('unread')).toBe(false));
    await screen.findByText('Check the couch');
  });

  it('Ctrl+K opens the quick switcher, which navigates and closes', async () => {
    const { user } = await renderApp();
    await user.keyboard('{Control>}k{/Control}');
    const input = await screen.findByTestId('switcher-input');
    await user.type(input, 'ran');
    await user.keyboard('{Enter}');
    await waitFor(() => expect(screen.getByTestId('channel-title').textContent).toBe('#random'));
    expect(screen.queryByTestId('switcher-input')).toBeNull();

    await user.keyboard('{Control>}k{/Control}');
    await screen.findByTestId('switcher-input');
    await user.keyboard('{Escape}');
    expect(screen.queryByTestId('switcher-input')).toBeNull();
  });

  it('switches to a DM and shows it by the other person’s name', async () => {
    const { user } = await renderApp();
    await user.click(channelButton('c5'));
    await waitFor(() => expect(screen.getByTestId('channel-title').textContent).toBe('Bob'));
    await screen.findByText(/can you call me later/);
  });
});

describe('direct messages', () => {
  it('opens a new DM from the member picker', async () => {
    const { backend, user } = await renderApp();
    await user.click(screen.getByRole('button', { name: 'New direct message' }));
    await user.click(screen.getByRole('checkbox', { name: /Carol/ }));
    await user.click(screen.getByRole('button', { name: 'Open conversation' }));
    await waitFor(() => expect(screen.getByTestId('channel-title').textContent).toBe('Carol'));
    const dm = (await backend.snapshot())!.channels.find((c) => c.kind === 'dm' && c.members.includes('u3'))!;
    expect(channelButton(dm.id)).toBeTruthy();
    expect(screen.getByText('This is the beginning of Carol.')).toBeTruthy();
  });
});
