/* frame: one outbound message payload, encoded once by a wire format and shared by reference among all
 * recipients of that format. The payload follows FRAME_HEADROOM spare bytes into which a transport writes
 * its own header once (net/ws.h: the WebSocket frame header, the same for every WebSocket recipient), so the
 * transport sends header and payload as one contiguous buffer, with no copy. Reference counts are touched
 * only on the loop thread. The creator holds the first reference; every queue that keeps the frame takes its
 * own with frame_ref(). */
#ifndef PARLEY_UTIL_FRAME_H
#define PARLEY_UTIL_FRAME_H

#include <stddef.h>
#include <stdint.h>

enum frame_flags {
  FRAME_EPHEMERAL = 1, /* may be dropped under outbound pressure (typing, presence, join/leave) */
  FRAME_BINARY = 2,    /* the format's messages are binary (else text): a transport that tells them apart */
};

/* Bytes before the payload for a transport header (a WebSocket server frame header is 2..10 bytes). */
#define FRAME_HEADROOM 10

typedef struct frame {
  uint32_t refs;
  uint32_t len;   /* payload bytes */
  uint32_t flags; /* enum frame_flags */
  uint8_t head;   /* bytes of transport header written just before the payload (0: none yet) */
  uint8_t data[]; /* FRAME_HEADROOM bytes, then the payload */
} frame_t;

/* A frame with room for a payload of `len` bytes, refs = 1, no header. NULL when out of memory. */
frame_t *frame_alloc(size_t len, uint32_t flags);
static inline uint8_t *frame_payload(frame_t *f) { return f->data + FRAME_HEADROOM; }
static inline const uint8_t *frame_payload_c(const frame_t *f) { return f->data + FRAME_HEADROOM; }
/* A frame of payload p..p+len (copied). */
frame_t *frame_from(const void *p, size_t len, uint32_t flags);
static inline frame_t *frame_ref(frame_t *f) {
  f->refs++;
  return f;
}
void frame_unref(frame_t *f);

#endif
