// Browser test of group administration in the built UI (mock mode), at a common laptop size
// (1366x768): the first run of a new group's owner (guide, invite with both links, first
// channel); an owner's channel management (create private with members, rename and topic,
// drag-and-drop reorder, delete with confirmation), members (role, kick, ban and unban),
// server settings (name, icon, retention) and the audit log; a member who sees none of it,
// blocks someone (their messages hidden, their DMs refused) and is then banned. Every dialog
// is checked to fit the window. Screenshots go to ui/test-results/admin-*.png.

import path from 'node:path';
import { check, resultsDir, run } from './harness.mjs';

const VIEWPORT = { width: 1366, height: 768 };

/** The open dialog lies inside the window, and every control of it inside the dialog. */
async function fitsWindow(page, what) {
  const overflow = await page.evaluate(({ width, height }) => {
    const dialog = document.querySelector('.dialog');
    const box = dialog?.getBoundingClientRect();
    const out = [];
    if (box && (box.right > width || box.bottom > height || box.left < 0 || box.top < 0)) out.push(`dialog ${JSON.stringify(box)}`);
    for (const el of dialog?.querySelectorAll('input, select, button, textarea') ?? []) {
      const r = el.getBoundingClientRect();
      if (r.width === 0) continue;
      if (r.right > box.right + 0.5 || r.left < box.left - 0.5) out.push(`${el.tagName} ${el.getAttribute('name') ?? el.textContent} ${r.left}-${r.right} outside ${box.left}-${box.right}`);
    }
    return out;
  }, VIEWPORT);
  check(overflow.length === 0, `${what} fits 1366x768:\n${overflow.join('\n')}`);
}

