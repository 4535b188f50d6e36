/* Unit tests for proto/codec: JSON and MessagePack decoding, encoding, round trips and WebSocket framing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
/* cmocka needs the four headers above first */
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/ws.h"
#include "proto/codec.h"
#include "proto/errors.h"

/* ---- helpers ------------------------------------------------------------------------------------- */

static json_t *decode_ok(codec_t c, const void *p, size_t n) {
  char err[128] = "";
  json_t *v = NULL;
  int rc = codec_decode(c, p, n, &v, err, sizeof err);
  if (rc != 0) print_error("unexpected decode error: %s\n", err);
  assert_int_equal(rc, 0);
  assert_non_null(v);
  return v;
}

/* Decoding must fail with bad_frame and a message containing `needle`. */
static void decode_fails(codec_t c, const void *p, size_t n, const char *needle) {
  char err[128] = "";
  json_t *v = (json_t *)1;
  int rc = codec_decode(c, p, n, &v, err, sizeof err);
  if (rc != PERR_BAD_FRAME || !strstr(err, needle))
    print_error("decode: rc %d err \"%s\", expected \"%s\"\n", rc, err, needle);
  assert_int_equal(rc, PERR_BAD_FRAME);
  assert_null(v);
  assert_non_null(strstr(err, needle));
}

static json_t *json_ok(const char *text) { return decode_ok(CODEC_JSON, text, strlen(text)); }
static void json_fails(const char *text, const char *needle) {
  decode_fails(CODEC_JSON, text, strlen(text), needle);
}

/* A msgpack-c packer writing into a growing sbuffer. */
typedef struct mp {
  msgpack_sbuffer sb;
  msgpack_packer pk;
} mp_t;

static void mp_init(mp_t *m) {
  msgpack_sbuffer_init(&m->sb);
  msgpack_packer_init(&m->pk, &m->sb, msgpack_sbuffer_write);
}
static void mp_str(mp_t *m, const char *s) {
  msgpack_pack_str(&m->pk, strlen(s));
  msgpack_pack_str_body(&m->pk, s, strlen(s));
}
static void mp_strn(mp_t *m, const void *s, size_t n) {
  msgpack_pack_str(&m->pk, n);
  msgpack_pack_str_body(&m->pk, s, n);
}
static void mp_done(mp_t *m) { msgpack_sbuffer_destroy(&m->sb); }

static json_t *mp_ok(mp_t *m) { return decode_ok(CODEC_MSGPACK, m->sb.data, m->sb.size); }
static void mp_fails(mp_t *m, const char *needle) {
  decode_fails(CODEC_MSGPACK, m->sb.data, m->sb.size, needle);
  mp_done(m);
}

static void assert_json_eq(const json_t *got, const char *expected_compact) {
  char *s = json_dumps(got, JSON_COMPACT | JSON_ENCODE_ANY);
  assert_non_null(s);
  assert_string_equal(s, expected_compact);
  free(s);
}

/* The text codec_encode(CODEC_JSON) produces, NUL-terminated; caller frees. */
static char *encode_json(const json_t *v) {
  buf_t b = BUF_INIT;
  assert_int_equal(codec_encode(CODEC_JSON, v, &b), 0);
  assert_int_equal(buf_putc(&b, 0), 0);
  return (char *)b.data;
}

/* n nested arrays around 0 (n = 0: just 0), as JSON text; caller frees. */
static char *nested_json_arrays(int n) {
  char *s = malloc((size_t)n * 2 + 2);
  assert_non_null(s);
  memset(s, '[', (size_t)n);
  s[n] = '0';
  memset(s + n + 1, ']', (size_t)n);
  s[2 * n + 1] = 0;
  return s;
}

/* ---- subprotocols -------------------------------------------------------------------------------- */

static void test_subprotocol(void **state) {
  assert_string_equal(codec_subprotocol(CODEC_JSON), "parley.v1.json");
  assert_string_equal(codec_subprotocol(CODEC_MSGPACK), "parley.v1.msgpack");
  assert_null(codec_subprotocol((codec_t)CODEC_COUNT));
}

/* ---- JSON decoding ------------------------------------------------------------------------------- */

static void test_json_decode_values(void **state) {
  json_t *v =
      json_ok(" {\"z\": 1, \"a\": [true, false, null, -5, 2.5, \"h\\u00e9\", {}], \"m\": {\"k\": \"v\"}} ");
  assert_true(json_is_object(v));
  /* key order is kept */
  assert_json_eq(v, "{\"z\":1,\"a\":[true,false,null,-5,2.5,\"h\xc3\xa9\",{}],\"m\":{\"k\":\"v\"}}");
  json_decref(v);

  v = json_ok("9223372036854775807");
  assert_true(json_is_integer(v));
  assert_true(json_integer_value(v) == INT64_MAX);
  json_decref(v);
  v = json_ok("-9223372036854775808");
  assert_true(json_integer_value(v) == INT64_MIN);
  json_decref(v);

  /* top-level non-maps are not the codec's business (request_parse refuses them) */
  v = json_ok("\"text\"");
  assert_true(json_is_string(v));
  json_decref(v);
  v = json_ok("null");
  assert_true(json_is_null(v));
  json_decref(v);
  v = json_ok("[1,2]");
  assert_true(json_is_array(v));
  json_decref(v);

  /* RFC 8259 allows \u0000 in strings */
  v = json_ok("\"a\\u0000b\"");
  assert_int_equal(json_string_length(v), 3);
  assert_memory_equal(json_string_value(v), "a\0b", 3);
  json_decref(v);
}

static void test_json_decode_errors(void **state) {
  json_fails("", "invalid JSON");
  json_fails("   ", "invalid JSON");
  json_fails("{", "invalid JSON");
  json_fails("{\"a\":}", "invalid JSON");
  json_fails("[1,]", "invalid JSON");
  json_fails("{'a':1}", "invalid JSON");
  json_fails("NaN", "invalid JSON");
  json_fails("{\"a\":1} x", "invalid JSON");    /* trailing garbage */
  json_fails("{\"a\":1}{}", "invalid JSON");    /* a second value */
  json_fails("{\"a\":1,\"a\":2}", "duplicate"); /* duplicate key */
  json_fails("{\"m\":{\"a\":1,\"b\":2,\"a\":3}}", "duplicate");
  json_fails("18446744073709551616", "invalid JSON"); /* beyond int64 */
  json_fails("9223372036854775808", "invalid JSON");
  json_fails("1e400", "invalid JSON");
  json_fails("{\"a\\u0000b\":1}", "invalid JSON"); /* NUL in a key */
  json_fails("\"\xff\"", "invalid JSON");          /* invalid UTF-8 */
  json_fails("\"\xc0\x80\"", "invalid JSON");      /* overlong */
  json_fails("\"\\ud800\"", "invalid JSON");       /* lone surrogate */
  decode_fails(CODEC_JSON, "{}\0", 3, "invalid JSON");
}

