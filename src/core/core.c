/* core: connections, requests, rooms, fan-out. Everything here runs on the loop thread. */
#include "core/core.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uthash.h>

#include "core/broker.h"
#include "core/internal.h"
#include "util/log.h"
#include "version.h"

uint64_t core_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t core_mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

struct core *core_new(const struct config *cfg, struct store *store) {
  struct core *core = calloc(1, sizeof *core);
  if (!core) return NULL;
  core->cfg = cfg;
  core->store = store;
  core->next_conn_id = 1;
  core->broker = &broker_local_ops;
  core->broker_ctx = core;
  core->session_ops = &session_local_ops;
  core->session_ctx = core;
  core->presence_ops = &presence_local_ops;
  core->presence_ctx = core;
  core->retention_last = core_mono_ms();
  core->rl_send_user = rl_table_new(100000);
  core->rl_send_ip = rl_table_new(100000);
  core->rl_connect_ip = rl_table_new(100000);
  core->ip_conns = rl_conns_new();
  if (!core->rl_send_user || !core->rl_send_ip || !core->rl_connect_ip || !core->ip_conns) {
    core_free(core);
    return NULL;
  }
  presence_guests_forget_all(core);
  return core;
}

struct metrics *core_metrics(struct core *core) {
  return &core->metrics;
}
void core_set_auth(struct core *core, const struct auth *auth) { core->auth = auth; }

int core_admit(struct core *core, const char *ip) {
  const struct config *cfg = core->cfg;
  if (cfg->limits_max_connections_per_ip &&
      rl_conns_count(core->ip_conns, ip) >= cfg->limits_max_connections_per_ip)
    return 503;
  if (rl_table_take(core->rl_connect_ip, ip, &cfg->rate_connect_ip, (int64_t)core_mono_ms()) > 0) return 429;
  return 0;
}

bool access_check(struct core *core, struct conn *c, json_t *id, const char *room, unsigned rights) {
  if ((access_rights(core->cfg, &c->who, room) & rights) == rights) return true;
  reply_err(core, c, id, PERR_FORBIDDEN, "you may not do that in this room");
  return false;
}

bool rate_check(struct core *core, struct conn *c, json_t *id, struct rl_bucket *b,
                const struct config_rate *r, bool is_send) {
  const struct config *cfg = core->cfg;
  int64_t now = (int64_t)core_mono_ms();
  int64_t wait = rl_bucket_take(b, r, now);
  if (!wait && is_send) {
    int64_t w2 = rl_table_take(core->rl_send_user, c->who.id, &cfg->rate_send_user, now);
    int64_t w3 = rl_table_take(core->rl_send_ip, c->peer, &cfg->rate_send_ip, now);
    wait = w2 > w3 ? w2 : w3;
    if (wait < 0) wait = 0; /* the tables are out of memory: let it through */
  }
  if (!wait) return true;
  core->metrics.errors[PERR_RATE_LIMITED]++;
  struct reply rp = {.kind = REPLY_ERR,
                     .id = id,
                     .code = perr_name(PERR_RATE_LIMITED),
                     .msg = "slow down: too many requests",
                     .retry_after = wait};
  conn_send_own(core, c, c->fmt->encode_reply(&rp));
  if (rl_strike(&c->strikes, cfg->rate_strikes, cfg->rate_strikes_window, now)) {
    log_info("conn %" PRIu64 " (%s, %s): closing after repeated rate limiting", c->id, c->who.id, c->peer);
    conn_close(c, CONN_CLOSE_RATE_LIMITED, "rate limit exceeded");
  }
  return false;
}
size_t core_conn_count(const struct core *core) { return HASH_COUNT(core->conns); }
size_t core_room_count(const struct core *core) { return room_set_count(&core->rooms); }

/* ---- sending ------------------------------------------------------------------------------------ */

void conn_send_frame(struct core *core, struct conn *c, frame_t *f) {
  if (c->closing || !f) return;
  if (c->tx->send(c->tx_ctx, f) < 0) c->closing = true;
}

void conn_close(struct conn *c, enum conn_close_why why, const char *reason) {
  if (c->closing) return;
  c->closing = true;
  c->tx->close(c->tx_ctx, why, reason);
}

