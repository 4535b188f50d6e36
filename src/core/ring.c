#include "core/ring.h"

#include <stdlib.h>

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
  for (int i = 0; i < CODEC_COUNT; i++) frame_unref(e->enc[i]);
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

void ring_push_frames(struct ring *r, uint64_t seq, frame_t *const enc[CODEC_COUNT]) {
  struct ring_entry *e = slot(r, seq);
  if (!e) return;
  for (int i = 0; i < CODEC_COUNT; i++) e->enc[i] = enc[i] ? frame_ref(enc[i]) : NULL;
}

struct ring_entry *ring_get(struct ring *r, uint64_t seq) {
  if (!r->len || seq < ring_first(r) || seq > ring_last(r)) return NULL;
  return &r->v[(r->start + (seq - ring_first(r))) % r->alloc];
}

json_t *ring_event(struct ring_entry *e) {
  for (int i = 0; !e->ev && i < CODEC_COUNT; i++) {
    if (!e->enc[i]) continue;
    codec_decode((codec_t)i, frame_payload_c(e->enc[i]), e->enc[i]->len, &e->ev, NULL, 0);
  }
  return e->ev;
}

frame_t *ring_frame(struct ring_entry *e, codec_t codec) {
  if (!e->enc[codec]) {
    json_t *ev = ring_event(e);
    if (ev) e->enc[codec] = codec_frame(codec, ev, 0);
  }
  return e->enc[codec];
}

void ring_free(struct ring *r) {
  ring_clear(r);
  free(r->v);
  r->v = NULL;
  r->cap = r->alloc = 0;
}
