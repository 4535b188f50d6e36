/* rooms: join (with recovery by seq), leave, and loading durable rooms from the store. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "core/broker.h"
#include "core/internal.h"
#include "util/log.h"

bool room_is_durable(const struct core *core, const char *name) {
  return core->store && config_room_history(core->cfg, name);
}

/* Stop fan-out of r to c (presence is the session's business). */
void conn_leave_at(struct core *core, struct conn *c, uint32_t idx) {
  struct member *m = c->rooms[idx];
  struct room *r = m->room;
  c->rooms[idx] = c->rooms[--c->nrooms];
  room_remove(r, m);
  if (!r->nmembers) core->broker->unsubscribe(core->broker_ctx, r); /* the last member here left */
  room_release_if_unused(&core->rooms, r);
}

static void join_free(struct pending_join *pj) {
  json_decref(pj->req_id);
  free(pj->room);
  free(pj);
}

static int conn_reserve_room(struct conn *c) {
  if (c->nrooms < c->caprooms) return 0;
  uint32_t cap = c->caprooms ? c->caprooms * 2 : 4;
  struct member **rs = realloc(c->rooms, cap * sizeof *rs);
  if (!rs) return -1;
  c->rooms = rs;
  c->caprooms = cap;
  return 0;
}

/* Make c a member of r and answer the join. The replay (if any) has been queued already. */
static void join_finish(struct core *core, struct conn *c, struct room *r, struct pending_join *pj) {
  struct member *m = conn_find_room(c, r->name, NULL);
  if (!m) {
    if (conn_reserve_room(c) || !(m = room_add(r, c))) {
      reply_err(core, c, pj->req_id, PERR_INTERNAL, "out of memory");
      return;
    }
    c->rooms[c->nrooms++] = m;
    if (r->nmembers == 1 && core->broker->subscribe(core->broker_ctx, r, NULL, NULL))
      log_warn("room %s: subscribing failed; members here get its messages by recovery only", r->name);
  }
  if (c->sess && session_enter(core, c->sess, r)) {
    reply_err(core, c, pj->req_id, PERR_INTERNAL, "out of memory");
    return;
  }
  room_list_set(core, c, r->name, true);
  dm_list_peer(core, c, r->name);
  json_t *ok = json_pack("{s:s,s:I}", "room", r->name, "seq", (json_int_t)r->seq);
  if (pj->has_since) {
    json_object_set_new_nocheck(ok, "recovered", json_boolean(!pj->partial));
    json_object_set_new_nocheck(ok, "replayed", json_integer(pj->replayed));
    if (pj->partial)
      json_object_set_new_nocheck(
          ok, "missing",
          json_pack("{s:I,s:I}", "from", (json_int_t)(pj->since + 1), "to", (json_int_t)(pj->from - 1)));
  }
  reply_ok(core, c, pj->req_id, ok);
}

/* A replay is paced by the connection's outbound queue: it goes on while the queue is below half of
 * limits.out_queue_bytes, so recovering many messages never trips the slow-consumer close of a client
 * that reads. */
static bool replay_has_room(struct core *core, struct conn *c) {
  size_t q = c->tx->queued(c->tx_ctx);
  return q == 0 || q < (size_t)core->cfg->limits_out_queue_bytes / 2;
}

/* Park pj until c's queue drains (core_conn_drained resumes it). */
static void replay_park(struct core *core, struct conn *c, struct room *r, struct pending_join *pj) {
  c->replay = pj;
  c->njoining++;
  r->pins++;
}

enum ring_replay { RING_DONE, RING_MISS, RING_PAUSED };

/* Queue ring entries next..head to c, as far as the queue allows. */
static enum ring_replay replay_from_ring(struct core *core, struct conn *c, struct room *r,
                                         struct pending_join *pj) {
  if (pj->next > r->seq) return RING_DONE;
  if (!ring_get(&r->ring, pj->next)) return RING_MISS;
  for (; pj->next <= r->seq; pj->next++) {
    if (!replay_has_room(core, c)) return RING_PAUSED;
    struct ring_entry *e = ring_get(&r->ring, pj->next);
    conn_send_frame(core, c, ring_frame(e, c->fmt));
    pj->replayed++;
  }
  return RING_DONE;
}

#define REPLAY_READ_CHUNK 256 /* messages per store read of a replay */

static void join_read_done(struct store_req *req);

