export function dmRoom(a: string, b: string): string {
  const [x, y] = [a, b].sort();
  return `dm:${x}:${y}`;
}

export function isDm(room: string): boolean { return room.startsWith('dm:'); }

/** The other user's id of a dm:<a>:<b> room (or null when it is not one of ours). */
export function dmPeer(room: string, me: string): string | null {
  if (!isDm(room)) return null;
  const rest = room.slice(3);
  // user ids may contain ':' — try every split point
  for (let i = rest.indexOf(':'); i >= 0; i = rest.indexOf(':', i + 1)) {
    const a = rest.slice(0, i); const b = rest.slice(i + 1);
    if (a === me) return b;
    if (b === me) return a;
  }
  return null;
}

export const ROOM_RE = /^[A-Za-z0-9_\-.:@]{1,128}$/;

export function formatTime(ts: number): string {
  return new Date(ts).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

export function formatDay(ts: number): string {
  const d = new Date(ts);
  const today = new Date();
  const yest = new Date(); yest.setDate(today.getDate() - 1);
  if (d.toDateString() === today.toDateString()) return 'Today';
  if (d.toDateString() === yest.toDateString()) return 'Yesterday';
  return d.toLocaleDateString([], { weekday: 'long', month: 'long', day: 'numeric' });
}

export function lastSeenText(ts: number | null, now = Date.now()): string {
  if (ts === null) return 'offline';
  const s = Math.max(0, Math.round((now - ts) / 1000));
  if (s < 45) return 'last seen just now';
  const m = Math.round(s / 60);
  if (m < 60) return `last seen ${m} min ago`;
  const h = Math.round(m / 60);
  if (h < 24) return `last seen ${h} h ago`;
  return `last seen ${new Date(ts).toLocaleDateString()}`;
}

export function bodyText(body: unknown): string {
  if (typeof body === 'string') return body;
  if (body && typeof body === 'object' && typeof (body as { text?: unknown }).text === 'string') return (body as { text: string }).text;
  return JSON.stringify(body);
}

export function initials(name: string): string {
  const parts = name.trim().split(/\s+/).filter(Boolean);
  return ((parts[0]?.[0] ?? '?') + (parts[1]?.[0] ?? '')).toUpperCase();
}

export function hue(id: string): number {
  let h = 0;
  for (let i = 0; i < id.length; i++) h = (h * 31 + id.charCodeAt(i)) % 360;
  return h;
}
