/* test_store: the storage backends (store/backend.h). One suite, run once per backend: every test in
 * STORE_TESTS runs against SQLite on a fresh file and against MongoDB in a fresh database.
 *
 * MongoDB: the URI comes from PARLEY_TEST_MONGO_URI (tools/test starts the MongoDB-wire emulator with
 * tests/support/mongo-server and exports it; point it at a real mongod to run the same tests there).
 * Without it every mongo test is reported SKIPPED, never passed. Each test uses its own database,
 * parley_test_<pid>_<n> (the emulator has no dropDatabase; on a real server it is dropped after).
 *
 * PostgreSQL: the server of PARLEY_TEST_POSTGRES_URI (tools/test starts one with tests/support/pg-server
 * and exports it); without it this program starts its own throwaway server with that script, and reports
 * the postgres tests SKIPPED, saying why, only if that fails. Each test uses its own schema,
 * parley_test_<pid>_<n> (store.postgres.schema), dropped after. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the four above, which it needs */

#include "config.h"
#include "store/backend.h"
#include "store/store.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <limits.h>
#include <mongoc/mongoc.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define BOUND_MS 5000 /* a failing call against an unreachable store must return within this */

/* ---- small helpers ---- */

static uint64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void set_str(char **field, const char *v) {
  free(*field);
  *field = v ? strdup(v) : NULL;
  if (v) assert_non_null(*field);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  return remove(path);
}
static void rm_rf(const char *dir) { nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS); }

/* A loopback port nobody listens on. */
static unsigned closed_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(fd >= 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
  socklen_t len = sizeof a;
  assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
  close(fd);
  return ntohs(a.sin_port);
}

/* ---- a TCP proxy in front of the MongoDB server, to take it "down" and bring it back ---- */

#define PROXY_MAX_CONNS 64

struct proxy {
  struct sockaddr_in up; /* the real server */
  struct sockaddr_in at; /* where the proxy listens */
  int lfd;               /* listening socket; -1 while down */
  int ctl[2], ack[2];    /* commands to the proxy thread ('d' down, 'u' up, 'q' quit) and its answers */
  int pair[PROXY_MAX_CONNS][2];
  size_t npairs;
  pthread_t thread;
};

static int proxy_listen(struct proxy *p) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(fd, (struct sockaddr *)&p->at, sizeof p->at) || listen(fd, 16)) {
    close(fd);
    return -1;
  }
  socklen_t len = sizeof p->at;
  getsockname(fd, (struct sockaddr *)&p->at, &len);
  return fd;
}

static void proxy_drop(struct proxy *p, size_t i) {
  close(p->pair[i][0]);
  close(p->pair[i][1]);
  p->pair[i][0] = p->pair[p->npairs - 1][0];
  p->pair[i][1] = p->pair[p->npairs - 1][1];
  p->npairs--;
}

static void *proxy_main(void *arg) {
  struct proxy *p = arg;
  for (;;) {
    struct pollfd fds[2 + 2 * PROXY_MAX_CONNS];
    size_t n = 0;
    fds[n++] = (struct pollfd){.fd = p->ctl[0], .events = POLLIN};
    fds[n++] = (struct pollfd){.fd = p->lfd, .events = POLLIN}; /* fd -1 is ignored by poll */
    for (size_t i = 0; i < p->npairs; i++) {
      fds[n++] = (struct pollfd){.fd = p->pair[i][0], .events = POLLIN};
      fds[n++] = (struct pollfd){.fd = p->pair[i][1], .events = POLLIN};
    }
    if (poll(fds, n, -1) < 0) continue;
    if (fds[0].revents) {
      char c;
      if (read(p->ctl[0], &c, 1) != 1) c = 'q';
      while (p->npairs) proxy_drop(p, 0);
      if (p->lfd >= 0) close(p->lfd);
      p->lfd = c == 'u' ? proxy_listen(p) : -1;
      char ok = c == 'u' && p->lfd < 0 ? 'e' : 'k';
      if (write(p->ack[1], &ok, 1) != 1 || c == 'q') return NULL;
      continue;
    }
    if (fds[1].revents & POLLIN) {
      int cfd = accept(p->lfd, NULL, NULL), ufd = socket(AF_INET, SOCK_STREAM, 0);
      if (cfd >= 0 && p->npairs < PROXY_MAX_CONNS &&
          connect(ufd, (struct sockaddr *)&p->up, sizeof p->up) == 0) {
        p->pair[p->npairs][0] = cfd;
        p->pair[p->npairs][1] = ufd;
        p->npairs++;
      } else {
        if (cfd >= 0) close(cfd);
        close(ufd);
      }
    }
    /* Pairs are polled in the order they were listed; dropping one ends this round. */
    for (size_t i = 0, k = 2; i < p->npairs; i++, k += 2) {
      bool dead = false;
      for (int side = 0; side < 2 && !dead; side++) {
        if (!fds[k + side].revents) continue;
        char buf[65536];
        ssize_t r = read(p->pair[i][side], buf, sizeof buf);
        if (r <= 0) dead = true;
        for (ssize_t off = 0; !dead && off < r;) {
          ssize_t w = write(p->pair[i][!side], buf + off, (size_t)(r - off));
          if (w <= 0)
            dead = true;
          else
            off += w;
        }
      }
      if (dead) {
        proxy_drop(p, i);
        break;
      }
    }
  }
}

static char proxy_cmd(struct proxy *p, char c) {
  assert_int_equal(write(p->ctl[1], &c, 1), 1);
  char ok = 'e';
  assert_int_equal(read(p->ack[0], &ok, 1), 1);
  return ok;
}

/* A proxy to the server of uri (single host, no credentials, no TLS); NULL if that cannot be proxied. */
static struct proxy *proxy_start(const char *uristr) {
  mongoc_uri_t *uri = mongoc_uri_new(uristr);
  if (!uri) return NULL;
  const mongoc_host_list_t *h = mongoc_uri_get_hosts(uri);
  bool ok = h && !h->next && !mongoc_uri_get_username(uri) && !mongoc_uri_get_tls(uri);
  struct proxy *p = NULL;
  struct addrinfo *ai = NULL, hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM};
  char port[8];
  if (ok) {
    snprintf(port, sizeof port, "%u", h->port);
    ok = getaddrinfo(h->host, port, &hints, &ai) == 0;
  }
  if (ok) {
    p = calloc(1, sizeof *p);
    assert_non_null(p);
    memcpy(&p->up, ai->ai_addr, sizeof p->up);
    p->at = (struct sockaddr_in){.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(pipe(p->ctl), 0);
    assert_int_equal(pipe(p->ack), 0);
    p->lfd = proxy_listen(p);
    assert_true(p->lfd >= 0);
    assert_int_equal(pthread_create(&p->thread, NULL, proxy_main, p), 0);
  }
  if (ai) freeaddrinfo(ai);
  mongoc_uri_destroy(uri);
  return p;
}

static void proxy_stop(struct proxy *p) {
  if (!p) return;
  proxy_cmd(p, 'q');
  pthread_join(p->thread, NULL);
  close(p->ctl[0]);
  close(p->ctl[1]);
  close(p->ack[0]);
  close(p->ack[1]);
  free(p);
}

/* ---- fixtures: one per test, with a writer and a reader ctx on a fresh store ---- */

struct fx;

struct kind {
  const char *name;
  const struct store_backend *be;
  int (*prepare)(struct fx *f);  /* fill f->cfg for a fresh store; nonzero: unavailable (skip) */
  void (*cleanup)(struct fx *f); /* remove the store */
  /* Fault injection: after fault_prepare (which may reopen the ctxs), fault(f, true) makes appends fail
   * part-way (SQLite: the 2nd message of a batch; MongoDB: the server goes away) until fault(f, false).
   * fault_prepare returns false when this run cannot inject (the test is skipped). */
  bool (*fault_prepare)(struct fx *f);
  void (*fault)(struct fx *f, bool on);
  bool fault_blocks_reads; /* reads fail too while the fault is on */
};

struct fx {
  const struct kind *k;
  struct config cfg;
  char *tmpdir;       /* sqlite */
  char dbname[64];    /* mongo: database; postgres: schema */
  struct proxy *prox; /* mongo and postgres fault injection */
  const char *skip_reason;
  void *w, *r; /* writer and reader ctx */
};

static char err[512];

static void *open_ctx(struct fx *f) {
  void *ctx = NULL;
  err[0] = '\0';
  int rc = f->k->be->open(&f->cfg, &ctx, err, sizeof err);
  if (rc) fail_msg("%s open: %d: %s", f->k->name, rc, err);
  assert_non_null(ctx);
  return ctx;
}

static void close_ctxs(struct fx *f) {
  if (f->w) f->k->be->close(f->w);
  if (f->r) f->k->be->close(f->r);
  f->w = f->r = NULL;
}

static void reopen(struct fx *f) {
  close_ctxs(f);
  f->w = open_ctx(f); /* the writer first, as store.c does: it creates the schema */
  f->r = open_ctx(f);
}

/* The fixture of a test that needs a working store: skips when this backend is not available here. */
static struct fx *fixture(void **state) {
  struct fx *f = *state;
  if (f->skip_reason) {
    print_message("%s: %s\n", f->k->name, f->skip_reason);
    skip();
  }
  if (!f->w) reopen(f);
  return f;
}

static int setup(void **state, const struct kind *k) {
  struct fx *f = calloc(1, sizeof *f);
  if (!f || config_defaults(&f->cfg)) return -1;
  f->k = k;
  *state = f;
  if (k->prepare(f)) f->skip_reason = f->skip_reason ? f->skip_reason : "not available";
  return 0;
}

static int teardown(void **state) {
  struct fx *f = *state;
  close_ctxs(f);
  proxy_stop(f->prox);
  if (!f->skip_reason) f->k->cleanup(f);
  /* Freed here rather than by config_free, which frees only the keys its table declares. */
  set_str(&f->cfg.store_sqlite_path, NULL);
  set_str(&f->cfg.store_mongo_uri, NULL);
  set_str(&f->cfg.store_mongo_database, NULL);
  set_str(&f->cfg.store_postgres_uri, NULL);
  set_str(&f->cfg.store_postgres_schema, NULL);
  config_free(&f->cfg);
  free(f->tmpdir);
  free(f);
  return 0;
}

/* sqlite: data dir "data" under a fresh temporary base_dir, so the relative path is resolved and the
 * directory created by the backend. */
static int sqlite_prepare(struct fx *f) {
  char tmpl[] = "/tmp/parley-store-XXXXXX";
  assert_non_null(mkdtemp(tmpl));
  f->tmpdir = strdup(tmpl);
  set_str(&f->cfg.base_dir, tmpl);
  set_str(&f->cfg.server_data_dir, "data");
  set_str(&f->cfg.store_sqlite_path, "parley.db");
  f->cfg.store_sqlite_synchronous = 0;
  return 0;
}

static void sqlite_cleanup(struct fx *f) { rm_rf(f->tmpdir); }

static sqlite3 *sqlite_side_connection(struct fx *f) {
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/data/parley.db", f->tmpdir);
  sqlite3 *db;
  assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
  sqlite3_busy_timeout(db, 5000);
  return db;
}

static void sqlite_exec(struct fx *f, const char *sql) {
  sqlite3 *db = sqlite_side_connection(f);
  char *msg = NULL;
  if (sqlite3_exec(db, sql, NULL, NULL, &msg)) fail_msg("%s: %s", sql, msg);
  sqlite3_close(db);
}

static bool sqlite_fault_prepare(struct fx *f) { return true; }

static void sqlite_fault(struct fx *f, bool on) {
  sqlite_exec(f, on ? "CREATE TRIGGER test_fault BEFORE INSERT ON inbox WHEN NEW.cmid LIKE 'fault-%' "
                      "BEGIN SELECT RAISE(ABORT, 'injected fault'); END"
                    : "DROP TRIGGER test_fault");
}

static const char *mongo_uri(void) {
  const char *u = getenv("PARLEY_TEST_MONGO_URI");
  return u && *u ? u : NULL;
}

static int mongo_prepare(struct fx *f) {
  static unsigned n;
  if (!mongo_uri()) {
    f->skip_reason = "PARLEY_TEST_MONGO_URI is not set, skipping (tools/test starts the emulator with "
                     "tests/support/mongo-server and sets it)";
    return -1;
  }
  snprintf(f->dbname, sizeof f->dbname, "parley_test_%ld_%u", (long)getpid(), ++n);
  set_str(&f->cfg.store_mongo_uri, mongo_uri());
  set_str(&f->cfg.store_mongo_database, f->dbname);
  f->cfg.store_backend = 1;
  return 0;
}

/* Best effort: a real server drops the test database; the emulator lacks dropDatabase (in memory anyway). */
static void mongo_cleanup(struct fx *f) {
  mongoc_client_t *c = mongoc_client_new(mongo_uri());
  if (!c) return;
  mongoc_database_t *db = mongoc_client_get_database(c, f->dbname);
  mongoc_database_drop(db, NULL);
  mongoc_database_destroy(db);
  mongoc_client_destroy(c);
}

/* The writer and reader reopened through a proxy, as a direct connection (a replica-set URI would
 * discover the members' real addresses and go around the proxy). */
