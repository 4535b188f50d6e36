/* hookglue: the core's side of hooks — events for the dispatch, and the actions scripts and plugins
 * may take (publish, kick), deferred while the core is in the middle of something. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "util/log.h"

void core_set_hooks(struct core *core, struct hooks *hooks) { core->hooks = hooks; }

void core_metrics_hooks(const struct core *core, buf_t *out) {
  if (core->hooks) hooks_metrics_render(core->hooks, out);
}

enum parley_decision hook_run(struct core *core, enum parley_hook_point point, struct conn *c,
                              const char *user_id, const char *user_name, const char *room, const char *body,
                              size_t body_len, int typing, struct hook_result *res) {
  if (!core->hooks || !hooks_has(core->hooks, point)) return PARLEY_PASS;
  struct parley_event ev = {0};
  ev.size = sizeof ev;
  ev.point = point;
  ev.user_id = user_id ? user_id : "";
  ev.user_name = user_name ? user_name : "";
  ev.room = room;
  ev.conn_id = c ? c->id : 0;
  ev.client_ip = c ? c->peer : "";
  ev.body = body;
  ev.body_len = body_len;
  ev.typing_active = typing;
  core_enter(core);
  enum parley_decision d = hooks_dispatch(core->hooks, point, &ev, res);
  core_leave(core);
  return d;
}

void hook_notify(struct core *core, enum parley_hook_point point, struct conn *c, const char *user_id,
                 const char *user_name, const char *room) {
  if (!core->hooks || !hooks_has(core->hooks, point)) return;
  struct hook_result res = HOOK_RESULT_INIT;
  hook_run(core, point, c, user_id, user_name, room, NULL, 0, 0, &res);
  hook_result_clear(&res);
}

/* ---- actions --------------------------------------------------------------------------------------- */

static const struct identity server_identity = {.id = "parley", .name = "Parley"};

int core_publish(struct core *core, const char *room, const char *body_json, size_t len) {
  if (!room_name_valid(room)) return -EINVAL;
  json_t *body = json_loadb(body_json, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
  if (!body) return -EINVAL;
  if (body_json_size(body) > (size_t)core->cfg->limits_max_body) {
    json_decref(body);
    return -EMSGSIZE;
  }
  struct wire_body wb = {.tree = body};
  core_enter(core);
  message_publish(core, NULL, NULL, room_get(&core->rooms, room, false, 0), room, &wb, NULL,
                  &server_identity);
  core_leave(core);
  json_decref(body);
  return 0;
}

int core_kick(struct core *core, const char *user_id, const char *reason) {
  int n = 0;
  struct conn *c, *tmp;
  HASH_ITER(hh, core->conns, c, tmp) {
    if (!c->authed || strcmp(c->who.id, user_id)) continue;
    if (c->sess) c->sess->ending = true;
    conn_close(c, CONN_CLOSE_KICKED, reason && *reason ? reason : "kicked");
    n++;
  }
  session_end_detached(core, user_id); /* detached sessions of the user end now */
  if (n) log_info("kicked %s (%d connections): %s", user_id, n, reason ? reason : "");
  return n;
}

static void defer(struct core *core, bool kick, const char *target, const char *text, size_t len) {
  struct deferred *d = calloc(1, sizeof *d);
  if (!d || !(d->target = strdup(target)) || !(d->text = strndup(text ? text : "", text ? len : 0))) {
    if (d) free(d->target);
    free(d);
    log_error("hook action on %s dropped: out of memory", target);
    return;
  }
  d->kick = kick;
  if (core->deferred_tail)
    core->deferred_tail->next = d;
  else
    core->deferred = d;
  core->deferred_tail = d;
}

/* hooks_host callbacks: scripts and plugins act through these. */
int core_host_publish(void *ud, const char *room, const char *body_json, size_t len) {
  struct core *core = ud;
  if (!room_name_valid(room)) return -EINVAL;
  if (core->depth) {
    defer(core, false, room, body_json, len);
    return 0;
  }
  return core_publish(core, room, body_json, len);
}

int core_host_kick(void *ud, const char *user_id, const char *reason) {
  struct core *core = ud;
  if (core->depth) {
    defer(core, true, user_id, reason, reason ? strlen(reason) : 0);
    return 0;
  }
  core_kick(core, user_id, reason);
  return 0;
}

void core_enter(struct core *core) { core->depth++; }

void core_leave(struct core *core) {
  if (--core->depth > 0) return;
  while (core->deferred) {
    struct deferred *d = core->deferred;
    core->deferred = d->next;
    if (!core->deferred) core->deferred_tail = NULL;
    if (d->kick)
      core_kick(core, d->target, d->text);
    else
      core_publish(core, d->target, d->text, strlen(d->text));
    free(d->target);
    free(d->text);
    free(d);
  }
}

void hooks_deferred_free(struct core *core) {
  while (core->deferred) {
    struct deferred *d = core->deferred;
    core->deferred = d->next;
    free(d->target);
    free(d->text);
    free(d);
  }
  core->deferred_tail = NULL;
}
