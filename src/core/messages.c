/* messages: send (ephemeral or through the store's sequencer), delivery, and history. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/broker.h"
#include "core/internal.h"
#include "util/log.h"

#define HISTORY_DEFAULT_LIMIT 50

/* A durable send on its way through the store. Owned by the store while submitted. */
struct pending_send {
  struct store_req req;
  struct core *core;
  uint64_t conn_id;
  json_t *req_id; /* reference */
};

static void send_free(struct pending_send *ps) {
  store_msg_clear(&ps->req.u.append.msg);
  json_decref(ps->req_id);
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

static void reply_ack(struct core *core, struct conn *c, json_t *id, const char *room, uint64_t seq,
                      const char *mid, uint64_t ts, bool dup) {
  struct reply rp = {
      .kind = REPLY_ACK, .id = id, .room = room, .seq = seq, .mid = mid, .ts = ts, .duplicate = dup};
  conn_send_own(core, c, c->fmt->encode_reply(&rp));
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
    for (int i = 0; i < FORMAT_MAX; i++)
      if (e.enc[i] && !re->enc[i]) re->enc[i] = frame_ref(e.enc[i]);
  outev_done(&e);
}

/* The `message` event of m as a tree (new reference; NULL when out of memory), for a room still loading. */
static json_t *wire_msg_event(const struct wire_msg *m) {
  const struct wire_body *b = m->body;
  json_t *body = b->json ? json_loadb(b->json, b->json_len, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL)
                         : json_incref((json_t *)b->tree);
  if (!body && b->json) body = json_stringn(b->json, b->json_len); /* a body we cannot parse: as text */
  if (!body) return NULL;
  json_t *ev = event_with_body(m->room, m->seq, m->mid, m->ts, m->user_id, m->user_name, body, m->cmid);
  json_decref(body);
  return ev;
}

void broker_deliver(struct core *core, struct room *r, const struct wire_msg *m) {
  if (!r && !(r = room_get(&core->rooms, m->room, false, 0))) return; /* nobody here */
  if (r->state == ROOM_LOADING) { /* the load merges it with what it reads */
    json_t *ev = wire_msg_event(m);
    if (!ev)
      log_error("room %s: out of memory building message %" PRIu64, m->room, m->seq);
    else
      json_array_append_new(r->loading_live, ev);
    return;
  }
  room_deliver_msg(core, r, m);
}

void room_deliver_msg(struct core *core, struct room *r, const struct wire_msg *m) {
  if (m->seq <= r->seq) return; /* already known (e.g. read while the room was loading) */
  r->seq = m->seq;
  struct outev e = {.msg = m};
  core->metrics.deliveries_total += r->nmembers;
  room_broadcast(core, r, &e, NULL);
  if (r->ring.cap && ring_push_msg(&r->ring, m, e.enc))
    log_error("room %s: out of memory keeping message %" PRIu64, r->name, m->seq);
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
    if (c) reply_ack(core, c, ps->req_id, m->room, m->seq, m->mid, m->ts, true);
    goto out;
  }
  core->metrics.messages_total++;
  if (c) reply_ack(core, c, ps->req_id, m->room, m->seq, m->mid, m->ts, false);
  struct wire_body body = {.json = m->body, .json_len = strlen(m->body)};
  struct wire_msg wm = {.room = m->room,
                        .seq = m->seq,
                        .mid = m->mid,
                        .ts = m->ts,
                        .user_id = m->user_id,
                        .user_name = m->user_name,
                        .body = &body,
                        .cmid = m->cmid};
  int rc = core->broker->publish(core->broker_ctx, NULL, &wm, NULL, NULL); /* stored and acked: now visible */
  if (rc) log_error("room %s: publishing message %" PRIu64 " failed (%d)", m->room, m->seq, rc);
out:
  send_free(ps);
}

static char *dup_str(const char *s, bool *fail) {
  char *d = strdup(s ? s : "");
  if (!d) *fail = true;
  return d;
}

