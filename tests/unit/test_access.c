/* test_access: access levels x grants x guests, dm rooms; and auth_hello / auth_refresh on top of jwt. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the four above, which it needs */

#include "auth/access.h"
#include "auth/auth.h"
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define R ACCESS_READ
#define W ACCESS_WRITE
#define P ACCESS_PRESENCE

static char err[512];

static void set(struct config *c, const char *key, const char *value) {
  if (config_set(c, key, value, "t", err, sizeof err)) fail_msg("%s = %s: %s", key, value, err);
}

static struct config rules(void) {
  struct config c;
  config_defaults(&c);
  set(&c, "rooms.news-*.access", "readonly");
  set(&c, "rooms.team-*.access", "members");
  set(&c, "rooms.secret-*.access", "private");
  set(&c, "rooms.dm:*.access", "public"); /* ignored: dm rules are fixed */
  return c;
}

/* A token user with grants from a list ("team-a:rw,secret-*:r"). */
static struct identity user(const char *id, const char *grants) {
  struct identity who = {0};
  who.id = strdup(id);
  who.name = strdup(id);
  assert_int_equal(grants_parse_list(grants, &who.grants, &who.ngrants), 0);
  return who;
}

static struct identity guest(void) {
  struct identity who = {0};
  who.id = strdup("guest-1");
  who.name = strdup("Guest 1");
  who.guest = true;
  return who;
}

static void expect(const struct config *c, const struct identity *who, const char *room, unsigned want) {
  unsigned got = access_rights(c, who, room);
  if (got != want) fail_msg("%s in %s: rights %u, want %u", who->id, room, got, want);
}

static void test_levels(void **state) {
  struct config c = rules();
  assert_int_equal(config_room_access(&c, "lobby"), ROOM_PUBLIC);
  assert_int_equal(config_room_access(&c, "news-eu"), ROOM_READONLY);
  assert_int_equal(config_room_access(&c, "team-a"), ROOM_MEMBERS);
  assert_int_equal(config_room_access(&c, "secret-x"), ROOM_PRIVATE);

  struct identity none = user("u1", ""), rw = user("u2", "news-*:rw,team-a:rw,secret-x:rw"),
                  ro = user("u3", "news-*:r,team-a:r,secret-x:r"),
                  wo = user("u4", "news-*:w,team-a:w,secret-x:w"),
                  other = user("u5", "team-b:rw,secret-y:rw");
  /* public: everyone authenticated, grants or not */
  expect(&c, &none, "lobby", R | W | P);
  expect(&c, &rw, "lobby", R | W | P);
  expect(&c, &ro, "lobby", R | W | P);
  /* readonly: everyone reads; writing needs w */
  expect(&c, &none, "news-eu", R | P);
  expect(&c, &ro, "news-eu", R | P);
  expect(&c, &rw, "news-eu", R | W | P);
  expect(&c, &wo, "news-eu", R | W | P);
  /* members: read and write need grants; presence for anyone authenticated */
  expect(&c, &none, "team-a", P);
  expect(&c, &other, "team-a", P);
  expect(&c, &ro, "team-a", R | P);
  expect(&c, &wo, "team-a", W | P);
  expect(&c, &rw, "team-a", R | W | P);
  /* private: nothing without a grant */
  expect(&c, &none, "secret-x", 0);
  expect(&c, &other, "secret-x", 0);
  expect(&c, &ro, "secret-x", R | P);
  expect(&c, &wo, "secret-x", W);
  expect(&c, &rw, "secret-x", R | W | P);

  /* the last matching rule wins; grants are a union over matching patterns */
  set(&c, "rooms.team-open.access", "public");
  expect(&c, &none, "team-open", R | W | P);
  struct identity split = user("u6", "team-*:r,team-a:w");
  expect(&c, &split, "team-a", R | W | P);
  expect(&c, &split, "team-b", R | P);

  identity_free(&none);
  identity_free(&rw);
  identity_free(&ro);
  identity_free(&wo);
  identity_free(&other);
  identity_free(&split);
  config_free(&c);
}

