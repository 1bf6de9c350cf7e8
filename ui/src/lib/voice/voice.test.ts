import { fireEvent, screen, waitFor, within } from '@testing-library/svelte';
import { describe, expect, it } from 'vitest';
import { renderApp } from '../app/testing';
import { grade, ms, percent, worst } from './quality';
import { acceleratorFromEvent, acceleratorParts, typesCharacter } from './shortcut';

const voiceButton = (id: string) => document.querySelector(`button[data-voice-channel-id="${id}"]`) as HTMLButtonElement;
const inList = (channelId: string, userId: string) =>
  document.querySelector(`[data-testid="voice-members-${channelId}"] [data-user-id="${userId}"]`) as HTMLElement | null;
const flags = (channelId: string, userId: string) =>
  [...(inList(channelId, userId)?.querySelectorAll('[data-flag]') ?? [])].map((e) => (e as HTMLElement).dataset.flag);

async function joinLounge() {
  const app = await renderApp();
  await app.user.click(voiceButton('c4'));
  await waitFor(() => expect(screen.getByTestId('voice-state').textContent).toBe('Voice connected'));
  // Both peers' links are up once their bars have a grade.
  await waitFor(() => expect(document.querySelectorAll('.voice-links [data-grade="pending"]')).toHaveLength(0));
  return app;
}

