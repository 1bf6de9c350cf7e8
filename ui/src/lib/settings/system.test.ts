import { screen, waitFor } from '@testing-library/svelte';
import { describe, expect, it } from 'vitest';
import { renderApp } from '../app/testing';
import { BackendError } from '../backend/backend';

describe('settings: this computer', () => {
  it('turns "start with the system" on and off', async () => {
    const { backend, user } = await renderApp();
    await user.click(screen.getByRole('button', { name: 'User settings' }));
    const box = (await screen.findByLabelText(/Start Hearth when I log in/)) as HTMLInputElement;
    expect(box.checked).toBe(false);
    await user.click(box);
    await waitFor(() => expect(backend.autostart).toBe(true));
    await user.click(box);
    await waitFor(() => expect(backend.autostart).toBe(false));
  });

  it('says so when Hearth is up to date', async () => {
    const { user } = await renderApp({ update: null });
    await user.click(screen.getByRole('button', { name: 'User settings' }));
    await user.click(screen.getByRole('button', { name: 'Check for updates' }));
    expect(await screen.findByText('Hearth is up to date.')).toBeTruthy();
  });

  it('offers a newer release and installs it', async () => {
    const { backend, user } = await renderApp({ update: { version: '0.2.0', current_version: '0.1.0', notes: 'Faster voice.' } });
    await user.click(screen.getByRole('button', { name: 'User settings' }));
    await user.click(screen.getByRole('button', { name: 'Check for updates' }));
    expect(await screen.findByText('Hearth 0.2.0 is available (this is 0.1.0).')).toBeTruthy();
    expect(screen.getByText('Faster voice.')).toBeTruthy();
    await user.click(screen.getByRole('button', { name: 'Install and restart' }));
    await waitFor(() => expect(backend.updatesInstalled).toBe(1));
  });

  it('shows a refused update in plain words', async () => {
    const { backend, user } = await renderApp({ update: { version: '0.2.0', current_version: '0.1.0', notes: null } });
    backend.installUpdate = async () => {
      throw new BackendError('update_bad_signature', 'bad signature');
    };
    await user.click(screen.getByRole('button', { name: 'User settings' }));
    await user.click(screen.getByRole('button', { name: 'Check for updates' }));
    await user.click(await screen.findByRole('button', { name: 'Install and restart' }));
    expect((await screen.findByRole('alert')).textContent).toBe('The update is not signed by Hearth, so it was not installed.');
  });
});
