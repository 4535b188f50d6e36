import type { ParleyClient, PendingMessage, StatusChange } from './client.js';
import { Emitter, Store } from './emitter.js';
import { ParleyError, toParleyError } from './errors.js';
import type { ConnMeta, HelloOk, Json, MessageEvent, PresenceEvent, UserRef } from './types.js';

export interface RoomOptions {
  /** Seed lastSeq (e.g. from storage): the first join replays every message after it. */
  since?: number;
  /** Messages per history page (initial page and loadOlder). */
  pageSize?: number;
  /** Most messages fetched from history to close a gap before giving up with a `gap` event. */
  maxBackfill?: number;
}

export type RoomStatus = 'idle' | 'joining' | 'joined' | 'rejoining' | 'left' | 'failed';

export interface CaughtUpEvent { resumed: boolean; replayed: number; fromSeq: number; toSeq: number }
export interface GapEvent { fromSeq: number; toSeq: number; reason: 'too_many' | 'unavailable' | 'error' }

export interface RoomEvents {
  status: StatusChange<RoomStatus>;
  message: MessageEvent;
  caughtUp: CaughtUpEvent;
  gap: GapEvent;
}

export interface MessagesState {
  /** Loaded messages in seq order, no duplicates. */
  messages: MessageEvent[];
  /** Own messages not yet in `messages`: queued, sending, sent-but-not-echoed, failed. */
  pending: PendingMessage[];
  status: 'loading' | 'ready' | 'error';
  hasOlder: boolean;
  loadingOlder: boolean;
  gap: GapEvent | null;
  error: ParleyError | null;
}

const HISTORY_PAGE_MAX = 200;

export class Room {
  readonly name: string;
  readonly messages: RoomMessages;
  readonly presence: RoomPresence;
  readonly typing: RoomTyping;
  /** The last seq delivered in order (0: none). Sent as `since` on every rejoin. */
  lastSeq: number;
  /** @internal */ wantsJoin = false;
  private synced: boolean;
  private everJoined = false;
  private epoch = 0;
  private held = new Map<number, MessageEvent>();
  private joinInFlight = false;
  private recoveredCount = 0;
  private backfill: { epoch: number; promise: Promise<void> } | null = null;
  private readonly emitter: Emitter<RoomEvents>;
  private readonly statusStore = new Store<{ status: RoomStatus; error: ParleyError | null }>({ status: 'idle', error: null });
  private released = false;
  /** @internal */ readonly opts: Required<RoomOptions> & { sinceGiven: boolean };

  constructor(readonly client: ParleyClient, name: string, opts: RoomOptions) {
    this.name = name;
    this.opts = {
      since: opts.since ?? 0,
      pageSize: opts.pageSize ?? client.options.pageSize,
      maxBackfill: opts.maxBackfill ?? client.options.maxBackfill,
      sinceGiven: opts.since !== undefined,
    };
    this.lastSeq = this.opts.since;
    this.synced = this.opts.sinceGiven;
    this.emitter = new Emitter<RoomEvents>(client.listenerError);
    this.messages = new RoomMessages(this);
    this.presence = new RoomPresence(this);
    this.typing = new RoomTyping(this);
  }

  /** @internal */ sameOptions(o: RoomOptions): boolean {
    return (o.since === undefined || o.since === this.opts.since) && (o.pageSize === undefined || o.pageSize === this.opts.pageSize)
      && (o.maxBackfill === undefined || o.maxBackfill === this.opts.maxBackfill);
  }

  get status(): RoomStatus { return this.statusStore.getSnapshot().status; }
  get error(): ParleyError | null { return this.statusStore.getSnapshot().error; }
  getSnapshot = () => this.statusStore.getSnapshot();
  watch = (fn: () => void) => this.statusStore.watch(fn);