describe('voice channels', () => {
  it('joins a voice channel on click: the panel appears and I show in the channel list', async () => {
    const { backend, user } = await renderApp();
    // Before: Bob and Carol are in the Lounge, I am not, and there is no panel.
    expect(inList('c4', 'u2')).not.toBeNull();
    expect(inList('c4', '1')).toBeNull();
    expect(screen.queryByTestId('voice-panel')).toBeNull();

    await user.click(voiceButton('c4'));
    const panel = await screen.findByTestId('voice-panel');
    expect(backend.voice.calls).toContainEqual(['join', 'c4']);
    expect(within(panel).getByText('Lounge')).toBeTruthy();
    await waitFor(() => expect(screen.getByTestId('voice-state').textContent).toBe('Voice connected'));
    await waitFor(() => expect(inList('c4', '1')).not.toBeNull());
    expect(voiceButton('c4').getAttribute('aria-current')).toBe('true');

    // One quality indicator per peer: Bob direct and close, Carol relayed and further away.
    const bob = await within(panel).findByRole('img', { name: /^Bob: Good connection — RTT 24 ms, loss 0.4%, jitter 3 ms, direct$/ });
    expect(bob.dataset.grade).toBe('good');
    const carol = within(panel).getByRole('img', { name: /^Carol: .* relayed$/ });
    expect(carol.dataset.grade).toBe('fair');

    // The engine rejoins after the gateway drops; the panel says so.
    backend.simulateStatus('reconnecting');
    await waitFor(() => expect(screen.getByTestId('voice-state').textContent).toBe('Reconnecting…'));
    backend.simulateStatus('connected');
    await waitFor(() => expect(screen.getByTestId('voice-state').textContent).toBe('Voice connected'));

    await user.click(within(panel).getByRole('button', { name: 'Disconnect' }));
    await waitFor(() => expect(screen.queryByTestId('voice-panel')).toBeNull());
    expect(inList('c4', '1')).toBeNull();
    expect(backend.voice.calls.at(-1)).toEqual(['leave']);
  });

  it('shows someone joining a channel and a link to them being made', async () => {
    const { backend } = await joinLounge();
    backend.voice.simulateJoin('u4', 'c4');
    await waitFor(() => expect(inList('c4', 'u4')).not.toBeNull());
    const links = () => document.querySelector('.voice-links [data-user-id="u4"] [data-grade]') as HTMLElement;
    await waitFor(() => expect(links().dataset.grade).toBe('poor'));
    backend.voice.simulateLeave('u4');
    await waitFor(() => expect(inList('c4', 'u4')).toBeNull());
    expect(document.querySelector('.voice-links [data-user-id="u4"]')).toBeNull();
  });

  it('lights the speaking ring from the server outside a call and from what this device hears inside', async () => {
    const { backend, user } = await renderApp();
    const ring = () => inList('c4', 'u2')!.dataset.speaking;
    expect(ring()).toBe('false');
    // Not in the call: the server's flag drives the ring.
    backend.voice.simulateFlags('u2', { speaking: true });
    await waitFor(() => expect(ring()).toBe('true'));
    backend.voice.simulateFlags('u2', { speaking: false });
    await waitFor(() => expect(ring()).toBe('false'));

    await user.click(voiceButton('c4'));
    await waitFor(() => expect(screen.getByTestId('voice-state').textContent).toBe('Voice connected'));
    // In the call: local speaking events drive it, even against a stale server flag.
    backend.voice.emitSpeaking([{ user_id: 'u2', speaking: true, level_dbfs: -20 }]);
    await waitFor(() => expect(ring()).toBe('true'));
    expect(inList('c4', 'u2')!.classList.contains('speaking')).toBe(true);
    backend.voice.simulateFlags('u2', { speaking: true });
    backend.voice.emitSpeaking([{ user_id: 'u2', speaking: false, level_dbfs: -100 }]);
    await waitFor(() => expect(ring()).toBe('false'));
    // Several members in one batch.
    backend.voice.emitSpeaking([
      { user_id: 'u2', speaking: true, level_dbfs: -18 },
      { user_id: 'u3', speaking: true, level_dbfs: -30 },
    ]);
    await waitFor(() => expect(inList('c4', 'u3')!.dataset.speaking).toBe('true'));
    expect(ring()).toBe('true');
  });

  it('mutes and deafens through the backend and shows the flags everyone sees', async () => {
    const { backend, user } = await joinLounge();
    // Carol joined muted (from Ready).
    expect(flags('c4', 'u3')).toEqual(['muted']);
    const mute = screen.getByRole('button', { name: 'Mute' });
    const deafen = screen.getByRole('button', { name: 'Deafen' });
    expect(mute.getAttribute('aria-pressed')).toBe('false');

    await user.click(mute);
    expect(backend.voice.calls).toContainEqual(['setMute', true]);
    await waitFor(() => expect(mute.getAttribute('aria-pressed')).toBe('true'));
    await waitFor(() => expect(flags('c4', '1')).toEqual(['muted']));

    await user.click(mute);
    await waitFor(() => expect(flags('c4', '1')).toEqual([]));

    await user.click(deafen);
    expect(backend.voice.calls.at(-1)).toEqual(['setDeafen', true]);
    await waitFor(() => expect(flags('c4', '1')).toEqual(['muted', 'deafened']));
    expect(deafen.getAttribute('aria-pressed')).toBe('true');
    expect(mute.getAttribute('aria-pressed')).toBe('true');

    // Unmuting while deafened undeafens too.
    await user.click(mute);
    expect(backend.voice.calls.at(-1)).toEqual(['setMute', false]);
    await waitFor(() => expect(flags('c4', '1')).toEqual([]));
    expect(deafen.getAttribute('aria-pressed')).toBe('false');

    // Another member's flags arrive as VoiceStateUpdate.
    backend.voice.simulateFlags('u2', { muted: true, deafened: true });
    await waitFor(() => expect(flags('c4', 'u2')).toEqual(['muted', 'deafened']));
  });

  it('sets a member’s volume from their menu, 0–200 %', async () => {
    const { backend, user } = await renderApp();
    const bob = inList('c4', 'u2')!.querySelector('button')!;
    await fireEvent.contextMenu(bob, { clientX: 120, clientY: 300 });
    const menu = await screen.findByRole('dialog', { name: 'Volume for Bob' });
    const slider = within(menu).getByRole('slider', { name: 'User volume' }) as HTMLInputElement;
    expect(slider.min).toBe('0');
    expect(slider.max).toBe('200');
    expect(slider.value).toBe('100');
    await waitFor(() => expect(document.activeElement).toBe(slider));

    await fireEvent.input(slider, { target: { value: '150' } });
    expect(backend.voice.calls.at(-1)).toEqual(['setUserVolume', 'u2', 150]);
    expect(within(menu).getByTestId('volume-value').textContent).toBe('150%');
    expect(backend.voice.settings.user_volumes).toEqual({ u2: 150 });

    await user.keyboard('{Escape}');
    await waitFor(() => expect(screen.queryByTestId('volume-menu')).toBeNull());

    // Opened again with a click (the keyboard route), it remembers; Reset goes back to 100.
    await user.click(bob);
    const again = await screen.findByRole('dialog', { name: 'Volume for Bob' });
    expect((within(again).getByRole('slider') as HTMLInputElement).value).toBe('150');
    await user.click(within(again).getByRole('button', { name: 'Reset to 100%' }));
    expect(backend.voice.calls.at(-1)).toEqual(['setUserVolume', 'u2', 100]);
    expect(backend.voice.settings.user_volumes).toEqual({});
    // My own row has no menu.
    await user.click(document.querySelector('.popover-backdrop')!);
    await user.click(voiceButton('c4'));
    await waitFor(() => expect(inList('c4', '1')).not.toBeNull());
    expect((inList('c4', '1')!.querySelector('button') as HTMLButtonElement).disabled).toBe(true);
  });

  it('draws the call network: members as nodes, links coloured by quality, relayed ones dashed', async () => {
    const { backend, user } = await joinLounge();
    await user.click(screen.getByRole('button', { name: 'Call network' }));
    const dialog = await screen.findByTestId('network-view');
    const graph = within(dialog).getByRole('img', { name: /Graph of the call/ });
    expect([...graph.querySelectorAll('.net-node')].map((n) => (n as SVGElement).dataset.userId).sort()).toEqual(['1', 'u2', 'u3']);
    const edge = (id: string) => graph.querySelector(`.net-edge[data-user-id="${id}"]`) as SVGGElement;
    expect(graph.querySelectorAll('.net-edge')).toHaveLength(2);
    expect(edge('u2').dataset.path).toBe('direct');
    expect(edge('u2').querySelector('line')!.hasAttribute('stroke-dasharray')).toBe(false);
    expect(edge('u2').dataset.grade).toBe('good');
    expect(edge('u3').dataset.path).toBe('relayed');
    expect(edge('u3').querySelector('line')!.getAttribute('stroke-dasharray')).toBeTruthy();
    expect(edge('u3').textContent).toBe('86 ms');
    const row = within(dialog).getByRole('row', { name: /Carol/ });
    expect(row.textContent).toContain('relayed');
    expect(row.textContent).toContain('2.1%');

    // A link that fails turns red; a speaking member's node gets a ring.
    backend.voice.simulateQuality({ user_id: 'u2', state: 'failed', rtt_ms: null, loss: 1, jitter_ms: null, path: 'unknown' });
    await waitFor(() => expect(edge('u2').dataset.grade).toBe('failed'));
    backend.voice.emitSpeaking([{ user_id: 'u3', speaking: true, level_dbfs: -20 }]);
    await waitFor(() => expect(graph.querySelector('.net-node[data-user-id="u3"]')!.classList.contains('speaking')).toBe(true));

    await user.keyboard('{Escape}');
    await waitFor(() => expect(screen.queryByTestId('network-view')).toBeNull());
  });
});

