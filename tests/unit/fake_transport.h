/* A fake transport for core unit tests (test_broker.c, test_session.c): a conn_tx that keeps every frame
 * the core queues, decoded as JSON, and say(), which hands a text to the core as net/ does (decoded by the
 * JSON-v1 format), and a fixture with a core of its own. Static functions using cmocka's asserts: include it
 * after <cmocka.h>. */
#ifndef PARLEY_TEST_FAKE_TRANSPORT_H
#define PARLEY_TEST_FAKE_TRANSPORT_H

#include <jansson.h>
#include <string.h>

#include "config.h"
#include "core/core.h"
#include "proto/v1.h"

/* ---- a fake transport: every frame the core queues, decoded ---- */

struct fake {
  json_t *got; /* array of the documents received, oldest first */
  bool closed;
};

static json_t *frame_doc(const frame_t *f) {
  assert_int_equal(f->flags & FRAME_BINARY, 0); /* JSON: text */
  return json_loadb((const char *)frame_payload_c(f), f->len, 0, NULL);
}

static const struct format *json_format(void) {
  formats_v1_register();
  return &format_v1_json;
}

static int fake_send(void *ctx, frame_t *f) {
  struct fake *fk = ctx;
  json_t *doc = frame_doc(f);
  assert_non_null(doc);
  json_array_append_new(fk->got, doc);
  return 0;
}
static void fake_close(void *ctx, enum conn_close_why why, const char *reason) {
  (void)why;
  (void)reason;
  ((struct fake *)ctx)->closed = true;
}
static size_t fake_queued(void *ctx) {
  (void)ctx;
  return 0;
}
static const struct conn_tx fake_tx = {fake_send, fake_close, fake_queued};

struct client {
  struct fake fk;
  struct conn *c;
};

static void say(struct core *core, struct client *cl, const char *text) {
  /* as net/ hands a message over: decoded by the connection's format */
  static struct decoder dec; /* reused; its buffers live as long as the test */
  struct request req;
  char err[256];
  enum perr rc =
      format_v1_json.decode(&dec, (const uint8_t *)text, strlen(text), false, &req, err, sizeof err);
  if (rc == PERR_OK)
    core_conn_request(core, cl->c, &req);
  else
    core_conn_refused(core, cl->c, req.id, rc, err);
  decoder_done(&dec, &req);
}

/* A core without a store or a loop, guests allowed, with the given server.node_id. */
struct fixture {
  struct config cfg;
  struct core *core;
};

static void fixture_init(struct fixture *fx, int node_id) {
  assert_int_equal(config_defaults(&fx->cfg), 0);
  fx->cfg.auth_allow_anonymous = true;
  fx->cfg.server_node_id = node_id;
  assert_non_null(fx->core = core_new(&fx->cfg, NULL));
}

static void fixture_free(struct fixture *fx) {
  core_free(fx->core);
  config_free(&fx->cfg);
}

#endif
