// Browser check of search and jumps at 1366x768, on its own page with a 600-message #general
// (`?filler=600`): Ctrl+F, a filter chip, a search through the mock server, the hit's snippet
// marked, opening a hit far back in history (the window around it loaded and the message
// highlighted in view), paging down towards the present, a reply quote jumping to its parent,
// and Ctrl+K to a person (their DM opens). `npm run test:browser` runs it after run.mjs.

import path from 'node:path';
import { check, inPaneView, openPage, resultsDir, run } from './harness.mjs';

const FILLER = 600;

const TIMEOUT = 15_000;

process.exitCode = await run('search', async ({ url, browser, errors, at: setStep, setPage }) => {
  const { context, page, mock } = await openPage(browser, { errors, setPage, timeout: TIMEOUT });
  try {
    await page.goto(`${url}?filler=${FILLER}`);
    await page.getByText('Here is the list').waitFor();

    setStep('search: Ctrl+F, filters, results');
    await page.keyboard.press('Control+f');
    const input = page.getByTestId('search-input');
    check(await input.evaluate((el) => el === document.activeElement), 'Ctrl+F focuses the search box');
    const panel = page.getByTestId('search-panel');
    await panel.locator('[data-filter="in:"]').click();
    await page.keyboard.type('gen');
    await panel.getByRole('button', { name: '#general' }).click();
    check((await input.inputValue()) === 'in:general ', `in: completed, got "${await input.inputValue()}"`);
    await page.keyboard.type('message 42');
    await page.keyboard.press('Enter');
    const hit = panel.getByTestId('search-hit').filter({ hasText: /Older message 42$/ });
    await hit.waitFor();
    check((await hit.locator('mark').allTextContents()).join('|') === 'message|42', 'the words are marked');
    const box = await panel.boundingBox();
    check(box && box.x + box.width <= 1366 && box.width >= 280, `results panel fits at 1366 px: ${JSON.stringify(box)}`);
    await page.screenshot({ path: path.join(resultsDir, 'search-results.png') });

    setStep('search: open a hit far back in history');
    await hit.click();
    // Only 17..67 are loaded around it: no "Older message 42x" to mistake it for.
    const target = page.locator('[data-testid=message].highlight').filter({ hasText: 'Older message 42' });
    await target.waitFor();
    const inView = await inPaneView(target);
    check(inView, 'the hit is in view');
    const loaded = Number(await page.getByTestId('message-pane').getAttribute('data-loaded-count'));
    check(loaded === 51, `the window around the hit is loaded (51), got ${loaded}`);
    await page.getByTestId('jump-to-present').waitFor();
    await page.screenshot({ path: path.join(resultsDir, 'search-jump.png') });

    setStep('search: scroll down to the present');
    for (let i = 0; i < 200 && (await page.getByText('Here is the list').count()) === 0; i++) {
      await page.getByTestId('message-pane').evaluate((el) => el.scrollTo(0, el.scrollHeight));
      await page.waitForTimeout(30);
    }
    await page.getByText('Here is the list').waitFor();
    const all = Number(await page.getByTestId('message-pane').getAttribute('data-loaded-count'));
    check(all === FILLER + 5 - 41 + 25, `paged to the present without gaps or repeats: ${all}`);
    await page.getByTestId('jump-to-present').waitFor({ state: 'detached' });

    setStep('reply quote jumps to its parent');
    await mock(`const p = m.messageWith('c1', 'Older message 7'); m.simulateIncoming('c1', 'u3', 'about that old one', p.id);`);
    const reply = page.getByTestId('message').filter({ hasText: 'about that old one' });
    await reply.getByTestId('reply-quote').click();
    await page.locator('[data-testid=message].highlight').filter({ hasText: 'Older message 7' }).waitFor();
    const flashed = await page.locator('[data-testid=message].highlight').textContent();
    check(/Older message 7\s*$/.test(flashed), `the parent is highlighted, got ${flashed}`);

    setStep('Ctrl+K to a person');
    await page.keyboard.press('Escape');
    await page.keyboard.press('Control+k');
    await page.getByTestId('switcher-input').fill('dve');
    await page.keyboard.press('Enter');
    await page.getByTestId('channel-title').filter({ hasText: 'Dave' }).waitFor();
    await page.screenshot({ path: path.join(resultsDir, 'switcher-dm.png') });
  } finally {
    await context.close();
  }
});