  on<K extends keyof RoomEvents>(name: K, fn: (p: RoomEvents[K]) => void): () => void { return this.emitter.on(name, fn); }
  once<K extends keyof RoomEvents>(name: K, fn: (p: RoomEvents[K]) => void): () => void { return this.emitter.once(name, fn); }
  /** @internal */ emit<K extends keyof RoomEvents>(name: K, p: RoomEvents[K]): void { this.emitter.emit(name, p); }

  private setStatus(status: RoomStatus, error: ParleyError | null = null, reason?: string): void {
    const prev = this.statusStore.getSnapshot();
    if (prev.status === status && prev.error === error) return;
    this.statusStore.set({ status, error });
    if (prev.status !== status) this.emitter.emit('status', { previous: prev.status, current: status, reason, error: error ?? undefined });
  }

  /** Joins (and keeps the room joined across reconnects). Resolves once joined and caught up. */
  join(): Promise<void> {
    if (this.released) return Promise.reject(new ParleyError('released', 'room was released'));
    this.wantsJoin = true;
    if (this.status === 'joined') return Promise.resolve();
    const done = new Promise<void>((resolve, reject) => {
      const off = this.statusStore.watch(() => {
        const s = this.statusStore.getSnapshot();
        if (s.status === 'joined') { off(); resolve(); }
        else if (s.status === 'failed' || s.status === 'left') { off(); reject(s.error ?? new ParleyError('released', 'room left')); }
      });
    });
    done.catch(() => {});
    if (this.client.status === 'connected' && !this.joinInFlight) void this.doJoin(false).catch(() => {});
    else if (this.status === 'idle' || this.status === 'left' || this.status === 'failed') this.setStatus('joining');
    return done;
  }

  /** Leaves the room on this session; `forget` also removes it from the user's room list. */
  async leave(opts: { forget?: boolean } = {}): Promise<void> {
    this.wantsJoin = false;
    this.epoch++;
    this.joinInFlight = false;
    this.typing._clear();
    this.presence._reset();
    const wasJoined = this.status === 'joined';
    this.setStatus('left');
    if (opts.forget) this.client.roomList._remove(this.name);
    if (wasJoined && this.client.status === 'connected') {
      try { await this.client.request('leave', { room: this.name, ...(opts.forget ? { forget: true } : {}) }); }
      catch (e) { if (toParleyError(e).code !== 'not_joined' && toParleyError(e).code !== 'disconnected') throw e; }
    }
  }

  /** Sends a message through the outbox. */
  send(body: Json): PendingMessage { return this.messages.send(body); }

  /** Reads stored messages (the raw history op). */
  history(q: { before?: number; after?: number; limit?: number }) {
    return this.client.request('history', { room: this.name, ...q });
  }

  // ---- internals ---------------------------------------------------------------------------------------------

  /** @internal */ _release(): void {
    if (this.status === 'joined') void this.leave().catch(() => {});
    this.wantsJoin = false;
    this.released = true;
    this.epoch++;
    this.setStatus('left', new ParleyError('released', 'room was released'));
    this.typing._clear();
    this.emitter.clear();
  }

  /** @internal */ _onDisconnected(): void {
    this.epoch++;
    this.joinInFlight = false;
    this.typing._clear();
    if (this.wantsJoin && (this.status === 'joined' || this.status === 'joining' || this.status === 'rejoining')) {
      this.setStatus(this.everJoined ? 'rejoining' : 'joining', null, 'disconnected');
    }
  }

  /** @internal a `kicked` event: the server removed this connection from the room. */
  _onKicked(reason: string): void {
    this.wantsJoin = false;
    this.epoch++;
    this.joinInFlight = false;
    this.typing._clear();
    this.presence._reset();
    this.setStatus('failed', new ParleyError('kicked', reason || 'removed from the room', { retryable: false }), 'kicked');
  }

  /** @internal */ _rejoin(hello: HelloOk): Promise<{ replayed: number } | null> { return this.doJoin(!!hello.resumed); }