static void test_json_depth(void **state) {
  char *s = nested_json_arrays(32);
  json_decref(json_ok(s));
  free(s);
  s = nested_json_arrays(33);
  json_fails(s, "nesting deeper than 32");
  free(s);
  s = nested_json_arrays(5000); /* beyond jansson's own limit */
  json_fails(s, "");
  free(s);

  /* objects, and the deep branch not being the first one */
  buf_t b = BUF_INIT;
  for (int depth = 32; depth <= 33; depth++) {
    buf_reset(&b);
    assert_int_equal(buf_printf(&b, "{\"x\":1,\"deep\":"), 0);
    for (int i = 1; i < depth; i++) assert_int_equal(buf_printf(&b, "{\"k\":"), 0);
    assert_int_equal(buf_printf(&b, "0"), 0);
    for (int i = 0; i < depth; i++) assert_int_equal(buf_putc(&b, '}'), 0);
    if (depth == 32)
      json_decref(decode_ok(CODEC_JSON, b.data, b.len));
    else
      decode_fails(CODEC_JSON, b.data, b.len, "nesting deeper than 32");
  }
  /* an empty container is a level too */
  buf_reset(&b);
  for (int i = 0; i < 32; i++) assert_int_equal(buf_putc(&b, '['), 0);
  assert_int_equal(buf_printf(&b, "{}"), 0);
  for (int i = 0; i < 32; i++) assert_int_equal(buf_putc(&b, ']'), 0);
  decode_fails(CODEC_JSON, b.data, b.len, "nesting deeper than 32");
  buf_free(&b);
}

/* ---- MessagePack decoding ------------------------------------------------------------------------ */

static void test_mp_decode_values(void **state) {
  mp_t m;
  mp_init(&m);
  msgpack_pack_map(&m.pk, 12);
  mp_str(&m, "nil");
  msgpack_pack_nil(&m.pk);
  mp_str(&m, "t");
  msgpack_pack_true(&m.pk);
  mp_str(&m, "f");
  msgpack_pack_false(&m.pk);
  mp_str(&m, "uints");
  msgpack_pack_array(&m.pk, 5);
  msgpack_pack_fix_uint8(&m.pk, 7);
  msgpack_pack_fix_uint16(&m.pk, 300);
  msgpack_pack_fix_uint32(&m.pk, 70000);
  msgpack_pack_fix_uint64(&m.pk, 5000000000ull);
  msgpack_pack_fix_uint64(&m.pk, INT64_MAX);
  mp_str(&m, "ints");
  msgpack_pack_array(&m.pk, 6);
  msgpack_pack_int8(&m.pk, -1);
  msgpack_pack_fix_int8(&m.pk, -100);
  msgpack_pack_fix_int16(&m.pk, -30000);
  msgpack_pack_fix_int32(&m.pk, -2000000000);
  msgpack_pack_fix_int64(&m.pk, INT64_MIN);
  msgpack_pack_fix_int8(&m.pk, 5); /* a signed format holding a positive value */
  mp_str(&m, "f32");
  msgpack_pack_float(&m.pk, 1.5f);
  mp_str(&m, "f64");
  msgpack_pack_double(&m.pk, 0.25);
  mp_str(&m, "s");
  mp_str(&m, "h\xc3\xa9 \xf0\x9f\x98\x80");
  mp_str(&m, "empty");
  mp_str(&m, "");
  mp_str(&m, "nul");
  mp_strn(&m, "a\0b", 3);
  mp_str(&m, "arr");
  msgpack_pack_array(&m.pk, 0);
  mp_str(&m, "map");
  msgpack_pack_map(&m.pk, 2);
  mp_str(&m, "z");
  msgpack_pack_map(&m.pk, 0);
  mp_str(&m, "a");
  msgpack_pack_array(&m.pk, 1);
  msgpack_pack_int(&m.pk, 1);
  json_t *v = mp_ok(&m);
  mp_done(&m);

  assert_json_eq(v, "{\"nil\":null,\"t\":true,\"f\":false,"
                    "\"uints\":[7,300,70000,5000000000,9223372036854775807],"
                    "\"ints\":[-1,-100,-30000,-2000000000,-9223372036854775808,5],"
                    "\"f32\":1.5,\"f64\":0.25,\"s\":\"h\xc3\xa9 \xf0\x9f\x98\x80\",\"empty\":\"\","
                    "\"nul\":\"a\\u0000b\",\"arr\":[],\"map\":{\"z\":{},\"a\":[1]}}");
  assert_true(json_is_real(json_object_get(v, "f32")));
  assert_true(json_is_real(json_object_get(v, "f64")));
  assert_int_equal(json_string_length(json_object_get(v, "nul")), 3);
  json_decref(v);

  /* str8 / str16 / str32 formats, and the top level need not be a map */
  static const uint8_t str8[] = {0xd9, 0x02, 'h', 'i'};
  static const uint8_t str16[] = {0xda, 0x00, 0x02, 'h', 'i'};
  static const uint8_t str32[] = {0xdb, 0x00, 0x00, 0x00, 0x02, 'h', 'i'};
  static const uint8_t arr16[] = {0xdc, 0x00, 0x01, 0xc0};
  static const uint8_t map32[] = {0xdf, 0x00, 0x00, 0x00, 0x01, 0xa1, 'k', 0x01};
  v = decode_ok(CODEC_MSGPACK, str8, sizeof str8);
  assert_json_eq(v, "\"hi\"");
  json_decref(v);
  v = decode_ok(CODEC_MSGPACK, str16, sizeof str16);
  assert_json_eq(v, "\"hi\"");
  json_decref(v);
  v = decode_ok(CODEC_MSGPACK, str32, sizeof str32);
  assert_json_eq(v, "\"hi\"");
  json_decref(v);
  v = decode_ok(CODEC_MSGPACK, arr16, sizeof arr16);
  assert_json_eq(v, "[null]");
  json_decref(v);
  v = decode_ok(CODEC_MSGPACK, map32, sizeof map32);
  assert_json_eq(v, "{\"k\":1}");
  json_decref(v);
}

static void test_mp_bin_ext(void **state) {
  mp_t m;
  static const char bytes[300] = {1, 2, 3};
  /* bin 8 / 16 / 32 */
  size_t sizes[] = {3, 300};
  for (size_t i = 0; i < 2; i++) {
    mp_init(&m);
    msgpack_pack_bin(&m.pk, sizes[i]);
    msgpack_pack_bin_body(&m.pk, bytes, sizes[i]);
    mp_fails(&m, "bin values are not supported");
  }
  static const uint8_t bin32[] = {0xc6, 0x00, 0x00, 0x00, 0x01, 0x00};
  decode_fails(CODEC_MSGPACK, bin32, sizeof bin32, "bin values are not supported");
  /* bin nested inside a map */
  mp_init(&m);
  msgpack_pack_map(&m.pk, 1);
  mp_str(&m, "body");
  msgpack_pack_array(&m.pk, 2);
  msgpack_pack_int(&m.pk, 1);
  msgpack_pack_bin(&m.pk, 1);
  msgpack_pack_bin_body(&m.pk, bytes, 1);
  mp_fails(&m, "bin values are not supported");

  /* fixext 1/2/4/8/16, ext 8/16/32 */
  size_t ext_sizes[] = {1, 2, 4, 8, 16, 3, 300};
  for (size_t i = 0; i < sizeof ext_sizes / sizeof ext_sizes[0]; i++) {
    mp_init(&m);
    msgpack_pack_array(&m.pk, 1);
    msgpack_pack_ext(&m.pk, ext_sizes[i], 1);
    msgpack_pack_ext_body(&m.pk, bytes, ext_sizes[i]);
    mp_fails(&m, "ext values are not supported");
  }
  static const uint8_t ext32[] = {0xc9, 0x00, 0x00, 0x00, 0x01, 0x05, 0x00};
  decode_fails(CODEC_MSGPACK, ext32, sizeof ext32, "ext values are not supported");
  /* the timestamp extension is an ext too */
  mp_init(&m);
  msgpack_timestamp ts = {.tv_sec = 1, .tv_nsec = 0};
  msgpack_pack_timestamp(&m.pk, &ts);
  mp_fails(&m, "ext values are not supported");
}

