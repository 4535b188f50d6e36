/* Unit tests for proto/wire: the send path's frames written without a tree must be byte-identical to
 * codec_frame() of the tree the server used to build (json_pack, then encode), in both codecs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
/* cmocka needs the four headers above first */
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "proto/codec.h"
#include "proto/wire.h"

static void same_frame(frame_t *got, frame_t *want) {
  assert_non_null(got);
  assert_non_null(want);
  if (got->len != want->len || memcmp(frame_payload(got), frame_payload(want), got->len))
    print_error("frames differ: got %u bytes, want %u bytes\n", got->len, want->len);
  assert_int_equal(got->len, want->len);
  assert_memory_equal(frame_payload(got), frame_payload(want), got->len);
  assert_int_equal(got->flags, want->flags);
  frame_unref(got);
  frame_unref(want);
}

/* The event as the server built it before: json_pack + codec_frame. */
static json_t *old_event(const struct wire_msg *m, json_t *body) {
  return json_pack("{s:s,s:s,s:I,s:s,s:I,s:{s:s,s:s},s:O,s:s}", "ev", "message", "room", m->room, "seq",
                   (json_int_t)m->seq, "mid", m->mid, "ts", (json_int_t)m->ts, "from", "id", m->user_id,
                   "name", m->user_name, "body", body, "cmid", m->cmid);
}

static const char *const bodies[] = {
    "\"hello\"",
    "\"\"",
    "null",
    "true",
    "0",
    "-12345678901234",
    "1.5",
    "0.1",
    "1e300",
    "[1,\"a\",{\"k\":[]},null]",
    "{\"text\":\"h\\u00e9llo \\\"q\\\" \\\\ \\n\\t\\u0001\\u0000 \\/\",\"n\":300,\"neg\":-40000,\"f\":false}",
    "{\"long\":"
    "\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
    "xxx"
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\""
    "}",
};

static void check_event(codec_t c, const struct wire_msg *m, json_t *tree) {
  /* body given as a tree, as JSON text, and as both */
  buf_t j = BUF_INIT, p = BUF_INIT;
  assert_int_equal(codec_encode(CODEC_JSON, tree, &j), 0);
  assert_int_equal(codec_encode(CODEC_MSGPACK, tree, &p), 0);
  struct wire_body forms[] = {
      {.tree = tree},
      {.json = (const char *)j.data, .json_len = j.len},
      {.tree = tree, .json = (const char *)j.data, .json_len = j.len},
  };
  json_t *old = old_event(m, tree);
  for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
    struct wire_msg mm = *m;
    mm.body = &forms[i];
    same_frame(wire_message_frame(c, &mm, 0), codec_frame(c, old, 0));
    same_frame(wire_message_frame(c, &mm, FRAME_EPHEMERAL), codec_frame(c, old, FRAME_EPHEMERAL));
  }
  json_decref(old);
  buf_free(&j);
  buf_free(&p);
}

static void test_message_event(void **state) {
  char longname[300];
  memset(longname, 'n', sizeof longname - 1);
  longname[sizeof longname - 1] = 0;
  struct wire_msg ms[] = {
      {.room = "lobby",
       .seq = 1,
       .mid = "00000191b3c1a2f40001",
       .ts = 1732860000123,
       .user_id = "u42",
       .user_name = "Ann",
       .cmid = "7f1c2a"},
      {.room = "r:x@y.z-_",
       .seq = 70000,
       .mid = "m",
       .ts = 0,
       .user_id = "guest-1",
       .user_name = longname,
       .cmid = "c\"\\\n\xc3\xa9"},
      {.room = "a",
       .seq = 4294967296ull,
       .mid = "m",
       .ts = 255,
       .user_id = "x",
       .user_name = "",
       .cmid = "0123456789012345678901234567890123456789"},
  };
  for (size_t b = 0; b < sizeof bodies / sizeof bodies[0]; b++) {
    json_error_t je;
    json_t *tree = json_loads(bodies[b], JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
    if (!tree) print_error("body %zu: %s\n", b, je.text);
    assert_non_null(tree);
    for (size_t i = 0; i < sizeof ms / sizeof ms[0]; i++) {
      check_event(CODEC_JSON, &ms[i], tree);
      check_event(CODEC_MSGPACK, &ms[i], tree);
    }
    json_decref(tree);
  }
}

static void test_ack(void **state) {
  json_t *ids[] = {json_integer(3), json_integer(-7), json_integer(1LL << 40), json_string("req-1"), NULL};
  for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++)
    for (int c = 0; c < CODEC_COUNT; c++)
      for (int dup = 0; dup < 2; dup++) {
        json_t *ok = json_pack("{s:s,s:I,s:s,s:I}", "room", "lobby", "seq", (json_int_t)42, "mid",
                               "00000191b3c1a2f40001", "ts", (json_int_t)1732860000123);
        if (dup) json_object_set_new_nocheck(ok, "duplicate", json_true());
        json_t *doc = json_object();
        json_object_set_nocheck(doc, "re", ids[i] ? ids[i] : json_null());
        json_object_set_new_nocheck(doc, "ok", ok);
        same_frame(
            wire_ack_frame((codec_t)c, ids[i], "lobby", 42, "00000191b3c1a2f40001", 1732860000123, dup),
            codec_frame((codec_t)c, doc, 0));
        json_decref(doc);
      }
  for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) json_decref(ids[i]);
}

static void test_err(void **state) {
  json_t *ids[] = {json_integer(0), json_string("x"), NULL};
  const char *msgs[] = {"say hello first", "",
                        "invalid JSON at offset 3: '[' or '{' expected near \"x\"\n\t"};
  for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++)
    for (size_t k = 0; k < sizeof msgs / sizeof msgs[0]; k++)
      for (int c = 0; c < CODEC_COUNT; c++) {
        json_t *doc = json_object();
        json_object_set_nocheck(doc, "re", ids[i] ? ids[i] : json_null());
        json_object_set_new_nocheck(doc, "err",
                                    json_pack("{s:s,s:s}", "code", "bad_request", "msg", msgs[k]));
        same_frame(wire_err_frame((codec_t)c, ids[i], "bad_request", msgs[k]),
                   codec_frame((codec_t)c, doc, 0));
        json_decref(doc);
      }
  for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) json_decref(ids[i]);
}

static void test_body_encode(void **state) {
  struct wire_body none = {0};
  buf_t b = BUF_INIT;
  assert_int_equal(wire_body_encode(&none, CODEC_JSON, &b), -EINVAL);
  struct wire_body bad = {.json = "{", .json_len = 1};
  assert_int_not_equal(wire_body_encode(&bad, CODEC_MSGPACK, &b), 0);
  assert_int_equal(b.len, 0);
  struct wire_msg m = {.room = "r", .mid = "m", .user_id = "u", .user_name = "n", .cmid = "c", .body = &none};
  assert_null(wire_message_frame(CODEC_JSON, &m, 0));
  assert_null(wire_message_frame(CODEC_MSGPACK, &m, 0));
  buf_free(&b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_message_event),
      cmocka_unit_test(test_ack),
      cmocka_unit_test(test_err),
      cmocka_unit_test(test_body_encode),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
