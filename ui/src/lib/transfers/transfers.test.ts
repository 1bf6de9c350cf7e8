import { screen, waitFor, within } from '@testing-library/svelte';
import { describe, expect, it } from 'vitest';
import { renderApp } from '../app/testing';
import { formatBytes, formatDuration, formatSpeed, percent } from './format';

describe('transfers panel', () => {
  it('an incoming offer opens the panel; accepting shows progress, the path, speed and time left', async () => {
    const { backend, user } = await renderApp();
    const id = backend.transfers.offerIncoming('u2', 'holiday', 2_000_000_000, 120);
    const panel = await screen.findByTestId('transfers-panel');
    expect(within(panel).getByText('Bob wants to send you holiday (120 files, 2.0 GB)')).toBeTruthy();
    await user.click(within(panel).getByRole('button', { name: 'Accept…' }));
    await waitFor(() => expect(screen.getByTestId('transfer-state').textContent).toBe('Sending'));
    expect(screen.getByTestId('transfer-path').textContent).toBe('Direct');
    await waitFor(() => expect(screen.getByTestId('transfer-speed').textContent).toMatch(/^40\.0 MB\/s, .* left$/));
    // Pause and resume from this side.
    await user.click(within(panel).getByRole('button', { name: 'Pause' }));
    await waitFor(() => expect(screen.getByTestId('transfer-state').textContent).toBe('Paused'));
    expect(backend.transfers.list().find((t) => t.id === id)?.state).toBe('paused');
    await user.click(within(panel).getByRole('button', { name: 'Resume' }));
    await waitFor(() => expect(screen.getByTestId('transfer-state').textContent).toBe('Sending'));
    await user.click(within(panel).getByRole('button', { name: 'Cancel' }));
    await waitFor(() => expect(screen.getByTestId('transfer-state').textContent).toBe('Cancelled'));
    backend.transfers.stopAll();
  });

  it('declining leaves the offer declined and asks nothing of the file dialog', async () => {
    const { backend, user } = await renderApp();
    backend.transfers.pickedFolder = null;
    const id = backend.transfers.offerIncoming('u3', 'notes.txt', 1200);
    const panel = await screen.findByTestId('transfers-panel');
    await user.click(within(panel).getByRole('button', { name: 'Decline' }));
    await waitFor(() => expect(screen.getByTestId('transfer-state').textContent).toBe('Declined'));
    expect(backend.transfers.list().find((t) => t.id === id)?.folder).toBeNull();
  });

  it('a relayed transfer says it goes through the server relay', async () => {
    const { backend, user } = await renderApp();
    backend.transfers.offerIncoming('u3', 'video.mp4', 5_000_000_000);
    const panel = await screen.findByTestId('transfers-panel');
    await user.click(within(panel).getByRole('button', { name: 'Accept…' }));
    await waitFor(() => expect(screen.getByTestId('transfer-path').textContent).toBe('Through the server relay'));
    backend.transfers.stopAll();
  });

  it('"send directly" in a DM picks files and offers them to the other member', async () => {
    const { backend, user, hearth } = await renderApp();
    hearth.showChannel(backend.ids.dmBob);
    await user.click(await screen.findByTestId('send-directly'));
    await user.click(screen.getByRole('menuitem', { name: 'Files…' }));
    const panel = await screen.findByTestId('transfers-panel');
    await waitFor(() => expect(within(panel).getByText('To Bob')).toBeTruthy());
    expect(backend.transfers.list()[0]).toMatchObject({ direction: 'outgoing', peer: 'u2', name: 'holiday.mp4' });
    backend.transfers.stopAll();
  });

  it('formats sizes, speeds and times left', () => {
    expect(formatBytes(999)).toBe('999 B');
    expect(formatBytes(1_500_000_000)).toBe('1.5 GB');
    expect(formatSpeed(118_400_000)).toBe('118 MB/s');
    expect(formatDuration(42)).toBe('42 s');
    expect(formatDuration(185)).toBe('3 min 05 s');
    expect(formatDuration(7620)).toBe('2 h 07 min');
    expect(percent(50, 200)).toBe(25);
    expect(percent(0, 0)).toBe(100);
  });
});
