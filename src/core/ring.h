/* ring: the most recent messages of a room, in memory, with their encoded frames cached per codec, so
 * recent history and recovery replays cost no store read and no re-encoding. Entries are contiguous
 * in seq: [first, last]. */
#ifndef PARLEY_CORE_RING_H
#define PARLEY_CORE_RING_H

#include <jansson.h>
#include <stdint.h>

#include "proto/codec.h"

struct ring_entry {
  uint64_t seq;
  json_t *ev;                /* the `message` event (owned reference); NULL until ring_event asks for it */
  frame_t *enc[CODEC_COUNT]; /* encoded frames (owned); at least one of ev and enc[] is set */
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
/* Append seq as its encoded frames (at least one non-NULL; the ring takes its own references); same
 * rules as ring_push. The event tree is made from a frame when ring_event asks for it. */
void ring_push_frames(struct ring *r, uint64_t seq, frame_t *const enc[CODEC_COUNT]);
static inline uint64_t ring_first(const struct ring *r) { return r->len ? r->v[r->start].seq : 0; }
static inline uint64_t ring_last(const struct ring *r) {
  return r->len ? r->v[(r->start + r->len - 1) % r->alloc].seq : 0;
}
/* The entry for seq, or NULL when it is not in the ring. */
struct ring_entry *ring_get(struct ring *r, uint64_t seq);
/* The entry's `message` event (decoded from a frame on first use); NULL when out of memory. Borrowed. */
json_t *ring_event(struct ring_entry *e);
/* The entry's frame for codec (encoded on first use); NULL when out of memory. Borrowed. */
frame_t *ring_frame(struct ring_entry *e, codec_t codec);
void ring_clear(struct ring *r);
void ring_free(struct ring *r);

#endif
