/* frame: one outbound WebSocket frame, already framed (header + payload), shared by reference among all
 * recipients of an event. Reference counts are touched only on the loop thread. The creator holds the
 * first reference; every queue that keeps the frame takes its own with frame_ref(). */
#ifndef PARLEY_UTIL_FRAME_H
#define PARLEY_UTIL_FRAME_H

#include <stddef.h>
#include <stdint.h>

enum frame_flags {
  FRAME_EPHEMERAL = 1, /* may be dropped under outbound pressure (typing, presence, join/leave) */
};

typedef struct frame {
  uint32_t refs;
  uint32_t len;   /* bytes in data[] */
  uint32_t flags; /* enum frame_flags */
  uint8_t data[]; /* header + payload, ready for the socket */
} frame_t;

/* A frame with room for `len` bytes, refs = 1. NULL when out of memory. */
frame_t *frame_alloc(size_t len, uint32_t flags);
static inline frame_t *frame_ref(frame_t *f) {
  f->refs++;
  return f;
}
void frame_unref(frame_t *f);

#endif
