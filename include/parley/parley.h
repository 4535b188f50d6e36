/* parley.h — embedding Parley in a C program (examples/ shows every call in use).
 *
 *   parley_server *s;
 *   char err[256];
 *   if (parley_server_new(&s, "conf.d", err, sizeof err)) die(err);  // or parley_server_new_with_config
 *   parley_server_hook(s, PARLEY_HOOK_MESSAGE, on_message, NULL, 0); // optional: C hook handlers
 *   parley_server_start(s, loop);                                     // on your uv_loop_t ...
 *   uv_run(loop, UV_RUN_DEFAULT);                                      // ... which you run
 *   parley_server_free(s);                                             // after parley_server_stop's cb
 *
 * Conventions (libuv's):
 *  - Every function returns 0 (or a count, where stated) or a negative errno code (-EINVAL, -ENOMEM,
 *    -EALREADY, ...); parley_strerror() names it. Arguments are checked first: NULL where an object is
 *    required is -EINVAL, never a crash.
 *  - Objects are opaque. A server is used from one thread: the one running its loop. Nothing blocks the
 *    loop (storage runs on Parley's own threads and answers through the loop).
 *  - Strings handed to a callback are valid during the call only; copy what you keep. Strings passed in
 *    are copied unless stated otherwise.
 *  - Hook handlers use the plugin ABI's types and decisions (plugin.h): one dispatch for Lua scripts, C
 *    plugins and the handlers registered here.
 *  - No process-wide state of Parley's own: several servers may run in one process, each on its own loop
 *    and thread (different ports and server.data_dir). Logging is per server (parley_server_set_log).
 *    libwebsockets' log mask is process-wide: each start sets it from that server's log.level.
 *  - The library exports only the parley_* functions declared here (PARLEY_API); everything else in it
 *    is hidden.
 *
 * Signals: the library installs no signal handler and changes no signal disposition, except that
 * parley_server_run(s, 1) handles SIGTERM, SIGINT and SIGHUP through libuv while it runs. SIGPIPE is the
 * program's business: Parley's own socket writes use MSG_NOSIGNAL, but TLS writes (tls.cert set) and the
 * default log destination (stderr, when it is a closed pipe) can raise it, and its default action ends
 * the process. Ignore it before starting a server, as parleyd does:
 *
 *   signal(SIGPIPE, SIG_IGN);
 *
 * (libwebsockets, when built without LWS_AVOID_SIGPIPE_IGN — the usual build — also sets SIGPIPE to
 * SIG_IGN itself whenever a server starts listening.) */
#ifndef PARLEY_PARLEY_H
#define PARLEY_PARLEY_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#include "parley/plugin.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Marks the exported functions; the library is built with hidden visibility otherwise. */
#if defined(__GNUC__) || defined(__clang__)
#define PARLEY_API __attribute__((visibility("default")))
#else
#define PARLEY_API
#endif

/* Bumped on any incompatible change of this header; compare with parley_abi_version() at run time. */
#define PARLEY_ABI_VERSION 1

struct uv_loop_s; /* uv_loop_t: the header does not need <uv.h>, your code does */

typedef struct parley_config parley_config;
typedef struct parley_server parley_server;

/* ---- library ---------------------------------------------------------------------------------------- */

/* "0.1.0" (static string). */
PARLEY_API const char *parley_version(void);
/* PARLEY_ABI_VERSION of the library actually linked. */
PARLEY_API int parley_abi_version(void);
/* A static message for a code returned by any parley_* function ("success" for 0). */
PARLEY_API const char *parley_strerror(int code);

/* ---- configuration from code ------------------------------------------------------------------------ */

/* A configuration under construction: the built-in defaults, optionally a conf.d directory, then the
 * keys set here, in order (later wins). Every key, its syntax and validation are those of the conf files
 * (docs/configuration.md); a value is the text after "=" without quotes. *out is owned by the caller:
 * parley_config_free. */
PARLEY_API int parley_config_new(parley_config **out);
/* Load every *.conf of dir on top of the defaults (replacing an earlier load; keys already set here are
 * applied again on top). The server re-reads dir on parley_server_reload. -EINVAL/-ERANGE/-ENOENT with
 * "file:line: message" in parley_config_error(). */
PARLEY_API int parley_config_load_dir(parley_config *cfg, const char *dir);
/* Set one key, e.g. ("server.port", "8080"), ("rooms.news-*.history", "false"). An unknown key or a bad
 * value is -EINVAL (or -ERANGE) with the reason in parley_config_error(), and changes nothing. */
PARLEY_API int parley_config_set(parley_config *cfg, const char *key, const char *value);
/* The message of the last failed call on cfg ("" when none). Valid until the next call on cfg. */
PARLEY_API const char *parley_config_error(const parley_config *cfg);
PARLEY_API void parley_config_free(parley_config *cfg);

