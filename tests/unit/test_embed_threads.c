/* Two Parley servers in one process, each on its own thread and uv loop (own port and data dir), through
 * the public API only (include/parley/parley.h): a raw WebSocket client per server sends concurrently to
 * both, and the test checks that they are independent — each client sees only its own server's messages,
 * each server's log callback gets only its own lines at its own log.level — and that both stop cleanly
 * (run under ASan by tools/test: a leak, a race on shared buffers or a handle left open fails). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
/* cmocka needs the four headers above first */
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <uv.h>

#include "parley/parley.h"

#define NSEND 300  /* messages each client sends, pipelined */
#define PAD   1500 /* bytes of padding in each body: "xxx..." from A, "zzz..." from B */

/* ---- one server on its own thread ------------------------------------------------------------------ */

struct srv {
  const char *tag;   /* "A" / "B": in every body its client sends */
  char pad;          /* the body's padding character */
  const char *level; /* log.level */
  int hook_rc;       /* what its on_message handler returns (negative: a handler error, logged) */
  int port;
  char dir[64];
  parley_server *s;
  pthread_t th;
  uv_loop_t loop;
  uv_async_t stop;
  sem_t started;
  int start_rc, stopped, loop_close_rc;
  /* from the log callback (loop and storage threads) */
  pthread_mutex_t mu;
  int lines[4];     /* per level */
  int listen_lines; /* "listening on ...:<own port>" */
  int foreign;      /* lines naming the other server's port or data dir */
  const struct srv *other;
  /* from the on_message handler (loop thread) */
  int hook_calls;
};

static int free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof a;
  assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
  assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
  close(fd);
  return ntohs(a.sin_port);
}

static void on_log(void *ud, int level, const char *msg) {
  struct srv *v = ud;
  char own[32], other[32];
  snprintf(own, sizeof own, ":%d", v->port);
  snprintf(other, sizeof other, ":%d", v->other->port);
  pthread_mutex_lock(&v->mu);
  if (level >= 0 && level < 4) v->lines[level]++;
  if (strstr(msg, "listening on") && strstr(msg, own)) v->listen_lines++;
  if (strstr(msg, other) || strstr(msg, v->other->dir)) v->foreign++;
  pthread_mutex_unlock(&v->mu);
}

static int on_message(void *ud, const struct parley_event *ev, struct parley_result *res) {
  struct srv *v = ud;
  v->hook_calls++;
  return v->hook_rc;
}

static void on_stopped(parley_server *s, void *ud) { ((struct srv *)ud)->stopped++; }

static void on_stop_async(uv_async_t *a) {
  struct srv *v = a->data;
  parley_server_stop(v->s, on_stopped, v);
  uv_close((uv_handle_t *)a, NULL);
}

static void *srv_main(void *arg) {
  struct srv *v = arg;
  v->start_rc = uv_loop_init(&v->loop);
  if (!v->start_rc) v->start_rc = uv_async_init(&v->loop, &v->stop, on_stop_async);
  v->stop.data = v;
  if (!v->start_rc) v->start_rc = parley_server_start(v->s, &v->loop);
  if (v->start_rc) {
    if (!uv_is_closing((uv_handle_t *)&v->stop)) uv_close((uv_handle_t *)&v->stop, NULL);
  }
  sem_post(&v->started);
  uv_run(&v->loop, UV_RUN_DEFAULT); /* until the stop completes */
  v->loop_close_rc = uv_loop_close(&v->loop);
  return NULL;
}