/* Continue a join on a READY room. Takes pj (frees it or hands it to a store request). */
static void join_proceed(struct core *core, struct room *r, struct pending_join *pj) {
  struct conn *c = core_conn_by_id(core, pj->conn_id);
  if (!c || c->closing) goto done;
  if (pj->next == 0) { /* first pass: decide the replay window */
    pj->next = r->seq + 1;
    if (pj->has_since && pj->since < r->seq) {
      uint64_t max = (uint64_t)core->cfg->recovery_max_messages;
      pj->from = pj->since + 1;
      if (r->seq - pj->since > max) {
        pj->from = r->seq - max + 1;
        pj->partial = true;
      }
      pj->next = pj->from;
    } else {
      pj->from = pj->next;
    }
  }
  enum ring_replay rr = replay_from_ring(core, c, r, pj);
  if (rr == RING_MISS && !r->durable) { /* the ring is all an ephemeral room has */
    pj->from = pj->next = ring_first(&r->ring) ? ring_first(&r->ring) : r->seq + 1;
    pj->partial = true;
    rr = replay_from_ring(core, c, r, pj);
  }
  if (rr == RING_PAUSED) {
    replay_park(core, c, r, pj);
    return;
  }
  if (rr == RING_MISS) {
    /* Older than the ring: read from the store, then come back here for the rest. */
    memset(&pj->req, 0, sizeof pj->req);
    pj->req.kind = STORE_REQ_READ;
    pj->req.done = join_read_done;
    pj->req.u.read.room = pj->room;
    pj->req.u.read.after = pj->next - 1;
    pj->req.u.read.before = r->seq + 1;
    pj->req.u.read.limit = (size_t)(r->seq - pj->next + 1);
    if (pj->req.u.read.limit > REPLAY_READ_CHUNK) pj->req.u.read.limit = REPLAY_READ_CHUNK;
    int rc = store_submit(core->store, &pj->req);
    if (rc == 0) {
      r->pins++;
      c->njoining++;
      return;
    }
    reply_err(core, c, pj->req_id, rc == STORE_EOVERLOADED ? PERR_OVERLOADED : PERR_STORE_UNAVAILABLE,
              "cannot read the room's history now; retry");
    goto done;
  }
  join_finish(core, c, r, pj);
done:
  join_free(pj);
}

static void join_read_done(struct store_req *req) {
  struct pending_join *pj = (struct pending_join *)req;
  struct core *core = pj->core;
  struct room *r = room_get(&core->rooms, pj->room, false, 0);
  struct conn *c = core_conn_by_id(core, pj->conn_id);
  struct store_msg_list *l = &req->u.read.out;
  if (r) r->pins--;
  if (c) c->njoining--;
  if (!r || !c || c->closing) goto drop;
  if (req->err) {
    reply_err(core, c, pj->req_id, PERR_STORE_UNAVAILABLE, "cannot read the room's history now; retry");
    goto drop;
  }
  bool paused = false;
  for (size_t i = 0; i < l->n; i++) {
    if (l->v[i].seq < pj->next) continue;
    if (!replay_has_room(core, c)) { /* the rest is read again once the queue drains */
      paused = true;
      break;
    }
    pj->next = l->v[i].seq; /* retention may have removed older ones: go on from what exists */
    json_t *ev = message_event(&l->v[i]);
    if (ev) {
      frame_t *f = conn_event_frame(c, ev);
      conn_send_frame(core, c, f);
      frame_unref(f);
      json_decref(ev);
    }
    pj->next++;
    pj->replayed++;
  }
  if (paused) {
    store_msg_list_free(l);
    replay_park(core, c, r, pj);
    return;
  }
  if (l->n && pj->next <= l->v[l->n - 1].seq) pj->next = l->v[l->n - 1].seq + 1;
  if (l->n == 0 && pj->next <= req->u.read.before - 1) {
    /* Nothing left in the store for the range (retention): go on from what the ring has. */
    uint64_t rf = ring_first(&r->ring);
    pj->next = rf ? rf : r->seq + 1;
  }
  store_msg_list_free(l);
  join_proceed(core, r, pj);
  room_release_if_unused(&core->rooms, r);
  return;
drop:
  store_msg_list_free(l);
  join_free(pj);
  if (r) room_release_if_unused(&core->rooms, r);
}

static void room_load_done(struct store_req *req);

