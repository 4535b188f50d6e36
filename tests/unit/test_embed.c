/* Unit tests for include/parley/parley.h: lifecycle on a caller's loop (repeated, restart, the loop closes
 * cleanly), the configuration builder, misuse errors, and publish/history/presence/metrics/hooks in
 * process. Run under ASan by tools/test: a leaked handle or allocation fails. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
/* cmocka needs the four headers above first */
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "parley/parley.h"

/* ---- helpers ------------------------------------------------------------------------------------- */

static char data_dir[] = "/tmp/parley-test-embed-XXXXXX";

static int free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof a;
  assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
  assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
  close(fd);
  return ntohs(a.sin_port);
}

/* A quiet server on a free port with its data in data_dir. */
static parley_server *make_server(int *port_out) {
  parley_config *cfg = NULL;
  assert_int_equal(parley_config_new(&cfg), 0);
  char port[16];
  int p = free_port();
  snprintf(port, sizeof port, "%d", p);
  assert_int_equal(parley_config_set(cfg, "server.port", port), 0);
  assert_int_equal(parley_config_set(cfg, "server.data_dir", data_dir), 0);
  assert_int_equal(parley_config_set(cfg, "server.web_root", ""), 0);
  assert_int_equal(parley_config_set(cfg, "log.level", "error"), 0);
  assert_int_equal(parley_config_set(cfg, "auth.allow_anonymous", "true"), 0);
  assert_int_equal(parley_config_set(cfg, "rooms.tmp-*.history", "false"), 0);
  parley_server *s = NULL;
  char err[256];
  int rc = parley_server_new_with_config(&s, cfg, err, sizeof err);
  if (rc) print_error("parley_server_new_with_config: %s\n", err);
  assert_int_equal(rc, 0);
  parley_config_free(cfg); /* the server keeps a copy */
  if (port_out) *port_out = p;
  return s;
}

struct stop_state {
  int stopped;
  int free_in_cb;
};

static void on_stopped(parley_server *s, void *ud) {
  struct stop_state *st = ud;
  st->stopped++;
  if (st->free_in_cb) assert_int_equal(parley_server_free(s), 0);
}

static void stop_timer_cb(uv_timer_t *t) {
  parley_server *s = t->data;
  struct stop_state *st = (struct stop_state *)((void **)t->loop->data)[0];
  assert_int_equal(parley_server_stop(s, on_stopped, st), 0);
  assert_int_equal(parley_server_stop(s, on_stopped, st), -EALREADY);
  uv_close((uv_handle_t *)t, NULL);
}

/* Run loop until s stopped, stopping it from a timer after ms. */
static void run_then_stop(uv_loop_t *loop, parley_server *s, struct stop_state *st, uint64_t ms) {
  void *slots[1] = {st};
  loop->data = slots;
  uv_timer_t t;
  uv_timer_init(loop, &t);
  t.data = s;
  uv_timer_start(&t, stop_timer_cb, ms, 0);
  uv_run(loop, UV_RUN_DEFAULT);
  loop->data = NULL;
}

/* ---- lifecycle ----------------------------------------------------------------------------------- */

static void test_lifecycle_repeated(void **state) {
  for (int i = 0; i < 3; i++) {
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    parley_server *s = make_server(NULL);
    assert_int_equal(parley_server_start(s, &loop), 0);
    assert_int_equal(parley_server_free(s), -EBUSY); /* running: refused, nothing freed */
    struct stop_state st = {.free_in_cb = i == 1};
    run_then_stop(&loop, s, &st, 30);
    assert_int_equal(st.stopped, 1);
    assert_int_equal(uv_loop_close(&loop), 0); /* nothing of Parley's left */
    if (!st.free_in_cb) assert_int_equal(parley_server_free(s), 0);
  }
}

