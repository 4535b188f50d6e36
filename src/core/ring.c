#include "core/ring.h"

#include <stdlib.h>

int ring_init(struct ring *r, uint32_t cap) {
  r->start = r->len = 0;
  r->cap = cap;
  r->v = NULL;
  if (cap && !(r->v = calloc(cap, sizeof *r->v))) return -1;
  return 0;
}

static void entry_clear(struct ring_entry *e) {
  json_decref(e->ev);
  for (int i = 0; i < CODEC_COUNT; i++) frame_unref(e->enc[i]);
  *e = (struct ring_entry){0};
}

void ring_clear(struct ring *r) {
  for (uint32_t i = 0; i < r->len; i++) entry_clear(&r->v[(r->start + i) % r->cap]);
  r->start = r->len = 0;
}

void ring_push(struct ring *r, uint64_t seq, json_t *ev) {
  if (!r->cap || (r->len && seq <= ring_last(r))) {
    json_decref(ev);
    return;
  }
  if (r->len && seq != ring_last(r) + 1) ring_clear(r);
  struct ring_entry *e;
  if (r->len == r->cap) {
    e = &r->v[r->start];
    entry_clear(e);
    r->start = (r->start + 1) % r->cap;
  } else {
    e = &r->v[(r->start + r->len) % r->cap];
    r->len++;
  }
  e->seq = seq;
  e->ev = ev;
}

struct ring_entry *ring_get(struct ring *r, uint64_t seq) {
  if (!r->len || seq < ring_first(r) || seq > ring_last(r)) return NULL;
  return &r->v[(r->start + (seq - ring_first(r))) % r->cap];
}

frame_t *ring_frame(struct ring_entry *e, codec_t codec) {
  if (!e->enc[codec]) e->enc[codec] = codec_frame(codec, e->ev, 0);
  return e->enc[codec];
}

void ring_free(struct ring *r) {
  ring_clear(r);
  free(r->v);
  r->v = NULL;
  r->cap = 0;
}
