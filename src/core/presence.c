/* presence: the events of users going online and offline (to the rooms they are in and to the connections
 * watching them), watches, and the presence op. Whether a change is one is the presence backend's call
 * (core->presence_ops, presence.h); sessions are session.c's. Online/offline is per user and emitted once
 * (docs/protocol.md). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "util/log.h"

#define WATCH_MAX_PER_CONN 1000

/* ---- sending to a deduplicated set of connections ---- */

static void mark_begin(struct core *core) { core->mark++; }

static void send_marked(struct core *core, struct conn *c, struct outev *e) {
  if (!c || c->mark == core->mark) return;
  c->mark = core->mark;
  conn_send_frame(core, c, outev_frame(e, c->fmt));
}

static struct watch *watch_get(struct core *core, const char *user_id) {
  struct watch *w = NULL;
  HASH_FIND_STR(core->watches, user_id, w);
  return w;
}

static void send_to_watchers(struct core *core, const char *user_id, struct outev *e) {
  struct watch *w = watch_get(core, user_id);
  for (uint32_t i = 0; w && i < w->n; i++) send_marked(core, core_conn_by_id(core, w->conns[i]), e);
}

static json_t *status_json(const char *id, const char *name, bool online, uint64_t last_seen) {
  return json_pack("{s:{s:s,s:s},s:b,s:o}", "user", "id", id, "name", name ? name : id, "online", online,
                   "last_seen", last_seen ? json_integer((json_int_t)last_seen) : json_null());
}

/* A guest's identity ends with its last session (after the resume grace): no one can be that guest again
 * (ids are random and never repeat), so what the store kept for it — room list, read markers — is deleted
 * then, behind the guest's own writes (the writer runs them in order). Its messages stay in history. */
struct pending_forget {
  struct store_req req;
  char *user_id;
};

static void forget_done(struct store_req *req) {
  struct pending_forget *p = (struct pending_forget *)req;
  if (req->err ==
      STORE_ECLOSED) /* shutting down: the next start deletes what is left (presence_guests_forget_all) */
    log_debug("the stored state of %s stays until the next start", p->user_id);
  else if (req->err)
    log_warn("deleting the stored state of %s%s failed: %s", p->user_id, req->u.forget.prefix ? "*" : "",
             req->errmsg);
  free(p->user_id);
  free(p);
}

static void guest_forget(struct core *core, const char *user_id, bool prefix) {
  if (!core->store) return;
  struct pending_forget *p = calloc(1, sizeof *p);
  if (!p || !(p->user_id = strdup(user_id))) {
    free(p);
    log_warn("out of memory: the stored state of %s stays", user_id);
    return;
  }
  p->req.kind = STORE_REQ_FORGET_USER;
  p->req.done = forget_done;
  p->req.u.forget.user_id = p->user_id;
  p->req.u.forget.prefix = prefix;
  int rc = store_submit(core->store, &p->req);
  if (rc) {
    p->req.err = rc;
    snprintf(p->req.errmsg, sizeof p->req.errmsg, "the store refused the request");
    forget_done(&p->req);
  }
}

/* No guest outlives the process (sessions live in memory; a resume after a restart is a fresh session), so
 * whatever the store still holds of guests at start was left by the previous run: a crash, or guests that
 * were connected or within their grace period at shutdown. Submitted before any client can say hello, it
 * runs before any write of this run's guests. (Several servers sharing one store would need to scope this
 * to their own guests.) */
void presence_guests_forget_all(struct core *core) { guest_forget(core, "guest-", true); }

/* {"ev":"presence", ...STATUS} */
static json_t *presence_event(const char *id, const char *name, bool online, uint64_t last_seen) {
  json_t *ev = json_pack("{s:s}", "ev", "presence");
  json_t *st = status_json(id, name, online, last_seen);
  json_object_update(ev, st);
  json_decref(st);
  return ev;
}

