//! Test helpers: render the whole app over a `MockBackend` and wait until it shows the group.

import { render, screen } from '@testing-library/svelte';
import userEvent from '@testing-library/user-event';
import App from '../../App.svelte';
import { MockBackend, type MockOptions } from '../backend/mock';
import { Hearth } from './hearth.svelte';

export async function renderApp(options: MockOptions = {}) {
  const backend = new MockBackend({ signedIn: true, ackDelayMs: 'manual', connectDelayMs: 0, voiceConnectDelayMs: 0, ...options });
  const hearth = new Hearth(backend);
  const user = userEvent.setup();
  const result = render(App, { props: { hearth } });
  if (options.signedIn !== false) {
    await screen.findByTestId('channel-title');
    // The first page of the open channel has loaded once its newest message shows.
    await screen.findByText(/Here is the list/);
  }
  return { backend, hearth, user, ...result };
}

export const composer = () => screen.getByTestId('composer') as HTMLTextAreaElement;
