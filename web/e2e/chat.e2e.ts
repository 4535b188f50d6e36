import { copyFileSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import WS from 'ws';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createParleyClient, type WebSocketConstructor } from '../sdk/src/index.js';
import { mintToken, REPO_ROOT, type ParleyServer } from '../sdk/test/helpers/server.js';
import { Browsers, OUT_DIR, gotoRoom, openApp, send, shown, signIn, startServer, texts } from './helpers.js';

let server: ParleyServer;
const browsers = new Browsers();
beforeAll(async () => { server = await startServer(); });
afterAll(async () => { await browsers.closeAll(); await server?.stop(); });
afterEach(async (ctx) => {
  if (ctx.task.result?.state === 'fail') {
    const files = await browsers.screenshots(ctx.task.name);
    if (files.length) console.error(`screenshots of the failed test:\n  ${files.join('\n  ')}`);
  }
  await browsers.closeAll();
});

const uniq = (p: string) => `${p}${Date.now().toString(36).slice(-4)}${Math.floor(Math.random() * 1e4)}`;
const poll = expect.poll;

/** Seeds messages through the SDK in Node (much faster than typing them). */
async function seed(room: string, count: number, prefix: string) {
  const c = createParleyClient({ url: server.url, WebSocket: WS as unknown as WebSocketConstructor, getToken: () => mintToken('seeder', 'Seeder', { secret: 'sdk-test-secret' }) });
  await c.connect();
  const r = c.rooms.get(room);
  await r.join();
  for (let i = 1; i <= count; i += 20) {
    await Promise.all(Array.from({ length: Math.min(20, count - i + 1) }, (_, k) => r.messages.send(`${prefix} ${i + k}`).promise));
  }
  c.disconnect();
}

