/* Unit tests for proto/request: the op table, ids, per-op fields, room names. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
/* cmocka needs the four headers above first */
#include <cmocka.h>

#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#include "proto/codec.h"
#include "proto/request.h"
#include "proto/v1.h"

/* The document of the last parse; kept alive because the request borrows from it. */
static json_t *doc;
static struct request req;
static const char *msg;

static void drop_doc(void) {
  json_decref(doc);
  doc = NULL;
}

static int teardown(void **state) {
  drop_doc();
  return 0;
}

/* Decode text as JSON (it must be valid) and parse it. */
static enum perr parse(const char *text) {
  drop_doc();
  char err[128] = "";
  int rc = codec_decode(CODEC_JSON, (const uint8_t *)text, strlen(text), &doc, err, sizeof err);
  if (rc) print_error("bad test input %s: %s\n", text, err);
  assert_int_equal(rc, 0);
  memset(&req, 0xa5, sizeof req); /* request_parse must reset everything */
  msg = (const char *)1;
  return request_parse(doc, &req, &msg);
}

/* Parse with json_pack-style construction, for values JSON text cannot spell easily. */
static enum perr parse_value(json_t *v) {
  drop_doc();
  doc = v;
  memset(&req, 0xa5, sizeof req);
  msg = (const char *)1;
  return request_parse(doc, &req, &msg);
}

static void expect_ok(const char *text) {
  enum perr e = parse(text);
  if (e != PERR_OK) print_error("%s: %s (%s)\n", text, perr_name(e), msg);
  assert_int_equal(e, PERR_OK);
  assert_null(msg);
}

/* Parsing fails with `code` and a message containing `needle`; the id is kept when valid. */
static void expect_err(const char *text, enum perr code, const char *needle) {
  enum perr e = parse(text);
  if (e != code || !msg || !strstr(msg, needle))
    print_error("%s: got %s \"%s\", expected %s \"%s\"\n", text, perr_name(e), msg ? msg : "(null)",
                perr_name(code), needle);
  assert_int_equal(e, code);
  assert_non_null(msg);
  assert_non_null(strstr(msg, needle));
}

static char *repeat(char c, size_t n) {
  char *s = malloc(n + 1);
  memset(s, c, n);
  s[n] = 0;
  return s;
}

/* ---- names --------------------------------------------------------------------------------------- */

static void test_op_name(void **state) {
  assert_string_equal(op_name(OP_HELLO), "hello");
  assert_string_equal(op_name(OP_JOIN), "join");
  assert_string_equal(op_name(OP_LEAVE), "leave");
  assert_string_equal(op_name(OP_SEND), "send");
  assert_string_equal(op_name(OP_PING), "ping");
  assert_string_equal(op_name(OP__COUNT), "unknown");
  assert_string_equal(op_name((enum op) - 1), "unknown");
  /* every op in the table parses by its name */
  for (int op = 0; op < OP__COUNT; op++) {
    json_t *v = json_pack("{s:i,s:s,s:s,s:s,s:n,s:s,s:b,s:i}", "id", 1, "op", op_name((enum op)op), "room",
                          "r", "cmid", "c", "body", "token", "t", "active", 1, "seq", 1);
    assert_int_equal(parse_value(v), PERR_OK);
    assert_int_equal(req.op, op);
  }
}

static void test_room_name_valid(void **state) {
  assert_true(room_name_valid("lobby"));
  assert_true(room_name_valid("a"));
  assert_true(room_name_valid("ABCXYZabcxyz0189_-.:@"));
  assert_true(room_name_valid("team:42@acme.example-x_y"));
  char *s = repeat('r', ROOM_NAME_MAX);
  assert_true(room_name_valid(s));
  free(s);
  s = repeat('r', ROOM_NAME_MAX + 1);
  assert_false(room_name_valid(s));
  free(s);
  assert_false(room_name_valid(NULL));
  assert_false(room_name_valid(""));
  const char *bad[] = {"a b", "a/b", "a#b", "a\tb", "a\nb", "a+b", "a,b", "a;b", "a!b",       "a*b",  "a$b",
                       "a%b", "a~b", "a'b", "a\"b", "a\\b", "(a)", "[a]", "{a}", "h\xc3\xa9", "\x7f", "a=b"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    if (room_name_valid(bad[i])) print_error("accepted \"%s\"\n", bad[i]);
    assert_false(room_name_valid(bad[i]));
  }
}

