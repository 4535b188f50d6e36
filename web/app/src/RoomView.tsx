import { useCallback, useEffect, useLayoutEffect, useRef, useState, type KeyboardEvent } from 'react';
import { useClient, useMessages, usePresence, useRoom, useRoomList, useTyping } from '@parley/react';
import type { MessageEvent, PendingMessage } from '@parley/sdk';
import { useRoomLabel } from './Chat';
import { bodyText, formatDay, formatTime, hue, initials, isDm, lastSeenText } from './util';

function Avatar({ id, name }: { id: string; name: string }) {
  return <span className="avatar" aria-hidden="true" style={{ background: `hsl(${hue(id)} 55% 45%)` }}>{initials(name)}</span>;
}

function MessageList({ roomId }: { roomId: string }) {
  const client = useClient();
  const { messages, pending, status, hasOlder, loadingOlder, loadOlder, gap } = useMessages({ pageSize: 30 });
  const roomList = useRoomList();
  const listRef = useRef<HTMLDivElement>(null);
  const atBottom = useRef(true);
  const anchor = useRef<{ height: number; top: number } | null>(null);
  const me = client.user?.id;
  const lastSeq = messages.length ? messages[messages.length - 1]!.seq : 0;
  const readMarker = roomList.rooms.find((r) => r.room === roomId)?.read ?? 0;

  const older = useCallback(() => {
    const el = listRef.current;
    if (!el || !hasOlder || loadingOlder) return;
    anchor.current = { height: el.scrollHeight, top: el.scrollTop };
    loadOlder().catch(() => { anchor.current = null; });
  }, [hasOlder, loadingOlder, loadOlder]);

  // Keep the view still when older messages are prepended; follow the bottom when new ones arrive.
  useLayoutEffect(() => {
    const el = listRef.current;
    if (!el) return;
    if (anchor.current) {
      el.scrollTop = el.scrollHeight - anchor.current.height + anchor.current.top;
      anchor.current = null;
    } else if (atBottom.current) {
      el.scrollTop = el.scrollHeight;
    }
  }, [messages, pending.length]);

  // Fill the viewport: load older pages while there is no scrollbar yet.
  useEffect(() => {
    const el = listRef.current;
    if (el && status === 'ready' && hasOlder && !loadingOlder && el.scrollHeight <= el.clientHeight + 40) older();
  }, [status, hasOlder, loadingOlder, messages.length, older]);

  const markRead = useCallback(() => {
    if (!atBottom.current || document.visibilityState !== 'visible' || !lastSeq || lastSeq <= readMarker) return;
    client.markRead(roomId, lastSeq).catch(() => {});
  }, [client, roomId, lastSeq, readMarker]);
  useEffect(() => { markRead(); }, [markRead]);
  useEffect(() => {
    document.addEventListener('visibilitychange', markRead);
    return () => document.removeEventListener('visibilitychange', markRead);
  }, [markRead]);

  const onScroll = () => {
    const el = listRef.current!;
    atBottom.current = el.scrollHeight - el.scrollTop - el.clientHeight < 48;
    if (el.scrollTop < 120) older();
    if (atBottom.current) markRead();
  };

  let prevDay = ''; let prev: MessageEvent | null = null;
  const rows: React.ReactNode[] = [];
  for (const m of messages) {
    const day = formatDay(m.ts);
    if (day !== prevDay) { rows.push(<li key={`d${m.seq}`} className="day-sep" role="separator"><span>{day}</span></li>); prevDay = day; prev = null; }
    const grouped = prev !== null && prev.from.id === m.from.id && m.ts - prev.ts < 5 * 60_000;
    const mine = m.from.id === me;
    rows.push(
      <li key={m.seq} className={`msg${mine ? ' mine' : ''}${grouped ? ' grouped' : ''}`} data-testid="message" data-seq={m.seq}
        data-cmid={m.cmid}>
        {!grouped && <Avatar id={m.from.id} name={m.from.name} />}
        <div className="msg-main">
          {!grouped && (
            <div className="msg-meta"><span className="msg-author">{m.from.name}</span>
              <time dateTime={new Date(m.ts).toISOString()}>{formatTime(m.ts)}</time></div>
          )}
          <div className="msg-body">{bodyText(m.body)}</div>
        </div>
      </li>,
    );
    prev = m;
  }
  for (const p of pending) rows.push(<PendingRow key={p.clientMsgId} p={p} />);

  return (
    <div className="messages" ref={listRef} onScroll={onScroll} tabIndex={0} role="log" aria-label="Messages" aria-live="polite"
      aria-relevant="additions" aria-busy={status === 'loading' || loadingOlder} data-testid="message-list">
      <div className="history-top">
        {hasOlder ? (
          <button type="button" className="link" onClick={older} disabled={loadingOlder}>
            {loadingOlder ? 'Loading older messages…' : 'Load older messages'}
          </button>
        ) : status === 'ready' ? <p className="muted small">{messages.length ? 'This is the beginning of the conversation.' : 'No messages yet. Say hello!'}</p> : null}
      </div>
      {gap && <p className="notice warn small" role="note">Some messages ({gap.fromSeq}–{gap.toSeq}) could not be recovered automatically. Scroll up to load them.</p>}
      {status === 'loading' && !messages.length && <p className="muted center">Loading messages…</p>}
      <ol className="msg-list">{rows}</ol>
    </div>
  );
}

