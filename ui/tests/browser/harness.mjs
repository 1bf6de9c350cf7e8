// What every browser test shares: the built mock UI served by `vite preview`, Debian's Chromium
// through playwright-core, a `check` that names what failed, and `run`, which reports the
// failing step with its page errors and a screenshot and returns the exit code.
//
// Knobs: HEARTH_CHROMIUM (browser binary, default /usr/bin/chromium), HEARTH_BROWSER_HEADED=1.

import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { preview } from 'vite';

export const uiDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const resultsDir = path.join(uiDir, 'test-results');

export function check(condition, message) {
  if (!condition) throw new Error(`check failed: ${message}`);
}

/**
 * Serves dist-mock and starts Chromium, then runs `body({ url, browser, errors, at, setPage })`:
 * `at(step)` names the current step, `setPage(page)` the page to screenshot on failure, and
 * `errors` collects page errors (the caller attaches listeners). Returns 0 or 1.
 */
/**
 * A page at a laptop's 1366x768 in English whose page errors and console errors are collected
 * in `errors`, with `mock(src)` to run code against the mock backend (`m` in `src`).
 */
export async function openPage(browser, { errors, setPage, timeout, context: options = {} }) {
  const context = await browser.newContext({ viewport: { width: 1366, height: 768 }, locale: 'en-US', ...options });
  const page = await context.newPage();
  setPage(page);
  page.setDefaultTimeout(timeout);
  page.on('pageerror', (err) => errors.push(`pageerror: ${err.message}`));
  page.on('console', (msg) => msg.type() === 'error' && errors.push(`console: ${msg.text()}`));
  const mock = (src) => page.evaluate((s) => new Function('m', s)(window.__hearthMock), src);
  return { context, page, mock };
}

/** Whether the message `locator` names lies wholly inside the message pane's visible box. */
export function inPaneView(locator) {
  return locator.evaluate((el) => {
    const pane = el.closest('[data-testid=message-pane]').getBoundingClientRect();
    const box = el.getBoundingClientRect();
    return box.top >= pane.top && box.bottom <= pane.bottom;
  });
}

export async function run(name, body) {
  await mkdir(resultsDir, { recursive: true });
  const server = await preview({
    root: uiDir,
    mode: 'mock',
    logLevel: 'warn',
    build: { outDir: 'dist-mock' },
    preview: { host: '127.0.0.1', port: 0, strictPort: false, open: false },
  });
  const url = `http://127.0.0.1:${server.httpServer.address().port}/`;
  const browser = await chromium.launch({
    executablePath: process.env.HEARTH_CHROMIUM ?? '/usr/bin/chromium',
    headless: process.env.HEARTH_BROWSER_HEADED !== '1',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  const errors = [];
  let step = 'start';
  let page = null;
  try {
    await body({ url, browser, errors, at: (s) => (step = s), setPage: (p) => (page = p) });
    check(errors.length === 0, `no page errors:\n${errors.join('\n')}`);
    console.log(`browser tests: ${name} passed (screenshots in ui/test-results/)`);
    return 0;
  } catch (err) {
    console.error(`browser tests: ${name} FAILED at step "${step}": ${err.message}`);
    if (errors.length) console.error(errors.join('\n'));
    if (page) await page.screenshot({ path: path.join(resultsDir, `failure-${name}.png`) }).catch(() => undefined);
    return 1;
  } finally {
    await browser.close();
    await new Promise((resolve) => server.httpServer.close(resolve));
  }
}