/* ---- frame shape, id, op ------------------------------------------------------------------------- */

static void test_not_a_map(void **state) {
  const char *texts[] = {"[]", "[{\"id\":1,\"op\":\"ping\"}]", "\"ping\"", "1", "null", "true", "1.5"};
  for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
    expect_err(texts[i], PERR_BAD_FRAME, "frame is not a map");
    assert_null(req.id);
  }
  assert_int_equal(request_parse(NULL, &req, &msg), PERR_BAD_FRAME);
  assert_string_equal(msg, "frame is not a map");
}

static void test_id(void **state) {
  expect_ok("{\"id\":1,\"op\":\"ping\"}");
  assert_true(json_is_integer(req.id));
  assert_int_equal(json_integer_value(req.id), 1);
  assert_ptr_equal(req.id, json_object_get(doc, "id")); /* borrowed, not copied */

  expect_ok("{\"id\":-9223372036854775808,\"op\":\"ping\"}");
  assert_true(json_integer_value(req.id) == INT64_MIN);
  expect_ok("{\"id\":0,\"op\":\"ping\"}");
  expect_ok("{\"id\":\"a\",\"op\":\"ping\"}");
  assert_string_equal(json_string_value(req.id), "a");

  char text[256];
  char *s = repeat('i', REQ_ID_MAX);
  snprintf(text, sizeof text, "{\"id\":\"%s\",\"op\":\"ping\"}", s);
  expect_ok(text);
  free(s);

  /* missing or invalid: bad_request, no id */
  s = repeat('i', REQ_ID_MAX + 1);
  snprintf(text, sizeof text, "{\"id\":\"%s\",\"op\":\"ping\"}", s);
  free(s);
  const char *bad[] = {
      "{\"op\":\"ping\"}",
      "{\"id\":null,\"op\":\"ping\"}",
      "{\"id\":\"\",\"op\":\"ping\"}",
      "{\"id\":1.0,\"op\":\"ping\"}",
      "{\"id\":1.5,\"op\":\"ping\"}",
      "{\"id\":true,\"op\":\"ping\"}",
      "{\"id\":[1],\"op\":\"ping\"}",
      "{\"id\":{},\"op\":\"ping\"}",
      "{\"ID\":1,\"op\":\"ping\"}",
      text,
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    expect_err(bad[i], PERR_BAD_REQUEST, "missing or invalid id");
    assert_null(req.id);
  }
  /* the id is checked before the op */
  expect_err("{\"op\":\"nope\"}", PERR_BAD_REQUEST, "missing or invalid id");
  expect_err("{\"id\":false}", PERR_BAD_REQUEST, "missing or invalid id");
}

static void test_op(void **state) {
  const char *bad[] = {
      "{\"id\":5}",           "{\"id\":5,\"op\":null}", "{\"id\":5,\"op\":1}", "{\"id\":5,\"op\":[\"ping\"]}",
      "{\"id\":5,\"op\":{}}",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    expect_err(bad[i], PERR_BAD_REQUEST, "missing or invalid op");
    assert_int_equal(json_integer_value(req.id), 5); /* the error reply can carry the id */
  }
  const char *unknown[] = {
      "{\"id\":\"x\",\"op\":\"\"}",
      "{\"id\":\"x\",\"op\":\"PING\"}",
      "{\"id\":\"x\",\"op\":\"pin\"}",
      "{\"id\":\"x\",\"op\":\"pingg\"}",
      "{\"id\":\"x\",\"op\":\"ping\\u0000\"}",
      "{\"id\":\"x\",\"op\":\" ping\"}",
      "{\"id\":\"x\",\"op\":\"nosuchop\"}",
  };
  for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
    expect_err(unknown[i], PERR_UNKNOWN_OP, "unknown op");
    assert_string_equal(json_string_value(req.id), "x");
  }
}

/* ---- per op -------------------------------------------------------------------------------------- */

static void test_ping(void **state) {
  expect_ok("{\"id\":1,\"op\":\"ping\"}");
  assert_int_equal(req.op, OP_PING);
  assert_null(req.room);
  assert_null(req.token);
  assert_null(req.client);
  assert_null(req.cmid);
  assert_null(req.body);
  assert_false(req.has_since);
  assert_int_equal(req.since, 0);
  /* unknown and other ops' fields are ignored */
  expect_ok("{\"id\":1,\"op\":\"ping\",\"room\":7,\"token\":[],\"x\":{\"y\":1}}");
  assert_null(req.room);
}

