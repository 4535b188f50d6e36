/* embed: publish, kick, presence, history, metrics and hook results for embedding programs, on top of
 * the server that server.c runs (reached through server.h) and the core's query functions (core/query.h).
 * server.c does not call into this file. */
#include <uv.h>

#include "parley/parley.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "core/core.h"
#include "core/query.h"
#include "hooks/hooks.h"
#include "proto/request.h"
#include "server.h"
#include "store/store.h"
#include "util/log.h"

/* ---- hook results: struct parley_result is the dispatch's struct hook_result (hooks/plugin.c) ------ */

static int set_str(char **dst, const char *s, size_t n) {
  char *c = malloc(n + 1);
  if (!c) return -ENOMEM;
  memcpy(c, s, n);
  c[n] = 0;
  free(*dst);
  *dst = c;
  return 0;
}

int parley_result_reject(struct parley_result *res, const char *reason) {
  if (!res) return PARLEY_ERROR;
  if (reason) set_str(&((struct hook_result *)res)->reason, reason, strlen(reason)); /* else "rejected" */
  return PARLEY_REJECT;
}

int parley_result_rewrite_body(struct parley_result *res, const char *json, size_t len) {
  struct hook_result *r = (struct hook_result *)res;
  if (!r || !json || set_str(&r->body, json, len)) return PARLEY_ERROR;
  r->body_len = len;
  return PARLEY_REWRITE;
}

int parley_result_rewrite_name(struct parley_result *res, const char *name) {
  struct hook_result *r = (struct hook_result *)res;
  return r && name && !set_str(&r->name, name, strlen(name)) ? PARLEY_REWRITE : PARLEY_ERROR;
}

int parley_result_rewrite_user(struct parley_result *res, const char *user_id) {
  struct hook_result *r = (struct hook_result *)res;
  return r && user_id && !set_str(&r->user_id, user_id, strlen(user_id)) ? PARLEY_REWRITE : PARLEY_ERROR;
}

/* ---- acting ------------------------------------------------------------------------------------ */

int parley_server_publish(parley_server *s, const char *room, const char *body_json, size_t len) {
  if (!s || !room || !body_json) return -EINVAL;
  struct core *core = server_core(s);
  if (!core) return -ENOTCONN;
  return core_host_publish(core, room, body_json, len); /* deferred while the core is inside a request */
}

int parley_server_kick(parley_server *s, const char *user_id, const char *reason) {
  if (!s || !user_id || !*user_id) return -EINVAL;
  struct core *core = server_core(s);
  if (!core) return -ENOTCONN;
  return core_kick_or_defer(core, user_id, reason); /* from a handler: after the request */
}

/* ---- presence ---------------------------------------------------------------------------------- */

struct presence_fwd {
  parley_presence_fn fn;
  void *ud;
};

static void presence_one(void *ud, const struct core_presence *cp) {
  struct presence_fwd *f = ud;
  struct parley_presence p = {
      .user_id = cp->user_id, .user_name = cp->user_name, .since = cp->since, .sessions = cp->sessions};
  f->fn(f->ud, &p);
}

int parley_server_presence(parley_server *s, const char *room, parley_presence_fn fn, void *ud) {
  if (!s || !room) return -EINVAL;
  if (!room_name_valid(room)) return -EINVAL;
  struct core *core = server_core(s);
  if (!core) return -ENOTCONN;
  struct presence_fwd f = {fn, ud};
  return core_presence_query(core, room, fn ? presence_one : NULL, &f);
}

/* ---- history ----------------------------------------------------------------------------------- */

struct history {
  struct store_req req; /* durable rooms: the store read */
  uv_timer_t timer;     /* rooms without history: answer on the next loop iteration */
  parley_server *s;
  char *room;
  parley_history_cb cb;
  void *ud;
  struct store_msg_list ring; /* rooms without history: copies of the recent messages */
};

static void history_free(struct history *h) {
  store_msg_list_free(&h->ring);
  free(h->room);
  free(h);
}

