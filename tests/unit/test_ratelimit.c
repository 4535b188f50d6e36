/* test_ratelimit: token buckets, keyed tables (bounds, LRU, expiry), strikes, connection counts, and the
 * rate syntax of the config. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the four above, which it needs */

#include "auth/ratelimit.h"
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void test_bucket(void **state) {
  struct config_rate r = {10, 1000, 20}; /* 10/s burst 20 */
  struct rl_bucket b = {0};
  int64_t t = 5000;
  for (int i = 0; i < 20; i++) assert_int_equal(rl_bucket_take(&b, &r, t), 0); /* the burst */
  assert_int_equal(rl_bucket_take(&b, &r, t), 100);                            /* one token per 100 ms */
  assert_int_equal(rl_bucket_take(&b, &r, t + 40), 60);
  assert_int_equal(rl_bucket_take(&b, &r, t + 99), 1);
  assert_int_equal(rl_bucket_take(&b, &r, t + 100), 0);
  assert_int_equal(rl_bucket_take(&b, &r, t + 100), 100);
  assert_false(rl_bucket_idle(&b, &r, t + 1000));
  /* sustained: exactly the rate passes */
  t += 100;
  int passed = 0;
  for (int ms = 1; ms <= 10000; ms++)
    if (rl_bucket_take(&b, &r, t + ms) == 0) passed++;
  assert_int_equal(passed, 100);
  /* refill to the burst, not beyond */
  t += 10000;
  assert_true(rl_bucket_idle(&b, &r, t + 2000));
  t += 60000;
  passed = 0;
  while (rl_bucket_take(&b, &r, t) == 0) passed++;
  assert_int_equal(passed, 20);

  /* slow rates: 3 per minute, burst 1 */
  struct config_rate slow = {3, 60000, 1};
  struct rl_bucket s = {0};
  assert_int_equal(rl_bucket_take(&s, &slow, 0), 0);
  assert_int_equal(rl_bucket_take(&s, &slow, 0), 20000);
  assert_int_equal(rl_bucket_take(&s, &slow, 19999), 1);
  assert_int_equal(rl_bucket_take(&s, &slow, 20000), 0);

  /* off; the clock going backwards does not refill or break anything */
  struct config_rate off = {0, 1000, 0};
  for (int i = 0; i < 1000; i++) assert_int_equal(rl_bucket_take(&s, &off, 0), 0);
  assert_int_equal(rl_bucket_take(&s, &slow, 10000), 20000); /* before the last take: no refill */
  assert_int_equal(rl_bucket_take(&s, &slow, 30000), 10000);
  assert_true(rl_bucket_idle(&s, &off, 0));

  /* a reload shrinks the rate: the debt is capped at the new burst */
  struct rl_bucket big = {0};
  struct config_rate wide = {1000, 1000, 1000}, narrow = {1, 1000, 2};
  for (int i = 0; i < 1000; i++) rl_bucket_take(&big, &wide, 0);
  int64_t wait = rl_bucket_take(&big, &narrow, 0);
  assert_true(wait > 0 && wait <= 1000);
}

static void test_table(void **state) {
  struct config_rate r = {1, 1000, 2}; /* 1/s burst 2: idle again 2 s after the last take */
  struct rl_table *t = rl_table_new(3);
  assert_non_null(t);
  assert_int_equal(rl_table_take(t, "10.0.0.1", &r, 0), 0);
  assert_int_equal(rl_table_take(t, "10.0.0.1", &r, 0), 0);
  assert_int_equal(rl_table_take(t, "10.0.0.1", &r, 0), 1000);
  assert_int_equal(rl_table_take(t, "10.0.0.2", &r, 0), 0); /* keys are independent */
  assert_int_equal(rl_table_count(t), 2);

  /* bounded: a 4th key forgets the least recently used one */
  assert_int_equal(rl_table_take(t, "a", &r, 10), 0);
  assert_int_equal(rl_table_take(t, "10.0.0.1", &r, 10), 990); /* touch: now most recent */
  assert_int_equal(rl_table_take(t, "b", &r, 20), 0);
  assert_int_equal(rl_table_count(t), 3);
  assert_int_equal(rl_table_take(t, "10.0.0.1", &r, 20), 980); /* kept */
  assert_int_equal(rl_table_take(t, "10.0.0.2", &r, 20), 0);   /* was forgotten: full again */

  /* expiry: entries whose bucket is full again go, as takes go by and by rl_table_expire */
  assert_int_equal(rl_table_expire(t, &r, 1000), 0);
  assert_int_equal(rl_table_expire(t, &r, 5000), 3);
  assert_int_equal(rl_table_count(t), 0);
  for (int i = 0; i < 3; i++) {
    char key[16];
    snprintf(key, sizeof key, "k%d", i);
    rl_table_take(t, key, &r, 0);
  }
  assert_int_equal(rl_table_take(t, "new", &r, 100000), 0);
  assert_true(rl_table_count(t) < 3); /* idle heads dropped on the way */

  /* many keys, bounded memory */
  for (int i = 0; i < 10000; i++) {
    char key[16];
    snprintf(key, sizeof key, "ip%d", i);
    assert_int_equal(rl_table_take(t, key, &r, 200000), 0);
  }
  assert_int_equal(rl_table_count(t), 3);
  assert_int_equal(rl_table_take(t, "x", &(struct config_rate){0, 1000, 0}, 0), 0);
  rl_table_free(t);
  rl_table_free(NULL);
}