/* Start loading a new durable room: its head and most recent messages. */
static int room_load(struct core *core, struct room *r) {
  struct pending_join *pj = calloc(1, sizeof *pj); /* carrier for the read request */
  if (!pj || !(pj->room = strdup(r->name))) {
    free(pj);
    return -1;
  }
  pj->core = core;
  pj->req.kind = STORE_REQ_READ;
  pj->req.done = room_load_done;
  pj->req.u.read.room = pj->room;
  pj->req.u.read.limit = r->ring.cap ? r->ring.cap : 1;
  pj->req.u.read.newest = true;
  int rc = store_submit(core->store, &pj->req);
  if (rc) {
    join_free(pj);
    return rc;
  }
  r->state = ROOM_LOADING;
  r->loading_live = json_array();
  r->pins++;
  return 0;
}

static void room_load_done(struct store_req *req) {
  struct pending_join *carrier = (struct pending_join *)req;
  struct core *core = carrier->core;
  struct room *r = room_get(&core->rooms, carrier->room, false, 0);
  struct store_msg_list *l = &req->u.read.out;
  if (!r) goto out; /* cannot happen while pinned */
  r->pins--;
  r->state = ROOM_READY;
  struct pending_join *w = r->waiting;
  r->waiting = NULL;
  if (req->err) {
    log_warn("room %s: loading from the store failed: %s", r->name, req->errmsg);
    for (; w;) {
      struct pending_join *next = w->next_waiting;
      struct conn *c = core_conn_by_id(core, w->conn_id);
      if (c) {
        c->njoining--;
        reply_err(core, c, w->req_id, PERR_STORE_UNAVAILABLE, "the message store is unavailable; retry");
      }
      join_free(w);
      w = next;
    }
    json_decref(r->loading_live);
    r->loading_live = NULL;
    room_release_if_unused(&core->rooms, r); /* not loaded: forget it, the next join retries */
    goto out;
  }
  for (size_t i = 0; i < l->n; i++) {
    json_t *ev = message_event(&l->v[i]);
    if (ev) ring_push(&r->ring, l->v[i].seq, ev);
    if (l->v[i].seq > r->seq) r->seq = l->v[i].seq;
  }
  /* Messages committed while loading (some may already be in what was read). */
  size_t i;
  json_t *ev;
  json_t *live = r->loading_live;
  r->loading_live = NULL;
  json_array_foreach(live, i, ev) {
    uint64_t seq = (uint64_t)json_integer_value(json_object_get(ev, "seq"));
    if (seq > r->seq) {
      r->seq = seq;
      ring_push(&r->ring, seq, json_incref(ev));
    }
  }
  json_decref(live);
  /* Resume the joins in the order they came. */
  struct pending_join *rev = NULL;
  while (w) {
    struct pending_join *next = w->next_waiting;
    w->next_waiting = rev;
    rev = w;
    w = next;
  }
  while (rev) {
    struct pending_join *next = rev->next_waiting;
    struct conn *c = core_conn_by_id(core, rev->conn_id);
    if (c) c->njoining--;
    join_proceed(core, r, rev);
    rev = next;
  }
  room_release_if_unused(&core->rooms, r);
out:
  store_msg_list_free(l);
  join_free(carrier);
}

void op_join(struct core *core, struct conn *c, struct request *req) {
  if (!rate_check(core, c, req->id, &c->rl_join, &core->cfg->rate_join, false)) return;
  if (!access_check(core, c, req->id, req->room, ACCESS_READ)) return;
  struct member *m = conn_find_room(c, req->room, NULL);
  if (!m && core->hooks && hooks_has(core->hooks, PARLEY_HOOK_JOIN)) {
    struct hook_result res = HOOK_RESULT_INIT;
    enum parley_decision d =
        hook_run(core, PARLEY_HOOK_JOIN, c, c->who.id, c->who.name, req->room, NULL, 0, 0, &res);
    if (d == PARLEY_REJECT) reply_err(core, c, req->id, PERR_REJECTED, res.reason ? res.reason : "rejected");
    hook_result_clear(&res);
    if (d == PARLEY_REJECT) return;
  }
  if (m) { /* already in: nothing to replay, live messages flow */
    reply_ok(core, c, req->id,
             json_pack("{s:s,s:I}", "room", m->room->name, "seq", (json_int_t)m->room->seq));
    return;
  }
  if (c->nrooms + c->njoining >= (uint64_t)core->cfg->limits_max_rooms_per_conn) {
    reply_err(core, c, req->id, PERR_TOO_MANY_ROOMS, "this connection is in too many rooms");
    return;
  }
  struct room *r = room_get(&core->rooms, req->room, true, (uint32_t)core->cfg->history_ring_size);
  struct pending_join *pj = r ? calloc(1, sizeof *pj) : NULL;
  if (!pj || !(pj->room = strdup(req->room))) {
    free(pj);
    if (r) room_release_if_unused(&core->rooms, r);
    reply_err(core, c, req->id, PERR_INTERNAL, "out of memory");
    return;
  }
  pj->core = core;
  pj->conn_id = c->id;
  pj->req_id = json_incref(req->id);
  pj->since = req->has_since ? (uint64_t)req->since : 0;
  pj->has_since = req->has_since;
  if (r->nmembers == 0 && r->seq == 0 && r->state == ROOM_READY && !r->pins &&
      room_is_durable(core, r->name) && !r->durable) {
    r->durable = true; /* a fresh durable room: learn its head from the store first */
    int rc = room_load(core, r);
    if (rc) {
      r->durable = false;
      room_release_if_unused(&core->rooms, r);
      reply_err(core, c, req->id, rc == STORE_EOVERLOADED ? PERR_OVERLOADED : PERR_STORE_UNAVAILABLE,
                "cannot load the room now; retry");
      join_free(pj);
      return;
    }
  }
  if (r->state == ROOM_LOADING) {
    pj->next_waiting = r->waiting;
    r->waiting = pj;
    c->njoining++;
    return;
  }
  join_proceed(core, r, pj);
}

