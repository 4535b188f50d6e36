/* Unit tests: room membership (per-user first/last), swap-removal bookkeeping, release rules, and the
 * in-memory ring that serves recent history and replays. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
/* cmocka needs the four headers above first */
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "core/ring.h"
#include "core/room.h"
#include "proto/v1.h"

/* Connections are opaque to the room: any distinct pointers do. */
static int conns[8];
#define CONN(i) ((struct conn *)&conns[i])

static void test_fanout_membership(void **state) {
  struct room_set set = {0};
  struct room *r = room_get(&set, "lobby", true, 4);
  assert_non_null(r);
  assert_ptr_equal(room_get(&set, "lobby", false, 0), r);
  assert_null(room_get(&set, "other", false, 0));
  struct member *m[8];
  for (int i = 0; i < 8; i++) assert_non_null(m[i] = room_add(r, CONN(i)));
  int order[] = {3, 0, 7, 5, 1, 6, 2, 4};
  for (int k = 0; k < 8; k++) {
    room_remove(r, m[order[k]]);
    /* swap-removal keeps every membership's index right */
    for (uint32_t i = 0; i < r->nmembers; i++) {
      assert_int_equal(r->members[i]->room_idx, i);
      assert_ptr_equal(r->members[i]->room, r);
    }
  }
  assert_int_equal(r->nmembers, 0);
  room_release_if_unused(&set, r); /* empty, no messages: freed */
  assert_int_equal(room_set_count(&set), 0);
  room_set_free(&set);
}

static void test_presence_per_user(void **state) {
  struct room_set set = {0};
  struct room *r = room_get(&set, "lobby", true, 4);
  bool first, last;
  assert_int_equal(room_presence_add(r, "ann", 1000, &first), 0);
  assert_true(first);
  assert_int_equal(room_presence_add(r, "ann", 2000, &first), 0); /* a second session (tab) */
  assert_false(first);
  assert_int_equal(room_presence_add(r, "bob", 3000, &first), 0);
  assert_true(first);
  room_presence_remove(r, "ann", &last);
  assert_false(last); /* ann still has a session */
  room_release_if_unused(&set, r);
  assert_int_equal(room_set_count(&set), 1); /* someone is present: kept */
  room_presence_remove(r, "ann", &last);
  assert_true(last);
  room_presence_remove(r, "bob", &last);
  assert_true(last);
  room_presence_remove(r, "nobody", &last);
  assert_false(last);
  room_release_if_unused(&set, r);
  assert_int_equal(room_set_count(&set), 0);
  room_set_free(&set);
}

static void test_release_rules(void **state) {
  struct room_set set = {0};
  struct room *r = room_get(&set, "eph", true, 4);
  r->seq = 7; /* an ephemeral room with messages keeps its numbering */
  room_release_if_unused(&set, r);
  assert_int_equal(room_set_count(&set), 1);
  r->durable = true; /* a durable one can go: the store has its head */
  r->pins = 1;       /* … but not while something in flight needs it */
  room_release_if_unused(&set, r);
  assert_int_equal(room_set_count(&set), 1);
  r->pins = 0;
  room_release_if_unused(&set, r);
  assert_int_equal(room_set_count(&set), 0);
  room_set_free(&set);
}

static json_t *ev(uint64_t seq) { return json_pack("{s:s,s:I}", "ev", "message", "seq", (json_int_t)seq); }

static void test_ring(void **state) {
  formats_v1_register();
  struct ring r;
  assert_int_equal(ring_init(&r, 3), 0);
  assert_int_equal(ring_first(&r), 0);
  assert_null(ring_get(&r, 1));
  for (uint64_t s = 1; s <= 5; s++) ring_push(&r, s, ev(s));
  assert_int_equal(ring_first(&r), 3); /* keeps the newest three */
  assert_int_equal(ring_last(&r), 5);
  assert_null(ring_get(&r, 2));
  assert_int_equal(ring_get(&r, 4)->seq, 4);
  ring_push(&r, 4, ev(4)); /* old: ignored */
  assert_int_equal(ring_last(&r), 5);
  ring_push(&r, 9, ev(9)); /* a gap restarts the ring: entries stay contiguous */
  assert_int_equal(ring_first(&r), 9);
  assert_int_equal(ring_last(&r), 9);
  frame_t *f = ring_frame(ring_get(&r, 9), &format_v1_json);
  assert_non_null(f);
  assert_ptr_equal(ring_frame(ring_get(&r, 9), &format_v1_json), f); /* encoded once */
  assert_int_equal(f->flags & FRAME_BINARY, 0);                      /* JSON: a text message */
  assert_int_equal(frame_payload(f)[0], '{');
  ring_free(&r);

  /* Slots are allocated on the first push and doubled up to cap, entries kept in order. */
  struct ring g;
  assert_int_equal(ring_init(&g, 20), 0);
  assert_null(g.v);
  for (uint64_t s = 1; s <= 30; s++) {
    ring_push(&g, s, ev(s));
    assert_int_equal(ring_first(&g), s > 20 ? s - 19 : 1);
    assert_int_equal(ring_last(&g), s);
    for (uint64_t k = ring_first(&g); k <= s; k++) assert_int_equal(ring_get(&g, k)->seq, k);
  }
  assert_int_equal(g.alloc, 20);
  ring_free(&g);

  struct ring none;
  assert_int_equal(ring_init(&none, 0), 0);
  ring_push(&none, 1, ev(1)); /* cap 0 keeps nothing and leaks nothing */
  assert_int_equal(ring_first(&none), 0);
  ring_free(&none);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_fanout_membership),
      cmocka_unit_test(test_presence_per_user),
      cmocka_unit_test(test_release_rules),
      cmocka_unit_test(test_ring),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