static void test_hello(void **state) {
  expect_ok("{\"id\":1,\"op\":\"hello\"}");
  assert_int_equal(req.op, OP_HELLO);
  assert_null(req.token);
  assert_null(req.client);

  expect_ok("{\"op\":\"hello\",\"id\":1,\"token\":\"eyJ.x.y\",\"client\":\"sdk/1.2\",\"resume\":\"z\"}");
  assert_string_equal(req.token, "eyJ.x.y");
  assert_string_equal(req.client, "sdk/1.2");
  expect_ok("{\"id\":1,\"op\":\"hello\",\"token\":\"\",\"client\":\"\"}");
  assert_string_equal(req.token, "");

  char *big = malloc(9000 + 64);
  char *s = repeat('t', 8192);
  snprintf(big, 9000 + 64, "{\"id\":1,\"op\":\"hello\",\"token\":\"%s\"}", s);
  expect_ok(big);
  assert_int_equal(strlen(req.token), 8192);
  free(s);
  s = repeat('t', 8193);
  snprintf(big, 9000 + 64, "{\"id\":1,\"op\":\"hello\",\"token\":\"%s\"}", s);
  expect_err(big, PERR_BAD_REQUEST, "field 'token' must be 0..8192 bytes");
  assert_int_equal(json_integer_value(req.id), 1);
  free(s);
  s = repeat('c', 64);
  snprintf(big, 9000 + 64, "{\"id\":1,\"op\":\"hello\",\"client\":\"%s\"}", s);
  expect_ok(big);
  free(s);
  s = repeat('c', 65);
  snprintf(big, 9000 + 64, "{\"id\":1,\"op\":\"hello\",\"client\":\"%s\"}", s);
  expect_err(big, PERR_BAD_REQUEST, "field 'client' must be 0..64 bytes");
  free(s);
  free(big);

  expect_err("{\"id\":1,\"op\":\"hello\",\"token\":1}", PERR_BAD_REQUEST, "field 'token' must be a string");
  expect_err("{\"id\":1,\"op\":\"hello\",\"token\":null}", PERR_BAD_REQUEST,
             "field 'token' must be a string");
  expect_err("{\"id\":1,\"op\":\"hello\",\"token\":{}}", PERR_BAD_REQUEST, "field 'token' must be a string");
  expect_err("{\"id\":1,\"op\":\"hello\",\"token\":\"a\\u0000b\"}", PERR_BAD_REQUEST,
             "field 'token' must not contain NUL bytes");
  expect_err("{\"id\":1,\"op\":\"hello\",\"client\":false}", PERR_BAD_REQUEST,
             "field 'client' must be a string");
  expect_err("{\"id\":1,\"op\":\"hello\",\"token\":\"t\",\"client\":[\"x\"]}", PERR_BAD_REQUEST,
             "field 'client' must be a string");
}

