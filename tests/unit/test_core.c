/* Unit tests for the core (src/core) through a fake transport: no sockets, no store (every room is
 * ephemeral), requests decoded by a registered wire format and handed to core_conn_request, as net/ does.
 * The transport keeps every frame the core queues. Covers the op handlers (hello, join, send, history,
 * typing), fan-out (one encoding per format in use, shared by its recipients), replay at the switch (join
 * with since), presence grace (detach, resume within session.resume_ttl, end after it), typing throttling
 * (typing.interval), neutral close reasons, and a third wire format: a line-based text format defined here
 * only, which shows that a format plugs in without touching src/core/. */
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

#include "auth/auth.h"
#include "config.h"
#include "core/core.h"
#include "proto/format.h"
#include "proto/v1.h"
#include "util/log.h"

/* ---- a test-only wire format: one request or reply per line of text ------------------------------------
 * request:  ID OP [KEY=VALUE ...]   (VALUE: JSON if it parses as JSON, else a string)
 * replies:  ID ok JSON | ID err CODE MSG | ID ack ROOM SEQ
 * events:   message ROOM SEQ USER BODY | EV JSON (the event's members) */

static enum perr line_decode(struct decoder *d, const uint8_t *p, size_t n, bool binary, struct request *req,
                             char *err, size_t errlen) {
  req->id = NULL;
  char *text = strndup((const char *)p, n), *save = NULL;
  json_t *doc = json_object();
  char *id = strtok_r(text, " ", &save), *op = id ? strtok_r(NULL, " ", &save) : NULL;
  if (binary || !op) {
    snprintf(err, errlen, "expected: ID OP [KEY=VALUE ...]");
    free(text);
    json_decref(doc);
    return PERR_BAD_FRAME;
  }
  json_object_set_new(doc, "id", json_integer(atoll(id)));
  json_object_set_new(doc, "op", json_string(op));
  for (char *kv; (kv = strtok_r(NULL, " ", &save));) {
    char *eq = strchr(kv, '=');
    if (!eq) continue;
    *eq = 0;
    json_t *v = json_loads(eq + 1, JSON_DECODE_ANY, NULL);
    json_object_set_new(doc, kv, v ? v : json_string(eq + 1));
  }
  free(text);
  d->doc = doc;
  const char *msg = NULL;
  enum perr rc = request_parse(doc, req, &msg);
  json_incref(req->id);
  if (rc != PERR_OK) snprintf(err, errlen, "%s", msg);
  return rc;
}

static frame_t *line_frame(char *text) { /* takes text */
  frame_t *f = text ? frame_from(text, strlen(text), 0) : NULL;
  free(text);
  return f;
}

static char *json_text(const json_t *v) { return json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY); }

static frame_t *line_reply(const struct reply *r) {
  char *out = NULL, *j = NULL;
  long long id = r->id ? (long long)json_integer_value(r->id) : -1;
  switch (r->kind) {
  case REPLY_OK:
    j = json_text(r->ok);
    if (asprintf(&out, "%lld ok %s", id, j) < 0) out = NULL;
    break;
  case REPLY_ERR:
    if (asprintf(&out, "%lld err %s %s", id, r->code, r->msg) < 0) out = NULL;
    break;
  case REPLY_ACK:
    if (asprintf(&out, "%lld ack %s %llu", id, r->room, (unsigned long long)r->seq) < 0) out = NULL;
    break;
  }
  free(j);
  return line_frame(out);
}

static int line_events; /* encode_event calls of the line format */

static frame_t *line_event(const struct event *e, uint32_t flags) {
  char *out = NULL;
  line_events++;
  if (e->msg) {
    const struct wire_msg *m = e->msg;
    char *body = m->body->json ? strndup(m->body->json, m->body->json_len) : json_text(m->body->tree);
    if (asprintf(&out, "message %s %llu %s %s", m->room, (unsigned long long)m->seq, m->user_id, body) < 0)
      out = NULL;
    free(body);
  } else {
    char *j = json_text(e->doc);
    if (asprintf(&out, "%s %s", json_string_value(json_object_get(e->doc, "ev")), j) < 0) out = NULL;
    free(j);
  }
  frame_t *f = line_frame(out);
  if (f) f->flags |= flags;
  return f;
}

