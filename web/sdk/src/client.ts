import { fullJitterDelay } from './backoff.js';
import { getCodec, type Codec, type CodecName } from './codec.js';
import { Emitter, Store } from './emitter.js';
import { ParleyError, ParleyUnauthorizedError, toParleyError } from './errors.js';
import type {
  HelloOk, Json, MessageEvent, OpName, Ops, PresenceEvent, ReadEvent, RequestId, RoomListEntry, UserRef,
} from './types.js';
import { Room, type RoomOptions } from './room.js';
import { uuidv7 } from './uuid.js';

/** The subset of the WHATWG WebSocket the SDK uses (browsers' WebSocket and the `ws` package both fit). */
export interface WebSocketLike {
  readonly readyState: number;
  readonly protocol: string;
  binaryType: string;
  send(data: string | Uint8Array): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: unknown) => void) | null;
  onclose: ((ev: { code: number; reason: string; wasClean?: boolean }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
}
export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike;

export type TokenReason = 'initial' | 'expiring' | 'rejected';
export type GetToken = (ctx: { reason: TokenReason }) => Promise<string | null | undefined> | string | null | undefined;

export interface ReconnectOptions { minDelayMs: number; maxDelayMs: number; maxAttempts: number }

export interface ClientOptions {
  /** ws://host:port/ws */
  url: string;
  /** Returns a JWT, or null/undefined to connect as a guest. Throw ParleyUnauthorizedError to give up. */
  getToken?: GetToken;
  codec?: CodecName | Codec;
  /** WebSocket implementation; defaults to globalThis.WebSocket (pass `ws`'s WebSocket in Node 20). */
  WebSocket?: WebSocketConstructor;
  /** Sent in hello as `client` (shown in presence metas). */
  clientName?: string;
  reconnect?: Partial<ReconnectOptions>;
  /** A connection that stayed up this long resets the backoff attempt counter. */
  stableAfterMs?: number;
  /** Per-request reply timeout. */
  requestTimeoutMs?: number;
  /** An unacknowledged message fails (and is never sent again) this long after send(). */
  sendTimeoutMs?: number;
  /** At most this many unacknowledged messages. */
  maxOutbox?: number;
  /** Refresh a token this long before its `exp`. */
  tokenSkewMs?: number;
  /** The server's typing.ttl (not announced by the protocol); keystrokes are sent at most every ttl/2. */
  typingTtlMs?: number;
  /** Receivers drop a typer this long after the last typing event that listed them (safety net). */
  typingExpiryMs?: number;
  /** Defaults for rooms.get(). */
  pageSize?: number;
  maxBackfill?: number;
  /** Delay before a room whose last retain() was released is left. */
  releaseDelayMs?: number;
  /** Listen to window online/visibilitychange to reconnect at once (default: when window exists). */
  wakeUpListeners?: boolean;
  random?: () => number;
  now?: () => number;
}

export type ConnectionStatus = 'idle' | 'connecting' | 'connected' | 'reconnecting' | 'closed';
export type CloseReason = 'client' | 'unauthorized' | 'fatal';

export interface ConnectionState {
  status: ConnectionStatus;
  attempt: number;
  nextRetryInMs: number | null;
  /** When the next retry is due (epoch ms), while reconnecting. */
  nextRetryAt: number | null;
  error: ParleyError | null;
  reason: CloseReason | null;
  user: UserRef | null;
  /** Since when the client is not connected (epoch ms), null while connected. */
  downSince: number | null;
}

export interface StatusChange<S> { previous: S; current: S; reason?: string; error?: ParleyError }

export interface RecoveredEvent { resumed: boolean; replayed: number; rooms: number }

export interface ClientEvents {
  status: StatusChange<ConnectionStatus>;
  error: ParleyError;
  tokenRefreshed: { reason: TokenReason };
  connected: { hello: HelloOk; reconnect: boolean };
  recovered: RecoveredEvent;
  presence: PresenceEvent;
  read: ReadEvent;
  message: MessageEvent;
}

export type PendingStatus = 'queued' | 'sending' | 'sent' | 'failed';
export interface PendingMessage {
  readonly clientMsgId: string;
  readonly room: string;
  readonly body: Json;
  readonly status: PendingStatus;
  readonly createdAt: number;
  readonly error: ParleyError | null;
  readonly promise: Promise<import('./types.js').SendOk>;
  retry(): void;
  discard(): void;
}

interface OutboxEntry {
  cmid: string; room: string; body: Json; status: PendingStatus; createdAt: number; deadline: number;
  error: ParleyError | null; seq?: number; timer?: ReturnType<typeof setTimeout>;
  resolve: (ok: import('./types.js').SendOk) => void; reject: (e: ParleyError) => void;
  handle: PendingMessage; epoch: number;
}

interface PendingRequest {
  resolve: (ok: any) => void; reject: (e: ParleyError) => void; timer: ReturnType<typeof setTimeout>; op: string;
}

const OPEN = 1;

function jwtExpMs(token: string | null): number | null {
  if (!token) return null;
  const part = token.split('.')[1];
  if (!part) return null;
  try {
    const b64 = part.replace(/-/g, '+').replace(/_/g, '/').padEnd(Math.ceil(part.length / 4) * 4, '=');
    const json = typeof atob === 'function' ? atob(b64) : '';
    const claims = JSON.parse(json) as { exp?: number };
    return typeof claims.exp === 'number' ? claims.exp * 1000 : null;
  } catch { return null; }
}

/* Stop listening to a socket we are done with. Its error handler stays (a no-op): a socket closed while
 * still connecting reports an error afterwards, which Node's `ws` throws when nobody listens. */
function detach(ws: WebSocketLike): void {
  ws.onclose = ws.onmessage = ws.onopen = null;
  ws.onerror = () => { /* closed by us */ };
}

export class ParleyClient {
  readonly options: Required<Omit<ClientOptions, 'getToken' | 'WebSocket' | 'clientName' | 'reconnect' | 'codec'>> & {
    reconnect: ReconnectOptions; clientName: string;
  };
  readonly codec: Codec;
  readonly rooms: RoomRegistry;
  readonly roomList: RoomListStore;
  private readonly emitter: Emitter<ClientEvents>;
  private readonly state = new Store<ConnectionState>({
    status: 'idle', attempt: 0, nextRetryInMs: null, nextRetryAt: null, error: null, reason: null, user: null, downSince: null,
  });
  private readonly getTokenFn?: GetToken;
  private readonly WS?: WebSocketConstructor;
  private ws: WebSocketLike | null = null;
  private nextId = 1;
  private pending = new Map<RequestId, PendingRequest>();
  private token: string | null = null;
  private tokenRejected = false;
  private tokenFlight: Promise<string | null> | null = null;
  private resumeToken: string | null = null;
  private hello: HelloOk | null = null;
  private retryTimer: ReturnType<typeof setTimeout> | null = null;
  private refreshTimer: ReturnType<typeof setTimeout> | null = null;
  private outboxPausedUntil = 0;
  private outboxTimer: ReturnType<typeof setTimeout> | null = null;
  private stableTimer: ReturnType<typeof setTimeout> | null = null;
  private connEpoch = 0;
  private everConnected = false;
  private outbox: OutboxEntry[] = [];
  private wakeCleanup: (() => void) | null = null;

  constructor(opts: ClientOptions) {
    this.getTokenFn = opts.getToken;
    this.WS = opts.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    this.codec = getCodec(opts.codec);
    this.options = {
      url: opts.url,
      clientName: opts.clientName ?? 'parley-sdk/0.1.0',
      reconnect: { minDelayMs: 500, maxDelayMs: 20_000, maxAttempts: Infinity, ...opts.reconnect },
      stableAfterMs: opts.stableAfterMs ?? 10_000,
      requestTimeoutMs: opts.requestTimeoutMs ?? 15_000,
      sendTimeoutMs: opts.sendTimeoutMs ?? 60_000,
      maxOutbox: opts.maxOutbox ?? 200,
      tokenSkewMs: opts.tokenSkewMs ?? 30_000,
      typingTtlMs: opts.typingTtlMs ?? 6_000,
      typingExpiryMs: opts.typingExpiryMs ?? 3 * (opts.typingTtlMs ?? 6_000) + 2_000,
      pageSize: opts.pageSize ?? 50,
      maxBackfill: opts.maxBackfill ?? 2_000,
      releaseDelayMs: opts.releaseDelayMs ?? 1_000,
      wakeUpListeners: opts.wakeUpListeners ?? typeof window !== 'undefined',
      random: opts.random ?? Math.random,
      now: opts.now ?? Date.now,
    };
    this.emitter = new Emitter<ClientEvents>((e) => this.reportError(new ParleyError('listener', 'a listener threw', { cause: e })));
    this.rooms = new RoomRegistry(this);
    this.roomList = new RoomListStore(this);
  }

  // ---- public state ------------------------------------------------------------------------------------------

  get status(): ConnectionStatus { return this.state.getSnapshot().status; }
  get user(): UserRef | null { return this.state.getSnapshot().user; }
  get limits() { return this.hello?.limits ?? null; }
  get session(): string | null { return this.hello?.session ?? null; }
  /** Snapshot for useSyncExternalStore. */
  getSnapshot = (): ConnectionState => this.state.getSnapshot();
  watch = (fn: () => void): (() => void) => this.state.watch(fn);

  on<K extends keyof ClientEvents>(name: K, fn: (p: ClientEvents[K]) => void): () => void { return this.emitter.on(name, fn); }
  once<K extends keyof ClientEvents>(name: K, fn: (p: ClientEvents[K]) => void): () => void { return this.emitter.once(name, fn); }

  /** @internal */ emit<K extends keyof ClientEvents>(name: K, p: ClientEvents[K]): void { this.emitter.emit(name, p); }
  /** @internal */ reportError(e: ParleyError): void {
    if (this.emitter.listenerCount('error') > 0) this.emitter.emit('error', e);
  }
  /** @internal */ listenerError = (e: unknown): void => this.reportError(new ParleyError('listener', 'a listener threw', { cause: e }));

  // ---- lifecycle ---------------------------------------------------------------------------------------------

  /** Opens the connection (and keeps it open until disconnect()). Resolves when connected the first time. */
  connect(): Promise<void> {
    const s = this.status;
    if (s === 'connected') return Promise.resolve();
    const ready = new Promise<void>((resolve, reject) => {
      const off = this.state.watch(() => {
        const st = this.state.getSnapshot();
        if (st.status === 'connected') { off(); resolve(); }
        else if (st.status === 'closed') { off(); reject(st.error ?? new ParleyError('closed')); }
      });
    });
    if (s === 'idle' || s === 'closed') {
      this.installWakeUps();
      this.setState({ status: 'connecting', error: null, reason: null, attempt: 0, nextRetryInMs: null, nextRetryAt: null,
        downSince: this.state.getSnapshot().downSince ?? this.options.now() });
      void this.open();
    }
    return ready;
  }

  /** Closes with 1000: the server ends the session at once. Rooms stay registered (connect() rejoins them). */
  disconnect(): void { this.shutdown('client'); }

  /** disconnect() and forget the token, resume token, rooms, lastSeq and outbox. */
  logout(): void {
    this.shutdown('client');
    this.token = null; this.resumeToken = null; this.tokenRejected = false;
    for (const e of [...this.outbox]) this.failEntry(e, new ParleyError('closed', 'logged out'), true);
    this.rooms.releaseAll();
    this.roomList.reset();
  }

  /** Use this token from now on (clears a "refresh required" state). */
  setToken(token: string | null): void { this.token = token; this.tokenRejected = false; }

  /** Reconnect now if waiting for a retry (what online/visibilitychange do). */
  reconnectNow(): void {
    if (this.status !== 'reconnecting' || !this.retryTimer) return;
    clearTimeout(this.retryTimer); this.retryTimer = null;
    void this.open();
  }

  /** For tests and debugging: drop the socket without a close frame handshake, as a network failure would. */
  dropConnection(): void {
    const ws = this.ws as (WebSocketLike & { terminate?: () => void }) | null;
    if (!ws) return;
    if (typeof ws.terminate === 'function') ws.terminate();
    else ws.close(4000, 'dropped');
  }

  private shutdown(reason: CloseReason, error?: ParleyError): void {
    this.connEpoch++;
    if (this.retryTimer) { clearTimeout(this.retryTimer); this.retryTimer = null; }
    if (this.stableTimer) { clearTimeout(this.stableTimer); this.stableTimer = null; }
    if (this.refreshTimer) { clearTimeout(this.refreshTimer); this.refreshTimer = null; }
    const ws = this.ws; this.ws = null;
    if (ws) { detach(ws); try { ws.close(1000, 'bye'); } catch { /* ignore */ } }
    this.failPending(new ParleyError('closed', 'client closed'));
    this.wakeCleanup?.(); this.wakeCleanup = null;
    this.rooms.onDisconnected();
    if (this.status !== 'closed' && this.status !== 'idle') {
      this.setState({ status: 'closed', reason, error: error ?? null, nextRetryInMs: null, nextRetryAt: null,
        downSince: this.options.now() }, reason);
    } else if (this.status === 'idle' && reason !== 'client') {
      this.setState({ status: 'closed', reason, error: error ?? null }, reason);
    }
  }

  private installWakeUps(): void {
    if (!this.options.wakeUpListeners || this.wakeCleanup || typeof window === 'undefined') return;
    const wake = () => this.reconnectNow();
    const vis = () => { if (typeof document !== 'undefined' && document.visibilityState === 'visible') wake(); };
    window.addEventListener('online', wake);
    if (typeof document !== 'undefined') document.addEventListener('visibilitychange', vis);
    this.wakeCleanup = () => {
      window.removeEventListener('online', wake);
      if (typeof document !== 'undefined') document.removeEventListener('visibilitychange', vis);
    };
  }

  private setState(patch: Partial<ConnectionState>, reason?: string): void {
    const prev = this.state.getSnapshot();
    const next = { ...prev, ...patch };
    this.state.set(next);
    if (prev.status !== next.status) {
      this.emitter.emit('status', { previous: prev.status, current: next.status, reason, error: next.error ?? undefined });
    }
  }

  // ---- token -------------------------------------------------------------------------------------------------

  /** Single-flight token fetch: concurrent callers share one getToken() call. */
  refreshToken(reason: TokenReason): Promise<string | null> {
    if (!this.getTokenFn) return Promise.resolve(null);
    if (this.tokenFlight) return this.tokenFlight;
    const epoch = this.connEpoch;
    const flight = (async () => {
      try {
        const t = (await this.getTokenFn!({ reason })) ?? null;
        if (epoch === this.connEpoch) { this.token = t; this.tokenRejected = false; }
        this.emitter.emit('tokenRefreshed', { reason });
        return t;
      } finally { this.tokenFlight = null; }
    })();
    this.tokenFlight = flight;
    return flight;
  }

  private async tokenForConnect(): Promise<string | null> {
    if (!this.getTokenFn) return null;
    if (this.tokenRejected) return this.refreshToken('rejected');
    if (this.token === null) return this.refreshToken('initial');
    const exp = jwtExpMs(this.token);
    if (exp !== null && exp - this.options.tokenSkewMs <= this.options.now()) return this.refreshToken('expiring');
    return this.token;
  }

  // ---- connection --------------------------------------------------------------------------------------------

  private async open(): Promise<void> {
    const epoch = ++this.connEpoch;
    let token: string | null;
    try {
      token = await this.tokenForConnect();
    } catch (e) {
      if (epoch !== this.connEpoch) return;
      if (e instanceof ParleyUnauthorizedError) { this.shutdown('unauthorized', e); return; }
      this.scheduleRetry(toParleyError(e));
      return;
    }
    if (epoch !== this.connEpoch) return;
    if (!this.WS) { this.shutdown('fatal', new ParleyError('config', 'no WebSocket implementation: pass options.WebSocket')); return; }
    let ws: WebSocketLike;
    try {
      ws = new this.WS(this.options.url, this.codec.subprotocol);
    } catch (e) { this.scheduleRetry(new ParleyError('disconnected', 'cannot open WebSocket', { cause: e })); return; }
    ws.binaryType = 'arraybuffer';
    this.ws = ws;
    let helloSent = false;
    ws.onopen = () => {
      if (epoch !== this.connEpoch) return;
      helloSent = true;
      void this.doHello(ws, epoch, token);
    };
    ws.onmessage = (ev) => { if (epoch === this.connEpoch) this.onFrame(ev.data); };
    ws.onerror = () => { /* onclose follows */ };
    ws.onclose = (ev) => {
      if (epoch !== this.connEpoch) return;
      if (ev.code === 4003) { this.shutdown('fatal', new ParleyError('kicked', 'removed from the server (4003)', { status: 4003 })); return; }
      if (ev.code === 4002) this.tokenRejected = !!this.getTokenFn; // expired: fetch a new one before reconnecting
      this.onSocketClosed(new ParleyError('disconnected', `connection closed (${ev.code}${ev.reason ? ' ' + ev.reason : ''})`,
        { status: ev.code }), helloSent);
    };
  }

  private async doHello(ws: WebSocketLike, epoch: number, token: string | null): Promise<void> {
    const req: Ops['hello']['req'] = { client: this.options.clientName };
    if (token) req.token = token;
    if (this.resumeToken) req.resume = this.resumeToken;
    let ok: HelloOk;
    try {
      ok = await this.request('hello', req);
    } catch (e) {
      if (epoch !== this.connEpoch) return;
      const err = toParleyError(e);
      if (err.code === 'auth_failed' || err.code === 'auth_required') {
        if (this.getTokenFn && !this.tokenRejected && err.code === 'auth_failed') {
          this.tokenRejected = true; // next open() asks getToken({reason: 'rejected'})
          this.dropSocket(ws);
          this.scheduleRetry(err, 0);
          return;
        }
        this.shutdown('unauthorized', new ParleyError('unauthorized', err.message, { cause: err }));
        return;
      }
      this.dropSocket(ws);
      if (err.code !== 'disconnected') this.scheduleRetry(err);
      return;
    }
    if (epoch !== this.connEpoch) return;
    const reconnect = this.everConnected;
    this.everConnected = true;
    this.hello = ok;
    this.resumeToken = ok.resume_token ?? null;
    this.setState({ status: 'connected', user: ok.user, error: null, reason: null, nextRetryInMs: null, nextRetryAt: null,
      downSince: null });
    if (this.stableTimer) clearTimeout(this.stableTimer);
    this.stableTimer = setTimeout(() => { if (epoch === this.connEpoch) this.setState({ attempt: 0 }); }, this.options.stableAfterMs);
    this.armTokenRefresh(epoch, token);
    this.emitter.emit('connected', { hello: ok, reconnect });
    const joins = this.rooms.onConnected(ok);
    void this.roomList.refresh().catch(() => { /* rooms op may be unsupported */ });
    if (reconnect) {
      void Promise.allSettled(joins).then((results) => {
        if (epoch !== this.connEpoch) return;
        let replayed = 0;
        for (const r of results) if (r.status === 'fulfilled' && r.value) replayed += r.value.replayed;
        this.emitter.emit('recovered', { resumed: !!ok.resumed, replayed, rooms: joins.length });
      });
    }
    this.flushOutbox();
  }

  /** Proactive refresh: at exp - tokenSkewMs get a new token and hand it to the open connection (`refresh` op). */
  private armTokenRefresh(epoch: number, token: string | null): void {
    if (this.refreshTimer) { clearTimeout(this.refreshTimer); this.refreshTimer = null; }
    const exp = jwtExpMs(token);
    if (exp === null || !this.getTokenFn) return;
    const delay = Math.min(2 ** 31 - 1, Math.max(1000, exp - this.options.tokenSkewMs - this.options.now()));
    this.refreshTimer = setTimeout(async () => {
      this.refreshTimer = null;
      if (epoch !== this.connEpoch) return;
      try {
        const t = await this.refreshToken('expiring');
        if (!t || epoch !== this.connEpoch) return;
        await this.request('refresh', { token: t });
        this.armTokenRefresh(epoch, t);
      } catch (e) {
        if (e instanceof ParleyUnauthorizedError) { this.shutdown('unauthorized', e); return; }
        // else: the server closes with 4002 at exp and the reconnect fetches a token again
      }
    }, delay);
  }

  private dropSocket(ws: WebSocketLike): void {
    detach(ws);
    try { ws.close(4000, 'retry'); } catch { /* ignore */ }
    if (this.ws === ws) this.ws = null;
  }

  private onSocketClosed(err: ParleyError, _helloSent: boolean): void {
    this.ws = null;
    if (this.stableTimer) { clearTimeout(this.stableTimer); this.stableTimer = null; }
    if (this.refreshTimer) { clearTimeout(this.refreshTimer); this.refreshTimer = null; }
    this.failPending(err);
    this.rooms.onDisconnected();
    for (const e of this.outbox) if (e.status === 'sending') this.setEntry(e, { status: 'queued' });
    this.scheduleRetry(err);
  }

  private scheduleRetry(err: ParleyError, delayOverride?: number): void {
    this.connEpoch++;
    const prev = this.state.getSnapshot();
    const attempt = prev.attempt + 1; // reset to 0 after a stable connection (stableAfterMs)
    if (attempt > this.options.reconnect.maxAttempts) { this.shutdown('fatal', err); return; }
    const delay = delayOverride ?? fullJitterDelay(attempt - 1, this.options.reconnect, this.options.random);
    const now = this.options.now();
    this.setState({ status: 'reconnecting', attempt, nextRetryInMs: delay, nextRetryAt: now + delay, error: err,
      downSince: prev.downSince ?? now }, err.message);
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => { this.retryTimer = null; void this.open(); }, delay);
  }

  // ---- frames ------------------------------------------------------------------------------------------------

  /** Sends a request and resolves with its `ok` map (rejects with ParleyError on `err`). */
  request<K extends OpName>(op: K, fields: Ops[K]['req'], opts: { timeoutMs?: number } = {}): Promise<Ops[K]['res']> {
    const ws = this.ws;
    if (!ws || ws.readyState !== OPEN) return Promise.reject(new ParleyError('disconnected', 'not connected'));
    if (op !== 'hello' && op !== 'ping' && this.status !== 'connected') {
      return Promise.reject(new ParleyError('disconnected', 'not connected'));
    }
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new ParleyError('timeout', `no reply to ${op} in ${opts.timeoutMs ?? this.options.requestTimeoutMs} ms`));
      }, opts.timeoutMs ?? this.options.requestTimeoutMs);
      this.pending.set(id, { resolve, reject, timer, op });
      try {
        ws.send(this.codec.encode({ ...fields, id, op }));
      } catch (e) {
        clearTimeout(timer); this.pending.delete(id);
        reject(new ParleyError('disconnected', 'send failed', { cause: e }));
      }
    });
  }

  private failPending(err: ParleyError): void {
    const all = [...this.pending.values()];
    this.pending.clear();
    for (const p of all) { clearTimeout(p.timer); p.reject(err); }
  }

  private onFrame(data: unknown): void {
    let f: Record<string, unknown>;
    try { f = this.codec.decode(data); } catch (e) { this.reportError(toParleyError(e)); return; }
    if ('re' in f) {
      const re = f.re as RequestId | null;
      if (re === null) {
        const err = f.err as { code: string; msg: string } | undefined;
        this.reportError(new ParleyError((err?.code as never) ?? 'protocol', err?.msg ?? 'unattributed error reply'));
        return;
      }
      const p = this.pending.get(re);
      if (!p) return;
      this.pending.delete(re);
      clearTimeout(p.timer);
      if (f.err) {
        const err = f.err as { code: string; msg: string; retry_after?: number };
        p.reject(new ParleyError(err.code as never, err.msg, { retryAfterMs: typeof err.retry_after === 'number' ? err.retry_after : undefined }));
      } else p.resolve(f.ok ?? {});
      return;
    }
    if (typeof f.ev !== 'string') return;
    switch (f.ev) {
      case 'message': {
        const m = f as unknown as MessageEvent;
        this.rooms.peek(m.room)?._onMessage(m);
        this.roomList._onMessage(m);
        this.emitter.emit('message', m);
        break;
      }
      case 'join': case 'leave': {
        const room = this.rooms.peek(f.room as string);
        room?.presence._onMemberEvent(f.ev, f.user as UserRef);
        break;
      }
      case 'presence': {
        const p = f as unknown as PresenceEvent;
        for (const r of this.rooms.all()) r.presence._onPresence(p);
        this.emitter.emit('presence', p);
        break;
      }
      case 'typing': {
        this.rooms.peek(f.room as string)?.typing._onTyping(f.users as UserRef[]);
        break;
      }
      case 'kicked': {
        this.rooms.peek(f.room as string)?._onKicked(String(f.reason ?? ''));
        break;
      }
      case 'read': {
        const r = f as unknown as ReadEvent;
        this.roomList._onRead(r.room, r.seq);
        this.emitter.emit('read', r);
        break;
      }
      default: break; // unknown events are ignored
    }
  }

  // ---- convenience ops ---------------------------------------------------------------------------------------

  ping(): Promise<{ ts: number }> { return this.request('ping', {}); }
  /** Rooms the user has joined (any device) with head seq, read marker and unread count. */
  async listRooms(): Promise<RoomListEntry[]> { return (await this.request('rooms', {})).rooms; }
  /** Moves the user's read marker (forward only). */
  async markRead(room: string, seq: number): Promise<number> {
    this.roomList._onRead(room, seq);
    const ok = await this.request('read', { room, seq });
    this.roomList._onRead(room, ok.read);
    return ok.read;
  }
  /** Online status and last_seen of users (and their presence events from now on). */
  async queryPresence(users: string[]) {
    const ok = await this.request('presence', { users });
    for (const s of ok.users) for (const r of this.rooms.all()) r.presence._onStatus(s.user, s.online, s.last_seen);
    return ok.users;
  }

  // ---- outbox ------------------------------------------------------------------------------------------------

  /** @internal used by room.messages.send */
  enqueue(room: string, body: Json): PendingMessage {
    const now = this.options.now();
    let resolve!: OutboxEntry['resolve']; let reject!: OutboxEntry['reject'];
    const promise = new Promise<import('./types.js').SendOk>((res, rej) => { resolve = res; reject = rej; });
    promise.catch(() => { /* observed through status; avoid unhandled rejections */ });
    const entry = { cmid: uuidv7(now), room, body, status: 'queued', createdAt: now, deadline: now + this.options.sendTimeoutMs,
      error: null, resolve, reject, epoch: 0 } as unknown as OutboxEntry;
    const self = this;
    entry.handle = {
      get clientMsgId() { return entry.cmid; }, get room() { return entry.room; }, get body() { return entry.body; },
      get status() { return entry.status; }, get createdAt() { return entry.createdAt; }, get error() { return entry.error; },
      promise,
      retry() { self.retryEntry(entry); },
      discard() { self.discardEntry(entry); },
    };
    const live = this.outbox.filter((e) => e.status !== 'failed').length;
    if (live >= this.options.maxOutbox) {
      entry.status = 'failed';
      entry.error = new ParleyError('outbox_full', `more than ${this.options.maxOutbox} messages are waiting`);
      reject(entry.error);
      return entry.handle;
    }
    this.outbox.push(entry);
    this.armTimeout(entry);
    this.rooms.peek(room)?._outboxChanged();
    this.flushOutbox();
    return entry.handle;
  }

  /** @internal */ outboxFor(room: string): PendingMessage[] {
    return this.outbox.filter((e) => e.room === room).map((e) => e.handle);
  }
  /** All unacknowledged (and failed, not discarded) messages. */
  get pendingMessages(): PendingMessage[] { return this.outbox.map((e) => e.handle); }

  private armTimeout(e: OutboxEntry): void {
    if (e.timer) clearTimeout(e.timer);
    e.timer = setTimeout(() => {
      if (e.status === 'queued' || e.status === 'sending') this.failEntry(e, new ParleyError('timeout', 'message not acknowledged in time'));
    }, Math.max(0, e.deadline - this.options.now()));
  }

  private setEntry(e: OutboxEntry, patch: Partial<OutboxEntry>): void {
    Object.assign(e, patch);
    this.rooms.peek(e.room)?._outboxChanged();
  }

  private failEntry(e: OutboxEntry, err: ParleyError, remove = false): void {
    if (e.timer) clearTimeout(e.timer);
    e.epoch++;
    this.setEntry(e, { status: 'failed', error: err });
    if (remove) this.removeEntry(e);
    e.reject(err);
  }

  private removeEntry(e: OutboxEntry): void {
    if (e.timer) clearTimeout(e.timer);
    const i = this.outbox.indexOf(e);
    if (i >= 0) this.outbox.splice(i, 1);
    this.rooms.peek(e.room)?._outboxChanged();
  }

  private retryEntry(e: OutboxEntry): void {
    if (e.status !== 'failed') return;
    const now = this.options.now();
    let resolve!: OutboxEntry['resolve']; let reject!: OutboxEntry['reject'];
    const promise = new Promise<import('./types.js').SendOk>((res, rej) => { resolve = res; reject = rej; });
    promise.catch(() => {});
    Object.assign(e, { resolve, reject, deadline: now + this.options.sendTimeoutMs, error: null });
    (e.handle as { promise: Promise<unknown> }).promise = promise;
    if (!this.outbox.includes(e)) this.outbox.push(e);
    this.setEntry(e, { status: 'queued' });
    this.armTimeout(e);
    this.flushOutbox();
  }

  private discardEntry(e: OutboxEntry): void {
    if (e.status === 'queued' || e.status === 'sending') this.failEntry(e, new ParleyError('closed', 'discarded'));
    this.removeEntry(e);
  }

  /** @internal the echo of one of our messages arrived (by cmid): it replaces the pending entry. */
  _echo(m: MessageEvent): void {
    const e = this.outbox.find((x) => x.cmid === m.cmid && x.room === m.room);
    if (!e || e.status === 'sending') return; // the ack (which precedes the echo) settles a message in flight
    if (e.status !== 'sent') {
      if (e.timer) clearTimeout(e.timer);
      e.epoch++;
      e.resolve({ room: m.room, seq: m.seq, mid: m.mid, ts: m.ts, duplicate: true });
    }
    this.removeEntry(e);
  }

  /** @internal sends queued messages of joined rooms, at most maxInFlight at a time, pausing on rate_limited. */
  flushOutbox(): void {
    if (this.status !== 'connected') return;
    const now = this.options.now();
    if (now < this.outboxPausedUntil) { this.scheduleFlush(this.outboxPausedUntil - now); return; }
    let inFlight = this.outbox.filter((e) => e.status === 'sending').length;
    for (const e of this.outbox) {
      if (inFlight >= MAX_IN_FLIGHT) break;
      if (e.status !== 'queued') continue;
      const room = this.rooms.peek(e.room);
      if (!room || room.status !== 'joined') continue;
      const epoch = ++e.epoch;
      inFlight++;
      this.setEntry(e, { status: 'sending' });
      this.request('send', { room: e.room, body: e.body, cmid: e.cmid }).then((ok) => {
        if (epoch !== e.epoch) return;
        if (e.timer) clearTimeout(e.timer);
        this.setEntry(e, { status: 'sent', seq: ok.seq });
        e.resolve(ok);
        const r = this.rooms.peek(e.room);
        if (!r || r.lastSeq >= ok.seq || !this.outbox.includes(e)) this.removeEntry(e);
        // else the echo (which follows the ack) removes it
        this.flushOutbox();
      }, (err: ParleyError) => {
        if (epoch !== e.epoch) return;
        if (err.retryable || err.code === 'not_joined' || err.code === 'closed') {
          this.setEntry(e, { status: 'queued' });
          if (err.code === 'rate_limited') {
            this.outboxPausedUntil = Math.max(this.outboxPausedUntil, this.options.now() + (err.retryAfterMs ?? 1000));
            this.scheduleFlush(this.outboxPausedUntil - this.options.now());
          } else if (err.code === 'overloaded' || err.code === 'store_unavailable' || err.code === 'internal' || err.code === 'timeout') {
            this.scheduleFlush(500 + Math.floor(this.options.random() * 500));
          }
        } else {
          this.failEntry(e, err);
          this.flushOutbox();
        }
      });
    }
  }

  private scheduleFlush(ms: number): void {
    if (this.outboxTimer) return;
    this.outboxTimer = setTimeout(() => { this.outboxTimer = null; this.flushOutbox(); }, Math.max(0, ms));
  }
}

