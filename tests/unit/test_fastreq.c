/* Unit tests for request_parse_fast: whenever it accepts a frame, the request must be exactly what
 * codec_decode + request_parse make of it (the body as the compact JSON codec_encode writes); whatever
 * the slow path refuses, it must refuse too (so the error reply stays the slow path's). Fixed cases, then
 * random mutations of valid frames. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
/* cmocka needs the four headers above first */
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/codec.h"
#include "proto/request.h"
#include "proto/v1.h"

static buf_t body = BUF_INIT, tmp = BUF_INIT;

static bool str_eq(const char *a, const char *b) { return (!a && !b) || (a && b && !strcmp(a, b)); }

/* Returns whether the fast path accepted; fails the test if it disagrees with the slow path. */
static bool check(const uint8_t *p, size_t n) {
  struct request fast, slow;
  bool ok = request_parse_fast(p, n, &fast, &body, &tmp);
  json_t *doc = NULL;
  int drc = codec_decode(CODEC_JSON, p, n, &doc, NULL, 0);
  const char *msg = NULL;
  enum perr prc = drc ? PERR_BAD_FRAME : request_parse(doc, &slow, &msg);
  if (ok) {
    if (prc != PERR_OK) print_error("fast accepted what the slow path refuses (%d): %.*s\n", prc, (int)n, p);
    assert_int_equal(prc, PERR_OK);
    assert_int_equal(fast.op, slow.op);
    assert_true(json_equal(fast.id, slow.id));
    assert_int_equal(json_typeof(fast.id), json_typeof(slow.id));
    assert_true(str_eq(fast.room, slow.room));
    assert_true(str_eq(fast.cmid, slow.cmid));
    assert_int_equal(fast.active, slow.active);
    assert_int_equal(fast.seq, slow.seq);
    assert_int_equal(fast.has_seq, slow.has_seq);
    assert_null(fast.body);
    assert_null(fast.token);
    assert_int_equal(fast.has_since, 0);
    if (slow.op == OP_SEND) {
      buf_t want = BUF_INIT;
      assert_int_equal(codec_encode(CODEC_JSON, slow.body, &want), 0);
      if (want.len != fast.body_json_len || memcmp(want.data, fast.body_json, want.len))
        print_error("body differs: fast %.*s slow %.*s\n", (int)fast.body_json_len, fast.body_json,
                    (int)want.len, (const char *)want.data);
      assert_int_equal(want.len, fast.body_json_len);
      assert_memory_equal(want.data, fast.body_json, want.len);
      buf_free(&want);
    } else {
      assert_null(fast.body_json);
    }
    json_decref(fast.id);
  }
  json_decref(doc);
  return ok;
}

static void accepts(const char *s) {
  if (!check((const uint8_t *)s, strlen(s))) print_error("fast path refused: %s\n", s);
  assert_true(check((const uint8_t *)s, strlen(s)));
}
static void refuses(const char *s) {
  if (check((const uint8_t *)s, strlen(s))) print_error("fast path accepted: %s\n", s);
  assert_false(check((const uint8_t *)s, strlen(s)));
}