static struct format line_format = {
    .name = "test.line", .decode = line_decode, .encode_reply = line_reply, .encode_event = line_event};

/* ---- the fake transport ----------------------------------------------------------------------------------
 */

#define OUT_MAX 256

struct fconn {
  struct conn *c;
  const struct format *fmt;
  frame_t *out[OUT_MAX]; /* what the core queued, oldest first (a reference each) */
  int nout, next;        /* next: the first not yet looked at */
  bool closed;
  enum conn_close_why why;
};

static int tx_send(void *ctx, frame_t *f) {
  struct fconn *fc = ctx;
  assert_false(fc->closed);
  assert_true(fc->nout < OUT_MAX);
  fc->out[fc->nout++] = frame_ref(f);
  return 0;
}

static void tx_close(void *ctx, enum conn_close_why why, const char *reason) {
  struct fconn *fc = ctx;
  (void)reason;
  fc->closed = true;
  fc->why = why;
}

static size_t tx_queued(void *ctx) {
  (void)ctx;
  return 0;
}

static const struct conn_tx fake_tx = {.send = tx_send, .close = tx_close, .queued = tx_queued};

static struct config cfg;
static struct auth *auth;
static struct decoder dec;

static void fc_open(struct core *core, struct fconn *fc, const struct format *fmt) {
  memset(fc, 0, sizeof *fc);
  fc->fmt = fmt;
  fc->c = core_conn_open(core, fmt, &fake_tx, fc, "127.0.0.1");
  assert_non_null(fc->c);
}

static void fc_clear(struct fconn *fc) {
  for (int i = 0; i < fc->nout; i++) frame_unref(fc->out[i]);
  fc->nout = fc->next = 0;
}

static void fc_close(struct core *core, struct fconn *fc, bool leaving) {
  core_conn_closed(core, fc->c, leaving);
  fc_clear(fc);
}

/* One message from the client, as net/ hands it over. */
static void fc_say(struct core *core, struct fconn *fc, const char *text) {
  struct request req;
  char err[256];
  enum perr rc = fc->fmt->decode(&dec, (const uint8_t *)text, strlen(text),
                                 (fc->fmt->flags & FRAME_BINARY) != 0, &req, err, sizeof err);
  if (rc == PERR_OK)
    core_conn_request(core, fc->c, &req);
  else
    core_conn_refused(core, fc->c, req.id, rc, err);
  decoder_done(&dec, &req);
}

/* The next frame the connection got, as text (static buffer); NULL when there is none. */
static const char *fc_next(struct fconn *fc, frame_t **frame) {
  static char buf[4096];
  if (fc->next >= fc->nout) return NULL;
  frame_t *f = fc->out[fc->next++];
  if (frame) *frame = f;
  snprintf(buf, sizeof buf, "%.*s", (int)f->len, (const char *)frame_payload(f));
  if (getenv("TEST_CORE_TRACE")) fprintf(stderr, "%p: %s\n", (void *)fc, buf);
  return buf;
}

/* The next frame of a JSON connection as a tree (new reference); fails when there is none. */
static json_t *fc_json(struct fconn *fc) {
  const char *t = fc_next(fc, NULL);
  assert_non_null(t);
  json_t *doc = json_loads(t, 0, NULL);
  assert_non_null(doc);
  return doc;
}

/* Skip frames until one whose text contains needle; returns it (fails if none). */
static const char *fc_expect(struct fconn *fc, const char *needle) {
  for (const char *t; (t = fc_next(fc, NULL));)
    if (strstr(t, needle)) return t;
  fail_msg("no frame with %s", needle);
  return NULL;
}

static struct core *core_make(void) {
  struct core *core = core_new(&cfg, NULL);
  assert_non_null(core);
  core_set_auth(core, auth);
  return core;
}

