// Browser e2e helpers: Debian's chromium through playwright-core, a fresh profile per context, a real parleyd.
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { expect } from 'vitest';
import { ParleyServer, REPO_ROOT, type Conf } from '../sdk/test/helpers/server.js';

// The built app: tools/web-test builds it into build/web-app (PARLEY_WEB_APP_DIST), apart from tools/run's.
export const APP_DIST = process.env.PARLEY_WEB_APP_DIST ?? resolve(REPO_ROOT, 'web/app/dist');
export const OUT_DIR = process.env.PARLEY_WEB_OUT ?? resolve(REPO_ROOT, 'web/test-results/e2e');
export const CHROMIUM = process.env.CHROMIUM_BIN ?? '/usr/bin/chromium';
// DESIGN.md §7: exactly these flags; the profile folder is given to launchPersistentContext.
export const CHROMIUM_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

export async function startServer(conf: Conf = {}): Promise<ParleyServer> {
  if (!existsSync(join(APP_DIST, 'index.html'))) throw new Error(`the app is not built (${APP_DIST}): run npm run build in web/`);
  return new ParleyServer({
    'server.web_root': APP_DIST, 'auth.dev_login': true, 'session.resume_ttl': '2s', 'typing.ttl': '2s',
    'typing.interval': '100ms', ...conf,
  }).start();
}

export class Browsers {
  contexts: { ctx: BrowserContext; dir: string; label: string }[] = [];

  async context(label: string, viewport = { width: 1280, height: 800 }): Promise<BrowserContext> {
    const dir = mkdtempSync(join(tmpdir(), `parley-e2e-${label}-`));
    const ctx = await chromium.launchPersistentContext(dir, {
      executablePath: CHROMIUM, headless: true, args: CHROMIUM_FLAGS, viewport, timeout: 30_000,
    });
    ctx.setDefaultTimeout(15_000);
    this.contexts.push({ ctx, dir, label });
    return ctx;
  }

  /** Closes one context (its WebSockets drop like a closed browser window). */
  async close(ctx: BrowserContext): Promise<void> {
    const i = this.contexts.findIndex((c) => c.ctx === ctx);
    if (i < 0) return;
    const [c] = this.contexts.splice(i, 1);
    await c!.ctx.close().catch(() => {});
    rmSync(c!.dir, { recursive: true, force: true });
  }

  async screenshots(name: string): Promise<string[]> {
    mkdirSync(OUT_DIR, { recursive: true });
    const files: string[] = [];
    const safe = name.replace(/[^A-Za-z0-9_-]+/g, '_').slice(0, 80);
    for (const { ctx, label } of this.contexts) {
      let n = 0;
      for (const page of ctx.pages()) {
        const file = join(OUT_DIR, `${safe}--${label}-${++n}.png`);
        await page.screenshot({ path: file, fullPage: true, timeout: 5_000 }).then(() => files.push(file), () => {});
      }
    }
    return files;
  }

  async closeAll(): Promise<void> { for (const c of [...this.contexts]) await this.close(c.ctx); }
}

export async function openApp(ctx: BrowserContext, server: ParleyServer, hash = ''): Promise<Page> {
  const page = ctx.pages().find((p) => p.url() === 'about:blank') ?? (await ctx.newPage());
  await page.goto(`${server.httpUrl}/${hash}`);
  return page;
}

export async function signIn(page: Page, name: string): Promise<void> {
  await page.getByLabel('Your name').fill(name);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect.poll(() => page.getByTestId('me').textContent(), { timeout: 15_000 }).toBe(name);
}

export async function gotoRoom(page: Page, room: string): Promise<void> {
  const link = page.locator(`a.room-item[data-room="${room}"]`);
  if (await link.count()) await link.click();
  else {
    await page.getByLabel('Join or create a room').fill(room);
    await page.getByRole('button', { name: 'Join', exact: true }).click();
  }
  await expect.poll(() => page.locator('#room-title').textContent()).toBe(`# ${room}`);
  await expect.poll(() => page.getByTestId('room-status').textContent(), { timeout: 15_000 }).toBe('');
}

export async function send(page: Page, text: string): Promise<void> {
  const box = page.locator('#composer-input');
  await box.fill(text);
  await box.press('Enter');
}

/** The messages shown: seq and text, in DOM order. */
export async function shown(page: Page): Promise<{ seq: number; text: string }[]> {
  return page.locator('[data-testid=message]').evaluateAll((els) =>
    els.map((e) => ({ seq: Number((e as HTMLElement).dataset.seq), text: e.querySelector('.msg-body')?.textContent ?? '' })));
}

export async function texts(page: Page): Promise<string[]> { return (await shown(page)).map((m) => m.text); }
