import { useCallback, useEffect, useRef, useState, type FormEvent } from 'react';
import { RoomProvider, useClient, useConnection, useRoomList } from '@parley/react';
import type { RoomListEntry } from '@parley/sdk';
import { RoomView } from './RoomView';
import { ROOM_RE, dmPeer, dmRoom, isDm } from './util';

const DEFAULT_ROOM = 'lobby';

function roomFromHash(): string | null {
  const m = /^#\/room\/(.+)$/.exec(location.hash);
  return m ? decodeURIComponent(m[1]!) : null;
}

/** Display name for a room: "# name" or the peer's name for a direct message. */
export function useRoomLabel() {
  const client = useClient();
  return useCallback((room: string): string => {
    const me = client.user?.id;
    const peer = me ? dmPeer(room, me) : null;
    if (peer === null) return room;
    for (const r of client.rooms.all()) {
      const u = r.presence.getSnapshot().users.find((x) => x.user.id === peer);
      if (u) return u.user.name;
    }
    return peer;
  }, [client]);
}

function Banner() {
  const client = useClient();
  const conn = useConnection({ lostAfterMs: 4000 });
  const [recovered, setRecovered] = useState<{ n: number; at: number } | null>(null);
  useEffect(() => client.on('recovered', (e) => setRecovered({ n: e.replayed, at: Date.now() })), [client]);
  useEffect(() => {
    if (!recovered) return;
    const t = setTimeout(() => setRecovered(null), 8000);
    return () => clearTimeout(t);
  }, [recovered]);
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    if (conn.status !== 'reconnecting') return;
    const t = setInterval(() => setNow(Date.now()), 500);
    return () => clearInterval(t);
  }, [conn.status]);

  let content: React.ReactNode = null;
  let kind = '';
  if (conn.status === 'reconnecting' || (conn.status === 'connecting' && conn.attempt > 0)) {
    const secs = conn.nextRetryAt ? Math.max(0, Math.ceil((conn.nextRetryAt - now) / 1000)) : 0;
    kind = conn.isLost ? 'banner-lost' : 'banner-warn';
    content = (
      <>
        <span className="spinner" aria-hidden="true" /> Reconnecting…
        {conn.isLost && <span className="banner-detail"> Connection lost{secs > 0 ? ` — next try in ${secs} s` : ''}. Messages you send are kept and sent when we are back.</span>}
        {conn.isLost && <button type="button" className="link" onClick={() => client.reconnectNow()}>Retry now</button>}
      </>
    );
  } else if (conn.status === 'closed' && conn.error) {
    kind = 'banner-lost';
    content = <>Disconnected: {conn.error.message}</>;
  } else if (conn.status === 'connected' && recovered) {
    kind = 'banner-ok';
    content = recovered.n > 0
      ? <>Back online — {recovered.n} {recovered.n === 1 ? 'message' : 'messages'} recovered</>
      : <>Back online — you are up to date</>;
  }
  return (
    <div className={`banner ${kind}`} role="status" aria-live="polite" data-testid="connection-banner" hidden={!content}>
      {content}
    </div>
  );
}

function RoomList({ current, onSelect, rooms }: { current: string; onSelect: (r: string) => void; rooms: RoomListEntry[] }) {
  const label = useRoomLabel();
  const channels = rooms.filter((r) => !isDm(r.room));
  const dms = rooms.filter((r) => isDm(r.room));
  const item = (r: RoomListEntry) => (
    <li key={r.room}>
      <a href={`#/room/${encodeURIComponent(r.room)}`} className={`room-item${r.room === current ? ' active' : ''}${r.unread > 0 ? ' has-unread' : ''}`}
        aria-current={r.room === current ? 'page' : undefined} data-room={r.room}
        onClick={(e) => { e.preventDefault(); onSelect(r.room); }}>
        <span className="room-sigil" aria-hidden="true">{isDm(r.room) ? '@' : '#'}</span>
        <span className="room-name">{label(r.room)}</span>
        {r.unread > 0 && r.room !== current && (
          <span className="badge" data-testid="unread" data-count={r.unread}><span aria-hidden="true">{r.unread > 99 ? '99+' : r.unread}</span>
            <span className="sr-only">{r.unread} unread</span></span>
        )}
      </a>
    </li>
  );
  return (
    <>
      <h2 className="side-heading" id="rooms-heading">Rooms</h2>
      <ul className="room-list" aria-labelledby="rooms-heading">{channels.map(item)}</ul>
      <h2 className="side-heading" id="dms-heading">Direct messages</h2>
      {dms.length ? <ul className="room-list" aria-labelledby="dms-heading">{dms.map(item)}</ul>
        : <p className="muted small side-empty">No conversations yet.</p>}
    </>
  );
}