describe('chat in the browser', () => {
  it('two users in two browser contexts chat; unread counts rise and clear', async () => {
    const room = uniq('e2e-');
    const a = await openApp(await browsers.context('ann'), server);
    const b = await openApp(await browsers.context('bob'), server);
    await signIn(a, 'Ann'); await signIn(b, 'Bob');
    await gotoRoom(a, room); await gotoRoom(b, room);
    await send(a, 'Hello Bob!');
    await poll(() => texts(b)).toEqual(['Hello Bob!']);
    await send(b, 'Hi Ann, how are you?');
    await poll(() => texts(a)).toEqual(['Hello Bob!', 'Hi Ann, how are you?']);
    await poll(() => texts(b)).toEqual(['Hello Bob!', 'Hi Ann, how are you?']);
    expect((await shown(a)).map((m) => m.seq)).toEqual([1, 2]);

    // Bob looks at another room: Ann's messages count as unread there, and clear when he comes back.
    await gotoRoom(b, 'lobby');
    await send(a, 'Are you there?');
    await send(a, 'Ping!');
    const badge = b.locator(`a.room-item[data-room="${room}"] [data-testid=unread]`);
    await poll(() => badge.getAttribute('data-count')).toBe('2');
    await gotoRoom(b, room);
    await poll(() => texts(b)).toEqual(['Hello Bob!', 'Hi Ann, how are you?', 'Are you there?', 'Ping!']);
    await poll(() => badge.count()).toBe(0);
    // the read marker is stored: a reload still shows no unread badge
    await b.reload();
    await gotoRoom(b, 'lobby');
    await b.waitForTimeout(500);
    expect(await badge.count()).toBe(0);
  });

  it('the typing indicator appears and clears', async () => {
    const room = uniq('typing-');
    const a = await openApp(await browsers.context('ann'), server);
    const b = await openApp(await browsers.context('bob'), server);
    await signIn(a, 'Ann'); await signIn(b, 'Bob');
    await gotoRoom(a, room); await gotoRoom(b, room);
    const typing = b.getByTestId('typing');
    await a.locator('#composer-input').pressSequentially('I am wri', { delay: 30 });
    await poll(() => typing.textContent()).toBe('Ann is typing…');
    expect(await a.getByTestId('typing').textContent()).toBe(''); // not for yourself
    await a.locator('#composer-input').fill('');
    await a.locator('#composer-input').press('Backspace'); // empty composer: stop
    await poll(() => typing.textContent()).toBe('');
    await a.locator('#composer-input').pressSequentially('Done typing', { delay: 20 });
    await poll(() => typing.textContent()).toBe('Ann is typing…');
    await a.locator('#composer-input').press('Enter');
    await poll(() => typing.textContent()).toBe('');
    await poll(() => texts(b)).toEqual(['Done typing']);
  });

  it('presence: the dot turns offline after the grace period when a context closes', async () => {
    const room = uniq('presence-');
    const actx = await browsers.context('ann');
    const a = await openApp(actx, server);
    const b = await openApp(await browsers.context('bob'), server);
    await signIn(a, 'Ann'); await signIn(b, 'Bob');
    await gotoRoom(a, room); await gotoRoom(b, room);
    const annInBob = b.locator('[data-testid=member][data-user="ann"]');
    await poll(() => annInBob.getAttribute('data-online')).toBe('true');
    await browsers.close(actx);
    const closedAt = Date.now();
    await b.waitForTimeout(800);
    expect(await annInBob.getAttribute('data-online')).toBe('true'); // grace: no flapping
    await poll(() => annInBob.getAttribute('data-online'), { timeout: 15_000 }).toBe('false');
    expect(Date.now() - closedAt).toBeGreaterThanOrEqual(1500);
    await poll(() => annInBob.locator('.member-status').textContent()).toMatch(/last seen/);
  });

  it('three tabs of one user show one member', async () => {
    const room = uniq('tabs-');
    const cctx = await browsers.context('carol');
    const c1 = await openApp(cctx, server);
    await signIn(c1, 'Carol');
    await gotoRoom(c1, room);
    const c2 = await openApp(cctx, server, `#/room/${room}`);
    const c3 = await openApp(cctx, server, `#/room/${room}`);
    for (const p of [c2, c3]) await poll(() => p.getByTestId('room-status').textContent()).toBe('');
    const d = await openApp(await browsers.context('dave'), server);
    await signIn(d, 'Dave');
    await gotoRoom(d, room);
    await poll(() => d.locator('[data-testid=member]').evaluateAll((els) => els.map((e) => (e as HTMLElement).dataset.user).sort()))
      .toEqual(['carol', 'dave']);
    for (const p of [c1, c2, c3]) {
      await poll(() => p.locator('[data-testid=member]').evaluateAll((els) => els.map((e) => (e as HTMLElement).dataset.user).sort()))
        .toEqual(['carol', 'dave']);
    }
    // closing two tabs changes nothing for Dave
    await c2.close(); await c3.close();
    await d.waitForTimeout(2500);
    expect(await d.locator('[data-testid=member][data-user="carol"]').getAttribute('data-online')).toBe('true');
  });

  it('server killed and restarted mid-conversation: every tab recovers, no duplicate, no loss, banner shows it', async () => {
    const room = uniq('crash-');
    const actx = await browsers.context('ann');
    const a1 = await openApp(actx, server);
    await signIn(a1, 'Ann');
    await gotoRoom(a1, room);
    const a2 = await openApp(actx, server, `#/room/${room}`);
    const a3 = await openApp(actx, server, `#/room/${room}`);
    const b = await openApp(await browsers.context('bob'), server);
    await signIn(b, 'Bob');
    await gotoRoom(b, room);
    const tabs = [a1, a2, a3, b];
    for (const p of [a2, a3]) await poll(() => p.getByTestId('room-status').textContent()).toBe('');

    const expected: string[] = [];
    for (let i = 1; i <= 4; i++) { const t = `before ${i}`; await send(i % 2 ? a1 : b, t); expected.push(t); await poll(() => texts(b)).toEqual(expected); }
    for (const p of tabs) await poll(() => texts(p)).toEqual(expected);

    await server.kill('SIGKILL');
    for (const p of tabs) await poll(() => p.getByTestId('connection-banner').textContent(), { timeout: 15_000 }).toMatch(/Reconnecting/);
    // written while the server is down: kept in the outbox and sent after the restart
    await send(b, 'sent while down');
    await send(a2, 'also sent while down');
    expected.push('sent while down', 'also sent while down');
    await poll(() => b.locator('[data-testid=pending-message]').count()).toBe(1);
    await server.start();
    for (const p of tabs) {
      await poll(() => p.getByTestId('connection-banner').textContent(), { timeout: 30_000 }).toMatch(/Back online/);
    }
    await send(a3, 'after restart');
    expected.push('after restart');
    for (const p of tabs) {
      await poll(async () => (await texts(p)).slice().sort(), { timeout: 20_000 }).toEqual(expected.slice().sort());
      const ms = await shown(p);
      expect(ms.map((m) => m.seq)).toEqual(ms.map((_, i) => i + 1)); // gapless, in order, no duplicate
      await poll(() => p.locator('[data-testid=pending-message]').count()).toBe(0);
    }
    // every tab shows the same order
    const order = await texts(a1);
    for (const p of tabs) expect(await texts(p)).toEqual(order);
  });

  it('history scroll-back loads older messages without a layout jump', async () => {
    const room = uniq('history-');
    await seed(room, 130, 'old');
    const a = await openApp(await browsers.context('ann', { width: 1000, height: 700 }), server);
    await signIn(a, 'Ann');
    await gotoRoom(a, room);
    await poll(async () => (await shown(a)).at(-1)?.text).toBe('old 130');
    const first = async () => (await shown(a))[0]!.seq;
    const before = await first();
    expect(before).toBeGreaterThan(1);
    const list = a.getByTestId('message-list');
    // scroll to the top: older pages load, and the message that was on top stays where it was
    const anchorSeq = before;
    const anchor = a.locator(`[data-testid=message][data-seq="${anchorSeq}"]`);
    await list.evaluate((el) => { el.scrollTop = 0; });
    await poll(first).toBeLessThan(before);
    const top1 = await anchor.evaluate((el) => el.getBoundingClientRect().top);
    await a.waitForTimeout(300);
    const top2 = await anchor.evaluate((el) => el.getBoundingClientRect().top);
    expect(Math.abs(top2 - top1)).toBeLessThan(2);
    expect(top1).toBeGreaterThan(0); // the anchor was not pushed off by the prepended page… (it stays in view)
    for (let i = 0; i < 10 && (await first()) > 1; i++) {
      await list.evaluate((el) => { el.scrollTop = 0; });
      await a.waitForTimeout(400);
    }
    expect(await first()).toBe(1);
    await poll(() => list.textContent()).toContain('This is the beginning of the conversation.');
    const all = await shown(a);
    expect(all.map((m) => m.seq)).toEqual(Array.from({ length: 130 }, (_, i) => i + 1));
  });

  it('works at 360 px: no horizontal scrolling, drawer opens with the keyboard, and a good screenshot', async () => {
    const room = uniq('mobile-');
    const a = await openApp(await browsers.context('ann', { width: 360, height: 740 }), server);
    await signIn(a, 'Ann');
    await a.getByRole('button', { name: 'Rooms' }).click();
    await a.getByLabel('Join or create a room').fill(room);
    await a.getByLabel('Join or create a room').press('Enter');
    await poll(() => a.locator('#room-title').textContent()).toBe(`# ${room}`);
    await send(a, 'Hello from a small screen');
    await poll(() => texts(a)).toEqual(['Hello from a small screen']);
    expect(await a.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(360);
    await expect.poll(() => a.locator('#composer-input').isVisible()).toBe(true);
    await a.getByRole('button', { name: 'Rooms' }).focus();
    await a.keyboard.press('Enter');
    await poll(() => a.evaluate(() => document.activeElement?.closest('#sidebar') !== null)).toBe(true);
    await a.keyboard.press('Escape');
    await poll(() => a.locator('.app.nav-open').count()).toBe(0);
    mkdirSync(OUT_DIR, { recursive: true });
    await a.screenshot({ path: join(OUT_DIR, 'mobile-360.png') });
  });

  it('starts a direct message: room dm:<a>:<b> with the user ids sorted', async () => {
    const room = uniq('meet-');
    const b = await openApp(await browsers.context('bob'), server);
    const a = await openApp(await browsers.context('ann'), server);
    await signIn(a, 'Ann'); await signIn(b, 'Bob');
    await gotoRoom(a, room); await gotoRoom(b, room);
    await a.getByRole('button', { name: 'Message Bob' }).click();
    await poll(() => a.evaluate(() => decodeURIComponent(location.hash))).toBe('#/room/dm:ann:bob');
    await poll(() => a.locator('#room-title').textContent()).toBe('Bob');
    await poll(() => a.getByTestId('room-status').textContent()).toBe('');
    await send(a, 'Just between us');
    await poll(() => texts(a)).toContain('Just between us');
    // Bob opens the same conversation by name from the sidebar form
    await b.getByLabel('Start a direct message').fill('Ann');
    await b.getByRole('button', { name: 'Start', exact: true }).click();
    await poll(() => b.evaluate(() => decodeURIComponent(location.hash))).toBe('#/room/dm:ann:bob');
    await poll(() => texts(b)).toContain('Just between us');
    await poll(() => b.locator('a.room-item[data-room="dm:ann:bob"] .room-name').textContent()).toBe('Ann');
  });
});

describe('screenshot for the README', () => {
  it('renders a conversation', async () => {
    const room = 'design-review';
    const a = await openApp(await browsers.context('ann'), server);
    const b = await openApp(await browsers.context('bob'), server);
    const c = await openApp(await browsers.context('cleo'), server);
    await signIn(a, 'Ann Lee'); await signIn(b, 'Bob Stone'); await signIn(c, 'Cleo Park');
    for (const p of [a, b, c]) { await gotoRoom(p, 'lobby'); await gotoRoom(p, room); }
    const lines: [typeof a, string][] = [
      [b, 'Morning! The new build is up on staging.'],
      [c, 'Nice — reconnects feel instant now.'],
      [a, 'I killed the server twice during the demo and nothing was lost or duplicated.'],
      [b, 'That is the outbox + since-tracking doing its job.'],
      [c, 'Shipping it after lunch?'],
    ];
    for (const [p, t] of lines) { await send(p, t); await poll(() => texts(a).then((x) => x.includes(t))).toBe(true); }
    await b.locator('#composer-input').pressSequentially('Sounds good', { delay: 20 });
    await poll(() => a.getByTestId('typing').textContent()).toBe('Bob Stone is typing…');
    await gotoRoom(c, 'lobby');
    await send(c, 'Anyone up for coffee?');
    await poll(() => a.locator('a.room-item[data-room="lobby"] [data-testid=unread]').count()).toBe(1);
    mkdirSync(OUT_DIR, { recursive: true });
    const file = join(OUT_DIR, 'screenshot.png');
    await a.screenshot({ path: file });
    if (process.env.PARLEY_UPDATE_SCREENSHOT) copyFileSync(file, resolve(REPO_ROOT, 'docs/screenshot.png'));
  });
});
