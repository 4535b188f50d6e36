/* postgres: the PostgreSQL storage backend (backend.h, docs/storage.md), on libpq.
 *
 * Each ctx (the writer's, the reader's) is one libpq connection, opened with store.postgres.uri, with
 * synchronous_commit forced on (a commit, and so an ack, waits for the server's WAL flush) and every
 * statement prepared once per connection. A connection that breaks (server restarted, network) is
 * opened again by the next call; a call that fails meanwhile returns STORE_EUNAVAILABLE with the reason.
 *
 * Tables (in store.postgres.schema, else the search_path's first schema), text columns in the "C"
 * collation so that names sort byte-wise as in the other backends:
 *   messages (room, seq, mid, ts, user_id, user_name, cmid, body), PRIMARY KEY (room, seq),
 *            UNIQUE (user_id, cmid): the sequence and the dedupe key, enforced by the server;
 *   rooms (room, head): each room's highest seq, written by the same statement as its messages;
 *   users (user_id, last_seen); memberships (user_id, room, read, joined_at, listed) as in SQLite;
 *   parley_schema (version): the schema's version, brought forward by migrations[] in one transaction.
 *
 * Appends: a batch (the store writer's group commit) is sequenced here — each room's next seq comes from
 * the writer's cache of heads (read from the database the first time a room is seen) — and written by
 * ONE statement: a multi-row INSERT from arrays (unnest) that also moves rooms.head, so the whole batch
 * commits or none of it does, in one transaction, one WAL flush. A second writer (another parleyd on the
 * same database by mistake, or a later cluster member) that takes a seq or a (user_id, cmid) first makes
 * the statement fail on the unique index: nothing of the batch is written, the heads are read again and
 * the batch is sequenced anew (up to APPEND_TRIES times). Two writers therefore never fork a room's
 * sequence nor store a message twice. */
#include <ctype.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <uthash.h>

#include "config.h"
#include "store/backend.h"
#include "util/log.h"

#define DEFAULT_CONNECT_TIMEOUT  "2"     /* seconds; the URI may say otherwise */
#define DEFAULT_TCP_USER_TIMEOUT "30000" /* ms unacknowledged on the socket before the call fails */
#define APPEND_TRIES             5
#define HEAD_CACHE_MAX           100000     /* rooms; past it the cache starts over */
#define SCHEMA_LOCK              0x70617274 /* pg_advisory_xact_lock class of the migrations ("part") */

/* migrations[v - 1] takes the schema from version v - 1 to v; append, never edit a released step. */
static const char *const migrations[] = {
    /* 1: the initial schema */
    "CREATE TABLE messages ("
    "  room text COLLATE \"C\" NOT NULL, seq bigint NOT NULL, mid text NOT NULL, ts bigint NOT NULL,"
    "  user_id text COLLATE \"C\" NOT NULL, user_name text, cmid text COLLATE \"C\" NOT NULL,"
    "  body text NOT NULL,"
    "  CONSTRAINT messages_room_seq PRIMARY KEY (room, seq),"
    "  CONSTRAINT messages_user_cmid UNIQUE (user_id, cmid));"
    "CREATE TABLE rooms (room text COLLATE \"C\" PRIMARY KEY, head bigint NOT NULL);"
    "CREATE TABLE users (user_id text COLLATE \"C\" PRIMARY KEY, last_seen bigint NOT NULL);"
    "CREATE TABLE memberships ("
    "  user_id text COLLATE \"C\" NOT NULL, room text COLLATE \"C\" NOT NULL,"
    "  read bigint NOT NULL DEFAULT 0, joined_at bigint NOT NULL DEFAULT 0,"
    "  listed boolean NOT NULL DEFAULT false, PRIMARY KEY (user_id, room));",
};
#define SCHEMA_VERSION ((int)(sizeof migrations / sizeof migrations[0]))

#define MSG_COLS "room, seq, mid, ts, user_id, user_name, cmid, body"

enum {
  S_FIND_DUPS,
  S_HEADS,
  S_INSERT,
  S_READ_ASC,
  S_READ_DESC,
  S_HEAD,
  S_SET_SEEN,
  S_GET_SEEN,
  S_ROOMS,
  S_RETAIN,
  S_MEMBER_ADD,
  S_MEMBER_DROP,
  S_READ_SET,
  S_READ_GET,
  S_ROOMS_OF,
  S_FORGET,
  S_FORGET_RANGE,
  S_COUNT
};

