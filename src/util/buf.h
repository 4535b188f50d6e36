/* buf: a growable byte buffer. The buffer owns its memory; buf_free releases it. */
#ifndef PARLEY_UTIL_BUF_H
#define PARLEY_UTIL_BUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct buf {
  uint8_t *data;
  size_t len;
  size_t cap;
} buf_t;

#define BUF_INIT                                                                                             \
  { NULL, 0, 0 }

/* Make room for `extra` more bytes. Returns 0 or -ENOMEM. */
int buf_reserve(buf_t *b, size_t extra);
int buf_append(buf_t *b, const void *p, size_t n);
int buf_putc(buf_t *b, uint8_t c);
/* Append printf-style text (no terminating NUL counted in len, but one is kept after the data). */
int buf_printf(buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Drop the first n bytes. */
void buf_consume(buf_t *b, size_t n);
void buf_reset(buf_t *b);
void buf_free(buf_t *b);

#endif