static void test_mp_keys(void **state) {
  mp_t m;
  /* non-string keys */
  mp_init(&m);
  msgpack_pack_map(&m.pk, 1);
  msgpack_pack_int(&m.pk, 1);
  msgpack_pack_int(&m.pk, 2);
  mp_fails(&m, "map keys must be strings");
  mp_init(&m);
  msgpack_pack_map(&m.pk, 2);
  mp_str(&m, "ok");
  msgpack_pack_nil(&m.pk);
  msgpack_pack_nil(&m.pk);
  msgpack_pack_nil(&m.pk);
  mp_fails(&m, "map keys must be strings");
  mp_init(&m);
  msgpack_pack_map(&m.pk, 1);
  msgpack_pack_array(&m.pk, 0);
  msgpack_pack_int(&m.pk, 2);
  mp_fails(&m, "map keys must be strings");
  mp_init(&m);
  msgpack_pack_map(&m.pk, 1);
  msgpack_pack_bin(&m.pk, 1);
  msgpack_pack_bin_body(&m.pk, "k", 1);
  msgpack_pack_int(&m.pk, 2);
  mp_fails(&m, "");
  /* a map value that is a map is fine; its own keys are checked too */
  mp_init(&m);
  msgpack_pack_map(&m.pk, 1);
  mp_str(&m, "a");
  msgpack_pack_map(&m.pk, 1);
  msgpack_pack_true(&m.pk);
  msgpack_pack_int(&m.pk, 2);
  mp_fails(&m, "map keys must be strings");

  /* duplicate keys, at the top and nested */
  mp_init(&m);
  msgpack_pack_map(&m.pk, 3);
  mp_str(&m, "a");
  msgpack_pack_int(&m.pk, 1);
  mp_str(&m, "b");
  msgpack_pack_int(&m.pk, 2);
  mp_str(&m, "a");
  msgpack_pack_int(&m.pk, 3);
  mp_fails(&m, "duplicate map key");
  mp_init(&m);
  msgpack_pack_array(&m.pk, 1);
  msgpack_pack_map(&m.pk, 2);
  mp_str(&m, "k");
  msgpack_pack_nil(&m.pk);
  mp_str(&m, "k");
  msgpack_pack_nil(&m.pk);
  mp_fails(&m, "duplicate map key");

  /* the empty key is a key like any other */
  mp_init(&m);
  msgpack_pack_map(&m.pk, 1);
  mp_str(&m, "");
  mp_str(&m, "");
  json_t *v = mp_ok(&m);
  mp_done(&m);
  assert_json_eq(v, "{\"\":\"\"}");
  json_decref(v);
  static const uint8_t empty_key_top[] = {0x81, 0xa0, 0xa0};
  v = decode_ok(CODEC_MSGPACK, empty_key_top, sizeof empty_key_top);
  assert_json_eq(v, "{\"\":\"\"}");
  json_decref(v);
  static const uint8_t empty_str[] = {0xa0};
  v = decode_ok(CODEC_MSGPACK, empty_str, sizeof empty_str);
  assert_json_eq(v, "\"\"");
  json_decref(v);

  /* invalid UTF-8 and NUL in keys */
  mp_init(&m);
  msgpack_pack_map(&m.pk, 1);
  mp_strn(&m, "\xff", 1);
  msgpack_pack_int(&m.pk, 2);
  mp_fails(&m, "map key is not valid UTF-8");
  mp_init(&m);
  msgpack_pack_map(&m.pk, 1);
  mp_strn(&m, "a\0b", 3);
  msgpack_pack_int(&m.pk, 2);
  mp_fails(&m, "map key contains a NUL byte");
}

static void test_mp_utf8(void **state) {
  static const struct {
    const char *s;
    size_t n;
  } good[] = {
      {"", 0},
      {"\0", 1},
      {"\x7f", 1},
      {"\xc2\x80", 2},         /* U+0080 */
      {"\xdf\xbf", 2},         /* U+07FF */
      {"\xe0\xa0\x80", 3},     /* U+0800 */
      {"\xed\x9f\xbf", 3},     /* U+D7FF */
      {"\xee\x80\x80", 3},     /* U+E000 */
      {"\xef\xbf\xbf", 3},     /* U+FFFF */
      {"\xf0\x90\x80\x80", 4}, /* U+10000 */
      {"\xf4\x8f\xbf\xbf", 4}, /* U+10FFFF */
      {"a\xe2\x82\xac"
       "b",
       5}, /* euro sign between ASCII */
  };
  static const struct {
    const char *s;
    size_t n;
  } bad[] = {
      {"\x80", 1}, /* lone continuation byte */
      {"\xbf", 1},
      {"\xc0\x80", 2},         /* overlong NUL */
      {"\xc1\xbf", 2},         /* overlong */
      {"\xe0\x9f\xbf", 3},     /* overlong 3-byte */
      {"\xf0\x8f\xbf\xbf", 4}, /* overlong 4-byte */
      {"\xed\xa0\x80", 3},     /* surrogate U+D800 */
      {"\xed\xbf\xbf", 3},     /* surrogate U+DFFF */
      {"\xf4\x90\x80\x80", 4}, /* U+110000 */
      {"\xf5\x80\x80\x80", 4},
      {"\xf8\x88\x80\x80\x80", 5}, /* 5-byte form */
      {"\xfe", 1},
      {"\xff", 1},
      {"\xe2\x82", 2},       /* truncated */
      {"ab\xf0\x9f\x98", 5}, /* truncated at the end */
      {"\xc2"
       "a",
       2}, /* bad continuation */
      {"\xe2\x28\xa1", 3},
  };
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
    mp_t m;
    mp_init(&m);
    mp_strn(&m, good[i].s, good[i].n);
    json_t *v = mp_ok(&m);
    mp_done(&m);
    assert_int_equal(json_string_length(v), good[i].n);
    assert_memory_equal(json_string_value(v), good[i].s, good[i].n);
    json_decref(v);
  }
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    mp_t m;
    mp_init(&m);
    msgpack_pack_map(&m.pk, 1);
    mp_str(&m, "body");
    mp_strn(&m, bad[i].s, bad[i].n);
    mp_fails(&m, "string is not valid UTF-8");
  }
}