static void test_guests(void **state) {
  struct config c = rules();
  struct identity g = guest();
  /* default auth.guest_rooms "*:rw": at most what everyone gets */
  expect(&c, &g, "lobby", R | W | P);
  expect(&c, &g, "news-eu", R | P); /* no grant can make a guest write here */
  expect(&c, &g, "team-a", P);
  expect(&c, &g, "secret-x", 0);

  set(&c, "auth.guest_rooms", "lobby:rw, help-*:r");
  expect(&c, &g, "lobby", R | W | P);
  expect(&c, &g, "help-desk", R | P);
  expect(&c, &g, "random", 0);
  expect(&c, &g, "news-eu", 0);
  set(&c, "auth.guest_rooms", "");
  expect(&c, &g, "lobby", 0);
  set(&c, "auth.guest_rooms", "*:w");
  expect(&c, &g, "lobby", W);

  /* a guest's own grants (there are none from a token) are never consulted */
  set(&c, "auth.guest_rooms", "*:rw");
  assert_int_equal(grants_parse_list("secret-x:rw", &g.grants, &g.ngrants), 0);
  expect(&c, &g, "secret-x", 0);
  identity_free(&g);
  config_free(&c);
}

static void test_dm(void **state) {
  struct config c = rules();
  set(&c, "rooms.*.access", "public");
  struct identity a = user("alice", ""), b = user("bob", ""), eve = user("eve", "*:rw,dm:*:rw"), g = guest();
  expect(&c, &a, "dm:alice:bob", R | W | P);
  expect(&c, &b, "dm:alice:bob", R | W | P);
  expect(&c, &a, "dm:bob:alice", R | W | P); /* either order */
  expect(&c, &eve, "dm:alice:bob", 0);       /* a third user, whatever her grants and the rules */
  expect(&c, &g, "dm:alice:bob", 0);
  struct identity gid = user("guest-1", "");
  expect(&c, &g, "dm:guest-1:alice", 0); /* guest ids are reused after a restart */
  identity_free(&gid);
  expect(&c, &a, "dm:alice:alice", R | W | P); /* notes to self */
  expect(&c, &b, "dm:alice:alice", 0);

  static const char *malformed[] = {
      "dm:",           "dm:alice", "dm:alice:",    "dm::bob", "dm:alice:bob:carol",
      "dm:alice::bob", "dm::",     "dm:alice:bob:"};
  for (size_t i = 0; i < sizeof malformed / sizeof *malformed; i++) {
    expect(&c, &a, malformed[i], 0);
    expect(&c, &eve, malformed[i], 0);
  }
  /* not a dm room */
  expect(&c, &eve, "dmx:alice:bob", R | W | P);
  expect(&c, &eve, "DM:alice:bob", R | W | P);

  char x[129], y[129];
  assert_true(access_dm_parse("dm:alice:bob", x, y));
  assert_string_equal(x, "alice");
  assert_string_equal(y, "bob");
  assert_true(access_dm_parse("dm:a", x, y));
  assert_string_equal(x, "");
  assert_false(access_dm_parse("lobby", x, y));
  char longname[300];
  snprintf(longname, sizeof longname, "dm:%0129d:bob", 0);
  assert_true(access_dm_parse(longname, x, y));
  assert_string_equal(x, "");

  expect(&c, NULL, "lobby", 0);
  identity_free(&a);
  identity_free(&b);
  identity_free(&eve);
  identity_free(&g);
  config_free(&c);
}

/* ---- auth_hello / auth_refresh ---- */

#define SECRET "test-secret-0123456789-0123456789-abcdef"
#define NOW    1700000000

static char *token(const char *sub, const char *rooms, int64_t ttl) {
  struct config c;
  config_defaults(&c);
  set(&c, "auth.jwt_secret", SECRET);
  struct jwt_keyset *ks;
  assert_int_equal(jwt_keyset_new(&c, &ks, err, sizeof err), 0);
  struct jwt_mint_req req = {.sub = sub, .name = "Ann", .rooms = rooms, .now = NOW, .ttl = ttl};
  char *t = NULL;
  assert_int_equal(jwt_mint(ks, &req, &t, err, sizeof err), 0);
  jwt_keyset_free(ks);
  config_free(&c);
  return t;
}