static const struct {
  const char *sql;
  int nparams;
} stmts[S_COUNT] = {
    /* the stored messages among (user_id, cmid) pairs given as two arrays */
    [S_FIND_DUPS] = {"SELECT m.user_id, m.cmid, m.room, m.seq, m.mid, m.ts FROM messages AS m "
                     "JOIN unnest($1::text[], $2::text[]) AS k(user_id, cmid) "
                     "ON m.user_id = k.user_id AND m.cmid = k.cmid",
                     2},
    /* the heads of the given rooms: rooms.head, or the highest stored seq if that is higher */
    [S_HEADS] = {"SELECT k.room, greatest(coalesce((SELECT head FROM rooms AS r WHERE r.room = k.room), 0), "
                 "coalesce((SELECT max(seq) FROM messages AS m WHERE m.room = k.room), 0)) "
                 "FROM unnest($1::text[]) AS k(room)",
                 1},
    /* the batch: its messages and the heads they reach, in one statement (one transaction) */
    [S_INSERT] = {"WITH ins AS (INSERT INTO messages (" MSG_COLS ") SELECT * FROM unnest($1::text[], "
                  "$2::bigint[], $3::text[], $4::bigint[], $5::text[], $6::text[], $7::text[], $8::text[]) "
                  "RETURNING room, seq) "
                  "INSERT INTO rooms (room, head) SELECT room, max(seq) FROM ins GROUP BY room "
                  "ON CONFLICT (room) DO UPDATE SET head = greatest(rooms.head, excluded.head)",
                  8},
    [S_READ_ASC] = {"SELECT " MSG_COLS " FROM messages WHERE room = $1 AND seq > $2::bigint "
                    "AND seq < $3::bigint ORDER BY seq ASC LIMIT $4::bigint",
                    4},
    [S_READ_DESC] = {"SELECT " MSG_COLS " FROM messages WHERE room = $1 AND seq > $2::bigint "
                     "AND seq < $3::bigint ORDER BY seq DESC LIMIT $4::bigint",
                     4},
    [S_HEAD] = {"SELECT greatest(coalesce((SELECT head FROM rooms WHERE room = $1), 0), "
                "coalesce((SELECT max(seq) FROM messages WHERE room = $1), 0))",
                1},
    [S_SET_SEEN] = {"INSERT INTO users (user_id, last_seen) VALUES ($1, $2::bigint) "
                    "ON CONFLICT (user_id) DO UPDATE SET last_seen = excluded.last_seen",
                    2},
    [S_GET_SEEN] = {"SELECT last_seen FROM users WHERE user_id = $1", 1},
    [S_ROOMS] = {"SELECT room FROM rooms ORDER BY room", 0},
    /* Retention of one room in one statement: the messages older than $2 (0: no age limit) or beyond the
     * $3 newest (0: no count limit) go, never the newest one. */
    [S_RETAIN] = {"WITH n AS (SELECT max(seq) AS newest FROM messages WHERE room = $1), "
                  "k AS (SELECT coalesce((SELECT seq FROM messages WHERE room = $1 ORDER BY seq DESC "
                  "LIMIT 1 OFFSET $3::bigint), 0) AS upto) "
                  "DELETE FROM messages AS m USING n, k WHERE m.room = $1 AND m.seq < n.newest "
                  "AND (($3::bigint > 0 AND m.seq <= k.upto) OR ($2::bigint > 0 AND m.ts < $2::bigint))",
                  3},
    /* listing an unlisted room stamps joined_at; a listed one is left as it is */
    [S_MEMBER_ADD] = {"INSERT INTO memberships (user_id, room, read, joined_at, listed) "
                      "VALUES ($1, $2, 0, $3::bigint, true) ON CONFLICT (user_id, room) DO UPDATE "
                      "SET listed = true, joined_at = excluded.joined_at WHERE NOT memberships.listed",
                      3},
    /* removal: a row without a marker goes, one with a marker stays unlisted (one statement) */
    [S_MEMBER_DROP] = {"WITH d AS (DELETE FROM memberships WHERE user_id = $1 AND room = $2 AND read = 0) "
                       "UPDATE memberships SET listed = false WHERE user_id = $1 AND room = $2 AND listed "
                       "AND read > 0",
                       2},
    /* a row comes back only when the marker moved (or was created) */
    [S_READ_SET] = {"INSERT INTO memberships (user_id, room, read) VALUES ($1, $2, $3::bigint) "
                    "ON CONFLICT (user_id, room) DO UPDATE SET read = excluded.read "
                    "WHERE excluded.read > memberships.read RETURNING read",
                    3},
    [S_READ_GET] = {"SELECT read FROM memberships WHERE user_id = $1 AND room = $2", 2},
    [S_ROOMS_OF] = {"SELECT m.room, coalesce(r.head, 0), m.read FROM memberships AS m "
                    "LEFT JOIN rooms AS r ON r.room = m.room WHERE m.user_id = $1 AND m.listed "
                    "ORDER BY m.room",
                    1},
    /* forget_user: the user's memberships (listed or not) and last-seen row, in one statement so that
     * both go or neither; the range form takes every id in [$1, $2) (the columns compare byte-wise) */
    [S_FORGET] =
        {"WITH m AS (DELETE FROM memberships WHERE user_id = $1) DELETE FROM users WHERE user_id = $1", 1},
    [S_FORGET_RANGE] = {"WITH m AS (DELETE FROM memberships WHERE user_id >= $1 AND user_id < $2) "
                        "DELETE FROM users WHERE user_id >= $1 AND user_id < $2",
                        2},
};

/* A room's head as the writer knows it (the appending connection only). */
struct head_entry {
  uint64_t head;  /* committed */
  uint64_t next;  /* with the current batch's items */
  uint64_t batch; /* the batch that last moved next */
  UT_hash_handle hh;
  char room[]; /* the key */
};

struct pg {
  PGconn *conn;
  char *uri;                /* as configured (owned) */
  char *uri_shown;          /* the URI with any password masked, for messages (owned) */
  char *schema;             /* store.postgres.schema, "" for none (owned) */
  bool failing;             /* the last call failed (logged once per streak) */
  bool lost;                /* the connection broke: the next call opens it again (logged once) */
  bool in_group;            /* group(ctx, true) has begun a transaction */
  struct head_entry *heads; /* writer: owned entries */
  unsigned nheads;
  uint64_t batch;
};

/* libpq messages end in a newline and may have several lines: the first, without it. */
static const char *first_line(const char *msg, char *buf, size_t len) {
  if (!msg || !*msg) return "unknown error";
  size_t n = strcspn(msg, "\n");
  if (n >= len) n = len - 1;
  memcpy(buf, msg, n);
  buf[n] = '\0';
  return buf;
}

/* "postgresql://user:secret@host/db" → "postgresql://user:***@host/db"; "… password=secret …" → "…
 * password=*** …" */
static char *mask_uri(const char *uri) {
  const char *pw = strstr(uri, "password=");
  if (pw && (pw == uri || isspace((unsigned char)pw[-1]) || pw[-1] == '?' || pw[-1] == '&')) {
    const char *end = pw + 9;
    while (*end && !isspace((unsigned char)*end) && *end != '&') end++;
    size_t len = strlen(uri) + 4;
    char *out = malloc(len);
    if (out) snprintf(out, len, "%.*s***%s", (int)(pw + 9 - uri), uri, end);
    return out;
  }
  const char *auth = strstr(uri, "://");
  if (!auth) return strdup(uri);
  auth += 3;
  const char *at = strchr(auth, '@'), *colon = strchr(auth, ':');
  const char *slash = strchr(auth, '/');
  if (!at || (slash && slash < at) || !colon || colon > at) return strdup(uri);
  size_t n = (size_t)(colon + 1 - uri);
  size_t len = n + 3 + strlen(at) + 1;
  char *out = malloc(len);
  if (out) snprintf(out, len, "%.*s***%s", (int)n, uri, at);
  return out;
}

static void heads_clear(struct pg *p) {
  struct head_entry *e, *tmp;
  HASH_ITER(hh, p->heads, e, tmp) {
    HASH_DEL(p->heads, e);
    free(e);
  }
  p->nheads = 0;
}

/* A failed result as a store error: connection trouble, a server shutting down or short of resources,
 * lock and serialization conflicts and a unique key taken by another writer are "retry later"; bad data is
 * EINVAL; a missing or changed table, or damage the server reports, needs an operator. */