static void test_mp_numbers(void **state) {
  mp_t m;
  mp_init(&m);
  msgpack_pack_uint64(&m.pk, (uint64_t)INT64_MAX + 1);
  mp_fails(&m, "out of range");
  mp_init(&m);
  msgpack_pack_array(&m.pk, 1);
  msgpack_pack_uint64(&m.pk, UINT64_MAX);
  mp_fails(&m, "out of range");
  mp_init(&m);
  msgpack_pack_double(&m.pk, NAN);
  mp_fails(&m, "non-finite");
  mp_init(&m);
  msgpack_pack_double(&m.pk, -INFINITY);
  mp_fails(&m, "non-finite");
  mp_init(&m);
  msgpack_pack_float(&m.pk, INFINITY);
  mp_fails(&m, "non-finite");
}

static void test_mp_framing_errors(void **state) {
  decode_fails(CODEC_MSGPACK, "", 0, "truncated");
  static const uint8_t c1[] = {0xc1};
  decode_fails(CODEC_MSGPACK, c1, 1, "invalid MessagePack type byte 0xc1");
  static const uint8_t c1_inside[] = {0x92, 0x01, 0xc1};
  decode_fails(CODEC_MSGPACK, c1_inside, sizeof c1_inside, "0xc1");

  /* trailing bytes: garbage, and a second complete value */
  static const uint8_t trailing[] = {0x80, 0x00};
  decode_fails(CODEC_MSGPACK, trailing, sizeof trailing, "1 trailing bytes");
  static const uint8_t two_maps[] = {0x81, 0xa1, 'a', 0x01, 0x81, 0xa1, 'b', 0x02};
  decode_fails(CODEC_MSGPACK, two_maps, sizeof two_maps, "4 trailing bytes");

  /* every proper prefix of a valid document is truncated */
  mp_t m;
  mp_init(&m);
  msgpack_pack_map(&m.pk, 3);
  mp_str(&m, "id");
  msgpack_pack_uint64(&m.pk, 1ull << 40);
  mp_str(&m, "body");
  msgpack_pack_array(&m.pk, 2);
  msgpack_pack_double(&m.pk, 2.5);
  mp_str(&m, "a string longer than thirty-one bytes");
  mp_str(&m, "x");
  msgpack_pack_float(&m.pk, 1.0f);
  json_decref(mp_ok(&m));
  for (size_t n = 0; n < m.sb.size; n++) decode_fails(CODEC_MSGPACK, m.sb.data, n, "truncated");
  mp_done(&m);

  /* announced sizes far beyond the input are refused before anything is allocated (msgpack-c alone
   * would try to malloc count * sizeof(msgpack_object) first; under ASan that aborts) */
  static const uint8_t huge_array[] = {0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0};
  decode_fails(CODEC_MSGPACK, huge_array, sizeof huge_array, "truncated");
  static const uint8_t huge_map[] = {0xdf, 0xff, 0xff, 0xff, 0xff, 0xa1, 'k', 0xc0};
  decode_fails(CODEC_MSGPACK, huge_map, sizeof huge_map, "truncated");
  static const uint8_t nested_huge[] = {0x91, 0xdd, 0x0f, 0xff, 0xff, 0xff, 0x91, 0xdc, 0xff, 0xff};
  decode_fails(CODEC_MSGPACK, nested_huge, sizeof nested_huge, "truncated");
  static const uint8_t arr16_short[] = {0xdc, 0x00, 0x03, 0x01, 0x02};
  decode_fails(CODEC_MSGPACK, arr16_short, sizeof arr16_short, "truncated");
  static const uint8_t map_short[] = {0x82, 0xa1, 'a', 0x01, 0xa1, 'b'};
  decode_fails(CODEC_MSGPACK, map_short, sizeof map_short, "truncated");
  static const uint8_t str32_huge[] = {0xdb, 0xff, 0xff, 0xff, 0xff, 'a'};
  decode_fails(CODEC_MSGPACK, str32_huge, sizeof str32_huge, "truncated");
  static const uint8_t uint64_short[] = {0xcf, 0x00, 0x00};
  decode_fails(CODEC_MSGPACK, uint64_short, sizeof uint64_short, "truncated");
}

static void test_mp_depth(void **state) {
  uint8_t b[40];
  /* 32 nested arrays around nil: fine; 33: refused */
  memset(b, 0x91, 32);
  b[32] = 0xc0;
  json_t *v = decode_ok(CODEC_MSGPACK, b, 33);
  char *s = encode_json(v);
  char expected[32 * 2 + 5];
  memset(expected, '[', 32);
  memcpy(expected + 32, "null", 4);
  memset(expected + 36, ']', 32);
  expected[68] = 0;
  assert_string_equal(s, expected);
  free(s);
  json_decref(v);
  memset(b, 0x91, 33);
  b[33] = 0xc0;
  decode_fails(CODEC_MSGPACK, b, 34, "nesting deeper than 32");
  /* an empty container is a level too */
  memset(b, 0x91, 32);
  b[32] = 0x90;
  decode_fails(CODEC_MSGPACK, b, 33, "nesting deeper than 32");
  b[32] = 0x80;
  decode_fails(CODEC_MSGPACK, b, 33, "nesting deeper than 32");

  /* maps: {"k": {"k": ... 0}} */
  mp_t m;
  for (int depth = 32; depth <= 33; depth++) {
    mp_init(&m);
    msgpack_pack_array(&m.pk, 2);
    msgpack_pack_int(&m.pk, 1); /* the deep branch is not the first element */
    for (int i = 1; i < depth; i++) {
      msgpack_pack_map(&m.pk, 1);
      mp_str(&m, "k");
    }
    msgpack_pack_int(&m.pk, 0);
    if (depth == 32) {
      json_decref(mp_ok(&m));
      mp_done(&m);
    } else {
      mp_fails(&m, "nesting deeper than 32");
    }
  }
}

static void test_err_buffer(void **state) {
  json_t *v = (json_t *)1;
  assert_int_equal(codec_decode(CODEC_JSON, (const uint8_t *)"{", 1, &v, NULL, 0), PERR_BAD_FRAME);
  assert_null(v);
  static const uint8_t c1[] = {0xc1};
  assert_int_equal(codec_decode(CODEC_MSGPACK, c1, 1, &v, NULL, 0), PERR_BAD_FRAME);
  char err[6] = "xxxxx";
  assert_int_equal(codec_decode(CODEC_MSGPACK, (const uint8_t *)"", 0, &v, err, 0), PERR_BAD_FRAME);
  assert_string_equal(err, "xxxxx"); /* errlen 0: untouched */
  assert_int_equal(codec_decode(CODEC_MSGPACK, (const uint8_t *)"", 0, &v, err, sizeof err), PERR_BAD_FRAME);
  assert_string_equal(err, "trunc");
  assert_int_equal(codec_decode((codec_t)7, (const uint8_t *)"{}", 2, &v, err, sizeof err), PERR_BAD_FRAME);
  assert_null(v);
}

/* Found by tests/fuzz/fuzz_ws: jansson's message quotes the bytes near the error, which may end inside a
 * UTF-8 sequence (or be cut there by errlen); the message goes into an error reply's msg, and a text frame
 * must be UTF-8. Every message must be valid UTF-8, whatever the input and errlen. */