static void test_join(void **state) {
  expect_ok("{\"id\":2,\"op\":\"join\",\"room\":\"lobby\"}");
  assert_int_equal(req.op, OP_JOIN);
  assert_string_equal(req.room, "lobby");
  assert_false(req.has_since);
  assert_int_equal(req.since, 0);
  expect_ok("{\"id\":2,\"op\":\"join\",\"room\":\"lobby\",\"since\":0}");
  assert_true(req.has_since);
  assert_int_equal(req.since, 0);
  expect_ok("{\"id\":2,\"op\":\"join\",\"room\":\"lobby\",\"since\":9223372036854775807}");
  assert_true(req.since == INT64_MAX);

  expect_err("{\"id\":2,\"op\":\"join\"}", PERR_BAD_REQUEST, "missing field 'room'");
  expect_err("{\"id\":2,\"op\":\"join\",\"room\":null}", PERR_BAD_REQUEST, "field 'room' must be a string");
  expect_err("{\"id\":2,\"op\":\"join\",\"room\":5}", PERR_BAD_REQUEST, "field 'room' must be a string");
  expect_err("{\"id\":2,\"op\":\"join\",\"room\":[\"lobby\"]}", PERR_BAD_REQUEST,
             "field 'room' must be a string");
  expect_err("{\"id\":2,\"op\":\"join\",\"room\":\"\"}", PERR_BAD_ROOM,
             "field 'room' is not a valid room name");
  expect_err("{\"id\":2,\"op\":\"join\",\"room\":\"a b\"}", PERR_BAD_ROOM, "not a valid room name");
  expect_err("{\"id\":2,\"op\":\"join\",\"room\":\"lobby\\u0000x\"}", PERR_BAD_ROOM, "not a valid room name");
  expect_err("{\"id\":2,\"op\":\"join\",\"room\":\"caf\\u00e9\"}", PERR_BAD_ROOM, "not a valid room name");
  assert_int_equal(json_integer_value(req.id), 2);
  char text[512];
  char *s = repeat('r', ROOM_NAME_MAX);
  snprintf(text, sizeof text, "{\"id\":2,\"op\":\"join\",\"room\":\"%s\"}", s);
  expect_ok(text);
  free(s);
  s = repeat('r', ROOM_NAME_MAX + 1);
  snprintf(text, sizeof text, "{\"id\":2,\"op\":\"join\",\"room\":\"%s\"}", s);
  expect_err(text, PERR_BAD_ROOM, "not a valid room name");
  free(s);

  const char *bad_since[] = {"-1", "-9223372036854775808", "1.0", "1.5", "\"3\"", "null", "true", "[1]"};
  for (size_t i = 0; i < sizeof bad_since / sizeof bad_since[0]; i++) {
    snprintf(text, sizeof text, "{\"id\":2,\"op\":\"join\",\"room\":\"lobby\",\"since\":%s}", bad_since[i]);
    expect_err(text, PERR_BAD_REQUEST, "field 'since' must be a non-negative integer");
  }
  /* the room is checked before since */
  expect_err("{\"id\":2,\"op\":\"join\",\"since\":-1}", PERR_BAD_REQUEST, "missing field 'room'");
}

static void test_leave(void **state) {
  expect_ok("{\"id\":3,\"op\":\"leave\",\"room\":\"lobby\"}");
  assert_int_equal(req.op, OP_LEAVE);
  assert_string_equal(req.room, "lobby");
  assert_false(req.has_since);
  expect_ok("{\"id\":3,\"op\":\"leave\",\"room\":\"lobby\",\"since\":\"ignored\"}");
  expect_err("{\"id\":3,\"op\":\"leave\"}", PERR_BAD_REQUEST, "missing field 'room'");
  expect_err("{\"id\":3,\"op\":\"leave\",\"room\":{}}", PERR_BAD_REQUEST, "field 'room' must be a string");
  expect_err("{\"id\":3,\"op\":\"leave\",\"room\":\"#general\"}", PERR_BAD_ROOM, "not a valid room name");
}

static void test_later_ops(void **state) {
  expect_ok("{\"id\":3,\"op\":\"leave\",\"room\":\"lobby\",\"forget\":true}");
  assert_true(req.forget);
  expect_err("{\"id\":3,\"op\":\"leave\",\"room\":\"lobby\",\"forget\":1}", PERR_BAD_REQUEST,
             "field 'forget' must be true or false");
  expect_ok("{\"id\":1,\"op\":\"hello\",\"resume\":\"abc\"}");
  assert_string_equal(req.resume, "abc");
  expect_err("{\"id\":1,\"op\":\"hello\",\"resume\":\"\"}", PERR_BAD_REQUEST,
             "field 'resume' must be 1..128 bytes");

  expect_ok("{\"id\":5,\"op\":\"typing\",\"room\":\"r\",\"active\":false}");
  assert_int_equal(req.op, OP_TYPING);
  assert_false(req.active);
  expect_err("{\"id\":5,\"op\":\"typing\",\"room\":\"r\"}", PERR_BAD_REQUEST, "missing field 'active'");

  expect_ok("{\"id\":6,\"op\":\"presence\",\"room\":\"r\"}");
  assert_string_equal(req.room, "r");
  assert_null(req.users);
  expect_ok("{\"id\":6,\"op\":\"presence\",\"users\":[\"a\",\"b\"]}");
  assert_int_equal(json_array_size(req.users), 2);
  expect_err("{\"id\":6,\"op\":\"presence\",\"users\":\"a\"}", PERR_BAD_REQUEST,
             "must be an array of user ids");
  expect_err("{\"id\":6,\"op\":\"presence\",\"users\":[1]}", PERR_BAD_REQUEST,
             "must be an array of user ids");
  expect_err("{\"id\":6,\"op\":\"presence\",\"users\":[]}", PERR_BAD_REQUEST, "1..100 user ids");
  expect_err("{\"id\":6,\"op\":\"presence\",\"users\":[\"\"]}", PERR_BAD_REQUEST, "1..100 user ids");

  expect_ok("{\"id\":7,\"op\":\"read\",\"room\":\"r\",\"seq\":9}");
  assert_int_equal(req.seq, 9);
  expect_err("{\"id\":7,\"op\":\"read\",\"room\":\"r\"}", PERR_BAD_REQUEST, "missing field 'seq'");
  expect_err("{\"id\":7,\"op\":\"read\",\"room\":\"r\",\"seq\":-1}", PERR_BAD_REQUEST, "non-negative");
  expect_ok("{\"id\":8,\"op\":\"rooms\"}");
  assert_int_equal(req.op, OP_ROOMS);

  expect_ok("{\"id\":9,\"op\":\"history\",\"room\":\"r\",\"before\":10,\"limit\":5}");
  assert_true(req.has_before && req.has_limit && !req.has_after);
  assert_int_equal(req.before, 10);
  expect_err("{\"id\":9,\"op\":\"history\",\"room\":\"r\",\"after\":\"x\"}", PERR_BAD_REQUEST,
             "field 'after' must be a non-negative integer");
}