static void test_valid(void **state) {
  accepts("{\"id\":3,\"op\":\"send\",\"room\":\"lobby\",\"body\":\"hello\",\"cmid\":\"7f1c2a\"}");
  accepts(" { \"op\" : \"send\" , \"cmid\":\"c\", \"body\" : { \"a\" : [ 1 , 2.5 , -0 , 1e2 , 1E-400 ] } ,"
          "\"room\":\"r:x@y.z-_\",\"id\":\"abc\" } \n");
  accepts("{\"id\":-9223372036854775808,\"op\":\"send\",\"room\":\"r\",\"body\":null,\"cmid\":\"c\"}");
  accepts("{\"id\":9223372036854775807,\"op\":\"send\",\"room\":\"r\",\"body\":true,\"cmid\":\"c\"}");
  accepts("{\"id\":1,\"op\":\"send\",\"room\":\"r\",\"body\":\"\\u00e9\\ud83d\\ude00\\/"
          "\\\"\\\\\\b\\f\\n\\r\\t\\u0000"
          "\\u001f\\u007f\xc3\xa9\xf0\x9f\x98\x80\",\"cmid\":\"c\"}");
  accepts("{\"id\":1,\"op\":\"send\",\"room\":\"r\",\"body\":{\"\\u0041\":1,\"B\":{\"\":[]},\"k\\n\":{}},"
          "\"cmid\":\"c\",\"x\":[{\"y\":null}],\"since\":-1,\"active\":true}");
  accepts(
      "{\"id\":1,\"op\":\"send\",\"room\":\"r\",\"body\":[0.1,100000000000000000000.0,1.7976931348623157e308,"
      "-2.5e-3,123456789012345678],\"cmid\":\"c\"}");
  accepts("{\"id\":7,\"op\":\"typing\",\"room\":\"lobby\",\"active\":false}");
  accepts("{\"op\":\"typing\",\"room\":\"lobby\",\"active\":true,\"id\":\"t\"}");
  accepts("{\"id\":8,\"op\":\"ping\"}");
  accepts("{\"id\":8,\"op\":\"ping\",\"room\":\"not a room name is fine for ping\"}");
  accepts("{\"id\":9,\"op\":\"read\",\"room\":\"lobby\",\"seq\":0}");
  accepts("{\"id\":9,\"op\":\"read\",\"room\":\"lobby\",\"seq\":42,\"body\":{\"ignored\":1}}");
  /* nesting up to the limit: the doc is level 1, so the body may open 31 more */
  char deep[200] = "{\"id\":1,\"op\":\"send\",\"room\":\"r\",\"cmid\":\"c\",\"body\":";
  for (int i = 0; i < 31; i++) strcat(deep, "[");
  for (int i = 0; i < 31; i++) strcat(deep, "]");
  strcat(deep, "}");
  accepts(deep);
  /* a body of 32 keys (the most checked for duplicates here) */
  char many[800] = "{\"id\":1,\"op\":\"send\",\"room\":\"r\",\"cmid\":\"c\",\"body\":{";
  for (int i = 0; i < 32; i++) sprintf(many + strlen(many), "%s\"k%d\":%d", i ? "," : "", i, i);
  strcat(many, "}}");
  accepts(many);
}