void presence_went_online(void *ud, struct session *s, bool went, uint64_t ts) {
  (void)ts;
  if (!went) return;
  struct core *core = ud;
  struct outev e = {.flags = FRAME_EPHEMERAL};
  e.doc = presence_event(s->user->id, s->user->name, true, 0);
  mark_begin(core);
  send_to_watchers(core, s->user->id, &e);
  outev_done(&e);
}

void presence_went_offline(void *ud, struct session *s, bool went, uint64_t ts) {
  if (!went) return;
  struct core *core = ud;
  struct user *u = s->user;
  struct outev e = {.flags = FRAME_EPHEMERAL};
  e.doc = presence_event(u->id, u->name, false, ts);
  mark_begin(core);
  for (uint32_t i = 0; i < s->nrooms; i++)
    for (uint32_t k = 0; k < s->rooms[i]->nmembers; k++) {
      struct conn *c = s->rooms[i]->members[k]->conn;
      if (strcmp(c->who.id, u->id)) send_marked(core, c, &e);
    }
  send_to_watchers(core, u->id, &e);
  outev_done(&e);
  if (u->guest) /* the identity ends here: nothing of it is kept (no last-seen either) */
    guest_forget(core, u->id, false);
  hook_notify(core, PARLEY_HOOK_OFFLINE, NULL, u->id, u->name, NULL); /* exactly once per going offline */
}

static void presence_sweep_end(void *ud, struct session *s) { session_end(ud, s); }

void presence_tick(struct core *core, uint64_t now_mono) {
  core->presence_ops->sweep(core->presence_ctx, now_mono, presence_sweep_end, core);
}

/* ---- watches ---- */

static void watch_remove(struct core *core, const char *user_id, uint64_t conn_id) {
  struct watch *w = watch_get(core, user_id);
  if (!w) return;
  for (uint32_t i = 0; i < w->n; i++)
    if (w->conns[i] == conn_id) {
      w->conns[i] = w->conns[--w->n];
      break;
    }
  if (!w->n) {
    HASH_DEL(core->watches, w);
    free(w->user_id);
    free(w->conns);
    free(w);
  }
}

static int watch_add(struct core *core, struct conn *c, const char *user_id) {
  for (uint32_t i = 0; i < c->nwatching; i++)
    if (!strcmp(c->watching[i], user_id)) return 0;
  if (c->nwatching >= WATCH_MAX_PER_CONN) return -1;
  struct watch *w = watch_get(core, user_id);
  if (!w) {
    w = calloc(1, sizeof *w);
    if (!w || !(w->user_id = strdup(user_id))) {
      free(w);
      return -1;
    }
    HASH_ADD_KEYPTR(hh, core->watches, w->user_id, strlen(w->user_id), w);
  }
  if (w->n == w->cap) {
    uint32_t cap = w->cap ? w->cap * 2 : 4;
    uint64_t *cs = realloc(w->conns, cap * sizeof *cs);
    if (!cs) return -1;
    w->conns = cs;
    w->cap = cap;
  }
  char **ws = realloc(c->watching, (c->nwatching + 1) * sizeof *ws);
  if (!ws) return -1;
  c->watching = ws;
  if (!(ws[c->nwatching] = strdup(user_id))) return -1;
  c->nwatching++;
  w->conns[w->n++] = c->id;
  return 0;
}

void presence_conn_closed(struct core *core, struct conn *c) {
  for (uint32_t i = 0; i < c->nwatching; i++) {
    watch_remove(core, c->watching[i], c->id);
    free(c->watching[i]);
  }
  free(c->watching);
  c->watching = NULL;
  c->nwatching = 0;
}

/* ---- the presence op ---- */