static int map_result(const PGresult *res, PGconn *conn) {
  if (!res) return PQstatus(conn) == CONNECTION_OK ? STORE_ENOMEM : STORE_EUNAVAILABLE;
  if (PQstatus(conn) != CONNECTION_OK) return STORE_EUNAVAILABLE;
  const char *st = PQresultErrorField(res, PG_DIAG_SQLSTATE);
  if (!st || strlen(st) != 5) return STORE_EUNAVAILABLE;
  if (!strncmp(st, "22", 2)) return STORE_EINVAL;
  if (!strcmp(st, "53200")) return STORE_ENOMEM;
  if (!strncmp(st, "42", 2) || !strncmp(st, "XX", 2)) return STORE_ECORRUPT;
  return STORE_EUNAVAILABLE;
}

static bool is_unique_violation(const PGresult *res) {
  const char *st = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
  return st && !strcmp(st, "23505");
}

/* Notices (e.g. "relation already exists, skipping") go to the debug log. */
static void on_notice(void *arg, const char *msg) {
  (void)arg;
  char buf[256];
  log_debug("store(postgres): %s", first_line(msg, buf, sizeof buf));
}

/* Run SQL text (no parameters, one or more statements); false on failure, with the reason in err and the
 * store error in *rc. */
static bool exec_simple(struct pg *p, const char *sql, char *err, size_t errlen, int *rc) {
  PGresult *res = PQexec(p->conn, sql);
  ExecStatusType s = PQresultStatus(res);
  bool ok = s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK;
  if (!ok) {
    char buf[256];
    store_seterr(err, errlen, "PostgreSQL at %s: %s", p->uri_shown,
                 first_line(res ? PQresultErrorMessage(res) : PQerrorMessage(p->conn), buf, sizeof buf));
    if (rc) *rc = map_result(res, p->conn);
  }
  PQclear(res);
  return ok;
}

/* Open the connection: defaults first, the configured string last (its settings win), then the session
 * settings and the prepared statements. */
static int pg_connect(struct pg *p, char *err, size_t errlen) {
  if (p->conn) PQfinish(p->conn);
  const char *keys[] = {"connect_timeout", "tcp_user_timeout", "application_name", "dbname", NULL};
  const char *vals[] = {DEFAULT_CONNECT_TIMEOUT, DEFAULT_TCP_USER_TIMEOUT, "parleyd", p->uri, NULL};
  p->conn = PQconnectdbParams(keys, vals, 1);
  char buf[256];
  if (!p->conn) {
    store_seterr(err, errlen, "out of memory");
    return STORE_ENOMEM;
  }
  if (PQstatus(p->conn) != CONNECTION_OK) {
    store_seterr(err, errlen, "cannot reach PostgreSQL at %s: %s", p->uri_shown,
                 first_line(PQerrorMessage(p->conn), buf, sizeof buf));
    return STORE_EUNAVAILABLE;
  }
  PQsetNoticeProcessor(p->conn, on_notice, NULL);
  int rc = STORE_EUNAVAILABLE;
  /* synchronous_commit on whatever the server's default: an ack means the commit's WAL is on disk. */
  if (!exec_simple(p, "SET synchronous_commit = on; SET client_min_messages = warning", err, errlen, &rc))
    return rc;
  if (p->schema[0]) {
    char *id = PQescapeIdentifier(p->conn, p->schema, strlen(p->schema));
    if (!id) {
      store_seterr(err, errlen, "PostgreSQL at %s: %s", p->uri_shown,
                   first_line(PQerrorMessage(p->conn), buf, sizeof buf));
      return STORE_EINVAL;
    }
    size_t n = 2 * strlen(id) + 64;
    char *sql = malloc(n);
    if (!sql) {
      PQfreemem(id);
      store_seterr(err, errlen, "out of memory");
      return STORE_ENOMEM;
    }
    /* CREATE SCHEMA needs CREATE on the database even when the schema exists: only when it does not. */
    const char *pv[1] = {p->schema};
    PGresult *res =
        PQexecParams(p->conn, "SELECT 1 FROM pg_namespace WHERE nspname = $1", 1, NULL, pv, NULL, NULL, 0);
    bool exists = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) > 0;
    PQclear(res);
    snprintf(sql, n, "%s%s%sSET search_path = %s", exists ? "" : "CREATE SCHEMA IF NOT EXISTS ",
             exists ? "" : id, exists ? "" : "; ", id);
    PQfreemem(id);
    bool ok = exec_simple(p, sql, err, errlen, &rc);
    free(sql);
    if (!ok) return rc;
  }
  return STORE_OK;
}

static int prepare_all(struct pg *p, char *err, size_t errlen) {
  char name[8], buf[256];
  for (int i = 0; i < S_COUNT; i++) {
    snprintf(name, sizeof name, "s%d", i);
    PGresult *res = PQprepare(p->conn, name, stmts[i].sql, stmts[i].nparams, NULL);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
      int rc = map_result(res, p->conn);
      store_seterr(err, errlen, "PostgreSQL at %s: preparing \"%s\": %s", p->uri_shown, stmts[i].sql,
                   first_line(res ? PQresultErrorMessage(res) : PQerrorMessage(p->conn), buf, sizeof buf));
      PQclear(res);
      return rc;
    }
    PQclear(res);
  }
  return STORE_OK;
}

/* Bring the schema to SCHEMA_VERSION: every step in one transaction, under an advisory lock so that two
 * parleyd starting together migrate once. */