  private async doJoin(resumed: boolean): Promise<{ replayed: number } | null> {
    const epoch = ++this.epoch;
    this.joinInFlight = true;
    this.recoveredCount = 0;
    this.setStatus(this.everJoined ? 'rejoining' : 'joining');
    this.typing._clear();
    this.presence._beginSync();
    const fromSeq = this.lastSeq + 1;
    const since = this.synced ? this.lastSeq : undefined;
    let ok;
    try {
      ok = await this.client.request('join', since === undefined ? { room: this.name } : { room: this.name, since });
    } catch (e) {
      if (epoch !== this.epoch) return null;
      this.joinInFlight = false;
      const err = toParleyError(e);
      if ((err.code === 'timeout' || err.code === 'rate_limited' || err.code === 'overloaded' || err.code === 'internal'
        || err.code === 'store_unavailable') && this.client.status === 'connected') {
        setTimeout(() => { if (epoch === this.epoch && this.wantsJoin) void this.doJoin(resumed).catch(() => {}); },
          err.retryAfterMs ?? 1000);
        throw err;
      }
      if (!err.retryable && err.code !== 'closed') { this.wantsJoin = false; this.setStatus('failed', err, err.code); }
      throw err;
    }
    if (epoch !== this.epoch) return null;
    this.joinInFlight = false;
    if (!this.synced) {
      this.lastSeq = ok.seq;
      this.synced = true;
      this.drain();
      await this.messages._loadInitial(epoch);
    } else {
      await this.ensureBackfill(ok.seq, epoch);
    }
    if (epoch !== this.epoch) return null;
    this.everJoined = true;
    this.messages._ready();
    this.setStatus('joined');
    this.client.roomList._ensure(this.name, this.lastSeq);
    const replayed = this.recoveredCount;
    this.emitter.emit('caughtUp', { resumed, replayed, fromSeq, toSeq: this.lastSeq });
    void this.presence.sync().catch(() => {});
    this.client.flushOutbox();
    return { replayed };
  }

  /** @internal */ _epoch(): number { return this.epoch; }

  /** @internal a `message` event of this room. */
  _onMessage(m: MessageEvent): void {
    this.presence._sawUser(m.from);
    if (!this.synced) { this.held.set(m.seq, m); return; }
    if (m.seq <= this.lastSeq) { this.client._echo(m); return; }
    this.held.set(m.seq, m);
    this.drain();
    if (this.held.size > 0 && !this.joinInFlight) void this.ensureBackfill(this.lastSeq, this.epoch).catch(() => {});
  }

  /** Delivers held messages that follow lastSeq, in order. */
  private drain(): void {
    const delivered: MessageEvent[] = [];
    for (const s of [...this.held.keys()]) if (s <= this.lastSeq) this.held.delete(s);
    for (;;) {
      const m = this.held.get(this.lastSeq + 1);
      if (!m) break;
      this.held.delete(m.seq);
      this.lastSeq = m.seq; // advance before emitting (a listener may start a rejoin)
      this.recoveredCount++;
      delivered.push(m);
    }
    if (!delivered.length) return;
    this.messages._append(delivered);
    for (const m of delivered) {
      this.client._echo(m);
      // Typing is not cleared locally on a message: the server clears it on send and its (batched) typing events
      // are the truth; a local clear could diverge when the typist starts again within one typing.interval.
      this.emitter.emit('message', m);
    }
  }

  private ensureBackfill(head: number, epoch: number): Promise<void> {
    if (this.backfill && this.backfill.epoch === epoch) return this.backfill.promise;
    const promise = this.runBackfill(head, epoch).finally(() => {
      if (this.backfill?.promise === promise) this.backfill = null;
    });
    this.backfill = { epoch, promise };
    return promise;
  }

