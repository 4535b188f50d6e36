import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ParleyUnauthorizedError, type ParleyClient, type TokenReason } from '../src/index.js';
import { flakyNet, makeClient, sleep, uniq, waitFor } from './helpers/client.js';
import { mintToken, ParleyServer } from './helpers/server.js';

let server: ParleyServer;
beforeAll(async () => { server = await new ParleyServer({ 'auth.allow_anonymous': false }).start(); });
afterAll(async () => { await server?.stop(); });
const clients: ParleyClient[] = [];
const track = (c: ParleyClient) => { clients.push(c); return c; };
afterEach(() => { for (const c of clients.splice(0)) c.disconnect(); });

describe('token refresh', () => {
  it('a rejected token is refreshed once with reason "rejected", then the client connects', async () => {
    const user = uniq('u');
    const reasons: TokenReason[] = [];
    const c = track(makeClient(server, {
      getToken: async ({ reason }) => {
        reasons.push(reason);
        await sleep(20);
        return reason === 'initial' ? mintToken(user, user, { secret: 'wrong' }) : mintToken(user);
      },
    }));
    await c.connect();
    expect(reasons).toEqual(['initial', 'rejected']);
    expect(c.user?.id).toBe(user);
  });

  it('an expiring token is refreshed before reconnecting; concurrent refreshes share one call', async () => {
    const user = uniq('u');
    let calls = 0;
    const reasons: TokenReason[] = [];
    const net = flakyNet();
    const c = track(makeClient(server, {
      WebSocket: net.WebSocket,
      tokenSkewMs: 60_000,
      getToken: async ({ reason }) => {
        calls++; reasons.push(reason);
        await sleep(50);
        return mintToken(user, user, { expSec: Math.floor(Date.now() / 1000) + 30 }); // inside the skew: "expiring"
      },
    }));
    const [t1, t2, t3] = await Promise.all([c.refreshToken('initial'), c.refreshToken('initial'), c.refreshToken('expiring')]);
    expect(calls).toBe(1);
    expect(t1).toBe(t2); expect(t2).toBe(t3);
    await c.connect();
    expect(reasons).toEqual(['initial', 'expiring']);
    net.down(); net.up();
    await waitFor(() => reasons.length === 3 && c.status === 'connected', 'refreshed on reconnect');
    expect(reasons[2]).toBe('expiring');
  });

  it('getToken throwing ParleyUnauthorizedError closes the client with reason unauthorized', async () => {
    const c = track(makeClient(server, { getToken: () => { throw new ParleyUnauthorizedError('signed out'); } }));
    await expect(c.connect()).rejects.toMatchObject({ code: 'unauthorized' });
    expect(c.getSnapshot()).toMatchObject({ status: 'closed', reason: 'unauthorized' });
  });

  it('no token while guests are refused: closed unauthorized (auth_required), no retry loop', async () => {
    const c = track(makeClient(server, {}));
    await expect(c.connect()).rejects.toMatchObject({ code: 'unauthorized' });
    expect(c.getSnapshot().reason).toBe('unauthorized');
  });
});

describe('proactive refresh', () => {
  it('at exp - skew the client gets a new token and hands it to the open connection (refresh op)', async () => {
    const user = uniq('u');
    const reasons: TokenReason[] = [];
    const c = track(makeClient(server, {
      tokenSkewMs: 60_000,
      getToken: ({ reason }) => { reasons.push(reason); return mintToken(user, user, { expSec: Math.floor(Date.now() / 1000) + 62 }); },
    }));
    const statuses: string[] = [];
    c.on('status', (s) => statuses.push(s.current));
    await c.connect();
    await waitFor(() => reasons.length >= 2, 'refresh', 6000);
    expect(reasons.slice(0, 2)).toEqual(['initial', 'expiring']);
    await sleep(200);
    expect(c.status).toBe('connected');
    expect(statuses).toEqual(['connecting', 'connected']);
  });
});
