/* fuzz_codec: the bytes of one WebSocket message, as both codecs would see them.
 *
 * For each codec (JSON, MessagePack): codec_decode must not crash, and its error message must be UTF-8
 * (it becomes an error reply's msg); a value it accepts must survive request_parse (whose result is
 * checked against its contract), and encoding it in either codec must decode back to an equal value
 * (json_equal, integer and real kept apart), re-encode to the same bytes,
 * match codec_json_size and codec_frame's payload (framed by net/ws.h). For JSON: request_parse_fast
 * (src/proto/fastreq.c) must give, whenever it answers, exactly what codec_decode + request_parse give (the
 * contract in src/proto/v1.h; the body as codec_encode's compact JSON). Any disagreement aborts. */
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/ws.h"
#include "proto/codec.h"
#include "proto/request.h"
#include "proto/v1.h"
#include "util/frame.h"

#define CHECK(cond, ...)                                                                                     \
  do {                                                                                                       \
    if (!(cond)) {                                                                                           \
      fprintf(stderr, "fuzz_codec: check failed: %s: ", #cond);                                              \
      fprintf(stderr, __VA_ARGS__);                                                                          \
      fputc('\n', stderr);                                                                                   \
      abort();                                                                                               \
    }                                                                                                        \
  } while (0)

static const char *const codec_names[CODEC_COUNT] = {"json", "msgpack"};

/* Scratch buffers, reused across inputs (freed by the process exit; libFuzzer's leak check runs per
 * input and sees them as reachable). */
static buf_t fast_body = BUF_INIT, fast_tmp = BUF_INIT;

static bool str_eq(const char *a, const char *b) { return (!a && !b) || (a && b && !strcmp(a, b)); }

/* A string field of a parsed request: no NUL inside is guaranteed by request_parse (request.h). */
static void check_str(const char *s, size_t max) {
  if (s) CHECK(strlen(s) <= max, "string field of %zu bytes", strlen(s));
}

/* request_parse's result against its contract. */
static void check_request(json_t *doc) {
  struct request req;
  const char *msg = NULL;
  enum perr rc = request_parse(doc, &req, &msg);
  if (rc != PERR_OK) {
    CHECK(msg != NULL, "error %d without a message", rc);
    CHECK(perr_name(rc) != NULL, "error %d without a name", rc);
    return;
  }
  CHECK((unsigned)req.op < OP__COUNT, "op %d", req.op);
  CHECK(json_is_integer(req.id) || json_is_string(req.id), "id of type %d", json_typeof(req.id));
  if (req.room) CHECK(room_name_valid(req.room), "room '%s' accepted", req.room);
  check_str(req.cmid, CMID_MAX);
  check_str(req.token, 8192);
  check_str(req.client, 64);
  check_str(req.resume, 128);
  if (req.op == OP_SEND) CHECK(req.body && req.room && req.cmid && *req.cmid, "send without its fields");
  if (req.has_since) CHECK(req.since >= 0, "since %lld", (long long)req.since);
  if (req.has_seq) CHECK(req.seq >= 0, "seq %lld", (long long)req.seq);
  if (req.has_limit) CHECK(req.limit >= 0, "limit %lld", (long long)req.limit);
}

/* encode(v) in codec e decodes back to v, and re-encodes to the same bytes. */
static void check_round_trip(const json_t *v, codec_t e) {
  buf_t b = BUF_INIT, b2 = BUF_INIT;
  CHECK(codec_encode(e, v, &b) == 0, "%s encode of a decoded value failed", codec_names[e]);
  json_t *back = NULL;
  char err[160] = "";
  int rc = codec_decode(e, b.data, b.len, &back, err, sizeof err);
  CHECK(rc == 0, "%s: our own encoding (%zu bytes) does not decode: %s", codec_names[e], b.len, err);
  CHECK(json_equal(v, back), "%s: round trip changed the value", codec_names[e]);
  CHECK(codec_encode(e, back, &b2) == 0, "%s re-encode failed", codec_names[e]);
  CHECK(b.len == b2.len && !memcmp(b.data, b2.data, b.len), "%s: encoding is not a fixpoint", codec_names[e]);
  if (e == CODEC_JSON) {
    CHECK(codec_json_size(v) == b.len, "codec_json_size %zu, encoding %zu bytes", codec_json_size(v), b.len);
    char *text = codec_json_text(v);
    CHECK(text && strlen(text) == b.len && !memcmp(text, b.data, b.len), "codec_json_text differs");
    free(text);
  }
  /* codec_frame: the same payload, binary for MessagePack; framed by net/ws.h as an unmasked final frame of
   * the codec's type */
  frame_t *f = codec_frame(e, v, 0);
  CHECK(f != NULL, "codec_frame failed");
  CHECK(f->len == b.len && !memcmp(frame_payload(f), b.data, b.len), "frame payload differs");
  CHECK(!(f->flags & FRAME_BINARY) == (e == CODEC_JSON), "frame type flag");
  ws_frame(f);
  const uint8_t *d = ws_bytes(f);
  CHECK(d[0] == (e == CODEC_JSON ? 0x81 : 0x82), "frame header %02x", d[0]);
  size_t hl = 2, pl = d[1] & 0x7f;
  CHECK(!(d[1] & 0x80), "masked frame");
  if (pl == 126) {
    hl = 4;
    pl = (size_t)d[2] << 8 | d[3];
  } else if (pl == 127) {
    hl = 10;
    pl = 0;
    for (int i = 0; i < 8; i++) pl = pl << 8 | d[2 + i];
  }
  CHECK(hl + pl == ws_len(f) && pl == b.len && !memcmp(d + hl, b.data, b.len), "frame payload differs");
  frame_unref(f);
  json_decref(back);
  buf_free(&b);
  buf_free(&b2);
}

/* The fast JSON path against the slow one (as tests/unit/test_fastreq.c, on any input). */
static void check_fast(const uint8_t *p, size_t n, json_t *doc) {
  struct request fast, slow;
  if (!request_parse_fast(p, n, &fast, &fast_body, &fast_tmp)) return;
  const char *msg = NULL;
  CHECK(doc != NULL, "fast path accepted what codec_decode refuses: %.*s", (int)n, p);
  enum perr prc = request_parse(doc, &slow, &msg);
  CHECK(prc == PERR_OK, "fast path accepted what request_parse refuses (%s): %.*s", msg, (int)n, p);
  CHECK(fast.op == slow.op, "op %d vs %d", fast.op, slow.op);
  CHECK(json_equal(fast.id, slow.id) && json_typeof(fast.id) == json_typeof(slow.id), "id differs");
  CHECK(str_eq(fast.room, slow.room), "room differs");
  CHECK(str_eq(fast.cmid, slow.cmid), "cmid differs");
  CHECK(fast.active == slow.active, "active differs");
  CHECK(fast.seq == slow.seq && fast.has_seq == slow.has_seq, "seq differs");
  CHECK(!fast.body && !fast.token && !fast.has_since, "fast path set a field it does not handle");
  if (slow.op == OP_SEND) {
    buf_t want = BUF_INIT;
    CHECK(codec_encode(CODEC_JSON, slow.body, &want) == 0, "encode of the slow body failed");
    CHECK(want.len == fast.body_json_len && !memcmp(want.data, fast.body_json, want.len),
          "body differs: fast %.*s slow %.*s", (int)fast.body_json_len, fast.body_json, (int)want.len,
          (const char *)want.data);
    buf_free(&want);
  } else {
    CHECK(!fast.body_json, "body_json set for op %d", fast.op);
  }
  json_decref(fast.id);
}

int LLVMFuzzerTestOneInput(const uint8_t *p, size_t n) {
  json_t *json_doc = NULL;
  for (int c = 0; c < CODEC_COUNT; c++) {
    json_t *doc = NULL;
    char err[160] = "";
    int rc = codec_decode((codec_t)c, p, n, &doc, err, sizeof err);
    if (rc) {
      CHECK(doc == NULL, "%s: error %d with a value", codec_names[c], rc);
      CHECK(rc == PERR_BAD_FRAME || rc == PERR_INTERNAL, "%s: error %d", codec_names[c], rc);
      json_t *msg = json_string(err); /* the message goes into an error reply: it must be UTF-8 */
      CHECK(msg != NULL, "%s: error message is not UTF-8: %s", codec_names[c], err);
      json_decref(msg);
      continue;
    }
    CHECK(doc != NULL, "%s: success without a value", codec_names[c]);
    check_request(doc);
    for (int e = 0; e < CODEC_COUNT; e++) check_round_trip(doc, (codec_t)e);
    if (c == CODEC_JSON)
      json_doc = doc;
    else
      json_decref(doc);
  }
  check_fast(p, n, json_doc);
  json_decref(json_doc);
  return 0;
}