static int migrate(struct pg *p, char *err, size_t errlen) {
  int rc = STORE_EUNAVAILABLE;
  char buf[256];
  if (!exec_simple(p, "BEGIN", err, errlen, &rc)) return rc;
  char lock[160];
  snprintf(lock, sizeof lock, "SELECT pg_advisory_xact_lock(%d, hashtext(coalesce(current_schema(), '')))",
           SCHEMA_LOCK);
  if (!exec_simple(p, lock, err, errlen, &rc)) goto rollback;
  PGresult *res = PQexec(p->conn, "SELECT CASE WHEN to_regclass('parley_schema') IS NULL THEN 0 ELSE -1 END");
  int v = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 ? atoi(PQgetvalue(res, 0, 0)) : -2;
  if (v == -2) {
    rc = map_result(res, p->conn);
    store_seterr(err, errlen, "PostgreSQL at %s: %s", p->uri_shown,
                 first_line(res ? PQresultErrorMessage(res) : PQerrorMessage(p->conn), buf, sizeof buf));
    PQclear(res);
    goto rollback;
  }
  PQclear(res);
  if (v == -1) {
    res = PQexec(p->conn, "SELECT version FROM parley_schema");
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
      store_seterr(err, errlen, "PostgreSQL at %s: parley_schema must hold one row: %s", p->uri_shown,
                   first_line(PQresultErrorMessage(res), buf, sizeof buf));
      PQclear(res);
      rc = STORE_ECORRUPT;
      goto rollback;
    }
    v = atoi(PQgetvalue(res, 0, 0));
    PQclear(res);
  } else if (!exec_simple(p,
                          "CREATE TABLE parley_schema (version integer NOT NULL);"
                          "INSERT INTO parley_schema VALUES (0)",
                          err, errlen, &rc)) {
    goto rollback;
  }
  if (v > SCHEMA_VERSION || v < 0) {
    store_seterr(err, errlen,
                 "PostgreSQL at %s: schema version %d is not one this parleyd knows (latest %d); use a newer "
                 "parleyd",
                 p->uri_shown, v, SCHEMA_VERSION);
    rc = STORE_ECORRUPT;
    goto rollback;
  }
  for (; v < SCHEMA_VERSION; v++) {
    char set[64];
    snprintf(set, sizeof set, "UPDATE parley_schema SET version = %d", v + 1);
    if (!exec_simple(p, migrations[v], err, errlen, &rc) || !exec_simple(p, set, err, errlen, &rc)) {
      char why[200];
      snprintf(why, sizeof why, "%s", err);
      store_seterr(err, errlen, "schema migration to version %d failed: %s", v + 1, why);
      if (rc == STORE_EINVAL) rc = STORE_ECORRUPT;
      goto rollback;
    }
  }
  if (!exec_simple(p, "COMMIT", err, errlen, &rc)) return rc;
  return STORE_OK;
rollback:
  PQclear(PQexec(p->conn, "ROLLBACK"));
  return rc;
}

static void pg_close(void *ctx) {
  struct pg *p = ctx;
  if (!p) return;
  if (p->conn) PQfinish(p->conn);
  heads_clear(p);
  free(p->uri);
  free(p->uri_shown);
  free(p->schema);
  free(p);
}

static int pg_open(const struct config *cfg, void **ctx, char *err, size_t errlen) {
  *ctx = NULL;
  struct pg *p = calloc(1, sizeof *p);
  const char *uri = cfg->store_postgres_uri ? cfg->store_postgres_uri : "";
  if (!p || !(p->uri = strdup(uri)) || !(p->uri_shown = mask_uri(uri)) ||
      !(p->schema = strdup(cfg->store_postgres_schema ? cfg->store_postgres_schema : ""))) {
    pg_close(p);
    store_seterr(err, errlen, "out of memory");
    return STORE_ENOMEM;
  }
  int rc;
  if (!uri[0]) {
    store_seterr(err, errlen, "store.postgres.uri is empty");
    rc = STORE_EINVAL;
  } else {
    char *bad = NULL;
    PQconninfoOption *opts = PQconninfoParse(uri, &bad);
    if (!opts) {
      char buf[256];
      store_seterr(err, errlen, "invalid PostgreSQL connection string %s: %s", p->uri_shown,
                   bad ? first_line(bad, buf, sizeof buf) : "out of memory");
      PQfreemem(bad);
      rc = STORE_EINVAL;
    } else {
      PQconninfoFree(opts);
      if (!(rc = pg_connect(p, err, errlen)) && !(rc = migrate(p, err, errlen)))
        rc = prepare_all(p, err, errlen);
    }
  }
  if (rc) {
    pg_close(p);
    return rc;
  }
  *ctx = p;
  return STORE_OK;
}

/* Before a call: a connection that broke is opened again (not inside a group: its transaction is gone,
 * and the group's end reports that). */
static int ensure(struct pg *p, char *err, size_t errlen) {
  if (PQstatus(p->conn) == CONNECTION_OK) return STORE_OK;
  if (p->in_group) {
    store_seterr(err, errlen, "PostgreSQL at %s: the connection broke during a transaction", p->uri_shown);
    return STORE_EUNAVAILABLE;
  }
  if (!p->lost) log_warn("store(postgres): the connection to %s broke; opening it again", p->uri_shown);
  p->lost = true;
  heads_clear(p);
  int rc = pg_connect(p, err, errlen);
  if (!rc) rc = prepare_all(p, err, errlen);
  if (rc) return rc;
  log_info("store(postgres): connected to %s again", p->uri_shown);
  p->lost = false;
  return STORE_OK;
}

static int call_fail(struct pg *p, const char *what, const char *why) {
  if (!p->failing) log_warn("store(postgres): %s failed: %s", what, why);
  p->failing = true;
  return STORE_EUNAVAILABLE;
}

static int call_ok(struct pg *p) {
  if (p->failing) log_info("store(postgres): calls succeed again");
  p->failing = false;
  return STORE_OK;
}

/* Run prepared statement `which` (text parameters, text results). A statement that fails because the
 * connection broke is run once more on a new connection, unless inside a group: every statement used this
 * way is idempotent. Returns the result (PQclear it) or NULL with *rc set and the failure logged. */
static PGresult *run(struct pg *p, int which, const char *const *vals, int expect, const char *what,
                     int *rc) {
  char err[256], name[8], buf[256];
  snprintf(name, sizeof name, "s%d", which);
  for (int attempt = 0;; attempt++) {
    if ((*rc = ensure(p, err, sizeof err))) {
      call_fail(p, what, err);
      return NULL;
    }
    PGresult *res = PQexecPrepared(p->conn, name, stmts[which].nparams, vals, NULL, NULL, 0);
    if (PQresultStatus(res) == (ExecStatusType)expect) {
      *rc = STORE_OK;
      return res;
    }
    bool broke = PQstatus(p->conn) != CONNECTION_OK;
    *rc = map_result(res, p->conn);
    snprintf(err, sizeof err, "%s",
             first_line(res ? PQresultErrorMessage(res) : PQerrorMessage(p->conn), buf, sizeof buf));
    PQclear(res);
    if (broke && attempt == 0 && !p->in_group) continue;
    if (*rc == STORE_EUNAVAILABLE || *rc == STORE_ECORRUPT) call_fail(p, what, err);
    return NULL;
  }
}

static const char *u64s(char *buf, uint64_t v) {
  snprintf(buf, 24, "%" PRIu64, v > INT64_MAX ? (uint64_t)INT64_MAX : v);
  return buf;
}

static uint64_t get_u64(const PGresult *res, int row, int col) {
  if (PQgetisnull(res, row, col)) return 0;
  long long v = strtoll(PQgetvalue(res, row, col), NULL, 10);
  return v < 0 ? 0 : (uint64_t)v;
}

