/* messages: send (ephemeral or through the store's sequencer), delivery, and history. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "util/log.h"

#define HISTORY_DEFAULT_LIMIT 50

/* A durable send on its way through the store. Owned by the store while submitted. */
struct pending_send {
  struct store_req req;
  struct core *core;
  uint64_t conn_id;
  json_t *req_id; /* reference */
  json_t *body;   /* reference: the body as received, to build the event without re-parsing */
};

static void send_free(struct pending_send *ps) {
  store_msg_clear(&ps->req.u.append.msg);
  json_decref(ps->req_id);
  json_decref(ps->body);
  free(ps);
}

static json_t *event_with_body(const char *room, uint64_t seq, const char *mid, uint64_t ts, const char *uid,
                               const char *uname, json_t *body, const char *cmid) {
  return json_pack("{s:s,s:s,s:I,s:s,s:I,s:{s:s,s:s},s:O,s:s}", "ev", "message", "room", room, "seq",
                   (json_int_t)seq, "mid", mid, "ts", (json_int_t)ts, "from", "id", uid, "name", uname,
                   "body", body, "cmid", cmid);
}

json_t *message_event(const struct store_msg *m) {
  json_t *body = json_loads(m->body ? m->body : "null", JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
  if (!body) body = json_string(m->body ? m->body : ""); /* a body we cannot parse: deliver it as text */
  json_t *ev = event_with_body(m->room, m->seq, m->mid, m->ts, m->user_id, m->user_name, body, m->cmid);
  json_decref(body);
  return ev;
}

static json_t *ack_json(const char *room, uint64_t seq, const char *mid, uint64_t ts) {
  return json_pack("{s:s,s:I,s:s,s:I}", "room", room, "seq", (json_int_t)seq, "mid", mid, "ts",
                   (json_int_t)ts);
}

void room_deliver(struct core *core, struct room *r, uint64_t seq, json_t *ev) {
  if (seq <= r->seq) { /* already known (e.g. read while the room was loading) */
    json_decref(ev);
    return;
  }
  r->seq = seq;
  struct outev e = {.doc = ev};
  core->metrics.deliveries_total += r->nmembers;
  room_broadcast(core, r, &e, NULL);
  ring_push(&r->ring, seq, json_incref(ev));
  struct ring_entry *re = ring_get(&r->ring, seq);
  if (re)
    for (int i = 0; i < CODEC_COUNT; i++)
      if (e.enc[i] && !re->enc[i]) re->enc[i] = frame_ref(e.enc[i]);
  outev_done(&e);
}

static void send_done(struct store_req *req) {
  struct pending_send *ps = (struct pending_send *)req;
  struct core *core = ps->core;
  struct conn *c = core_conn_by_id(core, ps->conn_id);
  struct store_msg *m = &req->u.append.msg;
  if (req->err) {
    if (c)
      reply_err(core, c, ps->req_id, PERR_STORE_UNAVAILABLE,
                "the message could not be stored; retry with the same cmid");
    goto out;
  }
  if (req->u.append.dup) { /* a retry: answer with the original, deliver nothing again */
    if (c) {
      json_t *ok = ack_json(m->room, m->seq, m->mid, m->ts);
      json_object_set_new_nocheck(ok, "duplicate", json_true());
      reply_ok(core, c, ps->req_id, ok);
    }
    goto out;
  }
  core->metrics.messages_total++;
  if (c) reply_ok(core, c, ps->req_id, ack_json(m->room, m->seq, m->mid, m->ts));
  struct room *r = room_get(&core->rooms, m->room, false, 0);
  if (r) {
    json_t *ev = event_with_body(m->room, m->seq, m->mid, m->ts, m->user_id, m->user_name, ps->body, m->cmid);
    if (!ev)
      log_error("room %s: out of memory building message %" PRIu64, m->room, m->seq);
    else if (r->state == ROOM_LOADING)
      json_array_append_new(r->loading_live, ev);
    else
      room_deliver(core, r, m->seq, ev);
  }
out:
  send_free(ps);
}

static char *dup_str(const char *s, bool *fail) {
  char *d = strdup(s ? s : "");
  if (!d) *fail = true;
  return d;
}

void message_publish(struct core *core, struct conn *c, json_t *req_id, struct room *r, const char *room,
                     json_t *body, const char *cmid, const struct identity *from) {
  uint64_t ts = core_now_ms();
  char mid[24], made_cmid[40];
  snprintf(mid, sizeof mid, "%012" PRIx64 "%08" PRIx32, ts, ++core->mid_counter);
  if (!cmid) { /* server-side publishes: unique per server */
    snprintf(made_cmid, sizeof made_cmid, "srv-%s", mid);
    cmid = made_cmid;
  }
  if (!r && !room_is_durable(core, room)) /* an ephemeral room nobody is in yet: numbering starts here */
    r = room_get(&core->rooms, room, true, (uint32_t)core->cfg->history_ring_size);

  if (r && !r->durable) {      /* ephemeral: accepted = delivered, numbered here */
    uint64_t seq = r->seq + 1; /* room_deliver makes it the head */
    core->metrics.messages_total++;
    if (c) reply_ok(core, c, req_id, ack_json(r->name, seq, mid, ts));
    json_t *ev = event_with_body(r->name, seq, mid, ts, from->id, from->name, body, cmid);
    if (ev) room_deliver(core, r, seq, ev);
    return;
  }

  struct pending_send *ps = calloc(1, sizeof *ps);
  if (!ps) goto oom;
  ps->core = core;
  ps->conn_id = c ? c->id : 0;
  ps->req_id = req_id ? json_incref(req_id) : NULL;
  ps->body = json_incref(body);
  ps->req.kind = STORE_REQ_APPEND;
  ps->req.done = send_done;
  struct store_msg *m = &ps->req.u.append.msg;
  bool fail = false;
  m->room = dup_str(room, &fail);
  m->mid = dup_str(mid, &fail);
  m->ts = ts;
  m->user_id = dup_str(from->id, &fail);
  m->user_name = dup_str(from->name, &fail);
  m->cmid = dup_str(cmid, &fail);
  m->body = codec_json_text(body);
  if (fail || !m->body) {
    send_free(ps);
    goto oom;
  }
  int rc = store_submit(core->store, &ps->req);
  if (rc) {
    send_free(ps);
    if (!c)
      log_warn("publish to %s dropped: the store is %s", room,
               rc == STORE_EOVERLOADED ? "overloaded" : "closed");
    else if (rc == STORE_EOVERLOADED)
      reply_err(core, c, req_id, PERR_OVERLOADED, "too many messages waiting to be stored; retry shortly");
    else
      reply_err(core, c, req_id, PERR_STORE_UNAVAILABLE, "the message store is closed");
  }
  return;
oom:
  if (c)
    reply_err(core, c, req_id, PERR_INTERNAL, "out of memory");
  else
    log_error("publish to %s: out of memory", room);
}

void op_send(struct core *core, struct conn *c, struct request *req) {
  if (!access_check(core, c, req->id, req->room, ACCESS_WRITE)) return; /* first: reveals nothing */
  struct member *mem = conn_find_room(c, req->room, NULL);
  if (!mem) {
    reply_err(core, c, req->id, PERR_NOT_JOINED, "join the room before sending to it");
    return;
  }
  if (codec_json_size(req->body) > (size_t)core->cfg->limits_max_body) {
    reply_err(core, c, req->id, PERR_BODY_TOO_LARGE, "the message body is larger than limits.max_body");
    return;
  }
  if (!rate_check(core, c, req->id, &c->rl_send, &core->cfg->rate_send, true)) return;
  struct room *r = mem->room;
  json_t *body = json_incref(req->body);
  if (core->hooks && hooks_has(core->hooks, PARLEY_HOOK_MESSAGE)) {
    char *text = codec_json_text(body);
    struct hook_result res = HOOK_RESULT_INIT;
    enum parley_decision d = hook_run(core, PARLEY_HOOK_MESSAGE, c, c->who.id, c->who.name, r->name, text,
                                      text ? strlen(text) : 0, 0, &res);
    free(text);
    if (d == PARLEY_REJECT) {
      reply_err(core, c, req->id, PERR_REJECTED, res.reason ? res.reason : "rejected");
    } else if (d == PARLEY_REWRITE && res.body) {
      json_t *nb = json_loadb(res.body, res.body_len, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
      json_decref(body);
      body = nb;
      if (!nb)
        reply_err(core, c, req->id, PERR_INTERNAL, "a hook returned a body that is not JSON");
      else if (codec_json_size(nb) > (size_t)core->cfg->limits_max_body) {
        reply_err(core, c, req->id, PERR_BODY_TOO_LARGE, "the rewritten body is larger than limits.max_body");
        d = PARLEY_REJECT;
      }
    }
    hook_result_clear(&res);
    if (d == PARLEY_REJECT || !body) {
      json_decref(body);
      return;
    }
  }
  typing_clear(core, r, c->who.id); /* sending ends typing */
  message_publish(core, c, req->id, r, r->name, body, req->cmid, &c->who);
  json_decref(body);
}

/* ---- history ------------------------------------------------------------------------------------- */

struct pending_history {
  struct store_req req;
  struct core *core;
  uint64_t conn_id;
  json_t *req_id;
  char *room;
  size_t limit;
};

static void history_reply(struct core *core, struct conn *c, json_t *id, const char *room, json_t *msgs,
                          size_t limit) {
  bool more = json_array_size(msgs) >= limit;
  reply_ok(core, c, id, json_pack("{s:s,s:o,s:b}", "room", room, "messages", msgs, "more", more));
}

static void history_done(struct store_req *req) {
  struct pending_history *ph = (struct pending_history *)req;
  struct conn *c = core_conn_by_id(ph->core, ph->conn_id);
  if (c) {
    if (req->err) {
      reply_err(ph->core, c, ph->req_id, PERR_STORE_UNAVAILABLE, "cannot read the room's history now; retry");
    } else {
      json_t *msgs = json_array();
      for (size_t i = 0; i < req->u.read.out.n; i++)
        json_array_append_new(msgs, message_event(&req->u.read.out.v[i]));
      history_reply(ph->core, c, ph->req_id, ph->room, msgs, ph->limit);
    }
  }
  store_msg_list_free(&req->u.read.out);
  json_decref(ph->req_id);
  free(ph->room);
  free(ph);
}

void op_history(struct core *core, struct conn *c, struct request *req) {
  if (!access_check(core, c, req->id, req->room, ACCESS_READ)) return;
  size_t limit = req->has_limit ? (size_t)req->limit : HISTORY_DEFAULT_LIMIT;
  if (limit > (size_t)core->cfg->history_max_limit) limit = (size_t)core->cfg->history_max_limit;
  if (limit == 0) limit = 1;
  uint64_t after = req->has_after ? (uint64_t)req->after : 0;
  uint64_t before = req->has_before ? (uint64_t)req->before : 0; /* 0: no upper bound */
  bool newest = !req->has_after; /* after only, or both: page forward; else the newest below before */

  struct room *r = room_get(&core->rooms, req->room, false, 0);
  if (r && r->state == ROOM_READY) {
    uint64_t hi = r->seq;
    if (before && before - 1 < hi) hi = before - 1;
    uint64_t lo = after + 1;
    uint64_t s = lo, e = hi;
    if (hi >= lo && hi - lo + 1 > limit) {
      if (newest)
        s = hi - limit + 1;
      else
        e = lo + limit - 1;
    }
    uint64_t rf = ring_first(&r->ring);
    bool empty = hi < lo || hi == 0;
    if (empty || (rf && rf <= s) || !r->durable || !core->store) {
      json_t *msgs = json_array();
      if (!empty) {
        if (!rf)
          s = e + 1; /* nothing in memory */
        else if (s < rf)
          s = rf;
        for (uint64_t q = s; q <= e; q++) {
          struct ring_entry *en = ring_get(&r->ring, q);
          if (en) json_array_append(msgs, en->ev);
        }
      }
      history_reply(core, c, req->id, req->room, msgs, limit);
      return;
    }
  }
  if (!room_is_durable(core, req->room) || (r && !r->durable && r->state == ROOM_READY)) {
    history_reply(core, c, req->id, req->room, json_array(), limit);
    return;
  }
  struct pending_history *ph = calloc(1, sizeof *ph);
  if (!ph || !(ph->room = strdup(req->room))) {
    free(ph);
    reply_err(core, c, req->id, PERR_INTERNAL, "out of memory");
    return;
  }
  ph->core = core;
  ph->conn_id = c->id;
  ph->req_id = json_incref(req->id);
  ph->limit = limit;
  ph->req.kind = STORE_REQ_READ;
  ph->req.done = history_done;
  ph->req.u.read.room = ph->room;
  ph->req.u.read.after = after;
  ph->req.u.read.before = before;
  ph->req.u.read.limit = limit;
  ph->req.u.read.newest = newest;
  int rc = store_submit(core->store, &ph->req);
  if (rc) {
    reply_err(core, c, req->id, rc == STORE_EOVERLOADED ? PERR_OVERLOADED : PERR_STORE_UNAVAILABLE,
              "cannot read history now; retry");
    json_decref(ph->req_id);
    free(ph->room);
    free(ph);
  }
}

/* ---- retention -------------------------------------------------------------------------------------- */

struct pending_retain {
  struct store_req req;
  char *pattern;
};

static void retain_done(struct store_req *req) {
  struct pending_retain *pr = (struct pending_retain *)req;
  if (req->err)
    log_warn("retention for rooms %s failed: %s", pr->pattern, req->errmsg);
  else if (req->u.retain.deleted)
    log_info("retention: deleted %" PRIu64 " messages of rooms %s", req->u.retain.deleted, pr->pattern);
  free(pr->pattern);
  free(pr);
}

void core_retention_run(struct core *core) {
  if (!core->store) return;
  const struct config *cfg = core->cfg;
  uint64_t now = core_now_ms();
  for (size_t i = 0; i < cfg->nrooms; i++) {
    const struct room_rule *rr = &cfg->rooms[i];
    if (!rr->max_age && !rr->max_count) continue;
    struct pending_retain *pr = calloc(1, sizeof *pr);
    if (!pr || !(pr->pattern = strdup(rr->pattern))) {
      free(pr);
      return;
    }
    pr->req.kind = STORE_REQ_RETAIN;
    pr->req.done = retain_done;
    pr->req.u.retain.pattern = pr->pattern;
    pr->req.u.retain.ts_before = rr->max_age && (uint64_t)rr->max_age < now ? now - (uint64_t)rr->max_age : 0;
    pr->req.u.retain.keep_count = (uint64_t)rr->max_count;
    if (store_submit(core->store, &pr->req)) retain_done(&pr->req);
  }
}