static void test_strikes(void **state) {
  struct rl_strikes s = {0};
  /* 20 within 10 s: the 20th closes */
  for (int i = 1; i < 20; i++) assert_false(rl_strike(&s, 20, 10000, 1000 + i));
  assert_true(rl_strike(&s, 20, 10000, 1020));
  /* reset after closing */
  assert_false(rl_strike(&s, 20, 10000, 1021));

  /* spread thinner than 20 per 10 s: never */
  struct rl_strikes slow = {0};
  for (int i = 0; i < 1000; i++) assert_false(rl_strike(&slow, 20, 10000, (int64_t)i * 600));
  /* 20 within 10 s, evenly spread (one per 450 ms): closed within the first 20 or so */
  struct rl_strikes even = {0};
  int i = 0;
  while (!rl_strike(&even, 20, 10000, (int64_t)i * 450) && i < 100) i++;
  assert_true(i >= 19 && i <= 23);
  /* a burst after a quiet period still counts from scratch */
  struct rl_strikes q = {0};
  for (int i = 0; i < 10; i++) assert_false(rl_strike(&q, 20, 10000, 0));
  bool closed = false;
  for (int i = 0; i < 10 && !closed; i++) closed = rl_strike(&q, 20, 10000, 60000);
  assert_false(closed);
  assert_false(rl_strike(&(struct rl_strikes){0}, 0, 10000, 0)); /* 0: never */
  struct rl_strikes one = {0};
  assert_true(rl_strike(&one, 1, 10000, 5));
}

static void test_conns(void **state) {
  struct rl_conns *c = rl_conns_new();
  assert_non_null(c);
  assert_int_equal(rl_conns_acquire(c, "1.2.3.4", 2), 0);
  assert_int_equal(rl_conns_acquire(c, "1.2.3.4", 2), 0);
  assert_int_equal(rl_conns_acquire(c, "1.2.3.4", 2), -EBUSY);
  assert_int_equal(rl_conns_acquire(c, "::1", 2), 0);
  assert_int_equal(rl_conns_count(c, "1.2.3.4"), 2);
  rl_conns_release(c, "1.2.3.4");
  assert_int_equal(rl_conns_acquire(c, "1.2.3.4", 2), 0);
  rl_conns_release(c, "1.2.3.4");
  rl_conns_release(c, "1.2.3.4");
  assert_int_equal(rl_conns_count(c, "1.2.3.4"), 0);
  rl_conns_release(c, "1.2.3.4");                                                       /* unknown: ignored */
  for (int i = 0; i < 100; i++) assert_int_equal(rl_conns_acquire(c, "5.6.7.8", 0), 0); /* 0: no cap */
  rl_conns_free(c);
}

static void test_config_rates(void **state) {
  struct config c;
  char err[256];
  assert_int_equal(config_defaults(&c), 0);
  assert_int_equal(c.rate_send.n, 20);
  assert_int_equal(c.rate_send.per_ms, 1000);
  assert_int_equal(c.rate_send.burst, 40);
  assert_int_equal(c.rate_strikes, 20);
  assert_int_equal(c.rate_strikes_window, 10000);
  assert_int_equal(c.limits_max_connections_per_ip, 200);
  static const struct {
    const char *text;
    int64_t n, per, burst;
  } ok[] = {
      {"5/s", 5, 1000, 5},         {"600/m burst 20", 600, 60000, 20},
      {"1/h", 1, 3600000, 1},      {"10 / s  burst  3", 10, 1000, 3},
      {"off", 0, 1000, 0},         {"0", 0, 1000, 0},
      {"7/S BURST 9", 7, 1000, 9},
  };
  for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
    if (config_set(&c, "rate.send", ok[i].text, "t", err, sizeof err)) fail_msg("%s: %s", ok[i].text, err);
    assert_int_equal(c.rate_send.n, ok[i].n);
    assert_int_equal(c.rate_send.per_ms, ok[i].per);
    assert_int_equal(c.rate_send.burst, ok[i].burst);
  }
  static const char *bad[] = {"5",    "5/d",       "5/s burst",          "5/s burst 0", "5/s 10",
                              "-5/s", "2000000/s", "5/s burst 99999999", "/s",          "5/s burst 3 x"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
    if (!config_set(&c, "rate.send", bad[i], "t", err, sizeof err)) fail_msg("'%s' accepted", bad[i]);
  assert_int_equal(config_set(&c, "rate.send", "5/d", "f:1", err, sizeof err), -EINVAL);
  assert_non_null(strstr(err, "f:1: rate.send: '5/d' is not a rate"));

  /* dump round trip and reload */
  config_set(&c, "rate.join", "90/m burst 5", "t", err, sizeof err);
  config_set(&c, "rate.typing", "off", "t", err, sizeof err);
  FILE *f = tmpfile();
  config_dump(&c, f);
  rewind(f);
  char line[256];
  bool seen_join = false, seen_typing = false;
  struct config d;
  config_defaults(&d);
  while (fgets(line, sizeof line, f)) {
    if (!strcmp(line, "rate.join = 90/m burst 5\n")) seen_join = true;
    if (!strcmp(line, "rate.typing = off\n")) seen_typing = true;
    assert_int_equal(config_load_text(&d, "dump", line, err, sizeof err), 0);
  }
  fclose(f);
  assert_true(seen_join && seen_typing);
  assert_memory_equal(&d.rate_join, &c.rate_join, sizeof c.rate_join);
  struct config live;
  config_defaults(&live);
  config_apply_reload(&live, &d);
  assert_int_equal(live.rate_join.n, 90);
  assert_int_equal(live.rate_typing.n, 0);
  config_free(&live);
  config_free(&d);
  config_free(&c);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_bucket), cmocka_unit_test(test_table),        cmocka_unit_test(test_strikes),
      cmocka_unit_test(test_conns),  cmocka_unit_test(test_config_rates),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