  private async runBackfill(head: number, epoch: number): Promise<void> {
    for (;;) {
      if (epoch !== this.epoch) return;
      const minHeld = this.held.size ? Math.min(...this.held.keys()) : Infinity;
      const target = minHeld !== Infinity ? minHeld - 1 : head;
      if (this.lastSeq >= target) {
        if (this.held.size) { this.drain(); continue; }
        return;
      }
      if (target - this.lastSeq > this.opts.maxBackfill) { this.skipGap(target, 'too_many'); continue; }
      let res;
      try {
        res = await this.history({ after: this.lastSeq, limit: Math.min(HISTORY_PAGE_MAX, target - this.lastSeq) });
      } catch (e) {
        if (epoch !== this.epoch) return;
        const err = toParleyError(e);
        if (err.code === 'disconnected' || err.code === 'closed') return; // the rejoin recovers
        this.skipGap(target, 'error');
        continue;
      }
      if (epoch !== this.epoch) return;
      const before = this.lastSeq;
      for (const m of res.messages) if (m.seq > this.lastSeq) this.held.set(m.seq, m);
      this.drain();
      if (this.lastSeq === before) {
        // The next message is not in the store (retention): skip to what is.
        const first = res.messages.find((m) => m.seq > this.lastSeq);
        this.skipGap(first ? first.seq - 1 : target, 'unavailable');
      }
    }
  }

  private skipGap(toSeq: number, reason: GapEvent['reason']): void {
    const gap: GapEvent = { fromSeq: this.lastSeq + 1, toSeq, reason };
    this.lastSeq = toSeq;
    this.messages._reset(gap);
    this.emitter.emit('gap', gap);
    this.drain();
  }

  /** @internal */ _outboxChanged(): void { this.messages._publish(); }
}

/** The room's message list (merged history + live + own pending messages) and the send side. */
export class RoomMessages {
  private items: MessageEvent[] = [];
  private olderExhausted = false;
  private loadingOlder = false;
  private status: MessagesState['status'] = 'loading';
  private gap: GapEvent | null = null;
  private error: ParleyError | null = null;
  private store: Store<MessagesState>;
  private olderFlight: Promise<number> | null = null;

  constructor(private room: Room) {
    this.store = new Store<MessagesState>(this.build());
  }

  getSnapshot = (): MessagesState => this.store.getSnapshot();
  watch = (fn: () => void) => this.store.watch(fn);

  /** New messages, in order, as they are delivered. */
  subscribe(fn: (m: MessageEvent) => void): { unsubscribe: () => void } {
    return { unsubscribe: this.room.on('message', fn) };
  }

  /** Queues a message in the outbox; it is sent (and resent with the same cmid after reconnects) until acked. */
  send(body: Json): PendingMessage {
    this.room.typing._onSend();
    return this.room.client.enqueue(this.room.name, body);
  }

  /** Loads the page of messages before the oldest loaded one; resolves with how many were added. */
  loadOlder(limit = this.room.opts.pageSize): Promise<number> {
    if (this.olderFlight) return this.olderFlight;
    if (!this.hasOlder()) return Promise.resolve(0);
    const before = this.items.length ? this.items[0]!.seq : this.room.lastSeq + 1;
    this.loadingOlder = true; this._publish();
    const flight = this.room.history({ before, limit: Math.min(limit, HISTORY_PAGE_MAX) }).then((res) => {
      const n = this.merge(res.messages);
      const first = res.messages[0]?.seq ?? before;
      if (!res.more || first <= 1) this.olderExhausted = true;
      return n;
    }).finally(() => { this.loadingOlder = false; this.olderFlight = null; this._publish(); });
    this.olderFlight = flight;
    return flight;
  }

  private hasOlder(): boolean {
    if (this.olderExhausted) return false;
    const first = this.items.length ? this.items[0]!.seq : this.room.lastSeq + 1;
    return first > 1;
  }

