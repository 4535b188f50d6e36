// @vitest-environment happy-dom
import { act, StrictMode, useState } from 'react';
import { createRoot, type Root } from 'react-dom/client';
import { afterEach, describe, expect, inject, it } from 'vitest';
import type { ParleyClient } from '@parley/sdk';
import { ParleyProvider, RoomProvider, useConnection, useMessages, usePresence, useRoom, useRoomEvent, useTyping } from '../src/index.js';
import { makeClient, uniq, waitFor } from '../../sdk/test/helpers/client.js';

(globalThis as { IS_REACT_ACT_ENVIRONMENT?: boolean }).IS_REACT_ACT_ENVIRONMENT = true;
const server = { url: inject('parleyUrl') };
const cleanups: (() => void)[] = [];
afterEach(() => { for (const f of cleanups.splice(0)) f(); });

interface Seen { status?: string; room?: string; texts: string[]; members: string[]; typers: string[]; events: number; renders: number }

function Probe({ seen }: { seen: Seen }) {
  const conn = useConnection();
  const { status } = useRoom();
  const { messages, send } = useMessages();
  const { members } = usePresence();
  const { typers } = useTyping();
  const [, setN] = useState(0);
  useRoomEvent('message', () => { seen.events++; setN((n) => n + 1); });
  seen.renders++;
  seen.status = conn.status; seen.room = status;
  seen.texts = messages.map((m) => String(m.body)); seen.members = members.map((m) => m.user.name); seen.typers = typers.map((t) => t.name);
  (seen as { send?: typeof send }).send = send;
  return <p>{messages.length}</p>;
}

async function mount(client: ParleyClient, roomId: string, seen: Seen): Promise<Root> {
  const el = document.createElement('div');
  document.body.appendChild(el);
  const root = createRoot(el);
  await act(async () => {
    root.render(<StrictMode><ParleyProvider client={client}><RoomProvider roomId={roomId}><Probe seen={seen} /></RoomProvider></ParleyProvider></StrictMode>);
  });
  cleanups.push(() => { el.remove(); });
  return root;
}

const internals = (c: ParleyClient, name: string) => {
  const r = c.rooms.peek(name)!;
  const count = (o: unknown) => (o as { store: { watcherCount: number } }).store.watcherCount;
  return { messages: count(r.messages), presence: count(r.presence), typing: count(r.typing),
    roomStatus: (r as unknown as { statusStore: { watcherCount: number } }).statusStore.watcherCount,
    messageListeners: (r as unknown as { emitter: { listenerCount(n: string): number } }).emitter.listenerCount('message') };
};

describe('React bindings under StrictMode', () => {
  it('connect, join, live messages, presence and typing; balanced subscriptions after reconnects and unmount', async () => {
    const name = uniq('react');
    const client = makeClient(server, { user: uniq('ann'), name: 'Ann', releaseDelayMs: 100 });
    const other = makeClient(server, { user: uniq('bob'), name: 'Bob' });
    cleanups.push(() => { client.disconnect(); other.disconnect(); });
    const seen: Seen = { texts: [], members: [], typers: [], events: 0, renders: 0 };
    const root = await mount(client, name, seen);
    await act(() => waitFor(() => seen.status === 'connected' && seen.room === 'joined', 'joined'));
    await other.connect();
    const ro = other.rooms.get(name);
    await ro.join();
    await act(() => waitFor(() => seen.members.join() === 'Ann,Bob', 'both present'));
    await act(async () => { await ro.messages.send('one').promise; });
    await act(() => waitFor(() => seen.texts.join() === 'one', 'live message'));
    expect(seen.events).toBe(1); // one listener despite StrictMode's double effects
    ro.typing.keystroke();
    await act(() => waitFor(() => seen.typers.join() === 'Bob', 'typing'));

    const before = internals(client, name);
    expect(before.messages).toBeGreaterThan(0);
    let reconnects = 0;
    client.on('recovered', () => { reconnects++; });
    for (let i = 0; i < 3; i++) {
      client.dropConnection();
      await act(() => waitFor(() => reconnects === i + 1, 'reconnected and recovered'));
      await act(async () => { await ro.messages.send(`after ${i}`).promise; });
    }
    await act(() => waitFor(() => seen.texts.length === 4, 'four messages'));
    expect(seen.texts).toEqual(['one', 'after 0', 'after 1', 'after 2']);
    expect(seen.events).toBe(4);
    expect(internals(client, name)).toEqual(before); // no leaked bindings after reconnects

    await act(async () => { root.unmount(); });
    const after = internals(client, name);
    expect(after).toMatchObject({ messages: 0, presence: 0, typing: 0, messageListeners: 0 });
    await waitFor(() => client.rooms.peek(name) === undefined, 'room released after the delay', 2000);
    expect(client.status).toBe('connected'); // hooks never disconnect the client
  });
});
