import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { ParleyClient } from '../src/index.js';
import { jsonCodec } from '../src/index.js';
import { flakyNet, makeClient, sleep, uniq, waitFor } from './helpers/client.js';
import { ParleyServer } from './helpers/server.js';

let server: ParleyServer;
beforeAll(async () => { server = await new ParleyServer({ 'session.resume_ttl': '1s', 'typing.ttl': '1s' }).start(); });
afterAll(async () => { await server?.stop(); });
const clients: ParleyClient[] = [];
const track = (c: ParleyClient) => { clients.push(c); return c; };
afterEach(() => { for (const c of clients.splice(0)) c.disconnect(); });

describe('presence store', () => {
  it('shows both members, one entry for a user with three connections, and offline after the grace period', async () => {
    const name = uniq('pres');
    const ann = uniq('ann'); const bob = uniq('bob');
    const a = track(makeClient(server, { user: ann, name: 'Ann' }));
    await a.connect();
    const ra = a.rooms.get(name);
    await ra.join();
    const nets = [flakyNet(), flakyNet(), flakyNet()];
    const bs = nets.map((n) => track(makeClient(server, { user: bob, name: 'Bob', WebSocket: n.WebSocket })));
    await Promise.all(bs.map((b) => b.connect()));
    await Promise.all(bs.map((b) => b.rooms.get(name).join()));
    await waitFor(() => ra.presence.getSnapshot().members.length === 2, 'two members');
    const members = ra.presence.getSnapshot().members;
    expect(members.map((m) => m.user.name)).toEqual(['Ann', 'Bob']);
    const rb = bs[0]!.rooms.get(name);
    await waitFor(() => rb.presence.getSnapshot().synced && rb.presence.getSnapshot().members.length === 2, 'b sees two');
    const bobEntry = rb.presence.getSnapshot().members.find((m) => m.user.id === bob)!;
    expect(bobEntry.connections.length).toBe(3);

    const leaves: string[] = [];
    ra.presence.on('leave', (e) => leaves.push(e.user.id));
    // two tabs go away: Bob stays
    nets[0]!.down(); nets[1]!.down();
    await sleep(1600);
    expect(leaves).toEqual([]);
    expect(ra.presence.getSnapshot().members.map((m) => m.user.id)).toContain(bob);
    // the last one drops without a close frame: offline only after session.resume_ttl
    const t0 = Date.now();
    nets[2]!.down();
    await sleep(300);
    expect(ra.presence.getSnapshot().members.map((m) => m.user.id)).toContain(bob);
    await waitFor(() => !ra.presence.getSnapshot().members.some((m) => m.user.id === bob), 'bob gone', 8000);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(900);
    expect(leaves).toEqual([bob]);
    const status = ra.presence.getSnapshot().users.find((u) => u.user.id === bob)!;
    expect(status).toMatchObject({ online: false, present: false });
    expect(status.lastSeen).toBeGreaterThan(t0 - 5000);
  });

  it('a close with 1000 (disconnect) leaves at once', async () => {
    const name = uniq('bye');
    const a = track(makeClient(server, { user: uniq('a') }));
    const b = makeClient(server, { user: uniq('b') });
    await Promise.all([a.connect(), b.connect()]);
    const ra = a.rooms.get(name);
    await ra.join(); await b.rooms.get(name).join();
    await waitFor(() => ra.presence.getSnapshot().members.length === 2, 'two');
    b.disconnect();
    await waitFor(() => ra.presence.getSnapshot().members.length === 1, 'one', 700);
  });
});

describe('typing store', () => {
  it('keystrokes are throttled to ttl/2, others see the typer, and stop()/send() clear it', async () => {
    const name = uniq('typing');
    const net = flakyNet();
    const a = track(makeClient(server, { user: uniq('ann'), name: 'Ann', WebSocket: net.WebSocket, typingTtlMs: 1000 }));
    const b = track(makeClient(server, { user: uniq('bob'), name: 'Bob' }));
    await Promise.all([a.connect(), b.connect()]);
    const ra = a.rooms.get(name); const rb = b.rooms.get(name);
    await ra.join(); await rb.join();
    const typingFrames = () => net.ctl.sent.map((d) => jsonCodec.decode(d)).filter((f) => f.op === 'typing');

    for (let i = 0; i < 10; i++) { ra.typing.keystroke(); await sleep(20); }
    expect(typingFrames()).toHaveLength(1);
    await waitFor(() => rb.typing.typers.map((u) => u.name).join() === 'Ann', 'bob sees Ann typing');
    expect(ra.typing.typers).toEqual([]); // never yourself
    await sleep(400);
    ra.typing.keystroke(); // > ttl/2 since the first: a refresh
    expect(typingFrames()).toHaveLength(2);

    ra.typing.stop();
    expect(typingFrames().at(-1)).toMatchObject({ active: false });
    await waitFor(() => rb.typing.typers.length === 0, 'cleared by stop');

    ra.typing.keystroke();
    await waitFor(() => rb.typing.typers.length === 1, 'typing again');
    await ra.messages.send('done').promise;
    await waitFor(() => rb.typing.typers.length === 0, 'cleared by send');

    ra.typing.keystroke();
    await waitFor(() => rb.typing.typers.length === 1, 'typing once more');
    await waitFor(() => rb.typing.typers.length === 0, 'expired after typing.ttl', 5000);
  });

  it('typing is volatile: nothing is sent while offline', async () => {
    const net = flakyNet();
    const a = track(makeClient(server, { user: uniq('a'), WebSocket: net.WebSocket }));
    await a.connect();
    const ra = a.rooms.get(uniq('vol'));
    await ra.join();
    net.down();
    await waitFor(() => a.status === 'reconnecting', 'offline');
    const before = net.ctl.sent.length;
    ra.typing.keystroke();
    expect(net.ctl.sent.length).toBe(before);
    expect(ra.typing.isTyping).toBe(false);
  });
});