/* A column as a malloc'd string (NULL stays NULL); *ok cleared on allocation failure. */
static char *get_str(const PGresult *res, int row, int col, bool *ok) {
  if (PQgetisnull(res, row, col)) return NULL;
  char *s = strdup(PQgetvalue(res, row, col));
  if (!s) *ok = false;
  return s;
}

/* ---- array parameters ---- */

/* A growing text: the literal of a PostgreSQL array, {"a","b",NULL,…}. */
struct arr {
  char *p;
  size_t n, cap;
  bool oom;
};

static void arr_put(struct arr *a, const char *s, size_t len) {
  if (a->oom) return;
  if (a->n + len + 2 > a->cap) {
    size_t cap = a->cap ? a->cap : 256;
    while (a->n + len + 2 > cap) cap *= 2;
    char *q = realloc(a->p, cap);
    if (!q) {
      a->oom = true;
      return;
    }
    a->p = q;
    a->cap = cap;
  }
  memcpy(a->p + a->n, s, len);
  a->n += len;
  a->p[a->n] = '\0';
}

static void arr_sep(struct arr *a) { arr_put(a, a->n ? "," : "{", 1); }

/* Append one element: a string quoted (" and \ escaped), or NULL. */
static void arr_str(struct arr *a, const char *s) {
  arr_sep(a);
  if (!s) {
    arr_put(a, "NULL", 4);
    return;
  }
  arr_put(a, "\"", 1);
  for (const char *c = s; *c;) {
    size_t run = strcspn(c, "\"\\");
    arr_put(a, c, run);
    c += run;
    if (!*c) break;
    arr_put(a, "\\", 1);
    arr_put(a, c, 1);
    c++;
  }
  arr_put(a, "\"", 1);
}

static void arr_u64(struct arr *a, uint64_t v) {
  char buf[24];
  u64s(buf, v);
  arr_sep(a);
  arr_put(a, buf, strlen(buf));
}

static const char *arr_end(struct arr *a) {
  if (!a->n) arr_put(a, "{", 1);
  arr_put(a, "}", 1);
  return a->oom ? NULL : a->p;
}

/* ---- append ---- */

struct outcome {
  bool dup;
  bool tried;  /* sent in an insert of an earlier attempt of this append (kept across attempts) */
  bool stored; /* …and found stored with its own mid: written by that attempt, not a duplicate */
  size_t of;   /* dup within the batch: index of the original item, or SIZE_MAX */
  uint64_t seq, ts;
  char *room, *mid;        /* dup: the original's (owned here until applied) */
  struct head_entry *head; /* a new item: its room's head */
};

/* (user_id, cmid) of the batch's items, to find duplicates within it and to match stored rows. */
struct key_entry {
  size_t first; /* the first item with this key */
  UT_hash_handle hh;
  size_t len;
  char key[]; /* user_id, NUL, cmid */
};

static bool valid_item(const struct store_msg *m) {
  return m->room && m->room[0] && m->mid && m->user_id && m->cmid && m->cmid[0] && m->body;
}

static struct key_entry *key_new(const char *user_id, const char *cmid, size_t first) {
  size_t ul = strlen(user_id), cl = strlen(cmid);
  struct key_entry *k = malloc(sizeof *k + ul + cl + 1);
  if (!k) return NULL;
  k->first = first;
  k->len = ul + 1 + cl;
  memcpy(k->key, user_id, ul + 1);
  memcpy(k->key + ul + 1, cmid, cl);
  return k;
}

static struct key_entry *key_find(struct key_entry *keys, const char *user_id, const char *cmid) {
  size_t ul = strlen(user_id), cl = strlen(cmid);
  char stack[256], *key = ul + cl + 1 <= sizeof stack ? stack : malloc(ul + cl + 1);
  if (!key) return NULL;
  memcpy(key, user_id, ul + 1);
  memcpy(key + ul + 1, cmid, cl);
  struct key_entry *k;
  HASH_FIND(hh, keys, key, ul + cl + 1, k);
  if (key != stack) free(key);
  return k;
}

static void keys_free(struct key_entry **keys) {
  struct key_entry *k, *tmp;
  HASH_ITER(hh, *keys, k, tmp) {
    HASH_DEL(*keys, k);
    free(k);
  }
}

static struct head_entry *head_get(struct pg *p, const char *room, bool *oom) {
  struct head_entry *e;
  HASH_FIND_STR(p->heads, room, e);
  if (e) return e;
  size_t len = strlen(room);
  if (!(e = calloc(1, sizeof *e + len + 1))) {
    *oom = true;
    return NULL;
  }
  memcpy(e->room, room, len + 1);
  e->batch = 0;
  e->head = UINT64_MAX; /* not read yet */
  HASH_ADD(hh, p->heads, room, len, e);
  p->nheads++;
  return e;
}

/* What one try of a batch ran into: the statement's failure, kept for the caller's message. */
struct attempt {
  int rc;
  bool collided;   /* a unique key was taken (by another writer, or by a stored message: cmid_taken) */
  bool cmid_taken; /* …the (user_id, cmid) one */
  char why[256];
};

static void attempt_fail(struct pg *p, struct attempt *at, PGresult *res) {
  char buf[200];
  at->rc = map_result(res, p->conn);
  at->collided = is_unique_violation(res);
  const char *cons = res ? PQresultErrorField(res, PG_DIAG_CONSTRAINT_NAME) : NULL;
  at->cmid_taken = at->collided && cons && !strcmp(cons, "messages_user_cmid");
  snprintf(at->why, sizeof at->why, "%s%s%s%s",
           at->collided ? "another writer stored a key of this batch first: " : "",
           first_line(res ? PQresultErrorMessage(res) : PQerrorMessage(p->conn), buf, sizeof buf),
           cons ? " — " : "", cons ? cons : "");
  if (at->rc == STORE_EINVAL && at->collided) at->rc = STORE_EUNAVAILABLE;
}

/* One try at a batch: fills out[] (nothing is applied to the items yet). keys: the batch's (user_id, cmid)
 * hash, built by the caller. optimistic: skip the query for stored duplicates and let the insert's unique
 * check find them (it probes the same index anyway): a batch with one fails on messages_user_cmid, writes
 * nothing, and is tried again with the query. */
