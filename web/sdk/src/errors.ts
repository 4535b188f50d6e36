/** Stable error codes: the server's (docs/protocol.md "Errors") and the SDK's own. */
export type ServerErrorCode =
  | 'bad_frame' | 'bad_request' | 'unknown_op' | 'not_authenticated' | 'already_authenticated'
  | 'auth_required' | 'auth_failed' | 'bad_room' | 'not_joined' | 'too_many_rooms' | 'body_too_large'
  | 'overloaded' | 'store_unavailable' | 'internal' | 'forbidden' | 'rate_limited';
export type ClientErrorCode =
  | 'disconnected'   // the connection dropped before the reply
  | 'timeout'        // no reply / no ack in time
  | 'outbox_full'    // maxOutbox unsent messages already queued
  | 'released'       // the room was released while the operation was in flight
  | 'closed'         // the client was closed (disconnect/logout)
  | 'unauthorized'   // getToken refused (ParleyUnauthorizedError) or the server kept rejecting the token
  | 'config'         // bad options (no WebSocket implementation, differing room options, …)
  | 'protocol'       // the server sent something this SDK cannot understand
  | 'listener'       // an application listener threw (re-emitted on client.on('error'))
  | 'kicked'         // removed from a room (kicked event) or from the server (close 4003)
  | 'unknown';
export type ParleyErrorCode = ServerErrorCode | ClientErrorCode;

const RETRYABLE = new Set<string>(['disconnected', 'timeout', 'overloaded', 'store_unavailable', 'internal', 'rate_limited']);

export class ParleyError extends Error {
  readonly code: ParleyErrorCode;
  readonly retryable: boolean;
  readonly status?: number;
  override readonly cause?: unknown;
  /** rate_limited: the server's retry_after (ms). */
  readonly retryAfterMs?: number;
  constructor(code: ParleyErrorCode, message?: string,
    opts: { cause?: unknown; status?: number; retryable?: boolean; retryAfterMs?: number } = {}) {
    super(message ?? code);
    this.name = 'ParleyError';
    this.code = code;
    this.retryable = opts.retryable ?? RETRYABLE.has(code);
    this.status = opts.status;
    this.cause = opts.cause;
    this.retryAfterMs = opts.retryAfterMs;
  }
}

/** Throw this from getToken() to stop reconnecting: the client goes to closed {reason: 'unauthorized'}. */
export class ParleyUnauthorizedError extends ParleyError {
  constructor(message = 'unauthorized', cause?: unknown) {
    super('unauthorized', message, { cause, retryable: false });
    this.name = 'ParleyUnauthorizedError';
  }
}

export function toParleyError(e: unknown): ParleyError {
  if (e instanceof ParleyError) return e;
  return new ParleyError('unknown', e instanceof Error ? e.message : String(e), { cause: e });
}
