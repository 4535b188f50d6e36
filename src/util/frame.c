#include "util/frame.h"

#include <stdlib.h>

frame_t *frame_alloc(size_t len, uint32_t flags) {
  if (len > UINT32_MAX) return NULL;
  frame_t *f = malloc(sizeof *f + len);
  if (!f) return NULL;
  f->refs = 1;
  f->len = (uint32_t)len;
  f->flags = flags;
  return f;
}

void frame_unref(frame_t *f) {
  if (f && --f->refs == 0) free(f);
}