static const char conf[] = "auth.allow_anonymous = true\n"
                           "auth.jwt_secret = \"test-core-secret\"\n"
                           "rate.send = off\nrate.send_user = off\nrate.send_ip = off\nrate.join = off\n"
                           "rate.typing = off\nrate.connect_ip = off\n"
                           "typing.interval = 1s\n"
                           "session.resume_ttl = 2s\n"
                           "history.ring_size = 16\n";

static int setup(void **state) {
  (void)state;
  char err[256];
  log_set_level(LOG_ERROR);
  if (config_defaults(&cfg) || config_load_text(&cfg, "test_core.conf", conf, err, sizeof err) ||
      auth_new(&cfg, &auth, err, sizeof err))
    return -1;
  formats_v1_register();
  return format_register(&line_format) < 0 ? -1 : 0;
}

static int teardown(void **state) {
  (void)state;
  auth_free(auth);
  config_free(&cfg);
  decoder_free(&dec);
  return 0;
}

/* hello as a guest (JSON or line); returns the resume token (static buffer). */
static const char *hello(struct core *core, struct fconn *fc) {
  static char token[64];
  const char *t;
  if (fc->fmt == &line_format) {
    fc_say(core, fc, "1 hello");
    t = fc_expect(fc, "1 ok ");
  } else {
    fc_say(core, fc, "{\"id\":1,\"op\":\"hello\"}");
    t = fc_next(fc, NULL);
  }
  const char *k = strstr(t, "\"resume_token\":\"");
  assert_non_null(k);
  snprintf(token, sizeof token, "%.*s", (int)strcspn(k + 16, "\""), k + 16);
  return token;
}

/* ---- tests ------------------------------------------------------------------------------------------------
 */

static void test_fanout_one_encoding_per_format(void **state) {
  (void)state;
  struct core *core = core_make();
  struct fconn j[3], l, mp;
  for (int i = 0; i < 3; i++) fc_open(core, &j[i], &format_v1_json);
  fc_open(core, &l, &line_format);
  fc_open(core, &mp, &format_v1_msgpack);
  for (int i = 0; i < 3; i++) hello(core, &j[i]);
  hello(core, &l);
  for (int i = 0; i < 3; i++) fc_say(core, &j[i], "{\"id\":2,\"op\":\"join\",\"room\":\"lobby\"}");
  fc_say(core, &l, "2 join room=lobby");
  for (int i = 0; i < 3; i++) fc_clear(&j[i]);
  fc_clear(&l);

  line_events = 0;
  fc_say(core, &j[0],
         "{\"id\":3,\"op\":\"send\",\"room\":\"lobby\",\"cmid\":\"c3\",\"body\":{\"text\":\"hi\"}}");
  /* the sender: its ack, then the event (every member gets it, the sender included) */
  json_t *ack = fc_json(&j[0]);
  assert_int_equal(json_integer_value(json_object_get(ack, "re")), 3);
  assert_int_equal(json_integer_value(json_object_get(json_object_get(ack, "ok"), "seq")), 1);
  json_decref(ack);
  frame_t *fr[3];
  for (int i = 0; i < 3; i++) {
    const char *t = fc_next(&j[i], &fr[i]);
    assert_non_null(t);
    json_t *ev = json_loads(t, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(ev, "ev")), "message");
    assert_string_equal(json_string_value(json_object_get(json_object_get(ev, "body"), "text")), "hi");
    json_decref(ev);
  }
  /* one JSON encoding shared by the three JSON members; the line member gets the line format's */
  assert_ptr_equal(fr[0], fr[1]);
  assert_ptr_equal(fr[1], fr[2]);
  frame_t *lf = NULL;
  const char *t = fc_next(&l, &lf);
  assert_non_null(t);
  assert_true(lf != fr[0]);
  assert_non_null(strstr(t, "message lobby 1 "));
  assert_non_null(strstr(t, "{\"text\":\"hi\"}"));
  assert_null(fc_next(&l, NULL));
  assert_int_equal(line_events, 1); /* one line encoding, for the one line member */

  /* the line client sends: JSON members get the JSON event, the line sender its ack then its event */
  fc_say(core, &l, "4 send room=lobby cmid=c4 body={\"n\":2}");
  assert_string_equal(fc_next(&l, NULL), "4 ack lobby 2");
  assert_non_null(strstr(fc_next(&l, NULL), "message lobby 2 "));
  json_t *ev = fc_json(&j[1]);
  assert_int_equal(json_integer_value(json_object_get(ev, "seq")), 2);
  json_decref(ev);

  /* history from the ring, in each format */
  fc_say(core, &l, "5 history room=lobby");
  t = fc_next(&l, NULL);
  assert_non_null(strstr(t, "5 ok {\"room\":\"lobby\",\"messages\":[{\"ev\":\"message\""));
  assert_non_null(strstr(t, "\"more\":false"));
  fc_clear(&j[2]);
  fc_say(core, &j[2], "{\"id\":6,\"op\":\"history\",\"room\":\"lobby\",\"limit\":1}");
  json_t *h = fc_json(&j[2]);
  json_t *msgs = json_object_get(json_object_get(h, "ok"), "messages");
  assert_int_equal(json_array_size(msgs), 1);
  assert_int_equal(json_integer_value(json_object_get(json_array_get(msgs, 0), "seq")), 2);
  json_decref(h);

  /* errors: a frame the format refuses, a request before hello, an op the room does not allow */
  fc_say(core, &mp, "\x81\xa2id\x07"); /* MessagePack {"id":7}: no op */
  assert_non_null(mp.out[0]);
  assert_true(mp.out[0]->flags & FRAME_BINARY);
  fc_say(core, &l, "nonsense");
  assert_string_equal(fc_next(&l, NULL), "-1 err bad_frame expected: ID OP [KEY=VALUE ...]");
  fc_say(core, &j[0], "{\"id\":8,\"op\":\"send\",\"room\":\"elsewhere\",\"cmid\":\"c8\",\"body\":1}");
  assert_non_null(strstr(fc_expect(&j[0], "\"re\":8"), "not_joined"));

  for (int i = 0; i < 3; i++) fc_close(core, &j[i], true);
  fc_close(core, &l, true);
  fc_close(core, &mp, true);
  core_free(core);
}

