/* test_kvstore: hooks/kvstore without Lua — values of every type, binary keys, the bounds (keys, bytes, key
 * and value length) exactly at and one past each limit, failures that change nothing, incr, iteration. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the four above, which it needs */

#include "hooks/kvstore.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct kvstore_value vint(int64_t i) { return (struct kvstore_value){.type = KVSTORE_INT, .i = i}; }
static struct kvstore_value vstr(const char *s, size_t n) {
  return (struct kvstore_value){.type = KVSTORE_STRING, .s = s, .slen = n};
}

static int set_int(struct kvstore *kv, const char *k, int64_t i) {
  struct kvstore_value v = vint(i);
  return kvstore_set(kv, k, strlen(k), &v);
}
static int set_str(struct kvstore *kv, const char *k, size_t kn, const char *s, size_t n) {
  struct kvstore_value v = vstr(s, n);
  return kvstore_set(kv, k, kn, &v);
}

/* The per-entry overhead the byte bound counts, measured on an empty store. */
static size_t overhead(void) {
  struct kvstore *kv = kvstore_new();
  assert_int_equal(set_int(kv, "a", 1), 0);
  size_t oh = kvstore_bytes(kv) - 1;
  kvstore_free(kv);
  assert_true(oh >= sizeof(void *) && oh < 256);
  return oh;
}

static void test_types(void **state) {
  (void)state;
  struct kvstore *kv = kvstore_new();
  struct kvstore_value v;
  assert_false(kvstore_get(kv, "x", 1, &v)); /* empty store */
  kvstore_del(kv, "x", 1);

  assert_int_equal(set_int(kv, "i", INT64_MIN), 0);
  struct kvstore_value f = {.type = KVSTORE_FLOAT, .f = 2.5};
  assert_int_equal(kvstore_set(kv, "f", 1, &f), 0);
  struct kvstore_value b = {.type = KVSTORE_BOOL, .i = 7};
  assert_int_equal(kvstore_set(kv, "b", 1, &b), 0);
  char bin[] = {'a', 0, 'b'};
  assert_int_equal(set_str(kv, bin, 3, bin, 3), 0); /* NUL in key and value */
  assert_int_equal(set_str(kv, "", 0, "", 0), 0);   /* empty key, empty string */
  assert_int_equal(kvstore_count(kv), 5);

  assert_true(kvstore_get(kv, "i", 1, &v));
  assert_int_equal(v.type, KVSTORE_INT);
  assert_true(v.i == INT64_MIN);
  assert_true(kvstore_get(kv, "f", 1, &v));
  assert_int_equal(v.type, KVSTORE_FLOAT);
  assert_true(v.f == 2.5);
  assert_true(kvstore_get(kv, "b", 1, &v));
  assert_int_equal(v.type, KVSTORE_BOOL);
  assert_int_equal(v.i, 1); /* normalised */
  assert_true(kvstore_get(kv, bin, 3, &v));
  assert_int_equal(v.type, KVSTORE_STRING);
  assert_int_equal(v.slen, 3);
  assert_memory_equal(v.s, bin, 3);
  assert_int_equal(v.s[3], 0);
  assert_false(kvstore_get(kv, "a", 1, &v)); /* a key is all its bytes */
  assert_false(kvstore_get(kv, bin, 2, &v));
  assert_true(kvstore_get(kv, "", 0, &v));
  assert_int_equal(v.type, KVSTORE_STRING);
  assert_int_equal(v.slen, 0);

  /* the store keeps its own copy */
  char val[] = "hello";
  assert_int_equal(set_str(kv, "s", 1, val, 5), 0);
  val[0] = 'j';
  assert_true(kvstore_get(kv, "s", 1, &v));
  assert_memory_equal(v.s, "hello", 5);

  /* replacing changes type and gives back the old string's bytes */
  size_t before = kvstore_bytes(kv);
  assert_int_equal(set_int(kv, "s", 3), 0);
  assert_int_equal(kvstore_bytes(kv), before - 5);
  assert_true(kvstore_get(kv, "s", 1, &v));
  assert_int_equal(v.type, KVSTORE_INT);
  assert_int_equal(v.i, 3);
  assert_int_equal(set_str(kv, "s", 1, "abcdefgh", 8), 0);
  assert_int_equal(kvstore_bytes(kv), before + 3);
  assert_int_equal(kvstore_count(kv), 6);

  kvstore_del(kv, "s", 1);
  assert_false(kvstore_get(kv, "s", 1, &v));
  assert_int_equal(kvstore_count(kv), 5);
  kvstore_del(kv, "s", 1); /* absent: nothing */
  assert_int_equal(kvstore_count(kv), 5);
  kvstore_del(kv, "i", 1);
  kvstore_del(kv, "f", 1);
  kvstore_del(kv, "b", 1);
  kvstore_del(kv, bin, 3);
  kvstore_del(kv, "", 0);
  assert_int_equal(kvstore_count(kv), 0);
  assert_int_equal(kvstore_bytes(kv), 0);
  kvstore_free(kv);
  kvstore_free(NULL);
}