static bool mongo_fault_prepare(struct fx *f) {
  if (!(f->prox = proxy_start(mongo_uri()))) {
    print_message("mongo: cannot proxy %s (needs one host, no credentials, no TLS)\n", mongo_uri());
    return false;
  }
  char uri[128];
  snprintf(uri, sizeof uri, "mongodb://127.0.0.1:%u/?directConnection=true", ntohs(f->prox->at.sin_port));
  set_str(&f->cfg.store_mongo_uri, uri);
  close_ctxs(f);
  void *ctx = NULL;
  err[0] = '\0';
  if (f->k->be->open(&f->cfg, &ctx, err, sizeof err)) {
    /* e.g. the emulator's single-node replica set refuses the primaryPreferred read preference that
     * libmongoc sends over a direct connection */
    print_message("mongo: cannot open through the proxy: %s\n", err);
    return false;
  }
  f->k->be->close(ctx);
  reopen(f);
  return true;
}

static void mongo_fault(struct fx *f, bool on) { assert_int_equal(proxy_cmd(f->prox, on ? 'd' : 'u'), 'k'); }

/* ---- postgres ---- */

static char pg_started_uri[256]; /* the server this program started (main), if it did */
static const char *pg_start_failed;

static const char *pg_uri(void) {
  const char *u = getenv("PARLEY_TEST_POSTGRES_URI");
  if (u && *u) return u;
  return pg_started_uri[0] ? pg_started_uri : NULL;
}

/* Without PARLEY_TEST_POSTGRES_URI: a throwaway server from tests/support/pg-server for this run. */
#define PG_STATE "/tmp/parley-test-store-pg.state"
static void pg_server(bool start) {
#ifdef PARLEY_SOURCE_DIR
  char cmd[PATH_MAX + 128];
  if (!start) {
    if (!pg_started_uri[0]) return;
    snprintf(cmd, sizeof cmd, "%s/tests/support/pg-server stop %s.%ld >/dev/null 2>&1", PARLEY_SOURCE_DIR,
             PG_STATE, (long)getpid());
    if (system(cmd)) fprintf(stderr, "test_store: stopping the PostgreSQL server failed\n");
    return;
  }
  snprintf(cmd, sizeof cmd, "%s/tests/support/pg-server %s.%ld", PARLEY_SOURCE_DIR, PG_STATE, (long)getpid());
  FILE *fp = popen(cmd, "r");
  if (!fp || !fgets(pg_started_uri, sizeof pg_started_uri, fp)) pg_started_uri[0] = '\0';
  if (fp && pclose(fp)) pg_started_uri[0] = '\0';
  pg_started_uri[strcspn(pg_started_uri, "\n")] = '\0';
  if (!pg_started_uri[0]) pg_start_failed = "tests/support/pg-server could not start a server (see above)";
#else
  if (start) pg_start_failed = "built without PARLEY_SOURCE_DIR: cannot find tests/support/pg-server";
#endif
}

/* A connection of the test's own to the test's schema. */
static void pg_quiet(void *arg, const char *msg) {}

static PGconn *pg_side(struct fx *f) {
  PGconn *c = PQconnectdb(pg_uri());
  if (PQstatus(c) != CONNECTION_OK) fail_msg("postgres side connection: %s", PQerrorMessage(c));
  PQsetNoticeProcessor(c, pg_quiet, NULL);
  char sql[128];
  snprintf(sql, sizeof sql, "SET search_path = \"%s\"", f->dbname);
  PQclear(PQexec(c, sql));
  return c;
}

/* Run sql on a side connection; returns its SQLSTATE ("" on success) in state and the constraint name. */
static void pg_exec_state(struct fx *f, const char *sql, char *state, char *constraint) {
  PGconn *c = pg_side(f);
  PGresult *res = PQexec(c, sql);
  ExecStatusType st = PQresultStatus(res);
  state[0] = constraint[0] = '\0';
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
    const char *s = PQresultErrorField(res, PG_DIAG_SQLSTATE),
               *k = PQresultErrorField(res, PG_DIAG_CONSTRAINT_NAME);
    snprintf(state, 8, "%s", s ? s : "?????");
    snprintf(constraint, 64, "%s", k ? k : "");
    print_message("postgres: %s → %s", sql, PQresultErrorMessage(res));
  }
  PQclear(res);
  PQfinish(c);
}

static void pg_exec(struct fx *f, const char *sql) {
  char st[8], k[64];
  pg_exec_state(f, sql, st, k);
  if (st[0]) fail_msg("%s: SQLSTATE %s", sql, st);
}

static int64_t pg_count(struct fx *f, const char *sql) {
  PGconn *c = pg_side(f);
  PGresult *res = PQexec(c, sql);
  if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
    fail_msg("%s: %s", sql, PQerrorMessage(c));
  int64_t n = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
  PQclear(res);
  PQfinish(c);
  return n;
}

static int pg_prepare(struct fx *f) {
  static unsigned n;
  if (!pg_uri()) {
    f->skip_reason = pg_start_failed ? pg_start_failed : "no PostgreSQL server";
    return -1;
  }
  snprintf(f->dbname, sizeof f->dbname, "parley_test_%ld_%u", (long)getpid(), ++n);
  set_str(&f->cfg.store_postgres_uri, pg_uri());
  set_str(&f->cfg.store_postgres_schema, f->dbname);
  f->cfg.store_backend = 2;
  return 0;
}

static void pg_cleanup(struct fx *f) {
  PGconn *c = PQconnectdb(pg_uri());
  char sql[128];
  snprintf(sql, sizeof sql, "DROP SCHEMA IF EXISTS \"%s\" CASCADE", f->dbname);
  PQsetNoticeProcessor(c, pg_quiet, NULL);
  if (PQstatus(c) == CONNECTION_OK) PQclear(PQexec(c, sql));
  PQfinish(c);
}

/* The writer and reader reopened through a proxy in front of the server (host and port from the URI). */
static bool pg_fault_prepare(struct fx *f) {
  PQconninfoOption *opts = PQconninfoParse(pg_uri(), NULL);
  const char *host = NULL, *port = "5432";
  for (PQconninfoOption *o = opts; o && o->keyword; o++) {
    if (!strcmp(o->keyword, "host") && o->val) host = o->val;
    if (!strcmp(o->keyword, "hostaddr") && o->val) host = o->val;
    if (!strcmp(o->keyword, "port") && o->val) port = o->val;
  }
  struct addrinfo *ai = NULL, hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM};
  bool ok = host && host[0] != '/' && !strchr(host, ',') && getaddrinfo(host, port, &hints, &ai) == 0;
  if (!ok) {
    print_message("postgres: cannot proxy %s (needs one TCP host)\n", pg_uri());
    PQconninfoFree(opts);
    return false;
  }
  struct proxy *p = calloc(1, sizeof *p);
  assert_non_null(p);
  memcpy(&p->up, ai->ai_addr, sizeof p->up);
  freeaddrinfo(ai);
  p->at = (struct sockaddr_in){.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  assert_int_equal(pipe(p->ctl), 0);
  assert_int_equal(pipe(p->ack), 0);
  p->lfd = proxy_listen(p);
  assert_true(p->lfd >= 0);
  assert_int_equal(pthread_create(&p->thread, NULL, proxy_main, p), 0);
  f->prox = p;
  /* the same connection, as key=value pairs, with the proxy's host and port */
  char uri[512] = "";
  for (PQconninfoOption *o = opts; o && o->keyword; o++) {
    if (!o->val || !o->val[0] || !strcmp(o->keyword, "host") || !strcmp(o->keyword, "hostaddr") ||
        !strcmp(o->keyword, "port"))
      continue;
    snprintf(uri + strlen(uri), sizeof uri - strlen(uri), "%s='%s' ", o->keyword, o->val);
  }
  snprintf(uri + strlen(uri), sizeof uri - strlen(uri), "host=127.0.0.1 port=%u", ntohs(p->at.sin_port));
  PQconninfoFree(opts);
  set_str(&f->cfg.store_postgres_uri, uri);
  reopen(f);
  return true;
}

static const struct kind sqlite_kind = {
    .name = "sqlite",
    .be = &store_backend_sqlite,
    .prepare = sqlite_prepare,
    .cleanup = sqlite_cleanup,
    .fault_prepare = sqlite_fault_prepare,
    .fault = sqlite_fault,
};
static const struct kind mongo_kind = {
    .name = "mongo",
    .be = &store_backend_mongo,
    .prepare = mongo_prepare,
    .cleanup = mongo_cleanup,
    .fault_prepare = mongo_fault_prepare,
    .fault = mongo_fault,
    .fault_blocks_reads = true,
};

static const struct kind pg_kind = {
    .name = "postgres",
    .be = &store_backend_postgres,
    .prepare = pg_prepare,
    .cleanup = pg_cleanup,
    .fault_prepare = pg_fault_prepare,
    .fault = mongo_fault, /* the proxy goes down and comes back */
    .fault_blocks_reads = true,
};

static int setup_sqlite(void **state) { return setup(state, &sqlite_kind); }
static int setup_mongo(void **state) { return setup(state, &mongo_kind); }
static int setup_pg(void **state) { return setup(state, &pg_kind); }

/* ---- message helpers ---- */

static struct store_append item(const char *room, const char *user, const char *cmid, uint64_t ts) {
  static unsigned mid;
  char m[32], body[96];
  snprintf(m, sizeof m, "mid-%u", ++mid);
  snprintf(body, sizeof body, "{\"text\":\"%s from %s\"}", cmid, user);
  struct store_append a = {.msg = {.room = strdup(room),
                                   .mid = strdup(m),
                                   .ts = ts,
                                   .user_id = strdup(user),
                                   .user_name = strdup(user),
                                   .cmid = strdup(cmid),
                                   .body = strdup(body)}};
  assert_true(a.msg.room && a.msg.mid && a.msg.user_id && a.msg.user_name && a.msg.cmid && a.msg.body);
  return a;
}

static void free_items(struct store_append *v, size_t n) {
  for (size_t i = 0; i < n; i++) store_msg_clear(&v[i].msg);
}

static void append_ok(struct fx *f, struct store_append *v, size_t n) {
  err[0] = '\0';
  int rc = f->k->be->append(f->w, v, n, err, sizeof err);
  if (rc) fail_msg("append: %d: %s", rc, err);
}

/* Append one message; returns its seq (asserts it was not a duplicate). */
static uint64_t append1(struct fx *f, const char *room, const char *user, const char *cmid, uint64_t ts) {
  struct store_append a = item(room, user, cmid, ts);
  append_ok(f, &a, 1);
  assert_false(a.dup);
  uint64_t seq = a.msg.seq;
  free_items(&a, 1);
  return seq;
}

/* n messages from user u with cmids "<room>-<first>…"; ts = ts0 + i * 1000. */
static void append_n(struct fx *f, const char *room, unsigned first, unsigned n, uint64_t ts0) {
  for (unsigned i = 0; i < n; i++) {
    char cmid[64];
    snprintf(cmid, sizeof cmid, "%s-%u", room, first + i);
    append1(f, room, "u", cmid, ts0 + (uint64_t)i * 1000);
  }
}

static uint64_t head(struct fx *f, void *ctx, const char *room) {
  uint64_t seq = 12345;
  assert_int_equal(f->k->be->head(ctx, room, &seq), STORE_OK);
  return seq;
}

/* Read into seqs (ascending order checked); returns the count. */
static size_t read_seqs(struct fx *f, const char *room, uint64_t after, uint64_t before, size_t limit,
                        bool newest, uint64_t *seqs, size_t max) {
  struct store_msg_list l = {0};
  assert_int_equal(f->k->be->read(f->r, room, after, before, limit, newest, &l), STORE_OK);
  assert_true(l.n <= max);
  for (size_t i = 0; i < l.n; i++) {
    seqs[i] = l.v[i].seq;
    assert_string_equal(l.v[i].room, room);
    assert_true(l.v[i].seq > after);
    if (before) assert_true(l.v[i].seq < before);
    if (i) assert_true(l.v[i].seq > l.v[i - 1].seq);
  }
  size_t n = l.n;
  store_msg_list_free(&l);
  return n;
}

/* Read and compare with the expected seqs, given as a list ending in 0. */
#define EXPECT_READ(f, room, after, before, limit, newest, ...)                                              \
  do {                                                                                                       \
    const uint64_t want_[] = {__VA_ARGS__};                                                                  \
    size_t nwant_ = sizeof want_ / sizeof want_[0] - 1;                                                      \
    uint64_t got_[512];                                                                                      \
    size_t ngot_ = read_seqs(f, room, after, before, limit, newest, got_, 512);                              \
    if (ngot_ != nwant_)                                                                                     \
      fail_msg("read %s (%d,%d,%d,%s): %zu messages, want %zu", room, (int)(after), (int)(before),           \
               (int)(limit), (newest) ? "newest" : "oldest", ngot_, nwant_);                                 \
    for (size_t i_ = 0; i_ < nwant_; i_++) assert_int_equal(got_[i_], want_[i_]);                            \
  } while (0)

/* ---- the tests, run for every backend ---- */

static void test_append_assigns_seq_per_room(void **state) {
  struct fx *f = fixture(state);
  assert_int_equal(head(f, f->r, "a"), 0);
  assert_int_equal(append1(f, "a", "u1", "c1", 1), 1);
  assert_int_equal(append1(f, "a", "u1", "c2", 2), 2);
  assert_int_equal(append1(f, "b", "u1", "c3", 3), 1);
  assert_int_equal(append1(f, "a", "u2", "c1", 4), 3);
  assert_int_equal(append1(f, "b", "u2", "c2", 5), 2);
  assert_int_equal(head(f, f->r, "a"), 3);
  assert_int_equal(head(f, f->r, "b"), 2);
  assert_int_equal(head(f, f->w, "b"), 2);
  assert_int_equal(head(f, f->r, "c"), 0);
  assert_int_equal(f->k->be->append(f->w, NULL, 0, err, sizeof err), STORE_OK); /* empty batch */
}