static void test_replay_at_switch(void **state) {
  (void)state;
  struct core *core = core_make();
  struct fconn a, b;
  fc_open(core, &a, &format_v1_json);
  fc_open(core, &b, &line_format);
  hello(core, &a);
  hello(core, &b);
  fc_say(core, &a, "{\"id\":2,\"op\":\"join\",\"room\":\"r\"}");
  for (int i = 1; i <= 3; i++) {
    char m[128];
    snprintf(m, sizeof m, "{\"id\":%d,\"op\":\"send\",\"room\":\"r\",\"cmid\":\"m%d\",\"body\":%d}", 10 + i,
             i, i);
    fc_say(core, &a, m);
  }
  /* b comes (back) having seen seq 1: seq 2 and 3 are replayed before the ok, in b's format, encoded from
   * the ring's fields (nobody had needed the line encoding of these messages yet) */
  line_events = 0;
  fc_say(core, &b, "2 join room=r since=1");
  const char *t = fc_next(&b, NULL);
  assert_true(!strncmp(t, "message r 2 ", 12) && !strcmp(t + strlen(t) - 2, " 2"));
  t = fc_next(&b, NULL);
  assert_true(!strncmp(t, "message r 3 ", 12) && !strcmp(t + strlen(t) - 2, " 3"));
  t = fc_next(&b, NULL);
  assert_non_null(strstr(t, "2 ok {\"room\":\"r\",\"seq\":3,"));
  assert_non_null(strstr(t, "\"recovered\":true"));
  assert_non_null(strstr(t, "\"replayed\":2"));
  assert_null(fc_next(&b, NULL));
  assert_int_equal(line_events, 2);
  /* a second line client replaying the same: the ring already holds the line encodings */
  struct fconn b2;
  fc_open(core, &b2, &line_format);
  hello(core, &b2);
  fc_say(core, &b2, "2 join room=r since=1");
  assert_non_null(strstr(fc_expect(&b2, "2 ok "), "\"replayed\":2"));
  assert_int_equal(line_events, 3);      /* + b2's join event, to b: the messages were not encoded again */
  assert_ptr_equal(b2.out[1], b.out[1]); /* the same frames (after hello's ok): seq 2 and 3 */
  assert_ptr_equal(b2.out[2], b.out[2]);
  fc_close(core, &b2, true);
  /* a replay of what the ring no longer holds (ring_size 16) is partial: the ok says what is missing */
  for (int i = 4; i <= 30; i++) {
    char m[128];
    snprintf(m, sizeof m, "{\"id\":%d,\"op\":\"send\",\"room\":\"r\",\"cmid\":\"m%d\",\"body\":%d}", 10 + i,
             i, i);
    fc_say(core, &a, m);
  }
  struct fconn c;
  fc_open(core, &c, &format_v1_json);
  hello(core, &c);
  fc_say(core, &c, "{\"id\":2,\"op\":\"join\",\"room\":\"r\",\"since\":1}");
  int events = 0;
  json_t *ok = NULL;
  while (!ok) {
    json_t *d = fc_json(&c);
    if (json_object_get(d, "ev")) {
      assert_int_equal(json_integer_value(json_object_get(d, "seq")), 15 + events);
      events++;
      json_decref(d);
    } else {
      ok = d;
    }
  }
  assert_int_equal(events, 16);
  json_t *o = json_object_get(ok, "ok");
  assert_true(json_is_false(json_object_get(o, "recovered")));
  assert_int_equal(json_integer_value(json_object_get(json_object_get(o, "missing"), "to")), 14);
  json_decref(ok);
  fc_close(core, &a, true);
  fc_close(core, &b, true);
  fc_close(core, &c, true);
  core_free(core);
}