static void srv_make(struct srv *v) {
  snprintf(v->dir, sizeof v->dir, "/tmp/parley-test-threads-%s-XXXXXX", v->tag);
  assert_non_null(mkdtemp(v->dir));
  v->port = free_port();
  pthread_mutex_init(&v->mu, NULL);
  sem_init(&v->started, 0, 0);
  parley_config *cfg = NULL;
  assert_int_equal(parley_config_new(&cfg), 0);
  char port[16];
  snprintf(port, sizeof port, "%d", v->port);
  const char *kv[][2] = {
      {"server.port", port},     {"server.data_dir", v->dir},      {"server.web_root", ""},
      {"log.level", v->level},   {"auth.allow_anonymous", "true"}, {"rate.send", "off"},
      {"rate.send_user", "off"}, {"rate.send_ip", "off"},          {"hooks.on_message.fail", "open"},
  };
  for (size_t i = 0; i < sizeof kv / sizeof kv[0]; i++) {
    int rc = parley_config_set(cfg, kv[i][0], kv[i][1]);
    if (rc) print_error("%s: %s\n", kv[i][0], parley_config_error(cfg));
    assert_int_equal(rc, 0);
  }
  char err[256];
  int rc = parley_server_new_with_config(&v->s, cfg, err, sizeof err);
  if (rc) print_error("parley_server_new_with_config: %s\n", err);
  assert_int_equal(rc, 0);
  parley_config_free(cfg);
  assert_int_equal(parley_server_set_log(v->s, on_log, v), 0);
  assert_int_equal(parley_server_hook(v->s, PARLEY_HOOK_MESSAGE, on_message, v, 0), 0);
}

/* ---- a minimal blocking WebSocket client (RFC 6455 framing, JSON text frames) ------------------------ */