static void test_batch_across_rooms(void **state) {
  struct fx *f = fixture(state);
  append1(f, "b", "u", "first", 1);
  const char *rooms[] = {"a", "b", "a", "c", "b", "a"};
  const uint64_t want[] = {1, 2, 2, 1, 3, 3};
  struct store_append v[6];
  for (size_t i = 0; i < 6; i++) {
    char cmid[16];
    snprintf(cmid, sizeof cmid, "k%zu", i);
    v[i] = item(rooms[i], "u", cmid, 100 + i);
  }
  append_ok(f, v, 6);
  for (size_t i = 0; i < 6; i++) {
    assert_false(v[i].dup);
    assert_int_equal(v[i].msg.seq, want[i]);
  }
  assert_int_equal(head(f, f->r, "a"), 3);
  assert_int_equal(head(f, f->r, "b"), 3);
  assert_int_equal(head(f, f->r, "c"), 1);

  /* Everything comes back as written. */
  struct store_msg_list l = {0};
  assert_int_equal(f->k->be->read(f->r, "a", 0, 0, 10, false, &l), STORE_OK);
  assert_int_equal(l.n, 3);
  for (size_t i = 0, j = 0; i < 6; i++) {
    if (strcmp(rooms[i], "a")) continue;
    const struct store_msg *got = &l.v[j++], *sent = &v[i].msg;
    assert_string_equal(got->room, "a");
    assert_int_equal(got->seq, sent->seq);
    assert_string_equal(got->mid, sent->mid);
    assert_int_equal(got->ts, sent->ts);
    assert_string_equal(got->user_id, sent->user_id);
    assert_string_equal(got->user_name, sent->user_name);
    assert_string_equal(got->cmid, sent->cmid);
    assert_string_equal(got->body, sent->body);
  }
  store_msg_list_free(&l);
  free_items(v, 6);
}

static void test_fields_round_trip(void **state) {
  struct fx *f = fixture(state);
  struct store_append a = item("room/ü ✓", "user@example", "cmid-ü", UINT64_C(1764000000123));
  set_str(&a.msg.body, "{\"text\":\"h\\u00e9llo \\\"q\\\" ✓ \\n\",\"n\":[1,2.5,null,true],\"o\":{}}");
  set_str(&a.msg.user_name, NULL); /* a name is optional */
  append_ok(f, &a, 1);
  struct store_msg_list l = {0};
  assert_int_equal(f->k->be->read(f->r, "room/ü ✓", 0, 0, 5, true, &l), STORE_OK);
  assert_int_equal(l.n, 1);
  assert_string_equal(l.v[0].body, a.msg.body); /* byte for byte */
  assert_null(l.v[0].user_name);
  assert_int_equal(l.v[0].ts, UINT64_C(1764000000123));
  assert_string_equal(l.v[0].cmid, "cmid-ü");
  store_msg_list_free(&l);
  free_items(&a, 1);
}

static void test_dedupe(void **state) {
  struct fx *f = fixture(state);
  struct store_append a = item("a", "u1", "c1", 1000);
  append_ok(f, &a, 1);
  assert_false(a.dup);
  assert_int_equal(a.msg.seq, 1);

  /* A retry with the same (user, cmid): the original's seq, room, mid and ts; nothing stored. Even when
   * the retry names another room. */
  struct store_append r = item("b", "u1", "c1", 2000);
  append_ok(f, &r, 1);
  assert_true(r.dup);
  assert_int_equal(r.msg.seq, 1);
  assert_string_equal(r.msg.room, "a");
  assert_string_equal(r.msg.mid, a.msg.mid);
  assert_int_equal(r.msg.ts, 1000);
  assert_int_equal(head(f, f->r, "a"), 1);
  assert_int_equal(head(f, f->r, "b"), 0);
  /* The answered item sent again (now carrying the original's mid) is still a duplicate. */
  append_ok(f, &r, 1);
  assert_true(r.dup);
  assert_int_equal(r.msg.seq, 1);
  assert_int_equal(head(f, f->r, "a"), 1);

  /* Same cmid from another user is a different message. */
  assert_int_equal(append1(f, "a", "u2", "c1", 3000), 2);

  /* Within one batch: the second (u1, c2) is a duplicate of the first; a stored one is found too. */
  struct store_append v[4] = {item("a", "u1", "c2", 4000), item("a", "u1", "c2", 4001),
                              item("a", "u1", "c1", 4002), item("a", "u3", "c2", 4003)};
  append_ok(f, v, 4);
  assert_false(v[0].dup);
  assert_int_equal(v[0].msg.seq, 3);
  assert_true(v[1].dup);
  assert_int_equal(v[1].msg.seq, 3);
  assert_string_equal(v[1].msg.mid, v[0].msg.mid);
  assert_int_equal(v[1].msg.ts, 4000);
  assert_true(v[2].dup);
  assert_int_equal(v[2].msg.seq, 1);
  assert_string_equal(v[2].msg.mid, a.msg.mid);
  assert_false(v[3].dup);
  assert_int_equal(v[3].msg.seq, 4);
  assert_int_equal(head(f, f->r, "a"), 4);
  EXPECT_READ(f, "a", 0, 0, 100, false, 1, 2, 3, 4, 0);

  /* A batch of nothing but duplicates writes nothing. */
  struct store_append d[2] = {item("a", "u1", "c1", 5000), item("a", "u3", "c2", 5001)};
  append_ok(f, d, 2);
  assert_true(d[0].dup && d[1].dup);
  assert_int_equal(d[0].msg.seq, 1);
  assert_int_equal(d[1].msg.seq, 4);
  assert_int_equal(head(f, f->r, "a"), 4);
  free_items(&a, 1);
  free_items(&r, 1);
  free_items(v, 4);
  free_items(d, 2);
}

static void test_invalid_items(void **state) {
  struct fx *f = fixture(state);
  struct store_append v[2] = {item("a", "u", "c1", 1), item("a", "u", "c2", 2)};
  set_str(&v[1].msg.cmid, NULL);
  err[0] = '\0';
  assert_int_equal(f->k->be->append(f->w, v, 2, err, sizeof err), STORE_EINVAL);
  assert_true(err[0]);
  assert_int_equal(v[0].msg.seq, 0);
  assert_int_equal(head(f, f->r, "a"), 0);
  free_items(v, 2);
}

static void test_read_ranges(void **state) {
  struct fx *f = fixture(state);
  append_n(f, "r", 1, 10, 1000);
  append_n(f, "other", 1, 3, 1000);
  EXPECT_READ(f, "r", 0, 0, 100, false, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 0);
  EXPECT_READ(f, "r", 0, 0, 100, true, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 0);
  EXPECT_READ(f, "r", 3, 0, 4, false, 4, 5, 6, 7, 0);    /* after + limit: the lowest */
  EXPECT_READ(f, "r", 0, 5, 100, false, 1, 2, 3, 4, 0);  /* before */
  EXPECT_READ(f, "r", 3, 8, 100, false, 4, 5, 6, 7, 0);  /* after and before */
  EXPECT_READ(f, "r", 3, 8, 2, false, 4, 5, 0);          /* … oldest first */
  EXPECT_READ(f, "r", 3, 8, 2, true, 6, 7, 0);           /* … newest: the highest, still ascending */
  EXPECT_READ(f, "r", 0, 0, 3, true, 8, 9, 10, 0);       /* the latest page */
  EXPECT_READ(f, "r", 0, 8, 3, true, 5, 6, 7, 0);        /* the page before it */
  EXPECT_READ(f, "r", 0, 2, 3, true, 1, 0);              /* the first, short page */
  EXPECT_READ(f, "r", 8, 0, 5, false, 9, 10, 0);         /* catching up from 8 */
  EXPECT_READ(f, "r", 10, 0, 5, false, 0);               /* nothing newer */
  EXPECT_READ(f, "r", 0, 1, 5, true, 0);                 /* nothing older than 1 */
  EXPECT_READ(f, "r", 5, 6, 5, false, 0);                /* an empty open interval */
  EXPECT_READ(f, "r", 6, 5, 5, false, 0);                /* a reversed one */
  EXPECT_READ(f, "r", 0, 0, 0, false, 0);                /* limit 0 */
  EXPECT_READ(f, "nowhere", 0, 0, 5, false, 0);          /* an unknown room */
  EXPECT_READ(f, "r", 100, 0, 5, true, 0);               /* after beyond the head */
  EXPECT_READ(f, "r", 0, UINT64_MAX, 2, false, 1, 2, 0); /* before beyond everything */
  EXPECT_READ(f, "other", 1, 0, 100, false, 2, 3, 0);

  /* Paging backwards then forwards covers every message exactly once. */
  uint64_t seqs[8], before = 0, seen = 0, total = 0;
  for (;;) {
    size_t n = read_seqs(f, "r", 0, before, 3, true, seqs, 8);
    if (!n) break;
    for (size_t i = 0; i < n; i++) seen += seqs[i];
    total += n;
    before = seqs[0];
  }
  assert_int_equal(total, 10);
  assert_int_equal(seen, 55);
  uint64_t after = 0;
  seen = total = 0;
  for (;;) {
    size_t n = read_seqs(f, "r", after, 0, 4, false, seqs, 8);
    if (!n) break;
    for (size_t i = 0; i < n; i++) seen += seqs[i];
    total += n;
    after = seqs[n - 1];
  }
  assert_int_equal(total, 10);
  assert_int_equal(seen, 55);

  /* read appends to what out already holds. */
  struct store_msg_list l = {0};
  assert_int_equal(f->k->be->read(f->r, "r", 0, 0, 2, false, &l), STORE_OK);
  assert_int_equal(f->k->be->read(f->r, "other", 0, 0, 2, true, &l), STORE_OK);
  assert_int_equal(l.n, 4);
  assert_string_equal(l.v[1].room, "r");
  assert_int_equal(l.v[1].seq, 2);
  assert_string_equal(l.v[2].room, "other");
  assert_int_equal(l.v[2].seq, 2);
  assert_int_equal(l.v[3].seq, 3);
  store_msg_list_free(&l);
}

static void test_persistence(void **state) {
  struct fx *f = fixture(state);
  append_n(f, "p", 1, 5, 1000);
  append_n(f, "q", 1, 2, 1000);
  assert_int_equal(f->k->be->set_last_seen(f->w, "ann", 777), STORE_OK);
  reopen(f);
  assert_int_equal(head(f, f->r, "p"), 5);
  assert_int_equal(head(f, f->r, "q"), 2);
  EXPECT_READ(f, "p", 0, 0, 100, false, 1, 2, 3, 4, 5, 0);
  uint64_t ts = 0;
  assert_int_equal(f->k->be->get_last_seen(f->r, "ann", &ts), STORE_OK);
  assert_int_equal(ts, 777);
  assert_int_equal(append1(f, "p", "u", "after-reopen", 9000), 6);
  /* Dedupe also holds across a restart. */
  struct store_append a = item("p", "u", "p-3", 9001);
  append_ok(f, &a, 1);
  assert_true(a.dup);
  assert_int_equal(a.msg.seq, 3);
  free_items(&a, 1);
}

static void test_last_seen(void **state) {
  struct fx *f = fixture(state);
  uint64_t ts = 99;
  assert_int_equal(f->k->be->get_last_seen(f->r, "nobody", &ts), STORE_OK);
  assert_int_equal(ts, 0);
  assert_int_equal(f->k->be->set_last_seen(f->w, "ann", 1000), STORE_OK);
  assert_int_equal(f->k->be->set_last_seen(f->w, "bob", UINT64_C(1764000000000)), STORE_OK);
  assert_int_equal(f->k->be->get_last_seen(f->r, "ann", &ts), STORE_OK);
  assert_int_equal(ts, 1000);
  assert_int_equal(f->k->be->set_last_seen(f->w, "ann", 2000), STORE_OK);
  assert_int_equal(f->k->be->get_last_seen(f->r, "ann", &ts), STORE_OK);
  assert_int_equal(ts, 2000);
  assert_int_equal(f->k->be->get_last_seen(f->w, "bob", &ts), STORE_OK);
  assert_int_equal(ts, UINT64_C(1764000000000));
}

static uint64_t retain(struct fx *f, const char *pattern, uint64_t ts_before, uint64_t keep) {
  uint64_t deleted = 12345;
  assert_int_equal(f->k->be->retain(f->w, pattern, ts_before, keep, &deleted), STORE_OK);
  return deleted;
}

static void test_retain_by_count(void **state) {
  struct fx *f = fixture(state);
  append_n(f, "r1", 1, 10, 1000);
  append_n(f, "r2", 1, 4, 1000);
  append_n(f, "x1", 1, 5, 1000);
  assert_int_equal(retain(f, "r*", 0, 3), 7 + 1);
  EXPECT_READ(f, "r1", 0, 0, 100, false, 8, 9, 10, 0);
  EXPECT_READ(f, "r2", 0, 0, 100, false, 2, 3, 4, 0);
  EXPECT_READ(f, "x1", 0, 0, 100, false, 1, 2, 3, 4, 5, 0);
  assert_int_equal(retain(f, "r*", 0, 3), 0); /* idempotent */
  assert_int_equal(retain(f, "r?", 0, 1), 2 + 2);
  EXPECT_READ(f, "r1", 0, 0, 100, false, 10, 0);
  EXPECT_READ(f, "r2", 0, 0, 100, false, 4, 0);
  assert_int_equal(retain(f, "*", 0, 0), 0);    /* no limit at all */
  assert_int_equal(retain(f, "zz*", 0, 1), 0);  /* no room matches */
  assert_int_equal(retain(f, "x1", 0, 100), 0); /* fewer messages than kept */
  /* Heads stay, and the sequence goes on. */
  assert_int_equal(head(f, f->r, "r1"), 10);
  assert_int_equal(head(f, f->r, "r2"), 4);
  assert_int_equal(append1(f, "r1", "u", "next", 99000), 11);
  EXPECT_READ(f, "r1", 0, 0, 100, false, 10, 11, 0);
}