/* ok: the result's members (taken; NULL: out of memory, an empty result is sent). */
void reply_ok(struct core *core, struct conn *c, json_t *id, json_t *ok) {
  if (!ok) ok = json_object();
  if (!ok) return;
  struct reply rp = {.kind = REPLY_OK, .id = id, .ok = ok};
  conn_send_own(core, c, c->fmt->encode_reply(&rp));
  json_decref(ok);
}

/* Queue a frame made for c alone (NULL: out of memory). Takes the reference. */
void conn_send_own(struct core *core, struct conn *c, frame_t *f) {
  if (!f) {
    log_error("conn %" PRIu64 ": out of memory encoding a reply", c->id);
    conn_close(c, CONN_CLOSE_INTERNAL, "out of memory");
    return;
  }
  conn_send_frame(core, c, f);
  frame_unref(f);
}

void reply_err(struct core *core, struct conn *c, json_t *id, enum perr code, const char *msg) {
  core->metrics.errors[code]++;
  struct reply rp = {.kind = REPLY_ERR, .id = id, .code = perr_name(code), .msg = msg};
  conn_send_own(core, c, c->fmt->encode_reply(&rp));
}

frame_t *conn_event_frame(struct conn *c, const json_t *ev) {
  struct event e = {.doc = ev};
  return c->fmt->encode_event(&e, 0);
}

frame_t *outev_frame(struct outev *e, const struct format *fmt) {
  if (!e->enc[fmt->id]) {
    struct event ev = {.doc = e->doc, .msg = e->msg};
    e->enc[fmt->id] = fmt->encode_event(&ev, e->flags);
  }
  return e->enc[fmt->id];
}

void outev_done(struct outev *e) {
  for (int i = 0; i < FORMAT_MAX; i++) frame_unref(e->enc[i]);
  json_decref(e->doc);
}

/* Queue e to every member of r, except the connections of user skip_user (when not NULL). */
void room_broadcast(struct core *core, struct room *r, struct outev *e, const char *skip_user) {
  for (uint32_t i = 0; i < r->nmembers; i++) {
    struct conn *c = r->members[i]->conn;
    if (skip_user && !strcmp(c->who.id, skip_user)) continue;
    conn_send_frame(core, c, outev_frame(e, c->fmt));
  }
}

json_t *user_json(const struct identity *who) {
  return json_pack("{s:s,s:s}", "id", who->id, "name", who->name);
}

void room_notify(struct core *core, struct room *r, const char *ev, const struct identity *who) {
  /* Filling a room of n would send n^2/2 notifications: big rooms keep presence to the presence op. */
  uint64_t size = r->nmembers + (ev[0] == 'l'); /* a leave counts the room as it was */
  if (core->cfg->presence_broadcast_max && size > (uint64_t)core->cfg->presence_broadcast_max) return;
  struct outev e = {.flags = FRAME_EPHEMERAL};
  e.doc = json_pack("{s:s,s:s,s:o}", "ev", ev, "room", r->name, "user", user_json(who));
  if (e.doc) room_broadcast(core, r, &e, who->id);
  outev_done(&e);
}

/* ---- membership ----------------------------------------------------------------------------------- */

struct member *conn_find_room(struct conn *c, const char *name, uint32_t *idx) {
  for (uint32_t i = 0; i < c->nrooms; i++)
    if (!strcmp(c->rooms[i]->room->name, name)) {
      if (idx) *idx = i;
      return c->rooms[i];
    }
  return NULL;
}

/* ---- request handlers ------------------------------------------------------------------------------ */

static void pending_unlink(struct core *core, struct conn *c) {
  if (c->pend_prev)
    c->pend_prev->pend_next = c->pend_next;
  else if (core->pend_head == c)
    core->pend_head = c->pend_next;
  if (c->pend_next)
    c->pend_next->pend_prev = c->pend_prev;
  else if (core->pend_tail == c)
    core->pend_tail = c->pend_prev;
  c->pend_prev = c->pend_next = NULL;
}

/* auth's negative errno (auth.h) as the protocol's error: the reply edge. */
static enum perr auth_perr(int rc) {
  return rc == -EACCES ? PERR_AUTH_FAILED : rc == -EPERM ? PERR_AUTH_REQUIRED : PERR_INTERNAL;
}