static void test_hello_refresh(void **state) {
  struct config c;
  config_defaults(&c);
  set(&c, "auth.jwt_secret", SECRET);
  struct auth *a;
  assert_int_equal(auth_new(&c, &a, err, sizeof err), 0);
  char msg[256];
  struct identity who;

  /* guests only when allowed */
  assert_int_equal(auth_hello(a, &c, NULL, NOW, &who, msg, sizeof msg), -EPERM);
  set(&c, "auth.allow_anonymous", "true");
  assert_int_equal(auth_hello(a, &c, NULL, NOW, &who, msg, sizeof msg), 0);
  /* "guest-" and 16 hex digits, random: two guests never share an id (nor would a restart repeat one) */
  assert_int_equal(strlen(who.id), 6 + 16);
  assert_memory_equal(who.id, "guest-", 6);
  assert_int_equal(strspn(who.id + 6, "0123456789abcdef"), 16);
  assert_true(who.guest);
  {
    struct identity other;
    assert_int_equal(auth_hello(a, &c, NULL, NOW, &other, msg, sizeof msg), 0);
    assert_string_not_equal(other.id, who.id);
    identity_free(&other);
  }
  assert_int_equal(who.exp, 0);
  assert_int_equal(auth_deadline_ms(&c, &who), 0);
  char *t1 = token("u42", "team-*:rw", 60);
  assert_int_equal(auth_refresh(a, &c, t1, NOW, &who, msg, sizeof msg), -EACCES);
  assert_non_null(strstr(msg, "guest"));
  identity_free(&who);

  /* a token */
  assert_int_equal(auth_hello(a, &c, t1, NOW, &who, msg, sizeof msg), 0);
  assert_string_equal(who.id, "u42");
  assert_string_equal(who.name, "Ann");
  assert_false(who.guest);
  assert_int_equal(who.exp, NOW + 60);
  assert_int_equal(auth_deadline_ms(&c, &who), (NOW + 60) * 1000LL + 30000);
  assert_int_equal(who.ngrants, 1);

  /* refresh: same sub, new exp and grants */
  char *t2 = token("u42", "news:r", 3600);
  assert_int_equal(auth_refresh(a, &c, t2, NOW + 50, &who, msg, sizeof msg), 0);
  assert_int_equal(who.exp, NOW + 3600);
  assert_int_equal(who.ngrants, 1);
  assert_string_equal(who.grants[0].pattern, "news");
  assert_string_equal(who.id, "u42");
  char *t3 = token("u43", NULL, 3600);
  assert_int_equal(auth_refresh(a, &c, t3, NOW, &who, msg, sizeof msg), -EACCES);
  assert_true(!strncmp(msg, "sub_mismatch: ", 14));
  assert_int_equal(who.exp, NOW + 3600); /* unchanged */
  assert_int_equal(auth_refresh(a, &c, t1, NOW + 1000, &who, msg, sizeof msg), -EACCES);
  assert_true(!strncmp(msg, "expired: ", 9));
  assert_int_equal(who.exp, NOW + 3600);
  identity_free(&who);

  /* failures carry the subcode first; the identity is left empty */
  assert_int_equal(auth_hello(a, &c, t1, NOW + 1000, &who, msg, sizeof msg), -EACCES);
  assert_true(!strncmp(msg, "expired: ", 9));
  assert_null(who.id);
  assert_int_equal(auth_hello(a, &c, "x.y.z", NOW, &who, msg, sizeof msg), -EACCES);
  assert_true(!strncmp(msg, "malformed: ", 11));
  char *tg = token("guest-1", NULL, 60);
  assert_int_equal(auth_hello(a, &c, tg, NOW, &who, msg, sizeof msg), -EACCES);
  assert_true(!strncmp(msg, "reserved_sub: ", 14));

  /* audience configured: the minted token (no aud) is refused */
  set(&c, "auth.audience", "parley");
  assert_int_equal(auth_hello(a, &c, t2, NOW, &who, msg, sizeof msg), -EACCES);
  assert_true(!strncmp(msg, "bad_audience: ", 14));

  free(t1);
  free(t2);
  free(t3);
  free(tg);
  auth_free(a);

  /* auth_new checks auth.guest_rooms */
  set(&c, "auth.guest_rooms", "lobby");
  assert_int_equal(auth_new(&c, &a, err, sizeof err), -EINVAL);
  assert_non_null(strstr(err, "auth.guest_rooms"));
  config_free(&c);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_levels),
      cmocka_unit_test(test_guests),
      cmocka_unit_test(test_dm),
      cmocka_unit_test(test_hello_refresh),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