static void history_answer(struct history *h, int status, const struct store_msg_list *l) {
  struct parley_message *v = NULL;
  size_t n = l ? l->n : 0;
  if (n && !(v = calloc(n, sizeof *v))) {
    status = -ENOMEM;
    n = 0;
  }
  for (size_t i = 0; i < n; i++) {
    const struct store_msg *m = &l->v[i];
    v[i] = (struct parley_message){.room = m->room ? m->room : h->room,
                                   .seq = m->seq,
                                   .ts = m->ts,
                                   .mid = m->mid ? m->mid : "",
                                   .user_id = m->user_id ? m->user_id : "",
                                   .user_name = m->user_name ? m->user_name : "",
                                   .cmid = m->cmid ? m->cmid : "",
                                   .body = m->body ? m->body : "null"};
  }
  h->cb(h->s, status, v, n, h->ud);
  free(v);
}

static void history_done(struct store_req *req) {
  struct history *h = (struct history *)req;
  int status = req->err ? -EIO : 0;
  if (req->err) log_warn("history of %s for the embedding program: %s", h->room, req->errmsg);
  history_answer(h, status, &req->u.read.out);
  store_msg_list_free(&req->u.read.out);
  history_free(h);
}

static void history_timer_closed(uv_handle_t *t) { history_free(t->data); }

static void history_timer(uv_timer_t *t) {
  struct history *h = t->data;
  history_answer(h, 0, &h->ring);
  uv_close((uv_handle_t *)t, history_timer_closed);
}

int parley_server_history(parley_server *s, const char *room, uint64_t before, size_t limit,
                          parley_history_cb cb, void *ud) {
  if (!s || !room || !cb || !room_name_valid(room)) return -EINVAL;
  struct core *core = server_core(s);
  if (!core) return -ENOTCONN;
  size_t cap = (size_t)server_config(s)->history_max_limit;
  if (!limit || limit > cap) limit = cap;
  struct history *h = calloc(1, sizeof *h);
  if (!h || !(h->room = strdup(room))) {
    free(h);
    return -ENOMEM;
  }
  h->s = s;
  h->cb = cb;
  h->ud = ud;
  if (core_room_durable(core, room)) {
    h->req.kind = STORE_REQ_READ;
    h->req.done = history_done;
    h->req.u.read.room = h->room;
    h->req.u.read.before = before;
    h->req.u.read.limit = limit;
    h->req.u.read.newest = true;
    int rc = store_submit(server_store(s), &h->req);
    if (rc) {
      history_free(h);
      return rc == STORE_EOVERLOADED ? -EAGAIN : -ENOTCONN;
    }
    return 0;
  }
  int rc = core_recent_messages(core, room, before, limit, &h->ring);
  if (!rc) rc = uv_timer_init(server_loop(s), &h->timer);
  if (rc) {
    history_free(h);
    return rc;
  }
  h->timer.data = h;
  uv_timer_start(&h->timer, history_timer, 0, 0);
  return 0;
}

/* ---- metrics ----------------------------------------------------------------------------------- */

int parley_server_metrics(parley_server *s, struct parley_metrics *m, size_t size) {
  if (!s || !m || size < sizeof(uint64_t)) return -EINVAL;
  struct parley_metrics full = {0};
  struct core *core = server_core(s);
  if (core) {
    const struct metrics *c = core_metrics(core);
    full.connections = core_conn_count(core);
    full.rooms = core_room_count(core);
    full.connections_total = c->connections_total;
    full.connections_refused = c->connections_refused;
    full.frames_in = c->frames_in;
    full.bytes_in = c->bytes_in;
    full.frames_out = c->frames_out;
    full.bytes_out = c->bytes_out;
    full.messages_total = c->messages_total;
    full.deliveries_total = c->deliveries_total;
    full.queue_drops = c->queue_drops;
    full.slow_closes = c->slow_closes;
    full.store_pending = server_store(s) ? store_pending_appends(server_store(s)) : 0;
  }
  memset(m, 0, size);
  memcpy(m, &full, size < sizeof full ? size : sizeof full);
  return 0;
}