/* hello, once the session of its resume token is known (found: NULL when none or no token). */
static void hello_go(struct core *core, struct conn *c, struct request *req, struct session *found) {
  if (c->authed) {
    reply_err(core, c, req->id, PERR_ALREADY_AUTHENTICATED, "this connection has already said hello");
    return;
  }
  char msg[160];
  int rc = auth_hello(core->auth, core->cfg, req->token, (int64_t)(core_now_ms() / 1000), &c->who, msg,
                      sizeof msg);
  if (rc) {
    reply_err(core, c, req->id, auth_perr(rc), msg);
    return;
  }
  if (!req->token && req->resume && session_guest_identity(found, &c->who) < 0) {
    identity_free(&c->who);
    reply_err(core, c, req->id, PERR_INTERNAL, "out of memory");
    return;
  }
  c->deadline = auth_deadline_ms(core->cfg, &c->who);
  if (core->hooks && hooks_has(core->hooks, PARLEY_HOOK_AUTH)) {
    struct hook_result res = HOOK_RESULT_INIT;
    enum parley_decision d =
        hook_run(core, PARLEY_HOOK_AUTH, c, c->who.id, c->who.name, NULL, NULL, 0, 0, &res);
    if (d == PARLEY_REJECT) {
      reply_err(core, c, req->id, PERR_REJECTED, res.reason ? res.reason : "rejected");
      hook_result_clear(&res);
      identity_free(&c->who);
      return;
    }
    if (d == PARLEY_REWRITE) { /* the hook names the user: take its strings */
      if (res.name) {
        free(c->who.name);
        c->who.name = res.name;
        res.name = NULL;
      }
      if (res.user_id) {
        free(c->who.id);
        c->who.id = res.user_id;
        res.user_id = NULL;
      }
    }
    hook_result_clear(&res);
  }
  struct session *s = session_resume(core, c, found);
  bool resumed = s != NULL;
  if (!s && !(s = session_open(core, c, req->client))) {
    identity_free(&c->who);
    reply_err(core, c, req->id, PERR_INTERNAL, "out of memory");
    return;
  }
  c->authed = true;
  pending_unlink(core, c);
  /* The session's rooms were entered under an earlier token: the one this connection brought decides. */
  if (resumed) rights_recheck(core, c, false);
  char connid[32], sessid[32];
  snprintf(connid, sizeof connid, "c%" PRIu64, c->id);
  snprintf(sessid, sizeof sessid, "s%" PRIu64, s->id);
  const struct config *cfg = core->cfg;
  json_t *ok = json_pack(
      "{s:o,s:s,s:s,s:s,s:b,s:s,s:{s:I,s:I,s:I,s:I,s:I}}", "user", user_json(&c->who), "conn", connid,
      "session", sessid, "resume_token", s->token, "resumed", resumed, "server",
      "parley/" PARLEY_VERSION_STRING, "limits", "max_frame", (json_int_t)cfg->limits_max_frame, "max_rooms",
      (json_int_t)cfg->limits_max_rooms_per_conn, "max_body", (json_int_t)cfg->limits_max_body, "typing_ttl",
      (json_int_t)cfg->typing_ttl, "resume_ttl", (json_int_t)cfg->session_resume_ttl);
  if (resumed) {
    json_t *rooms = json_array();
    for (uint32_t i = 0; i < s->nrooms; i++)
      json_array_append_new(
          rooms, json_pack("{s:s,s:I}", "room", s->rooms[i]->name, "seq", (json_int_t)s->rooms[i]->seq));
    json_object_set_new_nocheck(ok, "rooms", rooms);
  }
  log_debug("conn %" PRIu64 ": hello as %s (session %" PRIu64 "%s)", c->id, c->who.id, s->id,
            resumed ? ", resumed" : "");
  reply_ok(core, c, req->id, ok);
}

/* A hello waiting for the session store to find its resume token's session (a store that answers later):
 * what it needs of the request, copied (owned here). */
struct pending_hello {
  struct core *core;
  uint64_t conn_id;
  struct request req; /* id (a reference), token, client and resume (the copies below) */
  char *token, *client, *resume;
};

static void hello_found_later(void *ud, struct session *found) {
  struct pending_hello *h = ud;
  struct core *core = h->core;
  struct conn *c = core_conn_by_id(core, h->conn_id);
  if (c && !c->closing) {
    core_enter(core);
    hello_go(core, c, &h->req, found);
    core_leave(core);
  }
  json_decref(h->req.id);
  free(h->token);
  free(h->client);
  free(h->resume);
  free(h);
}

struct hello_now {
  struct core *core;
  struct conn *c;
  struct request *req;
};

static void hello_found_now(void *ud, struct session *found) {
  struct hello_now *h = ud;
  hello_go(h->core, h->c, h->req, found);
}