static void test_lengths(void **state) {
  (void)state;
  struct kvstore *kv = kvstore_new();
  char *big = malloc(KVSTORE_MAX_VALUE + 1);
  memset(big, 'k', KVSTORE_MAX_VALUE + 1);
  assert_int_equal(set_int(kv, "x", 0), 0);
  size_t bytes = kvstore_bytes(kv);

  assert_int_equal(set_str(kv, big, KVSTORE_MAX_KEY + 1, "v", 1), KVSTORE_E_KEY);
  assert_int_equal(set_str(kv, big, KVSTORE_MAX_KEY, "v", 1), 0);
  struct kvstore_value v;
  assert_true(kvstore_get(kv, big, KVSTORE_MAX_KEY, &v));
  assert_false(kvstore_get(kv, big, KVSTORE_MAX_KEY - 1, &v));

  assert_int_equal(set_str(kv, "x", 1, big, KVSTORE_MAX_VALUE + 1), KVSTORE_E_VALUE);
  assert_true(kvstore_get(kv, "x", 1, &v)); /* unchanged */
  assert_int_equal(v.type, KVSTORE_INT);
  assert_int_equal(set_str(kv, "x", 1, big, KVSTORE_MAX_VALUE), 0);
  assert_true(kvstore_get(kv, "x", 1, &v));
  assert_int_equal(v.slen, KVSTORE_MAX_VALUE);
  /* a long key is refused before anything else; numbers have no length */
  assert_int_equal(set_str(kv, big, KVSTORE_MAX_KEY + 1, big, KVSTORE_MAX_VALUE + 1), KVSTORE_E_KEY);
  struct kvstore_value n = {.type = KVSTORE_INT, .slen = KVSTORE_MAX_VALUE + 1};
  assert_int_equal(kvstore_set(kv, "n", 1, &n), 0);
  assert_int_equal(kvstore_count(kv), 3);
  assert_true(kvstore_bytes(kv) > bytes);
  free(big);
  kvstore_free(kv);
}

static void test_max_keys(void **state) {
  (void)state;
  struct kvstore *kv = kvstore_new();
  char k[32];
  for (int i = 0; i < KVSTORE_MAX_KEYS; i++) {
    snprintf(k, sizeof k, "key%d", i);
    assert_int_equal(set_int(kv, k, i), 0);
  }
  assert_int_equal(kvstore_count(kv), KVSTORE_MAX_KEYS);
  assert_int_equal(set_int(kv, "one more", 1), KVSTORE_E_FULL);
  struct kvstore_value v;
  assert_false(kvstore_get(kv, "one more", 8, &v));
  assert_int_equal(kvstore_count(kv), KVSTORE_MAX_KEYS);
  int64_t out = 0;
  assert_int_equal(kvstore_incr(kv, "one more", 8, 1, &out), KVSTORE_E_FULL);
  assert_int_equal(out, 0);
  /* existing keys still change */
  assert_int_equal(set_int(kv, "key7", -7), 0);
  assert_int_equal(set_str(kv, "key8", 4, "eight", 5), 0);
  assert_int_equal(kvstore_incr(kv, "key9", 4, 1, &out), 0);
  assert_int_equal(out, 10);
  /* every key is still there with its value (the table grew many times) */
  for (int i = 10; i < KVSTORE_MAX_KEYS; i++) {
    int n = snprintf(k, sizeof k, "key%d", i);
    assert_true(kvstore_get(kv, k, (size_t)n, &v));
    assert_int_equal(v.i, i);
  }
  /* a delete makes room for exactly one */
  kvstore_del(kv, "key0", 4);
  assert_int_equal(set_int(kv, "one more", 1), 0);
  assert_int_equal(set_int(kv, "two more", 2), KVSTORE_E_FULL);
  kvstore_free(kv);
}

static void test_max_bytes(void **state) {
  (void)state;
  const size_t oh = overhead();
  struct kvstore *kv = kvstore_new();
  char *big = malloc(KVSTORE_MAX_VALUE);
  memset(big, 'v', KVSTORE_MAX_VALUE);
  char k[16];
  /* fill with 3-byte keys and 64 KiB values while a whole one fits */
  size_t used = 0;
  int i = 0;
  while (used + 3 + KVSTORE_MAX_VALUE + oh <= KVSTORE_MAX_BYTES) {
    snprintf(k, sizeof k, "k%02d", i++);
    assert_int_equal(set_str(kv, k, 3, big, KVSTORE_MAX_VALUE), 0);
    used += 3 + KVSTORE_MAX_VALUE + oh;
    assert_int_equal(kvstore_bytes(kv), used);
  }
  /* the next one does not fit */
  snprintf(k, sizeof k, "k%02d", i);
  assert_int_equal(set_str(kv, k, 3, big, KVSTORE_MAX_VALUE), KVSTORE_E_FULL);
  assert_int_equal(kvstore_bytes(kv), used);
  /* one that fills the store to the byte fits; one byte more does not */
  size_t rest = KVSTORE_MAX_BYTES - used - 1 - oh;
  assert_true(rest < KVSTORE_MAX_VALUE);
  assert_int_equal(set_str(kv, "z", 1, big, rest + 1), KVSTORE_E_FULL);
  assert_int_equal(kvstore_count(kv), (size_t)i);
  assert_int_equal(set_str(kv, "z", 1, big, rest), 0);
  assert_int_equal(kvstore_bytes(kv), KVSTORE_MAX_BYTES);
  /* full: no new key, not even an integer under the empty key */
  assert_int_equal(set_int(kv, "", 0), KVSTORE_E_FULL);
  /* replacing: the same length fits, one byte more does not and keeps the old value */
  assert_int_equal(set_str(kv, "z", 1, big + 1, rest), 0);
  assert_int_equal(set_str(kv, "z", 1, big, rest + 1), KVSTORE_E_FULL);
  struct kvstore_value v;
  assert_true(kvstore_get(kv, "z", 1, &v));
  assert_int_equal(v.slen, rest);
  assert_int_equal(set_int(kv, "z", 5), 0); /* a number in place of the string frees its bytes */
  assert_int_equal(kvstore_bytes(kv), KVSTORE_MAX_BYTES - rest);
  /* and so does a delete */
  kvstore_del(kv, "k00", 3);
  assert_int_equal(kvstore_bytes(kv), KVSTORE_MAX_BYTES - rest - 3 - KVSTORE_MAX_VALUE - oh);
  assert_int_equal(set_str(kv, "k00", 3, big, KVSTORE_MAX_VALUE), 0);
  free(big);
  kvstore_free(kv);
}

