#include "util/buf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int buf_reserve(buf_t *b, size_t extra) {
  if (b->cap - b->len > extra) return 0; /* keep one spare byte for a NUL */
  size_t need = b->len + extra + 1;
  size_t cap = b->cap ? b->cap : 64;
  while (cap < need) cap *= 2;
  uint8_t *p = realloc(b->data, cap);
  if (!p) return -ENOMEM;
  b->data = p;
  b->cap = cap;
  return 0;
}

int buf_append(buf_t *b, const void *p, size_t n) {
  if (buf_reserve(b, n)) return -ENOMEM;
  if (n) memcpy(b->data + b->len, p, n);
  b->len += n;
  return 0;
}

int buf_putc(buf_t *b, uint8_t c) {
  if (buf_reserve(b, 1)) return -ENOMEM;
  b->data[b->len++] = c;
  return 0;
}

int buf_printf(buf_t *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0) return -EINVAL;
  if (buf_reserve(b, (size_t)n + 1)) return -ENOMEM;
  va_start(ap, fmt);
  vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
  return 0;
}

void buf_consume(buf_t *b, size_t n) {
  if (n >= b->len) {
    b->len = 0;
    return;
  }
  memmove(b->data, b->data + n, b->len - n);
  b->len -= n;
}

void buf_reset(buf_t *b) { b->len = 0; }

void buf_free(buf_t *b) {
  free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}
