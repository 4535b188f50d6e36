/* codec: wire bytes <-> JSON value trees (jansson json_t), for both subprotocols.
 * Both codecs carry the same schema; MessagePack is decoded into the same json_t tree JSON produces, so
 * everything above the codec sees one representation. Outbound values are encoded once per codec into a
 * frame (util/frame.h: the payload, with headroom for the transport's header) shared by all recipients. */
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
 * caller owns it). On failure stores NULL in *out, returns PERR_BAD_FRAME (PERR_INTERNAL when out of
 * memory) and writes a human-readable reason to err (truncated to errlen; err may be NULL). Rejected:
 * invalid syntax, trailing bytes, nesting deeper than 32 levels (a top-level map is level 1),
 * MessagePack bin/ext values, non-string map keys, strings that are not UTF-8, duplicate map keys,
 * NUL bytes in map keys, integers outside int64, non-finite floats. Any top-level value is returned
 * (request_parse refuses non-maps). NUL bytes inside string values are kept (JSON "\u0000"). */
int codec_decode(codec_t c, const uint8_t *p, size_t n, json_t **out, char *err, size_t errlen);

/* For the error reply to a frame that codec_decode (or the frame type) refused: the frame's top-level map
 * member "id" when it can still be read — an integer or a UTF-8 string, as a new reference the caller owns
 * — else NULL (not a map, no such member, a second "id", or the frame is unreadable before it). Nothing
 * after the id needs to be valid. The caller checks that the id is usable (request_id_valid). */
json_t *codec_peek_id(codec_t c, const uint8_t *p, size_t n);

/* Append the encoding of v to b. Returns 0, -ENOMEM, or -EINVAL (unknown codec, NULL or cyclic v); on
 * failure b is left as it was. JSON is compact (no spaces), keys in insertion order, reals with 17
 * significant digits; MessagePack uses the smallest integer forms and float 64 for reals. */
int codec_encode(codec_t c, const json_t *v, buf_t *b);

/* Encode v as one frame: FRAME_BINARY is added for MessagePack (a binary message; JSON is text).
 * Returns a frame with refs = 1 and the given flags (caller owns) or NULL when encoding fails (see
 * codec_encode). One allocation per call: the payload is encoded into a per-thread scratch buffer. */
frame_t *codec_frame(codec_t c, const json_t *v, uint32_t flags);
/* Free the calling thread's scratch buffer (codec_frame, codec_json_text, codec_json_size). A thread that
 * encoded calls it before it ends, or the buffer leaks; encoding again on the thread is fine. */
void codec_thread_release(void);

/* Copy an encoded payload of codec c into a frame (FRAME_BINARY added for MessagePack): refs = 1, the given
 * flags; NULL when out of memory. */
frame_t *codec_frame_wrap(codec_t c, const uint8_t *p, size_t len, uint32_t flags);

/* One JSON string escape at p (p[0] is the backslash, end bounds the input), decoded to UTF-8 in out
 * (*outlen: 1..4 bytes). Returns how many bytes of p it took (2; 6 for \uXXXX; 12 for a surrogate pair),
 * or 0 when it is not a valid escape (lone surrogates included). */
size_t codec_json_unescape(const uint8_t *p, const uint8_t *end, uint8_t out[4], size_t *outlen);

/* Pieces of the compact JSON encoder, for writers that build a frame without a json_t tree (proto/wire.h):
 * a string of n bytes (escaped exactly as codec_encode does), an integer. Return 0 or -ENOMEM. */
int codec_json_str(buf_t *b, const char *p, size_t n);
int codec_json_int(buf_t *b, int64_t v);
/* A real as jansson writes it with 17 significant digits; -EINVAL when not finite. */
int codec_json_real(buf_t *b, double d);

/* The compact JSON text of v, NUL-terminated, malloc'd (the caller frees it); NULL when out of memory. */
char *codec_json_text(const json_t *v);

/* Bytes of the compact JSON encoding of v (used for limits.max_body, same for both codecs); 0 if v is
 * NULL or cannot be encoded. Nothing is allocated. */
size_t codec_json_size(const json_t *v);

#endif