  private merge(msgs: MessageEvent[]): number {
    if (!msgs.length) return 0;
    const have = new Set(this.items.map((m) => m.seq));
    const add = msgs.filter((m) => !have.has(m.seq) && m.seq <= this.room.lastSeq);
    for (const m of add) this.room.presence._sawUser(m.from);
    if (!add.length) return 0;
    this.items = [...this.items, ...add].sort((a, b) => a.seq - b.seq);
    return add.length;
  }

  /** @internal */ async _loadInitial(epoch: number): Promise<void> {
    if (this.room.lastSeq === 0) { this.olderExhausted = true; return; }
    try {
      const res = await this.room.history({ before: this.room.lastSeq + 1, limit: Math.min(this.room.opts.pageSize, HISTORY_PAGE_MAX) });
      if (epoch !== this.room._epoch()) return;
      this.merge(res.messages);
      const first = res.messages[0]?.seq ?? 1;
      if (!res.more || first <= 1) this.olderExhausted = true;
    } catch (e) {
      this.error = toParleyError(e);
    }
  }
  /** @internal */ _append(msgs: MessageEvent[]): void {
    const last = this.items[this.items.length - 1];
    if (!last || msgs[0]!.seq > last.seq) this.items = [...this.items, ...msgs];
    else this.merge(msgs);
    if (this.items.length === msgs.length && msgs[0]!.seq > 1 && !this.olderExhausted) { /* older pages may exist */ }
    this._publish();
  }
  /** @internal */ _reset(gap: GapEvent): void {
    this.items = [];
    this.olderExhausted = false;
    this.gap = gap;
    this._publish();
  }
  /** @internal */ _ready(): void { this.status = 'ready'; this._publish(); }

  /** @internal */ _publish(): void { this.store.set(this.build()); }

  private build(): MessagesState {
    const seqs = new Set(this.items.map((m) => m.cmid));
    const pending = this.room ? this.room.client.outboxFor(this.room.name).filter((p) => !seqs.has(p.clientMsgId)) : [];
    return {
      messages: this.items,
      pending,
      status: this.status,
      hasOlder: this.room ? this.hasOlder() : false,
      loadingOlder: this.loadingOlder,
      gap: this.gap,
      error: this.error,
    };
  }
}

export interface PresenceMember { user: UserRef; since: number | null; connections: ConnMeta[] }
export interface UserStatus { user: UserRef; online: boolean; lastSeen: number | null; present: boolean }
export interface PresenceState {
  /** Users present in the room now (one entry per user, however many connections), by name. */
  members: PresenceMember[];
  /** Everyone this room has shown us (members, senders, users who left), with online status and last seen. */
  users: UserStatus[];
  synced: boolean;
}
export interface PresenceEvents {
  sync: PresenceState;
  join: { member: PresenceMember; isFirst: boolean };
  leave: { user: UserRef; isLast: boolean };
  update: UserStatus;
}

/** Room presence: a snapshot from the `presence` op, then `join`/`leave`/`presence` events (Phoenix-style sync). */
export class RoomPresence {
  private members = new Map<string, PresenceMember>();
  private users = new Map<string, UserStatus>();
  private syncing = false;
  private synced = false;
  private buffered: (() => void)[] = [];
  private store = new Store<PresenceState>({ members: [], users: [], synced: false });
  private emitter: Emitter<PresenceEvents>;
  private queried = new Set<string>();

  constructor(private room: Room) { this.emitter = new Emitter<PresenceEvents>(room.client.listenerError); }

  getSnapshot = (): PresenceState => this.store.getSnapshot();
  watch = (fn: () => void) => this.store.watch(fn);
  on<K extends keyof PresenceEvents>(name: K, fn: (p: PresenceEvents[K]) => void): () => void { return this.emitter.on(name, fn); }

