/* request: a decoded frame checked against the op table (docs/protocol.md "Requests"). Neutral (no wire
 * format): the core includes it; the v1 formats' readers are in proto/v1.h. */
#ifndef PARLEY_PROTO_REQUEST_H
#define PARLEY_PROTO_REQUEST_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "proto/errors.h"

#define OP_MAP(X)                                                                                            \
  X(HELLO, "hello")                                                                                          \
  X(JOIN, "join")                                                                                            \
  X(LEAVE, "leave")                                                                                          \
  X(SEND, "send")                                                                                            \
  X(PING, "ping")                                                                                            \
  X(HISTORY, "history")                                                                                      \
  X(TYPING, "typing")                                                                                        \
  X(PRESENCE, "presence")                                                                                    \
  X(ROOMS, "rooms")                                                                                          \
  X(READ, "read")                                                                                            \
  X(REFRESH, "refresh")

enum op {
#define X(name, str) OP_##name,
  OP_MAP(X)
#undef X
      OP__COUNT
};

const char *op_name(enum op op);

#define ROOM_NAME_MAX 128
#define CMID_MAX      64
#define REQ_ID_MAX    64

/* All pointers borrow from the json_t the request was parsed from: keep that alive while using it.
 * String fields never contain NUL bytes (request_parse refuses such values). */
struct request {
  enum op op;
  json_t *id; /* integer or string; NULL if the frame had no usable id */
  const char *room;
  const char *token;
  const char *client;
  const char *cmid;
  json_t *body;
  int64_t since;
  bool has_since;
  int64_t before, after, limit; /* history */
  bool has_before, has_after, has_limit;
  const char *resume; /* hello */
  bool active;        /* typing */
  bool forget;        /* leave */
  json_t *users;      /* presence: array of user id strings */
  int64_t seq;        /* read */
  bool has_seq;
  /* send parsed by request_parse_fast: body is NULL and the body is this compact JSON text instead,
   * exactly as codec_encode(CODEC_JSON) would write it (borrowed from the caller's buffer) */
  const char *body_json;
  size_t body_json_len;
  /* storage for room and cmid of request_parse_fast (keep these last: it clears what precedes them) */
  char room_buf[ROOM_NAME_MAX + 1];
  char cmid_buf[CMID_MAX + 1];
};

/* Check doc against the op table. Returns PERR_OK or an error code with *msg set to a static,
 * human-readable reason. req->id is set whenever doc is a map with a valid id, even on error, so the
 * error reply can carry it. Unknown fields are ignored. Room names are checked (PERR_BAD_ROOM). */
enum perr request_parse(json_t *doc, struct request *req, const char **msg);

/* True if id may be a request id: an integer, or a string of 1..REQ_ID_MAX bytes. */
bool request_id_valid(const json_t *id);

/* True if s (NUL-terminated) is a valid room name: 1..128 bytes of [A-Za-z0-9_.:@-]. */
bool room_name_valid(const char *s);

#endif
