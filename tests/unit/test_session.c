/* Unit tests: this process's session store (session_local_ops) and presence backend (presence_local_ops),
 * through a core without a store or a loop: fake connections (a conn_tx that keeps every frame). Covered:
 * tokens found until the session ends; online told once per user (first attach), offline once (last end);
 * detach and the grace sweep; status queries (online with name, last-seen after going offline, unknown);
 * and a hello whose resume token a store answers later. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
/* cmocka needs the four headers above first */
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "core/core.h"
#include "core/internal.h"
#include "proto/v1.h"

#include "fake_transport.h"

/* The connection drops (no close code): its session is detached, not ended. */
static void client_close(struct core *core, struct client *cl) {
  core_conn_closed(core, cl->c, false);
  json_decref(cl->fk.got);
  cl->c = NULL;
}

/* A connection that said hello as a user with a token (not a guest), without the auth path. */
static struct session *open_as(struct core *core, struct client *cl, const char *id) {
  cl->fk.got = json_array();
  assert_non_null(cl->c = core_conn_open(core, json_format(), &fake_tx, &cl->fk, "127.0.0.1"));
  cl->c->who.id = strdup(id);
  cl->c->who.name = strdup(id);
  cl->c->authed = true;
  struct session *s = session_open(core, cl->c, "test");
  assert_non_null(s);
  return s;
}

static void found(void *ud, struct session *s) { *(struct session **)ud = s; }

static struct session *lookup(struct core *core, const char *token) {
  struct session *s = (struct session *)1;
  assert_int_equal(core->session_ops->resume(core->session_ctx, token, found, &s), 0);
  assert_true(s != (struct session *)1); /* answered before returning (sync) */
  return s;
}

static void test_session_store(void **state) {
  (void)state;
  struct fixture fx;
  fixture_init(&fx, 0);
  struct core *core = fx.core;
  assert_ptr_equal(core->session_ops, &session_local_ops);
  assert_true(session_local_ops.sync);
  struct client a, b;
  struct session *sa = open_as(core, &a, "ann"), *sb = open_as(core, &b, "ann");
  assert_string_not_equal(sa->token, sb->token);
  assert_int_equal(strlen(sa->token), 32);
  assert_int_equal(core->session_ops->count(core->session_ctx), 2);
  assert_ptr_equal(lookup(core, sa->token), sa);
  assert_ptr_equal(lookup(core, sb->token), sb);
  assert_null(lookup(core, "00000000000000000000000000000000"));
  char token[40];
  snprintf(token, sizeof token, "%s", sa->token);
  client_close(core, &a); /* detached: the token still finds it */
  assert_ptr_equal(lookup(core, token), sa);
  assert_null(sa->conn);
  session_end_detached(core, "ann"); /* ended: the token finds nothing */
  assert_null(lookup(core, token));
  assert_int_equal(core->session_ops->count(core->session_ctx), 1);
  client_close(core, &b);
  fixture_free(&fx);
}

/* The local backend with every attach/end outcome recorded on its way to the core. */
static struct changes {
  int n;
  bool went[8];
  uint64_t ts[8];
} rec;
struct fwd {
  presence_change_cb cb;
  void *ud;
};
static void fwd_change(void *ud, struct session *s, bool went, uint64_t ts) {
  struct fwd *f = ud;
  assert_true(rec.n < 8);
  rec.went[rec.n] = went;
  rec.ts[rec.n++] = ts;
  f->cb(f->ud, s, went, ts);
}
static int rec_attach(void *ctx, struct session *s, bool resumed, presence_change_cb cb, void *ud) {
  struct fwd f = {cb, ud}; /* the local backend answers before returning */
  return presence_local_ops.attach(ctx, s, resumed, fwd_change, &f);
}
static void rec_end(void *ctx, struct session *s, presence_change_cb cb, void *ud) {
  struct fwd f = {cb, ud};
  presence_local_ops.end(ctx, s, fwd_change, &f);
}

struct statuses {
  int done;
  struct presence_status st[4];
  char names[4][32];
};
static void status(void *ud, size_t i, const struct presence_status *st) {
  struct statuses *q = ud;
  assert_true(i < 4);
  q->st[i] = *st;
  snprintf(q->names[i], sizeof q->names[i], "%s", st->name ? st->name : "");
  q->st[i].user_id = q->st[i].name = NULL; /* borrowed for the call only */
}
static void status_done(void *ud) { ((struct statuses *)ud)->done++; }

static struct statuses query(struct core *core, const char *const *ids, size_t n) {
  struct statuses q = {0};
  assert_int_equal(core->presence_ops->query(core->presence_ctx, ids, n, status, status_done, &q), 0);
  assert_int_equal(q.done, 1); /* no store: nothing to wait for */
  return q;
}