static void test_retain_by_age(void **state) {
  struct fx *f = fixture(state);
  append_n(f, "a", 1, 8, 1000); /* ts 1000 … 8000 */
  append_n(f, "b", 1, 2, 1000); /* ts 1000, 2000 */
  assert_int_equal(retain(f, "a", 4500, 0), 4);
  EXPECT_READ(f, "a", 0, 0, 100, false, 5, 6, 7, 8, 0);
  EXPECT_READ(f, "b", 0, 0, 100, false, 1, 2, 0);
  /* Everything is old: all but each room's newest message goes. */
  assert_int_equal(retain(f, "*", UINT64_C(1) << 62, 0), 3 + 1);
  EXPECT_READ(f, "a", 0, 0, 100, false, 8, 0);
  EXPECT_READ(f, "b", 0, 0, 100, false, 2, 0);
  assert_int_equal(retain(f, "*", UINT64_C(1) << 62, 1), 0);
  assert_int_equal(head(f, f->r, "a"), 8);
  assert_int_equal(head(f, f->r, "b"), 2);
  assert_int_equal(append1(f, "a", "u", "next", 1), 9);
  /* Age and count together: a message goes if either says so, and is counted once. */
  append_n(f, "c", 1, 6, 1000); /* ts 1000 … 6000 */
  assert_int_equal(retain(f, "c", 2500, 4), 2);
  EXPECT_READ(f, "c", 0, 0, 100, false, 3, 4, 5, 6, 0);
  assert_int_equal(retain(f, "c", 4500, 4), 2);
  EXPECT_READ(f, "c", 0, 0, 100, false, 5, 6, 0);
  /* Dedupe knows only what is kept: a late retry of a removed message is stored anew, and the sequence
   * goes on from the head. */
  assert_int_equal(append1(f, "c", "u", "c-1", 7000), 7);
}

static void test_writer_and_reader(void **state) {
  struct fx *f = fixture(state);
  /* A third ctx on the same store while both are open, as a restarted reader would be. */
  void *r2 = open_ctx(f);
  for (unsigned i = 1; i <= 20; i++) {
    char cmid[16];
    snprintf(cmid, sizeof cmid, "w%u", i);
    assert_int_equal(append1(f, "wr", "u", cmid, i), i);
    /* Committed means visible to the other connections at once. */
    assert_int_equal(head(f, f->r, "wr"), i);
    uint64_t seq = 0;
    struct store_msg_list l = {0};
    assert_int_equal(f->k->be->read(r2, "wr", 0, 0, 1, true, &l), STORE_OK);
    assert_int_equal(l.n, 1);
    seq = l.v[0].seq;
    store_msg_list_free(&l);
    assert_int_equal(seq, i);
  }
  assert_int_equal(f->k->be->set_last_seen(f->w, "ann", 5), STORE_OK);
  uint64_t ts = 0;
  assert_int_equal(f->k->be->get_last_seen(r2, "ann", &ts), STORE_OK);
  assert_int_equal(ts, 5);
  f->k->be->close(r2);
}

static void test_large_batch(void **state) {
  struct fx *f = fixture(state);
  enum { N = 150 };
  struct store_append v[N];
  uint64_t next[3] = {1, 1, 1};
  const char *rooms[] = {"big-0", "big-1", "big-2"};
  for (size_t i = 0; i < N; i++) {
    char cmid[16];
    snprintf(cmid, sizeof cmid, "b%zu", i % 140); /* the last 10 repeat earlier ones */
    v[i] = item(rooms[i % 3], "u", cmid, i);
  }
  append_ok(f, v, N);
  for (size_t i = 0; i < N; i++) {
    if (i < 140) {
      assert_false(v[i].dup);
      assert_int_equal(v[i].msg.seq, next[i % 3]);
      next[i % 3]++;
    } else {
      assert_true(v[i].dup);
      assert_int_equal(v[i].msg.seq, v[i - 140].msg.seq);
      assert_string_equal(v[i].msg.room, v[i - 140].msg.room);
    }
  }
  for (size_t k = 0; k < 3; k++) assert_int_equal(head(f, f->r, rooms[k]), next[k] - 1);
  free_items(v, N);
}

/* Two writers at once (parleyd has one; a second process by mistake must not fork a sequence): every
 * append either gets a seq of its own or fails, and the stored seqs stay 1..head without a gap. */
enum { RACE_N = 40 };

struct racer {
  struct fx *f;
  void *ctx;
  unsigned id;
  int rc[RACE_N];
  uint64_t seq[RACE_N];
  char err[RACE_N][160];
};

static void *race_main(void *arg) {
  struct racer *r = arg;
  for (unsigned i = 0; i < RACE_N; i++) {
    char cmid[32];
    snprintf(cmid, sizeof cmid, "t%u-%u", r->id, i);
    struct store_append a = item("race", "u", cmid, i);
    r->rc[i] = r->f->k->be->append(r->ctx, &a, 1, r->err[i], sizeof r->err[i]);
    r->seq[i] = a.msg.seq;
    free_items(&a, 1);
  }
  return NULL;
}

static void test_two_writers(void **state) {
  struct fx *f = fixture(state);
  struct racer *r = calloc(2, sizeof *r);
  assert_non_null(r);
  r[0] = (struct racer){.f = f, .ctx = f->w, .id = 0};
  r[1] = (struct racer){.f = f, .ctx = open_ctx(f), .id = 1};
  pthread_t t[2];
  for (int k = 0; k < 2; k++) assert_int_equal(pthread_create(&t[k], NULL, race_main, &r[k]), 0);
  for (int k = 0; k < 2; k++) pthread_join(t[k], NULL);
  f->k->be->close(r[1].ctx);

  static bool taken[2 * RACE_N + 1];
  memset(taken, 0, sizeof taken);
  unsigned ok = 0, failed = 0;
  for (int k = 0; k < 2; k++)
    for (unsigned i = 0; i < RACE_N; i++) {
      if (r[k].rc[i]) {
        assert_int_equal(r[k].rc[i], STORE_EUNAVAILABLE);
        if (!failed++) print_message("%s: a racing append failed: %s\n", f->k->name, r[k].err[i]);
        continue;
      }
      ok++;
      assert_true(r[k].seq[i] >= 1 && r[k].seq[i] <= 2 * RACE_N);
      assert_false(taken[r[k].seq[i]]);
      taken[r[k].seq[i]] = true;
    }
  print_message("%s: %u racing appends stored, %u failed\n", f->k->name, ok, failed);
  assert_true(ok >= RACE_N); /* collisions are retried: most get through */
  assert_int_equal(head(f, f->r, "race"), ok);
  /* Stored: exactly the successful ones, at the seqs they were given. */
  struct store_msg_list l = {0};
  assert_int_equal(f->k->be->read(f->r, "race", 0, 0, 4 * RACE_N, false, &l), STORE_OK);
  assert_int_equal(l.n, ok);
  for (size_t j = 0; j < l.n; j++) {
    assert_int_equal(l.v[j].seq, j + 1);
    unsigned k, i;
    assert_int_equal(sscanf(l.v[j].cmid, "t%u-%u", &k, &i), 2);
    assert_int_equal(r[k].rc[i], STORE_OK);
    assert_int_equal(r[k].seq[i], j + 1);
  }
  store_msg_list_free(&l);
  free(r);
}

static void test_write_failure_leaves_nothing(void **state) {
  struct fx *f = fixture(state);
  if (!f->k->fault_prepare(f)) {
    print_message("%s: cannot inject a fault here: skipped\n", f->k->name);
    skip();
  }
  append_n(f, "f", 1, 2, 1000);
  struct store_append v[3] = {item("f", "u", "ok-3", 3000), item("f", "u", "fault-4", 4000),
                              item("g", "u", "ok-5", 5000)};
  char *rooms[3], *mids[3];
  for (size_t i = 0; i < 3; i++) {
    rooms[i] = v[i].msg.room;
    mids[i] = v[i].msg.mid;
  }

  f->k->fault(f, true);
  err[0] = '\0';
  uint64_t t0 = mono_ms();
  int rc = f->k->be->append(f->w, v, 3, err, sizeof err);
  uint64_t took = mono_ms() - t0;
  print_message("%s: append during the fault: %d after %" PRIu64 " ms: %s\n", f->k->name, rc, took, err);
  assert_int_equal(rc, STORE_EUNAVAILABLE);
  assert_true(err[0]);
  assert_true(took < BOUND_MS);
  for (size_t i = 0; i < 3; i++) { /* as given */
    assert_false(v[i].dup);
    assert_int_equal(v[i].msg.seq, 0);
    assert_ptr_equal(v[i].msg.room, rooms[i]);
    assert_ptr_equal(v[i].msg.mid, mids[i]);
  }
  if (f->k->fault_blocks_reads) {
    uint64_t seq = 0;
    struct store_msg_list l = {0};
    t0 = mono_ms();
    assert_int_equal(f->k->be->head(f->r, "f", &seq), STORE_EUNAVAILABLE);
    assert_int_equal(f->k->be->read(f->r, "f", 0, 0, 10, false, &l), STORE_EUNAVAILABLE);
    assert_int_equal(l.n, 0);
    assert_true(mono_ms() - t0 < 2 * BOUND_MS);
  }
  f->k->fault(f, false);
  t0 = mono_ms();
  uint64_t h0 = head(f, f->r, "f");
  print_message("%s: first call after the fault: %" PRIu64 " ms\n", f->k->name, mono_ms() - t0);
  assert_int_equal(h0, 2);

  /* Nothing of the batch was written, and no seq was used up: the same batch continues at 3. */
  assert_int_equal(head(f, f->r, "f"), 2);
  assert_int_equal(head(f, f->r, "g"), 0);
  EXPECT_READ(f, "f", 0, 0, 100, false, 1, 2, 0);
  append_ok(f, v, 3);
  assert_int_equal(v[0].msg.seq, 3);
  assert_int_equal(v[1].msg.seq, 4);
  assert_int_equal(v[2].msg.seq, 1);
  assert_false(v[0].dup || v[1].dup || v[2].dup);
  EXPECT_READ(f, "f", 0, 0, 100, false, 1, 2, 3, 4, 0);
  free_items(v, 3);
}