static void test_err_utf8(void **state) {
  static const char *inputs[] = {"\"\\u12\xc3\xa9\"", "{\"op\":\"se\\ude0\xd0\x90\"}",
                                 "\"\xc3\xa9\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\\u12g\""};
  for (size_t i = 0; i < sizeof inputs / sizeof *inputs; i++)
    for (size_t len = 1; len <= 128; len++) {
      char err[128];
      json_t *v = NULL;
      assert_int_equal(codec_decode(CODEC_JSON, (const uint8_t *)inputs[i], strlen(inputs[i]), &v, err, len),
                       PERR_BAD_FRAME);
      json_t *s = json_string(err); /* NULL unless err is valid UTF-8 */
      if (!s) print_error("input %zu, errlen %zu: \"%s\" is not UTF-8\n", i, len, err);
      assert_non_null(s);
      json_decref(s);
    }
}

/* ---- encoding ------------------------------------------------------------------------------------ */

static void test_json_encode(void **state) {
  json_t *v = json_object();
  json_object_set_new(v, "b", json_integer(1));
  json_object_set_new(v, "a", json_pack("[bbn]", 1, 0));
  json_object_set_new(v, "c", json_stringn("\xc3\xa9\0\"\\/\n", 7));
  json_object_set_new(v, "d", json_real(1.5));
  json_object_set_new(v, "e", json_real(1.0));
  json_object_set_new(v, "f", json_integer(INT64_MIN));
  json_object_set_new(v, "g", json_real(0.1));
  json_object_set_new(v, "h", json_object());
  json_object_set_new(v, "i", json_array());

  buf_t b = BUF_INIT;
  assert_int_equal(buf_append(&b, "prefix:", 7), 0); /* codec_encode appends */
  assert_int_equal(codec_encode(CODEC_JSON, v, &b), 0);
  const char *expected = "prefix:{\"b\":1,\"a\":[true,false,null],\"c\":\"\xc3\xa9\\u0000\\\"\\\\/\\n\","
                         "\"d\":1.5,\"e\":1.0,\"f\":-9223372036854775808,\"g\":0.10000000000000001,"
                         "\"h\":{},\"i\":[]}";
  assert_int_equal(b.len, strlen(expected));
  assert_memory_equal(b.data, expected, b.len);
  assert_int_equal(codec_json_size(v), b.len - 7);
  buf_free(&b);
  json_decref(v);

  /* scalars at the top */
  v = json_string("x");
  char *s = encode_json(v);
  assert_string_equal(s, "\"x\"");
  free(s);
  assert_int_equal(codec_json_size(v), 3);
  json_decref(v);
  assert_int_equal(codec_json_size(json_null()), 4);
  assert_int_equal(codec_json_size(NULL), 0);
}

static void test_mp_encode(void **state) {
  json_t *v = json_object();
  json_object_set_new(v, "a", json_integer(1));
  json_object_set_new(v, "b", json_pack("[bn]", 1));
  json_object_set_new(v, "c", json_string("x"));
  json_object_set_new(v, "d", json_real(1.5));
  json_object_set_new(v, "e", json_integer(-1));
  json_object_set_new(v, "f", json_integer(300));
  json_object_set_new(v, "g", json_integer(INT64_MIN));
  json_object_set_new(v, "h", json_false());
  json_object_set_new(v, "\xc3\xa9", json_object());
  static const uint8_t expected[] = {
      0x89,                                           /* map of 9 */
      0xa1, 'a',  0x01,                               /* "a": 1 */
      0xa1, 'b',  0x92, 0xc3, 0xc0,                   /* "b": [true, nil] */
      0xa1, 'c',  0xa1, 'x',                          /* "c": "x" */
      0xa1, 'd',  0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0, /* "d": 1.5 (float 64) */
      0xa1, 'e',  0xff,                               /* "e": -1 */
      0xa1, 'f',  0xcd, 0x01, 0x2c,                   /* "f": 300 (uint 16) */
      0xa1, 'g',  0xd3, 0x80, 0,    0, 0, 0, 0, 0, 0, /* "g": INT64_MIN */
      0xa1, 'h',  0xc2,                               /* "h": false */
      0xa2, 0xc3, 0xa9, 0x80,                         /* "é": {} */
  };
  buf_t b = BUF_INIT;
  assert_int_equal(buf_putc(&b, 0xee), 0); /* codec_encode appends */
  assert_int_equal(codec_encode(CODEC_MSGPACK, v, &b), 0);
  assert_int_equal(b.len, 1 + sizeof expected);
  assert_int_equal(b.data[0], 0xee);
  assert_memory_equal(b.data + 1, expected, sizeof expected);
  buf_free(&b);
  json_decref(v);

  /* strings with NUL bytes and keys keep their length */
  v = json_object();
  json_object_set_new(v, "s", json_stringn("a\0b", 3));
  assert_int_equal(codec_encode(CODEC_MSGPACK, v, &b), 0);
  static const uint8_t nul[] = {0x81, 0xa1, 's', 0xa3, 'a', 0, 'b'};
  assert_int_equal(b.len, sizeof nul);
  assert_memory_equal(b.data, nul, sizeof nul);
  buf_free(&b);
  json_decref(v);
}

static void test_encode_errors(void **state) {
  buf_t b = BUF_INIT;
  assert_int_equal(buf_append(&b, "keep", 4), 0);
  json_t *v = json_integer(1);
  assert_int_equal(codec_encode((codec_t)5, v, &b), -EINVAL);
  assert_int_equal(codec_encode(CODEC_JSON, NULL, &b), -EINVAL);
  assert_null(codec_frame((codec_t)5, v, 0));
  json_decref(v);

  /* a cyclic tree fails (and leaves the buffer as it was) instead of recursing forever */
  json_t *a = json_array(), *c = json_array();
  json_array_append(a, c);
  json_array_append(c, a);
  assert_int_equal(codec_encode(CODEC_MSGPACK, a, &b), -EINVAL);
  assert_int_equal(codec_encode(CODEC_JSON, a, &b), -EINVAL);
  assert_int_equal(codec_json_size(a), 0);
  assert_null(codec_frame(CODEC_MSGPACK, a, 0));
  assert_int_equal(b.len, 4);
  assert_memory_equal(b.data, "keep", 4);
  json_array_clear(c);
  json_decref(c);
  json_decref(a);
  buf_free(&b);
}

/* ---- round trips --------------------------------------------------------------------------------- */

