/* Unit tests: the broker seam (core/broker.h) and message ids. Cores run without a store or a loop: fake
 * connections (a conn_tx that keeps every frame) say hello as guests, join and send. Covered: the
 * in-process broker (ack before event, members get the event, one subscribe per room with members here),
 * a broker that answers later (the ack waits for it; a connection gone meanwhile is no harm), and message
 * ids that stay unique across two cores with different server.node_id. */
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
#include "core/broker.h"
#include "core/core.h"
#include "core/internal.h"
#include "proto/v1.h"

#include "fake_transport.h"

/* Open a connection, hello as a guest (and join room when given); its inbox is emptied. */
static void client_open(struct core *core, struct client *cl, const char *room) {
  cl->fk.got = json_array();
  cl->fk.closed = false;
  assert_non_null(cl->c = core_conn_open(core, json_format(), &fake_tx, &cl->fk, "127.0.0.1"));
  say(core, cl, "{\"id\":1,\"op\":\"hello\"}");
  assert_non_null(json_object_get(json_array_get(cl->fk.got, 0), "ok"));
  if (room) {
    char req[160];
    snprintf(req, sizeof req, "{\"id\":2,\"op\":\"join\",\"room\":\"%s\"}", room);
    say(core, cl, req);
    assert_non_null(json_object_get(json_array_get(cl->fk.got, 1), "ok"));
  }
  json_array_clear(cl->fk.got);
}

static void client_close(struct core *core, struct client *cl) {
  core_conn_closed(core, cl->c, true);
  json_decref(cl->fk.got);
  cl->c = NULL;
}

static void send_msg(struct core *core, struct client *cl, int id, const char *room) {
  char req[200];
  snprintf(req, sizeof req, "{\"id\":%d,\"op\":\"send\",\"room\":\"%s\",\"body\":\"m%d\",\"cmid\":\"c%d\"}",
           id, room, id, id);
  say(core, cl, req);
}

/* ---- message ids ---- */

static void test_mid_format(void **state) {
  (void)state;
  char mid[MID_MAX];
  message_mid_format(mid, 0x1937681377bULL, 0xbe, 0x2a);
  assert_string_equal(mid, "01937681377bbe00002a");
  message_mid_format(mid, 5, 0, 0xfffffffeu); /* the counter's low 24 bits */
  assert_string_equal(mid, "00000000000500fffffe");
  char a[MID_MAX], b[MID_MAX]; /* the same ms and counter on two nodes */
  message_mid_format(a, 1000, 1, 7);
  message_mid_format(b, 1000, 2, 7);
  assert_string_not_equal(a, b);
  message_mid_format(b, 999, 2, 8); /* earlier ms sorts first, whatever the node and counter */
  assert_true(strcmp(b, a) < 0);
}

/* Two cores with different node ids, sending at the same time with the same counters: every mid differs,
 * carries its node id, and each core's mids sort in the order they were made. */
static void test_mids_unique_across_nodes(void **state) {
  (void)state;
  struct fixture fx[2];
  struct client cl[2];
  fixture_init(&fx[0], 1);
  fixture_init(&fx[1], 2);
  for (int k = 0; k < 2; k++) client_open(fx[k].core, &cl[k], "lobby");
  enum { N = 20 };
  for (int i = 1; i <= N; i++)
    for (int k = 0; k < 2; k++) send_msg(fx[k].core, &cl[k], i, "lobby");
  json_t *all = json_object();
  for (int k = 0; k < 2; k++) {
    const char *node = k ? "02" : "01", *prev = "";
    size_t i;
    json_t *doc;
    size_t acks = 0;
    json_array_foreach(cl[k].fk.got, i, doc) {
      json_t *ok = json_object_get(doc, "ok");
      if (!ok) continue;
      const char *mid = json_string_value(json_object_get(ok, "mid"));
      assert_non_null(mid);
      assert_int_equal(strlen(mid), 20);
      assert_true(strcmp(prev, mid) < 0);
      prev = mid;
      assert_null(json_object_get(all, mid));
      assert_memory_equal(mid + 12, node, 2);
      json_object_set_new(all, mid, json_true());
      acks++;
    }
    assert_int_equal(acks, N);
  }
  assert_int_equal(json_object_size(all), 2 * N);
  json_decref(all);
  for (int k = 0; k < 2; k++) {
    client_close(fx[k].core, &cl[k]);
    fixture_free(&fx[k]);
  }
}