static void test_refused(void **state) {
  /* slow-path errors: the fast path must stay out of them */
  refuses("");
  refuses("[]");
  refuses("\"x\"");
  refuses("{}");
  refuses("{\"id\":1,\"op\":\"send\",\"room\":\"r\",\"body\":1,\"cmid\":\"c\"");    /* truncated */
  refuses("{\"id\":1,\"op\":\"send\",\"room\":\"r\",\"body\":1,\"cmid\":\"c\"} x"); /* trailing */
  refuses("{\"id\":1,\"op\":\"send\",\"room\":\"r\",\"body\":1,\"cmid\":\"c\",}");  /* trailing comma */
  refuses("{\"id\":1,\"op\":\"send\",\"room\":\"r\",\"body\":01,\"cmid\":\"c\"}");
  refuses("{\"id\":1,\"op\":\"send\",\"room\":\"r\",\"body\":1.,\"cmid\":\"c\"}");
  refuses("{\"id\":1,\"op\":\"send\",\"room\":\"r\",\"body\":.5,\"cmid\":\"c\"}");
  refuses("{\"id\":1,\"op\":\"send\",\"room\":\"r\",\"body\":1e,\"cmid\":\"c\"}");
  refuses("{\"id\":1,\"op\":\"send\",\"room\":\"r\",\"body\":+1,\"cmid\":\"c\"}");
  refuses("{\"id\":1,\"op\":\"send\",\"room\":\"r\",\"body\":1e400,\"cmid\":\"c\"}");
  refuses("{\"id\":1,\"op\":\"send\",\"room\":\"r\",\"body\":9223372036854775808,\"cmid\":\"c\"}");
  refuses("{\"id\":1,\"op\":\"send\",\"room\":\"r\",\"body\":nul,\"cmid\":\"c\"}");
  refuses("{\"id\":1,\"op\":\"send\",\"room\":\"r\",\"body\":nullx,\"cmid\":\"c\"}");
  refuses("{\"id\":1,\"op\":\"send\",\"room\":\"r\",\"body\":\"\\ud800\",\"cmid\":\"c\"}");
  refuses("{\"id\":1,\"op\":\"send\",\"room\":\"r\",\"body\":\"\\udc00\",\"cmid\":\"c\"}");
  refuses("{\"id\":1,\"op\":\"send\",\"room\":\"r\",\"body\":\"\\ud800\\u0041\",\"cmid\":\"c\"}");
  refuses("{\"id\":1,\"op\":\"send\",\"room\":\"r\",\"body\":\"\\x\",\"cmid\":\"c\"}");
  refuses("{\"id\":1,\"op\":\"send\",\"room\":\"r\",\"body\":\"\\u12g4\",\"cmid\":\"c\"}");
  refuses("{\"id\":1,\"op\":\"send\",\"room\":\"r\",\"body\":\"a\nb\",\"cmid\":\"c\"}");
  refuses("{\"id\":1,\"op\":\"send\",\"room\":\"r\",\"body\":\"\xc3\",\"cmid\":\"c\"}");
  refuses("{\"id\":1,\"op\":\"send\",\"room\":\"r\",\"body\":\"\xc0\xaf\",\"cmid\":\"c\"}");
  refuses("{\"id\":1,\"op\":\"send\",\"room\":\"r\",\"body\":\"\xed\xa0\x80\",\"cmid\":\"c\"}");
  refuses("{\"id\":1,\"op\":\"send\",\"room\":\"r\",\"body\":{\"a\":1,\"a\":2},\"cmid\":\"c\"}");
  refuses("{\"id\":1,\"op\":\"send\",\"room\":\"r\",\"body\":{\"a\":1,\"\\u0061\":2},\"cmid\":\"c\"}");
  refuses("{\"id\":1,\"op\":\"send\",\"room\":\"r\",\"body\":{\"a\\u0000\":1},\"cmid\":\"c\"}");
  refuses("{\"id\":1,\"op\":\"send\",\"room\":\"r\",\"body\":{1:2},\"cmid\":\"c\"}");
  refuses("{\"id\":1,\"op\":\"send\",\"room\":\"r\",\"body\":1,\"cmid\":\"c\",\"room\":\"s\"}");
  refuses("{\"id\":1,\"op\":\"send\",\"room\":\"r\",\"body\":1,\"cmid\":\"c\",\"x\":1,\"x\":2}");
  /* request errors */
  refuses("{\"op\":\"send\",\"room\":\"r\",\"body\":1,\"cmid\":\"c\"}");
  refuses("{\"id\":null,\"op\":\"send\",\"room\":\"r\",\"body\":1,\"cmid\":\"c\"}");
  refuses("{\"id\":1.0,\"op\":\"send\",\"room\":\"r\",\"body\":1,\"cmid\":\"c\"}");
  refuses("{\"id\":\"\",\"op\":\"send\",\"room\":\"r\",\"body\":1,\"cmid\":\"c\"}");
  refuses("{\"id\":\"01234567890123456789012345678901234567890123456789012345678901234\",\"op\":\"ping\"}");
  refuses("{\"id\":1,\"op\":\"sned\",\"room\":\"r\",\"body\":1,\"cmid\":\"c\"}");
  refuses("{\"id\":1,\"op\":\"send\",\"room\":\"bad room\",\"body\":1,\"cmid\":\"c\"}");
  refuses("{\"id\":1,\"op\":\"send\",\"room\":\"\",\"body\":1,\"cmid\":\"c\"}");
  refuses("{\"id\":1,\"op\":\"send\",\"room\":5,\"body\":1,\"cmid\":\"c\"}");
  refuses("{\"id\":1,\"op\":\"send\",\"room\":\"r\",\"cmid\":\"c\"}");
  refuses("{\"id\":1,\"op\":\"send\",\"room\":\"r\",\"body\":1}");
  refuses("{\"id\":1,\"op\":\"send\",\"room\":\"r\",\"body\":1,\"cmid\":\"\"}");
  refuses("{\"id\":1,\"op\":\"send\",\"room\":\"r\",\"body\":1,\"cmid\":\"a\\u0000b\"}");
  refuses("{\"id\":1,\"op\":\"typing\",\"room\":\"r\"}");
  refuses("{\"id\":1,\"op\":\"typing\",\"room\":\"r\",\"active\":1}");
  refuses("{\"id\":1,\"op\":\"read\",\"room\":\"r\",\"seq\":-1}");
  refuses("{\"id\":1,\"op\":\"read\",\"room\":\"r\"}");
  refuses("{\"id\":1,\"op\":\"hello\"}"); /* not a hot op */
  char deep[200] = "{\"id\":1,\"op\":\"send\",\"room\":\"r\",\"cmid\":\"c\",\"body\":";
  for (int i = 0; i < 32; i++) strcat(deep, "[");
  for (int i = 0; i < 32; i++) strcat(deep, "]");
  strcat(deep, "}");
  refuses(deep);
  /* accepted by the slow path, but left to it: escapes in the envelope, many keys */
  refuses("{\"id\":1,\"op\":\"send\",\"room\":\"r\",\"body\":1,\"cmid\":\"\\u0063\"}");
  refuses("{\"\\u0069d\":1,\"op\":\"ping\"}");
  char many[800] = "{\"id\":1,\"op\":\"send\",\"room\":\"r\",\"cmid\":\"c\",\"body\":{";
  for (int i = 0; i < 33; i++) sprintf(many + strlen(many), "%s\"k%d\":%d", i ? "," : "", i, i);
  strcat(many, "}}");
  refuses(many);
}

