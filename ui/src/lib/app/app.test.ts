import { screen, waitFor, within } from '@testing-library/svelte';
import { tick } from 'svelte';
import { describe, expect, it } from 'vitest';
import { messageLink, parseMessageLink } from '../messages/links';
import { renderApp } from './testing';

/** Adds a second server (cousins.example) from the user settings and waits to land in it. */
async function joinCousins(user: Awaited<ReturnType<typeof renderApp>>['user']) {
  await user.click(screen.getByRole('button', { name: 'User settings' }));
  await user.click(screen.getByText('Add a server'));
  await user.type(
    await screen.findByLabelText('Invite link or server address'),
    'hearth://join?server=https%3A%2F%2Fcousins.example&code=WELCOME{Enter}',
  );
  await user.type(await screen.findByLabelText('Username'), 'zoe2');
  await user.type(screen.getByLabelText('Password'), 'correct horse{Enter}');
  await waitFor(() => expect(screen.getByTestId('channel-title').textContent).toBe('#general'));
}

describe('app', () => {
  it('registers through an invite link and lands in the group', async () => {
    const { user, backend } = await renderApp({ signedIn: false });
    const server = await screen.findByLabelText('Invite link or server address');
    await user.type(server, 'hearth://join?server=https%3A%2F%2Fhearth.example&code=WELCOME{Enter}');
    await screen.findByText('Create your account on The Hearth');
    expect((screen.getByLabelText('Invite code') as HTMLInputElement).value).toBe('WELCOME');
    await user.type(screen.getByLabelText('Username'), 'zoe');
    await user.type(screen.getByLabelText('Display name (optional)'), 'Zoë');
    await user.type(screen.getByLabelText('Password'), 'correct horse{Enter}');
    await waitFor(() => expect(screen.getByTestId('channel-title').textContent).toBe('#general'));
    expect(screen.getByTestId('me-name').textContent).toBe('Zoë');
    expect((await backend.activeAccount())?.user.username).toBe('zoe');
  });

  it('lands in the group when the Ready beats the reply to register', async () => {
    const { user } = await renderApp({ signedIn: false, readyBeforeReply: true });
    await user.type(
      await screen.findByLabelText('Invite link or server address'),
      'hearth://join?server=https%3A%2F%2Fhearth.example&code=WELCOME{Enter}',
    );
    await user.type(await screen.findByLabelText('Username'), 'zoe');
    await user.type(screen.getByLabelText('Password'), 'correct horse{Enter}');
    await waitFor(() => expect(screen.getByTestId('channel-title').textContent).toBe('#general'));
  });

  it('keeps the open channel on screen through a fresh Ready and shows what came in the gap', async () => {
    const { backend } = await renderApp();
    backend.offlineGap = true;
    backend.simulateIncoming('c1', 'u2', 'sent while we were away');
    backend.simulateFreshReady();
    await tick();
    // Not emptied while the newest page is fetched again.
    expect(screen.queryByText(/Here is the list/)).not.toBeNull();
    await screen.findByText('sent while we were away');
    expect(screen.queryByText(/Here is the list/)).not.toBeNull();
  });

  it('opens a join link that started the app on the register form', async () => {
    await renderApp({ signedIn: false, startupLink: 'hearth://join?server=https%3A%2F%2Fhearth.example&code=WELCOME' });
    await screen.findByText('Create your account on The Hearth');
    expect((screen.getByLabelText('Invite code') as HTMLInputElement).value).toBe('WELCOME');
    expect(screen.queryByText('Cancel')).toBeNull();
  });

  it('opens a server\'s setup link that started the app on the owner\'s registration', async () => {
    await renderApp({ signedIn: false, startupLink: 'hearth://setup?server=https%3A%2F%2Fhearth.example&token=SETUP-TOKEN_1' });
    await screen.findByText('Create your account on The Hearth');
    expect((screen.getByLabelText('Invite code') as HTMLInputElement).value).toBe('SETUP-TOKEN_1');
    screen.getByText('This setup link creates the first account: you will be the group’s owner.');
  });

  it('opens a join link that arrives while signed in over the group, and Cancel goes back', async () => {
    const { backend, user } = await renderApp();
    backend.simulateLink('hearth://join?server=https%3A%2F%2Fhearth.example&code=FAMILY');
    await screen.findByText('Create your account on The Hearth');
    expect((screen.getByLabelText('Invite code') as HTMLInputElement).value).toBe('FAMILY');
    await user.click(screen.getByText('Cancel'));
    await waitFor(() => expect(screen.getByTestId('channel-title').textContent).toBe('#general'));
  });

  it('adds a second server from settings and lands in it', async () => {
    const { user, backend } = await renderApp();
    await joinCousins(user);
    expect((await backend.activeAccount())?.server_url).toBe('https://cousins.example');
    expect((await backend.listAccounts()).length).toBe(2);
  });

  it('a clicked notification opens its conversation', async () => {
    const { backend } = await renderApp();
    backend.simulateNotificationClick('c2');
    await waitFor(() => expect(screen.getByTestId('channel-title').textContent).toBe('#random'));
  });

  it('shows a clear error for a bad invite and for unreachable servers', async () => {
    const { user } = await renderApp({ signedIn: false });
    await user.type(await screen.findByLabelText('Invite link or server address'), 'https://nowhere.invalid{Enter}');
    expect((await screen.findByRole('alert')).textContent).toBe('Could not reach that server.');
    await user.clear(screen.getByLabelText('Invite link or server address'));
    await user.type(screen.getByLabelText('Invite link or server address'), 'https://hearth.example/invite/EXPIRED{Enter}');
    await user.type(await screen.findByLabelText('Username'), 'zoe');
    await user.type(screen.getByLabelText('Password'), 'correct horse{Enter}');
    expect((await screen.findByRole('alert')).textContent).toBe('This invite is not valid any more.');
  });

  it('shows the connection state only when not connected', async () => {
    const { backend } = await renderApp();
    expect(screen.queryByTestId('connection-status')).toBeNull();
    backend.simulateStatus('reconnecting');
    expect((await screen.findByTestId('connection-status')).textContent).toContain('Reconnecting');
    backend.simulateStatus('connected');
    await waitFor(() => expect(screen.queryByTestId('connection-status')).toBeNull());
  });

  it('opens only http(s) links, through the backend, after a click', async () => {
    const { backend, user } = await renderApp();
    backend.simulateIncoming('c1', 'u2', 'see https://example.com/page and [bad](javascript:alert(1))');
    const link = await screen.findByRole('link', { name: 'https://example.com/page' });
    expect(backend.opened).toEqual([]);
    await user.click(link);
    expect(backend.opened).toEqual(['https://example.com/page']);
    await user.click(screen.getByText(/\[bad\]/));
    expect(backend.opened).toEqual(['https://example.com/page']);
  });

  it('Copy link copies a message link that, sent in another channel and clicked, jumps back to the message', async () => {
    const { backend, hearth, user } = await renderApp();
    const original = (await screen.findByText('Who is bringing snacks on Saturday?', { selector: '.markdown p' })).closest('article')!;
    await user.click(within(original as HTMLElement).getByTestId('copy-message-link'));
    expect(await screen.findByText('Link to the message copied.')).toBeTruthy();
    const link = await navigator.clipboard.readText();
    const target = backend.messageWith('c1', 'Who is bringing snacks on Saturday?')!;
    expect(parseMessageLink(link)).toEqual({ serverUrl: 'https://hearth.example', channelId: 'c1', messageId: target.id });

    await hearth.openChannel('c2');
    await waitFor(() => expect(screen.getByTestId('channel-title').textContent).toBe('#random'));
    backend.simulateIncoming('c2', 'u2', `the plan is here: ${link}`);
    await user.click(await screen.findByRole('link', { name: link }));
    await waitFor(() => expect(screen.getByTestId('channel-title').textContent).toBe('#general'));
    const shown = (await screen.findByText('Who is bringing snacks on Saturday?', { selector: '.markdown p' })).closest('article')!;
    expect(shown.classList.contains('highlight')).toBe(true);
    expect(backend.opened).toEqual([]);
  });

  it('a message link from outside jumps; one to a hidden channel, a gone message or an unknown server says so', async () => {
    const { backend } = await renderApp();
    const target = backend.messageWith('c1', 'Welcome to **Hearth**, everyone!')!;
    backend.simulateLink(messageLink('https://hearth.example/', 'c1', target.id));
    const shown = (await screen.findByText('Hearth', { selector: 'strong' })).closest('article')!;
    await waitFor(() => expect(shown.classList.contains('highlight')).toBe(true));

    backend.simulateLink(messageLink('https://hearth.example', 'c999', target.id));
    expect(await screen.findByText('You cannot see that conversation.')).toBeTruthy();
    backend.simulateLink(messageLink('https://hearth.example', 'c1', '999999999'));
    expect(await screen.findByText('That message no longer exists.')).toBeTruthy();
    backend.simulateLink(messageLink('https://elsewhere.example', 'c1', target.id));
    expect(await screen.findByText('That link is for a server you have not joined in this app.')).toBeTruthy();
    backend.simulateLink('hearth://message?server=https%3A%2F%2Fhearth.example&channel=c1');
    expect(await screen.findByText('That link to a message is incomplete or damaged.')).toBeTruthy();
    // The pane is whole: the channel still shows its messages.
    expect(screen.getByTestId('channel-title').textContent).toBe('#general');
    expect(screen.queryByText(/Here is the list/)).not.toBeNull();
  });

  it('a link to a message on another server the app knows switches to that account first', async () => {
    const { user, backend } = await renderApp();
    await joinCousins(user);
    expect((await backend.activeAccount())?.server_url).toBe('https://cousins.example');

    const target = backend.messageWith('c1', 'Who is bringing snacks on Saturday?')!;
    backend.simulateLink(messageLink('https://hearth.example', 'c1', target.id));
    await waitFor(async () => expect((await backend.activeAccount())?.server_url).toBe('https://hearth.example'));
    const shown = (await screen.findByText('Who is bringing snacks on Saturday?', { selector: '.markdown p' })).closest('article')!;
    await waitFor(() => expect(shown.classList.contains('highlight')).toBe(true));
  });

  it('changes theme and language from settings, and Esc closes them', async () => {
    const { backend, user } = await renderApp();
    await user.click(screen.getByRole('button', { name: 'User settings' }));
    await user.click(screen.getByLabelText('Light'));
    expect(document.documentElement.dataset.theme).toBe('light');
    expect(backend.settings.theme).toBe('light');

    await user.selectOptions(screen.getByRole('combobox', { name: 'Language' }), 'fr');
    expect(await screen.findByText('Paramètres')).toBeTruthy();
    expect(backend.settings.language).toBe('fr');
    await user.keyboard('{Escape}');
    expect(screen.queryByText('Paramètres')).toBeNull();
    expect(screen.getByText('Salons textuels')).toBeTruthy();
  });

  it('Ctrl+F searches the server and Esc closes the results', async () => {
    const { backend, user } = await renderApp();
    await user.keyboard('{Control>}f{/Control}');
    expect(document.activeElement).toBe(screen.getByTestId('search-input'));
    await user.keyboard('snacks{Enter}');
    expect(await screen.findByText('1 results')).toBeTruthy();
    expect(backend.searches).toEqual(['snacks']);
    await user.keyboard('{Escape}');
    expect(screen.queryByTestId('search-panel')).toBeNull();
    expect((screen.getByTestId('search-input') as HTMLInputElement).value).toBe('');
  });

  it('updates a member’s presence dot', async () => {
    const { backend } = await renderApp();
    const dave = () => document.querySelector('.member[data-user-id="u4"] .presence-dot')!;
    expect(dave().classList.contains('offline')).toBe(true);
    backend.simulatePresence('u4', 'dnd');
    await waitFor(() => expect(dave().classList.contains('dnd')).toBe(true));
  });
});
