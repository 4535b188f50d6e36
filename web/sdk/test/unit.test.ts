import { describe, expect, expectTypeOf, it } from 'vitest';
import { fullJitterDelay, jsonCodec, msgpackCodec, uuidv7, ParleyError, createParleyClient } from '../src/index.js';
import type { MessageEvent, PendingMessage, Room } from '../src/index.js';

describe('backoff (full jitter)', () => {
  const o = { minDelayMs: 500, maxDelayMs: 20_000 };
  it('is random() * min(max, min * 2^attempt)', () => {
    expect(fullJitterDelay(0, o, () => 0.999999)).toBe(499);
    expect(fullJitterDelay(3, o, () => 0.5)).toBe(2000);
    expect(fullJitterDelay(10, o, () => 0.999999)).toBe(19_999);
    expect(fullJitterDelay(1000, o, () => 1)).toBe(20_000);
    expect(fullJitterDelay(5, o, () => 0)).toBe(0);
  });
  it('stays within [0, ceiling) with Math.random', () => {
    for (let a = 0; a < 40; a++) {
      const d = fullJitterDelay(a, o);
      expect(d).toBeGreaterThanOrEqual(0);
      expect(d).toBeLessThanOrEqual(Math.min(20_000, 500 * 2 ** a));
    }
  });
});

describe('uuidv7', () => {
  it('has version 7, variant 10 and the timestamp', () => {
    const t = 1732860000123;
    const u = uuidv7(t);
    expect(u).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(parseInt(u.replace(/-/g, '').slice(0, 12), 16)).toBe(t);
  });
  it('is unique and sorts in creation order, also within one millisecond', () => {
    const ids = Array.from({ length: 5000 }, () => uuidv7(1732860000123));
    expect(new Set(ids).size).toBe(ids.length);
    expect([...ids].sort()).toEqual(ids);
  });
});

describe('codecs', () => {
  const frame = { id: 7, op: 'send', room: 'r', body: { a: [1, 'é', null, true], n: 1.5 }, cmid: 'c', skip: undefined };
  it('json round-trips and drops undefined', () => {
    const s = jsonCodec.encode(frame);
    expect(typeof s).toBe('string');
    expect(jsonCodec.decode(s)).toEqual({ id: 7, op: 'send', room: 'r', body: { a: [1, 'é', null, true], n: 1.5 }, cmid: 'c' });
  });
  it('msgpack round-trips through ArrayBuffer and big timestamps', () => {
    const b = msgpackCodec.encode({ ...frame, ts: 1732860000123 }) as Uint8Array;
    expect(b).toBeInstanceOf(Uint8Array);
    const ab = b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength);
    expect(msgpackCodec.decode(ab)).toMatchObject({ id: 7, ts: 1732860000123, body: { n: 1.5 } });
  });
  it('rejects frames that are not maps', () => {
    expect(() => jsonCodec.decode('[1]')).toThrow(ParleyError);
    expect(() => msgpackCodec.decode('text')).toThrow(ParleyError);
  });
});

describe('client without a server', () => {
  it('returns the same Room per id and refuses differing options', () => {
    const c = createParleyClient({ url: 'ws://127.0.0.1:1/ws', WebSocket: class {} as never });
    const r = c.rooms.get('a', { pageSize: 10 });
    expect(c.rooms.get('a')).toBe(r);
    expect(c.rooms.get('a', { pageSize: 10 })).toBe(r);
    expect(() => c.rooms.get('a', { pageSize: 20 })).toThrow(/other options/);
    expect(r.status).toBe('idle');
    expect(c.status).toBe('idle');
  });
  it('has typed events', () => {
    const c = createParleyClient({ url: 'ws://x/ws' });
    const r = c.rooms.get('x');
    r.on('message', (m) => expectTypeOf(m).toEqualTypeOf<MessageEvent>());
    r.on('caughtUp', (e) => expectTypeOf(e.replayed).toBeNumber());
    c.on('status', (s) => expectTypeOf(s.current).toEqualTypeOf<'idle' | 'connecting' | 'connected' | 'reconnecting' | 'closed'>());
    expectTypeOf(r.messages.send).returns.toEqualTypeOf<PendingMessage>();
    expectTypeOf(c.rooms.get).returns.toEqualTypeOf<Room>();
  });
  it('fails a connect without a WebSocket implementation with a config error', async () => {
    const c = createParleyClient({ url: 'ws://127.0.0.1:1/ws', WebSocket: undefined, wakeUpListeners: false });
    (c as unknown as { WS: undefined }).WS = undefined;
    await expect(c.connect()).rejects.toMatchObject({ code: 'config' });
    expect(c.getSnapshot()).toMatchObject({ status: 'closed', reason: 'fatal' });
  });
});
