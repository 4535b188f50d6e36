/* hooks: one dispatch for Lua scripts (lua.c) and C plugins (plugin.c), by priority (docs/hooks.md).
 *
 * The core builds a plain `struct parley_event` (include/parley/plugin.h: no core or lws types) and calls
 * hooks_dispatch at each hook point; handlers run highest priority first (ties: configuration order, then
 * registration order) and the first one that decides anything but PARLEY_PASS stops the chain. Notification
 * points (on_leave, on_disconnect, on_offline) run every handler and always return PARLEY_PASS. A handler
 * that errors or overruns its budget is skipped when the point's policy (hooks.<point>.fail) is `open`; when
 * it is `closed` the dispatch returns PARLEY_REJECT with HOOKS_FAIL_REASON.
 *
 * Everything runs on the loop thread. With no handler for a point, hooks_has is false and hooks_dispatch
 * returns at once (one branch, no allocation): build the event only when hooks_has says so. */
#ifndef PARLEY_HOOKS_H
#define PARLEY_HOOKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "parley/plugin.h"
#include "util/buf.h"

struct config;
struct uv_loop_s;

/* Reason sent to the client when a fail-closed point refuses because a handler failed. */
#define HOOKS_FAIL_REASON "refused: a server hook failed"

/* What the core lends the hooks module. publish/kick may be called from inside a handler (i.e. during
 * hooks_dispatch): the core should queue the action for after the current request rather than re-enter
 * itself (hooks tolerate nested dispatch, but the core's own state may not). A message published by a
 * hook does not go through on_message. */
struct hooks_host {
  void *ud;               /* passed back to every callback */
  struct uv_loop_s *loop; /* for parley.timer / api->timer_start; NULL: timers unavailable */
  /* Publish body_json (compact JSON text, len bytes) into room as the server. 0 or negative errno. */
  int (*publish)(void *ud, const char *room, const char *body_json, size_t len);
  /* Disconnect every connection of user_id with a `kicked` event and reason. 0 or negative errno. */
  int (*kick)(void *ud, const char *user_id, const char *reason);
  /* Optional sink for log lines of the hooks module (level: enum log_level); NULL: util/log. */
  void (*log)(void *ud, int level, const char *line);
};

/* The outcome of a dispatch. Initialise with HOOK_RESULT_INIT; release with hook_result_clear. */
struct hook_result {
  enum parley_decision decision; /* PASS (no handler decided), ALLOW, REJECT or REWRITE */
  char *reason; /* REJECT: text for the client error (owned; NULL only when out of memory: send "rejected") */
  char *body;   /* REWRITE on on_message: the new body, compact JSON text (owned, NUL-ended) */
  size_t body_len;
  char *name;     /* REWRITE on on_auth: new display name (owned) or NULL */
  char *user_id;  /* REWRITE on on_auth: new user id (owned) or NULL */
  const char *by; /* name of the script/plugin that decided (valid until the next hooks_reload) */
};
#define HOOK_RESULT_INIT                                                                                     \
  { PARLEY_PASS, NULL, NULL, 0, NULL, NULL, NULL }
void hook_result_clear(struct hook_result *r);

struct hooks;

/* Create the hooks module and load every scripts.* and plugins.* section of cfg. A script or plugin that
 * fails to load is logged; unless its section says `optional = true` the call then fails with -EINVAL
 * (nothing is kept; the reasons are logged). An optional one is skipped. Also -ENOMEM. cfg (the live
 * configuration) must stay valid until the next hooks_reload or hooks_free: options are read from it. host is
 * copied. */
int hooks_new(struct hooks **out, const struct hooks_host *host, const struct config *cfg);

/* Re-read cfg and every script: new sections are loaded, removed ones unloaded (timers cancelled, plugin
 * shutdown + dlclose), every script is reloaded from its file (a script that fails to load keeps its
 * previous version and the failure is logged), plugins already loaded from the same path stay loaded.
 * parley.kv contents survive. Returns the number of scripts/plugins that failed to load (0 = all fine) or
 * -ENOMEM. Must not be called from inside a handler. */
int hooks_reload(struct hooks *h, const struct config *cfg);

/* `parleyd --check`: load every script of cfg (compiled and its top level run in the sandbox, without
 * timers or a host) and open every plugin (dlopen and descriptor checks, init is not called), then unload
 * them. Also reported: an option key a script or plugin does not declare (a script declares the options
 * it reads while loading; a plugin in its descriptor's `options`), a bad `optional` value, and a room glob
 * (rooms.<glob>) that can never match a room name. Writes one line per problem into err ("file:line:
 * ..." where known) and returns their number (0: fine) or -ENOMEM. */
int hooks_check(const struct config *cfg, char *err, size_t errlen);

/* True if some valid room name (1..128 bytes of A-Z a-z 0-9 _ . : @ -, docs/protocol.md) matches glob. */
bool hooks_glob_can_match(const char *glob);

/* Unload everything. Timer handles are closed: run the loop once more (uv_run NOWAIT) afterwards so their
 * close callbacks free them. */
void hooks_free(struct hooks *h);

/* True when at least one handler is registered for point. */
bool hooks_has(const struct hooks *h, enum parley_hook_point point);

/* Run the handlers of point for ev (ev->size and ev->point are filled in by hooks_dispatch). res must be
 * HOOK_RESULT_INIT or cleared; on return it holds the decision (also returned). */
enum parley_decision hooks_dispatch(struct hooks *h, enum parley_hook_point point, struct parley_event *ev,
                                    struct hook_result *res);

/* Append Prometheus text for every script and plugin: parley_hook_{calls,errors,budget_kills,rejects,
 * rewrites}_total{kind,name}, parley_hook_loaded{kind,name}, parley_hook_lua_memory_bytes{name},
 * parley_hook_load_failures_total{kind,name}. 0 or -ENOMEM. */
int hooks_metrics_render(const struct hooks *h, buf_t *out);

/* Embedding (include/parley/parley.h parley_server_hook): register fn at point as a handler of the owner
 * "embed" (metrics kind "embed"). It is not part of the configuration: it survives hooks_reload, ties go
 * after every script and plugin, and it runs with the point's fail policy like any other handler; fn gets
 * the same struct parley_result as a plugin handler. 0, -EINVAL, -EBUSY (inside a dispatch) or -ENOMEM. */
int hooks_add_embedded(struct hooks *h, int point, parley_hook_fn fn, void *ud, int priority);

/* "on_message" for PARLEY_HOOK_MESSAGE, ...; NULL when out of range. */
const char *hooks_point_name(int point);
/* The point for "on_message" or "message"; -1 when unknown. */
int hooks_point_parse(const char *name);

#endif
