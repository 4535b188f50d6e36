/* codec: wire bytes <-> JSON value trees (jansson json_t), for both subprotocols.
 * Both codecs carry the same schema; MessagePack is decoded into the same json_t tree JSON produces, so
 * everything above the codec sees one representation. Outbound values are encoded once per codec and
 * wrapped as a ready-to-send WebSocket frame shared by all recipients (util/frame.h). */
#ifndef PARLEY_PROTO_CODEC_H
#define PARLEY_PROTO_CODEC_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"
#include "util/frame.h"

typedef enum codec { CODEC_JSON = 0, CODEC_MSGPACK = 1 } codec_t;
#define CODEC_COUNT 2

/* "parley.v1.json" / "parley.v1.msgpack" */
const char *codec_subprotocol(codec_t c);

/* Decode one complete message payload. On success returns 0 and stores a new reference in *out (the
 * caller owns it). On failure returns PERR_BAD_FRAME and writes a human-readable reason to err
 * (truncated to errlen). Rejected: invalid syntax, trailing bytes, nesting deeper than 32 levels,
 * MessagePack bin/ext values, non-string map keys, strings that are not UTF-8, duplicate map keys,
 * integers outside int64. */
int codec_decode(codec_t c, const uint8_t *p, size_t n, json_t **out, char *err, size_t errlen);

/* Append the encoding of v to b. Returns 0 or -ENOMEM. JSON is compact (no spaces). */
int codec_encode(codec_t c, const json_t *v, buf_t *b);

/* Encode v as one final, unmasked WebSocket frame: text (0x1) for JSON, binary (0x2) for MessagePack.
 * Returns a frame with refs = 1 (caller owns) or NULL when out of memory. */
frame_t *codec_frame(codec_t c, const json_t *v, uint32_t flags);

/* Bytes of the compact JSON encoding of v (used for limits.max_body, same for both codecs). */
size_t codec_json_size(const json_t *v);

#endif
