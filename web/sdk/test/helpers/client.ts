import WS from 'ws';
import { createParleyClient, type ClientOptions, type ParleyClient, type WebSocketConstructor } from '../../src/index.js';
import { mintToken, type ParleyServer } from './server.js';

/** A `ws` WebSocket whose "network" can be switched off and whose sent frames are recorded. */
export function flakyNet() {
  const ctl = { offline: false, sockets: new Set<WS>(), sent: [] as unknown[] };
  class FlakyWebSocket extends WS {
    constructor(url: string, protocols?: string | string[]) {
      super(ctl.offline ? 'ws://127.0.0.1:1/ws' : url, protocols);
      ctl.sockets.add(this);
      this.on('close', () => ctl.sockets.delete(this));
    }
    override send(data: unknown, ...rest: unknown[]): void {
      ctl.sent.push(data);
      (super.send as (...a: unknown[]) => void)(data, ...rest);
    }
  }
  return {
    WebSocket: FlakyWebSocket as unknown as WebSocketConstructor,
    ctl,
    /** Drops every socket without a close handshake and refuses new ones while `offline`. */
    down() { ctl.offline = true; for (const s of ctl.sockets) s.terminate(); },
    up() { ctl.offline = false; },
  };
}

export interface TestClientOptions extends Partial<ClientOptions> { user?: string; name?: string }

export function makeClient(server: Pick<ParleyServer, "url">, o: TestClientOptions = {}): ParleyClient {
  const { user, name, ...rest } = o;
  return createParleyClient({
    url: server.url,
    WebSocket: WS as unknown as WebSocketConstructor,
    getToken: user ? () => mintToken(user, name ?? user) : undefined,
    reconnect: { minDelayMs: 50, maxDelayMs: 400 },
    typingTtlMs: 2000,
    requestTimeoutMs: 5000,
    ...rest,
  });
}

export async function waitFor<T>(fn: () => T | Promise<T>, what = 'condition', timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try { const v = await fn(); if (v) return v; last = v; } catch (e) { last = e; }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what} (last: ${last instanceof Error ? last.message : JSON.stringify(last)})`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
let n = 0;
export const uniq = (p: string) => `${p}-${process.pid}-${Date.now().toString(36)}-${++n}`;