static void test_send(void **state) {
  expect_ok("{\"id\":4,\"op\":\"send\",\"room\":\"lobby\",\"body\":\"hi\",\"cmid\":\"c-1\"}");
  assert_int_equal(req.op, OP_SEND);
  assert_string_equal(req.room, "lobby");
  assert_string_equal(req.cmid, "c-1");
  assert_ptr_equal(req.body, json_object_get(doc, "body"));
  assert_string_equal(json_string_value(req.body), "hi");

  /* any body, null included */
  const char *bodies[] = {
      "null", "0", "-1.5", "true", "false", "\"\"", "[]", "{}", "{\"a\":[1,{\"b\":null}]}"};
  char text[512];
  for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
    snprintf(text, sizeof text, "{\"id\":4,\"op\":\"send\",\"room\":\"r\",\"cmid\":\"c\",\"body\":%s}",
             bodies[i]);
    expect_ok(text);
    assert_non_null(req.body);
    json_t *expected = json_loads(bodies[i], JSON_DECODE_ANY, NULL);
    assert_true(json_equal(req.body, expected));
    json_decref(expected);
  }

  expect_err("{\"id\":4,\"op\":\"send\",\"body\":1,\"cmid\":\"c\"}", PERR_BAD_REQUEST,
             "missing field 'room'");
  expect_err("{\"id\":4,\"op\":\"send\",\"room\":1,\"body\":1,\"cmid\":\"c\"}", PERR_BAD_REQUEST,
             "field 'room' must be a string");
  expect_err("{\"id\":4,\"op\":\"send\",\"room\":\"a/b\",\"body\":1,\"cmid\":\"c\"}", PERR_BAD_ROOM,
             "not a valid room name");
  expect_err("{\"id\":4,\"op\":\"send\",\"room\":\"r\",\"cmid\":\"c\"}", PERR_BAD_REQUEST,
             "missing field 'body'");
  expect_err("{\"id\":4,\"op\":\"send\",\"room\":\"r\",\"body\":1}", PERR_BAD_REQUEST,
             "missing field 'cmid'");
  expect_err("{\"id\":4,\"op\":\"send\",\"room\":\"r\",\"body\":1,\"cmid\":null}", PERR_BAD_REQUEST,
             "field 'cmid' must be a string");
  expect_err("{\"id\":4,\"op\":\"send\",\"room\":\"r\",\"body\":1,\"cmid\":7}", PERR_BAD_REQUEST,
             "field 'cmid' must be a string");
  expect_err("{\"id\":4,\"op\":\"send\",\"room\":\"r\",\"body\":1,\"cmid\":\"\"}", PERR_BAD_REQUEST,
             "field 'cmid' must be 1..64 bytes");
  expect_err("{\"id\":4,\"op\":\"send\",\"room\":\"r\",\"body\":1,\"cmid\":\"a\\u0000b\"}", PERR_BAD_REQUEST,
             "field 'cmid' must not contain NUL bytes");
  assert_int_equal(json_integer_value(req.id), 4);

  char *s = repeat('m', CMID_MAX);
  snprintf(text, sizeof text, "{\"id\":4,\"op\":\"send\",\"room\":\"r\",\"body\":1,\"cmid\":\"%s\"}", s);
  expect_ok(text);
  assert_int_equal(strlen(req.cmid), CMID_MAX);
  free(s);
  s = repeat('m', CMID_MAX + 1);
  snprintf(text, sizeof text, "{\"id\":4,\"op\":\"send\",\"room\":\"r\",\"body\":1,\"cmid\":\"%s\"}", s);
  expect_err(text, PERR_BAD_REQUEST, "field 'cmid' must be 1..64 bytes");
  free(s);
  /* a multi-byte cmid is measured in bytes: 22 x 3 bytes = 66 */
  buf_t b = BUF_INIT;
  assert_int_equal(buf_printf(&b, "{\"id\":4,\"op\":\"send\",\"room\":\"r\",\"body\":1,\"cmid\":\""), 0);
  for (int i = 0; i < 22; i++) assert_int_equal(buf_printf(&b, "\xe2\x82\xac"), 0);
  assert_int_equal(buf_printf(&b, "\"}"), 0);
  expect_err((const char *)b.data, PERR_BAD_REQUEST, "field 'cmid' must be 1..64 bytes");
  buf_free(&b);
}