/* ---- server lifecycle ------------------------------------------------------------------------------- */

/* Create a server from a conf.d directory (NULL: built-in defaults only), or from a configuration built
 * in code (copied: cfg stays the caller's and may be freed at once). Nothing listens yet. On failure a
 * negative code and a "file:line: message" reason in err (errlen bytes; err may be NULL). *out is owned
 * by the caller: parley_server_free. */
PARLEY_API int parley_server_new(parley_server **out, const char *conf_dir, char *err, size_t errlen);
PARLEY_API int parley_server_new_with_config(parley_server **out, const parley_config *cfg, char *err,
                                             size_t errlen);

/* Open the store, listen on server.host:server.port and serve on loop, which the caller runs (uv_run).
 * The loop is borrowed: it must outlive the server's run, i.e. until parley_server_stop's cb. Codes:
 * -EALREADY (started and not stopped yet), -EADDRINUSE (cannot listen), -EIO (cannot open the store;
 * the reason is logged), -ENOMEM. After a failure the server may be started again; the loop may hold
 * closing handles: let it run (uv_run) before uv_loop_close. A stopped server may be started again. */
PARLEY_API int parley_server_start(parley_server *s, struct uv_loop_s *loop);

/* Start on a loop of Parley's own and run it until the server is stopped (parley_server_stop from a
 * hook/timer callback, or SIGTERM/SIGINT when handle_signals is nonzero; SIGHUP then reloads). Returns 0
 * after a clean drain, or parley_server_start's error. */
PARLEY_API int parley_server_run(parley_server *s, int handle_signals);

/* Called once the stop is complete: no client is left, queued messages are committed, every handle of
 * the server is closed or closing. The caller's loop has nothing of Parley's left once it returns. */
typedef void (*parley_stop_cb)(parley_server *s, void *ud);

/* Stop a started server: refuse new connections (503), close every client with 1001, wait for them (at
 * most 3 s), commit what the store has queued, then cb(s, ud) on the loop (cb may be NULL). Returns at
 * once: 0, or -ENOTCONN (not started) / -EALREADY (already stopping). When the loop is run by the caller,
 * run it until cb; uv_run then returns when nothing else of yours is active, and uv_loop_close succeeds.
 * Loop thread only. */
PARLEY_API int parley_server_stop(parley_server *s, parley_stop_cb cb, void *ud);

/* Re-read the conf.d directory (if any; keys set in code are applied again on top) and apply what can
 * change live: log level, limits, token keys, scripts and plugins. On error the running configuration is
 * kept and the reason logged (-EINVAL). Loop thread only. */
PARLEY_API int parley_server_reload(parley_server *s);

/* Release a server that is not running (never started, start failed, or its stop cb has run — free may
 * be called from inside the cb). A running server is refused: -EBUSY, nothing freed. NULL is fine. */
PARLEY_API int parley_server_free(parley_server *s);

/* ---- logging ---------------------------------------------------------------------------------------- */

/* A log line of a server: level is an enum parley_log_level (plugin.h), msg the message without
 * timestamp or newline (valid during the call only). */
typedef void (*parley_log_fn)(void *ud, int level, const char *msg);

/* Send s's log lines to fn(ud, ...) instead of stderr (fn NULL: back to stderr), before start or after a
 * stop (-EBUSY while running). Lines above log.level (a configuration key, changed by reload) are dropped
 * before fn. fn runs on the loop thread and on Parley's storage threads, possibly at the same time: make it
 * thread-safe, quick, and do not call parley_* functions from it. ud is borrowed.
 *
 * Where a line goes is decided per thread: parley_server_start binds s's log to the calling (loop) thread
 * until its stop completes, and the storage threads of s log to it too. Servers on different threads
 * therefore log independently. Servers sharing one loop thread share that binding: lines logged while
 * the loop runs go to the server started last on the thread (parley_server_reload and parley_server_stop
 * log their own lines to their own server). Lines logged on a thread no server is bound to go to stderr
 * at level info. */
PARLEY_API int parley_server_set_log(parley_server *s, parley_log_fn fn, void *ud);

/* ---- hooks in C ------------------------------------------------------------------------------------- */

/* Register fn for a hook point (enum parley_hook_point in plugin.h), before or after start; registrations
 * survive reloads and restarts. Same semantics as a plugin's api->hook: higher priority runs first (ties
 * after scripts and plugins); the first handler returning anything but PARLEY_PASS decides; a negative
 * return is a handler error and the point's hooks.<point>.fail policy applies. fn runs on the loop thread,
 * must not block, and decides through the parley_result_* setters below. ud is borrowed. Not from inside
 * a handler (-EBUSY). */
PARLEY_API int parley_server_hook(parley_server *s, enum parley_hook_point point, parley_hook_fn fn, void *ud,
                                  int priority);