static void test_incr(void **state) {
  (void)state;
  struct kvstore *kv = kvstore_new();
  int64_t out = 0;
  assert_int_equal(kvstore_incr(kv, "n", 1, 5, &out), 0); /* absent counts as 0 */
  assert_int_equal(out, 5);
  assert_int_equal(kvstore_incr(kv, "n", 1, -7, &out), 0);
  assert_int_equal(out, -2);
  struct kvstore_value v;
  assert_true(kvstore_get(kv, "n", 1, &v));
  assert_int_equal(v.type, KVSTORE_INT);
  assert_int_equal(v.i, -2);
  /* wraps around instead of overflowing */
  assert_int_equal(set_int(kv, "m", INT64_MAX), 0);
  assert_int_equal(kvstore_incr(kv, "m", 1, 1, &out), 0);
  assert_true(out == INT64_MIN);
  /* only integers */
  struct kvstore_value f = {.type = KVSTORE_FLOAT, .f = 1.0};
  assert_int_equal(kvstore_set(kv, "f", 1, &f), 0);
  out = 42;
  assert_int_equal(kvstore_incr(kv, "f", 1, 1, &out), KVSTORE_E_TYPE);
  assert_int_equal(out, 42);
  assert_true(kvstore_get(kv, "f", 1, &v));
  assert_int_equal(v.type, KVSTORE_FLOAT);
  assert_int_equal(set_str(kv, "s", 1, "1", 1), 0);
  assert_int_equal(kvstore_incr(kv, "s", 1, 1, &out), KVSTORE_E_TYPE);
  char k[KVSTORE_MAX_KEY + 1];
  memset(k, 'k', sizeof k);
  assert_int_equal(kvstore_incr(kv, k, sizeof k, 1, &out), KVSTORE_E_KEY);
  assert_int_equal(kvstore_count(kv), 4);
  kvstore_free(kv);
}

static void test_iterate(void **state) {
  (void)state;
  struct kvstore *kv = kvstore_new();
  struct kvstore_iter it = {0};
  const char *k;
  size_t n;
  assert_false(kvstore_next(kv, &it, &k, &n)); /* empty, no table yet */
  enum { N = 300 };                            /* past several doublings of the table */
  char key[16];
  for (int i = 0; i < N; i++) {
    snprintf(key, sizeof key, "%d", i);
    assert_int_equal(set_int(kv, key, i), 0);
  }
  unsigned char seen[N] = {0};
  size_t total = 0;
  memset(&it, 0, sizeof it);
  while (kvstore_next(kv, &it, &k, &n)) {
    assert_true(n < sizeof key);
    memcpy(key, k, n);
    key[n] = 0;
    int i = atoi(key);
    assert_true(i >= 0 && i < N);
    seen[i]++;
    total++;
  }
  assert_int_equal(total, N);
  for (int i = 0; i < N; i++) assert_int_equal(seen[i], 1);
  assert_false(kvstore_next(kv, &it, &k, &n)); /* stays at the end */
  /* after deletes only the rest is seen */
  for (int i = 0; i < N; i += 2) {
    int len = snprintf(key, sizeof key, "%d", i);
    kvstore_del(kv, key, (size_t)len);
  }
  memset(&it, 0, sizeof it);
  total = 0;
  while (kvstore_next(kv, &it, &k, &n)) {
    assert_int_equal(k[n], 0);
    assert_true(atoi(k) % 2 == 1);
    total++;
  }
  assert_int_equal(total, N / 2);
  kvstore_free(kv);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_types),     cmocka_unit_test(test_lengths), cmocka_unit_test(test_max_keys),
      cmocka_unit_test(test_max_bytes), cmocka_unit_test(test_incr),    cmocka_unit_test(test_iterate),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
