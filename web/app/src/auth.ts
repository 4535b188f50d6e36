export interface Auth { token: string | null; user: { id: string; name: string } | null; name: string }

const KEY = 'parley.auth';

export function loadAuth(): Auth | null {
  try {
    const raw = localStorage.getItem(KEY);
    return raw ? (JSON.parse(raw) as Auth) : null;
  } catch { return null; }
}
export function saveAuth(a: Auth | null): void {
  if (a) localStorage.setItem(KEY, JSON.stringify(a)); else localStorage.removeItem(KEY);
}

export class DevLoginDisabled extends Error {}

/** POST /api/dev/login {name} → {token, user}; exists only when the server enables auth.dev_login. */
export async function devLogin(name: string): Promise<Auth> {
  let res: Response;
  try {
    res = await fetch('api/dev/login', {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name }),
    });
  } catch {
    throw new Error('Cannot reach the server. Is parleyd running?');
  }
  if (res.status === 404 || res.status === 405) throw new DevLoginDisabled('Development login is disabled on this server.');
  if (!res.ok) {
    const text = (await res.text().catch(() => '')).slice(0, 200);
    throw new Error(`Sign-in failed (${res.status})${text ? `: ${text}` : ''}`);
  }
  const body = (await res.json()) as { token: string; user: { id: string; name: string } };
  if (!body || typeof body.token !== 'string') throw new Error('Sign-in failed: unexpected answer from the server');
  return { token: body.token, user: body.user, name };
}
