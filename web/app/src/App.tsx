import { useMemo, useState } from 'react';
import { createParleyClient, ParleyUnauthorizedError, type ParleyClient } from '@parley/sdk';
import { ParleyProvider } from '@parley/react';
import { devLogin, loadAuth, saveAuth, type Auth } from './auth';
import { Login } from './Login';
import { Chat } from './Chat';

function wsUrl(): string {
  const env = (import.meta.env.VITE_PARLEY_WS as string | undefined);
  if (env) return env;
  const u = new URL('ws', location.href);
  u.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return u.toString();
}

function makeClient(auth: Auth, onSignedOut: () => void): ParleyClient {
  const params = new URLSearchParams(location.search);
  const codec = params.get('codec') === 'msgpack' ? 'msgpack' : 'json';
  let current = auth;
  return createParleyClient({
    url: wsUrl(),
    codec,
    clientName: `parley-web/0.1.0 (${codec})`,
    reconnect: { minDelayMs: 300, maxDelayMs: 5_000 },
    getToken: async ({ reason }) => {
      if (current.token === null) return null; // guest
      if (reason === 'initial' && current.token) return current.token;
      try {
        current = await devLogin(current.name); // refresh: mint a new development token for the same name
        saveAuth(current);
        return current.token;
      } catch (e) {
        if (reason === 'rejected') { onSignedOut(); throw new ParleyUnauthorizedError('session expired, sign in again', e); }
        throw e;
      }
    },
  });
}

export function App() {
  const [auth, setAuth] = useState<Auth | null>(() => loadAuth());
  const signOut = () => { saveAuth(null); setAuth(null); };
  const client = useMemo(() => (auth ? makeClient(auth, signOut) : null), [auth?.token, auth?.user?.id]);

  if (!auth || !client) {
    return <Login onSignedIn={(a) => { saveAuth(a); setAuth(a); }} />;
  }
  return (
    <ParleyProvider client={client}>
      <Chat onSignOut={() => { client.logout(); signOut(); }} />
    </ParleyProvider>
  );
}