static void test_presence_grace(void **state) {
  (void)state;
  struct core *core = core_make();
  struct fconn a, b;
  fc_open(core, &a, &format_v1_json);
  fc_open(core, &b, &format_v1_json);
  char token[64];
  snprintf(token, sizeof token, "%s", hello(core, &a));
  hello(core, &b);
  fc_say(core, &a, "{\"id\":2,\"op\":\"join\",\"room\":\"g\"}");
  fc_say(core, &b, "{\"id\":2,\"op\":\"join\",\"room\":\"g\"}");
  fc_clear(&a);
  fc_clear(&b);

  /* a drops (no close from the client): its session waits session.resume_ttl (2 s); nobody sees it leave */
  fc_close(core, &a, false);
  core_tick(core, core_mono_ms() + 500);
  assert_null(fc_next(&b, NULL));
  fc_open(core, &a, &format_v1_json);
  char m[256];
  snprintf(m, sizeof m, "{\"id\":1,\"op\":\"hello\",\"resume\":\"%s\"}", token);
  fc_say(core, &a, m);
  json_t *r = fc_json(&a);
  json_t *ok = json_object_get(r, "ok");
  assert_true(json_is_true(json_object_get(ok, "resumed")));
  assert_string_equal(
      json_string_value(json_object_get(json_array_get(json_object_get(ok, "rooms"), 0), "room")), "g");
  json_decref(r);
  assert_null(fc_next(&b, NULL)); /* the user never left */

  /* dropped again, and the grace runs out: the session ends, b sees a leave, the token resumes nothing */
  fc_close(core, &a, false);
  core_tick(core, core_mono_ms() + 1000);
  assert_null(fc_next(&b, NULL));
  core_tick(core, core_mono_ms() + 2500);
  assert_non_null(strstr(fc_expect(&b, "\"ev\":\"leave\""), "\"room\":\"g\""));
  fc_open(core, &a, &format_v1_json);
  fc_say(core, &a, m);
  r = fc_json(&a);
  assert_true(json_is_false(json_object_get(json_object_get(r, "ok"), "resumed")));
  json_decref(r);

  /* a client that says goodbye (leaving) ends its session at once */
  fc_say(core, &a, "{\"id\":2,\"op\":\"join\",\"room\":\"g\"}");
  fc_clear(&b);
  fc_close(core, &a, true);
  fc_expect(&b, "\"ev\":\"leave\"");

  fc_close(core, &b, true);
  core_free(core);
}