static void append_once(struct pg *p, const struct store_append *items, size_t n, struct outcome *out,
                        struct key_entry *keys, bool optimistic, struct attempt *at) {
  struct arr a[8] = {{0}};
  PGresult *res = NULL;
  at->rc = STORE_OK;
  at->collided = at->cmid_taken = false;
  bool oom = false;
  uint64_t batch = ++p->batch;
  for (size_t i = 0; i < n; i++) {
    free(out[i].room);
    free(out[i].mid);
    out[i] = (struct outcome){.of = SIZE_MAX, .tried = out[i].tried};
  }
  if ((at->rc = ensure(p, at->why, sizeof at->why))) return;

  /* 1. Duplicates of stored messages: one query for the whole batch (each key once). */
  const char *v[8] = {NULL};
  for (struct key_entry *k = optimistic ? NULL : keys; k; k = k->hh.next) {
    arr_str(&a[0], items[k->first].msg.user_id);
    arr_str(&a[1], items[k->first].msg.cmid);
  }
  if (!optimistic) {
    v[0] = arr_end(&a[0]);
    v[1] = arr_end(&a[1]);
    if (!v[0] || !v[1]) goto oom;
    res = PQexecPrepared(p->conn, "s0", 2, v, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) goto fail;
  }
  for (int r = 0; res && r < PQntuples(res); r++) {
    struct key_entry *k = key_find(keys, PQgetvalue(res, r, 0), PQgetvalue(res, r, 1));
    if (!k) continue;
    for (size_t i = k->first; i < n; i++) { /* every item with this key */
      const struct store_msg *m = &items[i].msg;
      if (strcmp(m->user_id, PQgetvalue(res, r, 0)) || strcmp(m->cmid, PQgetvalue(res, r, 1))) continue;
      if (out[i].tried && !strcmp(PQgetvalue(res, r, 4), m->mid)) {
        /* Our own message, from an earlier try whose result did not reach us (its commit did). */
        out[i].stored = true;
        out[i].seq = get_u64(res, r, 3);
        continue;
      }
      bool ok = true;
      out[i].dup = true;
      out[i].room = get_str(res, r, 2, &ok);
      out[i].seq = get_u64(res, r, 3);
      out[i].mid = get_str(res, r, 4, &ok);
      out[i].ts = get_u64(res, r, 5);
      if (!ok) oom = true;
    }
  }
  PQclear(res);
  res = NULL;
  if (oom) goto oom;
  /* 2. Duplicates within the batch: a later item with the key of an earlier one that is not a duplicate of
   * something stored. */
  for (size_t i = 0; i < n; i++) {
    if (out[i].dup || out[i].stored) continue;
    struct key_entry *k = key_find(keys, items[i].msg.user_id, items[i].msg.cmid);
    if (!k || k->first == i) continue;
    size_t j = k->first;
    out[i].dup = true;
    out[i].of = j;
    out[i].ts = items[j].msg.ts;
    out[i].room = strdup(items[j].msg.room);
    out[i].mid = strdup(items[j].msg.mid);
    if (!out[i].room || !out[i].mid) goto oom;
  }
  /* 3. Heads of the rooms the cache does not know yet: one query. */
  size_t unknown = 0;
  for (size_t i = 0; i < n; i++) {
    if (out[i].dup || out[i].stored) continue;
    if (!(out[i].head = head_get(p, items[i].msg.room, &oom))) goto oom; /* (oom: false until here) */
    if (out[i].head->head == UINT64_MAX && out[i].head->batch != batch) {
      out[i].head->batch = batch; /* listed once */
      arr_str(&a[2], items[i].msg.room);
      unknown++;
    }
  }
  if (unknown) {
    v[0] = arr_end(&a[2]);
    if (!v[0]) goto oom;
    res = PQexecPrepared(p->conn, "s1", 1, v, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) goto fail;
    for (int r = 0; r < PQntuples(res); r++) {
      struct head_entry *e;
      HASH_FIND_STR(p->heads, PQgetvalue(res, r, 0), e);
      if (e) e->head = get_u64(res, r, 1);
    }
    PQclear(res);
    res = NULL;
  }
  /* 4. Seqs, and the rows of the insert. */
  size_t rows = 0;
  for (size_t i = 0; i < n; i++) {
    if (out[i].dup || out[i].stored) continue;
    struct head_entry *e = out[i].head;
    if (e->head == UINT64_MAX) { /* the query did not return it: cannot happen, but never guess */
      snprintf(at->why, sizeof at->why, "the head of room %s could not be read", items[i].msg.room);
      at->rc = STORE_EUNAVAILABLE;
      goto out;
    }
    if (e->batch != batch || e->next < e->head) e->next = e->head;
    e->batch = batch;
    out[i].seq = ++e->next;
    out[i].tried = true;
    rows++;
  }
  for (int c = 0; c < 8; c++) a[c].n = 0; /* the arrays are reused (their buffers kept) for the insert */
  for (size_t i = 0; i < n; i++) {
    if (out[i].dup || out[i].stored) continue;
    const struct store_msg *m = &items[i].msg;
    arr_str(&a[0], m->room);
    arr_u64(&a[1], out[i].seq);
    arr_str(&a[2], m->mid);
    arr_u64(&a[3], m->ts);
    arr_str(&a[4], m->user_id);
    arr_str(&a[5], m->user_name);
    arr_str(&a[6], m->cmid);
    arr_str(&a[7], m->body);
  }
  for (size_t i = 0; i < n; i++)
    if (out[i].of != SIZE_MAX) out[i].seq = out[out[i].of].seq;
  if (rows) {
    for (int c = 0; c < 8; c++)
      if (!(v[c] = arr_end(&a[c]))) goto oom;
    /* 5. The batch, in one statement. */
    res = PQexecPrepared(p->conn, "s2", 8, v, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) goto fail;
    PQclear(res);
    res = NULL;
    for (size_t i = 0; i < n; i++)
      if (out[i].head) out[i].head->head = out[i].head->next;
  }
  goto out;
oom:
  at->rc = STORE_ENOMEM;
  snprintf(at->why, sizeof at->why, "out of memory");
  goto out;
fail:
  attempt_fail(p, at, res);
out:
  PQclear(res);
  for (int c = 0; c < 8; c++) free(a[c].p);
  /* Whatever another writer did, the heads are read again; a (user_id, cmid) taken leaves them as they
   * were (the usual cause: a client's resend of a stored message). */
  if (at->rc && !at->cmid_taken) heads_clear(p);
}