process.exitCode = await run('administration', async ({ url, browser, errors, at, setPage }) => {
  let page;
  const open = async (query) => {
    const context = await browser.newContext({ viewport: VIEWPORT, locale: 'en-US' });
    const p = await context.newPage();
    p.setDefaultTimeout(15_000);
    p.on('pageerror', (err) => errors.push(`pageerror: ${err.message}`));
    p.on('console', (msg) => msg.type() === 'error' && errors.push(`console: ${msg.text()}`));
    await p.goto(url + query);
    setPage(p);
    return p;
  };
  const mockOf = (p) => (src) => p.evaluate((s) => new Function('m', s)(window.__hearthMock), src);
  {
    at('first run: the owner registers with the setup link');
    page = await open('?firstRun');
    let mock = mockOf(page);
    await page.getByLabel('Invite link or server address').fill('hearth://setup?server=https%3A%2F%2Fhearth.example&token=SETUPTOKEN1');
    await page.keyboard.press('Enter');
    await page.getByLabel('Username').fill('ada');
    await page.getByLabel('Password').fill('correct horse battery');
    await page.getByRole('button', { name: 'Create account' }).click();

    at('first run: a guide instead of an empty pane');
    const guide = page.getByTestId('first-run');
    await guide.getByText('Welcome to your new group').waitFor();
    await page.screenshot({ path: path.join(resultsDir, 'admin-first-run.png') });

    at('first run: invite people from the guide');
    await guide.getByRole('button', { name: 'Invite people' }).click();
    await page.getByRole('tab', { name: 'Invites' }).waitFor();
    await page.locator('select[name=invite-uses]').selectOption('1');
    await page.locator('select[name=invite-expiry]').selectOption({ label: '1 day' });
    await page.getByRole('button', { name: 'Create invite' }).click();
    const appLink = await page.getByTestId('invite-app-link').inputValue();
    const pageLink = await page.getByTestId('invite-page-link').inputValue();
    const code = new URL(appLink).searchParams.get('code');
    check(appLink === `hearth://join?server=https%3A%2F%2Fhearth.example&code=${code}`, `app link ${appLink}`);
    check(pageLink === `https://hearth.example/invite/${code}`, `page link ${pageLink}`);
    await page.locator(`[data-invite-code="${code}"]`).getByText('1 uses left').waitFor();
    await fitsWindow(page, 'the invites tab');
    await page.screenshot({ path: path.join(resultsDir, 'admin-invites.png') });
    // A second person joins with the copied link: the invite is spent and leaves the list.
    await mock(`m.admin.useInvite(${JSON.stringify(code)})`);
    await page.getByRole('tab', { name: 'Members' }).click();
    await page.getByRole('tab', { name: 'Invites' }).click();
    await page.getByText('No active invites.').waitFor();
    await page.keyboard.press('Escape');

    at('first run: create the first channel from the guide');
    await guide.getByRole('button', { name: 'Create a channel' }).click();
    await page.locator('input[name=channel-name]').fill('family');
    await page.getByRole('button', { name: 'Create channel' }).click();
    await page.getByTestId('channel-title').filter({ hasText: '#family' }).waitFor();
    check((await guide.count()) === 0, 'the guide gives way to the channel');
    await page.close();

    at('owner: a private channel with a chosen member');
    page = await open('?role=owner');
    mock = mockOf(page);
    await page.getByTestId('channel-title').filter({ hasText: '#general' }).waitFor();
    await page.getByTestId('create-text-channel').click();
    await page.locator('input[name=channel-name]').fill('parents');
    await page.locator('input[name=channel-private]').check();
    await page.locator('.member-picker label').filter({ hasText: 'Bob' }).locator('input').check();
    await fitsWindow(page, 'the channel dialog');
    await page.getByRole('button', { name: 'Create channel' }).click();
    await page.getByTestId('channel-title').filter({ hasText: '#parents' }).waitFor();
    const parents = await mock(`return m.channels.find((c) => c.name === 'parents')`);
    check(parents.private && parents.members.includes('u2') && parents.members.includes('1'), `private members ${parents.members}`);

    at('owner: rename and set a topic');
    await page.locator('.channel-row').filter({ hasText: 'general' }).hover();
    await page.getByRole('button', { name: 'Channel settings: general' }).click();
    await page.locator('input[name=channel-name]').fill('home');
    await page.locator('input[name=channel-topic]').fill('Everyday family chat');
    await page.getByRole('button', { name: 'Save' }).click();
    await page.locator('button[data-channel-id="c1"]').click();
    await page.getByTestId('channel-title').filter({ hasText: '#home' }).waitFor();
    check((await page.getByTestId('channel-topic').textContent()) === 'Everyday family chat', 'topic in the header');

    at('owner: drag and drop to reorder');
    const names = () => page.locator('.channel-row button[data-channel-id] .channel-name').allTextContents();
    await page.locator('.channel-row').filter({ hasText: 'announcements' }).dragTo(page.locator('.channel-row').filter({ hasText: 'home' }));
    await page.waitForFunction(() => document.querySelector('.channel-list button[data-channel-id] .channel-name')?.textContent === 'announcements');
    const order = await names();
    check(order.join() === 'announcements,home,random,parents', `new order ${order}`);

    at('owner: delete a channel, with a confirmation');
    await page.locator('.channel-row').filter({ hasText: 'random' }).hover();
    await page.getByRole('button', { name: 'Channel settings: random' }).click();
    await page.getByRole('button', { name: 'Delete channel' }).click();
    await page.getByText('Delete #random and all its messages').waitFor();
    await page.locator('.confirm').getByRole('button', { name: 'Delete channel' }).click();
    await page.locator('button[data-channel-id="c2"]').waitFor({ state: 'detached' });

    at('owner: members — role, kick, ban and unban');
    await page.getByTestId('server-settings').click();
    await page.getByRole('tab', { name: 'Members' }).click();
    await page.getByLabel('Role of Carol').selectOption('admin');
    await page.locator('.member-list li[data-user-id="u3"]').getByText('Admin').waitFor();
    const dave = page.locator('.members-admin li[data-user-id="u4"]');
    await dave.getByRole('button', { name: 'Remove' }).click();
    await dave.getByText('Remove Dave from the group?').waitFor();
    await dave.locator('.confirm').getByRole('button', { name: 'Remove' }).click();
    await page.locator('.member-list li[data-user-id="u4"]').waitFor({ state: 'detached' });
    const carol = page.locator('.members-admin li[data-user-id="u3"]');
    await carol.getByRole('button', { name: 'Ban' }).click();
    await carol.getByLabel('Reason (optional)').fill('spam');
    await fitsWindow(page, 'the members tab with a confirmation');
    await carol.locator('.confirm').getByRole('button', { name: 'Ban' }).click();
    await page.locator('.member-list li[data-user-id="u3"]').waitFor({ state: 'detached' });
    await page.getByRole('tab', { name: 'Bans' }).click();
    const ban = page.locator('.admin-list li[data-user-id="u3"]');
    await ban.getByText('spam', { exact: false }).waitFor();
    await ban.getByRole('button', { name: 'Lift ban' }).click();
    await page.getByText('Nobody is banned.').waitFor();

    at('owner: server settings');
    await page.getByRole('tab', { name: 'Overview' }).click();
    await page.locator('input[name=server-name]').fill('The Smiths');
    await page.getByLabel('Delete messages older than').check();
    await page.locator('input[name=retention-days]').fill('30');
    await page.getByRole('button', { name: 'Choose an icon…' }).click();
    await page.locator('.dialog [data-testid=server-icon] img').waitFor();
    await fitsWindow(page, 'the server overview');
    await page.screenshot({ path: path.join(resultsDir, 'admin-server.png') });
    await page.getByRole('button', { name: 'Save' }).click();
    await page.locator('.server-header h1').filter({ hasText: 'The Smiths' }).waitFor();
    const settings = await mock('return m.server');
    check(settings.retention_days === 30 && settings.icon, `settings saved ${JSON.stringify(settings)}`);

    at('owner: the audit log');
    await page.getByRole('tab', { name: 'Audit log' }).click();
    for (const line of ['Ada banned Carol', 'Ada removed Dave', 'Ada deleted #random', 'Ada created #parents', 'Ada changed the group’s settings']) {
      await page.locator('.audit-log').getByText(line).first().waitFor();
    }
    await page.screenshot({ path: path.join(resultsDir, 'admin-audit.png') });
    await page.keyboard.press('Escape');

    at('settings dialog: device pickers stay inside it');
    await page.evaluate(() => {
      window.__hearthMock.voice.devices.inputs.push({ id: 'mic-long', name: 'Headset Microphone (Jabra Evolve2 65 — Hands-Free AG Audio over Bluetooth, second unit)', is_default: false });
    });
    await page.getByRole('button', { name: 'User settings' }).click();
    await page.locator('select[name=input-device]').waitFor();
    await page.locator('select[name=input-device] option', { hasText: 'Jabra' }).waitFor({ state: 'attached' });
    await fitsWindow(page, 'the settings dialog');
    await page.keyboard.press('Escape');
    await page.close();

    at('member: no administration shown');
    page = await open('?role=member');
    mock = mockOf(page);
    await page.getByTestId('channel-title').filter({ hasText: '#general' }).waitFor();
    check((await page.getByTestId('create-text-channel').count()) === 0, 'no create button for a member');
    check((await page.locator('.channel-settings').count()) === 0, 'no channel settings for a member');
    await page.getByTestId('server-settings').click();
    const tabs = await page.getByRole('tab').allTextContents();
    check(tabs.join() === 'Members', `a member sees only the members tab: ${tabs}`);
    check((await page.locator('.members-admin select, .members-admin .danger-outline').count()) === 0, 'no role or removal controls');
    await page.keyboard.press('Escape');

    at('member: block someone, their messages hide');
    await page.getByText('Welcome to').first().waitFor();
    await page.locator('.member-list li[data-user-id="u2"] button').click();
    await page.getByTestId('member-menu').getByRole('button', { name: 'Block' }).click();
    await page.getByTestId('blocked-message').first().waitFor();
    check((await page.getByText('Welcome to Hearth, everyone!').count()) === 0, "Bob's message is hidden");
    await page.getByTestId('member-menu').getByRole('button', { name: 'Unblock' }).click();
    await page.getByText('Welcome to Hearth, everyone!').waitFor();
    await page.keyboard.press('Escape');

    at('member: a DM to someone who blocked them is refused, clearly');
    await mock(`m.admin.blockedBy.add('u3')`);
    await page.locator('.member-list li[data-user-id="u3"] button').click();
    await page.getByTestId('member-menu').getByRole('button', { name: 'Send a message' }).click();
    await page.getByRole('status').filter({ hasText: 'does not accept direct messages from you' }).waitFor();
    // A DM already open to someone who then blocks: the message is refused, and says why.
    await mock(`m.admin.blockedBy.add('u2')`);
    await page.locator('button[data-channel-id="c5"]').click();
    await page.getByTestId('composer').fill('are you there?');
    await page.getByTestId('composer').press('Enter');
    await page.getByTestId('send-refused').filter({ hasText: 'does not accept direct messages from you' }).waitFor();

    at('member: banned while signed in');
    await mock(`m.simulateRemoval('banned')`);
    await page.getByTestId('removed').getByText('You are banned from The Hearth').waitFor();
    await page.screenshot({ path: path.join(resultsDir, 'admin-removed.png') });
  }
});