static const char *const corpus[] = {
    "{}",
    "[]",
    "null",
    "0",
    "-1",
    "9223372036854775807",
    "-9223372036854775808",
    "\"\"",
    "{\"id\":1,\"op\":\"hello\",\"token\":\"eyJhbGciOiJIUzI1NiJ9.e30.sig\",\"client\":\"sdk/1.0\"}",
    "{\"id\":\"r-7\",\"op\":\"send\",\"room\":\"lobby\",\"body\":{\"text\":\"hi\",\"n\":[1,2.5,-3,true,false,"
    "null,{}],\"e\":\"\"},\"cmid\":\"7f1c2a\"}",
    "{\"ev\":\"message\",\"room\":\"a:b@c.d-e_f\",\"seq\":42,\"mid\":\"00000191b3c1a2f40001\","
    "\"ts\":1732860000123,\"from\":{\"id\":\"u42\",\"name\":\"Ann\"},\"body\":\"hello\",\"cmid\":\"7f1c2a\"}",
    "{\"re\":null,\"err\":{\"code\":\"bad_frame\",\"msg\":\"frame is not a map\"}}",
    "{\"z\":1,\"y\":2,\"x\":3,\"w\":[[[[[[]]]]]]}",
    "{\"unicode\":\"h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80 "
    "\xf4\x8f\xbf\xbf\",\"esc\":\"\\u0000\\u001F\\\"\\\\\"}",
    "[0.10000000000000001,1.0,-0.5,1.0000000000000001e300,4.9406564584124654e-324,127,128,255,256,65535,"
    "65536,4294967295,4294967296,-32,-33,-128,-129,-32768,-32769,-2147483648,-2147483649]",
};

static void test_roundtrip_json_msgpack_json(void **state) {
  for (size_t i = 0; i < sizeof corpus / sizeof corpus[0]; i++) {
    json_t *t1 = json_ok(corpus[i]);
    buf_t mp = BUF_INIT;
    assert_int_equal(codec_encode(CODEC_MSGPACK, t1, &mp), 0);
    json_t *t2 = decode_ok(CODEC_MSGPACK, mp.data, mp.len);
    assert_true(json_equal(t1, t2));
    /* the JSON text comes back byte for byte (key order, number forms) */
    char *s = encode_json(t2);
    assert_string_equal(s, corpus[i]);
    assert_int_equal(codec_json_size(t2), strlen(corpus[i]));
    free(s);
    /* and the MessagePack encoding is stable */
    buf_t mp2 = BUF_INIT;
    assert_int_equal(codec_encode(CODEC_MSGPACK, t2, &mp2), 0);
    assert_int_equal(mp2.len, mp.len);
    assert_memory_equal(mp2.data, mp.data, mp.len);
    buf_free(&mp);
    buf_free(&mp2);
    json_decref(t1);
    json_decref(t2);
  }
}

static void test_roundtrip_msgpack_json_msgpack(void **state) {
  mp_t m;
  mp_init(&m);
  msgpack_pack_map(&m.pk, 5);
  mp_str(&m, "ev");
  mp_str(&m, "message");
  mp_str(&m, "seq");
  msgpack_pack_int64(&m.pk, 1ll << 33);
  mp_str(&m, "neg");
  msgpack_pack_int64(&m.pk, -70000);
  mp_str(&m, "body");
  msgpack_pack_array(&m.pk, 4);
  msgpack_pack_double(&m.pk, 3.25);
  msgpack_pack_nil(&m.pk);
  msgpack_pack_true(&m.pk);
  msgpack_pack_map(&m.pk, 0);
  mp_str(&m, "long");
  char big[70000];
  memset(big, 'q', sizeof big);
  mp_strn(&m, big, sizeof big);

  json_t *t1 = mp_ok(&m);
  buf_t js = BUF_INIT;
  assert_int_equal(codec_encode(CODEC_JSON, t1, &js), 0);
  json_t *t2 = decode_ok(CODEC_JSON, js.data, js.len);
  assert_true(json_equal(t1, t2));
  buf_t back = BUF_INIT;
  assert_int_equal(codec_encode(CODEC_MSGPACK, t2, &back), 0);
  assert_int_equal(back.len, m.sb.size);
  assert_memory_equal(back.data, m.sb.data, back.len);
  buf_free(&js);
  buf_free(&back);
  json_decref(t1);
  json_decref(t2);
  mp_done(&m);
}

/* ---- frames -------------------------------------------------------------------------------------- */

/* The WebSocket bytes of f, as net/ writes them (the codec makes the payload; net/ws.h frames it). */
static const uint8_t *wsb(frame_t *f) {
  ws_frame(f);
  return ws_bytes(f);
}
static size_t wsl(frame_t *f) {
  ws_frame(f);
  return ws_len(f);
}

/* Check f is one final unmasked frame of `opcode` whose payload is the codec's encoding of v. */
static void check_frame(frame_t *f, codec_t c, const json_t *v, uint8_t opcode, size_t expect_len) {
  buf_t enc = BUF_INIT;
  assert_int_equal(codec_encode(c, v, &enc), 0);
  assert_int_equal(enc.len, expect_len);
  assert_int_equal(wsb(f)[0], 0x80 | opcode);
  size_t hlen, len;
  uint8_t b1 = wsb(f)[1];
  assert_int_equal(b1 & 0x80, 0); /* unmasked */
  if (expect_len <= 125) {
    hlen = 2;
    len = b1;
  } else if (expect_len <= 65535) {
    assert_int_equal(b1, 126);
    hlen = 4;
    len = (size_t)wsb(f)[2] << 8 | wsb(f)[3];
  } else {
    assert_int_equal(b1, 127);
    hlen = 10;
    len = 0;
    for (int i = 0; i < 8; i++) len = len << 8 | wsb(f)[2 + i];
  }
  assert_int_equal(len, expect_len);
  assert_int_equal(wsl(f), hlen + len);
  assert_int_equal(f->len, len);
  assert_memory_equal(wsb(f) + hlen, enc.data, len);
  assert_int_equal(f->refs, 1);
  buf_free(&enc);
}

/* A JSON string whose JSON encoding is exactly len bytes (len >= 2). */
static json_t *json_string_of_encoded_len(size_t len) {
  char *s = malloc(len - 2);
  memset(s, 'x', len - 2);
  json_t *v = json_stringn(s, len - 2);
  free(s);
  return v;
}

static void test_frame_json(void **state) {
  /* the shortest encoding is 1 byte: a payload of 0 bytes cannot come out of an encoder */
  json_t *one = json_integer(7);
  frame_t *f = codec_frame(CODEC_JSON, one, 0);
  assert_non_null(f);
  static const uint8_t exact[] = {0x81, 0x01, '7'};
  assert_int_equal(wsl(f), sizeof exact);
  assert_memory_equal(wsb(f), exact, sizeof exact);
  frame_unref(f);
  json_decref(one);

  size_t lens[] = {2, 125, 126, 127, 65535, 65536, 65537, 200000};
  for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
    json_t *v = json_string_of_encoded_len(lens[i]);
    f = codec_frame(CODEC_JSON, v, 0);
    assert_non_null(f);
    check_frame(f, CODEC_JSON, v, 0x1, lens[i]);
    frame_unref(f);
    json_decref(v);
  }

  /* exact header bytes at the boundaries */
  json_t *v = json_string_of_encoded_len(125);
  f = codec_frame(CODEC_JSON, v, 0);
  assert_int_equal(wsb(f)[1], 125);
  frame_unref(f);
  json_decref(v);
  v = json_string_of_encoded_len(126);
  f = codec_frame(CODEC_JSON, v, 0);
  static const uint8_t h126[] = {0x81, 126, 0x00, 126};
  assert_memory_equal(wsb(f), h126, 4);
  frame_unref(f);
  json_decref(v);
  v = json_string_of_encoded_len(65535);
  f = codec_frame(CODEC_JSON, v, 0);
  static const uint8_t h65535[] = {0x81, 126, 0xff, 0xff};
  assert_memory_equal(wsb(f), h65535, 4);
  frame_unref(f);
  json_decref(v);
  v = json_string_of_encoded_len(65536);
  f = codec_frame(CODEC_JSON, v, 0);
  static const uint8_t h65536[] = {0x81, 127, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00};
  assert_memory_equal(wsb(f), h65536, 10);
  frame_unref(f);
  json_decref(v);
}