static void test_from_msgpack(void **state) {
  msgpack_sbuffer sb;
  msgpack_packer pk;
  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  msgpack_pack_map(&pk, 5);
  msgpack_pack_str_with_body(&pk, "id", 2);
  msgpack_pack_uint8(&pk, 9);
  msgpack_pack_str_with_body(&pk, "op", 2);
  msgpack_pack_str_with_body(&pk, "send", 4);
  msgpack_pack_str_with_body(&pk, "room", 4);
  msgpack_pack_str_with_body(&pk, "a:b", 3);
  msgpack_pack_str_with_body(&pk, "body", 4);
  msgpack_pack_nil(&pk);
  msgpack_pack_str_with_body(&pk, "cmid", 4);
  msgpack_pack_str_with_body(&pk, "x\0y", 3); /* MessagePack strings may hold NUL; fields may not */
  drop_doc();
  char err[128];
  assert_int_equal(codec_decode(CODEC_MSGPACK, (const uint8_t *)sb.data, sb.size, &doc, err, sizeof err), 0);
  msgpack_sbuffer_destroy(&sb);
  assert_int_equal(request_parse(doc, &req, &msg), PERR_BAD_REQUEST);
  assert_string_equal(msg, "field 'cmid' must not contain NUL bytes");
  assert_int_equal(json_integer_value(req.id), 9);
  json_object_set_new(doc, "cmid", json_string("xy"));
  assert_int_equal(request_parse(doc, &req, &msg), PERR_OK);
  assert_true(json_is_null(req.body));
  assert_string_equal(req.room, "a:b");
  assert_string_equal(req.cmid, "xy");
}

static void test_field_order_and_first_error(void **state) {
  /* errors are reported for the first failing field in table order */
  expect_err("{\"id\":1,\"op\":\"send\",\"cmid\":5,\"room\":\"bad room\"}", PERR_BAD_ROOM, "'room'");
  expect_err("{\"id\":1,\"op\":\"send\",\"cmid\":5,\"room\":\"ok\"}", PERR_BAD_REQUEST,
             "missing field 'body'");
  expect_err("{\"id\":1,\"op\":\"send\",\"cmid\":5,\"room\":\"ok\",\"body\":1}", PERR_BAD_REQUEST, "'cmid'");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_teardown(test_op_name, teardown),
      cmocka_unit_test_teardown(test_room_name_valid, teardown),
      cmocka_unit_test_teardown(test_not_a_map, teardown),
      cmocka_unit_test_teardown(test_id, teardown),
      cmocka_unit_test_teardown(test_op, teardown),
      cmocka_unit_test_teardown(test_ping, teardown),
      cmocka_unit_test_teardown(test_later_ops, teardown),
      cmocka_unit_test_teardown(test_hello, teardown),
      cmocka_unit_test_teardown(test_join, teardown),
      cmocka_unit_test_teardown(test_leave, teardown),
      cmocka_unit_test_teardown(test_send, teardown),
      cmocka_unit_test_teardown(test_from_msgpack, teardown),
      cmocka_unit_test_teardown(test_field_order_and_first_error, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
