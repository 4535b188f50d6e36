// Starts a real parleyd for the tests: temp conf dir, free port, temp data dir; kill -9 / restart on demand.
import { spawn, type ChildProcess } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync, openSync, closeSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../../..');
export const JWT_SECRET = 'sdk-test-secret';

export function parleyBin(): string {
  const bin = process.env.PARLEY_BIN ?? join(REPO_ROOT, 'build/src/parleyd');
  if (!existsSync(bin)) throw new Error(`parleyd not found at ${bin}: build it or set PARLEY_BIN`);
  return bin;
}

export function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => { const a = s.address(); s.close(() => res(typeof a === 'object' && a ? a.port : 0)); });
  });
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((res) => {
    const c = connect({ port, host: '127.0.0.1' });
    c.once('connect', () => { c.destroy(); res(true); });
    c.once('error', () => res(false));
  });
}

const live = new Set<ChildProcess>();
process.on('exit', () => { for (const p of live) { try { p.kill('SIGKILL'); } catch { /* gone */ } } });

function b64url(s: string | Buffer): string { return Buffer.from(s).toString('base64url'); }
export function mintToken(sub: string, name = sub, opts: { expSec?: number; secret?: string } = {}): string {
  const h = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const claims: Record<string, unknown> = { sub, name };
  if (opts.expSec !== undefined) claims.exp = opts.expSec;
  const p = b64url(JSON.stringify(claims));
  const sig = createHmac('sha256', opts.secret ?? JWT_SECRET).update(`${h}.${p}`).digest('base64url');
  return `${h}.${p}.${sig}`;
}

export type Conf = Record<string, string | number | boolean>;

export class ParleyServer {
  readonly dir: string;
  readonly confDir: string;
  readonly dataDir: string;
  port = 0;
  proc: ChildProcess | null = null;
  private logPath: string;
  private conf: Conf;

  constructor(conf: Conf = {}) {
    this.dir = mkdtempSync(join(tmpdir(), 'parley-sdk-'));
    this.confDir = join(this.dir, 'conf.d');
    this.dataDir = join(this.dir, 'data');
    this.logPath = join(this.dir, 'parleyd.log');
    mkdirSync(this.confDir); mkdirSync(this.dataDir);
    this.conf = conf;
  }

  get url(): string { return `ws://127.0.0.1:${this.port}/ws`; }
  get httpUrl(): string { return `http://127.0.0.1:${this.port}`; }
  get log(): string { return this.logPath; }

  async start(): Promise<this> {
    if (!this.port) this.port = await freePort();
    const conf: Conf = {
      'server.host': '127.0.0.1', 'server.port': this.port, 'server.data_dir': this.dataDir,
      'auth.allow_anonymous': true, 'auth.jwt_secret': JWT_SECRET, 'session.resume_ttl': '2s', 'typing.ttl': '2s',
      'typing.interval': '50ms', 'log.level': 'info', ...this.conf,
    };
    const q = (v: string | number | boolean) => (typeof v === 'string' && /[\s/"#]/.test(v) ? JSON.stringify(v) : String(v));
    writeFileSync(join(this.confDir, '50-test.conf'), Object.entries(conf).map(([k, v]) => `${k} = ${q(v)}`).join('\n') + '\n');
    const fd = openSync(this.logPath, 'a');
    const proc = spawn(parleyBin(), ['-c', this.confDir], { stdio: ['ignore', fd, fd] });
    closeSync(fd);
    this.proc = proc;
    live.add(proc);
    proc.once('exit', () => live.delete(proc));
    const deadline = Date.now() + 15_000;
    while (Date.now() < deadline) {
      if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`parleyd exited (${proc.exitCode ?? proc.signalCode}); log ${this.logPath}`);
      if (await portOpen(this.port)) return this;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`parleyd did not listen on ${this.port} within 15 s; log ${this.logPath}`);
  }

  /** Stops the server (SIGKILL by default: a crash, nothing is flushed beyond what was acknowledged). */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const p = this.proc;
    if (!p) return;
    this.proc = null;
    if (p.exitCode !== null || p.signalCode !== null) return;
    const exited = new Promise<void>((r) => p.once('exit', () => r()));
    p.kill(signal);
    const t = setTimeout(() => { try { p.kill('SIGKILL'); } catch { /* gone */ } }, 5_000);
    await exited;
    clearTimeout(t);
  }

  async restart(): Promise<void> { await this.kill('SIGKILL'); await this.start(); }

  async stop(): Promise<void> {
    await this.kill('SIGTERM');
    if (!process.env.PARLEY_KEEP_TMP) rmSync(this.dir, { recursive: true, force: true });
  }
}
