import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { MessageEvent, ParleyClient } from '../src/index.js';
import { flakyNet, makeClient, sleep, uniq, waitFor } from './helpers/client.js';
import { ParleyServer } from './helpers/server.js';

let server: ParleyServer;
beforeAll(async () => { server = await new ParleyServer().start(); });
afterAll(async () => { await server?.stop(); });
const clients: ParleyClient[] = [];
const track = (c: ParleyClient) => { clients.push(c); return c; };
afterEach(() => { for (const c of clients.splice(0)) c.disconnect(); });

async function allHistory(c: ParleyClient, room: string): Promise<MessageEvent[]> {
  const res = await c.rooms.get(room).history({ after: 0, limit: 200 });
  return res.messages;
}

describe('outbox', () => {
  it('a send whose ack is lost when the connection drops is resent with the same cmid: exactly once', async () => {
    const name = uniq('once');
    const net = flakyNet();
    const a = track(makeClient(server, { user: uniq('a'), WebSocket: net.WebSocket }));
    const obs = track(makeClient(server, { user: uniq('obs') }));
    await Promise.all([a.connect(), obs.connect()]);
    const ra = a.rooms.get(name); const ro = obs.rooms.get(name);
    await ra.join(); await ro.join();
    const seen: MessageEvent[] = [];
    ro.on('message', (m) => seen.push(m));

    const p = ra.messages.send('exactly once');
    expect(p.status).toBe('sending'); // written to the socket synchronously
    net.down(); // the frame went out; the ack cannot come back on this socket
    expect(['queued', 'sending']).toContain(p.status);
    await sleep(200);
    net.up();
    const ack = await p.promise;
    expect(ack.seq).toBe(1);
    await waitFor(() => seen.length >= 1, 'observer got it');
    await sleep(300);
    expect(seen.map((m) => m.cmid)).toEqual([p.clientMsgId]);
    const hist = await allHistory(obs, name);
    expect(hist.filter((m) => m.cmid === p.clientMsgId)).toHaveLength(1);
    expect(hist).toHaveLength(1);
    const snap = ra.messages.getSnapshot();
    expect(snap.messages.map((m) => m.cmid)).toEqual([p.clientMsgId]);
    expect(snap.pending).toEqual([]);
  });

  it('a burst of sends across a kill -9 and restart of the server arrives exactly once, in order per sender', async () => {
    const name = uniq('burst');
    const a = track(makeClient(server, { user: uniq('a') }));
    await a.connect();
    const ra = a.rooms.get(name);
    await ra.join();
    const pend = [];
    for (let i = 0; i < 30; i++) {
      pend.push(ra.messages.send(`b${i}`));
      if (i === 10) void server.restart(); // mid-burst
      await sleep(5);
    }
    const acks = await Promise.all(pend.map((p) => p.promise));
    expect(new Set(acks.map((x) => x.seq)).size).toBe(30);
    const obs = track(makeClient(server, { user: uniq('obs') }));
    await obs.connect();
    const hist = await allHistory(obs, name);
    expect(hist.map((m) => m.body)).toEqual(Array.from({ length: 30 }, (_, i) => `b${i}`));
    expect(new Set(hist.map((m) => m.cmid)).size).toBe(30);
    await waitFor(() => ra.lastSeq === 30, 'sender caught up');
    expect(ra.messages.getSnapshot().messages.map((m) => m.seq)).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
    expect(ra.messages.getSnapshot().pending).toEqual([]);
  });

  it('queues while offline, and a message not acked in time fails and is never sent late', async () => {
    const name = uniq('timeout');
    const net = flakyNet();
    const a = track(makeClient(server, { user: uniq('a'), WebSocket: net.WebSocket, sendTimeoutMs: 600 }));
    await a.connect();
    const ra = a.rooms.get(name);
    await ra.join();
    net.down();
    await waitFor(() => a.status === 'reconnecting', 'offline');
    const p = ra.messages.send('too late');
    expect(p.status).toBe('queued');
    expect(ra.messages.getSnapshot().pending.map((x) => x.clientMsgId)).toEqual([p.clientMsgId]);
    await expect(p.promise).rejects.toMatchObject({ code: 'timeout' });
    expect(p.status).toBe('failed');
    net.up();
    await waitFor(() => a.status === 'connected' && ra.status === 'joined', 'back');
    await sleep(300);
    const hist = await ra.history({ after: 0 });
    expect(hist.messages).toEqual([]);
    // failed messages stay visible until discarded or retried
    expect(ra.messages.getSnapshot().pending.map((x) => x.status)).toEqual(['failed']);
    p.retry();
    const ack = await p.promise;
    expect(ack.seq).toBe(1);
    await waitFor(() => ra.messages.getSnapshot().pending.length === 0, 'pending cleared');
    const q = ra.messages.send('discard me');
    q.discard();
    expect(ra.messages.getSnapshot().pending).toEqual([]);
  });

  it('is bounded by maxOutbox', async () => {
    const net = flakyNet();
    const a = track(makeClient(server, { user: uniq('a'), WebSocket: net.WebSocket, maxOutbox: 3 }));
    await a.connect();
    const ra = a.rooms.get(uniq('bounded'));
    await ra.join();
    net.down();
    await waitFor(() => a.status === 'reconnecting', 'offline');
    const ps = [1, 2, 3, 4].map((i) => ra.messages.send(i));
    expect(ps.map((p) => p.status)).toEqual(['queued', 'queued', 'queued', 'failed']);
    await expect(ps[3]!.promise).rejects.toMatchObject({ code: 'outbox_full' });
    net.up();
    const acks = await Promise.all(ps.slice(0, 3).map((p) => p.promise));
    expect(acks.map((x) => x.seq)).toEqual([1, 2, 3]);
  });
});

describe('outbox under rate limits', () => {
  it('a burst beyond rate.send is paced by retry_after and still arrives exactly once', async () => {
    const s = await new ParleyServer({ 'rate.send': '20/s burst 10', 'rate.strikes': 0 }).start();
    try {
      const a = track(makeClient(s, { user: uniq('a') }));
      await a.connect();
      const ra = a.rooms.get(uniq('rl'));
      await ra.join();
      const ps = Array.from({ length: 60 }, (_, i) => ra.messages.send(`r${i}`));
      const acks = await Promise.all(ps.map((p) => p.promise));
      expect(new Set(acks.map((x) => x.seq)).size).toBe(60);
      const hist = await ra.history({ after: 0, limit: 200 });
      expect(hist.messages).toHaveLength(60);
      expect(new Set(hist.messages.map((m) => m.cmid)).size).toBe(60);
    } finally { await s.stop(); }
  });
});