static void test_frame_msgpack(void **state) {
  json_t *nil = json_null();
  frame_t *f = codec_frame(CODEC_MSGPACK, nil, 0);
  static const uint8_t exact[] = {0x82, 0x01, 0xc0};
  assert_int_equal(wsl(f), sizeof exact);
  assert_memory_equal(wsb(f), exact, sizeof exact);
  frame_unref(f);

  /* [str] where the str body is k bytes: 1 (array) + str header + k */
  static const struct {
    size_t k, total;
  } cases[] = {
      {122, 125},     /* str8: 1 + 2 + 122 */
      {123, 126},     /* str8 */
      {124, 127},     /* str8 */
      {65531, 65535}, /* str16: 1 + 3 + 65531 */
      {65532, 65536}, /* str16 */
      {65536, 65542}, /* str32: 1 + 5 + 65536 */
  };
  char *body = malloc(70000);
  memset(body, 'm', 70000);
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    json_t *v = json_pack("[s#]", body, cases[i].k);
    f = codec_frame(CODEC_MSGPACK, v, 0);
    assert_non_null(f);
    check_frame(f, CODEC_MSGPACK, v, 0x2, cases[i].total);
    frame_unref(f);
    json_decref(v);
  }
  free(body);
}

static void test_frame_flags_and_scratch(void **state) {
  json_t *v = json_pack("{s:s,s:s}", "ev", "join", "room", "r");
  frame_t *f = codec_frame(CODEC_JSON, v, FRAME_EPHEMERAL);
  assert_int_equal(f->flags, FRAME_EPHEMERAL);
  assert_int_equal(f->refs, 1);
  frame_ref(f);
  assert_int_equal(f->refs, 2);
  frame_unref(f);
  frame_unref(f);
  f = codec_frame(CODEC_MSGPACK, v, 0);
  assert_int_equal(f->flags, FRAME_BINARY); /* a binary message: the transport's business */
  frame_unref(f);

  /* a large frame (scratch buffer released afterwards), then small ones reuse nothing stale */
  json_t *big = json_string_of_encoded_len(1 << 20);
  f = codec_frame(CODEC_JSON, big, 0);
  check_frame(f, CODEC_JSON, big, 0x1, 1 << 20);
  frame_unref(f);
  f = codec_frame(CODEC_JSON, v, 0);
  check_frame(f, CODEC_JSON, v, 0x1, strlen("{\"ev\":\"join\",\"room\":\"r\"}"));
  assert_memory_equal(wsb(f) + 2, "{\"ev\":\"join\",\"room\":\"r\"}", f->len);
  frame_unref(f);
  f = codec_frame(CODEC_MSGPACK, v, 0);
  check_frame(f, CODEC_MSGPACK, v, 0x2, 1 + 3 + 5 + 5 + 2);
  frame_unref(f);
  json_decref(big);
  json_decref(v);
}

/* The JSON encoder is our own (speed); it must write exactly what jansson's dump writes. */
static void test_json_encoder_matches_jansson(void **state) {
  const char *docs[] = {
      "{\"a\":1,\"b\":[true,false,null],\"c\":{\"d\":\"e\"}}",
      "[0,-1,9223372036854775807,-9223372036854775808,1.5,-0.0,1e-7,123456789012345678901234567890.0]",
      "[1e300,2.5e-300,3.14159,100000000000000000000.0,0.1,1e21,1e-5]",
      "\"quote \\\" backslash \\\\ slash / tab\\t nl\\n cr\\r bs\\b ff\\f \\u0001\\u001f\\u007f é€😀\"",
      "{\"key\\n\\u0001\":\"v\\u0000\",\"\":{}}",
      "[[],{},[[[]]],\"\"]",
  };
  for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
    json_error_t e;
    json_t *v = json_loads(docs[i], JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
    if (!v) fail_msg("doc %zu does not parse: %s", i, e.text);
    char *want = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(17));
    buf_t b = BUF_INIT;
    assert_int_equal(codec_encode(CODEC_JSON, v, &b), 0);
    assert_int_equal(b.len, strlen(want));
    assert_memory_equal(b.data, want, b.len);
    assert_int_equal(codec_json_size(v), strlen(want));
    free(want);
    buf_free(&b);
    json_decref(v);
  }
}

static void test_json_unescape(void **state) {
  (void)state;
  static const struct {
    const char *in;
    size_t took;
    const char *out;
  } cases[] = {
      {"\\n", 2, "\n"},
      {"\\\"", 2, "\""},
      {"\\/", 2, "/"},
      {"\\u00e9", 6, "\xc3\xa9"},
      {"\\u20ac", 6, "\xe2\x82\xac"},
      {"\\ud83d\\ude00", 12, "\xf0\x9f\x98\x80"},
      {"\\u0041", 6, "A"},
      {"\\x", 0, ""},
      {"\\u12", 0, ""},
      {"\\ude00", 0, ""},
      {"\\ud83d", 0, ""},
      {"\\ud83d\\u0041", 0, ""},
      {"\\uzzzz", 0, ""},
      {"\\", 0, ""},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const uint8_t *p = (const uint8_t *)cases[i].in;
    uint8_t out[4];
    size_t n = 0, took = codec_json_unescape(p, p + strlen(cases[i].in), out, &n);
    assert_int_equal(took, cases[i].took);
    if (took) {
      assert_int_equal(n, strlen(cases[i].out));
      assert_memory_equal(out, cases[i].out, n);
    }
  }
  uint8_t out[4];
  size_t n; /* "\u0000" decodes to a NUL byte */
  assert_int_equal(codec_json_unescape((const uint8_t *)"\\u0000", (const uint8_t *)"\\u0000" + 6, out, &n),
                   6);
  assert_int_equal(n, 1);
  assert_int_equal(out[0], 0);
}

/* ---- codec_peek_id ----------------------------------------------------------------------------- */

/* The id read from p (NULL: none) must be the integer want_i, or the string want_s. */
static void peek_is(codec_t c, const char *p, size_t n, const char *want_s, long long want_i, bool none) {
  json_t *id = codec_peek_id(c, (const uint8_t *)p, n);
  if (none) {
    assert_null(id);
    return;
  }
  assert_non_null(id);
  if (want_s) {
    assert_true(json_is_string(id));
    assert_string_equal(json_string_value(id), want_s);
  } else {
    assert_true(json_is_integer(id));
    assert_int_equal(json_integer_value(id), want_i);
  }
  json_decref(id);
}
#define PEEK_INT(c, lit, v) peek_is(c, lit, sizeof lit - 1, NULL, v, false)
#define PEEK_STR(c, lit, v) peek_is(c, lit, sizeof lit - 1, v, 0, false)
#define PEEK_NONE(c, lit)   peek_is(c, lit, sizeof lit - 1, NULL, 0, true)