void op_leave(struct core *core, struct conn *c, struct request *req) {
  uint32_t idx;
  if (!conn_find_room(c, req->room, &idx)) {
    reply_err(core, c, req->id, PERR_NOT_JOINED, "this connection is not in that room");
    return;
  }
  json_t *ok = json_pack("{s:s}", "room", req->room);
  struct room *r = c->rooms[idx]->room;
  r->pins++; /* keep it across the two steps */
  conn_leave_at(core, c, idx);
  if (c->sess) session_exit(core, c->sess, r);
  if (req->forget) room_list_set(core, c, r->name, false);
  r->pins--;
  room_release_if_unused(&core->rooms, r);
  reply_ok(core, c, req->id, ok);
}

/* ---- the user's room list and read markers ------------------------------------------------------- */

/* A store request whose strings it owns; freed when the store hands it back. */
struct pending_user_op {
  struct store_req req;
  struct core *core;
  uint64_t conn_id;
  json_t *req_id;
  char *user_id, *room;
};

static void user_op_free(struct pending_user_op *p) {
  if (p->req.kind == STORE_REQ_ROOMS) store_room_list_free(&p->req.u.rooms.out);
  json_decref(p->req_id);
  free(p->user_id);
  free(p->room);
  free(p);
}

static struct pending_user_op *user_op_new(struct core *core, struct conn *c, json_t *req_id,
                                           enum store_req_kind kind, const char *room,
                                           void (*done)(struct store_req *)) {
  struct pending_user_op *p = calloc(1, sizeof *p);
  if (!p) return NULL;
  p->core = core;
  p->conn_id = c->id;
  p->req_id = req_id ? json_incref(req_id) : NULL;
  p->req.kind = kind;
  p->req.done = done;
  p->user_id = strdup(c->who.id);
  p->room = room ? strdup(room) : NULL;
  if (!p->user_id || (room && !p->room)) {
    user_op_free(p);
    return NULL;
  }
  return p;
}

static void member_set_done(struct store_req *req) {
  struct pending_user_op *p = (struct pending_user_op *)req;
  if (req->err) log_warn("room list of %s: storing %s failed: %s", p->user_id, p->room, req->errmsg);
  user_op_free(p);
}

void room_list_set(struct core *core, struct conn *c, const char *room, bool member) {
  if (!core->store) return;
  struct pending_user_op *p = user_op_new(core, c, NULL, STORE_REQ_MEMBER_SET, room, member_set_done);
  if (!p) return;
  p->req.u.member.user_id = p->user_id;
  p->req.u.member.room = p->room;
  p->req.u.member.member = member;
  if (store_submit(core->store, &p->req)) member_set_done(&p->req);
}