/* Opening a store that cannot be reached or created fails at once with a reason naming it. */
static void test_open_errors(void **state) {
  struct fx *f = *state;
  void *ctx = NULL;
  int rc;
  uint64_t t0, took;
  if (f->k == &sqlite_kind) {
    /* data dir below a regular file */
    char file[PATH_MAX], dir[PATH_MAX + 8];
    snprintf(file, sizeof file, "%s/a-file", f->tmpdir);
    FILE *fp = fopen(file, "w");
    assert_non_null(fp);
    fclose(fp);
    snprintf(dir, sizeof dir, "%s/sub", file);
    set_str(&f->cfg.server_data_dir, dir);
    err[0] = '\0';
    rc = f->k->be->open(&f->cfg, &ctx, err, sizeof err);
    print_message("sqlite, data dir under a file: %d: %s\n", rc, err);
    assert_int_not_equal(rc, STORE_OK);
    assert_null(ctx);
    assert_non_null(strstr(err, file));
    /* an absolute store path that is a directory */
    set_str(&f->cfg.store_sqlite_path, f->tmpdir);
    rc = f->k->be->open(&f->cfg, &ctx, err, sizeof err);
    print_message("sqlite, path is a directory: %d: %s\n", rc, err);
    assert_int_not_equal(rc, STORE_OK);
    assert_null(ctx);
    assert_non_null(strstr(err, f->tmpdir));
    /* a file that is not a database */
    set_str(&f->cfg.store_sqlite_path, file);
    fp = fopen(file, "w");
    fputs("this is not an SQLite database, it is a text file long enough to have a header......\n", fp);
    fclose(fp);
    rc = f->k->be->open(&f->cfg, &ctx, err, sizeof err);
    print_message("sqlite, not a database: %d: %s\n", rc, err);
    assert_int_equal(rc, STORE_ECORRUPT);
    assert_null(ctx);
  } else if (f->k == &pg_kind) {
    char uri[160];
    snprintf(uri, sizeof uri, "postgresql://parley@127.0.0.1:%u/parley", closed_port());
    set_str(&f->cfg.store_postgres_uri, uri);
    err[0] = '\0';
    t0 = mono_ms();
    rc = f->k->be->open(&f->cfg, &ctx, err, sizeof err);
    took = mono_ms() - t0;
    print_message("postgres, closed port: %d after %" PRIu64 " ms: %s\n", rc, took, err);
    assert_int_equal(rc, STORE_EUNAVAILABLE);
    assert_null(ctx);
    assert_non_null(strstr(err, "cannot reach PostgreSQL at"));
    assert_non_null(strstr(err, uri));
    assert_true(took < BOUND_MS);
    /* a password never shows in messages, in a URI or in key=value form */
    snprintf(uri, sizeof uri, "postgresql://ann:s3cret@127.0.0.1:%u/parley", closed_port());
    set_str(&f->cfg.store_postgres_uri, uri);
    assert_int_equal(f->k->be->open(&f->cfg, &ctx, err, sizeof err), STORE_EUNAVAILABLE);
    assert_null(strstr(err, "s3cret"));
    assert_non_null(strstr(err, "ann:***@"));
    snprintf(uri, sizeof uri, "host=127.0.0.1 port=%u user=ann password=s3cret dbname=parley", closed_port());
    set_str(&f->cfg.store_postgres_uri, uri);
    assert_int_equal(f->k->be->open(&f->cfg, &ctx, err, sizeof err), STORE_EUNAVAILABLE);
    print_message("postgres, key=value with a password: %s\n", err);
    assert_null(strstr(err, "s3cret"));
    /* not a connection string */
    set_str(&f->cfg.store_postgres_uri, "postgresql://h/db?nosuchoption=1");
    rc = f->k->be->open(&f->cfg, &ctx, err, sizeof err);
    print_message("postgres, bad URI: %d: %s\n", rc, err);
    assert_int_equal(rc, STORE_EINVAL);
    assert_non_null(strstr(err, "invalid PostgreSQL connection string"));
    set_str(&f->cfg.store_postgres_uri, "");
    assert_int_equal(f->k->be->open(&f->cfg, &ctx, err, sizeof err), STORE_EINVAL);
    /* a database that does not exist: reached, but refused */
    char *bad = strdup(pg_uri());
    assert_non_null(bad);
    char *slash = strrchr(bad, '/');
    if (strstr(bad, "://") && slash && slash > strstr(bad, "://") + 2) {
      *slash = '\0';
      snprintf(uri, sizeof uri, "%s/parley_no_such_db", bad);
      set_str(&f->cfg.store_postgres_uri, uri);
      rc = f->k->be->open(&f->cfg, &ctx, err, sizeof err);
      print_message("postgres, no such database: %d: %s\n", rc, err);
      assert_int_not_equal(rc, STORE_OK);
      assert_non_null(strstr(err, "parley_no_such_db"));
    }
    free(bad);
    assert_null(ctx);
  } else {
    char uri[128];
    snprintf(uri, sizeof uri, "mongodb://127.0.0.1:%u/", closed_port());
    set_str(&f->cfg.store_mongo_uri, uri);
    set_str(&f->cfg.store_mongo_database, "parley_test_unreachable");
    err[0] = '\0';
    t0 = mono_ms();
    rc = f->k->be->open(&f->cfg, &ctx, err, sizeof err);
    took = mono_ms() - t0;
    print_message("mongo, closed port: %d after %" PRIu64 " ms: %s\n", rc, took, err);
    assert_int_equal(rc, STORE_EUNAVAILABLE);
    assert_null(ctx);
    assert_non_null(strstr(err, "cannot reach MongoDB at"));
    assert_non_null(strstr(err, uri));
    assert_true(took < BOUND_MS);
    /* a password never shows in messages */
    snprintf(uri, sizeof uri, "mongodb://ann:s3cret@127.0.0.1:%u/?serverSelectionTimeoutMS=300",
             closed_port());
    set_str(&f->cfg.store_mongo_uri, uri);
    rc = f->k->be->open(&f->cfg, &ctx, err, sizeof err);
    assert_int_equal(rc, STORE_EUNAVAILABLE);
    assert_null(strstr(err, "s3cret"));
    assert_non_null(strstr(err, "ann:***@"));
    /* not a URI */
    set_str(&f->cfg.store_mongo_uri, "localhost:27017");
    rc = f->k->be->open(&f->cfg, &ctx, err, sizeof err);
    print_message("mongo, bad URI: %d: %s\n", rc, err);
    assert_int_equal(rc, STORE_EINVAL);
    assert_non_null(strstr(err, "invalid MongoDB URI"));
    /* no database name */
    set_str(&f->cfg.store_mongo_uri, uri);
    set_str(&f->cfg.store_mongo_database, "");
    assert_int_equal(f->k->be->open(&f->cfg, &ctx, err, sizeof err), STORE_EINVAL);
    assert_null(ctx);
  }
}

/* ---- room lists and read markers ---- */

static void member(struct fx *f, const char *user, const char *room, bool on) {
  assert_int_equal(f->k->be->member_set(f->w, user, room, on), STORE_OK);
}

static uint64_t mark(struct fx *f, const char *user, const char *room, uint64_t seq) {
  uint64_t read = 12345;
  assert_int_equal(f->k->be->read_set(f->w, user, room, seq, &read), STORE_OK);
  return read;
}

/* Compare user's list (read through ctx) with "room:head:read" entries, given as a NULL-ended list. */
#define EXPECT_ROOMS(f, ctx, user, ...)                                                                      \
  do {                                                                                                       \
    const char *want_[] = {__VA_ARGS__};                                                                     \
    expect_rooms(f, ctx, user, want_, sizeof want_ / sizeof want_[0] - 1);                                   \
  } while (0)

static void expect_rooms(struct fx *f, void *ctx, const char *user, const char *const *want, size_t nwant) {
  struct store_room_list l = {0};
  assert_int_equal(f->k->be->rooms_of(ctx, user, &l), STORE_OK);
  char got[2048] = "", exp[2048] = "";
  for (size_t i = 0; i < l.n; i++)
    snprintf(got + strlen(got), sizeof got - strlen(got), "%s%s:%" PRIu64 ":%" PRIu64, i ? " " : "",
             l.v[i].room, l.v[i].head, l.v[i].read);
  for (size_t i = 0; i < nwant; i++)
    snprintf(exp + strlen(exp), sizeof exp - strlen(exp), "%s%s", i ? " " : "", want[i]);
  if (strcmp(got, exp)) fail_msg("rooms_of(%s): got [%s], want [%s]", user, got, exp);
  store_room_list_free(&l);
}

static void test_room_list(void **state) {
  struct fx *f = fixture(state);
  EXPECT_ROOMS(f, f->r, "ann", NULL); /* a user with no rooms */
  member(f, "ann", "lobby", true);
  member(f, "ann", "Zoo", true);
  member(f, "ann", "dev", true);
  member(f, "ann", "dev-2", true);
  member(f, "bob", "lobby", true);
  /* Sorted by name, byte-wise ("Z" < "d" < "l"); rooms without messages have head 0. */
  EXPECT_ROOMS(f, f->r, "ann", "Zoo:0:0", "dev:0:0", "dev-2:0:0", "lobby:0:0", NULL);
  EXPECT_ROOMS(f, f->r, "bob", "lobby:0:0", NULL);
  append_n(f, "lobby", 1, 3, 1000);
  append_n(f, "dev", 1, 2, 1000);
  append_n(f, "elsewhere", 1, 4, 1000);
  EXPECT_ROOMS(f, f->r, "ann", "Zoo:0:0", "dev:2:0", "dev-2:0:0", "lobby:3:0", NULL);
  EXPECT_ROOMS(f, f->w, "bob", "lobby:3:0", NULL); /* the writer's ctx reads the same */
  /* Adding a listed room again changes nothing; removing one that is not listed is fine. */
  member(f, "ann", "lobby", true);
  member(f, "ann", "nowhere", false);
  member(f, "carl", "nowhere", false);
  EXPECT_ROOMS(f, f->r, "ann", "Zoo:0:0", "dev:2:0", "dev-2:0:0", "lobby:3:0", NULL);
  EXPECT_ROOMS(f, f->r, "carl", NULL);
  member(f, "ann", "Zoo", false);
  EXPECT_ROOMS(f, f->r, "ann", "dev:2:0", "dev-2:0:0", "lobby:3:0", NULL);
  append1(f, "lobby", "bob", "more", 5000);
  EXPECT_ROOMS(f, f->r, "ann", "dev:2:0", "dev-2:0:0", "lobby:4:0", NULL);

  /* rooms_of appends to what out holds. */
  struct store_room_list l = {0};
  assert_int_equal(f->k->be->rooms_of(f->r, "bob", &l), STORE_OK);
  assert_int_equal(f->k->be->rooms_of(f->r, "ann", &l), STORE_OK);
  assert_int_equal(l.n, 4);
  assert_string_equal(l.v[0].room, "lobby");
  assert_string_equal(l.v[1].room, "dev");
  assert_string_equal(l.v[3].room, "lobby");
  assert_int_equal(l.v[3].head, 4);
  store_room_list_free(&l);

  /* Bad arguments. */
  uint64_t read;
  assert_int_equal(f->k->be->member_set(f->w, NULL, "a", true), STORE_EINVAL);
  assert_int_equal(f->k->be->member_set(f->w, "ann", "", true), STORE_EINVAL);
  assert_int_equal(f->k->be->read_set(f->w, "", "a", 1, &read), STORE_EINVAL);
  assert_int_equal(f->k->be->read_set(f->w, "ann", NULL, 1, &read), STORE_EINVAL);
  assert_int_equal(f->k->be->rooms_of(f->r, NULL, &l), STORE_EINVAL);
  assert_int_equal(f->k->be->rooms_of(f->r, "", &l), STORE_EINVAL);
  assert_int_equal(l.n, 0);
}

/* A run of small writes in one transaction (be->group, the writer's join storms): each write keeps its own
 * result, a removal nests, nothing is visible before the end, everything after it. */
static void test_grouped_small_writes(void **state) {
  struct fx *f = fixture(state);
  const struct store_backend *be = f->k->be;
  if (!be->group) skip(); /* MongoDB: every write is its own */
  append_n(f, "b", 1, 5, 1000);
  member(f, "ann", "c", true);
  assert_int_equal(be->group(f->w, true), STORE_OK);
  member(f, "ann", "a", true);
  member(f, "ann", "b", true);
  assert_int_equal(be->member_set(f->w, "", "x", true), STORE_EINVAL); /* a bad one keeps its own error */
  member(f, "ann", "c", false);                                        /* a removal: a savepoint */
  assert_int_equal(mark(f, "ann", "b", 3), 3);
  assert_int_equal(be->set_last_seen(f->w, "ann", 42), STORE_OK);
  EXPECT_ROOMS(f, f->r, "ann", "c:0:0", NULL); /* not committed yet: the reader sees the old list */
  uint64_t ts = 7;
  assert_int_equal(be->get_last_seen(f->r, "ann", &ts), STORE_OK);
  assert_int_equal(ts, 0);
  assert_int_equal(be->group(f->w, false), STORE_OK);
  EXPECT_ROOMS(f, f->r, "ann", "a:0:0", "b:5:3", NULL);
  assert_int_equal(be->get_last_seen(f->r, "ann", &ts), STORE_OK);
  assert_int_equal(ts, 42);
  assert_int_not_equal(be->group(f->w, false), STORE_OK); /* no group open: an error, nothing else */
  member(f, "ann", "a", false);                           /* and single writes work as before */
  EXPECT_ROOMS(f, f->r, "ann", "b:5:3", NULL);
}

static void test_read_markers(void **state) {
  struct fx *f = fixture(state);
  append_n(f, "a", 1, 10, 1000);
  member(f, "ann", "a", true);
  assert_int_equal(mark(f, "ann", "a", 0), 0); /* nothing read yet */
  assert_int_equal(mark(f, "ann", "a", 5), 5);
  assert_int_equal(mark(f, "ann", "a", 3), 5); /* never backwards */
  assert_int_equal(mark(f, "ann", "a", 5), 5);
  assert_int_equal(mark(f, "ann", "a", 0), 5);
  assert_int_equal(mark(f, "ann", "a", 9), 9);
  EXPECT_ROOMS(f, f->r, "ann", "a:10:9", NULL);
  /* Markers are per user and per room. */
  member(f, "bob", "a", true);
  EXPECT_ROOMS(f, f->r, "bob", "a:10:0", NULL);
  assert_int_equal(mark(f, "bob", "a", 2), 2);
  EXPECT_ROOMS(f, f->r, "ann", "a:10:9", NULL);

  /* A room not in the list keeps a marker too, without being listed; listing it later shows it. */
  append_n(f, "b", 1, 4, 1000);
  assert_int_equal(mark(f, "ann", "b", 3), 3);
  assert_int_equal(mark(f, "ann", "b", 1), 3);
  assert_int_equal(mark(f, "ann", "nosuchroom", 7), 7); /* the backend does not check seq against head */
  EXPECT_ROOMS(f, f->r, "ann", "a:10:9", NULL);
  member(f, "ann", "b", true);
  EXPECT_ROOMS(f, f->r, "ann", "a:10:9", "b:4:3", NULL);
  assert_int_equal(mark(f, "ann", "b", 4), 4);
  EXPECT_ROOMS(f, f->r, "ann", "a:10:9", "b:4:4", NULL);
  /* Large values survive. */
  assert_int_equal(mark(f, "ann", "big", UINT64_C(1) << 40), UINT64_C(1) << 40);
  assert_int_equal(mark(f, "ann", "big", 1), UINT64_C(1) << 40);
}