static void test_restart_same_server(void **state) {
  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  parley_server *s = make_server(NULL);
  for (int i = 0; i < 2; i++) {
    assert_int_equal(parley_server_start(s, &loop), 0);
    assert_int_not_equal(parley_server_port(s), 0);
    struct stop_state st = {0};
    run_then_stop(&loop, s, &st, 20);
    assert_int_equal(st.stopped, 1);
    assert_int_equal(parley_server_port(s), 0);
  }
  assert_int_equal(uv_loop_close(&loop), 0);
  assert_int_equal(parley_server_free(s), 0);
}

static void test_start_fails_when_port_taken(void **state) {
  int port;
  parley_server *a = make_server(&port);
  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  assert_int_equal(parley_server_start(a, &loop), 0);

  parley_config *cfg;
  assert_int_equal(parley_config_new(&cfg), 0);
  char p[16];
  snprintf(p, sizeof p, "%d", port);
  assert_int_equal(parley_config_set(cfg, "server.port", p), 0);
  assert_int_equal(parley_config_set(cfg, "server.data_dir", data_dir), 0);
  assert_int_equal(parley_config_set(cfg, "log.level", "error"), 0);
  assert_int_equal(parley_config_set(cfg, "server.web_root", ""), 0);
  parley_server *b;
  assert_int_equal(parley_server_new_with_config(&b, cfg, NULL, 0), 0);
  parley_config_free(cfg);
  assert_int_equal(parley_server_start(b, &loop), -EADDRINUSE);
  assert_int_equal(parley_server_stop(b, NULL, NULL), -ENOTCONN);
  assert_int_equal(parley_server_free(b), 0); /* a failed start leaves nothing running */

  struct stop_state st = {0};
  run_then_stop(&loop, a, &st, 10);
  assert_int_equal(uv_loop_close(&loop), 0);
  assert_int_equal(parley_server_free(a), 0);
}

/* ---- configuration and misuse --------------------------------------------------------------------- */

static void test_config_errors(void **state) {
  parley_config *cfg = NULL;
  assert_int_equal(parley_config_new(NULL), -EINVAL);
  assert_int_equal(parley_config_new(&cfg), 0);
  assert_string_equal(parley_config_error(cfg), "");
  assert_int_equal(parley_config_set(cfg, "no.such_key", "1"), -EINVAL);
  assert_non_null(strstr(parley_config_error(cfg), "no.such_key"));
  int rc = parley_config_set(cfg, "server.port", "99999");
  assert_true(rc == -ERANGE || rc == -EINVAL);
  assert_non_null(strstr(parley_config_error(cfg), "server.port"));
  assert_int_equal(parley_config_set(cfg, "server.port", "not-a-number"), -EINVAL);
  assert_int_equal(parley_config_set(cfg, "server.port", NULL), -EINVAL);
  assert_int_equal(parley_config_set(NULL, "server.port", "1"), -EINVAL);
  assert_int_equal(parley_config_set(cfg, "server.port", "18080"), 0);
  assert_string_equal(parley_config_error(cfg), "");
  assert_int_equal(parley_config_load_dir(cfg, "/nonexistent/conf.d"), -ENOENT);
  assert_non_null(strstr(parley_config_error(cfg), "/nonexistent/conf.d"));
  assert_int_equal(parley_config_load_dir(cfg, NULL), -EINVAL);
  parley_config_free(cfg);
  parley_config_free(NULL);

  char err[256] = "";
  parley_server *s = (parley_server *)1;
  assert_int_equal(parley_server_new(&s, "/nonexistent/conf.d", err, sizeof err), -ENOENT);
  assert_null(s);
  assert_non_null(strstr(err, "/nonexistent/conf.d"));
  assert_int_equal(parley_server_new_with_config(&s, NULL, err, sizeof err), -EINVAL);
  assert_int_equal(parley_server_new(NULL, NULL, err, sizeof err), -EINVAL);
}

static int never(void *ud, const struct parley_event *ev, struct parley_result *res) { return PARLEY_PASS; }

