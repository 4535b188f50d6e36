#include "util/frame.h"

#include <stdlib.h>
#include <string.h>

frame_t *frame_alloc(size_t len, uint32_t flags) {
  if (len > UINT32_MAX - FRAME_HEADROOM) return NULL;
  frame_t *f = malloc(sizeof *f + FRAME_HEADROOM + len);
  if (!f) return NULL;
  f->refs = 1;
  f->len = (uint32_t)len;
  f->flags = flags;
  f->head = 0;
  return f;
}

frame_t *frame_from(const void *p, size_t len, uint32_t flags) {
  frame_t *f = frame_alloc(len, flags);
  if (f && len) memcpy(frame_payload(f), p, len);
  return f;
}

void frame_unref(frame_t *f) {
  if (f && --f->refs == 0) free(f);
}