describe('voice & audio settings', () => {
  async function openSettings() {
    const app = await renderApp();
    await app.user.click(screen.getByRole('button', { name: 'User settings' }));
    const section = await screen.findByRole('region', { name: 'Voice & audio' });
    await within(section).findByRole('option', { name: 'Blue Yeti (USB)' });
    return { ...app, section };
  }

  it('chooses input and output devices', async () => {
    const { backend, user, section } = await openSettings();
    const input = within(section).getByRole('combobox', { name: 'Input device' }) as HTMLSelectElement;
    expect(input.value).toBe('');
    await user.selectOptions(input, 'Blue Yeti (USB)');
    await waitFor(() => expect(backend.voice.settings.input_device).toBe('mic-yeti'));
    await user.selectOptions(within(section).getByRole('combobox', { name: 'Output device' }), 'Headset');
    await waitFor(() => expect(backend.voice.settings.output_device).toBe('out-headset'));
    await user.selectOptions(input, 'System default');
    await waitFor(() => expect(backend.voice.settings.input_device).toBeNull());

    await user.click(within(section).getByRole('checkbox', { name: 'Noise suppression' }));
    await waitFor(() => expect(backend.voice.settings.noise_suppression).toBe(false));
    await user.click(within(section).getByRole('checkbox', { name: 'Echo cancellation' }));
    await waitFor(() => expect(backend.voice.settings.echo_cancellation).toBe(false));
    await user.click(within(section).getByRole('checkbox', { name: 'Join and leave sounds' }));
    await waitFor(() => expect(backend.voice.settings.sounds).toBe(false));
  });

  it('tells the user when an audio device fails mid-call', async () => {
    const { backend } = await joinLounge();
    backend.voice.simulateDeviceError('input');
    await screen.findByText(/The audio device could not be opened/);
  });

  it('switches to push-to-talk and records the key binding; a taken shortcut is refused', async () => {
    const { backend, user, section } = await openSettings();
    expect(within(section).queryByTestId('ptt-key')).toBeNull();
    await user.click(within(section).getByRole('radio', { name: 'Push to talk' }));
    await waitFor(() => expect(backend.voice.settings.input_mode).toBe('push_to_talk'));
    const field = within(section).getByTestId('ptt-key');
    expect(field.textContent).toContain('Not set');
    expect(within(section).getByText('Choose a key to talk with.')).toBeTruthy();

    await user.click(within(section).getByRole('button', { name: 'Change key' }));
    expect(field.textContent).toContain('Press the key combination');
    await user.keyboard('{Control>}{Shift>}v{/Shift}{/Control}');
    await waitFor(() => expect(backend.voice.settings.ptt_key).toBe('Control+Shift+KeyV'));
    expect([...field.querySelectorAll('kbd')].map((k) => k.textContent)).toEqual(['Ctrl', 'Shift', 'V']);
    expect(within(section).getByText('Works while another app has the focus.')).toBeTruthy();

    // Esc while recording cancels the recording, not the settings.
    await user.click(within(section).getByRole('button', { name: 'Change key' }));
    await user.keyboard('{Escape}');
    expect(screen.getByRole('dialog', { name: 'Settings' })).toBeTruthy();
    expect(backend.voice.settings.ptt_key).toBe('Control+Shift+KeyV');

    // The shell refuses a shortcut another app holds: the old one stays, the user is told.
    await user.click(within(section).getByRole('button', { name: 'Change key' }));
    await user.keyboard('{Meta>}l{/Meta}');
    expect((await within(section).findByRole('alert')).textContent).toMatch(/another app may have taken it/);
    expect(backend.voice.settings.ptt_key).toBe('Control+Shift+KeyV');
    expect([...field.querySelectorAll('kbd')].map((k) => k.textContent)).toEqual(['Ctrl', 'Shift', 'V']);

    // A bare character key is allowed with a warning.
    await user.click(within(section).getByRole('button', { name: 'Change key' }));
    await user.keyboard('[Backquote]');
    await waitFor(() => expect(backend.voice.settings.ptt_key).toBe('Backquote'));
    expect(within(section).getByText(/stop typing its character/)).toBeTruthy();

    await user.click(within(section).getByRole('button', { name: 'Clear' }));
    await waitFor(() => expect(backend.voice.settings.ptt_key).toBeNull());
  });

  it('runs the mic test under the sensitivity slider and stops it when the settings close', async () => {
    const { backend, user, section } = await openSettings();
    const meter = within(section).getByRole('meter', { name: 'Microphone level' });
    expect(meter.getAttribute('aria-valuenow')).toBe('-80');
    await user.click(within(section).getByRole('button', { name: 'Test microphone' }));
    expect(backend.voice.micTestRunning).toBe(true);
    await waitFor(() => expect(Number(meter.getAttribute('aria-valuenow'))).toBeGreaterThan(-80));

    const slider = within(section).getByRole('slider', { name: 'Input sensitivity' }) as HTMLInputElement;
    expect(slider.value).toBe('-50');
    expect([slider.min, slider.max]).toEqual(['-80', '-20']);
    await fireEvent.input(slider, { target: { value: '-35' } });
    await fireEvent.change(slider);
    await waitFor(() => expect(backend.voice.settings.input_threshold_dbfs).toBe(-35));
    expect((meter.querySelector('.mic-meter-marker') as HTMLElement).style.left).toBe(`${((-35 + 80) / 80) * 100}%`);

    await user.keyboard('{Escape}');
    await waitFor(() => expect(screen.queryByRole('dialog', { name: 'Settings' })).toBeNull());
    await waitFor(() => expect(backend.voice.micTestRunning).toBe(false));
  });
});

