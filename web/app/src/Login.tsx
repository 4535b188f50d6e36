import { useEffect, useRef, useState, type FormEvent } from 'react';
import { DevLoginDisabled, devLogin, type Auth } from './auth';

export function Login({ onSignedIn }: { onSignedIn: (a: Auth) => void }) {
  const [name, setName] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<{ text: string; disabled: boolean } | null>(null);
  const input = useRef<HTMLInputElement>(null);
  useEffect(() => { input.current?.focus(); }, []);

  async function submit(e: FormEvent) {
    e.preventDefault();
    const n = name.trim();
    if (!n) { setError({ text: 'Please enter a name.', disabled: false }); input.current?.focus(); return; }
    setBusy(true); setError(null);
    try {
      onSignedIn(await devLogin(n));
    } catch (err) {
      setError({ text: err instanceof Error ? err.message : String(err), disabled: err instanceof DevLoginDisabled });
      setBusy(false);
    }
  }

  return (
    <main className="login">
      <form className="login-card" onSubmit={submit} aria-labelledby="login-title" noValidate>
        <div className="brand brand-lg" aria-hidden="true"><span className="logo">P</span> Parley</div>
        <h1 id="login-title">Sign in</h1>
        <p className="muted">Pick a display name to start chatting.</p>
        <label htmlFor="login-name">Your name</label>
        <input id="login-name" ref={input} value={name} onChange={(e) => setName(e.target.value)} autoComplete="nickname"
          maxLength={64} placeholder="e.g. Ann" aria-invalid={!!error && !error.disabled} aria-describedby={error ? 'login-error' : undefined} />
        <button type="submit" className="primary" disabled={busy}>{busy ? 'Signing in…' : 'Sign in'}</button>
        {error && (
          <div id="login-error" className={error.disabled ? 'notice warn' : 'notice error'} role="alert">
            <strong>{error.text}</strong>
            {error.disabled && (
              <p>
                This server does not offer the development login (<code>auth.dev_login</code> is off). Ask your administrator
                for an account, or continue as a guest.
              </p>
            )}
          </div>
        )}
        {error?.disabled && (
          <button type="button" className="secondary" onClick={() => onSignedIn({ token: null, user: null, name: name.trim() || 'Guest' })}>
            Continue as guest
          </button>
        )}
      </form>
    </main>
  );
}