/* Removing a room from the list keeps its marker (docs/storage.md): adding it back shows it again. */
static void test_membership_remove_readd(void **state) {
  struct fx *f = fixture(state);
  append_n(f, "a", 1, 6, 1000);
  append_n(f, "b", 1, 2, 1000);
  member(f, "ann", "a", true);
  member(f, "ann", "b", true);
  assert_int_equal(mark(f, "ann", "a", 4), 4);
  member(f, "ann", "a", true); /* adding again keeps the entry and its marker */
  EXPECT_ROOMS(f, f->r, "ann", "a:6:4", "b:2:0", NULL);
  member(f, "ann", "a", false);
  member(f, "ann", "b", false);
  EXPECT_ROOMS(f, f->r, "ann", NULL);
  /* The marker lives on while the room is not listed, and still only moves forward. */
  assert_int_equal(mark(f, "ann", "a", 2), 4);
  member(f, "ann", "a", false); /* removing twice is fine */
  member(f, "ann", "a", true);
  member(f, "ann", "b", true);
  EXPECT_ROOMS(f, f->r, "ann", "a:6:4", "b:2:0", NULL);
  assert_int_equal(mark(f, "ann", "a", 6), 6);
  member(f, "ann", "a", false);
  assert_int_equal(mark(f, "ann", "a", 0), 6);
  member(f, "ann", "a", true);
  EXPECT_ROOMS(f, f->r, "ann", "a:6:6", "b:2:0", NULL);
}

static void test_room_list_persistence(void **state) {
  struct fx *f = fixture(state);
  append_n(f, "p", 1, 5, 1000);
  member(f, "ann", "p", true);
  member(f, "ann", "q", true);
  member(f, "ann", "gone", true);
  member(f, "ann", "gone", false);
  assert_int_equal(mark(f, "ann", "p", 3), 3);
  assert_int_equal(mark(f, "ann", "unlisted", 8), 8);
  reopen(f);
  EXPECT_ROOMS(f, f->r, "ann", "p:5:3", "q:0:0", NULL);
  assert_int_equal(mark(f, "ann", "p", 2), 3);
  assert_int_equal(mark(f, "ann", "unlisted", 0), 8);
  append1(f, "q", "u", "q1", 1);
  member(f, "ann", "unlisted", true);
  EXPECT_ROOMS(f, f->r, "ann", "p:5:3", "q:1:0", "unlisted:0:8", NULL);
}

/* forget_user: a guest whose session ended leaves no rows behind — room list, markers (listed or not) and
 * last-seen go, other users' rows and everyone's messages stay; alone and inside a group. */
static void test_forget_user(void **state) {
  struct fx *f = fixture(state);
  const struct store_backend *be = f->k->be;
  append_n(f, "a", 1, 4, 1000);
  append1(f, "a", "guest-1", "g1", 2000);
  member(f, "guest-1", "a", true);
  member(f, "guest-1", "b", true);
  assert_int_equal(mark(f, "guest-1", "a", 3), 3);
  assert_int_equal(mark(f, "guest-1", "unlisted", 2), 2);
  assert_int_equal(be->set_last_seen(f->w, "guest-1", 42), STORE_OK);
  member(f, "ann", "a", true);
  assert_int_equal(mark(f, "ann", "a", 1), 1);
  assert_int_equal(be->set_last_seen(f->w, "ann", 43), STORE_OK);
  assert_int_equal(be->forget_user(f->w, "guest-1", false), STORE_OK);
  EXPECT_ROOMS(f, f->r, "guest-1", NULL);
  assert_int_equal(mark(f, "guest-1", "unlisted", 0), 0); /* the unlisted marker went too */
  assert_int_equal(mark(f, "guest-1", "a", 0), 0);
  uint64_t ts = 7;
  assert_int_equal(be->get_last_seen(f->r, "guest-1", &ts), STORE_OK);
  assert_int_equal(ts, 0);
  EXPECT_ROOMS(f, f->r, "ann", "a:5:1", NULL); /* others keep theirs; the guest's message stays */
  assert_int_equal(be->get_last_seen(f->r, "ann", &ts), STORE_OK);
  assert_int_equal(ts, 43);
  struct store_msg_list l = {0};
  assert_int_equal(be->read(f->r, "a", 0, 0, 10, false, &l), STORE_OK);
  assert_int_equal(l.n, 5);
  assert_string_equal(l.v[4].user_id, "guest-1");
  store_msg_list_free(&l);
  assert_int_equal(be->forget_user(f->w, "nobody", false), STORE_OK); /* nothing to delete: fine */
  assert_int_equal(be->forget_user(f->w, "", false), STORE_EINVAL);
  assert_int_equal(be->forget_user(f->w, NULL, true), STORE_EINVAL);
  /* By prefix: every id that starts with it, and no other (the next id in byte order stays too). */
  member(f, "guest-a", "a", true);
  member(f, "guest-b", "b", true);
  assert_int_equal(be->set_last_seen(f->w, "guest-c", 1), STORE_OK);
  member(f, "guest.", "a", true); /* '.' follows '-': just past the range */
  member(f, "guest", "a", true);
  assert_int_equal(be->forget_user(f->w, "guest-", true), STORE_OK);
  EXPECT_ROOMS(f, f->r, "guest-a", NULL);
  EXPECT_ROOMS(f, f->r, "guest-b", NULL);
  assert_int_equal(be->get_last_seen(f->r, "guest-c", &ts), STORE_OK);
  assert_int_equal(ts, 0);
  EXPECT_ROOMS(f, f->r, "guest.", "a:5:0", NULL);
  EXPECT_ROOMS(f, f->r, "guest", "a:5:0", NULL);
  EXPECT_ROOMS(f, f->r, "ann", "a:5:1", NULL);
  assert_int_equal(be->forget_user(f->w, "x\xff", true), STORE_EINVAL);
  if (!be->group) return;
  /* Inside a group (a savepoint), beside other small writes. */
  member(f, "guest-2", "a", true);
  assert_int_equal(be->group(f->w, true), STORE_OK);
  assert_int_equal(mark(f, "guest-2", "a", 2), 2);
  assert_int_equal(be->forget_user(f->w, "guest-2", false), STORE_OK);
  member(f, "ann", "c", true);
  assert_int_equal(be->group(f->w, false), STORE_OK);
  EXPECT_ROOMS(f, f->r, "guest-2", NULL);
  EXPECT_ROOMS(f, f->r, "ann", "a:5:1", "c:0:0", NULL);
}

/* ---- backend-specific ---- */

static void test_sqlite_schema(void **state) {
  struct fx *f = fixture(state);
  sqlite3 *db = sqlite_side_connection(f);
  sqlite3_stmt *s;
  assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &s, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_step(s), SQLITE_ROW);
  assert_string_equal((const char *)sqlite3_column_text(s, 0), "wal");
  sqlite3_finalize(s);
  assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &s, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_step(s), SQLITE_ROW);
  assert_int_equal(sqlite3_column_int(s, 0), 3);
  sqlite3_finalize(s);
  sqlite3_close(db);
  /* A file from a newer parleyd is refused, not misread. */
  close_ctxs(f);
  sqlite_exec(f, "PRAGMA user_version = 99");
  void *ctx = NULL;
  err[0] = '\0';
  assert_int_equal(f->k->be->open(&f->cfg, &ctx, err, sizeof err), STORE_ECORRUPT);
  assert_null(ctx);
  assert_non_null(strstr(err, "schema version 99"));
  sqlite_exec(f, "PRAGMA user_version = 3");
  /* synchronous = FULL opens too; an absolute store path is used as it is. */
  f->cfg.store_sqlite_synchronous = 1;
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/abs/other.db", f->tmpdir);
  set_str(&f->cfg.store_sqlite_path, path);
  reopen(f);
  assert_int_equal(append1(f, "x", "u", "c", 1), 1);
  assert_int_equal(access(path, F_OK), 0);
}

static int64_t sqlite_count(struct fx *f, const char *sql) {
  sqlite3 *db = sqlite_side_connection(f);
  sqlite3_stmt *s;
  assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_step(s), SQLITE_ROW);
  int64_t n = sqlite3_column_int64(s, 0);
  sqlite3_finalize(s);
  sqlite3_close(db);
  return n;
}

/* Every message of room 1..n exactly once, whichever table holds it, through every kind of read. */
static void expect_room_whole(struct fx *f, const char *room, uint64_t n) {
  uint64_t got[512];
  assert_int_equal(read_seqs(f, room, 0, 0, 512, false, got, 512), n);
  for (uint64_t i = 0; i < n; i++) assert_int_equal(got[i], i + 1);
  assert_int_equal(read_seqs(f, room, 0, 0, 512, true, got, 512), n);
  for (uint64_t i = 0; i < n; i++) assert_int_equal(got[i], i + 1);
  size_t k = read_seqs(f, room, 0, 0, 3, true, got, 512); /* the newest 3 */
  assert_int_equal(k, n < 3 ? n : 3);
  for (size_t i = 0; i < k; i++) assert_int_equal(got[i], n - k + 1 + i);
  k = read_seqs(f, room, 0, 0, 3, false, got, 512); /* the oldest 3 */
  assert_int_equal(k, n < 3 ? n : 3);
  for (size_t i = 0; i < k; i++) assert_int_equal(got[i], i + 1);
  if (n > 4) { /* a window in the middle, both ways */
    assert_int_equal(read_seqs(f, room, 1, n, 2, false, got, 512), 2);
    assert_int_equal(got[0], 2);
    assert_int_equal(got[1], 3);
    assert_int_equal(read_seqs(f, room, 1, n, 2, true, got, 512), 2);
    assert_int_equal(got[0], n - 2);
    assert_int_equal(got[1], n - 1);
  }
  assert_int_equal(head(f, f->r, room), n);
  assert_int_equal(head(f, f->w, room), n);
}

/* New messages land in the inbox and move to messages in slices between batches (as the store writer
 * calls after_batch): at every step, mid-merge included, reads, heads, room lists and dedupe see each
 * message exactly once, and the inbox stays bounded. */
static void test_sqlite_inbox_merge(void **state) {
  struct fx *f = *state;
  f->cfg.store_sqlite_inbox_rows = 8; /* merges of 4 rows, one room per slice */
  fixture(state);
  member(f, "ann", "a", true);
  static const char *const rooms[] = {"a", "b", "c"};
  unsigned mid_merge = 0;
  for (unsigned i = 0; i < 40; i++) {
    struct store_append v[3];
    for (int k = 0; k < 3; k++) {
      char cmid[32];
      snprintf(cmid, sizeof cmid, "%s-%u", rooms[k], i);
      v[k] = item(rooms[k], "u", cmid, 1000 + i);
    }
    append_ok(f, v, 3);
    for (int k = 0; k < 3; k++) {
      assert_false(v[k].dup);
      assert_int_equal(v[k].msg.seq, i + 1);
    }
    free_items(v, 3);
    int more = f->k->be->after_batch(f->w);
    assert_true(more == 0 || more == 1);
    mid_merge += more == 1;
    for (int k = 0; k < 3; k++) expect_room_whole(f, rooms[k], i + 1);
    assert_true(sqlite_count(f, "SELECT count(*) FROM inbox") <= 2 * 8 + 3);
    char want[32];
    snprintf(want, sizeof want, "a:%u:0", i + 1);
    EXPECT_ROOMS(f, f->w, "ann", want, NULL);
    EXPECT_ROOMS(f, f->r, "ann", want, NULL);
  }
  assert_true(mid_merge > 0); /* some steps were taken with a merge under way */
  assert_true(sqlite_count(f, "SELECT count(*) FROM messages") >= 3 * 40 - (2 * 8 + 3));
  /* Retried sends: merged long ago, and still in the inbox. */
  struct store_append old = item("a", "u", "a-0", 1), recent = item("c", "u", "c-39", 1);
  append_ok(f, &old, 1);
  append_ok(f, &recent, 1);
  assert_true(old.dup && recent.dup);
  assert_int_equal(old.msg.seq, 1);
  assert_int_equal(recent.msg.seq, 40);
  free_items(&old, 1);
  free_items(&recent, 1);
  /* Closing the writer empties the inbox; a reopened store carries on. */
  reopen(f);
  assert_int_equal(sqlite_count(f, "SELECT count(*) FROM inbox"), 0);
  assert_int_equal(sqlite_count(f, "SELECT count(*) FROM messages"), 3 * 40);
  for (int k = 0; k < 3; k++) expect_room_whole(f, rooms[k], 40);
  assert_int_equal(append1(f, "b", "u", "b-40", 1), 41);
}

/* store.sqlite.merge_slice sets how many rows one merge transaction moves (whole rooms): with the default a
 * merge of 20 rows over 10 rooms goes in slices of one room (after_batch says a merge is under way between
 * them); with a slice as large as the merge it goes in one step. Either way every message is read once. */
static void test_sqlite_merge_slice(void **state) {
  struct fx *f = *state;
  f->cfg.store_sqlite_inbox_rows = 40; /* merges of 20 rows */
  for (int pass = 0; pass < 2; pass++) {
    f->cfg.store_sqlite_merge_slice = pass ? 20 : 0; /* 0: a 64th of inbox_rows (here 1 row) */
    fixture(state);
    unsigned under_way = 0;
    char room[16];
    for (unsigned i = 0; i < 60; i++) {
      snprintf(room, sizeof room, "p%d-%u", pass, i % 10);
      append_n(f, room, i, 1, 1000);
      under_way += f->k->be->after_batch(f->w) == 1;
    }
    for (unsigned k = 0; k < 10; k++) {
      snprintf(room, sizeof room, "p%d-%u", pass, k);
      expect_room_whole(f, room, 6);
    }
    if (pass)
      assert_int_equal(under_way, 0);
    else
      assert_true(under_way > 0);
    assert_true(sqlite_count(f, "SELECT count(*) FROM messages") >= 20 + 60 * pass);
    close_ctxs(f);
  }
}