const MAX_IN_FLIGHT = 16;

/** Rooms by name: get() returns the same Room for a name. */
export class RoomRegistry {
  private map = new Map<string, Room>();
  private refs = new Map<string, number>();
  private releaseTimers = new Map<string, ReturnType<typeof setTimeout>>();
  constructor(private client: ParleyClient) {}

  get(name: string, opts?: RoomOptions): Room {
    let r = this.map.get(name);
    if (r) {
      if (opts && !r.sameOptions(opts)) throw new ParleyError('config', `room ${name} already exists with other options`);
      return r;
    }
    r = new Room(this.client, name, opts ?? {});
    this.map.set(name, r);
    return r;
  }
  /** The room if it exists, without creating it. */
  peek(name: string): Room | undefined { return this.map.get(name); }
  all(): Room[] { return [...this.map.values()]; }

  /** Reference-counted use of a joined room: the returned function releases it (left after releaseDelayMs). */
  retain(name: string, opts?: RoomOptions): { room: Room; release: () => void } {
    const room = this.get(name, opts);
    this.refs.set(name, (this.refs.get(name) ?? 0) + 1);
    const t = this.releaseTimers.get(name);
    if (t) { clearTimeout(t); this.releaseTimers.delete(name); }
    if (room.status === 'idle' || room.status === 'left' || room.status === 'failed') room.join().catch(() => {});
    let done = false;
    return {
      room,
      release: () => {
        if (done) return; done = true;
        const n = (this.refs.get(name) ?? 1) - 1;
        this.refs.set(name, n);
        if (n > 0) return;
        this.releaseTimers.set(name, setTimeout(() => {
          this.releaseTimers.delete(name);
          if ((this.refs.get(name) ?? 0) === 0) { this.refs.delete(name); this.release(name); }
        }, this.client.options.releaseDelayMs));
      },
    };
  }