/* ---- the in-process broker ---- */

/* The sender gets its ack, then the event; another member gets the event; seqs count from 1. */
static void test_local_publish_order(void **state) {
  (void)state;
  struct fixture fx;
  fixture_init(&fx, 0);
  assert_ptr_equal(fx.core->broker, &broker_local_ops);
  struct client a, b;
  client_open(fx.core, &a, "r1");
  client_open(fx.core, &b, "r1");
  json_array_clear(a.fk.got); /* b's join event */
  send_msg(fx.core, &a, 10, "r1");
  send_msg(fx.core, &a, 11, "r1");
  assert_int_equal(json_array_size(a.fk.got), 4);
  for (int k = 0; k < 2; k++) {
    json_t *ack = json_object_get(json_array_get(a.fk.got, 2 * k), "ok");
    json_t *ev = json_array_get(a.fk.got, 2 * k + 1);
    assert_non_null(ack);
    assert_int_equal(json_integer_value(json_object_get(ack, "seq")), k + 1);
    assert_string_equal(json_string_value(json_object_get(ev, "ev")), "message");
    assert_int_equal(json_integer_value(json_object_get(ev, "seq")), k + 1);
    assert_string_equal(json_string_value(json_object_get(ev, "mid")),
                        json_string_value(json_object_get(ack, "mid")));
    json_t *bev = json_array_get(b.fk.got, k);
    assert_true(json_equal(bev, ev));
  }
  assert_int_equal(json_array_size(b.fk.got), 2);
  assert_int_equal(core_publish(fx.core, "r1", "{\"x\":1}", 7), 0); /* the server's publish: no ack */
  assert_int_equal(json_integer_value(json_object_get(json_array_get(b.fk.got, 2), "seq")), 3);
  client_close(fx.core, &a);
  client_close(fx.core, &b);
  fixture_free(&fx);
}

/* A broker that records subscriptions and publishes, and answers later when `later` (a network one). */
struct pubq {
  struct wire_msg m;
  struct wire_body body;
  broker_publish_cb cb;
  void *ud;
};

static struct spy {
  struct core *core;
  int subs, unsubs, pubs;
  char last_sub[64];
  struct pubq q[16];
  int nq;
} spy;

static char *dup0(const char *s) { return s ? strdup(s) : NULL; }

static int spy_publish(void *ctx, struct room *r, struct wire_msg *m, broker_publish_cb cb, void *ud) {
  assert_ptr_equal(ctx, &spy);
  spy.pubs++;
  (void)r;
  assert_true(spy.nq < 16);
  struct pubq *p = &spy.q[spy.nq++]; /* a copy: m is the caller's only during the call */
  p->body =
      (struct wire_body){.json = strndup(m->body->json, m->body->json_len), .json_len = m->body->json_len};
  p->m = (struct wire_msg){.room = dup0(m->room),
                           .seq = m->seq,
                           .mid = dup0(m->mid),
                           .ts = m->ts,
                           .user_id = dup0(m->user_id),
                           .user_name = dup0(m->user_name),
                           .body = &p->body,
                           .cmid = dup0(m->cmid)};
  p->cb = cb;
  p->ud = ud;
  return 0;
}

/* Answer every queued publish: number it from the room's head, call back, deliver. */
static void spy_flush(void) {
  for (int i = 0; i < spy.nq; i++) {
    struct pubq *p = &spy.q[i];
    struct room *r = room_get(&spy.core->rooms, p->m.room, false, 0);
    if (!p->m.seq) p->m.seq = (r ? r->seq : 0) + 1;
    if (p->cb) p->cb(p->ud, 0, &p->m);
    broker_deliver(spy.core, NULL, &p->m);
    free((char *)p->m.room);
    free((char *)p->m.mid);
    free((char *)p->m.user_id);
    free((char *)p->m.user_name);
    free((char *)p->m.cmid);
    free((char *)p->body.json);
  }
  spy.nq = 0;
}