static int pg_append(void *ctx, struct store_append *items, size_t n, char *err, size_t errlen) {
  struct pg *p = ctx;
  if (!n) return STORE_OK;
  for (size_t i = 0; i < n; i++) {
    if (!valid_item(&items[i].msg)) {
      store_seterr(err, errlen, "append: item %zu lacks room, mid, user_id, cmid or body", i);
      return STORE_EINVAL;
    }
  }
  if (p->nheads >= HEAD_CACHE_MAX) heads_clear(p);
  struct outcome *out = calloc(n, sizeof *out);
  struct key_entry *keys = NULL;
  struct attempt at = {.rc = STORE_ENOMEM};
  snprintf(at.why, sizeof at.why, "out of memory");
  bool oom = !out;
  for (size_t i = 0; i < n && !oom; i++) {
    if (key_find(keys, items[i].msg.user_id, items[i].msg.cmid)) continue;
    struct key_entry *k = key_new(items[i].msg.user_id, items[i].msg.cmid, i);
    if (!k) {
      oom = true;
      break;
    }
    HASH_ADD(hh, keys, key, k->len, k);
  }
  if (!oom) {
    /* A key another writer took first: sequence again from the heads as stored now. A connection that
     * broke: once more on a new one (ensure). */
    for (int attempt = 0; attempt < APPEND_TRIES; attempt++) {
      bool was_ok = PQstatus(p->conn) == CONNECTION_OK, optimistic = attempt == 0;
      append_once(p, items, n, out, keys, optimistic, &at);
      if (!at.rc) break;
      /* The server answered with an error: the statement, and its transaction, wrote nothing. Only a
       * connection that broke leaves it open whether the insert committed (tried: see append_once). */
      if (PQstatus(p->conn) == CONNECTION_OK)
        for (size_t i = 0; i < n; i++) out[i].tried = false;
      if (at.cmid_taken && optimistic) continue; /* a stored duplicate: now with the query */
      if (at.collided) {
        log_warn("store(postgres): append of %zu messages: %s; sequencing again", n, at.why);
        continue;
      }
      if (!(was_ok && PQstatus(p->conn) != CONNECTION_OK)) break; /* retry only a connection that broke now */
    }
  }
  keys_free(&keys);
  int ret = at.rc;
  if (ret) {
    if (!strncmp(at.why, "cannot reach", 12)) /* names the server already */
      store_seterr(err, errlen, "%s", at.why);
    else
      store_seterr(err, errlen, "PostgreSQL at %s: %s", p->uri_shown, at.why);
    p->failing = true;
  } else {
    for (size_t i = 0; i < n; i++)
      store_append_settle(&items[i], out[i].dup, out[i].seq, &out[i].room, &out[i].mid, out[i].ts);
    call_ok(p);
  }
  if (out)
    for (size_t i = 0; i < n; i++) {
      free(out[i].room);
      free(out[i].mid);
    }
  free(out);
  return ret;
}

/* ---- reads ---- */

static int pg_read(void *ctx, const char *room, uint64_t after, uint64_t before, size_t limit, bool newest,
                   struct store_msg_list *out) {
  struct pg *p = ctx;
  if (!room || !out) return STORE_EINVAL;
  if (!limit || (before && before <= after + 1)) return STORE_OK;
  char b1[24], b2[24], b3[24];
  const char *v[4] = {room, u64s(b1, after), u64s(b2, before ? before : UINT64_MAX), u64s(b3, limit)};
  int rc;
  PGresult *res = run(p, newest ? S_READ_DESC : S_READ_ASC, v, PGRES_TUPLES_OK, "read", &rc);
  if (!res) return rc;
  size_t first = out->n;
  int ret = STORE_OK;
  int rows = PQntuples(res);
  for (int r = 0; r < rows; r++) {
    int row = newest ? rows - 1 - r : r; /* newest first from the server: ascending here */
    bool ok = true;
    struct store_msg m = {
        .room = get_str(res, row, 0, &ok),
        .seq = get_u64(res, row, 1),
        .mid = get_str(res, row, 2, &ok),
        .ts = get_u64(res, row, 3),
        .user_id = get_str(res, row, 4, &ok),
        .user_name = get_str(res, row, 5, &ok),
        .cmid = get_str(res, row, 6, &ok),
        .body = get_str(res, row, 7, &ok),
    };
    if (!ok) store_msg_clear(&m);
    if (!ok || store_msg_list_push(out, &m)) {
      ret = STORE_ENOMEM;
      break;
    }
  }
  PQclear(res);
  if (ret) { /* leave out as it was */
    for (size_t i = first; i < out->n; i++) store_msg_clear(&out->v[i]);
    out->n = first;
    return ret;
  }
  return call_ok(p);
}

static int pg_head(void *ctx, const char *room, uint64_t *seq) {
  struct pg *p = ctx;
  if (!room || !seq) return STORE_EINVAL;
  const char *v[1] = {room};
  int rc;
  PGresult *res = run(p, S_HEAD, v, PGRES_TUPLES_OK, "head", &rc);
  if (!res) return rc;
  *seq = PQntuples(res) ? get_u64(res, 0, 0) : 0;
  PQclear(res);
  return call_ok(p);
}

static int pg_set_last_seen(void *ctx, const char *user_id, uint64_t ts) {
  struct pg *p = ctx;
  if (!user_id) return STORE_EINVAL;
  char b[24];
  const char *v[2] = {user_id, u64s(b, ts)};
  int rc;
  PGresult *res = run(p, S_SET_SEEN, v, PGRES_COMMAND_OK, "set_last_seen", &rc);
  if (!res) return rc;
  PQclear(res);
  return call_ok(p);
}

static int pg_get_last_seen(void *ctx, const char *user_id, uint64_t *ts) {
  struct pg *p = ctx;
  if (!user_id || !ts) return STORE_EINVAL;
  const char *v[1] = {user_id};
  int rc;
  PGresult *res = run(p, S_GET_SEEN, v, PGRES_TUPLES_OK, "get_last_seen", &rc);
  if (!res) return rc;
  *ts = PQntuples(res) ? get_u64(res, 0, 0) : 0;
  PQclear(res);
  return call_ok(p);
}

/* ---- room lists and read markers ---- */

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int pg_member_set(void *ctx, const char *user_id, const char *room, bool member) {
  struct pg *p = ctx;
  if (!user_id || !user_id[0] || !room || !room[0]) return STORE_EINVAL;
  char b[24];
  const char *v[3] = {user_id, room, u64s(b, now_ms())};
  int rc;
  PGresult *res = run(p, member ? S_MEMBER_ADD : S_MEMBER_DROP, v, PGRES_COMMAND_OK, "member_set", &rc);
  if (!res) return rc;
  PQclear(res);
  return call_ok(p);
}