describe('voice helpers', () => {
  it('grades links and picks the worst', () => {
    const q = { user_id: 'u', state: 'connected', rtt_ms: 30, loss: 0, jitter_ms: 2, path: 'direct' } as const;
    expect(grade(q)).toBe('good');
    expect(grade({ ...q, rtt_ms: 120 })).toBe('fair');
    expect(grade({ ...q, loss: 0.1 })).toBe('poor');
    expect(grade({ ...q, state: 'failed' })).toBe('failed');
    expect(grade({ ...q, state: 'connecting' })).toBe('pending');
    expect(grade(null)).toBe('pending');
    expect(worst(['good', 'fair', 'good'])).toBe('fair');
    expect(worst(['good', 'failed'])).toBe('failed');
  });

  it('formats link numbers in the user’s language', () => {
    expect(percent(0.021, 'en')).toBe('2.1%');
    expect(percent(0.021, 'fr')).toMatch(/^2,1\s%$/);
    expect(percent(0.25, 'en')).toBe('25%');
    expect(ms(86.4, 'en')).toBe('86 ms');
    expect(ms(null, 'en')).toBe('–');
  });

  it('turns key presses into accelerators the global-shortcut plugin parses', () => {
    const key = (code: string, mods: Partial<Record<'ctrlKey' | 'altKey' | 'shiftKey' | 'metaKey', boolean>> = {}) =>
      acceleratorFromEvent({ code, ctrlKey: false, altKey: false, shiftKey: false, metaKey: false, ...mods });
    expect(key('KeyV', { ctrlKey: true, shiftKey: true })).toBe('Control+Shift+KeyV');
    expect(key('F13')).toBe('F13');
    expect(key('Digit1', { altKey: true, metaKey: true })).toBe('Alt+Super+Digit1');
    expect(key('ShiftLeft', { shiftKey: true })).toBeNull();
    expect(key('ControlRight', { ctrlKey: true })).toBeNull();
    expect(acceleratorParts('Control+Alt+ArrowUp')).toEqual(['Control', 'Alt', '↑']);
    expect(acceleratorParts('Shift+Digit4')).toEqual(['Shift', '4']);
    expect(typesCharacter('KeyV')).toBe(true);
    expect(typesCharacter('F13')).toBe(false);
    expect(typesCharacter('Control+KeyV')).toBe(false);
  });
});