static int spy_subscribe(void *ctx, struct room *r, broker_done_cb cb, void *ud) {
  (void)ctx;
  spy.subs++;
  snprintf(spy.last_sub, sizeof spy.last_sub, "%s", r->name);
  if (cb) cb(ud, 0);
  return 0;
}
static void spy_unsubscribe(void *ctx, struct room *r) {
  (void)ctx;
  (void)r;
  spy.unsubs++;
}

static const struct broker_ops spy_ops = {.name = "spy",
                                          .sync = false,
                                          .publish = spy_publish,
                                          .subscribe = spy_subscribe,
                                          .unsubscribe = spy_unsubscribe};

/* Subscribed once while the room has members here, unsubscribed when the last one leaves. */
static void test_subscribe_refcount(void **state) {
  (void)state;
  struct fixture fx;
  fixture_init(&fx, 0);
  memset(&spy, 0, sizeof spy);
  spy.core = fx.core;
  fx.core->broker = &spy_ops;
  fx.core->broker_ctx = &spy;
  struct client a, b;
  client_open(fx.core, &a, "r2");
  assert_int_equal(spy.subs, 1);
  assert_string_equal(spy.last_sub, "r2");
  client_open(fx.core, &b, "r2");
  say(fx.core, &a, "{\"id\":3,\"op\":\"join\",\"room\":\"r2\"}"); /* already in: no second subscription */
  assert_int_equal(spy.subs, 1);
  say(fx.core, &a, "{\"id\":4,\"op\":\"leave\",\"room\":\"r2\"}");
  assert_int_equal(spy.unsubs, 0);
  client_close(fx.core, &b); /* the last member here */
  assert_int_equal(spy.unsubs, 1);
  client_close(fx.core, &a);
  fixture_free(&fx);
}

/* A broker that answers later: the ack waits for its answer and then precedes the event; the sender's
 * connection gone before the answer is no harm (its ack is dropped, the others still get the event). */
static void test_publish_answered_later(void **state) {
  (void)state;
  struct fixture fx;
  fixture_init(&fx, 0);
  memset(&spy, 0, sizeof spy);
  spy.core = fx.core;
  fx.core->broker = &spy_ops;
  fx.core->broker_ctx = &spy;
  struct client a, b;
  client_open(fx.core, &a, "r3");
  client_open(fx.core, &b, "r3");
  json_array_clear(a.fk.got); /* b's join event */
  send_msg(fx.core, &a, 20, "r3");
  assert_int_equal(spy.pubs, 1);
  assert_int_equal(json_array_size(a.fk.got), 0); /* nothing until the broker answers */
  spy_flush();
  assert_int_equal(json_array_size(a.fk.got), 2);
  json_t *ack = json_object_get(json_array_get(a.fk.got, 0), "ok");
  assert_non_null(ack);
  assert_int_equal(json_integer_value(json_object_get(ack, "seq")), 1);
  assert_int_equal(json_integer_value(json_object_get(json_array_get(a.fk.got, 1), "seq")), 1);
  assert_int_equal(json_integer_value(json_object_get(json_array_get(b.fk.got, 0), "seq")), 1);
  send_msg(fx.core, &a, 21, "r3");
  client_close(fx.core, &a); /* b hears that a left */
  json_array_clear(b.fk.got);
  spy_flush();
  assert_int_equal(json_array_size(b.fk.got), 1);
  json_t *ev = json_array_get(b.fk.got, 0);
  assert_string_equal(json_string_value(json_object_get(ev, "cmid")), "c21");
  assert_int_equal(json_integer_value(json_object_get(ev, "seq")), 2);
  client_close(fx.core, &b);
  fixture_free(&fx);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_mid_format),
      cmocka_unit_test(test_mids_unique_across_nodes),
      cmocka_unit_test(test_local_publish_order),
      cmocka_unit_test(test_subscribe_refcount),
      cmocka_unit_test(test_publish_answered_later),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