static void test_misuse(void **state) {
  assert_string_equal(parley_strerror(0), "success");
  assert_non_null(parley_strerror(-EALREADY));
  assert_non_null(parley_strerror(-12345));
  assert_int_equal(parley_abi_version(), PARLEY_ABI_VERSION);
  assert_non_null(parley_version());

  assert_int_equal(parley_server_start(NULL, NULL), -EINVAL);
  assert_int_equal(parley_server_stop(NULL, NULL, NULL), -EINVAL);
  assert_int_equal(parley_server_publish(NULL, "a", "1", 1), -EINVAL);
  assert_int_equal(parley_server_free(NULL), 0);
  assert_int_equal(parley_server_run(NULL, 0), -EINVAL);

  parley_server *s = make_server(NULL);
  assert_int_equal(parley_server_start(s, NULL), -EINVAL);
  assert_int_equal(parley_server_stop(s, NULL, NULL), -ENOTCONN);
  assert_int_equal(parley_server_publish(s, "lobby", "1", 1), -ENOTCONN);
  assert_int_equal(parley_server_kick(s, "u1", NULL), -ENOTCONN);
  assert_int_equal(parley_server_presence(s, "lobby", NULL, NULL), -ENOTCONN);
  assert_int_equal(parley_server_hook(s, PARLEY_HOOK__COUNT, never, NULL, 0), -EINVAL);
  assert_int_equal(parley_server_hook(s, PARLEY_HOOK_MESSAGE, NULL, NULL, 0), -EINVAL);
  assert_int_equal(parley_server_hook(NULL, PARLEY_HOOK_MESSAGE, never, NULL, 0), -EINVAL);
  struct parley_metrics m;
  assert_int_equal(parley_server_metrics(s, NULL, sizeof m), -EINVAL);
  assert_int_equal(parley_server_metrics(s, &m, sizeof m), 0);
  assert_int_equal(m.connections, 0);

  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  assert_int_equal(parley_server_start(s, &loop), 0);
  assert_int_equal(parley_server_start(s, &loop), -EALREADY);
  assert_int_equal(parley_server_run(s, 0), -EALREADY);
  assert_int_equal(parley_server_publish(s, "bad room name with spaces", "1", 1), -EINVAL);
  assert_int_equal(parley_server_publish(s, "", "1", 1), -EINVAL);
  assert_int_equal(parley_server_publish(s, "lobby", "{not json", 9), -EINVAL);
  assert_int_equal(parley_server_presence(s, "bad room name", NULL, NULL), -EINVAL);
  assert_int_equal(parley_server_kick(s, "", NULL), -EINVAL);
  assert_int_equal(parley_server_kick(s, "nobody", "x"), 0);
  assert_int_equal(parley_server_history(s, "lobby", 0, 10, NULL, NULL), -EINVAL);
  struct stop_state st = {0};
  run_then_stop(&loop, s, &st, 10);
  assert_int_equal(uv_loop_close(&loop), 0);
  assert_int_equal(parley_server_free(s), 0);
}

/* ---- acting and reading in process --------------------------------------------------------------- */

struct seen {
  int calls;
  int status;
  size_t n;
  uint64_t last_seq;
  char last_body[64];
  char last_user[32];
};

static void on_history(parley_server *s, int status, const struct parley_message *msgs, size_t n, void *ud) {
  struct seen *h = ud;
  h->calls++;
  h->status = status;
  h->n = n;
  if (n) {
    h->last_seq = msgs[n - 1].seq;
    snprintf(h->last_body, sizeof h->last_body, "%s", msgs[n - 1].body);
    snprintf(h->last_user, sizeof h->last_user, "%s", msgs[n - 1].user_id);
  }
}

struct pub_ctx {
  parley_server *s;
  struct seen durable, ephemeral;
  int phase;
  int hook_calls;
};

static int count_messages(void *ud, const struct parley_event *ev, struct parley_result *res) {
  ((struct pub_ctx *)ud)->hook_calls++;
  return PARLEY_PASS;
}

