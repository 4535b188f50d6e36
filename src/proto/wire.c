#include "proto/wire.h"

#include <errno.h>
#include <msgpack.h>
#include <string.h>

#include "proto/errors.h"

#define SCRATCH_KEEP (256u * 1024u) /* the scratch buffer is released after use beyond this size */

static _Thread_local buf_t scratch = BUF_INIT;

void wire_thread_release(void) { buf_free(&scratch); }

/* ---- body ------------------------------------------------------------------------------------------ */

int wire_body_encode(const struct wire_body *b, codec_t c, buf_t *out) {
  if (c == CODEC_JSON && b->json) return buf_append(out, b->json, b->json_len) ? -ENOMEM : 0;
  if (b->tree) return codec_encode(c, b->tree, out);
  /* only the JSON text: through a tree */
  json_t *t = NULL;
  if (!b->json) return -EINVAL;
  int rc = codec_decode(CODEC_JSON, (const uint8_t *)b->json, b->json_len, &t, NULL, 0);
  if (rc) return rc == PERR_BAD_FRAME ? -EINVAL : -ENOMEM;
  rc = codec_encode(c, t, out);
  json_decref(t);
  return rc;
}

/* ---- JSON ------------------------------------------------------------------------------------------ */

#define LIT(b, s) buf_append(b, s, sizeof s - 1)

static int js(buf_t *b, const char *s) { return codec_json_str(b, s, strlen(s)); }

static int json_id(buf_t *b, const json_t *id) {
  return id ? codec_encode(CODEC_JSON, id, b) : LIT(b, "null");
}

static int json_message(buf_t *b, const struct wire_msg *m) {
  if (LIT(b, "{\"ev\":\"message\",\"room\":") || js(b, m->room) || LIT(b, ",\"seq\":") ||
      codec_json_int(b, (int64_t)m->seq) || LIT(b, ",\"mid\":") || js(b, m->mid) || LIT(b, ",\"ts\":") ||
      codec_json_int(b, (int64_t)m->ts) || LIT(b, ",\"from\":{\"id\":") || js(b, m->user_id) ||
      LIT(b, ",\"name\":") || js(b, m->user_name) || LIT(b, "},\"body\":") ||
      wire_body_encode(m->body, CODEC_JSON, b) || LIT(b, ",\"cmid\":") || js(b, m->cmid) || LIT(b, "}"))
    return -1;
  return 0;
}

static int json_ack(buf_t *b, const json_t *id, const char *room, uint64_t seq, const char *mid, uint64_t ts,
                    bool dup) {
  if (LIT(b, "{\"re\":") || json_id(b, id) || LIT(b, ",\"ok\":{\"room\":") || js(b, room) ||
      LIT(b, ",\"seq\":") || codec_json_int(b, (int64_t)seq) || LIT(b, ",\"mid\":") || js(b, mid) ||
      LIT(b, ",\"ts\":") || codec_json_int(b, (int64_t)ts) || (dup && LIT(b, ",\"duplicate\":true")) ||
      LIT(b, "}}"))
    return -1;
  return 0;
}

static int json_err(buf_t *b, const json_t *id, const char *code, const char *msg) {
  if (LIT(b, "{\"re\":") || json_id(b, id) || LIT(b, ",\"err\":{\"code\":") || js(b, code) ||
      LIT(b, ",\"msg\":") || js(b, msg) || LIT(b, "}}"))
    return -1;
  return 0;
}

/* ---- MessagePack (msgpack-c's packer: the same forms codec_encode uses) ------------------------------ */

static int mp_write_cb(void *b, const char *p, size_t n) { return buf_append(b, p, n) ? -1 : 0; }

static int mk(msgpack_packer *pk, const char *s) {
  size_t n = strlen(s);
  return msgpack_pack_str(pk, n) || msgpack_pack_str_body(pk, s, n);
}

static int mp_id(msgpack_packer *pk, buf_t *b, const json_t *id) {
  return id ? codec_encode(CODEC_MSGPACK, id, b) : msgpack_pack_nil(pk);
}