static int ws_connect(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct timeval tv = {.tv_sec = 10};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  struct sockaddr_in a = {
      .sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (connect(fd, (struct sockaddr *)&a, sizeof a)) {
    close(fd);
    return -1;
  }
  char req[320];
  int n = snprintf(req, sizeof req,
                   "GET /ws HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                   "Sec-WebSocket-Protocol: parley.v1.json\r\n\r\n",
                   port);
  if (send(fd, req, (size_t)n, MSG_NOSIGNAL) != n) goto fail;
  char resp[1024];
  size_t got = 0;
  while (got < sizeof resp - 1) { /* byte by byte: nothing of the first frame is read here */
    if (recv(fd, resp + got, 1, 0) != 1) goto fail;
    got++;
    resp[got] = 0;
    if (got >= 4 && !memcmp(resp + got - 4, "\r\n\r\n", 4)) break;
  }
  if (strncmp(resp, "HTTP/1.1 101", 12)) {
    ssize_t more = recv(fd, resp, sizeof resp - 1, 0);
    resp[more > 0 ? more : 0] = 0;
    print_error("handshake refused: %s\n", resp);
    goto fail;
  }
  return fd;
fail:
  close(fd);
  return -1;
}

static int ws_send(int fd, const char *text) {
  size_t len = strlen(text), h = 2;
  uint8_t *f = malloc(len + 14);
  f[0] = 0x81; /* FIN | text */
  if (len < 126) {
    f[1] = 0x80 | (uint8_t)len;
  } else {
    f[1] = 0x80 | 126;
    f[2] = (uint8_t)(len >> 8);
    f[3] = (uint8_t)len;
    h = 4;
  }
  memset(f + h, 0, 4); /* mask key 0: the payload goes as is */
  memcpy(f + h + 4, text, len);
  size_t total = h + 4 + len;
  ssize_t w = send(fd, f, total, MSG_NOSIGNAL);
  free(f);
  return w == (ssize_t)total ? 0 : -1;
}

static int read_full(int fd, void *p, size_t n) {
  for (size_t got = 0; got < n;) {
    ssize_t r = recv(fd, (char *)p + got, n - got, 0);
    if (r <= 0) return -1;
    got += (size_t)r;
  }
  return 0;
}

/* The next text frame's payload (malloc'd, NUL-terminated; the caller frees it), or NULL (closed,
 * timeout). Other frames (pings) are skipped. */
static char *ws_recv(int fd) {
  for (;;) {
    uint8_t h[2];
    if (read_full(fd, h, 2)) return NULL;
    uint64_t len = h[1] & 0x7f;
    if (len == 126) {
      uint8_t e[2];
      if (read_full(fd, e, 2)) return NULL;
      len = (uint64_t)e[0] << 8 | e[1];
    } else if (len == 127) {
      uint8_t e[8];
      if (read_full(fd, e, 8)) return NULL;
      len = 0;
      for (int i = 0; i < 8; i++) len = len << 8 | e[i];
    }
    char *p = malloc(len + 1);
    if (!p || read_full(fd, p, len)) {
      free(p);
      return NULL;
    }
    p[len] = 0;
    if ((h[0] & 0x0f) == 0x1) return p;
    free(p);
    if ((h[0] & 0x0f) == 0x8) return NULL; /* close */
  }
}

/* Read until the reply to request id; returns it (the caller frees it) or NULL. */
static char *ws_reply(int fd, int id) {
  char want[32];
  snprintf(want, sizeof want, "\"re\":%d,", id);
  for (char *m; (m = ws_recv(fd));) {
    if (strstr(m, want)) return m;
    free(m);
  }
  return NULL;
}

/* ---- one client per server, on its own thread -------------------------------------------------------- */

struct client {
  const struct srv *v;
  int ok_replies, own_events, foreign_events, errors;
  char *history; /* the last history reply (owned) */
};

static void *client_main(void *arg) {
  struct client *c = arg;
  const char *other = c->v->other->tag;
  int fd = ws_connect(c->v->port);
  if (fd < 0) {
    print_error("client %s: cannot connect to port %d\n", c->v->tag, c->v->port);
    c->errors++;
    return NULL;
  }
  char *m = NULL;
  if (ws_send(fd, "{\"id\":1,\"op\":\"hello\"}") || !(m = ws_reply(fd, 1)) || !strstr(m, "\"ok\"")) {
    print_error("client %s: hello: %s\n", c->v->tag, m ? m : "no reply");
    c->errors++;
  }
  free(m);
  m = NULL;
  if (ws_send(fd, "{\"id\":2,\"op\":\"join\",\"room\":\"lobby\"}") || !(m = ws_reply(fd, 2)) ||
      !strstr(m, "\"ok\""))
    c->errors++;
  free(m);
  char pad[PAD + 1];
  memset(pad, c->v->pad, PAD);
  pad[PAD] = 0;
  for (int i = 0; i < NSEND; i++) {
    char req[PAD + 200];
    snprintf(req, sizeof req,
             "{\"id\":%d,\"op\":\"send\",\"room\":\"lobby\",\"cmid\":\"%s%d\",\"body\":{\"from\":\"%s\","
             "\"n\":%d,\"pad\":\"%s\"}}",
             100 + i, c->v->tag, i, c->v->tag, i, pad);
    if (ws_send(fd, req)) c->errors++;
  }
  /* every reply, and the message events in between (the sender gets its own messages too) */
  char own[32], foreign[32];
  snprintf(own, sizeof own, "\"from\":\"%s\"", c->v->tag);
  snprintf(foreign, sizeof foreign, "\"from\":\"%s\"", other);
  for (int replies = 0; replies < NSEND;) {
    if (!(m = ws_recv(fd))) {
      c->errors++;
      break;
    }
    if (strstr(m, "\"re\":")) replies++;
    if (strstr(m, "\"re\":") && strstr(m, "\"ok\"")) c->ok_replies++;
    if (strstr(m, "\"err\"")) {
      print_error("client %s: %s\n", c->v->tag, m);
      c->errors++;
    }
    if (strstr(m, "\"ev\":\"message\"")) {
      if (strstr(m, own)) c->own_events++;
      if (strstr(m, foreign)) c->foreign_events++;
    }
    free(m);
  }
  if (ws_send(fd, "{\"id\":3,\"op\":\"history\",\"room\":\"lobby\",\"limit\":200}") ||
      !(c->history = ws_reply(fd, 3)))
    c->errors++;
  close(fd);
  return NULL;
}

static int count(const char *hay, const char *needle) {
  int n = 0;
  for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle)) n++;
  return n;
}

static void rm_rf(const char *dir) {
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  assert_int_equal(system(cmd), 0);
}