static int pg_forget_user(void *ctx, const char *user_id, bool prefix) {
  struct pg *p = ctx;
  if (!user_id || !user_id[0]) return STORE_EINVAL;
  char *upper = NULL; /* prefix: the first id after every id that starts with it */
  int rc = prefix ? store_prefix_end(user_id, &upper) : STORE_OK;
  if (rc) return rc;
  const char *v[2] = {user_id, upper};
  PGresult *res = run(p, prefix ? S_FORGET_RANGE : S_FORGET, v, PGRES_COMMAND_OK, "forget_user", &rc);
  free(upper);
  if (!res) return rc;
  PQclear(res);
  return call_ok(p);
}

static int pg_read_set(void *ctx, const char *user_id, const char *room, uint64_t seq, uint64_t *read) {
  struct pg *p = ctx;
  if (!user_id || !user_id[0] || !room || !room[0] || !read) return STORE_EINVAL;
  char b[24];
  const char *v[3] = {user_id, room, u64s(b, seq)};
  int rc;
  PGresult *res;
  if (seq) {
    if (!(res = run(p, S_READ_SET, v, PGRES_TUPLES_OK, "read_set", &rc))) return rc;
    bool moved = PQntuples(res) > 0;
    if (moved) *read = get_u64(res, 0, 0);
    PQclear(res);
    if (moved) return call_ok(p);
  }
  if (!(res = run(p, S_READ_GET, v, PGRES_TUPLES_OK, "read_set", &rc))) return rc; /* at or beyond seq */
  *read = PQntuples(res) ? get_u64(res, 0, 0) : 0;
  PQclear(res);
  return call_ok(p);
}

static int pg_rooms_of(void *ctx, const char *user_id, struct store_room_list *out) {
  struct pg *p = ctx;
  if (!user_id || !user_id[0] || !out) return STORE_EINVAL;
  const char *v[1] = {user_id};
  int rc;
  PGresult *res = run(p, S_ROOMS_OF, v, PGRES_TUPLES_OK, "rooms_of", &rc);
  if (!res) return rc;
  size_t first = out->n;
  int ret = STORE_OK;
  for (int r = 0; r < PQntuples(res); r++) {
    bool ok = true;
    struct store_room room = {
        .room = get_str(res, r, 0, &ok), .head = get_u64(res, r, 1), .read = get_u64(res, r, 2)};
    if (!ok || !room.room || store_room_list_push(out, &room)) {
      free(room.room);
      ret = STORE_ENOMEM;
      break;
    }
  }
  PQclear(res);
  if (ret) { /* leave out as it was */
    for (size_t i = first; i < out->n; i++) free(out->v[i].room);
    out->n = first;
    return ret;
  }
  return call_ok(p);
}

/* ---- retention ---- */

static int pg_retain(void *ctx, const char *pattern, uint64_t ts_before, uint64_t keep_count,
                     uint64_t *deleted) {
  struct pg *p = ctx;
  if (!pattern || !deleted) return STORE_EINVAL;
  *deleted = 0;
  if (!ts_before && !keep_count) return STORE_OK;
  /* The rooms ever appended to; the glob is applied here, as the other backends do. Each room is one
   * statement (its own short transaction) between the writer's batches. */
  int rc;
  PGresult *rooms = run(p, S_ROOMS, NULL, PGRES_TUPLES_OK, "retain", &rc);
  if (!rooms) return rc;
  char b1[24], b2[24];
  for (int r = 0; r < PQntuples(rooms) && !rc; r++) {
    const char *room = PQgetvalue(rooms, r, 0);
    if (!config_glob_match(pattern, room)) continue;
    const char *v[3] = {room, u64s(b1, ts_before), u64s(b2, keep_count)};
    PGresult *res = run(p, S_RETAIN, v, PGRES_COMMAND_OK, "retain", &rc);
    if (!res) break;
    *deleted += (uint64_t)strtoull(PQcmdTuples(res), NULL, 10);
    PQclear(res);
  }
  PQclear(rooms);
  return rc ? rc : call_ok(p);
}

/* ---- groups of small writes ---- */

/* A run of small writes in one transaction (a join storm: one commit instead of one per join). A write that
 * fails aborts the transaction: the writes after it fail too, and the end reports the error for the whole
 * run (they are idempotent: a client that retries loses nothing). */
static int pg_group(void *ctx, bool begin) {
  struct pg *p = ctx;
  char err[256], buf[200];
  if (begin) {
    if (p->in_group) return call_fail(p, "group", "a group is open already");
    int rc = ensure(p, err, sizeof err);
    if (rc) return call_fail(p, "group", err), rc;
    if (!exec_simple(p, "BEGIN", err, sizeof err, &rc)) return call_fail(p, "group", err), rc;
    p->in_group = true;
    return STORE_OK;
  }
  if (!p->in_group) return call_fail(p, "group", "no group is open");
  p->in_group = false;
  PGTransactionStatusType ts = PQtransactionStatus(p->conn);
  if (ts == PQTRANS_INERROR) {
    PQclear(PQexec(p->conn, "ROLLBACK"));
    return call_fail(p, "group", "a write of the group failed: rolled back");
  }
  if (ts != PQTRANS_INTRANS)
    return call_fail(p, "group", first_line(PQerrorMessage(p->conn), buf, sizeof buf));
  PGresult *res = PQexec(p->conn, "COMMIT");
  bool ok = PQresultStatus(res) == PGRES_COMMAND_OK && !strcmp(PQcmdStatus(res), "COMMIT");
  int rc = ok ? STORE_OK : map_result(res, p->conn);
  if (!ok) {
    snprintf(err, sizeof err, "COMMIT: %s",
             first_line(res ? PQresultErrorMessage(res) : PQerrorMessage(p->conn), buf, sizeof buf));
    call_fail(p, "group", err);
    if (!rc) rc = STORE_EUNAVAILABLE;
  }
  PQclear(res);
  return ok ? call_ok(p) : rc;
}

const struct store_backend store_backend_postgres = {
    .name = "postgres",
    .open = pg_open,
    .close = pg_close,
    .append = pg_append,
    .read = pg_read,
    .head = pg_head,
    .set_last_seen = pg_set_last_seen,
    .get_last_seen = pg_get_last_seen,
    .retain = pg_retain,
    .member_set = pg_member_set,
    .read_set = pg_read_set,
    .rooms_of = pg_rooms_of,
    .forget_user = pg_forget_user,
    .group = pg_group,
};
