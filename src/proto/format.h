/* format: the seam between the core and the wire formats.
 *
 * The core takes decoded requests (struct request, proto/request.h) and emits neutral replies and events
 * (struct reply, struct event below): the protocol's data model of docs/protocol.md, as jansson values and
 * plain fields, never bytes. A wire format turns bytes into requests and replies/events into bytes; it is a
 * struct format registered once (format_register gives it a small id). The core sees a format only as this
 * table: it calls encode_reply / encode_event and caches one encoding per format id and event, made on first
 * need and shared by every recipient of that format (the core's outev, the room ring). Decoding is the
 * transport's business: net/ calls decode and hands the request to core_conn_request (core/core.h).
 *
 * The split: this header and proto/request.h are neutral (the core includes them); proto/codec.h,
 * proto/wire.h and proto/v1.h are the v1 formats' own (JSON and MessagePack: proto/v1.c), and only net/, the
 * formats and their tests include them. A new format adds a struct format somewhere outside src/core/ and
 * registers it; nothing in src/core/ changes (tests/unit/test_core.c does it with a line-based test format).
 * Transport framing (the WebSocket header, written into a frame's headroom: util/frame.h) is net/'s. */
#ifndef PARLEY_PROTO_FORMAT_H
#define PARLEY_PROTO_FORMAT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/errors.h"
#include "proto/request.h"
#include "util/buf.h"
#include "util/frame.h"

/* Formats registered at once (the per-event caches hold this many encodings). */
#define FORMAT_MAX 4

/* A message body in the forms at hand; at least one of them is set. json, when set, must be exactly the
 * canonical JSON text of the body's tree (body_json_encode): formats copy it as it is. */
struct wire_body {
  const json_t *tree;
  const char *json; /* compact JSON text (no NUL inside: JSON escapes it) */
  size_t json_len;
};

/* The fields of a `message` event (docs/protocol.md "Events"). */
struct wire_msg {
  const char *room;
  uint64_t seq;
  const char *mid;
  uint64_t ts;
  const char *user_id, *user_name;
  const struct wire_body *body;
  const char *cmid;
};

/* A reply to one request (docs/protocol.md "Replies"). */
enum reply_kind {
  REPLY_OK,  /* ok: the result's members */
  REPLY_ERR, /* code, msg (and retry_after) */
  REPLY_ACK, /* the ok reply of a send, by its fields: room, seq, mid, ts, duplicate */
};
struct reply {
  enum reply_kind kind;
  const json_t *id; /* the request's id; NULL: none (null on the wire) */
  const json_t *ok;
  const char *code, *msg;
  int64_t retry_after; /* > 0: rate_limited's wait in ms */
  const char *room, *mid;
  uint64_t seq, ts;
  bool duplicate;
};

/* An event: a tree whose `ev` member names it (the members in the order of docs/protocol.md), or a
 * `message` event by its fields (written without a tree on the send path). */
struct event {
  const json_t *doc;
  const struct wire_msg *msg;
};

/* What a decoder keeps between messages: the scratch buffers of a fast path and the tree the request borrows
 * from. One per loop thread (net/ has one per server); BUF_INIT/NULL to start, decoder_free to end. */
struct decoder {
  buf_t body, tmp;
  json_t *doc; /* owned until decoder_done */
};

struct format {
  const char *name; /* the WebSocket subprotocol, e.g. "parley.v1.json" */
  uint32_t flags;   /* FRAME_BINARY: the format's messages are binary (else text) */
  /* Decode one complete message (binary: its frame type). Returns PERR_OK with *req filled (it borrows from
   * d until decoder_done), or an error code with a UTF-8 reason in err (errlen bytes at most) and req->id
   * the id the error reply carries (NULL: none). Either way req->id is a new reference: decoder_done drops
   * it. */
  enum perr (*decode)(struct decoder *d, const uint8_t *p, size_t n, bool binary, struct request *req,
                      char *err, size_t errlen);
  /* A reply / an event as one frame (refs = 1; flags added to the format's) or NULL when out of memory. */
  frame_t *(*encode_reply)(const struct reply *r);
  frame_t *(*encode_event)(const struct event *e, uint32_t flags);
  /* Set by format_register: the index of this format's encoding in the per-event caches. */
  int id;
  bool registered;
};

/* Register f (its id is set) and return its id, or -1 when FORMAT_MAX formats are registered. Registering
 * a format again returns its id. Thread-safe; formats are never unregistered (f must outlive the process). */
int format_register(struct format *f);
/* The registered format of that name (subprotocol), or NULL. */
const struct format *format_find(const char *name);
/* Release what decode left in d and drop req->id. */
void decoder_done(struct decoder *d, struct request *req);
void decoder_free(struct decoder *d);

/* The canonical JSON text of a value, the form in which message bodies are measured (limits.max_body),
 * stored and handed to hooks whatever the wire format: compact, keys in insertion order. Appends to b;
 * 0, -ENOMEM or -EINVAL. body_json_size: its length without writing it (0: cannot be encoded). */
int body_json_encode(const json_t *v, buf_t *b);
size_t body_json_size(const json_t *v);

#endif