static void test_two_servers_two_threads(void **state) {
  struct srv a = {.tag = "A", .pad = 'x', .level = "info", .hook_rc = PARLEY_PASS};
  struct srv b = {
      .tag = "B", .pad = 'z', .level = "error", .hook_rc = -7}; /* every send logs a handler error */
  a.other = &b;
  b.other = &a;
  srv_make(&a);
  srv_make(&b);
  assert_int_equal(pthread_create(&a.th, NULL, srv_main, &a), 0);
  assert_int_equal(pthread_create(&b.th, NULL, srv_main, &b), 0);
  sem_wait(&a.started);
  sem_wait(&b.started);
  assert_int_equal(a.start_rc, 0);
  assert_int_equal(b.start_rc, 0);

  struct client ca = {.v = &a}, cb = {.v = &b};
  pthread_t ta, tb;
  assert_int_equal(pthread_create(&ta, NULL, client_main, &ca), 0);
  assert_int_equal(pthread_create(&tb, NULL, client_main, &cb), 0);
  pthread_join(ta, NULL);
  pthread_join(tb, NULL);

  uv_async_send(&a.stop);
  uv_async_send(&b.stop);
  pthread_join(a.th, NULL);
  pthread_join(b.th, NULL);

  /* both stopped cleanly, on their own loops */
  assert_int_equal(a.stopped, 1);
  assert_int_equal(b.stopped, 1);
  assert_int_equal(a.loop_close_rc, 0);
  assert_int_equal(b.loop_close_rc, 0);

  /* each client saw its own server only */
  for (struct client *c = &ca; c; c = c == &ca ? &cb : NULL) {
    assert_int_equal(c->errors, 0);
    assert_int_equal(c->ok_replies, NSEND);
    assert_int_equal(c->foreign_events, 0);
    assert_true(c->own_events > 0);
    assert_non_null(c->history);
    char own[32], foreign[32];
    snprintf(own, sizeof own, "\"from\":\"%s\"", c->v->tag);
    snprintf(foreign, sizeof foreign, "\"from\":\"%s\"", c->v->other->tag);
    assert_int_equal(count(c->history, own), 200);
    assert_int_equal(count(c->history, foreign), 0);
    char last[48], mixed[3] = {c->v->other->pad, c->v->other->pad, 0};
    snprintf(last, sizeof last, "{\"from\":\"%s\",\"n\":%d,\"pad\":\"", c->v->tag, NSEND - 1);
    assert_non_null(strstr(c->history, last)); /* newest last */
    assert_null(strstr(c->history, mixed));    /* no byte of the other server's bodies */
    free(c->history);
  }
  assert_int_equal(a.hook_calls, NSEND);
  assert_int_equal(b.hook_calls, NSEND);

  /* each log callback got its own server's lines, at its own level */
  assert_int_equal(a.listen_lines, 1);
  assert_true(a.lines[PARLEY_LOG_INFO] >= 3); /* listening, store open, stopping, stopped */
  assert_int_equal(a.lines[PARLEY_LOG_ERROR], 0);
  assert_int_equal(a.lines[PARLEY_LOG_DEBUG], 0);
  assert_int_equal(b.listen_lines, 0); /* info: under log.level error */
  assert_int_equal(b.lines[PARLEY_LOG_INFO], 0);
  assert_int_equal(b.lines[PARLEY_LOG_WARN], 0);
  assert_int_equal(b.lines[PARLEY_LOG_DEBUG], 0);
  assert_int_equal(b.lines[PARLEY_LOG_ERROR], NSEND); /* "handler returned -7", one per send */
  assert_int_equal(a.foreign, 0);
  assert_int_equal(b.foreign, 0);

  assert_int_equal(parley_server_free(a.s), 0);
  assert_int_equal(parley_server_free(b.s), 0);
  pthread_mutex_destroy(&a.mu);
  pthread_mutex_destroy(&b.mu);
  sem_destroy(&a.started);
  sem_destroy(&b.started);
  rm_rf(a.dir);
  rm_rf(b.dir);
}

/* parley_server_set_log: only while not running; NULL goes back to stderr. */
static void test_set_log_misuse(void **state) {
  assert_int_equal(parley_server_set_log(NULL, on_log, NULL), -EINVAL);
  struct srv a = {.tag = "C", .level = "error"}, b = {.tag = "D"};
  a.other = &b;
  srv_make(&a);
  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  assert_int_equal(parley_server_start(a.s, &loop), 0);
  assert_int_equal(parley_server_set_log(a.s, NULL, NULL), -EBUSY);
  assert_int_equal(parley_server_stop(a.s, on_stopped, &a), 0);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(a.stopped, 1);
  assert_int_equal(uv_loop_close(&loop), 0);
  assert_int_equal(parley_server_set_log(a.s, NULL, NULL), 0);
  assert_int_equal(parley_server_free(a.s), 0);
  pthread_mutex_destroy(&a.mu);
  sem_destroy(&a.started);
  rm_rf(a.dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_two_servers_two_threads),
      cmocka_unit_test(test_set_log_misuse),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
