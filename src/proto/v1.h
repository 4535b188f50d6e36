/* v1: the two wire formats of docs/protocol.md, parley.v1.json (text) and parley.v1.msgpack (binary), as
 * struct format (proto/format.h), and the JSON format's readers. Not for the core: net/ (and tests) use it.
 */
#ifndef PARLEY_PROTO_V1_H
#define PARLEY_PROTO_V1_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/codec.h"
#include "proto/format.h"
#include "proto/request.h"
#include "util/buf.h"

extern struct format format_v1_json, format_v1_msgpack;
/* Register both formats (JSON first). Idempotent and thread-safe. */
void formats_v1_register(void);

/* The hot requests (send, typing, ping, read) of a JSON frame, read without a json_t tree. Returns true
 * when the frame is such a request that request_parse would accept as it is: *req is then what
 * codec_decode + request_parse would give, except that a send's body is req->body_json (in `body`) and
 * req->id is a new reference the caller must drop. Returns false for everything else (other ops, any
 * error, anything unusual): the caller then takes the slow path, which answers as it always did.
 * body and tmp are the caller's scratch buffers (reused, never shrunk here). */
bool request_parse_fast(const uint8_t *p, size_t n, struct request *req, buf_t *body, buf_t *tmp);

/* The id of a frame that could not be decoded (bytes p..p+n as encoded with codec c), so that its error
 * reply can carry it: see codec_peek_id. A new reference (the caller drops it), or NULL when the frame
 * has no id that can be read or the id is not valid. Only for the error path: it reads the frame again. */
json_t *request_peek_id(codec_t c, const uint8_t *p, size_t n);

#endif