/* Random mutations of valid frames: the fast path may refuse more, but never disagree. */
static void test_mutations(void **state) {
  static const char *const seeds[] = {
      "{\"id\":3,\"op\":\"send\",\"room\":\"lobby\",\"body\":\"hello\",\"cmid\":\"7f1c2a\"}",
      "{\"id\":\"a\",\"op\":\"send\",\"room\":\"r\",\"body\":{\"t\":\"h\\u00e9\",\"n\":[1,-2,3.5e1,true,null]"
      "},"
      "\"cmid\":\"c\"}",
      "{\"id\":7,\"op\":\"typing\",\"room\":\"lobby\",\"active\":false}",
      "{\"id\":9,\"op\":\"read\",\"room\":\"lobby\",\"seq\":42}",
      "{\"id\":8,\"op\":\"ping\"}",
  };
  static const char alphabet[] = "{}[]\":,\\u0123456789abcdefE.-+ \ntrnl\x80\xc3\xa9\xed\xf0";
  srand(12345);
  uint8_t f[256];
  long accepted = 0;
  for (int it = 0; it < 200000; it++) {
    const char *s = seeds[it % (sizeof seeds / sizeof seeds[0])];
    size_t n = strlen(s);
    memcpy(f, s, n);
    int edits = 1 + rand() % 3;
    for (int e = 0; e < edits; e++) {
      size_t at = (size_t)rand() % (n + 1);
      uint8_t ch = (uint8_t)alphabet[rand() % (int)(sizeof alphabet - 1)];
      switch (rand() % 3) {
      case 0: /* replace */
        if (at < n) f[at] = ch;
        break;
      case 1: /* insert */
        if (n < sizeof f - 1) {
          memmove(f + at + 1, f + at, n - at);
          f[at] = ch;
          n++;
        }
        break;
      default: /* delete */
        if (at < n) {
          memmove(f + at, f + at + 1, n - at - 1);
          n--;
        }
      }
    }
    accepted += check(f, n);
  }
  print_message("mutations: %ld of 200000 accepted by the fast path\n", accepted);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_valid),
      cmocka_unit_test(test_refused),
      cmocka_unit_test(test_mutations),
  };
  int rc = cmocka_run_group_tests(tests, NULL, NULL);
  buf_free(&body);
  buf_free(&tmp);
  return rc;
}