  /** Fetches the member snapshot and replaces the set (events that arrive meanwhile are applied after it). */
  async sync(): Promise<void> {
    const epoch = this.room._epoch();
    this.syncing = true;
    const me = this.room.client.user;
    try {
      const ok = await this.room.client.request('presence', { room: this.room.name });
      if (epoch !== this.room._epoch()) return;
      this.members.clear();
      for (const m of ok.members ?? []) {
        this.members.set(m.user.id, { user: m.user, since: m.since ?? null, connections: m.connections ?? [] });
      }
    } catch {
      if (epoch !== this.room._epoch()) return;
      // presence op unavailable: keep what join/leave events told us
    }
    if (me && !this.members.has(me.id)) this.members.set(me.id, { user: me, since: null, connections: [] });
    for (const m of this.members.values()) this.setUser(m.user, true, null, true);
    for (const u of this.users.values()) if (u.present && !this.members.has(u.user.id)) this.setUser(u.user, false, u.lastSeen, false);
    this.syncing = false;
    this.synced = true;
    const buf = this.buffered; this.buffered = [];
    for (const f of buf) f();
    this.publish();
    this.emitter.emit('sync', this.store.getSnapshot());
    void this.lookupUnknown();
  }

  /** Online status and last seen of users not present in the room (they also send presence events from now on). */
  private async lookupUnknown(): Promise<void> {
    const ids = [...this.users.values()].filter((u) => !u.present && !this.queried.has(u.user.id)).map((u) => u.user.id).slice(0, 100);
    if (!ids.length || this.room.client.status !== 'connected') return;
    for (const id of ids) this.queried.add(id);
    try { await this.room.client.queryPresence(ids); } catch { /* presence op unavailable */ }
  }

  private setUser(user: UserRef, online: boolean, lastSeen: number | null, present: boolean): void {
    const prev = this.users.get(user.id);
    this.users.set(user.id, { user, online, lastSeen: lastSeen ?? (online ? null : prev?.lastSeen ?? null), present });
  }

  private publish(): void {
    const members = [...this.members.values()].sort((a, b) => a.user.name.localeCompare(b.user.name) || a.user.id.localeCompare(b.user.id));
    const users = [...this.users.values()].sort((a, b) =>
      Number(b.online) - Number(a.online) || a.user.name.localeCompare(b.user.name) || a.user.id.localeCompare(b.user.id));
    this.store.set({ members, users, synced: this.synced });
  }

  /** @internal */ _beginSync(): void { this.syncing = true; this.buffered = []; }
  /** @internal */ _reset(): void {
    this.members.clear(); this.synced = false; this.syncing = false; this.buffered = [];
    for (const u of this.users.values()) u.present = false;
    this.publish();
  }

  /** @internal a message or history entry from this user. */
  _sawUser(user: UserRef): void {
    if (this.users.has(user.id)) return;
    this.users.set(user.id, { user, online: false, lastSeen: null, present: false });
    this.publish();
    if (this.synced) void this.lookupUnknown();
  }

  /** @internal join/leave events of the room. */
  _onMemberEvent(kind: 'join' | 'leave', user: UserRef): void {
    const apply = () => {
      if (kind === 'join') {
        const isFirst = !this.members.has(user.id);
        const member = this.members.get(user.id) ?? { user, since: this.room.client.options.now(), connections: [] };
        this.members.set(user.id, member);
        this.setUser(user, true, null, true);
        this.publish();
        this.emitter.emit('join', { member, isFirst });
      } else {
        this.members.delete(user.id);
        this.setUser(user, false, this.room.client.options.now(), false);
        this.publish();
        this.emitter.emit('leave', { user, isLast: true });
      }
    };
    if (this.syncing) this.buffered.push(apply); else apply();
  }

  /** @internal a `presence` event (user online/offline). */
  _onPresence(p: PresenceEvent): void {
    const apply = () => this._onStatus(p.user, p.online, p.last_seen);
    if (this.syncing) this.buffered.push(apply); else apply();
  }

