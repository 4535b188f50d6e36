/* ws: WebSocket framing of outbound frames and the close codes of docs/protocol.md. Only net/ (and tests)
 * know these: the core asks for a close with a neutral enum conn_close_why (core/core.h), which
 * ws_close_code maps to the code on the wire. */
#ifndef PARLEY_NET_WS_H
#define PARLEY_NET_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/core.h"
#include "util/frame.h"

/* Close codes of docs/protocol.md. */
enum ws_close_code {
  WS_CLOSE_NORMAL = 1000,
  WS_CLOSE_GOING_AWAY = 1001,
  WS_CLOSE_PROTOCOL = 1002,
  WS_CLOSE_BAD_UTF8 = 1007,
  WS_CLOSE_POLICY = 1008,
  WS_CLOSE_TOO_BIG = 1009,
  WS_CLOSE_INTERNAL = 1011,
  WS_CLOSE_HELLO_TIMEOUT = 4001,
  WS_CLOSE_TOKEN_EXPIRED = 4002,
  WS_CLOSE_KICKED = 4003,
  WS_CLOSE_SLOW_CONSUMER = 4008,
  WS_CLOSE_RATE_LIMITED = 4029,
};

static inline int ws_close_code(enum conn_close_why why) {
  switch (why) {
  case CONN_CLOSE_SHUTDOWN:
    return WS_CLOSE_GOING_AWAY;
  case CONN_CLOSE_REJECTED:
    return WS_CLOSE_POLICY;
  case CONN_CLOSE_INTERNAL:
    return WS_CLOSE_INTERNAL;
  case CONN_CLOSE_HELLO_TIMEOUT:
    return WS_CLOSE_HELLO_TIMEOUT;
  case CONN_CLOSE_TOKEN_EXPIRED:
    return WS_CLOSE_TOKEN_EXPIRED;
  case CONN_CLOSE_KICKED:
    return WS_CLOSE_KICKED;
  case CONN_CLOSE_RATE_LIMITED:
    return WS_CLOSE_RATE_LIMITED;
  }
  return WS_CLOSE_INTERNAL;
}

/* Write f's WebSocket header (one final, unmasked frame: binary with FRAME_BINARY, else text) into its
 * headroom, once: it depends only on the opcode and the length, so every WebSocket recipient shares it. */
static inline void ws_frame(frame_t *f) {
  if (f->head) return;
  uint8_t *p = frame_payload(f);
  uint32_t len = f->len;
  uint8_t op = 0x80 | ((f->flags & FRAME_BINARY) ? 0x2 : 0x1); /* FIN | binary / text */
  if (len <= 125) {
    p[-2] = op;
    p[-1] = (uint8_t)len;
    f->head = 2;
  } else if (len <= 0xffff) {
    p[-4] = op;
    p[-3] = 126;
    p[-2] = (uint8_t)(len >> 8);
    p[-1] = (uint8_t)len;
    f->head = 4;
  } else {
    p[-10] = op;
    p[-9] = 127;
    for (int i = 0; i < 8; i++) p[-8 + i] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
    f->head = 10;
  }
}

/* The bytes on the wire of a framed f (ws_frame done): header and payload, contiguous. */
static inline const uint8_t *ws_bytes(const frame_t *f) { return frame_payload_c(f) - f->head; }
static inline size_t ws_len(const frame_t *f) { return (size_t)f->head + f->len; }

#endif
