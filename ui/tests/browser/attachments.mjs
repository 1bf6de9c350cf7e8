// Browser test of attachments in the built UI (mock mode): attach files from the + button with
// per-file progress (held half way, then released), send them, see the image as a preview
// (decoded by Chromium) and the other file as a card; open the viewer (arrow keys between
// images, zoom, Escape); drop files onto the composer, including a fake "photo.png" and an SVG
// that must stay cards; paste an image; download a card with progress. Screenshots go to
// ui/test-results/attachments-*.png.

import path from 'node:path';
import { check, resultsDir, run } from './harness.mjs';

// A real 2×2 PNG (red, green, blue, white).
const PNG_B64 = 'iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAIAAAD91JpzAAAAEklEQVR4nGP4z8DAAMIM/4EAAB/uBfsL2WiLAAAAAElFTkSuQmCC';

process.exitCode = await run('attachments', async ({ url, browser, errors, at, setPage }) => {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, locale: 'en-US' });
  const page = await context.newPage();
  setPage(page);
  page.setDefaultTimeout(15_000);
  page.on('pageerror', (err) => errors.push(`pageerror: ${err.message}`));
  page.on('console', (msg) => msg.type() === 'error' && errors.push(`console: ${msg.text()}`));
  const mock = (src, arg) => page.evaluate(([s, a]) => new Function('m', 'arg', s)(window.__hearthMock, a), [src, arg]);

  at('register');
  await page.goto(url);
  await page.getByLabel('Invite link or server address').fill('hearth://join?server=https%3A%2F%2Fhearth.example&code=WELCOME');
  await page.keyboard.press('Enter');
  await page.getByLabel('Username').fill('zoe');
  await page.getByLabel('Password').fill('correct horse battery');
  await page.getByRole('button', { name: 'Create account' }).click();
  await page.getByTestId('channel-title').filter({ hasText: '#general' }).waitFor();

  at('attach two files from the button and watch their progress');
  await mock(
    `const png = Uint8Array.from(atob(arg), (c) => c.charCodeAt(0));
     m.attachments.files.set('/home/zoe/red.png', png);
     m.attachments.files.set('/home/zoe/album/blue.png', png);
     m.attachments.files.set('/home/zoe/report.pdf', new TextEncoder().encode('%PDF-1.7 not really'));
     m.attachments.picked = ['/home/zoe/red.png', '/home/zoe/report.pdf', '/home/zoe/album'];
     m.attachments.holdUploads = true;`,
    PNG_B64,
  );
  await page.getByTestId('attach').click();
  await page.getByTestId('upload-progress').nth(2).waitFor();
  // Held half way: every bar stops part way.
  await page.waitForFunction(() => [...document.querySelectorAll('[data-testid=upload-progress]')].every((el) => el.value > 40 && el.value < 60));
  await page.screenshot({ path: path.join(resultsDir, 'attachments-uploading.png') });
  await mock('m.attachments.release()');
  await page.locator('[data-testid=upload][data-done=true]').nth(2).waitFor();
  check((await page.getByTestId('upload').count()) === 3, 'the folder gave its one file');
  await page.getByTestId('composer').fill('holiday');
  await page.keyboard.press('Enter');

  at('the image shows as a decoded preview, the PDF as a card');
  const thumb = page.getByTestId('attachment-image').first().locator('img');
  await thumb.waitFor();
  await page.waitForFunction(() => {
    const img = document.querySelector('[data-testid=attachment-image] img');
    return img && img.complete && img.naturalWidth === 2;
  });
  const card = page.getByTestId('attachment-file').filter({ hasText: 'report.pdf' });
  await card.waitFor();
  check((await card.textContent()).includes('application/octet-stream'), 'card shows the sniffed type');
  await page.screenshot({ path: path.join(resultsDir, 'attachments-pane.png') });

  at('viewer: arrows, zoom, escape');
  await page.getByTestId('attachment-image').first().click();
  const viewer = page.getByTestId('image-viewer');
  await viewer.waitFor();
  check((await viewer.getByTestId('viewer-name').textContent()) === 'red.png', 'viewer opens on the clicked image');
  await page.keyboard.press('ArrowRight');
  check((await viewer.getByTestId('viewer-name').textContent()) === 'blue.png', 'ArrowRight goes to the next image');
  await page.keyboard.press('ArrowLeft');
  check((await viewer.getByTestId('viewer-name').textContent()) === 'red.png', 'ArrowLeft goes back');
  await page.keyboard.press('+');
  check((await viewer.getByTestId('viewer-zoom').textContent()) === '125%', 'zoom in with +');
  await viewer.getByTestId('viewer-image').waitFor();
  await page.screenshot({ path: path.join(resultsDir, 'attachments-viewer.png') });
  await page.keyboard.press('Escape');
  await viewer.waitFor({ state: 'detached' });

  at('drop files: a fake photo.png and an SVG stay cards');
  await page.evaluate(() => {
    const dt = new DataTransfer();
    dt.items.add(new File(['just text'], 'photo.png', { type: 'image/png' }));
    dt.items.add(new File(['<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'], 'x.svg', { type: 'image/svg+xml' }));
    const area = document.querySelector('[data-testid=composer-area]');
    area.dispatchEvent(new DragEvent('dragover', { dataTransfer: dt, bubbles: true, cancelable: true }));
    area.dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
  });
  await page.locator('[data-testid=upload][data-done=true]').nth(1).waitFor();
  await page.getByTestId('composer').focus();
  await page.keyboard.press('Enter');
  await page.getByTestId('attachment-file').filter({ hasText: 'x.svg' }).waitFor();
  await page.getByTestId('attachment-file').filter({ hasText: 'photo.png' }).waitFor();
  check((await page.getByTestId('attachment-image').count()) === 2, 'no new preview for the fake image or the SVG');

  at('paste an image');
  await page.evaluate((b64) => {
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const dt = new DataTransfer();
    dt.items.add(new File([bytes], 'pasted.png', { type: 'image/png' }));
    document.querySelector('[data-testid=composer]').dispatchEvent(new ClipboardEvent('paste', { clipboardData: dt, bubbles: true, cancelable: true }));
  }, PNG_B64);
  await page.locator('[data-testid=upload][data-done=true]').first().waitFor();
  await page.getByTestId('composer').focus();
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => document.querySelectorAll('[data-testid=attachment-image]').length === 3);

  at('download a card');
  await card.getByTestId('attachment-download').click();
  await card.getByText('Saved — download again').waitFor();
  const downloads = await mock('return m.attachments.downloads');
  check(JSON.stringify(downloads) === JSON.stringify(['/home/zoe/Downloads/report.pdf'.replace('zoe', 'me')]), `downloaded once: ${downloads}`);
});
