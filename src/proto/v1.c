/* v1: parley.v1.json and parley.v1.msgpack as registered wire formats. Decoding takes the fast JSON path
 * (proto/fastreq.c) for the hot requests and codec_decode + request_parse for the rest; replies and events
 * are written by proto/wire.c (the send path's frames, without a tree) or codec_frame (a tree). */
#include "proto/v1.h"

#include <stdio.h>
#include <string.h>

#include "proto/wire.h"

static enum perr v1_decode(codec_t codec, struct decoder *d, const uint8_t *p, size_t n, bool binary,
                           struct request *req, char *err, size_t errlen) {
  if (binary != (codec == CODEC_MSGPACK)) { /* the id as the frame type's codec would read it */
    req->id = request_peek_id(binary ? CODEC_MSGPACK : CODEC_JSON, p, n);
    snprintf(err, errlen, "%s",
             codec == CODEC_JSON ? "parley.v1.json takes text frames"
                                 : "parley.v1.msgpack takes binary frames");
    return PERR_BAD_FRAME;
  }
  if (codec == CODEC_JSON && request_parse_fast(p, n, req, &d->body, &d->tmp)) return PERR_OK;
  json_t *doc = NULL;
  if (codec_decode(codec, p, n, &doc, err, errlen) != PERR_OK) {
    req->id = request_peek_id(codec, p, n); /* so the client knows which request failed */
    return PERR_BAD_FRAME;
  }
  d->doc = doc;
  const char *msg = NULL;
  enum perr rc = request_parse(doc, req, &msg);
  json_incref(req->id);
  if (rc != PERR_OK) snprintf(err, errlen, "%s", msg ? msg : "bad request");
  return rc;
}

static frame_t *v1_reply(codec_t c, const struct reply *r) {
  json_t *id = r->id ? (json_t *)r->id : json_null();
  json_t *doc;
  switch (r->kind) {
  case REPLY_ACK:
    return wire_ack_frame(c, r->id, r->room, r->seq, r->mid, r->ts, r->duplicate);
  case REPLY_ERR:
    if (r->retry_after <= 0) return wire_err_frame(c, r->id, r->code, r->msg);
    doc = json_pack("{s:O,s:{s:s,s:s,s:I}}", "re", id, "err", "code", r->code, "msg", r->msg, "retry_after",
                    (json_int_t)r->retry_after);
    break;
  case REPLY_OK:
  default:
    doc = json_object();
    if (doc) {
      json_object_set_nocheck(doc, "re", id);
      json_object_set_nocheck(doc, "ok", (json_t *)r->ok);
    }
    break;
  }
  frame_t *f = doc ? codec_frame(c, doc, 0) : NULL;
  json_decref(doc);
  return f;
}

static frame_t *v1_event(codec_t c, const struct event *e, uint32_t flags) {
  return e->msg ? wire_message_frame(c, e->msg, flags) : codec_frame(c, e->doc, flags);
}

static enum perr json_decode(struct decoder *d, const uint8_t *p, size_t n, bool binary, struct request *req,
                             char *err, size_t errlen) {
  return v1_decode(CODEC_JSON, d, p, n, binary, req, err, errlen);
}
static frame_t *json_reply(const struct reply *r) { return v1_reply(CODEC_JSON, r); }
static frame_t *json_event(const struct event *e, uint32_t flags) { return v1_event(CODEC_JSON, e, flags); }

static enum perr mp_decode(struct decoder *d, const uint8_t *p, size_t n, bool binary, struct request *req,
                           char *err, size_t errlen) {
  return v1_decode(CODEC_MSGPACK, d, p, n, binary, req, err, errlen);
}
static frame_t *mp_reply(const struct reply *r) { return v1_reply(CODEC_MSGPACK, r); }
static frame_t *mp_event(const struct event *e, uint32_t flags) { return v1_event(CODEC_MSGPACK, e, flags); }

struct format format_v1_json = {.name = "parley.v1.json",
                                .flags = 0,
                                .decode = json_decode,
                                .encode_reply = json_reply,
                                .encode_event = json_event};
struct format format_v1_msgpack = {.name = "parley.v1.msgpack",
                                   .flags = FRAME_BINARY,
                                   .decode = mp_decode,
                                   .encode_reply = mp_reply,
                                   .encode_event = mp_event};

void formats_v1_register(void) {
  format_register(&format_v1_json);
  format_register(&format_v1_msgpack);
}