function PendingRow({ p }: { p: PendingMessage }) {
  return (
    <li className={`msg mine pending pending-${p.status}`} data-testid="pending-message" data-cmid={p.clientMsgId}>
      <div className="msg-main">
        <div className="msg-body">{bodyText(p.body)}</div>
        <div className="msg-status">
          {p.status === 'failed' ? (
            <>
              <span role="alert">Not sent{p.error ? ` (${p.error.code})` : ''}.</span>
              <button type="button" className="link" onClick={() => p.retry()}>Retry</button>
              <button type="button" className="link" onClick={() => p.discard()}>Discard</button>
            </>
          ) : p.status === 'queued' ? 'Waiting for connection…' : 'Sending…'}
        </div>
      </div>
    </li>
  );
}

function TypingLine() {
  const { typers } = useTyping();
  let text = '';
  if (typers.length === 1) text = `${typers[0]!.name} is typing…`;
  else if (typers.length === 2) text = `${typers[0]!.name} and ${typers[1]!.name} are typing…`;
  else if (typers.length > 2) text = 'Several people are typing…';
  return <div className="typing" aria-live="polite" data-testid="typing">{text && <><span className="dots" aria-hidden="true"><i /><i /><i /></span>{text}</>}</div>;
}

function Composer({ roomId, label }: { roomId: string; label: string }) {
  const { send } = useMessages();
  const { keystroke, stop } = useTyping();
  const { status } = useRoom();
  const [text, setText] = useState('');
  const ref = useRef<HTMLTextAreaElement>(null);
  useEffect(() => { ref.current?.focus(); }, [roomId]);

  const submit = () => {
    const t = text.trim();
    if (!t) return;
    send(t);
    setText('');
    ref.current?.focus();
  };
  const onKey = (e: KeyboardEvent<HTMLTextAreaElement>) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.nativeEvent.isComposing) { e.preventDefault(); submit(); }
  };
  return (
    <form className="composer" onSubmit={(e) => { e.preventDefault(); submit(); }}>
      <label htmlFor="composer-input" className="sr-only">Message {label}</label>
      <textarea id="composer-input" ref={ref} rows={1} value={text} placeholder={`Message ${label}`} onKeyDown={onKey}
        onChange={(e) => { setText(e.target.value); if (e.target.value) keystroke(); else stop(); }} onBlur={() => stop()}
        aria-describedby="composer-hint" />
      <span id="composer-hint" className="sr-only">Enter sends, Shift+Enter adds a line.</span>
      <button type="submit" className="primary send" disabled={!text.trim()} aria-label="Send message">
        <span aria-hidden="true">➤</span>
      </button>
      {status === 'failed' && <p className="field-error" role="alert">Cannot join this room.</p>}
    </form>
  );
}

function Members({ onStartDm, onClose }: { onStartDm: (id: string) => void; onClose: () => void }) {
  const { users, me } = usePresence();
  const [, tick] = useState(0);
  useEffect(() => { const t = setInterval(() => tick((n) => n + 1), 30_000); return () => clearInterval(t); }, []);
  const online = users.filter((u) => u.online).length;
  return (
    <aside className="members" aria-labelledby="members-heading" data-testid="members">
      <div className="members-head">
        <h2 id="members-heading">Members <span className="muted">({online} online)</span></h2>
        <button type="button" className="icon-btn members-close" aria-label="Close member list" onClick={onClose}>✕</button>
      </div>
      <ul className="member-list">
        {users.map((u) => (
          <li key={u.user.id} className={`member ${u.online ? 'online' : 'offline'}`} data-testid="member" data-user={u.user.id}
            data-online={u.online ? 'true' : 'false'}>
            <span className="avatar-wrap">
              <Avatar id={u.user.id} name={u.user.name} />
              <span className={`presence-dot ${u.online ? 'on' : 'off'}`} data-testid="presence-dot" />
            </span>
            <span className="member-text">
              <span className="member-name">{u.user.name}{u.user.id === me?.id && <span className="muted"> (you)</span>}</span>
              <span className="member-status small muted">{u.online ? 'online' : lastSeenText(u.lastSeen)}</span>
            </span>
            {u.user.id !== me?.id && (
              <button type="button" className="link small" onClick={() => onStartDm(u.user.id)} aria-label={`Message ${u.user.name}`}>Message</button>
            )}
          </li>
        ))}
      </ul>
    </aside>
  );
}

export function RoomView({ roomId, onStartDm }: { roomId: string; onStartDm: (id: string) => void }) {
  const { status, error } = useRoom();
  const label = useRoomLabel()(roomId);
  const [showMembers, setShowMembers] = useState(() => window.matchMedia?.('(min-width: 1100px)').matches ?? true);
  const title = isDm(roomId) ? label : `# ${roomId}`;
  useEffect(() => { document.title = `${title} · Parley`; }, [title]);
  return (
    <>
      <main className="room" aria-labelledby="room-title">
        <div className="room-head">
          <h1 id="room-title" className="room-title">{title}</h1>
          <span className={`room-status small muted`} data-testid="room-status">{status === 'joined' ? '' : status === 'failed' ? `cannot join: ${error?.code}` : `${status}…`}</span>
          <button type="button" className="secondary small members-toggle" aria-expanded={showMembers} aria-controls="members-panel"
            onClick={() => setShowMembers((s) => !s)}>Members</button>
        </div>
        <MessageList roomId={roomId} />
        <TypingLine />
        <Composer roomId={roomId} label={title} />
      </main>
      <div id="members-panel" className={`members-panel${showMembers ? ' open' : ''}`} hidden={!showMembers}>
        <Members onStartDm={onStartDm} onClose={() => setShowMembers(false)} />
      </div>
    </>
  );
}