/* A direct message reaches the other user's room list too, so they learn of it from `rooms`. */
void dm_list_peer(struct core *core, struct conn *c, const char *room) {
  if (!core->store || strncmp(room, "dm:", 3)) return;
  const char *a = room + 3, *colon = strchr(a, ':');
  if (!colon || strchr(colon + 1, ':')) return;
  size_t la = (size_t)(colon - a);
  const char *b = colon + 1;
  char peer[ROOM_NAME_MAX + 1];
  if (strlen(c->who.id) == la && !strncmp(a, c->who.id, la))
    snprintf(peer, sizeof peer, "%s", b);
  else if (!strcmp(b, c->who.id))
    snprintf(peer, sizeof peer, "%.*s", (int)la, a);
  else
    return;
  if (!*peer || !strcmp(peer, c->who.id)) return;
  struct pending_user_op *p = user_op_new(core, c, NULL, STORE_REQ_MEMBER_SET, room, member_set_done);
  if (!p) return;
  free(p->user_id);
  if (!(p->user_id = strdup(peer))) {
    user_op_free(p);
    return;
  }
  p->req.u.member.user_id = p->user_id;
  p->req.u.member.room = p->room;
  p->req.u.member.member = true;
  if (store_submit(core->store, &p->req)) member_set_done(&p->req);
}

static json_t *room_entry(const char *room, uint64_t seq, uint64_t read) {
  return json_pack("{s:s,s:I,s:I,s:I}", "room", room, "seq", (json_int_t)seq, "read", (json_int_t)read,
                   "unread", (json_int_t)(seq > read ? seq - read : 0));
}

/* Whether c may see room in its room list: the same right as reading it (src/auth/access.c), under the
 * connection's current token. A room whose grant went away drops out of the list; its stored entry and
 * marker stay, so a token that grants it again brings it back as it was. */
static bool room_listed_for(struct core *core, struct conn *c, const char *room) {
  return (access_rights(core->cfg, &c->who, room) & ACCESS_READ) != 0;
}

static void rooms_done(struct store_req *req) {
  struct pending_user_op *p = (struct pending_user_op *)req;
  struct conn *c = core_conn_by_id(p->core, p->conn_id);
  if (c) {
    if (req->err) {
      reply_err(p->core, c, p->req_id, PERR_STORE_UNAVAILABLE, "cannot read the room list now; retry");
    } else {
      json_t *rooms = json_array();
      for (size_t i = 0; i < req->u.rooms.out.n; i++) {
        struct store_room *sr = &req->u.rooms.out.v[i];
        if (!room_listed_for(p->core, c, sr->room)) continue;
        struct room *r = room_get(&p->core->rooms, sr->room, false, 0);
        uint64_t head = r && r->state == ROOM_READY && r->seq > sr->head ? r->seq : sr->head;
        json_array_append_new(rooms, room_entry(sr->room, head, sr->read));
      }
      reply_ok(p->core, c, p->req_id, json_pack("{s:o}", "rooms", rooms));
    }
  }
  user_op_free(p);
}

void op_rooms(struct core *core, struct conn *c, struct request *req) {
  if (!core->store) { /* no persistence: the rooms this session is in */
    json_t *rooms = json_array();
    for (uint32_t i = 0; c->sess && i < c->sess->nrooms; i++)
      if (room_listed_for(core, c, c->sess->rooms[i]->name))
        json_array_append_new(rooms, room_entry(c->sess->rooms[i]->name, c->sess->rooms[i]->seq, 0));
    reply_ok(core, c, req->id, json_pack("{s:o}", "rooms", rooms));
    return;
  }
  struct pending_user_op *p = user_op_new(core, c, req->id, STORE_REQ_ROOMS, NULL, rooms_done);
  if (!p) {
    reply_err(core, c, req->id, PERR_INTERNAL, "out of memory");
    return;
  }
  p->req.u.rooms.user_id = p->user_id;
  int rc = store_submit(core->store, &p->req);
  if (rc) {
    reply_err(core, c, req->id, rc == STORE_EOVERLOADED ? PERR_OVERLOADED : PERR_STORE_UNAVAILABLE,
              "cannot read the room list now; retry");
    user_op_free(p);
  }
}

/* Tell the user's other connections that their read marker of room moved: through the user's own
 * sessions (a few), never a walk over every connection. from may be NULL (it has gone). */
static void read_notify(struct core *core, struct conn *from, const char *user_id, const char *room,
                        uint64_t read) {
  struct user *u = session_user_find(core, user_id);
  if (!u) return;
  struct outev e = {.flags = FRAME_EPHEMERAL};
  e.doc = json_pack("{s:s,s:s,s:I}", "ev", "read", "room", room, "seq", (json_int_t)read);
  for (struct session *s = u->sessions; e.doc && s; s = s->unext) {
    struct conn *c = s->conn;
    if (c && c != from && c->authed) conn_send_frame(core, c, outev_frame(&e, c->fmt));
  }
  outev_done(&e);
}