static void test_typing_throttle(void **state) {
  (void)state;
  struct core *core = core_make();
  struct fconn a, b;
  fc_open(core, &a, &format_v1_json);
  fc_open(core, &b, &line_format);
  hello(core, &a);
  hello(core, &b);
  fc_say(core, &a, "{\"id\":2,\"op\":\"join\",\"room\":\"t\"}");
  fc_say(core, &b, "2 join room=t");
  fc_clear(&a);
  fc_clear(&b);

  fc_say(core, &a, "{\"id\":3,\"op\":\"typing\",\"room\":\"t\",\"active\":true}");
  assert_non_null(strstr(fc_next(&a, NULL), "\"re\":3,\"ok\""));
  assert_null(fc_next(&b, NULL)); /* typing is sent by the tick, aggregated per room */
  uint64_t t0 = core_mono_ms();
  core_tick(core, t0);
  const char *t = fc_next(&b, NULL);
  assert_non_null(t);
  assert_true(!strncmp(t, "typing {\"ev\":\"typing\",\"room\":\"t\",\"users\":[{\"id\":\"", 48));
  assert_true(b.out[0]->flags & FRAME_EPHEMERAL);
  assert_null(fc_next(&a, NULL)); /* never echoed to the typist */

  /* a stops within typing.interval (1 s) of that event: news, but held until the interval has passed */
  static const char none[] = "typing {\"ev\":\"typing\",\"room\":\"t\",\"users\":[]}";
  fc_say(core, &a, "{\"id\":4,\"op\":\"typing\",\"room\":\"t\",\"active\":false}");
  core_tick(core, t0 + 10);
  core_tick(core, t0 + 900);
  assert_null(fc_next(&b, NULL));
  core_tick(core, t0 + 1100);
  assert_string_equal(fc_next(&b, NULL), none);
  core_tick(core, t0 + 2200);
  assert_null(fc_next(&b, NULL)); /* nothing new: nothing sent */

  /* typing again, then sending: the send ends typing, the next event says nobody types */
  fc_say(core, &a, "{\"id\":5,\"op\":\"typing\",\"room\":\"t\",\"active\":true}");
  core_tick(core, t0 + 3300);
  assert_non_null(strstr(fc_next(&b, NULL), "\"users\":[{\"id\":\"guest-"));
  fc_say(core, &a, "{\"id\":6,\"op\":\"send\",\"room\":\"t\",\"cmid\":\"x\",\"body\":\"x\"}");
  assert_non_null(strstr(fc_next(&b, NULL), "message t 1 "));
  core_tick(core, t0 + 3400);
  assert_null(fc_next(&b, NULL));
  core_tick(core, t0 + 4400);
  assert_string_equal(fc_next(&b, NULL), none);

  fc_close(core, &a, true);
  fc_close(core, &b, true);
  core_free(core);
}

/* The core closes with a neutral reason (the transport picks the code: net/ws.h). */
static void test_close_reasons(void **state) {
  (void)state;
  struct core *core = core_make();
  struct fconn a, b;
  fc_open(core, &a, &format_v1_json);
  fc_open(core, &b, &line_format);
  hello(core, &b);
  core_tick(core, core_mono_ms() + (uint64_t)cfg.limits_hello_timeout + 1);
  assert_true(a.closed);
  assert_int_equal(a.why, CONN_CLOSE_HELLO_TIMEOUT);
  assert_false(b.closed);
  fc_close(core, &a, false);
  core_close_all(core, CONN_CLOSE_SHUTDOWN, "bye");
  assert_true(b.closed);
  assert_int_equal(b.why, CONN_CLOSE_SHUTDOWN);
  fc_close(core, &b, false);
  core_free(core);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_fanout_one_encoding_per_format),
      cmocka_unit_test(test_replay_at_switch),
      cmocka_unit_test(test_presence_grace),
      cmocka_unit_test(test_typing_throttle),
      cmocka_unit_test(test_close_reasons),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
