/* core: connections, identities, rooms and the message path. All state is owned by the loop thread.
 * The core never sees wire bytes nor any libwebsockets type: a transport (net/) decodes a client's messages
 * with the connection's wire format (proto/format.h) and drives the core with decoded requests through the
 * conn_* entry points; the core answers with the format's encode_reply / encode_event, and the transport
 * plugs in through struct conn_tx to carry those frames. */
#ifndef PARLEY_CORE_CORE_H
#define PARLEY_CORE_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "core/metrics.h"
#include "proto/format.h"
#include "util/frame.h"

struct core;
struct conn;

/* Why the core closes a connection. Neutral: a transport maps each to its own code (net/ws.h maps them to
 * the WebSocket close codes of docs/protocol.md). */
enum conn_close_why {
  CONN_CLOSE_SHUTDOWN,      /* the server is stopping */
  CONN_CLOSE_REJECTED,      /* a hook refused the connection */
  CONN_CLOSE_INTERNAL,      /* out of memory */
  CONN_CLOSE_HELLO_TIMEOUT, /* no hello within limits.hello_timeout */
  CONN_CLOSE_TOKEN_EXPIRED, /* the token expired without a refresh */
  CONN_CLOSE_KICKED,        /* kicked by a hook or the embed API */
  CONN_CLOSE_RATE_LIMITED,  /* kept at it after rate_limited errors */
};

/* What the core asks of a transport for one connection. */
struct conn_tx {
  /* Queue f (the callee takes its own reference if it keeps it). Returns 0, or -1 if the connection is
   * closing / was closed for overflow: the caller must not touch the conn after a -1 other than to
   * forget it (it will get core_conn_closed later). */
  int (*send)(void *ctx, frame_t *f);
  /* Close for `why` (the transport maps it to its own code: net/ws.h) with a reason text; core_conn_closed
   * follows (later, from the loop). */
  void (*close)(void *ctx, enum conn_close_why why, const char *reason);
  /* Bytes queued and not yet handed to the socket. */
  size_t (*queued)(void *ctx);
};

struct store;
/* cfg is borrowed and must outlive the core (server.c owns it; SIGHUP updates it in place). store is
 * borrowed too and may be NULL (no persistence: every room is ephemeral); close the store before
 * core_free so that its last completions still find the core. */
struct core *core_new(const struct config *cfg, struct store *store);
void core_free(struct core *core);

struct auth;
/* The token verifier (borrowed; must outlive its use: set a new one on reload before freeing the old). */
void core_set_auth(struct core *core, const struct auth *auth);
/* Whether a handshake from ip may go on (limits.max_connections_per_ip, rate.connect_ip). Returns 0,
 * or the HTTP status to refuse with (429 / 503). */
int core_admit(struct core *core, const char *ip);

struct hooks;
/* Scripts and plugins (borrowed; NULL: none). */
void core_set_hooks(struct core *core, struct hooks *hooks);
/* Publish body_json (JSON text) into room as the server ("parley"). 0, -EINVAL (bad room or JSON) or
 * -EMSGSIZE (over limits.max_body). Loop thread only. */
int core_publish(struct core *core, const char *room, const char *body_json, size_t len);
/* Close every connection of user_id with 4003 and end its sessions. Returns the connections closed. */
int core_kick(struct core *core, const char *user_id, const char *reason);
/* struct hooks_host callbacks (ud = the core): publish and kick, deferred while the core is busy. */
int core_host_publish(void *ud, const char *room, const char *body_json, size_t len);
int core_host_kick(void *ud, const char *user_id, const char *reason);

struct metrics *core_metrics(struct core *core);
size_t core_conn_count(const struct core *core);
size_t core_room_count(const struct core *core);

/* Accept a connection (after the handshake) speaking wire format fmt (registered: format_register; it
 * outlives the conn). peer is the remote address text. Returns NULL when out of memory. The core owns the
 * returned conn until core_conn_closed. */
struct conn *core_conn_open(struct core *core, const struct format *fmt, const struct conn_tx *tx,
                            void *tx_ctx, const char *peer);
/* One decoded request of the client (fmt->decode said PERR_OK). req and what it borrows are the caller's
 * and only read during the call. */
void core_conn_request(struct core *core, struct conn *c, struct request *req);
/* A message the format could not decode or that is not a valid request: the error reply (code, msg) to
 * request id (NULL: none). */
void core_conn_refused(struct core *core, struct conn *c, json_t *id, enum perr code, const char *msg);
/* The connection's outbound queue went empty (paced replays go on). */
void core_conn_drained(struct core *core, struct conn *c);
/* The transport is done with the connection: leave its rooms, detach (or end) its session, free it.
 * leaving: the client said it is leaving for good (a WebSocket close with 1000), so its session ends; else
 * (dropped, or any other close) the session waits session.resume_ttl for a resume. */
void core_conn_closed(struct core *core, struct conn *c, bool leaving);

/* Periodic housekeeping (hello timeouts); now_ms from a monotonic clock. */
void core_tick(struct core *core, uint64_t now_ms);
/* Close every connection for why (used by shutdown). */
void core_close_all(struct core *core, enum conn_close_why why, const char *reason);

/* Time helpers: wall-clock ms (timestamps on the wire) and monotonic ms. */
uint64_t core_now_ms(void);
uint64_t core_mono_ms(void);

#endif