  /** Leaves the room (if joined) and forgets it. */
  release(name: string): void {
    const r = this.map.get(name);
    if (!r) return;
    this.map.delete(name);
    r._release();
  }
  releaseAll(): void { for (const n of [...this.map.keys()]) this.release(n); }

  /** @internal */ onConnected(hello: HelloOk): Promise<{ replayed: number } | null>[] {
    return this.all().filter((r) => r.wantsJoin).map((r) => r._rejoin(hello).catch(() => null));
  }
  /** @internal */ onDisconnected(): void { for (const r of this.all()) r._onDisconnected(); }
}

export interface RoomListState { rooms: RoomListEntry[]; loaded: boolean; error: ParleyError | null }

/** The user's room list with unread counts (rooms op), kept current by message and read events. */
export class RoomListStore {
  private store = new Store<RoomListState>({ rooms: [], loaded: false, error: null });
  constructor(private client: ParleyClient) {}
  getSnapshot = (): RoomListState => this.store.getSnapshot();
  watch = (fn: () => void) => this.store.watch(fn);

  async refresh(): Promise<RoomListEntry[]> {
    try {
      const rooms = await this.client.listRooms();
      const cur = new Map(this.store.getSnapshot().rooms.map((r) => [r.room, r]));
      const merged = rooms.map((r) => {
        const c = cur.get(r.room);
        const seq = Math.max(r.seq, c?.seq ?? 0); const read = Math.max(r.read, c?.read ?? 0);
        return { room: r.room, seq, read, unread: Math.max(0, seq - read) };
      });
      for (const c of cur.values()) if (!merged.some((m) => m.room === c.room)) merged.push(c);
      this.store.set({ rooms: merged, loaded: true, error: null });
      return merged;
    } catch (e) {
      this.store.update((s) => ({ ...s, error: toParleyError(e) }));
      throw e;
    }
  }