/* The body's compact JSON text, NUL-terminated, malloc'd; NULL when out of memory. */
static char *body_json_dup(const struct wire_body *b) {
  if (!b->json) {
    buf_t t = BUF_INIT;
    if (!b->tree || body_json_encode(b->tree, &t) || buf_putc(&t, 0)) {
      buf_free(&t);
      return NULL;
    }
    return (char *)t.data;
  }
  char *d = malloc(b->json_len + 1);
  if (d) {
    memcpy(d, b->json, b->json_len);
    d[b->json_len] = 0;
  }
  return d;
}

/* A message id: "%012" PRIx64 "%02x" "%06x" of the wall-clock ms ts, this node's server.node_id and the low
 * 24 bits of a counter of the process (docs/protocol.md): 20 digits, as long as before nodes had ids. Ids
 * sort by time; they are unique across nodes (the node id), across restarts of a node (a restart moves ts
 * on) and within a node (the counter would have to wrap within one ms). Without printf (it was a tenth of
 * op_send). */
void message_mid_format(char out[MID_MAX], uint64_t ts, uint8_t node, uint32_t n) {
  static const char hex[] = "0123456789abcdef";
  char tmp[16], *t = tmp + sizeof tmp;
  size_t len = 0;
  do {
    *--t = hex[ts & 15];
    ts >>= 4;
    len++;
  } while (ts);
  size_t w = len < 12 ? 12 : len, i = 0;
  for (; i < w - len; i++) out[i] = '0';
  memcpy(out + i, t, len);
  i += len;
  out[i++] = hex[node >> 4];
  out[i++] = hex[node & 15];
  for (int k = 5; k >= 0; k--) out[i++] = hex[(n >> (4 * k)) & 15];
  out[i] = 0;
}

/* Who waits for the outcome of an ephemeral publish: c (a synchronous broker) or the connection with
 * conn_id (one that answers later: then the context is on the heap, owned by the pending publish). */
struct publish_ack {
  struct core *core;
  struct conn *c;
  uint64_t conn_id; /* 0: the server published */
  json_t *req_id;   /* reference when heap */
  bool heap;
};

static void publish_acked(void *ud, int err, const struct wire_msg *m) {
  struct publish_ack *a = ud;
  struct core *core = a->core;
  struct conn *c = a->heap ? (a->conn_id ? core_conn_by_id(core, a->conn_id) : NULL) : a->c;
  if (!err) core->metrics.messages_total++;
  if (c && !err)
    reply_ack(core, c, a->req_id, m->room, m->seq, m->mid, m->ts, false);
  else if (c)
    reply_err(core, c, a->req_id, PERR_INTERNAL, "the message could not be published; retry");
  else if (err)
    log_warn("publish to %s failed (%d)", m->room, err);
  if (a->heap) {
    json_decref(a->req_id);
    free(a);
  }
}

