// Browser test of the built UI (mock mode): serves dist-mock with `vite preview`, drives Debian's
// Chromium through playwright-core, and checks the main flow end to end:
// register via invite -> channels -> send (pending, then acked) -> receive -> DM -> voice (join,
// speaking, mute, network view, per-user volume, voice settings) -> theme; then, on a second
// page with a 3,000-message channel (`?filler=3000`), scrolling to its beginning keeps a bounded
// window of rows in the DOM and the rows in view still, and "Jump to present" comes back.
// Screenshots go to ui/test-results/. Exit code 0 when every step passed. Serving, the browser
// and failure reports are in ./harness.mjs.

import path from 'node:path';
import { check, resultsDir, run } from './harness.mjs';

const TIMEOUT = 15_000;

/** Messages before the recent conversation in the long-history check, and the pane's bound. */
const LONG_FILLER = 3000;
const WINDOW_ROWS = 200;

/**
 * In the page: holds the message pane at the top until the channel's beginning shows, as a
 * reader dragging the scrollbar up would. After each step it checks that the rows that were in
 * view are where they were (the window grew above them) and counts the rows in the DOM.
 */
async function scrollToChannelStart({ limitMs }) {
  const pane = document.querySelector('[data-testid=message-pane]');
  const rows = () => [...pane.querySelectorAll(':scope > [data-row-key]')];
  const frame = () => new Promise((resolve) => requestAnimationFrame(() => resolve()));
  const inView = () => {
    const top = pane.getBoundingClientRect().top;
    const bottom = top + pane.clientHeight;
    return new Map(
      rows()
        .map((r) => [r.dataset.rowKey, r.getBoundingClientRect()])
        .filter(([, box]) => box.bottom > top && box.top < bottom)
        .map(([key, box]) => [key, box.top]),
    );
  };
  const t0 = performance.now();
  const moved = [];
  let maxRows = 0;
  let steps = 0;
  while (!pane.querySelector('.channel-start')) {
    if (performance.now() - t0 > limitMs) return { error: 'timed out', maxRows, steps, loaded: Number(pane.dataset.loadedCount), moved };
    pane.scrollTop = 0;
    const before = inView();
    const first = rows()[0]?.dataset.rowKey;
    // Wait for the window to grow above (or the beginning to show).
    for (let f = 0; f < 120 && rows()[0]?.dataset.rowKey === first && !pane.querySelector('.channel-start'); f++) await frame();
    steps += 1;
    maxRows = Math.max(maxRows, rows().length);
    const after = new Map(rows().map((r) => [r.dataset.rowKey, r.getBoundingClientRect().top]));
    for (const [key, top] of before) {
      if (after.has(key) && Math.abs(after.get(key) - top) > 1) moved.push({ step: steps, key, before: top, after: after.get(key) });
    }
  }
  return { ms: performance.now() - t0, maxRows, steps, loaded: Number(pane.dataset.loadedCount), moved };
}