  /** @internal */ _onStatus(user: UserRef, online: boolean, lastSeen: number | null): void {
    const known = this.users.get(user.id);
    if (!known && !this.members.has(user.id)) {
      if (!this.queried.has(user.id)) return; // not a user of this room
    }
    let present = this.members.has(user.id);
    if (!online && present) { this.members.delete(user.id); present = false; }
    this.setUser(user, online || present, lastSeen, present);
    this.publish();
    this.emitter.emit('update', this.users.get(user.id)!);
  }
}

export interface TypingState { typers: UserRef[] }

/** Typing: keystroke() heartbeats at most every ttl/2, stop() at once; receivers expire typers locally. */
export class RoomTyping {
  private store = new Store<TypingState>({ typers: [] });
  private emitter: Emitter<{ change: TypingState }>;
  private active = false;
  private lastSent = 0;
  private idleTimer: ReturnType<typeof setTimeout> | null = null;
  private expiry = new Map<string, ReturnType<typeof setTimeout>>();

  constructor(private room: Room) { this.emitter = new Emitter(room.client.listenerError); }

  getSnapshot = (): TypingState => this.store.getSnapshot();
  watch = (fn: () => void) => this.store.watch(fn);
  on(name: 'change', fn: (s: TypingState) => void): () => void { return this.emitter.on(name, fn); }
  get typers(): UserRef[] { return this.store.getSnapshot().typers; }
  get isTyping(): boolean { return this.active; }

  /** Call on every keystroke; volatile (nothing is sent while offline). */
  keystroke(): void {
    const c = this.room.client;
    if (c.status !== 'connected' || this.room.status !== 'joined') return;
    const now = c.options.now();
    const ttl = c.options.typingTtlMs;
    if (!this.active || now - this.lastSent >= ttl / 2) {
      this.active = true;
      this.lastSent = now;
      c.request('typing', { room: this.room.name, active: true }).catch(() => {});
    }
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => { this.active = false; this.idleTimer = null; }, ttl);
  }

  /** Stops typing at once (also implied by send()). */
  stop(): void {
    if (!this.active) return;
    this.active = false;
    if (this.idleTimer) { clearTimeout(this.idleTimer); this.idleTimer = null; }
    const c = this.room.client;
    if (c.status === 'connected' && this.room.status === 'joined') c.request('typing', { room: this.room.name, active: false }).catch(() => {});
  }

  /** @internal the server clears typing when the user sends. */
  _onSend(): void {
    this.active = false;
    if (this.idleTimer) { clearTimeout(this.idleTimer); this.idleTimer = null; }
  }

  /** @internal */ _onTyping(users: UserRef[]): void {
    const me = this.room.client.user?.id;
    const typers = users.filter((u) => u.id !== me);
    for (const [id, t] of this.expiry) if (!typers.some((u) => u.id === id)) { clearTimeout(t); this.expiry.delete(id); }
    for (const u of typers) {
      const t = this.expiry.get(u.id);
      if (t) clearTimeout(t);
      this.expiry.set(u.id, setTimeout(() => this.expire(u.id), this.room.client.options.typingExpiryMs));
    }
    this.set(typers);
  }

  private expire(id: string): void {
    const t = this.expiry.get(id);
    if (t) clearTimeout(t);
    this.expiry.delete(id);
    this.set(this.store.getSnapshot().typers.filter((u) => u.id !== id));
  }

  private set(typers: UserRef[]): void {
    const cur = this.store.getSnapshot().typers;
    if (cur.length === typers.length && cur.every((u, i) => u.id === typers[i]!.id && u.name === typers[i]!.name)) return;
    this.store.set({ typers });
    this.emitter.emit('change', this.store.getSnapshot());
  }

  /** @internal volatile state is dropped on disconnect/rejoin. */
  _clear(): void {
    this.active = false;
    if (this.idleTimer) { clearTimeout(this.idleTimer); this.idleTimer = null; }
    for (const t of this.expiry.values()) clearTimeout(t);
    this.expiry.clear();
    this.set([]);
  }
}
