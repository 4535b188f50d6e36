#include "core/ring.h"

#include <stdlib.h>
#include <string.h>

#define RING_FIRST_ALLOC 8

int ring_init(struct ring *r, uint32_t cap) {
  r->start = r->len = r->alloc = 0;
  r->cap = cap;
  r->v = NULL;
  return 0;
}

/* Room for one more entry below cap: double the slots (entries moved to the front, in order). */
static int grow(struct ring *r) {
  uint32_t n = r->alloc ? r->alloc * 2 : RING_FIRST_ALLOC;
  if (n > r->cap) n = r->cap;
  struct ring_entry *v = calloc(n, sizeof *v);
  if (!v) return -1;
  for (uint32_t i = 0; i < r->len; i++) v[i] = r->v[(r->start + i) % r->alloc];
  free(r->v);
  r->v = v;
  r->alloc = n;
  r->start = 0;
  return 0;
}

static void entry_clear(struct ring_entry *e) {
  json_decref(e->ev);
  free(e->msg);
  for (int i = 0; i < FORMAT_MAX; i++) frame_unref(e->enc[i]);
  *e = (struct ring_entry){0};
}

void ring_clear(struct ring *r) {
  for (uint32_t i = 0; i < r->len; i++) entry_clear(&r->v[(r->start + i) % r->alloc]);
  r->start = r->len = 0;
}

/* The slot for seq, or NULL when seq is to be ignored. */
static struct ring_entry *slot(struct ring *r, uint64_t seq) {
  if (!r->cap || (r->len && seq <= ring_last(r))) return NULL;
  if (r->len && seq != ring_last(r) + 1) ring_clear(r);
  if (r->len == r->alloc && r->alloc < r->cap && grow(r)) return NULL; /* out of memory: not kept */
  struct ring_entry *e;
  if (r->len == r->alloc) { /* full at cap: the oldest goes */
    e = &r->v[r->start];
    entry_clear(e);
    r->start = (r->start + 1) % r->alloc;
  } else {
    e = &r->v[(r->start + r->len) % r->alloc];
    r->len++;
  }
  e->seq = seq;
  return e;
}

void ring_push(struct ring *r, uint64_t seq, json_t *ev) {
  struct ring_entry *e = slot(r, seq);
  if (!e) {
    json_decref(ev);
    return;
  }
  e->ev = ev;
}

/* Copy s (n bytes) after *at, NUL-terminated; returns the copy. */
static const char *put(char **at, const char *s, size_t n) {
  char *d = *at;
  memcpy(d, s, n);
  d[n] = 0;
  *at += n + 1;
  return d;
}

int ring_push_msg(struct ring *r, const struct wire_msg *m, frame_t *const enc[FORMAT_MAX]) {
  if (!r->cap || (r->len && m->seq <= ring_last(r))) return 0;
  const struct wire_body *b = m->body;
  buf_t text = BUF_INIT; /* a body given as a tree only (server-side publishes): its JSON text */
  const char *body = b->json;
  size_t body_len = b->json_len;
  if (!body) {
    if (!b->tree || body_json_encode(b->tree, &text)) {
      buf_free(&text);
      return -1;
    }
    body = (const char *)text.data;
    body_len = text.len;
  }
  const char *strs[5] = {m->room, m->mid, m->user_id, m->user_name, m->cmid};
  size_t lens[5], total = sizeof(struct ring_msg) + body_len + 1;
  for (int i = 0; i < 5; i++) total += (lens[i] = strlen(strs[i])) + 1;
  struct ring_msg *rm = malloc(total);
  if (!rm) {
    buf_free(&text);
    return -1;
  }
  char *at = (char *)(rm + 1);
  rm->ts = m->ts;
  rm->room = put(&at, strs[0], lens[0]);
  rm->mid = put(&at, strs[1], lens[1]);
  rm->user_id = put(&at, strs[2], lens[2]);
  rm->user_name = put(&at, strs[3], lens[3]);
  rm->cmid = put(&at, strs[4], lens[4]);
  rm->body = put(&at, body, body_len);
  rm->body_len = body_len;
  buf_free(&text);
  struct ring_entry *e = slot(r, m->seq);
  if (!e) {
    free(rm);
    return -1;
  }
  e->msg = rm;
  for (int i = 0; i < FORMAT_MAX; i++) e->enc[i] = enc[i] ? frame_ref(enc[i]) : NULL;
  return 0;
}

struct ring_entry *ring_get(struct ring *r, uint64_t seq) {
  if (!r->len || seq < ring_first(r) || seq > ring_last(r)) return NULL;
  return &r->v[(r->start + (seq - ring_first(r))) % r->alloc];
}

/* The entry's message as the fields of an event (body: its JSON text). */
static struct wire_msg entry_msg(const struct ring_entry *e, struct wire_body *body) {
  const struct ring_msg *m = e->msg;
  *body = (struct wire_body){.json = m->body, .json_len = m->body_len};
  return (struct wire_msg){.room = m->room,
                           .seq = e->seq,
                           .mid = m->mid,
                           .ts = m->ts,
                           .user_id = m->user_id,
                           .user_name = m->user_name,
                           .body = body,
                           .cmid = m->cmid};
}

json_t *ring_event(struct ring_entry *e) {
  if (!e->ev && e->msg) {
    const struct ring_msg *m = e->msg;
    json_t *body = json_loadb(m->body, m->body_len, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    if (!body) return NULL; /* out of memory: the text is canonical JSON */
    e->ev = json_pack("{s:s,s:s,s:I,s:s,s:I,s:{s:s,s:s},s:o,s:s}", "ev", "message", "room", m->room, "seq",
                      (json_int_t)e->seq, "mid", m->mid, "ts", (json_int_t)m->ts, "from", "id", m->user_id,
                      "name", m->user_name, "body", body, "cmid", m->cmid);
  }
  return e->ev;
}

frame_t *ring_frame(struct ring_entry *e, const struct format *fmt) {
  if (!e->enc[fmt->id]) {
    struct wire_body body;
    struct wire_msg wm;
    struct event ev = {0};
    if (e->msg) {
      wm = entry_msg(e, &body);
      ev.msg = &wm;
    } else {
      ev.doc = e->ev;
    }
    if (ev.msg || ev.doc) e->enc[fmt->id] = fmt->encode_event(&ev, 0);
  }
  return e->enc[fmt->id];
}

void ring_free(struct ring *r) {
  ring_clear(r);
  free(r->v);
  r->v = NULL;
  r->cap = r->alloc = 0;
}