static json_t *room_members_json(struct core *core, struct room *r) {
  json_t *members = json_array();
  struct room_user *ru, *tmp;
  HASH_ITER(hh, r->users, ru, tmp) {
    struct user *u = session_user_find(core, ru->user_id);
    if (!u) continue;
    json_t *conns = json_array();
    for (struct session *s = u->sessions; s; s = s->unext) {
      if (!session_in(s, r)) continue;
      char cid[32];
      snprintf(cid, sizeof cid, "c%" PRIu64, s->conn ? s->conn->id : 0);
      json_array_append_new(conns,
                            json_pack("{s:o,s:s,s:I}", "conn", s->conn ? json_string(cid) : json_null(),
                                      "client", s->client, "since", (json_int_t)s->since));
    }
    json_array_append_new(members, json_pack("{s:{s:s,s:s},s:I,s:o}", "user", "id", u->id, "name", u->name,
                                             "since", (json_int_t)ru->since, "connections", conns));
  }
  return members;
}

/* A presence op with users: answered once the presence backend has told every user's status. */
struct pending_presence {
  struct core *core;
  uint64_t conn_id;
  json_t *req_id;
  json_t *users; /* the reply array being filled (STATUS maps) */
};

static void presence_status_set(void *ud, size_t i, const struct presence_status *st) {
  struct pending_presence *pp = ud;
  json_array_set_new(pp->users, i,
                     status_json(st->user_id, st->name ? st->name : st->user_id, st->online, st->last_seen));
}

static void presence_reply(void *ud) {
  struct pending_presence *pp = ud;
  struct conn *c = core_conn_by_id(pp->core, pp->conn_id);
  if (c) reply_ok(pp->core, c, pp->req_id, json_pack("{s:O}", "users", pp->users));
  json_decref(pp->users);
  json_decref(pp->req_id);
  free(pp);
}

void op_presence(struct core *core, struct conn *c, struct request *req) {
  if (req->room) {
    /* The presence right decides, not membership: in a `members` room anyone may see who is there. */
    if (!access_check(core, c, req->id, req->room, ACCESS_PRESENCE)) return;
    struct room *r = room_get(&core->rooms, req->room, false, 0);
    reply_ok(
        core, c, req->id,
        json_pack("{s:s,s:o}", "room", req->room, "members", r ? room_members_json(core, r) : json_array()));
    return;
  }
  if (!req->users) {
    reply_err(core, c, req->id, PERR_BAD_REQUEST, "give either 'room' or 'users'");
    return;
  }
  size_t n = json_array_size(req->users);
  struct pending_presence *pp = calloc(1, sizeof *pp);
  const char **ids = calloc(n ? n : 1, sizeof *ids);
  if (!pp || !ids || !(pp->users = json_array())) {
    free(pp);
    free(ids);
    reply_err(core, c, req->id, PERR_INTERNAL, "out of memory");
    return;
  }
  pp->core = core;
  pp->conn_id = c->id;
  pp->req_id = json_incref(req->id);
  for (size_t i = 0; i < n; i++) {
    ids[i] = json_string_value(json_array_get(req->users, i));
    if (watch_add(core, c, ids[i]))
      log_debug("conn %" PRIu64 ": presence watch of %s not kept (limit)", c->id, ids[i]);
    json_array_append_new(pp->users, json_null()); /* each slot filled by presence_status_set */
  }
  int rc = core->presence_ops->query(core->presence_ctx, ids, n, presence_status_set, presence_reply, pp);
  free(ids); /* the strings are req's: a backend that answers later copies what it keeps */
  if (rc) {
    reply_err(core, c, req->id, PERR_INTERNAL, "cannot tell presence now; retry");
    json_decref(pp->users);
    json_decref(pp->req_id);
    free(pp);
  }
}

void presence_free_all(struct core *core) {
  /* every session left is detached (core_free closed the connections first): end them */
  while (core->users) {
    struct user *u = core->users;
    while (core->users == u && u->sessions) session_end(core, u->sessions);
  }
  struct watch *w, *wt;
  HASH_ITER(hh, core->watches, w, wt) {
    HASH_DEL(core->watches, w);
    free(w->user_id);
    free(w->conns);
    free(w);
  }
  presence_local_free(core);
}
