/* presence: users, sessions (attach, detach with grace, resume, end), per-room presence and the
 * presence op. Online/offline and room join/leave are per user and emitted once (docs/protocol.md). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "core/internal.h"
#include "util/log.h"

#define WATCH_MAX_PER_CONN 1000
#define SEEN_MAX           100000

/* ---- sending to a deduplicated set of connections ---- */

static void mark_begin(struct core *core) { core->mark++; }

static void send_marked(struct core *core, struct conn *c, struct outev *e) {
  if (!c || c->mark == core->mark) return;
  c->mark = core->mark;
  conn_send_frame(core, c, outev_frame(e, c->codec));
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

/* ---- last seen ---- */

static void seen_set(struct core *core, const char *user_id, uint64_t ts) {
  struct last_seen *ls = NULL;
  HASH_FIND_STR(core->seen, user_id, ls);
  if (!ls) {
    if (HASH_COUNT(core->seen) >= SEEN_MAX) { /* bounded: drop the oldest entry (insertion order) */
      struct last_seen *old = core->seen;
      HASH_DEL(core->seen, old);
      free(old->user_id);
      free(old);
    }
    ls = calloc(1, sizeof *ls);
    if (!ls || !(ls->user_id = strdup(user_id))) {
      free(ls);
      return;
    }
    HASH_ADD_KEYPTR(hh, core->seen, ls->user_id, strlen(ls->user_id), ls);
  }
  ls->ts = ts;
}

static uint64_t seen_get(struct core *core, const char *user_id) {
  struct last_seen *ls = NULL;
  HASH_FIND_STR(core->seen, user_id, ls);
  return ls ? ls->ts : 0;
}

struct pending_seen_write {
  struct store_req req;
  char *user_id;
};

static void seen_write_done(struct store_req *req) {
  struct pending_seen_write *p = (struct pending_seen_write *)req;
  if (req->err) log_warn("storing last-seen of %s failed: %s", p->user_id, req->errmsg);
  free(p->user_id);
  free(p);
}

static void seen_store(struct core *core, const char *user_id, uint64_t ts) {
  seen_set(core, user_id, ts);
  if (!core->store) return;
  struct pending_seen_write *p = calloc(1, sizeof *p);
  if (!p || !(p->user_id = strdup(user_id))) {
    free(p);
    return;
  }
  p->req.kind = STORE_REQ_LAST_SEEN_SET;
  p->req.done = seen_write_done;
  p->req.u.last_seen.user_id = p->user_id;
  p->req.u.last_seen.ts = ts;
  if (store_submit(core->store, &p->req)) seen_write_done(&p->req);
}

/* ---- users and sessions ---- */

struct user *user_find(struct core *core, const char *id) {
  struct user *u = NULL;
  HASH_FIND_STR(core->users, id, u);
  return u;
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
  if (req->err == STORE_ECLOSED) /* shutting down: the next start deletes what is left (guests_forget_all) */
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
void guests_forget_all(struct core *core) { guest_forget(core, "guest-", true); }

/* {"ev":"presence", ...STATUS} */
static json_t *presence_event(const char *id, const char *name, bool online, uint64_t last_seen) {
  json_t *ev = json_pack("{s:s}", "ev", "presence");
  json_t *st = status_json(id, name, online, last_seen);
  json_object_update(ev, st);
  json_decref(st);
  return ev;
}

static void user_online(struct core *core, struct user *u) {
  struct outev e = {.flags = FRAME_EPHEMERAL};
  e.doc = presence_event(u->id, u->name, true, 0);
  mark_begin(core);
  send_to_watchers(core, u->id, &e);
  outev_done(&e);
}

struct session *session_open(struct core *core, struct conn *c, const char *client) {
  struct user *u = user_find(core, c->who.id);
  bool fresh = !u;
  if (!u) {
    u = calloc(1, sizeof *u);
    if (!u || !(u->id = strdup(c->who.id)) || !(u->name = strdup(c->who.name))) {
      if (u) free(u->id);
      free(u);
      return NULL;
    }
    u->online_since = core_now_ms();
    u->guest = c->who.guest && !strncmp(c->who.id, "guest-", 6); /* not a name a hook gave the guest */
    HASH_ADD_KEYPTR(hh, core->users, u->id, strlen(u->id), u);
  }
  struct session *s = calloc(1, sizeof *s);
  if (!s) {
    if (fresh) {
      HASH_DEL(core->users, u);
      free(u->id);
      free(u->name);
      free(u);
    }
    return NULL;
  }
  s->id = ++core->next_session_id;
  uint8_t rnd[16];
  if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) /* practically never: mix in time and ids */
    for (size_t i = 0; i < sizeof rnd; i++)
      rnd[i] = (uint8_t)((core_mono_ms() >> (i % 8)) ^ (s->id * 131 + i));
  static const char hex[] = "0123456789abcdef";
  for (size_t i = 0; i < sizeof rnd; i++) {
    s->token[2 * i] = hex[rnd[i] >> 4];
    s->token[2 * i + 1] = hex[rnd[i] & 15];
  }
  s->token[2 * sizeof rnd] = 0;
  s->user = u;
  s->conn = c;
  s->since = core_now_ms();
  snprintf(s->client, sizeof s->client, "%s", client ? client : "");
  s->unext = u->sessions;
  if (u->sessions) u->sessions->uprev = s;
  u->sessions = s;
  u->nsessions++;
  HASH_ADD(hh, core->sessions, token, strlen(s->token), s);
  c->sess = s;
  if (fresh) user_online(core, u);
  return s;
}

static void detached_unlink(struct core *core, struct session *s) {
  if (s->dprev)
    s->dprev->dnext = s->dnext;
  else if (core->det_head == s)
    core->det_head = s->dnext;
  if (s->dnext)
    s->dnext->dprev = s->dprev;
  else if (core->det_tail == s)
    core->det_tail = s->dprev;
  s->dprev = s->dnext = NULL;
}

struct session *session_resume(struct core *core, struct conn *c, const char *token) {
  struct session *s = NULL;
  HASH_FIND_STR(core->sessions, token, s);
  if (!s || s->conn || s->ending || strcmp(s->user->id, c->who.id)) return NULL;
  detached_unlink(core, s);
  s->conn = c;
  c->sess = s;
  return s;
}

int session_guest_identity(struct core *core, const char *token, struct identity *who) {
  struct session *s = NULL;
  HASH_FIND_STR(core->sessions, token, s);
  if (!s || s->conn || s->ending || !s->user->guest || !who->guest) return 0;
  char *id = strdup(s->user->id), *name = strdup(s->user->name);
  if (!id || !name) {
    free(id);
    free(name);
    return -1;
  }
  free(who->id);
  free(who->name);
  who->id = id;
  who->name = name;
  return 1;
}

bool session_in(const struct session *s, const struct room *r) {
  for (uint32_t i = 0; i < s->nrooms; i++)
    if (s->rooms[i] == r) return true;
  return false;
}

/* Whether another attached session of the user is present in r (so typing may go on). */
static bool user_attached_in(const struct user *u, const struct room *r, const struct session *except) {
  for (const struct session *o = u->sessions; o; o = o->unext)
    if (o != except && o->conn && session_in(o, r)) return true;
  return false;
}

int session_enter(struct core *core, struct session *s, struct room *r) {
  if (session_in(s, r)) return 0;
  if (s->nrooms == s->caprooms) {
    uint32_t cap = s->caprooms ? s->caprooms * 2 : 4;
    struct room **rs = realloc(s->rooms, cap * sizeof *rs);
    if (!rs) return -1;
    s->rooms = rs;
    s->caprooms = cap;
  }
  bool first = false;
  if (room_presence_add(r, s->user->id, core_now_ms(), &first)) return -1;
  s->rooms[s->nrooms++] = r;
  if (first) {
    struct identity who = {.id = s->user->id, .name = s->user->name};
    room_notify(core, r, "join", &who);
  }
  return 0;
}

static void session_exit_at(struct core *core, struct session *s, uint32_t i) {
  struct room *r = s->rooms[i];
  s->rooms[i] = s->rooms[--s->nrooms];
  bool last = false;
  room_presence_remove(r, s->user->id, &last);
  if (!user_attached_in(s->user, r, s)) typing_clear(core, r, s->user->id);
  if (last) {
    struct identity who = {.id = s->user->id, .name = s->user->name};
    room_notify(core, r, "leave", &who);
    hook_notify(core, PARLEY_HOOK_LEAVE, s->conn, s->user->id, s->user->name, r->name);
  }
  room_release_if_unused(&core->rooms, r);
}

void session_exit(struct core *core, struct session *s, struct room *r) {
  for (uint32_t i = 0; i < s->nrooms; i++)
    if (s->rooms[i] == r) {
      session_exit_at(core, s, i);
      return;
    }
}

void session_detach(struct core *core, struct session *s) {
  if (s->ending || core->cfg->session_resume_ttl == 0) {
    session_end(core, s);
    return;
  }
  s->conn = NULL;
  s->detached_mono = core_mono_ms();
  s->dprev = core->det_tail;
  s->dnext = NULL;
  if (core->det_tail)
    core->det_tail->dnext = s;
  else
    core->det_head = s;
  core->det_tail = s;
  /* Typing stays while the session may come back: the TTL or the session's end clears it. */
}

void session_end(struct core *core, struct session *s) {
  struct user *u = s->user;
  if (!s->conn)
    detached_unlink(core, s);
  else
    s->conn->sess = NULL;
  if (u->nsessions == 1) { /* the user goes offline: tell the rooms and the watchers, once each */
    uint64_t now = core_now_ms();
    struct outev e = {.flags = FRAME_EPHEMERAL};
    e.doc = presence_event(u->id, u->name, false, now);
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
    else
      seen_store(core, u->id, now);
    hook_notify(core, PARLEY_HOOK_OFFLINE, NULL, u->id, u->name, NULL); /* exactly once per going offline */
  }
  while (s->nrooms) session_exit_at(core, s, s->nrooms - 1);
  free(s->rooms);
  HASH_DEL(core->sessions, s);
  if (s->uprev)
    s->uprev->unext = s->unext;
  else
    u->sessions = s->unext;
  if (s->unext) s->unext->uprev = s->uprev;
  free(s);
  if (--u->nsessions == 0) {
    HASH_DEL(core->users, u);
    free(u->id);
    free(u->name);
    free(u);
  }
}

void presence_tick(struct core *core, uint64_t now_mono) {
  uint64_t ttl = (uint64_t)core->cfg->session_resume_ttl;
  while (core->det_head && now_mono - core->det_head->detached_mono >= ttl) session_end(core, core->det_head);
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
    struct user *u = user_find(core, ru->user_id);
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

/* A presence op with users: answered once every user's last-seen is known. */
struct pending_presence;
struct seen_read {
  struct store_req req; /* first: the store hands it back */
  struct pending_presence *pp;
  size_t slot;   /* index in pp->users */
  char *user_id; /* owned */
};

struct pending_presence {
  struct core *core;
  uint64_t conn_id;
  json_t *req_id;
  json_t *users; /* the reply array being filled (STATUS maps) */
  uint32_t waiting, nreads;
  struct seen_read reads[]; /* one per user whose last-seen must come from the store */
};

static void presence_reply_if_done(struct pending_presence *pp) {
  if (pp->waiting) return;
  struct conn *c = core_conn_by_id(pp->core, pp->conn_id);
  if (c) reply_ok(pp->core, c, pp->req_id, json_pack("{s:O}", "users", pp->users));
  for (uint32_t i = 0; i < pp->nreads; i++) free(pp->reads[i].user_id);
  json_decref(pp->users);
  json_decref(pp->req_id);
  free(pp);
}

static void presence_seen_done(struct store_req *req) {
  struct seen_read *sr = (struct seen_read *)req;
  struct pending_presence *pp = sr->pp;
  if (!req->err && req->u.last_seen.ts) {
    json_t *st = json_array_get(pp->users, sr->slot);
    json_object_set_new_nocheck(st, "last_seen", json_integer((json_int_t)req->u.last_seen.ts));
    seen_set(pp->core, sr->user_id, req->u.last_seen.ts);
  }
  pp->waiting--;
  presence_reply_if_done(pp);
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
  struct pending_presence *pp = calloc(1, sizeof *pp + n * sizeof(struct seen_read));
  if (!pp) {
    reply_err(core, c, req->id, PERR_INTERNAL, "out of memory");
    return;
  }
  pp->core = core;
  pp->conn_id = c->id;
  pp->req_id = json_incref(req->id);
  pp->users = json_array();
  uint32_t nreads = 0;
  for (size_t i = 0; i < n; i++) {
    const char *id = json_string_value(json_array_get(req->users, i));
    if (watch_add(core, c, id))
      log_debug("conn %" PRIu64 ": presence watch of %s not kept (limit)", c->id, id);
    struct user *u = user_find(core, id);
    uint64_t seen = u ? 0 : seen_get(core, id);
    json_array_append_new(pp->users, status_json(id, u ? u->name : id, u != NULL, seen));
    if (!u && !seen && core->store) {
      struct seen_read *sr = &pp->reads[nreads];
      if (!(sr->user_id = strdup(id))) continue;
      sr->pp = pp;
      sr->slot = i;
      sr->req.kind = STORE_REQ_LAST_SEEN_GET;
      sr->req.done = presence_seen_done;
      sr->req.u.last_seen.user_id = sr->user_id;
      nreads++;
    }
  }
  pp->nreads = nreads;
  uint32_t submitted = 0;
  for (uint32_t k = 0; k < nreads; k++) {
    if (store_submit(core->store, &pp->reads[k].req) == 0) submitted++;
  }
  pp->waiting = submitted; /* a read the store refused just leaves last_seen null */
  presence_reply_if_done(pp);
}

void presence_free_all(struct core *core) {
  while (core->det_head) session_end(core, core->det_head);
  struct watch *w, *wt;
  HASH_ITER(hh, core->watches, w, wt) {
    HASH_DEL(core->watches, w);
    free(w->user_id);
    free(w->conns);
    free(w);
  }
  struct last_seen *ls, *lt;
  HASH_ITER(hh, core->seen, ls, lt) {
    HASH_DEL(core->seen, ls);
    free(ls->user_id);
    free(ls);
  }
}