void message_publish(struct core *core, struct conn *c, json_t *req_id, struct room *r, const char *room,
                     const struct wire_body *body, const char *cmid, const struct identity *from) {
  uint64_t ts = core_now_ms();
  char mid[MID_MAX], made_cmid[40];
  message_mid_format(mid, ts, (uint8_t)core->cfg->server_node_id, ++core->mid_counter);
  if (!cmid) { /* server-side publishes: unique per server */
    snprintf(made_cmid, sizeof made_cmid, "srv-%s", mid);
    cmid = made_cmid;
  }
  if (!r && !room_is_durable(core, room)) /* an ephemeral room nobody is in yet: numbering starts here */
    r = room_get(&core->rooms, room, true, (uint32_t)core->cfg->history_ring_size);

  if (r && !r->durable) { /* ephemeral: accepted = delivered, numbered by the broker */
    struct wire_msg wm = {.room = r->name,
                          .mid = mid,
                          .ts = ts,
                          .user_id = from->id,
                          .user_name = from->name,
                          .body = body,
                          .cmid = cmid};
    struct publish_ack local = {.core = core, .c = c, .req_id = req_id}, *ack = &local;
    if (!core->broker->sync) { /* it answers later: the ack's context must outlive this call */
      if (!(ack = calloc(1, sizeof *ack))) goto oom;
      *ack = (struct publish_ack){.core = core,
                                  .conn_id = c ? c->id : 0,
                                  .req_id = req_id ? json_incref(req_id) : NULL,
                                  .heap = true};
    }
    int rc = core->broker->publish(core->broker_ctx, r, &wm, publish_acked, ack);
    if (rc) {
      publish_acked(ack, rc, &wm); /* cb was not called: answer here */
    }
    return;
  }

  struct pending_send *ps = calloc(1, sizeof *ps);
  if (!ps) goto oom;
  ps->core = core;
  ps->conn_id = c ? c->id : 0;
  ps->req_id = req_id ? json_incref(req_id) : NULL;
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
  m->body = body_json_dup(body);
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
  /* The body of the send being handled, as compact JSON: encoded once per send, for limits.max_body, the
   * on_message hook, the store and the JSON event. The core's, reused across sends. */
  buf_t *const send_json = &core->send_json;
  if (!access_check(core, c, req->id, req->room, ACCESS_WRITE)) return; /* first: reveals nothing */
  struct member *mem = conn_find_room(c, req->room, NULL);
  if (!mem) {
    reply_err(core, c, req->id, PERR_NOT_JOINED, "join the room before sending to it");
    return;
  }
  struct wire_body body = {.tree = req->body};
  buf_reset(send_json);
  if (!req->body) { /* request_parse_fast: the JSON text is at hand (copied below if a hook needs a C string)
                     */
    body.json = req->body_json;
    body.json_len = req->body_json_len;
  } else if (body_json_encode(req->body, send_json)) {
    reply_err(core, c, req->id, PERR_INTERNAL, "out of memory");
    return;
  } else {
    body.json = (const char *)send_json->data;
    body.json_len = send_json->len;
  }
  if (body.json_len > (size_t)core->cfg->limits_max_body) {
    reply_err(core, c, req->id, PERR_BODY_TOO_LARGE, "the message body is larger than limits.max_body");
    return;
  }
  if (!rate_check(core, c, req->id, &c->rl_send, &core->cfg->rate_send, true)) return;
  struct room *r = mem->room;
  json_t *rewritten = NULL;
  if (core->hooks && hooks_has(core->hooks, PARLEY_HOOK_MESSAGE)) {
    struct hook_result res = HOOK_RESULT_INIT;
    if ((!req->body && buf_append(send_json, body.json, body.json_len)) ||
        buf_putc(send_json, 0)) { /* hooks get a NUL-terminated text */
      reply_err(core, c, req->id, PERR_INTERNAL, "out of memory");
      return;
    }
    body.json = (const char *)send_json->data; /* may have moved */
    enum parley_decision d = hook_run(core, PARLEY_HOOK_MESSAGE, c, c->who.id, c->who.name, r->name,
                                      body.json, body.json_len, 0, &res);
    if (d == PARLEY_REJECT) {
      reply_err(core, c, req->id, PERR_REJECTED, res.reason ? res.reason : "rejected");
    } else if (d == PARLEY_REWRITE && res.body) {
      rewritten = json_loadb(res.body, res.body_len, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
      buf_reset(send_json);
      if (!rewritten) {
        reply_err(core, c, req->id, PERR_INTERNAL, "a hook returned a body that is not JSON");
        d = PARLEY_REJECT;
      } else if (body_json_encode(rewritten, send_json)) {
        reply_err(core, c, req->id, PERR_INTERNAL, "out of memory");
        d = PARLEY_REJECT;
      } else if (send_json->len > (size_t)core->cfg->limits_max_body) {
        reply_err(core, c, req->id, PERR_BODY_TOO_LARGE, "the rewritten body is larger than limits.max_body");
        d = PARLEY_REJECT;
      }
      body = (struct wire_body){
          .tree = rewritten, .json = (const char *)send_json->data, .json_len = send_json->len};
    }
    hook_result_clear(&res);
    if (d == PARLEY_REJECT) {
      json_decref(rewritten);
      return;
    }
  }
  typing_clear(core, r, c->who.id); /* sending ends typing */
  message_publish(core, c, req->id, r, r->name, &body, req->cmid, &c->who);
  json_decref(rewritten);
  if (send_json->cap > 256u * 1024u) buf_free(send_json);
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
          json_t *ev = en ? ring_event(en) : NULL;
          if (ev) json_array_append(msgs, ev);
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