function JoinForm({ onJoin }: { onJoin: (room: string) => void }) {
  const [v, setV] = useState('');
  const [err, setErr] = useState('');
  function submit(e: FormEvent) {
    e.preventDefault();
    const name = v.trim().replace(/^#/, '');
    if (!ROOM_RE.test(name)) { setErr('Use 1–128 letters, digits or _ - . : @'); return; }
    setErr(''); setV(''); onJoin(name);
  }
  return (
    <form className="side-form" onSubmit={submit}>
      <label htmlFor="join-room">Join or create a room</label>
      <div className="row">
        <input id="join-room" value={v} onChange={(e) => setV(e.target.value)} placeholder="room-name" aria-invalid={!!err}
          aria-describedby={err ? 'join-room-err' : undefined} />
        <button type="submit" className="secondary">Join</button>
      </div>
      {err && <p id="join-room-err" className="field-error" role="alert">{err}</p>}
    </form>
  );
}

function DmForm({ onStart }: { onStart: (userId: string) => void }) {
  const client = useClient();
  const [v, setV] = useState('');
  const [err, setErr] = useState('');
  const known = new Map<string, string>();
  for (const r of client.rooms.all()) for (const u of r.presence.getSnapshot().users) if (u.user.id !== client.user?.id) known.set(u.user.id, u.user.name);
  function submit(e: FormEvent) {
    e.preventDefault();
    let id = v.trim();
    for (const [uid, name] of known) if (name === id) { id = uid; break; }
    if (!id) { setErr('Enter a user id or name'); return; }
    if (id === client.user?.id) { setErr('That is you'); return; }
    setErr(''); setV(''); onStart(id);
  }
  return (
    <form className="side-form" onSubmit={submit}>
      <label htmlFor="dm-user">Start a direct message</label>
      <div className="row">
        <input id="dm-user" value={v} onChange={(e) => setV(e.target.value)} list="dm-known" placeholder="user id or name"
          aria-invalid={!!err} aria-describedby={err ? 'dm-user-err' : undefined} />
        <datalist id="dm-known">{[...known].map(([id, name]) => <option key={id} value={id}>{name}</option>)}</datalist>
        <button type="submit" className="secondary">Start</button>
      </div>
      {err && <p id="dm-user-err" className="field-error" role="alert">{err}</p>}
    </form>
  );
}

export function Chat({ onSignOut }: { onSignOut: () => void }) {
  const client = useClient();
  const conn = useConnection();
  const list = useRoomList();
  const [current, setCurrent] = useState<string>(() => roomFromHash() ?? DEFAULT_ROOM);
  const [navOpen, setNavOpen] = useState(false);
  const [joined, setJoined] = useState<string[]>([]);
  const navRef = useRef<HTMLElement>(null);
  const retained = useRef(new Map<string, () => void>());

  // Keep every room of the list joined, so unread counts and the list stay live.
  const keep = useCallback((room: string) => {
    if (retained.current.has(room)) return;
    retained.current.set(room, client.rooms.retain(room).release);
    setJoined((j) => (j.includes(room) ? j : [...j, room]));
  }, [client]);
  useEffect(() => { for (const r of list.rooms) keep(r.room); }, [list.rooms, keep]);
  useEffect(() => { keep(current); }, [current, keep]);
  useEffect(() => () => { for (const release of retained.current.values()) release(); retained.current.clear(); }, []);

  const select = useCallback((room: string) => {
    setCurrent(room);
    setNavOpen(false);
    if (roomFromHash() !== room) history.pushState(null, '', `#/room/${encodeURIComponent(room)}`);
  }, []);
  useEffect(() => {
    const onHash = () => { const r = roomFromHash(); if (r) setCurrent(r); };
    window.addEventListener('hashchange', onHash);
    window.addEventListener('popstate', onHash);
    return () => { window.removeEventListener('hashchange', onHash); window.removeEventListener('popstate', onHash); };
  }, []);

  const rooms: RoomListEntry[] = [...list.rooms];
  for (const r of joined) if (!rooms.some((x) => x.room === r)) rooms.push({ room: r, seq: 0, read: 0, unread: 0 });
  rooms.sort((a, b) => a.room.localeCompare(b.room));

  // Alt+ArrowUp / Alt+ArrowDown switch rooms; Escape closes the drawer.
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if (e.key === 'Escape' && navOpen) { setNavOpen(false); return; }
      if (!e.altKey || (e.key !== 'ArrowUp' && e.key !== 'ArrowDown')) return;
      const i = rooms.findIndex((r) => r.room === current);
      const next = rooms[(i + (e.key === 'ArrowDown' ? 1 : rooms.length - 1)) % rooms.length];
      if (next) { e.preventDefault(); select(next.room); }
    };
    window.addEventListener('keydown', onKey);
    return () => window.removeEventListener('keydown', onKey);
  });
  useEffect(() => { if (navOpen) navRef.current?.querySelector<HTMLElement>('a,button,input')?.focus(); }, [navOpen]);

  const me = conn.user;
  return (
    <div className={`app${navOpen ? ' nav-open' : ''}`}>
      <a className="skip-link" href="#composer-input">Skip to message composer</a>
      <header className="topbar">
        <button type="button" className="icon-btn nav-toggle" aria-label="Rooms" aria-expanded={navOpen} aria-controls="sidebar"
          onClick={() => setNavOpen((o) => !o)}>☰</button>
        <div className="brand"><span className="logo" aria-hidden="true">P</span> Parley</div>
        <div className="topbar-right">
          <span className={`conn-dot conn-${conn.status}`} title={conn.status} aria-label={`Connection: ${conn.status}`} role="img" />
          <span className="me" data-testid="me">{me ? me.name : '…'}</span>
          <button type="button" className="link" onClick={onSignOut}>Sign out</button>
        </div>
      </header>
      <Banner />
      <div className="layout">
        <nav id="sidebar" className="sidebar" aria-label="Rooms and direct messages" ref={navRef}>
          <RoomList current={current} onSelect={select} rooms={rooms} />
          <JoinForm onJoin={(r) => { keep(r); select(r); }} />
          <DmForm onStart={(id) => { if (me) { const r = dmRoom(me.id, id); keep(r); select(r); } }} />
        </nav>
        {navOpen && <div className="scrim" onClick={() => setNavOpen(false)} aria-hidden="true" />}
        <RoomProvider key={current} roomId={current}>
          <RoomView roomId={current} onStartDm={(id) => { if (me) { const r = dmRoom(me.id, id); keep(r); select(r); } }} />
        </RoomProvider>
      </div>
    </div>
  );
}
