/* ring: the most recent messages of a room, in memory: each message by its fields (a neutral record, no
 * wire format's bytes), with its encodings cached per wire format, so recent history and recovery replays
 * cost no store read and no re-encoding. Entries are contiguous in seq: [first, last]. */
#ifndef PARLEY_CORE_RING_H
#define PARLEY_CORE_RING_H

#include <jansson.h>
#include <stdint.h>

#include "proto/format.h"

/* A message kept by its fields: one allocation, the strings follow the struct. */
struct ring_msg {
  uint64_t ts;
  const char *room, *mid, *user_id, *user_name, *cmid, *body; /* body: canonical JSON text */
  size_t body_len;
};

struct ring_entry {
  uint64_t seq;
  struct ring_msg *msg;     /* the message's fields (owned), or NULL when it was pushed as a tree */
  json_t *ev;               /* the `message` event (owned reference); made from msg when ring_event asks */
  frame_t *enc[FORMAT_MAX]; /* encodings by format id (owned), made on first need */
};

struct ring {
  struct ring_entry *v; /* owned: alloc slots, allocated on the first push and doubled up to cap */
  uint32_t cap, alloc, start, len;
};

/* cap 0 keeps nothing. Allocates nothing yet: a room that never gets a message costs no ring. Returns 0. */
int ring_init(struct ring *r, uint32_t cap);
/* Append ev (takes the reference) as seq. A seq not following the last one restarts the ring at seq;
 * one at or below the last is ignored (its reference dropped). */
void ring_push(struct ring *r, uint64_t seq, json_t *ev);
/* Append m (m->seq; its fields are copied; its body must have its JSON text) with the encodings already
 * made of it (by format id, NULL where none; the ring takes its own references); same rules as ring_push.
 * Returns -1 when out of memory (nothing kept), else 0. */
int ring_push_msg(struct ring *r, const struct wire_msg *m, frame_t *const enc[FORMAT_MAX]);
static inline uint64_t ring_first(const struct ring *r) { return r->len ? r->v[r->start].seq : 0; }
static inline uint64_t ring_last(const struct ring *r) {
  return r->len ? r->v[(r->start + r->len - 1) % r->alloc].seq : 0;
}
/* The entry for seq, or NULL when it is not in the ring. */
struct ring_entry *ring_get(struct ring *r, uint64_t seq);
/* The entry's `message` event (made from its fields on first use); NULL when out of memory. Borrowed. */
json_t *ring_event(struct ring_entry *e);
/* The entry's frame in format fmt (encoded on first use); NULL when out of memory. Borrowed. */
frame_t *ring_frame(struct ring_entry *e, const struct format *fmt);
void ring_clear(struct ring *r);
void ring_free(struct ring *r);

#endif