  /** Adds a room locally (after a join) so it shows before the next refresh. */
  _ensure(room: string, seq: number): void {
    const s = this.store.getSnapshot();
    if (s.rooms.some((r) => r.room === room)) { this._onHead(room, seq); return; }
    this.store.set({ ...s, rooms: [...s.rooms, { room, seq, read: seq, unread: 0 }] });
  }
  _remove(room: string): void {
    const s = this.store.getSnapshot();
    this.store.set({ ...s, rooms: s.rooms.filter((r) => r.room !== room) });
  }
  _onMessage(m: MessageEvent): void {
    this._onHead(m.room, m.seq);
    if (m.from.id === this.client.user?.id) this._onRead(m.room, m.seq); // own messages are read
  }
  private _onHead(room: string, seq: number): void {
    const s = this.store.getSnapshot();
    let changed = false;
    const rooms = s.rooms.map((r) => {
      if (r.room !== room || seq <= r.seq) return r;
      changed = true; return { ...r, seq, unread: Math.max(0, seq - r.read) };
    });
    if (changed) this.store.set({ ...s, rooms });
  }
  _onRead(room: string, read: number): void {
    const s = this.store.getSnapshot();
    let changed = false;
    const rooms = s.rooms.map((r) => {
      if (r.room !== room || read <= r.read) return r;
      changed = true; return { ...r, read, unread: Math.max(0, r.seq - read) };
    });
    if (changed) this.store.set({ ...s, rooms });
  }
  reset(): void { this.store.set({ rooms: [], loaded: false, error: null }); }
}

export function createParleyClient(opts: ClientOptions): ParleyClient { return new ParleyClient(opts); }