process.exitCode = await run('main flow', async ({ url, browser, errors, at, setPage }) => {
  let page;
  {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, locale: 'en-US' });
    page = await context.newPage();
    setPage(page);
    page.setDefaultTimeout(TIMEOUT);
    page.on('pageerror', (err) => errors.push(`pageerror: ${err.message}`));
    page.on('console', (msg) => msg.type() === 'error' && errors.push(`console: ${msg.text()}`));
    const mock = (fn, ...args) => page.evaluate(([src, a]) => new Function('m', 'args', src)(window.__hearthMock, a), [fn, args]);

    at('the welcome screen shows the app icon');
    await page.goto(url);
    // The icon itself (src-tauri/icons/128x128@2x.png, generated from icons/hearth.png), not an
    // emoji that is a blank box where no emoji font is installed.
    const logo = page.locator('.auth-logo img');
    await logo.waitFor();
    const drawn = await logo.evaluate((img) => img.decode().then(() => [img.naturalWidth, img.naturalHeight]));
    check(drawn[0] === 256 && drawn[1] === 256, `the logo is the 256 px app icon, got ${drawn}`);

    at('register via invite');
    await page.getByLabel('Invite link or server address').fill('hearth://join?server=https%3A%2F%2Fhearth.example&code=WELCOME');
    await page.keyboard.press('Enter');
    await page.getByText('Create your account on The Hearth').waitFor();
    check((await page.getByLabel('Invite code').inputValue()) === 'WELCOME', 'invite code prefilled from the link');
    await page.getByLabel('Username').fill('zoe');
    await page.getByLabel('Display name (optional)').fill('Zoë');
    await page.getByLabel('Password').fill('correct horse battery');
    await page.getByRole('button', { name: 'Create account' }).click();

    at('see channels');
    await page.getByTestId('channel-title').filter({ hasText: '#general' }).waitFor();
    for (const name of ['general', 'random', 'announcements', 'Lounge']) {
      await page.locator('.channel-list').getByText(name, { exact: true }).waitFor();
    }
    check((await page.getByTestId('me-name').textContent()) === 'Zoë', 'display name shown in the user panel');
    await page.getByText('Here is the list').waitFor();

    at('scroll up through history');
    const pane = page.getByTestId('message-pane');
    check((await page.getByText('Older message 1', { exact: true }).count()) === 0, 'only the newest page loaded at first');
    await pane.evaluate((el) => el.scrollTo(0, 0));
    await page.getByText('Older message 1', { exact: true }).waitFor();
    await page.getByText('This is the beginning of #general.').waitFor();
    // The view stays where the reader was instead of jumping to the new top.
    check((await pane.evaluate((el) => el.scrollTop)) > 0, 'scroll position kept after prepending a page');
    await pane.evaluate((el) => el.scrollTo(0, el.scrollHeight));

    at('send a message and see it acked');
    await mock('m.setAckDelay("manual")');
    const composer = page.getByTestId('composer');
    await composer.fill('Hello from **the browser**');
    await composer.press('Enter');
    const pending = page.getByTestId('pending-message');
    await pending.waitFor();
    check((await pending.textContent()).includes('Sending…'), 'pending message says Sending…');
    await mock('m.ackPending()');
    await pending.waitFor({ state: 'detached' });
    const sent = page.getByTestId('message').filter({ hasText: 'Hello from the browser' });
    await sent.waitFor();
    check((await sent.locator('strong').textContent()) === 'the browser', 'markdown rendered in the acked message');

    at('receive a simulated message');
    await mock('m.simulateTyping("c1", "u2")');
    await page.getByTestId('typing').filter({ hasText: 'Bob is typing…' }).waitFor();
    await mock('m.simulateIncoming("c1", "u2", "Welcome aboard, <@1>!")');
    const incoming = page.getByTestId('message').filter({ hasText: 'Welcome aboard' });
    await incoming.waitFor();
    check((await incoming.locator('.mention').textContent()) === '@Zoë', 'mention shown by name');
    await mock('m.simulateIncoming("c2", "u3", "over in random")');
    await page.locator('button[data-channel-id="c2"].unread').waitFor();
    await page.screenshot({ path: path.join(resultsDir, 'main-dark.png') });

    at('switch to a DM');
    await page.locator('button[data-channel-id="c5"]').click();
    await page.getByTestId('channel-title').filter({ hasText: 'Bob' }).waitFor();
    await page.getByText('can you call me later?').waitFor();

    at('quick switcher');
    await page.keyboard.press('Control+k');
    await page.getByTestId('switcher-input').fill('rand');
    await page.keyboard.press('Enter');
    await page.getByTestId('channel-title').filter({ hasText: '#random' }).waitFor();
    await page.getByText('over in random').waitFor();

    at('join a voice channel');
    await page.locator('button[data-voice-channel-id="c4"]').click();
    await page.getByTestId('voice-state').filter({ hasText: 'Voice connected' }).waitFor();
    await page.locator('[data-testid="voice-members-c4"] [data-user-id="1"]').waitFor();
    await page.locator('.voice-links [data-user-id="u3"] [data-grade="fair"]').waitFor();
    await mock('m.voice.simulateSpeaking("u2", true)');
    await page.locator('[data-testid="voice-members-c4"] [data-user-id="u2"][data-speaking="true"]').waitFor();
    await page.getByRole('button', { name: 'Mute', exact: true }).click();
    await page.locator('[data-testid="voice-members-c4"] [data-user-id="1"] [data-flag="muted"]').waitFor();
    check((await page.getByRole('button', { name: 'Mute', exact: true }).getAttribute('aria-pressed')) === 'true', 'mute button pressed');
    await page.screenshot({ path: path.join(resultsDir, 'voice-panel.png') });

    at('call network view');
    await page.getByRole('button', { name: 'Call network' }).click();
    const graph = page.getByTestId('network-graph');
    await graph.waitFor();
    check((await graph.locator('.net-node').count()) === 3, 'three members drawn');
    const relayed = graph.locator('.net-edge[data-path="relayed"] line');
    check((await relayed.getAttribute('stroke-dasharray')) !== null, 'relayed link dashed');
    check((await graph.locator('.net-edge[data-path="direct"] line').getAttribute('stroke-dasharray')) === null, 'direct link solid');
    await page.screenshot({ path: path.join(resultsDir, 'voice-network.png') });
    await page.keyboard.press('Escape');
    await page.getByTestId('network-view').waitFor({ state: 'detached' });

    at('per-user volume');
    await page.locator('[data-testid="voice-members-c4"] [data-user-id="u2"] button').click({ button: 'right' });
    const menu = page.getByRole('dialog', { name: 'Volume for Bob' });
    await menu.getByRole('slider').fill('150');
    await menu.getByTestId('volume-value').filter({ hasText: '150%' }).waitFor();
    check((await mock('return m.voice.settings.user_volumes.u2')) === 150, 'volume reached the backend');
    await page.keyboard.press('Escape');
    await menu.waitFor({ state: 'detached' });

    at('voice settings');
    await page.getByRole('button', { name: 'User settings' }).click();
    const voiceSection = page.getByRole('region', { name: 'Voice & audio' });
    await voiceSection.getByRole('combobox', { name: 'Input device' }).selectOption({ label: 'Blue Yeti (USB)' });
    await voiceSection.getByRole('radio', { name: 'Push to talk' }).check();
    await voiceSection.getByRole('button', { name: 'Change key' }).click();
    await page.keyboard.press('Control+Shift+KeyV');
    await voiceSection.getByTestId('ptt-key').filter({ hasText: 'Ctrl' }).waitFor();
    check((await mock('return m.voice.settings.ptt_key')) === 'Control+Shift+KeyV', 'push-to-talk key saved');
    await voiceSection.getByRole('button', { name: 'Test microphone' }).click();
    await page.waitForFunction(() => Number(document.querySelector('[data-testid="mic-meter"]')?.getAttribute('aria-valuenow')) > -60);
    await voiceSection.scrollIntoViewIfNeeded();
    await page.screenshot({ path: path.join(resultsDir, 'voice-settings.png') });
    await page.keyboard.press('Escape');
    await page.getByRole('dialog').waitFor({ state: 'detached' });
    check((await mock('return m.voice.micTestRunning')) === false, 'mic test stopped with the settings');

    at('change theme');
    await page.getByRole('button', { name: 'User settings' }).click();
    await page.getByLabel('Light').check();
    await page.waitForFunction(() => document.documentElement.dataset.theme === 'light');
    const bg = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
    check(bg === 'rgb(255, 255, 255)', `light background, got ${bg}`);
    await page.keyboard.press('Escape');
    await page.getByRole('dialog').waitFor({ state: 'detached' });
    await page.screenshot({ path: path.join(resultsDir, 'main-light.png') });

    at('long history: bounded window up to the channel start');
    const long = await context.newPage();
    setPage(long);
    long.setDefaultTimeout(TIMEOUT);
    long.on('pageerror', (err) => errors.push(`pageerror: ${err.message}`));
    long.on('console', (msg) => msg.type() === 'error' && errors.push(`console: ${msg.text()}`));
    await long.goto(`${url}?filler=${LONG_FILLER}`);
    await long.getByText('Here is the list').waitFor();
    const walk = await long.evaluate(scrollToChannelStart, { limitMs: 120_000 });
    check(!walk.error, `${walk.error} (${JSON.stringify(walk)})`);
    check(walk.maxRows <= WINDOW_ROWS, `at most ${WINDOW_ROWS} rows in the DOM, saw ${walk.maxRows}`);
    check(walk.loaded === LONG_FILLER + 5, `every message loaded, got ${walk.loaded}`);
    check(walk.moved.length === 0, `the rows in view stayed still: ${JSON.stringify(walk.moved.slice(0, 5))}`);
    await long.getByText('Older message 1', { exact: true }).waitFor();
    console.log(
      `browser tests: ${LONG_FILLER} messages scrolled to the top in ${Math.round(walk.ms)} ms, ` +
        `${walk.steps} steps, at most ${walk.maxRows} rows in the DOM`,
    );
    await long.screenshot({ path: path.join(resultsDir, 'long-history-start.png') });
    await long.getByRole('button', { name: 'Jump to present' }).click();
    await long.getByText('Here is the list').waitFor();
    await long.getByRole('button', { name: 'Jump to present' }).waitFor({ state: 'detached' });
    const pane2 = long.getByTestId('message-pane');
    check(await pane2.evaluate((el) => el.scrollHeight - el.scrollTop - el.clientHeight < 2), 'back at the bottom');
    await long.close();
  }
});