static int mp_message(msgpack_packer *pk, buf_t *b, const struct wire_msg *m) {
  if (msgpack_pack_map(pk, 8) || mk(pk, "ev") || mk(pk, "message") || mk(pk, "room") || mk(pk, m->room) ||
      mk(pk, "seq") || msgpack_pack_int64(pk, (int64_t)m->seq) || mk(pk, "mid") || mk(pk, m->mid) ||
      mk(pk, "ts") || msgpack_pack_int64(pk, (int64_t)m->ts) || mk(pk, "from") || msgpack_pack_map(pk, 2) ||
      mk(pk, "id") || mk(pk, m->user_id) || mk(pk, "name") || mk(pk, m->user_name) || mk(pk, "body") ||
      wire_body_encode(m->body, CODEC_MSGPACK, b) || mk(pk, "cmid") || mk(pk, m->cmid))
    return -1;
  return 0;
}

static int mp_ack(msgpack_packer *pk, buf_t *b, const json_t *id, const char *room, uint64_t seq,
                  const char *mid, uint64_t ts, bool dup) {
  if (msgpack_pack_map(pk, 2) || mk(pk, "re") || mp_id(pk, b, id) || mk(pk, "ok") ||
      msgpack_pack_map(pk, dup ? 5 : 4) || mk(pk, "room") || mk(pk, room) || mk(pk, "seq") ||
      msgpack_pack_int64(pk, (int64_t)seq) || mk(pk, "mid") || mk(pk, mid) || mk(pk, "ts") ||
      msgpack_pack_int64(pk, (int64_t)ts) || (dup && (mk(pk, "duplicate") || msgpack_pack_true(pk))))
    return -1;
  return 0;
}

static int mp_err(msgpack_packer *pk, buf_t *b, const json_t *id, const char *code, const char *msg) {
  if (msgpack_pack_map(pk, 2) || mk(pk, "re") || mp_id(pk, b, id) || mk(pk, "err") ||
      msgpack_pack_map(pk, 2) || mk(pk, "code") || mk(pk, code) || mk(pk, "msg") || mk(pk, msg))
    return -1;
  return 0;
}

/* ---- frames ---------------------------------------------------------------------------------------- */

static frame_t *finish(codec_t c, int rc, uint32_t flags) {
  frame_t *f = rc ? NULL : codec_frame_wrap(c, scratch.data, scratch.len, flags);
  if (scratch.cap > SCRATCH_KEEP) buf_free(&scratch);
  return f;
}

frame_t *wire_message_frame(codec_t c, const struct wire_msg *m, uint32_t flags) {
  buf_reset(&scratch);
  if (c == CODEC_JSON) return finish(c, json_message(&scratch, m), flags);
  msgpack_packer pk;
  msgpack_packer_init(&pk, &scratch, mp_write_cb);
  return finish(c, mp_message(&pk, &scratch, m), flags);
}

frame_t *wire_ack_frame(codec_t c, const json_t *id, const char *room, uint64_t seq, const char *mid,
                        uint64_t ts, bool duplicate) {
  buf_reset(&scratch);
  if (c == CODEC_JSON) return finish(c, json_ack(&scratch, id, room, seq, mid, ts, duplicate), 0);
  msgpack_packer pk;
  msgpack_packer_init(&pk, &scratch, mp_write_cb);
  return finish(c, mp_ack(&pk, &scratch, id, room, seq, mid, ts, duplicate), 0);
}

frame_t *wire_err_frame(codec_t c, const json_t *id, const char *code, const char *msg) {
  buf_reset(&scratch);
  if (c == CODEC_JSON) return finish(c, json_err(&scratch, id, code, msg), 0);
  msgpack_packer pk;
  msgpack_packer_init(&pk, &scratch, mp_write_cb);
  return finish(c, mp_err(&pk, &scratch, id, code, msg), 0);
}