static void op_hello(struct core *core, struct conn *c, struct request *req) {
  if (!req->resume || c->authed) {
    hello_go(core, c, req, NULL);
    return;
  }
  if (core->session_ops->sync) { /* answered before session_lookup returns */
    struct hello_now h = {core, c, req};
    if (session_lookup(core, req->resume, hello_found_now, &h)) hello_go(core, c, req, NULL);
    return;
  }
  struct pending_hello *h = calloc(1, sizeof *h);
  if (!h || !(h->resume = strdup(req->resume)) || (req->token && !(h->token = strdup(req->token))) ||
      (req->client && !(h->client = strdup(req->client)))) {
    if (h) {
      free(h->resume);
      free(h->token);
    }
    free(h);
    reply_err(core, c, req->id, PERR_INTERNAL, "out of memory");
    return;
  }
  h->core = core;
  h->conn_id = c->id;
  h->req = (struct request){
      .op = req->op, .id = json_incref(req->id), .token = h->token, .client = h->client, .resume = h->resume};
  if (session_lookup(core, h->resume, hello_found_later, h)) hello_found_later(h, NULL);
}

/* refresh: a new token for the same user; rooms the new rights no longer allow are left (`kicked`). */
static void op_refresh(struct core *core, struct conn *c, struct request *req) {
  char msg[160];
  int rc = auth_refresh(core->auth, core->cfg, req->token, (int64_t)(core_now_ms() / 1000), &c->who, msg,
                        sizeof msg);
  if (rc) {
    reply_err(core, c, req->id, auth_perr(rc), msg);
    return;
  }
  c->deadline = auth_deadline_ms(core->cfg, &c->who);
  rights_recheck(core, c, true);
  reply_ok(core, c, req->id,
           json_pack("{s:o}", "exp", c->who.exp ? json_integer((json_int_t)c->who.exp) : json_null()));
}

static void op_ping(struct core *core, struct conn *c, struct request *req) {
  reply_ok(core, c, req->id, json_pack("{s:I}", "ts", (json_int_t)core_now_ms()));
}

typedef void (*op_fn)(struct core *, struct conn *, struct request *);
static const struct {
  op_fn fn;
  bool before_hello; /* allowed before hello */
} ops[OP__COUNT] = {
    /* clang-format off */
    [OP_HELLO]    = {op_hello, true},
    [OP_PING]     = {op_ping, true},
    [OP_JOIN]     = {op_join, false},
    [OP_LEAVE]    = {op_leave, false},
    [OP_SEND]     = {op_send, false},
    [OP_HISTORY]  = {op_history, false},
    [OP_TYPING]   = {op_typing, false},
    [OP_PRESENCE] = {op_presence, false},
    [OP_ROOMS]    = {op_rooms, false},
    [OP_READ]     = {op_read, false},
    [OP_REFRESH]  = {op_refresh, false},
    /* clang-format on */
};

/* ---- connection lifecycle ------------------------------------------------------------------------- */

struct conn *core_conn_by_id(struct core *core, uint64_t id) {
  struct conn *c = NULL;
  HASH_FIND(hh, core->conns, &id, sizeof id, c);
  return c;
}

struct conn *core_conn_open(struct core *core, const struct format *fmt, const struct conn_tx *tx,
                            void *tx_ctx, const char *peer) {
  struct conn *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  c->id = core->next_conn_id++;
  c->fmt = fmt;
  c->tx = tx;
  c->tx_ctx = tx_ctx;
  c->opened_mono = core_mono_ms();
  snprintf(c->peer, sizeof c->peer, "%s", peer ? peer : "?");
  c->ip_counted = rl_conns_acquire(core->ip_conns, c->peer, 0) == 0;
  HASH_ADD(hh, core->conns, id, sizeof c->id, c);
  c->pend_prev = core->pend_tail;
  if (core->pend_tail)
    core->pend_tail->pend_next = c;
  else
    core->pend_head = c;
  core->pend_tail = c;
  core->metrics.connections_total++;
  if (core->hooks && hooks_has(core->hooks, PARLEY_HOOK_CONNECT)) {
    struct hook_result res = HOOK_RESULT_INIT;
    if (hook_run(core, PARLEY_HOOK_CONNECT, c, NULL, NULL, NULL, NULL, 0, 0, &res) == PARLEY_REJECT)
      conn_close(c, CONN_CLOSE_REJECTED, res.reason ? res.reason : "rejected");
    hook_result_clear(&res);
  }
  log_debug("conn %" PRIu64 ": open from %s (%s)", c->id, c->peer, fmt->name);
  return c;
}