static void test_peek_id_json(void **state) {
  (void)state;
  PEEK_INT(CODEC_JSON, "{\"id\":7,\"op\":\"ping\"}", 7);
  PEEK_INT(CODEC_JSON, "{\"id\":7,\"op\":", 7);
  PEEK_INT(CODEC_JSON, " {\"a\":[1,{\"}\":\"]\"}],\"id\" : -12 ,\"b\":}", -12);
  PEEK_STR(CODEC_JSON, "{\"op\":\"x\",\"id\":\"r\\u0041\"", "rA");
  PEEK_INT(CODEC_JSON, "{\"\\u0069d\":5}", 5);
  PEEK_INT(CODEC_JSON, "{\"id\":1} trailing", 1);
  PEEK_NONE(CODEC_JSON, "");
  PEEK_NONE(CODEC_JSON, "[{\"id\":1}]");
  PEEK_NONE(CODEC_JSON, "{\"id\":1.5}");
  PEEK_NONE(CODEC_JSON, "{\"id\":[1]}");
  PEEK_NONE(CODEC_JSON, "{\"id\":99999999999999999999}");
  PEEK_NONE(CODEC_JSON, "{\"id\":1,\"id\":1}");
  PEEK_NONE(CODEC_JSON, "{\"a\":[,\"id\":1}"); /* unreadable before the id: "[" never closes */
  PEEK_NONE(CODEC_JSON, "{\"id\":\"\\ud800\"}");
  PEEK_NONE(CODEC_JSON, "{\"ida\":1}");
}

static void test_peek_id_msgpack(void **state) {
  (void)state;
  PEEK_INT(CODEC_MSGPACK, "\x82\xa2id\x07\xa2op\xa4ping", 7);
  PEEK_INT(CODEC_MSGPACK, "\x82\xa2op\xc4\x02\x00\x01\xa2id\xcd\x01\x00", 256);          /* bin before */
  PEEK_INT(CODEC_MSGPACK, "\x82\xa2op\xd6\x05\x01\x02\x03\x04\xa2id\xd1\xff\x00", -256); /* fixext */
  PEEK_INT(CODEC_MSGPACK, "\x81\xa2id\xd3\x80\x00\x00\x00\x00\x00\x00\x00", INT64_MIN);
  PEEK_INT(CODEC_MSGPACK, "\x81\xa2id\xcf\x7f\xff\xff\xff\xff\xff\xff\xff", INT64_MAX);
  PEEK_INT(CODEC_MSGPACK, "\x81\xa2id\xe0", -32);
  PEEK_STR(CODEC_MSGPACK, "\x82\xd9\x02id\xa3r-1\xa2op\xc1", "r-1");
  PEEK_STR(CODEC_MSGPACK, "\xde\x00\x01\xa2id\xda\x00\x01x", "x");
  PEEK_INT(CODEC_MSGPACK, "\x83\xa2id\x01\x01\x02\xa2op\xc0", 1);             /* a non-string key after it */
  PEEK_NONE(CODEC_MSGPACK, "\x81\xa2id\xcf\x80\x00\x00\x00\x00\x00\x00\x00"); /* > int64 */
  PEEK_NONE(CODEC_MSGPACK, "\x81\xa2id\xc4\x01x");                            /* bin id */
  PEEK_NONE(CODEC_MSGPACK, "\x81\xa2id\xa2\xff\xfe");                         /* not UTF-8 */
  PEEK_NONE(CODEC_MSGPACK, "\x81\xa2id\xcb\x3f\xf0\x00\x00\x00\x00\x00\x00"); /* float */
  PEEK_NONE(CODEC_MSGPACK, "\x82\xa2id\x01\xa2id\x02");
  PEEK_NONE(CODEC_MSGPACK, "\x82\xa2op\xc4\xff\x00\xa2id\x01"); /* truncated before the id */
  PEEK_NONE(CODEC_MSGPACK, "\x92\xa2id\x01");
  PEEK_NONE(CODEC_MSGPACK, "\xdf\xff\xff\xff\xff");
  PEEK_NONE(CODEC_MSGPACK, "");
}

/* Every prefix of a frame is read without reading past its end (ASan) and gives the id or nothing. */
static void test_peek_id_prefixes(void **state) {
  (void)state;
  static const char mp[] = "\x84\xa1x\x92\xc7\x02\x01"
                           "ab\x81\xa1k\xdc\x00\x01\xc0\xa2id\xd2\x00\x01\x00\x00"
                           "\xa2op\xa4ping\xa1y\xdb\x00\x00\x00\x01z";
  static const char js[] = "{\"x\":[{\"k\":\"a\\\"]}\"},null],\"id\":\"abc\",\"op\":\"ping\",\"y\":true}";
  for (size_t n = 0; n <= sizeof mp - 1; n++) {
    char *p = malloc(n ? n : 1); /* exactly n bytes: ASan sees any read past them */
    memcpy(p, mp, n);
    json_t *id = codec_peek_id(CODEC_MSGPACK, (uint8_t *)p, n);
    assert_true(!id || json_integer_value(id) == 65536);
    json_decref(id);
    free(p);
  }
  for (size_t n = 0; n <= sizeof js - 1; n++) {
    char *p = malloc(n ? n : 1);
    memcpy(p, js, n);
    json_t *id = codec_peek_id(CODEC_JSON, (uint8_t *)p, n);
    assert_true(!id || !strcmp(json_string_value(id), "abc"));
    json_decref(id);
    free(p);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_json_encoder_matches_jansson),
      cmocka_unit_test(test_subprotocol),
      cmocka_unit_test(test_json_decode_values),
      cmocka_unit_test(test_json_decode_errors),
      cmocka_unit_test(test_json_depth),
      cmocka_unit_test(test_mp_decode_values),
      cmocka_unit_test(test_mp_bin_ext),
      cmocka_unit_test(test_mp_keys),
      cmocka_unit_test(test_mp_utf8),
      cmocka_unit_test(test_mp_numbers),
      cmocka_unit_test(test_mp_framing_errors),
      cmocka_unit_test(test_mp_depth),
      cmocka_unit_test(test_err_buffer),
      cmocka_unit_test(test_err_utf8),
      cmocka_unit_test(test_json_encode),
      cmocka_unit_test(test_mp_encode),
      cmocka_unit_test(test_encode_errors),
      cmocka_unit_test(test_roundtrip_json_msgpack_json),
      cmocka_unit_test(test_roundtrip_msgpack_json_msgpack),
      cmocka_unit_test(test_frame_json),
      cmocka_unit_test(test_frame_msgpack),
      cmocka_unit_test(test_frame_flags_and_scratch),
      cmocka_unit_test(test_json_unescape),
      cmocka_unit_test(test_peek_id_json),
      cmocka_unit_test(test_peek_id_msgpack),
      cmocka_unit_test(test_peek_id_prefixes),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
