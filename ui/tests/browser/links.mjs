// Browser check of links to messages at 1366x768, on a 600-message #general (`?filler=600`):
// a search hit far back in history, its "Copy link" (the real clipboard of headless Chromium),
// back to the present, the link pasted into the composer with Ctrl+V and sent, the sent link
// clicked: the jump loads the history around the message and highlights it in view. A link
// to a channel this member cannot see says so and leaves the pane as it was.
// `npm run test:browser` runs it after search.mjs.

import path from 'node:path';
import { check, inPaneView, openPage, resultsDir, run } from './harness.mjs';

const TIMEOUT = 15_000;

process.exitCode = await run('links', async ({ url, browser, errors, at: setStep, setPage }) => {
  const { context, page, mock } = await openPage(browser, { errors, setPage, timeout: TIMEOUT });
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: new URL(url).origin });
  const highlighted = page.locator('[data-testid=message].highlight').filter({ hasText: /Older message 42\s*$/ });
  try {
    await page.goto(`${url}?filler=600`);
    await page.getByText('Here is the list').waitFor();

    setStep('links: reach an old message through search');
    await page.keyboard.press('Control+f');
    await page.keyboard.type('message 42');
    await page.keyboard.press('Enter');
    await page.getByTestId('search-panel').getByTestId('search-hit').filter({ hasText: /Older message 42\s*$/ }).click();
    await highlighted.waitFor();
    await page.keyboard.press('Escape');

    setStep('links: Copy link');
    await highlighted.hover();
    await highlighted.getByTestId('copy-message-link').click();
    await page.getByRole('status').filter({ hasText: 'Link to the message copied.' }).waitFor();
    const link = await page.evaluate(() => navigator.clipboard.readText());
    const id = await mock(`return m.messageWith('c1', 'Older message 42').id;`);
    check(
      link === `hearth://message?server=https%3A%2F%2Fhearth.example&channel=c1&message=${id}`,
      `the clipboard holds the message's link, got ${link}`,
    );

    setStep('links: paste into a message at the present and send it');
    await page.getByTestId('jump-to-present').click();
    await page.getByText('Here is the list').waitFor();
    await page.getByTestId('jump-to-present').waitFor({ state: 'detached' });
    await page.getByTestId('composer').click();
    await page.keyboard.type('the old plan: ');
    await page.keyboard.press('Control+v');
    const typed = await page.getByTestId('composer').inputValue();
    check(typed === `the old plan: ${link}`, `Ctrl+V pasted the link, composer holds ${typed}`);
    await page.keyboard.press('Enter');
    const sent = page.getByTestId('message').filter({ hasText: 'the old plan:' });
    const anchor = sent.locator('a.app-link');
    await anchor.waitFor();
    check((await anchor.getAttribute('href')) === link, 'the sent message links to the message');
    await page.screenshot({ path: path.join(resultsDir, 'links-sent.png') });

    setStep('links: click the link, jump to the message with history around it');
    await anchor.click();
    await highlighted.waitFor();
    const inView = await inPaneView(highlighted);
    check(inView, 'the linked message is in view');
    await page.getByText(/Older message 41\s*$/).waitFor();
    await page.getByText(/Older message 43\s*$/).waitFor();
    await page.getByTestId('jump-to-present').waitFor();
    check((await mock('return m.opened.length;')) === 0, 'nothing went to the system browser');
    await page.screenshot({ path: path.join(resultsDir, 'links-jump.png') });

    setStep('links: a link to a channel this member cannot see');
    await page.getByTestId('jump-to-present').click();
    await page.getByText('Here is the list').waitFor();
    await mock(
      `m.simulateIncoming('c1', 'u2', 'secret: hearth://message?server=https%3A%2F%2Fhearth.example&channel=c999&message=${id}');`,
    );
    await page.getByTestId('message').filter({ hasText: 'secret:' }).locator('a.app-link').click();
    await page.getByRole('status').filter({ hasText: 'You cannot see that conversation.' }).waitFor();
    check((await page.getByTestId('channel-title').textContent()) === '#general', 'still in #general');
    await page.getByText('Here is the list').waitFor();
  } finally {
    await context.close();
  }
});
