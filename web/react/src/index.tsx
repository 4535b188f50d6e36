import {
  createContext, useCallback, useContext, useEffect, useLayoutEffect, useMemo, useRef, useState, useSyncExternalStore,
  type ReactNode,
} from 'react';
import type {
  ConnectionState, GapEvent, MessageEvent, MessagesState, ParleyClient, ParleyError, PendingMessage, PresenceMember,
  PresenceState, Room, RoomEvents, RoomListState, RoomOptions, RoomStatus, UserRef, UserStatus, Json,
} from '@parley/sdk';

const ClientContext = createContext<ParleyClient | null>(null);
const RoomContext = createContext<Room | null>(null);

/** Provides the client (created outside render). Connects on mount when autoConnect; never disconnects. */
export function ParleyProvider({ client, autoConnect = true, children }: { client: ParleyClient; autoConnect?: boolean; children?: ReactNode }) {
  useEffect(() => {
    if (autoConnect && (client.status === 'idle' || client.status === 'closed')) client.connect().catch(() => {});
  }, [client, autoConnect]);
  return <ClientContext.Provider value={client}>{children}</ClientContext.Provider>;
}

export function useClient(): ParleyClient {
  const c = useContext(ClientContext);
  if (!c) throw new Error('useClient: no <ParleyProvider> above');
  return c;
}

/** Joins the room while mounted (reference-counted; released after a short delay so StrictMode and quick navigation reuse it). */
export function RoomProvider({ roomId, options, children }: { roomId: string; options?: RoomOptions; children?: ReactNode }) {
  const client = useClient();
  const room = useMemo(() => client.rooms.get(roomId, options), [client, roomId]); // options fixed at first get
  useEffect(() => {
    const { release } = client.rooms.retain(roomId);
    return release;
  }, [client, roomId]);
  return <RoomContext.Provider value={room}>{children}</RoomContext.Provider>;
}

function useRoomInstance(): Room {
  const r = useContext(RoomContext);
  if (!r) throw new Error('no <RoomProvider> above');
  return r;
}

export interface UseConnection {
  status: ConnectionState['status'];
  attempt: number;
  nextRetryInMs: number | null;
  nextRetryAt: number | null;
  error: ParleyError | null;
  user: UserRef | null;
  /** true once the client has been disconnected for lostAfterMs. */
  isLost: boolean;
}

export function useConnection({ lostAfterMs = 5_000 }: { lostAfterMs?: number } = {}): UseConnection {
  const client = useClient();
  const s = useSyncExternalStore(client.watch, client.getSnapshot, client.getSnapshot);
  const [, tick] = useState(0);
  const lostAt = s.downSince !== null && s.status !== 'idle' ? s.downSince + lostAfterMs : null;
  useEffect(() => {
    if (lostAt === null) return;
    const ms = lostAt - Date.now();
    if (ms <= 0) return;
    const t = setTimeout(() => tick((n) => n + 1), ms);
    return () => clearTimeout(t);
  }, [lostAt]);
  return {
    status: s.status, attempt: s.attempt, nextRetryInMs: s.nextRetryInMs, nextRetryAt: s.nextRetryAt, error: s.error, user: s.user,
    isLost: lostAt !== null && Date.now() >= lostAt,
  };
}

export function useRoom(): { room: Room; status: RoomStatus; error: ParleyError | null } {
  const room = useRoomInstance();
  const s = useSyncExternalStore(room.watch, room.getSnapshot, room.getSnapshot);
  return { room, status: s.status, error: s.error };
}

export interface UseMessages {
  messages: MessageEvent[];
  pending: PendingMessage[];
  status: MessagesState['status'];
  hasOlder: boolean;
  loadingOlder: boolean;
  loadOlder: () => Promise<number>;
  send: (body: Json) => PendingMessage;
  retry: (p: PendingMessage) => void;
  discard: (p: PendingMessage) => void;
  gap: GapEvent | null;
}

export function useMessages({ pageSize }: { pageSize?: number } = {}): UseMessages {
  const room = useRoomInstance();
  const s = useSyncExternalStore(room.messages.watch, room.messages.getSnapshot, room.messages.getSnapshot);
  const loadOlder = useCallback(() => room.messages.loadOlder(pageSize), [room, pageSize]);
  const send = useCallback((body: Json) => room.messages.send(body), [room]);
  const retry = useCallback((p: PendingMessage) => p.retry(), []);
  const discard = useCallback((p: PendingMessage) => p.discard(), []);
  return {
    messages: s.messages, pending: s.pending, status: s.status, hasOlder: s.hasOlder, loadingOlder: s.loadingOlder, gap: s.gap,
    loadOlder, send, retry, discard,
  };
}

export interface UsePresence {
  members: PresenceMember[];
  users: UserStatus[];
  me: UserRef | null;
  synced: boolean;
}

export function usePresence(): UsePresence {
  const room = useRoomInstance();
  const client = useClient();
  const s: PresenceState = useSyncExternalStore(room.presence.watch, room.presence.getSnapshot, room.presence.getSnapshot);
  const c = useSyncExternalStore(client.watch, client.getSnapshot, client.getSnapshot);
  return { members: s.members, users: s.users, synced: s.synced, me: c.user };
}

export function useTyping(): { typers: UserRef[]; keystroke: () => void; stop: () => void } {
  const room = useRoomInstance();
  const s = useSyncExternalStore(room.typing.watch, room.typing.getSnapshot, room.typing.getSnapshot);
  const keystroke = useCallback(() => room.typing.keystroke(), [room]);
  const stop = useCallback(() => room.typing.stop(), [room]);
  return { typers: s.typers, keystroke, stop };
}

/** Subscribes to a room event with a handler that may change every render (kept in a ref). */
export function useRoomEvent<K extends keyof RoomEvents>(name: K, handler: (p: RoomEvents[K]) => void): void {
  const room = useRoomInstance();
  const ref = useRef(handler);
  useLayoutEffect(() => { ref.current = handler; });
  useEffect(() => room.on(name, (p) => ref.current(p)), [room, name]);
}

/** The user's rooms with unread counts. */
export function useRoomList(): RoomListState {
  const client = useClient();
  return useSyncExternalStore(client.roomList.watch, client.roomList.getSnapshot, client.roomList.getSnapshot);
}