static void test_presence_local(void **state) {
  (void)state;
  struct fixture fx;
  fixture_init(&fx, 0);
  struct core *core = fx.core;
  assert_ptr_equal(core->presence_ops, &presence_local_ops);
  struct presence_ops ops = presence_local_ops;
  ops.attach = rec_attach;
  ops.end = rec_end;
  core->presence_ops = &ops;
  memset(&rec, 0, sizeof rec);
  uint64_t ttl = (uint64_t)fx.cfg.session_resume_ttl;
  const char *ids[] = {"ann", "bob"};

  /* online: told for the user's first session only */
  struct client a, b;
  struct session *sa = open_as(core, &a, "ann");
  open_as(core, &b, "ann");
  assert_int_equal(rec.n, 2);
  assert_true(rec.went[0]);
  assert_false(rec.went[1]);
  struct statuses q = query(core, ids, 2);
  assert_true(q.st[0].online);
  assert_string_equal(q.names[0], "ann");
  assert_false(q.st[1].online); /* bob: never seen */
  assert_int_equal(q.st[1].last_seen, 0);

  /* detach: the session waits out its grace, then the sweep ends it; ann stays online through b */
  char token[40];
  snprintf(token, sizeof token, "%s", sa->token);
  client_close(core, &a);
  assert_int_equal(rec.n, 2); /* detached, not ended */
  uint64_t t0 = core_mono_ms();
  core_tick(core, t0 + ttl - 1000);
  assert_non_null(lookup(core, token));
  core_tick(core, t0 + ttl + 1000);
  assert_null(lookup(core, token));
  assert_int_equal(rec.n, 3);
  assert_false(rec.went[2]);
  assert_true(query(core, ids, 1).st[0].online);

  /* the last session: offline once, and the last-seen it records answers the next query */
  client_close(core, &b);
  core_tick(core, core_mono_ms() + ttl + 1000);
  assert_int_equal(rec.n, 4);
  assert_true(rec.went[3]);
  assert_true(rec.ts[3] > 0);
  q = query(core, ids, 1);
  assert_false(q.st[0].online);
  assert_int_equal(q.st[0].last_seen, rec.ts[3]);
  assert_null(session_user_find(core, "ann"));
  fixture_free(&fx);
}

/* A session store that answers lookups later (a network one): the local table, with resume queued. */
static struct later {
  char token[8][40];
  session_found_cb cb[8];
  void *ud[8];
  int n;
} later;
static int later_resume(void *ctx, const char *token, session_found_cb cb, void *ud) {
  (void)ctx;
  assert_true(later.n < 8);
  snprintf(later.token[later.n], sizeof later.token[0], "%s", token); /* token is the caller's */
  later.cb[later.n] = cb;
  later.ud[later.n++] = ud;
  return 0;
}
static void later_flush(struct core *core) {
  for (int i = 0; i < later.n; i++)
    assert_int_equal(session_local_ops.resume(core->session_ctx, later.token[i], later.cb[i], later.ud[i]),
                     0);
  later.n = 0;
}

/* hello with a resume token waits for the store's answer, then resumes the session (a guest's identity
 * too); a connection gone before the answer is no harm. */
static void test_hello_waits_for_session_store(void **state) {
  (void)state;
  struct fixture fx;
  fixture_init(&fx, 0);
  struct core *core = fx.core;
  struct client a, b, c;
  a.fk.got = json_array();
  assert_non_null(a.c = core_conn_open(core, json_format(), &fake_tx, &a.fk, "127.0.0.1"));
  say(core, &a, "{\"id\":1,\"op\":\"hello\"}");
  json_t *ok = json_object_get(json_array_get(a.fk.got, 0), "ok");
  assert_non_null(ok);
  char token[40], guest[64];
  snprintf(token, sizeof token, "%s", json_string_value(json_object_get(ok, "resume_token")));
  snprintf(guest, sizeof guest, "%s", json_string_value(json_object_get(json_object_get(ok, "user"), "id")));
  client_close(core, &a); /* dropped: detached */

  struct session_ops ops = session_local_ops;
  ops.sync = false;
  ops.resume = later_resume;
  core->session_ops = &ops;
  memset(&later, 0, sizeof later);
  char req[120];
  snprintf(req, sizeof req, "{\"id\":7,\"op\":\"hello\",\"resume\":\"%s\"}", token);
  b.fk.got = json_array();
  assert_non_null(b.c = core_conn_open(core, json_format(), &fake_tx, &b.fk, "127.0.0.1"));
  say(core, &b, req);
  assert_int_equal(later.n, 1);
  assert_int_equal(json_array_size(b.fk.got), 0); /* nothing until the store answers */
  c.fk.got = json_array();
  assert_non_null(c.c = core_conn_open(core, json_format(), &fake_tx, &c.fk, "127.0.0.1"));
  say(core, &c, "{\"id\":8,\"op\":\"hello\",\"resume\":\"nothing-of-this-kind\"}");
  client_close(core, &c); /* gone before the answer */
  later_flush(core);
  assert_int_equal(json_array_size(b.fk.got), 1);
  json_t *doc = json_array_get(b.fk.got, 0);
  assert_int_equal(json_integer_value(json_object_get(doc, "re")), 7);
  ok = json_object_get(doc, "ok");
  assert_non_null(ok);
  assert_true(json_is_true(json_object_get(ok, "resumed")));
  assert_string_equal(json_string_value(json_object_get(json_object_get(ok, "user"), "id")), guest);
  assert_string_equal(json_string_value(json_object_get(ok, "resume_token")), token);
  client_close(core, &b);
  fixture_free(&fx);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_session_store),
      cmocka_unit_test(test_presence_local),
      cmocka_unit_test(test_hello_waits_for_session_store),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
