import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { CaughtUpEvent, GapEvent, MessageEvent, ParleyClient, RecoveredEvent } from '../src/index.js';
import { flakyNet, makeClient, sleep, uniq, waitFor } from './helpers/client.js';
import { ParleyServer } from './helpers/server.js';

let server: ParleyServer;
beforeAll(async () => { server = await new ParleyServer({ 'recovery.max_messages': 10 }).start(); });
afterAll(async () => { await server?.stop(); });
const clients: ParleyClient[] = [];
const track = (c: ParleyClient) => { clients.push(c); return c; };
afterEach(() => { for (const c of clients.splice(0)) c.disconnect(); });

const seqs = (ms: MessageEvent[]) => ms.map((m) => m.seq);
const range = (a: number, b: number) => Array.from({ length: b - a + 1 }, (_, i) => a + i);

describe('reconnect and resume', () => {
  it('a dropped connection resumes its session: no leave for the others, missed messages replayed once', async () => {
    const name = uniq('resume');
    const net = flakyNet();
    const a = track(makeClient(server, { user: uniq('a'), WebSocket: net.WebSocket }));
    const b = track(makeClient(server, { user: uniq('b') }));
    await Promise.all([a.connect(), b.connect()]);
    const ra = a.rooms.get(name); const rb = b.rooms.get(name);
    await ra.join(); await rb.join();
    const leaves: string[] = [];
    rb.presence.on('leave', (e) => leaves.push(e.user.id));
    await rb.messages.send('before').promise;
    await waitFor(() => ra.lastSeq === 1, 'a has seq 1');
    const firstSession = a.session;

    const caught: CaughtUpEvent[] = [];
    ra.on('caughtUp', (e) => caught.push(e));
    const recovered: RecoveredEvent[] = [];
    a.on('recovered', (e) => recovered.push(e));
    const statuses: string[] = [];
    a.on('status', (s) => statuses.push(s.current));
    net.down();
    await waitFor(() => a.status === 'reconnecting', 'reconnecting');
    for (let i = 0; i < 3; i++) await rb.messages.send(`missed ${i}`).promise;
    net.up();
    await waitFor(() => recovered.length === 1, 'recovered event');
    expect(recovered[0]).toMatchObject({ resumed: true, replayed: 3 });
    expect(a.session).toBe(firstSession);
    expect(caught.at(-1)).toMatchObject({ resumed: true, replayed: 3, fromSeq: 2, toSeq: 4 });
    expect(seqs(ra.messages.getSnapshot().messages)).toEqual([1, 2, 3, 4]);
    expect(statuses).toEqual(['reconnecting', 'connected']);
    await rb.messages.send('after').promise;
    await waitFor(() => ra.lastSeq === 5, 'live after recovery');
    await sleep(2500); // past resume_ttl: a resumed session must not end
    expect(leaves).toEqual([]);
    expect(rb.presence.getSnapshot().members.map((m) => m.user.id)).toContain(a.user!.id);
  });

  it('a partial replay (more than recovery.max_messages missed) is backfilled from history', async () => {
    const name = uniq('partial');
    const net = flakyNet();
    const a = track(makeClient(server, { user: uniq('a'), WebSocket: net.WebSocket }));
    const b = track(makeClient(server, { user: uniq('b') }));
    await Promise.all([a.connect(), b.connect()]);
    const ra = a.rooms.get(name); const rb = b.rooms.get(name);
    await ra.join(); await rb.join();
    net.down();
    await waitFor(() => a.status === 'reconnecting', 'reconnecting');
    await Promise.all(range(1, 25).map((i) => rb.messages.send(`m${i}`).promise));
    const caught: CaughtUpEvent[] = []; const gaps: GapEvent[] = [];
    ra.on('caughtUp', (e) => caught.push(e)); ra.on('gap', (g) => gaps.push(g));
    const live: number[] = [];
    ra.on('message', (m) => live.push(m.seq));
    net.up();
    await waitFor(() => caught.length === 1, 'caughtUp');
    expect(gaps).toEqual([]);
    expect(caught[0]).toMatchObject({ replayed: 25, fromSeq: 1, toSeq: 25 });
    expect(live).toEqual(range(1, 25));
    expect(seqs(ra.messages.getSnapshot().messages)).toEqual(range(1, 25));
  });

  it('more missed than maxBackfill: a gap event, the list restarts after it and loadOlder fills it', async () => {
    const name = uniq('gap');
    const net = flakyNet();
    const a = track(makeClient(server, { user: uniq('a'), WebSocket: net.WebSocket, maxBackfill: 5 }));
    const b = track(makeClient(server, { user: uniq('b') }));
    await Promise.all([a.connect(), b.connect()]);
    const ra = a.rooms.get(name); const rb = b.rooms.get(name);
    await ra.join(); await rb.join();
    net.down();
    await waitFor(() => a.status === 'reconnecting', 'reconnecting');
    await Promise.all(range(1, 30).map((i) => rb.messages.send(`m${i}`).promise));
    const gaps: GapEvent[] = [];
    ra.on('gap', (g) => gaps.push(g));
    net.up();
    await waitFor(() => ra.status === 'joined' && ra.lastSeq === 30, 'caught up');
    expect(gaps).toEqual([{ fromSeq: 1, toSeq: 20, reason: 'too_many' }]);
    expect(seqs(ra.messages.getSnapshot().messages)).toEqual(range(21, 30));
    expect(ra.messages.getSnapshot().hasOlder).toBe(true);
    await ra.messages.loadOlder(50);
    expect(seqs(ra.messages.getSnapshot().messages)).toEqual(range(1, 30));
  });
});

describe('server restart (kill -9, same data dir)', () => {
  it('since-tracking recovers messages sent while the client was away, with no duplicate', async () => {
    const name = uniq('restart');
    const net = flakyNet();
    const a = track(makeClient(server, { user: uniq('a'), WebSocket: net.WebSocket }));
    const b = track(makeClient(server, { user: uniq('b') }));
    await Promise.all([a.connect(), b.connect()]);
    const ra = a.rooms.get(name); const rb = b.rooms.get(name);
    await ra.join(); await rb.join();
    for (let i = 1; i <= 5; i++) await rb.messages.send(`m${i}`).promise;
    await waitFor(() => ra.lastSeq === 5, 'a at 5');

    const recovered: RecoveredEvent[] = [];
    a.on('recovered', (e) => recovered.push(e));
    net.down(); // a stays away until b has written more after the restart
    await server.restart();
    await waitFor(() => b.status === 'connected' && rb.status === 'joined', 'b back', 15_000);
    for (let i = 6; i <= 8; i++) await rb.messages.send(`m${i}`).promise;
    net.up();
    await waitFor(() => recovered.length >= 1 && ra.status === 'joined', 'a recovered', 15_000);
    expect(recovered.at(-1)).toMatchObject({ resumed: false, replayed: 3 });
    expect(seqs(ra.messages.getSnapshot().messages)).toEqual(range(1, 8));
    expect(ra.messages.getSnapshot().messages.map((m) => m.body)).toEqual(range(1, 8).map((i) => `m${i}`));
    expect(seqs(rb.messages.getSnapshot().messages)).toEqual(range(1, 8));
  });
});