static void read_done(struct store_req *req) {
  struct pending_user_op *p = (struct pending_user_op *)req;
  struct conn *c = core_conn_by_id(p->core, p->conn_id);
  if (req->err) {
    if (c)
      reply_err(p->core, c, p->req_id, PERR_STORE_UNAVAILABLE, "cannot store the read marker now; retry");
  } else {
    if (c)
      reply_ok(p->core, c, p->req_id,
               json_pack("{s:s,s:I}", "room", p->room, "read", (json_int_t)req->u.marker.read));
    if (req->u.marker.read == req->u.marker.seq)
      read_notify(p->core, c, p->user_id, p->room, req->u.marker.read);
  }
  user_op_free(p);
}

/* read: the same right as reading the room's history, and its own rate limit (each one is a store write
 * and a row). */
void op_read(struct core *core, struct conn *c, struct request *req) {
  if (!rate_check(core, c, req->id, &c->rl_read, &core->cfg->rate_read, false)) return;
  if (!access_check(core, c, req->id, req->room, ACCESS_READ)) return;
  uint64_t seq = (uint64_t)req->seq;
  if (!core->store) {
    reply_ok(core, c, req->id, json_pack("{s:s,s:I}", "room", req->room, "read", (json_int_t)seq));
    read_notify(core, c, c->who.id, req->room, seq);
    return;
  }
  struct pending_user_op *p = user_op_new(core, c, req->id, STORE_REQ_READ_SET, req->room, read_done);
  if (!p) {
    reply_err(core, c, req->id, PERR_INTERNAL, "out of memory");
    return;
  }
  p->req.u.marker.user_id = p->user_id;
  p->req.u.marker.room = p->room;
  p->req.u.marker.seq = seq;
  int rc = store_submit(core->store, &p->req);
  if (rc) {
    reply_err(core, c, req->id, rc == STORE_EOVERLOADED ? PERR_OVERLOADED : PERR_STORE_UNAVAILABLE,
              "cannot store the read marker now; retry");
    user_op_free(p);
  }
}

/* Rights are the token's: after a refresh, or when a session is resumed by a connection with another
 * token, every room the connection or its session is in is checked again, and the ones it may no longer
 * read are left — the connection stops getting the room (with a `kicked` event when kicked_ev), the
 * session's presence ends (the other members see the user leave if it was its last session there). */
void rights_recheck(struct core *core, struct conn *c, bool kicked_ev) {
  for (uint32_t i = c->nrooms; i-- > 0;) {
    struct room *r = c->rooms[i]->room;
    if (access_rights(core->cfg, &c->who, r->name) & ACCESS_READ) continue;
    json_t *ev = kicked_ev
                     ? json_pack("{s:s,s:s,s:s}", "ev", "kicked", "room", r->name, "reason", "access revoked")
                     : NULL;
    r->pins++;
    conn_leave_at(core, c, i);
    if (c->sess) session_exit(core, c->sess, r);
    r->pins--;
    room_release_if_unused(&core->rooms, r);
    if (ev) conn_send_own(core, c, conn_event_frame(c, ev));
    json_decref(ev);
  }
  /* A session may be present where the connection is not (a resumed session before its joins). Going
   * down keeps the walk valid: session_exit moves the last entry into the freed slot. */
  struct session *s = c->sess;
  for (uint32_t i = s ? s->nrooms : 0; i-- > 0;) {
    if (i >= s->nrooms) continue;
    struct room *r = s->rooms[i];
    if (!(access_rights(core->cfg, &c->who, r->name) & ACCESS_READ)) session_exit(core, s, r);
  }
}

void core_conn_drained(struct core *core, struct conn *c) {
  struct pending_join *pj = c->replay;
  if (!pj) return;
  c->replay = NULL;
  c->njoining--;
  struct room *r = room_get(&core->rooms, pj->room, false, 0);
  if (!r) { /* cannot happen while pinned */
    join_free(pj);
    return;
  }
  r->pins--;
  core_enter(core);
  join_proceed(core, r, pj);
  room_release_if_unused(&core->rooms, r);
  core_leave(core);
}

void replay_drop(struct core *core, struct conn *c) {
  struct pending_join *pj = c->replay;
  if (!pj) return;
  c->replay = NULL;
  struct room *r = room_get(&core->rooms, pj->room, false, 0);
  join_free(pj);
  if (r) {
    r->pins--;
    room_release_if_unused(&core->rooms, r);
  }
}