static void dispatch(struct core *core, struct conn *c, struct request *req) {
  if (!c->authed && !ops[req->op].before_hello)
    reply_err(core, c, req->id, PERR_NOT_AUTHENTICATED, "say hello first");
  else
    ops[req->op].fn(core, c, req);
}

void core_conn_request(struct core *core, struct conn *c, struct request *req) {
  if (c->closing) return;
  core_enter(core);
  dispatch(core, c, req);
  core_leave(core);
}

void core_conn_refused(struct core *core, struct conn *c, json_t *id, enum perr code, const char *msg) {
  if (c->closing) return;
  core_enter(core);
  reply_err(core, c, id, code, msg);
  core_leave(core);
}

void core_conn_closed(struct core *core, struct conn *c, bool leaving) {
  core_enter(core);
  if (c->authed) hook_notify(core, PARLEY_HOOK_DISCONNECT, c, c->who.id, c->who.name, NULL);
  replay_drop(core, c);
  while (c->nrooms) conn_leave_at(core, c, c->nrooms - 1);
  presence_conn_closed(core, c);
  if (c->sess) {
    if (leaving) c->sess->ending = true; /* anything else may come back */
    session_detach(core, c->sess);
  }
  pending_unlink(core, c);
  if (c->ip_counted) rl_conns_release(core->ip_conns, c->peer);
  HASH_DEL(core->conns, c);
  log_debug("conn %" PRIu64 ": closed", c->id);
  identity_free(&c->who);
  free(c->rooms);
  free(c);
  core_leave(core);
}

/* Close connections whose token expired without a refresh; forget idle rate-limit entries. */
static void expiry_scan(struct core *core) {
  int64_t now = (int64_t)core_now_ms();
  struct conn *c, *tmp;
  HASH_ITER(hh, core->conns, c, tmp) {
    if (c->deadline && now >= c->deadline && !c->closing) {
      log_info("conn %" PRIu64 " (%s): token expired", c->id, c->who.id);
      if (c->sess) c->sess->ending = true;
      conn_close(c, CONN_CLOSE_TOKEN_EXPIRED, "token expired");
    }
  }
  int64_t mono = (int64_t)core_mono_ms();
  rl_table_expire(core->rl_send_user, &core->cfg->rate_send_user, mono);
  rl_table_expire(core->rl_send_ip, &core->cfg->rate_send_ip, mono);
  rl_table_expire(core->rl_connect_ip, &core->cfg->rate_connect_ip, mono);
}

void core_tick(struct core *core, uint64_t now_ms) {
  core_enter(core);
  presence_tick(core, now_ms);
  typing_tick(core, now_ms);
  if (now_ms - core->expiry_last >= 1000) {
    core->expiry_last = now_ms;
    expiry_scan(core);
  }
  if (now_ms - core->retention_last >= (uint64_t)core->cfg->history_retention_interval) {
    core->retention_last = now_ms;
    core_retention_run(core);
  }
  uint64_t limit = (uint64_t)core->cfg->limits_hello_timeout;
  while (core->pend_head && now_ms - core->pend_head->opened_mono >= limit) {
    struct conn *c = core->pend_head;
    pending_unlink(core, c);
    conn_close(c, CONN_CLOSE_HELLO_TIMEOUT, "hello timeout");
  }
  core_leave(core);
}

void core_close_all(struct core *core, enum conn_close_why why, const char *reason) {
  struct conn *c, *tmp;
  HASH_ITER(hh, core->conns, c, tmp) conn_close(c, why, reason);
}

void core_free(struct core *core) {
  if (!core) return;
  struct conn *c, *tmp;
  HASH_ITER(hh, core->conns, c, tmp) core_conn_closed(core, c, false);
  presence_free_all(core);
  room_set_free(&core->rooms);
  if (core->broker && core->broker->destroy) core->broker->destroy(core->broker_ctx);
  rl_table_free(core->rl_send_user);
  rl_table_free(core->rl_send_ip);
  rl_table_free(core->rl_connect_ip);
  rl_conns_free(core->ip_conns);
  hooks_deferred_free(core);
  buf_free(&core->send_json);
  free(core);
}