/* A VFS over the default one that counts the syncs of main database files (not of WALs or journals). */
struct sync_file {
  sqlite3_file base;
  sqlite3_file *real; /* follows this struct in the same allocation */
  bool main_db;
};
static sqlite3_vfs *real_vfs, count_vfs;
static int main_db_syncs;
static sqlite3_io_methods count_io;

static int cf_close(sqlite3_file *f) {
  struct sync_file *s = (struct sync_file *)f;
  return s->real->pMethods ? s->real->pMethods->xClose(s->real) : SQLITE_OK;
}
#define REAL(f) (((struct sync_file *)(f))->real)
static int cf_read(sqlite3_file *f, void *b, int n, sqlite3_int64 o) {
  return REAL(f)->pMethods->xRead(REAL(f), b, n, o);
}
static int cf_write(sqlite3_file *f, const void *b, int n, sqlite3_int64 o) {
  return REAL(f)->pMethods->xWrite(REAL(f), b, n, o);
}
static int cf_truncate(sqlite3_file *f, sqlite3_int64 n) { return REAL(f)->pMethods->xTruncate(REAL(f), n); }
static int cf_sync(sqlite3_file *f, int flags) {
  if (((struct sync_file *)f)->main_db) __atomic_add_fetch(&main_db_syncs, 1, __ATOMIC_RELAXED);
  return REAL(f)->pMethods->xSync(REAL(f), flags);
}
static int cf_size(sqlite3_file *f, sqlite3_int64 *n) { return REAL(f)->pMethods->xFileSize(REAL(f), n); }
static int cf_lock(sqlite3_file *f, int l) { return REAL(f)->pMethods->xLock(REAL(f), l); }
static int cf_unlock(sqlite3_file *f, int l) { return REAL(f)->pMethods->xUnlock(REAL(f), l); }
static int cf_reserved(sqlite3_file *f, int *r) { return REAL(f)->pMethods->xCheckReservedLock(REAL(f), r); }
static int cf_fcntl(sqlite3_file *f, int op, void *a) {
  return REAL(f)->pMethods->xFileControl(REAL(f), op, a);
}
static int cf_sector(sqlite3_file *f) { return REAL(f)->pMethods->xSectorSize(REAL(f)); }
static int cf_dev(sqlite3_file *f) { return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f)); }
static int cf_shm_map(sqlite3_file *f, int i, int sz, int ext, void volatile **p) {
  return REAL(f)->pMethods->xShmMap(REAL(f), i, sz, ext, p);
}
static int cf_shm_lock(sqlite3_file *f, int o, int n, int fl) {
  return REAL(f)->pMethods->xShmLock(REAL(f), o, n, fl);
}
static void cf_shm_barrier(sqlite3_file *f) { REAL(f)->pMethods->xShmBarrier(REAL(f)); }
static int cf_shm_unmap(sqlite3_file *f, int d) { return REAL(f)->pMethods->xShmUnmap(REAL(f), d); }
static int cf_fetch(sqlite3_file *f, sqlite3_int64 o, int n, void **p) {
  return REAL(f)->pMethods->xFetch(REAL(f), o, n, p);
}
static int cf_unfetch(sqlite3_file *f, sqlite3_int64 o, void *p) {
  return REAL(f)->pMethods->xUnfetch(REAL(f), o, p);
}

static int cv_open(sqlite3_vfs *v, const char *name, sqlite3_file *f, int flags, int *out) {
  (void)v;
  struct sync_file *s = (struct sync_file *)f;
  s->real = (sqlite3_file *)(s + 1);
  s->main_db = (flags & SQLITE_OPEN_MAIN_DB) != 0;
  int rc = real_vfs->xOpen(real_vfs, name, s->real, flags, out);
  s->base.pMethods = rc == SQLITE_OK && s->real->pMethods ? &count_io : NULL;
  return rc;
}

/* Install the counting VFS as the default (connections opened from now on use it). */
static void count_syncs_begin(void) {
  real_vfs = sqlite3_vfs_find(NULL);
  count_vfs = *real_vfs;
  count_vfs.zName = "count-syncs";
  count_vfs.szOsFile = (int)sizeof(struct sync_file) + real_vfs->szOsFile;
  count_vfs.xOpen = cv_open;
  count_io = (sqlite3_io_methods){3,         cf_close,   cf_read,     cf_write,       cf_truncate,  cf_sync,
                                  cf_size,   cf_lock,    cf_unlock,   cf_reserved,    cf_fcntl,     cf_sector,
                                  cf_dev,    cf_shm_map, cf_shm_lock, cf_shm_barrier, cf_shm_unmap, cf_fetch,
                                  cf_unfetch};
  assert_int_equal(sqlite3_vfs_register(&count_vfs, 1), SQLITE_OK);
}

static void count_syncs_end(void) {
  sqlite3_vfs_unregister(&count_vfs);
  sqlite3_vfs_register(real_vfs, 1);
}

/* A background checkpoint (PASSIVE) that cannot copy the whole WAL — here a reader's snapshot holds it
 * back, in parleyd the writer's commits during it — still syncs the database file, so the checkpoint that
 * later lets the WAL start over (the writer waits for it) has only its own pages to sync. SQLite itself
 * syncs only after copying everything. */
static void test_sqlite_partial_checkpoint_syncs(void **state) {
  struct fx *f = *state;
  count_syncs_begin();
  fixture(state);
  void *ckpt = open_ctx(f);
  append_n(f, "a", 0, 20, 1000);
  sqlite3 *reader = sqlite_side_connection(f);
  assert_int_equal(sqlite3_exec(reader, "BEGIN; SELECT count(*) FROM inbox;", NULL, NULL, NULL), SQLITE_OK);
  append_n(f, "a", 20, 20, 1000); /* frames beyond the reader's snapshot */
  int left = -1;
  __atomic_store_n(&main_db_syncs, 0, __ATOMIC_RELAXED);
  assert_int_equal(f->k->be->checkpoint(ckpt, false, &left), STORE_OK);
  assert_true(left > 0); /* it could not copy everything */
  assert_true(__atomic_load_n(&main_db_syncs, __ATOMIC_RELAXED) >= 1);
  sqlite3_exec(reader, "COMMIT", NULL, NULL, NULL);
  sqlite3_close(reader);
  f->k->be->close(ckpt);
  close_ctxs(f);
  count_syncs_end();
}

/* A crash in the middle of a merge leaves rows in both tables (a slice committed, the inbox not yet
 * emptied): reads show each once, and the next open finishes the move without duplicates. */
static void test_sqlite_inbox_crash_mid_merge(void **state) {
  struct fx *f = fixture(state);
  append_n(f, "x", 0, 10, 1000);
  sqlite_exec(f, "INSERT INTO messages (room, seq, mid, ts, user_id, user_name, cmid, body) "
                 "SELECT room, seq, mid, ts, user_id, user_name, cmid, body FROM inbox WHERE seq <= 6");
  expect_room_whole(f, "x", 10);
  close_ctxs(f);
  reopen(f); /* a fresh open moves what the inbox holds, skipping the rows already moved */
  assert_int_equal(sqlite_count(f, "SELECT count(*) FROM inbox"), 0);
  assert_int_equal(sqlite_count(f, "SELECT count(*) FROM messages"), 10);
  expect_room_whole(f, "x", 10);
  struct store_append again = item("x", "u", "x-3", 1);
  append_ok(f, &again, 1);
  assert_true(again.dup);
  assert_int_equal(again.msg.seq, 4);
  free_items(&again, 1);
  assert_int_equal(append1(f, "x", "u", "x-10", 1), 11);
}

/* A file written by a parleyd of schema version 1 (the DDL as it shipped) is brought to the current version
 * in place: its data stays, and room lists and read markers work. */
static void test_sqlite_migration_v1(void **state) {
  struct fx *f = *state;
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/data", f->tmpdir);
  assert_int_equal(mkdir(path, 0755), 0);
  snprintf(path, sizeof path, "%s/data/parley.db", f->tmpdir);
  sqlite3 *db;
  assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL), SQLITE_OK);
  char *msg = NULL;
  const char *v1 =
      "CREATE TABLE messages ("
      "  room TEXT NOT NULL, seq INTEGER NOT NULL, mid TEXT NOT NULL, ts INTEGER NOT NULL,"
      "  user_id TEXT NOT NULL, user_name TEXT, cmid TEXT NOT NULL, body TEXT NOT NULL,"
      "  PRIMARY KEY (room, seq)) WITHOUT ROWID;"
      "CREATE UNIQUE INDEX messages_user_cmid ON messages (user_id, cmid);"
      "CREATE TABLE rooms (room TEXT PRIMARY KEY, head INTEGER NOT NULL) WITHOUT ROWID;"
      "CREATE TABLE users (user_id TEXT PRIMARY KEY, last_seen INTEGER NOT NULL) WITHOUT ROWID;"
      "INSERT INTO messages VALUES ('lobby', 1, 'm1', 1000, 'ann', 'Ann', 'c1', '{\"text\":\"one\"}'),"
      "  ('lobby', 2, 'm2', 2000, 'bob', NULL, 'c1', '{\"text\":\"two\"}'),"
      "  ('dev', 7, 'm7', 3000, 'ann', 'Ann', 'c7', '{}');"
      "INSERT INTO rooms VALUES ('lobby', 2), ('dev', 7);"
      "INSERT INTO users VALUES ('ann', 4242);"
      "PRAGMA user_version = 1;";
  if (sqlite3_exec(db, v1, NULL, NULL, &msg)) fail_msg("v1 schema: %s", msg);
  sqlite3_close(db);

  fixture(state); /* opens the writer (migrates) and the reader */
  db = sqlite_side_connection(f);
  sqlite3_stmt *s;
  assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &s, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_step(s), SQLITE_ROW);
  assert_int_equal(sqlite3_column_int(s, 0), 3);
  sqlite3_finalize(s);
  sqlite3_close(db);

  /* The data is intact. */
  assert_int_equal(head(f, f->r, "lobby"), 2);
  assert_int_equal(head(f, f->r, "dev"), 7);
  struct store_msg_list l = {0};
  assert_int_equal(f->k->be->read(f->r, "lobby", 0, 0, 10, false, &l), STORE_OK);
  assert_int_equal(l.n, 2);
  assert_string_equal(l.v[0].mid, "m1");
  assert_string_equal(l.v[0].user_name, "Ann");
  assert_string_equal(l.v[0].body, "{\"text\":\"one\"}");
  assert_null(l.v[1].user_name);
  store_msg_list_free(&l);
  uint64_t ts = 0;
  assert_int_equal(f->k->be->get_last_seen(f->r, "ann", &ts), STORE_OK);
  assert_int_equal(ts, 4242);
  struct store_append a = item("lobby", "ann", "c1", 9000); /* dedupe across the upgrade */
  append_ok(f, &a, 1);
  assert_true(a.dup);
  assert_int_equal(a.msg.seq, 1);
  free_items(&a, 1);
  assert_int_equal(append1(f, "dev", "ann", "c8", 9001), 8);

  /* The new features. */
  EXPECT_ROOMS(f, f->r, "ann", NULL);
  member(f, "ann", "lobby", true);
  member(f, "ann", "dev", true);
  assert_int_equal(mark(f, "ann", "dev", 7), 7);
  assert_int_equal(mark(f, "ann", "dev", 6), 7);
  EXPECT_ROOMS(f, f->r, "ann", "dev:8:7", "lobby:2:0", NULL);
  /* Opening again finds version 2: nothing to migrate, everything kept. */
  reopen(f);
  EXPECT_ROOMS(f, f->r, "ann", "dev:8:7", "lobby:2:0", NULL);
  assert_int_equal(head(f, f->r, "lobby"), 2);
}

/* ---- postgres ---- */

/* The schema carries its version; a database of a newer parleyd is refused, not misread. */
static void test_pg_schema(void **state) {
  struct fx *f = fixture(state);
  assert_int_equal(pg_count(f, "SELECT version FROM parley_schema"), 1);
  assert_int_equal(pg_count(f, "SELECT count(*) FROM parley_schema"), 1);
  /* names sort byte-wise whatever the database's collation */
  assert_int_equal(pg_count(f, "SELECT count(*) FROM information_schema.columns WHERE table_schema = "
                               "current_schema() AND column_name = 'room' AND collation_name = 'C'"),
                   3);
  assert_int_equal(append1(f, "x", "u", "c", 1), 1);
  close_ctxs(f);
  pg_exec(f, "UPDATE parley_schema SET version = 99");
  void *ctx = NULL;
  err[0] = '\0';
  assert_int_equal(f->k->be->open(&f->cfg, &ctx, err, sizeof err), STORE_ECORRUPT);
  assert_null(ctx);
  print_message("postgres, newer schema: %s\n", err);
  assert_non_null(strstr(err, "schema version 99"));
  pg_exec(f, "UPDATE parley_schema SET version = 1");
  reopen(f); /* nothing to migrate: everything kept */
  assert_int_equal(head(f, f->r, "x"), 1);
}

/* A user without CREATE on the database works in a schema made for it beforehand (parleyd creates the schema
 * only when it is missing). */
