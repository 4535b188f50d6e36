import { afterEach, describe, expect, inject, it } from 'vitest';
import type { MessageEvent, ParleyClient } from '../src/index.js';
import { makeClient, uniq, waitFor } from './helpers/client.js';

const server = { url: inject('parleyUrl') };
const clients: ParleyClient[] = [];
const track = (c: ParleyClient) => { clients.push(c); return c; };
afterEach(() => { for (const c of clients.splice(0)) c.disconnect(); });

describe.each(['json', 'msgpack'] as const)('connect (%s)', (codec) => {
  it('says hello with a token, joins, sends and gets its echo and ack', async () => {
    const c = track(makeClient(server, { codec, user: uniq('ann'), name: 'Ann' }));
    await c.connect();
    expect(c.status).toBe('connected');
    expect(c.user?.name).toBe('Ann');
    expect(c.limits?.max_body).toBeGreaterThan(0);
    const room = c.rooms.get(uniq('lobby'));
    await room.join();
    expect(room.status).toBe('joined');
    const got: MessageEvent[] = [];
    room.on('message', (m) => got.push(m));
    const p = room.messages.send({ text: 'héllo', n: [1, 2] });
    expect(p.clientMsgId).toMatch(/^[0-9a-f-]{36}$/);
    const ack = await p.promise;
    expect(ack.seq).toBe(1);
    await waitFor(() => got.length === 1, 'echo');
    expect(got[0]).toMatchObject({ seq: 1, body: { text: 'héllo', n: [1, 2] }, cmid: p.clientMsgId, from: { name: 'Ann' } });
    await waitFor(() => room.messages.getSnapshot().pending.length === 0, 'pending cleared');
    expect(room.messages.getSnapshot().messages.map((m) => m.seq)).toEqual([1]);
    expect(room.lastSeq).toBe(1);
  });

  it('connects as a guest without getToken', async () => {
    const c = track(makeClient(server, { codec }));
    await c.connect();
    expect(c.user?.id).toMatch(/^guest-/);
  });
});

describe('disconnect while connecting', () => {
  it('leaves no stray error behind, whenever it comes during the handshake', async () => {
    // Node's `ws` reports an error for a socket closed before it opened; unheard, it would crash the run.
    const waits = [0, 0, 1, 1, 2, 3, 5, 8];
    for (const ms of waits) {
      const c = makeClient(server, {});
      const done = c.connect().catch(() => undefined);
      if (ms) await new Promise((r) => setTimeout(r, ms)); else await Promise.resolve();
      c.disconnect();
      await done;
      expect(['closed', 'idle']).toContain(c.status);
    }
    await new Promise((r) => setTimeout(r, 100)); // an error event would surface by now
  });
});

describe('mixed codecs', () => {
  it('a JSON and a MessagePack client see each other in one room', async () => {
    const name = uniq('mixed');
    const a = track(makeClient(server, { codec: 'json', user: uniq('a') }));
    const b = track(makeClient(server, { codec: 'msgpack', user: uniq('b') }));
    await Promise.all([a.connect(), b.connect()]);
    const ra = a.rooms.get(name); const rb = b.rooms.get(name);
    await Promise.all([ra.join(), rb.join()]);
    await ra.messages.send('from json').promise;
    await rb.messages.send({ from: 'msgpack', big: 1732860000123 }).promise;
    for (const r of [ra, rb]) {
      await waitFor(() => r.messages.getSnapshot().messages.length === 2, 'two messages');
      expect(r.messages.getSnapshot().messages.map((m) => m.body)).toEqual(['from json', { from: 'msgpack', big: 1732860000123 }]);
    }
  });
});

describe('history', () => {
  it('joining loads the newest page, loadOlder pages back to seq 1 with no duplicates', async () => {
    const name = uniq('hist');
    const w = track(makeClient(server, { user: uniq('writer') }));
    await w.connect();
    const wr = w.rooms.get(name);
    await wr.join();
    const sends = [];
    for (let i = 1; i <= 45; i++) sends.push(wr.messages.send(`m${i}`).promise);
    await Promise.all(sends);

    const r = track(makeClient(server, { user: uniq('reader'), pageSize: 20 }));
    await r.connect();
    const room = r.rooms.get(name);
    await room.join();
    let s = room.messages.getSnapshot();
    expect(s.status).toBe('ready');
    expect(s.messages.map((m) => m.seq)).toEqual(Array.from({ length: 20 }, (_, i) => 26 + i));
    expect(s.hasOlder).toBe(true);
    expect(await room.messages.loadOlder()).toBe(20);
    expect(await room.messages.loadOlder()).toBe(5);
    s = room.messages.getSnapshot();
    expect(s.hasOlder).toBe(false);
    expect(s.messages.map((m) => m.body)).toEqual(Array.from({ length: 45 }, (_, i) => `m${i + 1}`));
    expect(await room.messages.loadOlder()).toBe(0);
  });
});

describe('rooms and read markers', () => {
  it('lists joined rooms with unread counts; read moves the marker and reaches the other connection', async () => {
    const user = uniq('reader');
    const name = uniq('unread');
    const other = track(makeClient(server, { user: uniq('poster') }));
    const me1 = track(makeClient(server, { user }));
    const me2 = track(makeClient(server, { user }));
    await Promise.all([other.connect(), me1.connect(), me2.connect()]);
    await me1.rooms.get(name).join();
    const or = other.rooms.get(name); await or.join();
    for (let i = 0; i < 3; i++) await or.messages.send(`x${i}`).promise;
    const list = await me2.listRooms();
    expect(list.find((r) => r.room === name)).toMatchObject({ seq: 3, read: 0, unread: 3 });
    const reads: number[] = [];
    me2.on('read', (e) => { if (e.room === name) reads.push(e.seq); });
    expect(await me1.markRead(name, 2)).toBe(2);
    await waitFor(() => reads.includes(2), 'read event on the other connection');
    expect(await me1.markRead(name, 1)).toBe(2); // only forward
    const after = await me2.roomList.refresh();
    expect(after.find((r) => r.room === name)).toMatchObject({ seq: 3, read: 2, unread: 1 });
  });
});