/* Result setters for the res of the running handler; each returns the decision to return:
 *   return parley_result_reject(res, "no links here");       (PARLEY_REJECT; the client gets the reason)
 *   return parley_result_rewrite_body(res, "\"[redacted]\"", 12); (PARLEY_REWRITE; valid JSON text)
 * rewrite_name / rewrite_user apply to PARLEY_HOOK_AUTH only. PARLEY_ERROR when out of memory. */
PARLEY_API int parley_result_reject(struct parley_result *res, const char *reason);
PARLEY_API int parley_result_rewrite_body(struct parley_result *res, const char *json, size_t len);
PARLEY_API int parley_result_rewrite_name(struct parley_result *res, const char *name);
PARLEY_API int parley_result_rewrite_user(struct parley_result *res, const char *user_id);

/* ---- acting and reading ----------------------------------------------------------------------------- */

/* Publish body_json (len bytes of JSON text: "\"tick 3\"", "{\"t\":20.5}") into room as the server (user
 * "parley"): sequenced, stored (in rooms with history) and fanned out like a client's send, without
 * on_message. Callable from hook handlers too (the publish then happens right after the current
 * request). -EINVAL (bad room name or JSON), -EMSGSIZE (over limits.max_body), -ENOTCONN (not running). */
PARLEY_API int parley_server_publish(parley_server *s, const char *room, const char *body_json, size_t len);

/* Close every connection of user_id with 4003 and a `kicked` event carrying reason (may be NULL), and end
 * its sessions. Returns the number of connections closed (0: none), or a negative code. */
PARLEY_API int parley_server_kick(parley_server *s, const char *user_id, const char *reason);

/* One user present in a room: with at least one session in it (attached, or detached within
 * session.resume_ttl). */
struct parley_presence {
  const char *user_id;
  const char *user_name;
  uint64_t since;    /* wall-clock ms when the user's first session entered the room */
  uint32_t sessions; /* the user's sessions in the room */
};
typedef void (*parley_presence_fn)(void *ud, const struct parley_presence *p);

/* Synchronous snapshot: fn(ud, p) for every user present in room, then returns their number (0 for a
 * room nobody is in or that does not exist). -EINVAL (bad room name), -ENOTCONN (not running). */
PARLEY_API int parley_server_presence(parley_server *s, const char *room, parley_presence_fn fn, void *ud);

/* One stored message, as clients see it in a `message` event. */
struct parley_message {
  const char *room;
  uint64_t seq;
  uint64_t ts; /* ms since the epoch */
  const char *mid;
  const char *user_id;
  const char *user_name;
  const char *cmid;
  const char *body; /* compact JSON text, NUL-terminated */
};
/* status: 0, or a negative code (-EIO: the store failed; -ECANCELED: the server stopped first). msgs are
 * in ascending seq order and valid during the call only. */
typedef void (*parley_history_cb)(parley_server *s, int status, const struct parley_message *msgs, size_t n,
                                  void *ud);

/* Read the newest messages of room with seq < before (0: no bound), at most limit (capped by
 * history.max_limit; 0 means that cap). Asynchronous: returns 0 and cb runs later on the loop exactly
 * once, or a negative code and cb never runs (-EINVAL, -ENOTCONN, -EAGAIN: the store queue is full).
 * Rooms without history answer from the recent messages kept in memory (history.ring_size). */
PARLEY_API int parley_server_history(parley_server *s, const char *room, uint64_t before, size_t limit,
                                     parley_history_cb cb, void *ud);

/* The main counters. Fields may be added at the end: pass sizeof your struct; fields the library does
 * not know stay 0. */
struct parley_metrics {
  uint64_t connections;         /* WebSocket connections open now */
  uint64_t rooms;               /* rooms in memory now */
  uint64_t connections_total;   /* WebSocket connections accepted */
  uint64_t connections_refused; /* handshakes refused */
  uint64_t frames_in, bytes_in; /* messages / payload bytes received */
  uint64_t frames_out, bytes_out;
  uint64_t messages_total;   /* messages accepted (sends and publishes) */
  uint64_t deliveries_total; /* message events queued to connections */
  uint64_t queue_drops;      /* ephemeral frames dropped under outbound pressure */
  uint64_t slow_closes;      /* connections closed with 4008 */
  uint64_t store_pending;    /* appends waiting for the store writer */
};
/* Fill *m (size bytes, normally sizeof *m). Works on a server that is not running (all 0 but totals of
 * its last run are lost). -EINVAL for NULL or a size below the first field. */
PARLEY_API int parley_server_metrics(parley_server *s, struct parley_metrics *m, size_t size);

/* The TCP port the server listens on (0 when not running). */
PARLEY_API int parley_server_port(const parley_server *s);

#ifdef __cplusplus
}
#endif
#endif