static void test_pg_schema_made_beforehand(void **state) {
  struct fx *f = *state;
  char sql[256];
  PGconn *c = PQconnectdb(pg_uri());
  assert_int_equal(PQstatus(c), CONNECTION_OK);
  PQsetNoticeProcessor(c, pg_quiet, NULL);
  PQclear(PQexec(c, "DO $$BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'parley_test_limited') "
                    "THEN CREATE ROLE parley_test_limited LOGIN; END IF; END$$"));
  snprintf(sql, sizeof sql, "CREATE SCHEMA \"%s\" AUTHORIZATION parley_test_limited", f->dbname);
  PGresult *res = PQexec(c, sql);
  assert_int_equal(PQresultStatus(res), PGRES_COMMAND_OK);
  PQclear(res);
  PQfinish(c);
  /* the same server, as that user */
  PQconninfoOption *opts = PQconninfoParse(pg_uri(), NULL);
  char uri[512] = "";
  for (PQconninfoOption *o = opts; o && o->keyword; o++)
    if (o->val && o->val[0] && strcmp(o->keyword, "user"))
      snprintf(uri + strlen(uri), sizeof uri - strlen(uri), "%s='%s' ", o->keyword, o->val);
  PQconninfoFree(opts);
  snprintf(uri + strlen(uri), sizeof uri - strlen(uri), "user=parley_test_limited");
  set_str(&f->cfg.store_postgres_uri, uri);
  fixture(state);
  assert_int_equal(append1(f, "a", "u", "c1", 1), 1);
  assert_int_equal(head(f, f->r, "a"), 1);
}

/* Uniqueness fences: a second writer inserting a (room, seq) or a (user_id, cmid) that is taken gets a clear
 * error and writes nothing of its statement; the backend's writer, whose cached heads another writer has
 * overtaken, sequences its batch again and stores all of it once. */
static void test_pg_fence(void **state) {
  struct fx *f = fixture(state);
  append_n(f, "fence", 1, 3, 1000);
  char st[8], k[64];
  /* another writer: one new row and one taken (room, seq), in one statement */
  pg_exec_state(f,
                "INSERT INTO messages (room, seq, mid, ts, user_id, cmid, body) VALUES "
                "('fence', 4, 'x4', 1, 'other', 'o-4', '{}'), ('fence', 3, 'x3', 1, 'other', 'o-3', '{}')",
                st, k);
  assert_string_equal(st, "23505");
  assert_string_equal(k, "messages_room_seq");
  /* a taken (user_id, cmid) in another room */
  pg_exec_state(f,
                "INSERT INTO messages (room, seq, mid, ts, user_id, cmid, body) VALUES "
                "('elsewhere', 1, 'y1', 1, 'u', 'fence-2', '{}')",
                st, k);
  assert_string_equal(st, "23505");
  assert_string_equal(k, "messages_user_cmid");
  assert_int_equal(pg_count(f, "SELECT count(*) FROM messages"), 3); /* nothing half-written */
  assert_int_equal(head(f, f->r, "fence"), 3);

  /* Now another writer stores seqs 4 and 5 of "fence", and (bob, b-1), behind the writer's back. */
  pg_exec(f, "INSERT INTO messages (room, seq, mid, ts, user_id, cmid, body) VALUES "
             "('fence', 4, 'x4', 1, 'other', 'o-4', '{}'), ('fence', 5, 'x5', 1, 'bob', 'b-1', '{}')");
  struct store_append v[4] = {item("fence", "u", "n-1", 2000), item("fence", "u", "n-2", 2001),
                              item("calm", "u", "n-3", 2002), item("fence", "bob", "b-1", 2003)};
  append_ok(f, v, 4); /* collides on (fence, 4), then goes through */
  assert_false(v[0].dup || v[1].dup || v[2].dup);
  assert_int_equal(v[0].msg.seq, 6);
  assert_int_equal(v[1].msg.seq, 7);
  assert_int_equal(v[2].msg.seq, 1);
  assert_true(v[3].dup); /* the other writer's message */
  assert_int_equal(v[3].msg.seq, 5);
  assert_string_equal(v[3].msg.mid, "x5");
  EXPECT_READ(f, "fence", 0, 0, 100, false, 1, 2, 3, 4, 5, 6, 7, 0);
  assert_int_equal(head(f, f->r, "fence"), 7);
  assert_int_equal(pg_count(f, "SELECT head FROM rooms WHERE room = 'fence'"), 7);
  assert_int_equal(pg_count(f, "SELECT count(*) FROM messages"), 8);
  free_items(v, 4);
}

/* Heads survive retention (rooms.head), and a batch over many rooms reads their heads in one go. */
static void test_pg_many_rooms(void **state) {
  struct fx *f = fixture(state);
  enum { ROOMS = 300 };
  struct store_append v[ROOMS];
  for (size_t i = 0; i < ROOMS; i++) {
    char room[16], cmid[16];
    snprintf(room, sizeof room, "r%zu", i);
    snprintf(cmid, sizeof cmid, "m%zu", i);
    v[i] = item(room, "u", cmid, i);
  }
  append_ok(f, v, ROOMS);
  for (size_t i = 0; i < ROOMS; i++) assert_int_equal(v[i].msg.seq, 1);
  free_items(v, ROOMS);
  reopen(f); /* a fresh writer: every head from the database */
  for (size_t i = 0; i < ROOMS; i++) {
    char room[16], cmid[16];
    snprintf(room, sizeof room, "r%zu", i);
    snprintf(cmid, sizeof cmid, "m%zu-2", i);
    v[i] = item(room, "u", cmid, i);
  }
  append_ok(f, v, ROOMS);
  for (size_t i = 0; i < ROOMS; i++) assert_int_equal(v[i].msg.seq, 2);
  free_items(v, ROOMS);
  assert_int_equal(pg_count(f, "SELECT count(*) FROM rooms"), ROOMS);
}

/* The store speaks negative errno at its boundary (the table in store/backend.h), and its codes are distinct:
 * a submit refusal kept in store_req.err must not read as a backend failure. */
static void test_error_codes(void **state) {
  (void)state;
  assert_int_equal(STORE_OK, 0);
  assert_int_equal(STORE_EUNAVAILABLE, -EAGAIN);
  assert_int_equal(STORE_EINVAL, -EINVAL);
  assert_int_equal(STORE_ENOMEM, -ENOMEM);
  assert_int_equal(STORE_ECORRUPT, -EPROTO);
  assert_int_equal(STORE_EOVERLOADED, -ENOBUFS);
  assert_int_equal(STORE_ECLOSED, -ESHUTDOWN);
  const int all[] = {STORE_EUNAVAILABLE, STORE_EINVAL,      STORE_ENOMEM,
                     STORE_ECORRUPT,     STORE_EOVERLOADED, STORE_ECLOSED};
  for (size_t i = 0; i < sizeof all / sizeof *all; i++)
    for (size_t j = i + 1; j < sizeof all / sizeof *all; j++) assert_int_not_equal(all[i], all[j]);
}

static void test_glob(void **state) {
  assert_true(config_glob_match("*", ""));
  assert_true(config_glob_match("*", "anything"));
  assert_true(config_glob_match("", ""));
  assert_false(config_glob_match("", "a"));
  assert_true(config_glob_match("room-*", "room-1"));
  assert_true(config_glob_match("room-*", "room-"));
  assert_false(config_glob_match("room-*", "room"));
  assert_false(config_glob_match("room-*", "xroom-1"));
  assert_true(config_glob_match("*-log", "a-b-log"));
  assert_false(config_glob_match("*-log", "a-log-b"));
  assert_true(config_glob_match("a*b*c", "aXXbYYc"));
  assert_true(config_glob_match("a*b*c", "abbbc"));
  assert_false(config_glob_match("a*b*c", "acb"));
  assert_true(config_glob_match("r?", "r1"));
  assert_false(config_glob_match("r?", "r"));
  assert_false(config_glob_match("r?", "r12"));
  assert_true(config_glob_match("**a", "a"));
  assert_true(config_glob_match("exact", "exact"));
  assert_false(config_glob_match("exact", "exac"));
  assert_false(config_glob_match(NULL, "x"));
  /* no exponential blow-up */
  char s[4097];
  memset(s, 'a', 4096);
  s[4096] = '\0';
  assert_false(config_glob_match("*a*a*a*a*a*a*a*a*b", s));
}

static void test_room_helpers(void **state) {
  struct store_room_list l = {0};
  for (int i = 0; i < 40; i++) {
    char name[16];
    snprintf(name, sizeof name, "r%02d", i);
    struct store_room r = {.room = strdup(name), .head = (uint64_t)i, .read = (uint64_t)i / 2};
    assert_non_null(r.room);
    assert_int_equal(store_room_list_push(&l, &r), STORE_OK);
    assert_null(r.room); /* ownership moved */
  }
  assert_int_equal(l.n, 40);
  assert_true(l.cap >= 40);
  assert_string_equal(l.v[39].room, "r39");
  assert_int_equal(l.v[39].head, 39);
  assert_int_equal(l.v[39].read, 19);
  store_room_list_free(&l);
  assert_int_equal(l.n, 0);
  assert_null(l.v);
  store_room_list_free(&l); /* twice is fine */
  store_room_list_free(NULL);
}

static void test_msg_helpers(void **state) {
  struct store_append a = item("r", "u", "c", 7);
  a.msg.seq = 3;
  struct store_msg copy;
  assert_int_equal(store_msg_copy(&copy, &a.msg), STORE_OK);
  assert_ptr_not_equal(copy.room, a.msg.room);
  assert_string_equal(copy.body, a.msg.body);
  assert_int_equal(copy.seq, 3);
  assert_int_equal(copy.ts, 7);
  struct store_msg_list l = {0};
  for (int i = 0; i < 40; i++) {
    struct store_msg m;
    assert_int_equal(store_msg_copy(&m, &copy), STORE_OK);
    m.seq = (uint64_t)i;
    assert_int_equal(store_msg_list_push(&l, &m), STORE_OK);
    assert_null(m.room); /* ownership moved */
  }
  assert_int_equal(l.n, 40);
  assert_int_equal(l.v[39].seq, 39);
  store_msg_list_free(&l);
  assert_int_equal(l.n, 0);
  store_msg_clear(&copy);
  assert_null(copy.room);
  struct store_msg empty = {0}, ecopy;
  assert_int_equal(store_msg_copy(&ecopy, &empty), STORE_OK); /* NULL fields stay NULL */
  assert_null(ecopy.body);
  free_items(&a, 1);
}

#define STORE_TESTS(X, setup)                                                                                \
  X(test_append_assigns_seq_per_room, setup)                                                                 \
  X(test_batch_across_rooms, setup)                                                                          \
  X(test_fields_round_trip, setup)                                                                           \
  X(test_dedupe, setup)                                                                                      \
  X(test_invalid_items, setup)                                                                               \
  X(test_read_ranges, setup)                                                                                 \
  X(test_persistence, setup)                                                                                 \
  X(test_last_seen, setup)                                                                                   \
  X(test_retain_by_count, setup)                                                                             \
  X(test_retain_by_age, setup)                                                                               \
  X(test_writer_and_reader, setup)                                                                           \
  X(test_large_batch, setup)                                                                                 \
  X(test_two_writers, setup)                                                                                 \
  X(test_write_failure_leaves_nothing, setup)                                                                \
  X(test_open_errors, setup)                                                                                 \
  X(test_room_list, setup)                                                                                   \
  X(test_grouped_small_writes, setup)                                                                        \
  X(test_read_markers, setup)                                                                                \
  X(test_membership_remove_readd, setup)                                                                     \
  X(test_room_list_persistence, setup)                                                                       \
  X(test_forget_user, setup)

#define TEST(fn, setup) cmocka_unit_test_setup_teardown(fn, setup, teardown),

int main(void) {
  const struct CMUnitTest common[] = {
      cmocka_unit_test(test_error_codes),
      cmocka_unit_test(test_glob),
      cmocka_unit_test(test_msg_helpers),
      cmocka_unit_test(test_room_helpers),
  };
  const struct CMUnitTest sqlite_tests[] = {
      STORE_TESTS(TEST, setup_sqlite) TEST(test_sqlite_schema, setup_sqlite)
          TEST(test_sqlite_migration_v1, setup_sqlite) TEST(test_sqlite_inbox_merge, setup_sqlite)
              TEST(test_sqlite_merge_slice, setup_sqlite)
                  TEST(test_sqlite_partial_checkpoint_syncs, setup_sqlite)
                      TEST(test_sqlite_inbox_crash_mid_merge, setup_sqlite)};
  const struct CMUnitTest mongo_tests[] = {STORE_TESTS(TEST, setup_mongo)};
  const struct CMUnitTest pg_tests[] = {
      STORE_TESTS(TEST, setup_pg) TEST(test_pg_schema, setup_pg) TEST(test_pg_fence, setup_pg)
          TEST(test_pg_schema_made_beforehand, setup_pg) TEST(test_pg_many_rooms, setup_pg)};
  if (!mongo_uri())
    fprintf(stderr,
            "test_store: PARLEY_TEST_MONGO_URI is not set: the mongo tests are SKIPPED (run tools/test, "
            "or start tests/support/mongo-server and export the URI it prints)\n");
  mongoc_init(); /* for the test's own client (mongo_cleanup); the backend calls it too */
  int failed = cmocka_run_group_tests_name("store_common", common, NULL, NULL);
  failed += cmocka_run_group_tests_name("store_sqlite", sqlite_tests, NULL, NULL);
  failed += cmocka_run_group_tests_name("store_mongo", mongo_tests, NULL, NULL);
  if (!pg_uri()) pg_server(true);
  if (!pg_uri())
    fprintf(stderr,
            "test_store: PARLEY_TEST_POSTGRES_URI is not set and %s: the postgres tests are SKIPPED\n",
            pg_start_failed);
  failed += cmocka_run_group_tests_name("store_postgres", pg_tests, NULL, NULL);
  pg_server(false);
  return failed ? 1 : 0;
}