static void pub_timer(uv_timer_t *t) {
  struct pub_ctx *c = t->data;
  if (c->phase == 0) {
    for (int i = 1; i <= 3; i++) {
      char body[32];
      int n = snprintf(body, sizeof body, "{\"tick\":%d}", i);
      assert_int_equal(parley_server_publish(c->s, "news", body, (size_t)n), 0);
      assert_int_equal(parley_server_publish(c->s, "tmp-x", body, (size_t)n), 0);
    }
    assert_int_equal(parley_server_presence(c->s, "news", NULL, NULL), 0);
    c->phase = 1;
    uv_timer_start(t, pub_timer, 200, 0); /* let the store commit */
    return;
  }
  if (c->phase == 1) {
    assert_int_equal(parley_server_history(c->s, "news", 0, 2, on_history, &c->durable), 0);
    assert_int_equal(parley_server_history(c->s, "tmp-x", 0, 0, on_history, &c->ephemeral), 0);
    assert_int_equal(c->ephemeral.calls, 0); /* never before returning */
    c->phase = 2;
    uv_timer_start(t, pub_timer, 200, 0);
    return;
  }
  struct parley_metrics m;
  assert_int_equal(parley_server_metrics(c->s, &m, sizeof m), 0);
  assert_true(m.messages_total >= 6);
  assert_true(m.rooms >= 1); /* "tmp-x" (no history) keeps its ring; "news" may be released */
  assert_int_equal(parley_server_stop(c->s, NULL, NULL), 0);
  uv_close((uv_handle_t *)t, NULL);
}

static void test_publish_history_metrics(void **state) {
  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  struct pub_ctx c = {0};
  c.s = make_server(NULL);
  assert_int_equal(parley_server_hook(c.s, PARLEY_HOOK_MESSAGE, count_messages, &c, 0), 0);
  assert_int_equal(parley_server_start(c.s, &loop), 0);
  uv_timer_t t;
  uv_timer_init(&loop, &t);
  t.data = &c;
  uv_timer_start(&t, pub_timer, 10, 0);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);
  assert_int_equal(parley_server_free(c.s), 0);

  assert_int_equal(c.durable.calls, 1);
  assert_int_equal(c.durable.status, 0);
  assert_int_equal(c.durable.n, 2); /* limit 2: the newest two */
  assert_string_equal(c.durable.last_body, "{\"tick\":3}");
  assert_string_equal(c.durable.last_user, "parley");
  assert_int_equal(c.ephemeral.calls, 1);
  assert_int_equal(c.ephemeral.n, 3);
  assert_int_equal(c.ephemeral.last_seq, 3);
  assert_int_equal(c.hook_calls, 0); /* publishes do not go through on_message */
}

/* parley_server_run on Parley's own loop: SIGTERM (handle_signals) drains and returns 0; run again. */
static void *send_sigterm(void *arg) {
  usleep(200 * 1000);
  kill(getpid(), SIGTERM);
  return NULL;
}

static void test_run_own_loop(void **state) {
  parley_server *s = make_server(NULL);
  for (int i = 0; i < 2; i++) {
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, send_sigterm, NULL), 0);
    assert_int_equal(parley_server_run(s, 1), 0);
    pthread_join(th, NULL);
  }
  assert_int_equal(parley_server_free(s), 0);
}

int main(void) {
  if (!mkdtemp(data_dir)) return 1;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_lifecycle_repeated),
      cmocka_unit_test(test_restart_same_server),
      cmocka_unit_test(test_start_fails_when_port_taken),
      cmocka_unit_test(test_config_errors),
      cmocka_unit_test(test_misuse),
      cmocka_unit_test(test_publish_history_metrics),
      cmocka_unit_test(test_run_own_loop),
  };
  int rc = cmocka_run_group_tests(tests, NULL, NULL);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", data_dir);
  if (system(cmd)) rc = rc ? rc : 1;
  return rc;
}
