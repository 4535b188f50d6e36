/* sqlite: the embedded storage backend (backend.h, docs/storage.md).
 *
 * One SQLite file in WAL mode; the writer and the reader thread each open their own ctx (connection) on
 * it, so history reads never wait for a write transaction. Every statement is prepared once at open.
 * A room's head lives in rooms(room, head), written in the same transaction as the messages, so head()
 * is one lookup and survives retention. Users' room lists and read markers share memberships (version
 * 2): a row is a listed room or only a marker. The schema carries its version in PRAGMA user_version and
 * is brought forward by the steps in migrations[] inside one write transaction. */
#include <errno.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <uthash.h>

#include "config.h"
#include "store/backend.h"
#include "util/log.h"

#define BUSY_TIMEOUT_MS 5000

/* migrations[v - 1] takes the schema from version v - 1 to v; append, never edit a released step. */
static const char *const migrations[] = {
    /* 1: initial schema */
    "CREATE TABLE messages ("
    "  room TEXT NOT NULL, seq INTEGER NOT NULL, mid TEXT NOT NULL, ts INTEGER NOT NULL,"
    "  user_id TEXT NOT NULL, user_name TEXT, cmid TEXT NOT NULL, body TEXT NOT NULL,"
    "  PRIMARY KEY (room, seq)) WITHOUT ROWID;"
    "CREATE UNIQUE INDEX messages_user_cmid ON messages (user_id, cmid);"
    "CREATE TABLE rooms (room TEXT PRIMARY KEY, head INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE users (user_id TEXT PRIMARY KEY, last_seen INTEGER NOT NULL) WITHOUT ROWID;",
    /* 2: users' room lists and read markers. A row is a listed room (listed = 1), or only a read marker
     * of a room the user has read but not listed (listed = 0, read > 0). */
    "CREATE TABLE memberships ("
    "  user_id TEXT NOT NULL, room TEXT NOT NULL, read INTEGER NOT NULL DEFAULT 0,"
    "  joined_at INTEGER NOT NULL DEFAULT 0, listed INTEGER NOT NULL DEFAULT 0,"
    "  PRIMARY KEY (user_id, room)) WITHOUT ROWID;",
    /* 3: the inbox: appends land here, in insertion order (a few pages per commit, whatever the number of
     * rooms), and move to messages in chunks (sq_after_batch), where the rows of one room share pages. */
    "CREATE TABLE inbox ("
    "  id INTEGER PRIMARY KEY, room TEXT NOT NULL, seq INTEGER NOT NULL, mid TEXT NOT NULL,"
    "  ts INTEGER NOT NULL, user_id TEXT NOT NULL, user_name TEXT, cmid TEXT NOT NULL, body TEXT NOT NULL);",
};
#define SCHEMA_VERSION ((int)(sizeof migrations / sizeof migrations[0]))

#define MSG_COLS "room, seq, mid, ts, user_id, user_name, cmid, body"

/* The prepared statements, by role; sql[] below is in the same order. */
enum {
  S_BEGIN,
  S_BEGIN_READ,
  S_COMMIT,
  S_ROLLBACK,
  S_FIND_DUP,
  S_ROOM_HEAD,
  S_INSERT,
  S_SET_HEAD,
  S_READ_ASC,
  S_READ_DESC,
  S_SET_SEEN,
  S_GET_SEEN,
  S_ROOMS,
  S_MAX_SEQ,
  S_NTH_NEWEST,
  S_DEL_UPTO,
  S_DEL_OLDER,
  S_MEMBER_ADD,
  S_MEMBER_DROP,
  S_MEMBER_UNLIST,
  S_READ_SET,
  S_READ_GET,
  S_ROOMS_OF,
  S_ROOMS_OF_FULL,
  S_FORGET_MEMBERS,
  S_FORGET_SEEN,
  S_FORGET_MEMBERS_RANGE,
  S_FORGET_SEEN_RANGE,
  S_INBOX_ADD,
  S_INBOX_READ_ASC,
  S_INBOX_READ_DESC,
  S_INBOX_COUNT,
  S_INBOX_FIND_DUP,
  S_DATA_VERSION,
  S_MERGE_ONE,
  S_MERGE_MSGS,
  S_MERGE_HEADS,
  S_MERGE_DEL,
  S_COUNT
};

static const char *const sql[S_COUNT] = {
    [S_BEGIN] = "BEGIN IMMEDIATE",
    [S_BEGIN_READ] = "BEGIN",
    [S_COMMIT] = "COMMIT",
    [S_ROLLBACK] = "ROLLBACK",
    [S_FIND_DUP] = "SELECT room, seq, mid, ts FROM messages WHERE user_id = ?1 AND cmid = ?2",
    /* rooms.head is as of the last merge; newer rows of the room are in the (small) inbox */
    [S_ROOM_HEAD] = "SELECT max(coalesce((SELECT head FROM rooms WHERE room = ?1), 0), "
                    "coalesce((SELECT max(seq) FROM inbox WHERE room = ?1), 0))",
    [S_INSERT] = "INSERT INTO messages (" MSG_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    [S_SET_HEAD] = "INSERT INTO rooms (room, head) VALUES (?1, ?2) "
                   "ON CONFLICT (room) DO UPDATE SET head = excluded.head",
    [S_READ_ASC] = "SELECT " MSG_COLS " FROM messages WHERE room = ?1 AND seq > ?2 AND seq < ?3 "
                   "ORDER BY seq ASC LIMIT ?4",
    [S_READ_DESC] = "SELECT " MSG_COLS " FROM messages WHERE room = ?1 AND seq > ?2 AND seq < ?3 "
                    "ORDER BY seq DESC LIMIT ?4",
    [S_SET_SEEN] = "INSERT INTO users (user_id, last_seen) VALUES (?1, ?2) "
                   "ON CONFLICT (user_id) DO UPDATE SET last_seen = excluded.last_seen",
    [S_GET_SEEN] = "SELECT last_seen FROM users WHERE user_id = ?1",
    [S_ROOMS] = "SELECT room FROM rooms ORDER BY room",
    [S_MAX_SEQ] = "SELECT max(seq) FROM messages WHERE room = ?1",
    [S_NTH_NEWEST] = "SELECT seq FROM messages WHERE room = ?1 ORDER BY seq DESC LIMIT 1 OFFSET ?2",
    [S_DEL_UPTO] = "DELETE FROM messages WHERE room = ?1 AND seq <= ?2 AND seq < ?3",
    [S_DEL_OLDER] = "DELETE FROM messages WHERE room = ?1 AND ts < ?2 AND seq < ?3",
    /* listing an unlisted room stamps joined_at; a listed one is left as it is */
    [S_MEMBER_ADD] =
        "INSERT INTO memberships (user_id, room, read, joined_at, listed) VALUES (?1, ?2, 0, ?3, 1) "
        "ON CONFLICT (user_id, room) DO UPDATE SET listed = 1, joined_at = excluded.joined_at "
        "WHERE NOT listed",
    [S_MEMBER_DROP] = "DELETE FROM memberships WHERE user_id = ?1 AND room = ?2 AND read = 0",
    [S_MEMBER_UNLIST] = "UPDATE memberships SET listed = 0 WHERE user_id = ?1 AND room = ?2 AND listed",
    /* a row only when the marker moved forward */
    [S_READ_SET] =
        "INSERT INTO memberships (user_id, room, read) VALUES (?1, ?2, ?3) "
        "ON CONFLICT (user_id, room) DO UPDATE SET read = excluded.read WHERE excluded.read > read "
        "RETURNING read",
    [S_READ_GET] = "SELECT read FROM memberships WHERE user_id = ?1 AND room = ?2",
    [S_ROOMS_OF] =
        "SELECT m.room, coalesce(r.head, 0), m.read FROM memberships AS m "
        "LEFT JOIN rooms AS r ON r.room = m.room WHERE m.user_id = ?1 AND m.listed ORDER BY m.room",
    /* the same with the inbox looked at, for a connection that does not know the heads (not the writer) */
    [S_ROOMS_OF_FULL] =
        "SELECT m.room, max(coalesce(r.head, 0), coalesce((SELECT max(seq) FROM inbox AS i WHERE i.room = "
        "m.room), "
        "0)), m.read FROM memberships AS m "
        "LEFT JOIN rooms AS r ON r.room = m.room WHERE m.user_id = ?1 AND m.listed ORDER BY m.room",
    [S_FORGET_MEMBERS] = "DELETE FROM memberships WHERE user_id = ?1",
    [S_FORGET_SEEN] = "DELETE FROM users WHERE user_id = ?1",
    /* a prefix as a range of the primary key: prefix <= user_id < prefix with its last byte + 1 */
    [S_FORGET_MEMBERS_RANGE] = "DELETE FROM memberships WHERE user_id >= ?1 AND user_id < ?2",
    [S_FORGET_SEEN_RANGE] = "DELETE FROM users WHERE user_id >= ?1 AND user_id < ?2",
    [S_INBOX_ADD] = "INSERT INTO inbox (" MSG_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    [S_INBOX_READ_ASC] = "SELECT " MSG_COLS " FROM inbox WHERE room = ?1 AND seq > ?2 AND seq < ?3 "
                         "ORDER BY seq ASC LIMIT ?4",
    [S_INBOX_READ_DESC] = "SELECT " MSG_COLS " FROM inbox WHERE room = ?1 AND seq > ?2 AND seq < ?3 "
                          "ORDER BY seq DESC LIMIT ?4",
    [S_INBOX_COUNT] = "SELECT count(*) FROM inbox",
    /* only when another connection writes the file too (no index: a scan) */
    [S_INBOX_FIND_DUP] = "SELECT room, seq, mid, ts FROM inbox WHERE user_id = ?1 AND cmid = ?2 LIMIT 1",
    [S_DATA_VERSION] = "PRAGMA data_version",
    /* A merge copies inbox rows to messages, one by id (the writer's slices) or all up to an id (a scan),
     * then deletes them from the inbox; until then they exist in both tables (reads skip the overlap, and
     * a copy repeated after a crash is ignored). */
    [S_MERGE_ONE] =
        "INSERT OR IGNORE INTO messages (" MSG_COLS ") SELECT " MSG_COLS " FROM inbox WHERE id = ?1",
    [S_MERGE_MSGS] = "INSERT OR IGNORE INTO messages (" MSG_COLS ") SELECT " MSG_COLS " FROM inbox "
                     "WHERE id <= ?1 ORDER BY room, seq",
    [S_MERGE_HEADS] = "INSERT INTO rooms (room, head) SELECT room, max(seq) FROM inbox WHERE id <= ?1 "
                      "GROUP BY room ON CONFLICT (room) DO UPDATE SET head = max(head, excluded.head)",
    [S_MERGE_DEL] = "DELETE FROM inbox WHERE id <= ?1",
};

/* A room's highest stored seq (inbox included), on the connection that appends. */
struct head_entry {
  uint64_t head;      /* with the current batch's items */
  uint64_t committed; /* as of the last commit: head goes back to it when a batch fails */
  uint64_t batch;     /* the last batch that moved head (sq_append) */
  bool stale;         /* another writer may have moved it: read it again */
  UT_hash_handle hh;
  char room[]; /* the key */
};

#define HEAD_CACHE_MAX 100000 /* entries; past it the cache starts over, after a full merge */

/* A message in the inbox, known to the connection that appended it: the dedupe of retried sends looks
 * here before it probes the messages index. Kept in id order (the order merges take them in). */
struct inbox_entry {
  int64_t id; /* inbox rowid */
  uint64_t seq, ts;
  char *room, *mid; /* owned */
  struct inbox_entry *next;
  UT_hash_handle hh;
  size_t keylen;
  char key[]; /* user_id, NUL, cmid */
};

/* The inbox moves to messages when it holds store.sqlite.inbox_rows rows (merge_at), the oldest half of them
 * at a time: the more rows of one room a merge moves together, the fewer pages it writes per row
 * (store_bench, 100 rooms: 1,024-row merges write 0.65 WAL frames per row, 4,096-row ones 0.23). The writer
 * knows the rows (its list): sorted by room and seq, they are copied by id in slices of about a 32nd of a
 * merge (whole rooms; store.sqlite.merge_slice rows when set), each a transaction of its own between append
 * batches, so appends never wait for more than one slice (~2 ms at the default). */

struct sq {
  sqlite3 *db;
  char *path;
  sqlite3_stmt *st[S_COUNT];
  bool failing; /* the last call without an err argument failed (logged once per streak) */
  /* Writer only: heads of the rooms this connection appended to (owned). Only appends move a head and
   * only the writer appends, so the cache stays true; it is dropped whenever a transaction fails. */
  struct head_entry *heads;
  unsigned nheads;
  uint64_t batch;
  bool appender; /* this connection appends (the store writer) */
  /* Another connection (another process: two parleyd on one file, or a tool) has committed since this
   * one's last commit: data_version tells, checked at the start of each batch. The heads then come from
   * the file again, and from then on dedupe also scans the inbox, whose foreign rows the hash lacks. */
  int64_t data_version;
  bool shared;
  struct inbox_entry *ibx, *ibx_head, *ibx_tail; /* owned: hash by key, and the id-ordered list */
  size_t ibx_len;
  size_t merge_at, merge_chunk;
  int64_t merge_slice;
  bool merging; /* a merge of the inbox rows with id <= merge_upto is under way */
  int64_t merge_upto;
  struct inbox_entry **mv; /* owned array (the entries are the list's): its rows, by room and seq */
  size_t nmv, imv;         /* imv: the first row of the next slice */
  char lasterr[160];       /* why the last merge step failed */
  int wal_pages;           /* frames in the WAL after this connection's last commit (sqlite3_wal_hook) */
};

static void inbox_entry_free(struct inbox_entry *e) {
  free(e->room);
  free(e->mid);
  free(e);
}

/* Forget the entries merged up to id (all of them: INT64_MAX). */
static void inbox_forget(struct sq *q, int64_t upto) {
  while (q->ibx_head && q->ibx_head->id <= upto) {
    struct inbox_entry *e = q->ibx_head;
    q->ibx_head = e->next;
    HASH_DEL(q->ibx, e);
    inbox_entry_free(e);
    q->ibx_len--;
  }
  if (!q->ibx_head) q->ibx_tail = NULL;
}

static void heads_clear(struct sq *q) {
  struct head_entry *e, *tmp;
  HASH_ITER(hh, q->heads, e, tmp) {
    HASH_DEL(q->heads, e);
    free(e);
  }
  q->nheads = 0;
}

/* Replaces SQLite's automatic checkpoint on this connection: the store runs checkpoints on their own
 * thread (sq_checkpoint), so a commit never waits for a checkpoint's fsync. */
static int on_wal_commit(void *ctx, sqlite3 *db, const char *name, int pages) {
  (void)db;
  (void)name;
  ((struct sq *)ctx)->wal_pages = pages;
  return SQLITE_OK;
}

/* An SQLite result code as a store error: out of memory and a damaged file are told apart; everything
 * else (locked, busy, I/O error, disk full, read-only) is "cannot write now, retry later". */
static int map_rc(int rc) {
  switch (rc & 0xff) {
  case SQLITE_NOMEM:
    return STORE_ENOMEM;
  case SQLITE_CORRUPT:
  case SQLITE_NOTADB:
    return STORE_ECORRUPT;
  default:
    return STORE_EUNAVAILABLE;
  }
}

static void done(sqlite3_stmt *s) {
  sqlite3_reset(s);
  sqlite3_clear_bindings(s);
}

/* Log a failed call without an err argument (all but open/append) once per streak of failures. */
static int call_fail(struct sq *q, const char *what, int rc) {
  if (!q->failing) log_warn("store(sqlite): %s failed: %s", what, sqlite3_errmsg(q->db));
  q->failing = true;
  return map_rc(rc);
}

static int call_ok(struct sq *q) {
  if (q->failing) log_info("store(sqlite): reads succeed again");
  q->failing = false;
  return STORE_OK;
}

static int64_t clamp64(uint64_t v) { return v > INT64_MAX ? INT64_MAX : (int64_t)v; }

static int bind_text(sqlite3_stmt *s, int i, const char *v) {
  return v ? sqlite3_bind_text(s, i, v, -1, SQLITE_STATIC) : sqlite3_bind_null(s, i);
}

/* A column as a malloc'd string (NULL stays NULL); *ok cleared on allocation failure. */
static char *col_str(sqlite3_stmt *s, int i, bool *ok) {
  const unsigned char *t = sqlite3_column_text(s, i);
  if (!t) return NULL;
  char *d = strdup((const char *)t);
  if (!d) *ok = false;
  return d;
}

/* mkdir -p */
static int mkdirs(const char *dir) {
  char *p = strdup(dir);
  if (!p) return -ENOMEM;
  int rc = 0;
  for (char *c = p + 1;; c++) {
    if (*c != '/' && *c) continue;
    char save = *c;
    *c = '\0';
    if (mkdir(p, 0755) && errno != EEXIST) {
      rc = -errno;
      break;
    }
    *c = save;
    if (!save) break;
  }
  if (!rc) { /* the last component must be a directory (EEXIST also covers a file of that name) */
    struct stat st;
    if (stat(p, &st))
      rc = -errno;
    else if (!S_ISDIR(st.st_mode))
      rc = -ENOTDIR;
  }
  free(p);
  return rc;
}

/* The database path: store.sqlite.path under server.data_dir (resolved against base_dir), or the
 * store path itself when absolute. The directory that holds the file is created when missing. */
static char *db_path(const struct config *cfg, char *err, size_t errlen) {
  const char *rel =
      cfg->store_sqlite_path && cfg->store_sqlite_path[0] ? cfg->store_sqlite_path : "parley.db";
  char *path;
  if (rel[0] == '/') {
    path = strdup(rel);
  } else {
    char *dir = config_path(cfg, cfg->server_data_dir ? cfg->server_data_dir : "");
    if (!dir) goto oom;
    size_t n = strlen(dir) + 1 + strlen(rel) + 1;
    path = malloc(n);
    if (path) snprintf(path, n, "%s%s%s", dir, dir[0] && dir[strlen(dir) - 1] != '/' ? "/" : "", rel);
    free(dir);
  }
  if (!path) goto oom;
  char *slash = strrchr(path, '/');
  if (slash && slash != path) {
    *slash = '\0';
    int rc = mkdirs(path);
    if (rc) {
      store_seterr(err, errlen, "cannot create the SQLite directory %s: %s", path, strerror(-rc));
      free(path);
      return NULL;
    }
    *slash = '/';
  }
  return path;
oom:
  store_seterr(err, errlen, "out of memory");
  return NULL;
}

static int user_version(sqlite3 *db, int *v) {
  sqlite3_stmt *s;
  int rc = sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &s, NULL);
  if (rc) return rc;
  rc = sqlite3_step(s);
  if (rc == SQLITE_ROW) {
    *v = sqlite3_column_int(s, 0);
    rc = SQLITE_OK;
  }
  sqlite3_finalize(s);
  return rc;
}

/* Bring the schema to SCHEMA_VERSION, all steps in one write transaction. */
static int migrate(struct sq *q, char *err, size_t errlen) {
  int v = 0, rc = user_version(q->db, &v);
  if (rc) goto fail;
  if (v == SCHEMA_VERSION) return STORE_OK;
  if ((rc = sqlite3_exec(q->db, "BEGIN IMMEDIATE", NULL, NULL, NULL))) goto fail;
  if ((rc = user_version(q->db, &v))) goto rollback; /* another connection may have migrated meanwhile */
  if (v > SCHEMA_VERSION || v < 0) {
    sqlite3_exec(q->db, "ROLLBACK", NULL, NULL, NULL);
    store_seterr(err, errlen,
                 "%s: schema version %d is not one this parleyd knows (latest %d); use a newer parleyd",
                 q->path, v, SCHEMA_VERSION);
    return STORE_ECORRUPT;
  }
  for (; v < SCHEMA_VERSION; v++) {
    if ((rc = sqlite3_exec(q->db, migrations[v], NULL, NULL, NULL))) goto rollback;
    char pragma[48];
    snprintf(pragma, sizeof pragma, "PRAGMA user_version = %d", v + 1);
    if ((rc = sqlite3_exec(q->db, pragma, NULL, NULL, NULL))) goto rollback;
  }
  if ((rc = sqlite3_exec(q->db, "COMMIT", NULL, NULL, NULL))) goto rollback;
  return STORE_OK;
rollback:
  store_seterr(err, errlen, "%s: schema migration to version %d failed: %s", q->path, v + 1,
               sqlite3_errmsg(q->db));
  sqlite3_exec(q->db, "ROLLBACK", NULL, NULL, NULL);
  return rc == SQLITE_ERROR ? STORE_ECORRUPT : map_rc(rc);
fail:
  store_seterr(err, errlen, "%s: %s", q->path, sqlite3_errmsg(q->db));
  return map_rc(rc);
}

/* A merge step failed: keep the reason (ROLLBACK replaces SQLite's message), then roll back. */
static int rollback(struct sq *q, int rc) {
  snprintf(q->lasterr, sizeof q->lasterr, "%s", sqlite3_errmsg(q->db));
  if (sqlite3_get_autocommit(q->db) == 0) {
    sqlite3_step(q->st[S_ROLLBACK]);
    done(q->st[S_ROLLBACK]);
  }
  return rc;
}

/* The inbox rows with id <= upto go to messages and the heads they reach to rooms, in one transaction,
 * found by scanning the inbox: for the whole inbox at once (open, close, retention), and when another
 * writer's rows may be among them. */
static int merge_scan(struct sq *q, int64_t upto) {
  int rc = sqlite3_step(q->st[S_BEGIN]);
  done(q->st[S_BEGIN]);
  if (rc != SQLITE_DONE) return rc;
  for (int step = 0; step < 2; step++) {
    sqlite3_stmt *s = q->st[step ? S_MERGE_HEADS : S_MERGE_MSGS];
    sqlite3_bind_int64(s, 1, upto);
    rc = sqlite3_step(s);
    done(s);
    if (rc != SQLITE_DONE) return rollback(q, rc);
  }
  rc = sqlite3_step(q->st[S_COMMIT]);
  done(q->st[S_COMMIT]);
  return rc == SQLITE_DONE ? SQLITE_OK : rollback(q, rc);
}

/* The end of a merge: the rows it moved leave the inbox. */
static int merge_finish(struct sq *q, int64_t upto) {
  sqlite3_stmt *s = q->st[S_MERGE_DEL];
  sqlite3_bind_int64(s, 1, upto);
  int rc = sqlite3_step(s); /* a transaction of its own */
  done(s);
  if (rc != SQLITE_DONE) return rollback(q, rc);
  inbox_forget(q, upto);
  return SQLITE_OK;
}

static void merge_rows_free(struct sq *q) {
  free(q->mv);
  q->mv = NULL;
  q->nmv = q->imv = 0;
}

/* Everything in the inbox, now, in one transaction (open, close, retention); a merge under way is
 * overtaken. */
static int merge_all(struct sq *q) {
  q->merging = false;
  merge_rows_free(q);
  int rc = merge_scan(q, INT64_MAX);
  return rc ? rc : merge_finish(q, INT64_MAX);
}

static int data_version(struct sq *q, int64_t *v) {
  sqlite3_stmt *s = q->st[S_DATA_VERSION];
  int rc = sqlite3_step(s);
  if (rc == SQLITE_ROW) *v = sqlite3_column_int64(s, 0);
  done(s);
  return rc == SQLITE_ROW ? SQLITE_OK : rc;
}

static void sq_close(void *ctx) {
  struct sq *q = ctx;
  if (!q) return;
  if (q->appender && q->ibx_head && q->st[S_COMMIT]) merge_all(q); /* leave a file that opens fast */
  merge_rows_free(q);
  inbox_forget(q, INT64_MAX);
  heads_clear(q);
  for (int i = 0; i < S_COUNT; i++) sqlite3_finalize(q->st[i]);
  sqlite3_close(q->db);
  free(q->path);
  free(q);
}

static int sq_open(const struct config *cfg, void **ctx, char *err, size_t errlen) {
  *ctx = NULL;
  struct sq *q = calloc(1, sizeof *q);
  if (!q) {
    store_seterr(err, errlen, "out of memory");
    return STORE_ENOMEM;
  }
  int ret = STORE_EUNAVAILABLE, rc;
  if (!(q->path = db_path(cfg, err, errlen))) goto fail;
  rc = sqlite3_open_v2(q->path, &q->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                       NULL);
  if (rc) {
    store_seterr(err, errlen, "cannot open SQLite database %s: %s", q->path,
                 q->db ? sqlite3_errmsg(q->db) : sqlite3_errstr(rc));
    ret = map_rc(rc);
    goto fail;
  }
  sqlite3_extended_result_codes(q->db, 1);
  sqlite3_busy_timeout(q->db, BUSY_TIMEOUT_MS);

  /* WAL: the reader reads while the writer writes. synchronous: NORMAL survives a crash of the process,
   * FULL also a power loss (the WAL is synced at every commit). */
  char mode[16] = "";
  sqlite3_stmt *s = NULL;
  rc = sqlite3_prepare_v2(q->db, "PRAGMA journal_mode = WAL", -1, &s, NULL);
  if (!rc && (rc = sqlite3_step(s)) == SQLITE_ROW) {
    snprintf(mode, sizeof mode, "%s", (const char *)sqlite3_column_text(s, 0));
    rc = SQLITE_OK;
  }
  sqlite3_finalize(s);
  if (rc) {
    store_seterr(err, errlen, "cannot open SQLite database %s: %s", q->path, sqlite3_errmsg(q->db));
    ret = map_rc(rc);
    goto fail;
  }
  if (strcmp(mode, "wal")) {
    store_seterr(err, errlen, "%s: cannot switch to WAL mode (journal_mode is %s)", q->path, mode);
    goto fail;
  }
  const char *sync =
      cfg->store_sqlite_synchronous ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL";
  if ((rc = sqlite3_exec(q->db, sync, NULL, NULL, NULL))) {
    store_seterr(err, errlen, "%s: %s", q->path, sqlite3_errmsg(q->db));
    ret = map_rc(rc);
    goto fail;
  }
  char cache[48]; /* negative: KiB */
  snprintf(cache, sizeof cache, "PRAGMA cache_size = -%lld",
           (long long)(cfg->store_sqlite_cache_size / 1024));
  if ((rc = sqlite3_exec(q->db, cache, NULL, NULL, NULL))) {
    store_seterr(err, errlen, "%s: %s", q->path, sqlite3_errmsg(q->db));
    ret = map_rc(rc);
    goto fail;
  }
  sqlite3_wal_hook(q->db, on_wal_commit, q);
  q->merge_at = (size_t)cfg->store_sqlite_inbox_rows;
  q->merge_chunk = q->merge_at / 2 ? q->merge_at / 2 : 1;
  q->merge_slice = cfg->store_sqlite_merge_slice ? cfg->store_sqlite_merge_slice
                                                 : (int64_t)(q->merge_chunk / 32 ? q->merge_chunk / 32 : 1);
  if ((ret = migrate(q, err, errlen))) goto fail;
  for (int i = 0; i < S_COUNT; i++) {
    if ((rc = sqlite3_prepare_v3(q->db, sql[i], -1, SQLITE_PREPARE_PERSISTENT, &q->st[i], NULL))) {
      store_seterr(err, errlen, "%s: preparing \"%s\": %s", q->path, sql[i], sqlite3_errmsg(q->db));
      ret = rc == SQLITE_ERROR ? STORE_ECORRUPT : map_rc(rc);
      goto fail;
    }
  }
  /* Rows a stopped or crashed parleyd left in the inbox move now; they were acknowledged and stay readable
   * either way, this only keeps the inbox small. */
  if ((rc = data_version(q, &q->data_version))) {
    store_seterr(err, errlen, "%s: %s", q->path, sqlite3_errmsg(q->db));
    ret = map_rc(rc);
    goto fail;
  }
  sqlite3_stmt *cnt = q->st[S_INBOX_COUNT];
  rc = sqlite3_step(cnt);
  bool leftovers = rc == SQLITE_ROW && sqlite3_column_int64(cnt, 0) > 0;
  rc = rc == SQLITE_ROW ? SQLITE_OK : rc;
  done(cnt);
  if (!rc && leftovers) rc = merge_all(q);
  if (rc) {
    store_seterr(err, errlen, "%s: moving the inbox into messages: %s", q->path,
                 q->lasterr[0] ? q->lasterr : sqlite3_errmsg(q->db));
    ret = map_rc(rc);
    goto fail;
  }
  *ctx = q;
  return STORE_OK;
fail:
  sq_close(q);
  return ret;
}

/* ---- append ---- */

/* What an item becomes if the transaction commits; applied to the items only after COMMIT, so that a
 * failed batch leaves them as given. */
struct outcome {
  bool dup;
  uint64_t seq, ts;
  char *room, *mid; /* dup: the original's (owned here until applied) */
};

/* A room's head: from the cache, else from the database (rooms and inbox), then cached. */
static int cached_head(struct sq *q, const char *room, struct head_entry **out) {
  struct head_entry *e;
  HASH_FIND_STR(q->heads, room, e);
  if (e && !e->stale) {
    *out = e;
    return SQLITE_OK;
  }
  sqlite3_stmt *s = q->st[S_ROOM_HEAD];
  bind_text(s, 1, room);
  int rc = sqlite3_step(s);
  uint64_t head = rc == SQLITE_ROW ? (uint64_t)sqlite3_column_int64(s, 0) : 0;
  done(s);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) return rc;
  if (e) { /* stale: refreshed (this batch has not moved it yet, or it would not be stale) */
    e->head = e->committed = head;
    e->stale = false;
    *out = e;
    return SQLITE_OK;
  }
  size_t len = strlen(room);
  if (!(e = malloc(sizeof *e + len + 1))) return SQLITE_NOMEM;
  memcpy(e->room, room, len + 1);
  e->head = e->committed = head;
  e->batch = 0;
  e->stale = false;
  HASH_ADD(hh, q->heads, room, len, e);
  q->nheads++;
  *out = e;
  return SQLITE_OK;
}

static bool valid_item(const struct store_msg *m) {
  return m->room && m->room[0] && m->mid && m->user_id && m->cmid && m->cmid[0] && m->body;
}

/* The inbox entry of (user_id, cmid), or NULL. */
static struct inbox_entry *inbox_find(struct sq *q, const char *user_id, const char *cmid) {
  size_t ul = strlen(user_id), cl = strlen(cmid);
  char stack[256], *key = ul + cl + 1 <= sizeof stack ? stack : malloc(ul + cl + 1);
  if (!key) return NULL;
  memcpy(key, user_id, ul + 1);
  memcpy(key + ul + 1, cmid, cl);
  struct inbox_entry *e;
  HASH_FIND(hh, q->ibx, key, ul + cl + 1, e);
  if (key != stack) free(key);
  return e;
}

static struct inbox_entry *inbox_entry_new(const struct store_msg *m, int64_t id, uint64_t seq) {
  size_t ul = strlen(m->user_id), cl = strlen(m->cmid);
  struct inbox_entry *e = calloc(1, sizeof *e + ul + cl + 1);
  if (!e) return NULL;
  e->id = id;
  e->seq = seq;
  e->ts = m->ts;
  e->keylen = ul + cl + 1;
  memcpy(e->key, m->user_id, ul + 1);
  memcpy(e->key + ul + 1, m->cmid, cl);
  if (!(e->room = strdup(m->room)) || !(e->mid = strdup(m->mid))) {
    inbox_entry_free(e);
    return NULL;
  }
  return e;
}

/* Inside the batch's write transaction: forget what another writer may have changed since our last one. */
static int check_foreign(struct sq *q) {
  int64_t v = 0;
  int rc = data_version(q, &v);
  if (rc) return rc;
  if (v != q->data_version) {
    if (!q->shared)
      log_warn("store(sqlite): another connection writes %s too; parleyd expects to be its only writer "
               "(sequencing stays exact, but slower)",
               q->path);
    q->shared = true;
    q->data_version = v;
    for (struct head_entry *h = q->heads; h; h = h->hh.next) h->stale = true;
  }
  return SQLITE_OK;
}

/* One batch, one transaction: every new item goes to the inbox with the next seq of its room. A retried
 * send (same user_id and cmid) stored before — in the inbox, in messages, or earlier in this batch —
 * is reported as the original instead. The head cache and the inbox entries move with the items and are
 * put back if the transaction fails. */
static int sq_append(void *ctx, struct store_append *items, size_t n, char *err, size_t errlen) {
  struct sq *q = ctx;
  if (!n) return STORE_OK;
  for (size_t i = 0; i < n; i++) {
    if (!valid_item(&items[i].msg)) {
      store_seterr(err, errlen, "append: item %zu lacks room, mid, user_id, cmid or body", i);
      return STORE_EINVAL;
    }
  }
  q->appender = true;
  struct outcome *out = calloc(n, sizeof *out);
  struct head_entry **touched = calloc(n, sizeof *touched); /* rooms whose head moved, each once */
  struct inbox_entry **added = calloc(n, sizeof *added);    /* in the hash; listed after COMMIT */
  size_t ntouched = 0, nadded = 0;
  uint64_t batch = ++q->batch;
  int rc = SQLITE_OK, ret = STORE_OK;
  if (!out || !touched || !added) {
    ret = STORE_ENOMEM;
    store_seterr(err, errlen, "out of memory");
    goto out;
  }
  rc = sqlite3_step(q->st[S_BEGIN]);
  done(q->st[S_BEGIN]);
  if (rc != SQLITE_DONE) goto fail_notx;
  if ((rc = check_foreign(q))) goto fail;

  for (size_t i = 0; i < n; i++) {
    const struct store_msg *m = &items[i].msg;
    struct inbox_entry *e = inbox_find(q, m->user_id, m->cmid);
    if (e) {
      out[i].dup = true;
      out[i].seq = e->seq;
      out[i].ts = e->ts;
      if (!(out[i].room = strdup(e->room)) || !(out[i].mid = strdup(e->mid))) {
        rc = SQLITE_NOMEM;
        goto fail;
      }
      continue;
    }
    sqlite3_stmt *s = q->st[S_FIND_DUP]; /* merged earlier: the unique index of messages */
    bind_text(s, 1, m->user_id);
    bind_text(s, 2, m->cmid);
    rc = sqlite3_step(s);
    if (rc == SQLITE_DONE && q->shared) { /* another writer's inbox rows */
      done(s);
      s = q->st[S_INBOX_FIND_DUP];
      bind_text(s, 1, m->user_id);
      bind_text(s, 2, m->cmid);
      rc = sqlite3_step(s);
    }
    if (rc == SQLITE_ROW) {
      bool ok = true;
      out[i].dup = true;
      out[i].room = col_str(s, 0, &ok);
      out[i].seq = (uint64_t)sqlite3_column_int64(s, 1);
      out[i].mid = col_str(s, 2, &ok);
      out[i].ts = (uint64_t)sqlite3_column_int64(s, 3);
      done(s);
      if (!ok) {
        rc = SQLITE_NOMEM;
        goto fail;
      }
      continue;
    }
    done(s);
    if (rc != SQLITE_DONE) goto fail;

    struct head_entry *h = NULL;
    if ((rc = cached_head(q, m->room, &h))) goto fail;
    out[i].seq = h->head + 1;
    s = q->st[S_INBOX_ADD];
    bind_text(s, 1, m->room);
    sqlite3_bind_int64(s, 2, (int64_t)out[i].seq);
    bind_text(s, 3, m->mid);
    sqlite3_bind_int64(s, 4, clamp64(m->ts));
    bind_text(s, 5, m->user_id);
    bind_text(s, 6, m->user_name);
    bind_text(s, 7, m->cmid);
    bind_text(s, 8, m->body);
    rc = sqlite3_step(s);
    done(s);
    if (rc != SQLITE_DONE) goto fail;
    if (!(e = inbox_entry_new(m, sqlite3_last_insert_rowid(q->db), out[i].seq))) {
      rc = SQLITE_NOMEM;
      goto fail;
    }
    HASH_ADD(hh, q->ibx, key, e->keylen, e);
    added[nadded++] = e;
    if (h->batch != batch) {
      h->batch = batch;
      touched[ntouched++] = h;
    }
    h->head = out[i].seq;
  }
  rc = sqlite3_step(q->st[S_COMMIT]);
  done(q->st[S_COMMIT]);
  if (rc != SQLITE_DONE) goto fail;

  for (size_t t = 0; t < ntouched; t++) touched[t]->committed = touched[t]->head;
  for (size_t a = 0; a < nadded; a++) { /* ids grow: the list stays in id order */
    if (q->ibx_tail)
      q->ibx_tail->next = added[a];
    else
      q->ibx_head = added[a];
    q->ibx_tail = added[a];
    q->ibx_len++;
  }
  for (size_t i = 0; i < n; i++)
    store_append_settle(&items[i], out[i].dup, out[i].seq, &out[i].room, &out[i].mid, out[i].ts);
  goto out;

fail:
  store_seterr(err, errlen, "SQLite %s: %s", q->path, sqlite3_errmsg(q->db));
  ret = map_rc(rc);
  if (sqlite3_get_autocommit(q->db) == 0) { /* still in the transaction (SQLite may have rolled back) */
    sqlite3_step(q->st[S_ROLLBACK]);
    done(q->st[S_ROLLBACK]);
  }
  for (size_t t = 0; t < ntouched; t++) touched[t]->head = touched[t]->committed;
  for (size_t a = 0; a < nadded; a++) {
    HASH_DEL(q->ibx, added[a]);
    inbox_entry_free(added[a]);
  }
  goto out;
fail_notx:
  store_seterr(err, errlen, "SQLite %s: %s", q->path, sqlite3_errmsg(q->db));
  ret = map_rc(rc);
out:
  if (out)
    for (size_t i = 0; i < n; i++) {
      free(out[i].room);
      free(out[i].mid);
    }
  free(out);
  free(touched);
  free(added);
  return ret;
}

static int by_room_seq(const void *a, const void *b) {
  const struct inbox_entry *x = *(struct inbox_entry *const *)a, *y = *(struct inbox_entry *const *)b;
  int c = strcmp(x->room, y->room);
  return c ? c : x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Start a merge of the oldest n inbox rows: the writer knows them (its list), sorted by room and seq they
 * are copied by id, no scan. If another writer has added rows since this one last looked, the list may
 * miss some of them: the chunk is then merged by a scan of the inbox instead, in one go. */
static int merge_start(struct sq *q, size_t n) {
  int rc = check_foreign(q);
  if (rc) return rc;
  struct inbox_entry *e = q->ibx_head;
  for (size_t i = 1; i < n && e->next; i++) e = e->next;
  int64_t upto = e->id;
  if (q->shared) {
    rc = merge_scan(q, upto);
    return rc ? rc : merge_finish(q, upto);
  }
  if (!(q->mv = malloc(n * sizeof *q->mv))) return SQLITE_NOMEM;
  q->nmv = 0;
  for (e = q->ibx_head; e && e->id <= upto; e = e->next) q->mv[q->nmv++] = e;
  qsort(q->mv, q->nmv, sizeof *q->mv, by_room_seq);
  q->imv = 0;
  q->merge_upto = upto;
  q->merging = true;
  return SQLITE_OK;
}

/* The next slice of the merge under way, in one transaction: about merge_slice rows, whole rooms, copied
 * by id, and the heads they reach. The last slice then deletes the merged rows from the inbox. */
static int merge_step(struct sq *q) {
  size_t i = q->imv, j = i;
  while (j < q->nmv && ((int64_t)(j - i) < q->merge_slice || !strcmp(q->mv[j]->room, q->mv[j - 1]->room)))
    j++;
  int rc = sqlite3_step(q->st[S_BEGIN]);
  done(q->st[S_BEGIN]);
  if (rc != SQLITE_DONE) return rollback(q, rc);
  for (size_t k = i; k < j; k++) {
    sqlite3_stmt *s = q->st[S_MERGE_ONE];
    sqlite3_bind_int64(s, 1, q->mv[k]->id);
    rc = sqlite3_step(s);
    done(s);
    if (rc != SQLITE_DONE) return rollback(q, rc);
    if (k + 1 < j && !strcmp(q->mv[k + 1]->room, q->mv[k]->room)) continue;
    s = q->st[S_SET_HEAD]; /* the last row of its room in this merge: its head */
    bind_text(s, 1, q->mv[k]->room);
    sqlite3_bind_int64(s, 2, (int64_t)q->mv[k]->seq);
    rc = sqlite3_step(s);
    done(s);
    if (rc != SQLITE_DONE) return rollback(q, rc);
  }
  rc = sqlite3_step(q->st[S_COMMIT]);
  done(q->st[S_COMMIT]);
  if (rc != SQLITE_DONE) return rollback(q, rc);
  q->imv = j;
  if (j < q->nmv) return SQLITE_OK;
  q->merging = false;
  merge_rows_free(q);
  return merge_finish(q, q->merge_upto);
}

/* Between batches (the acks of the last one are out): start a merge once the inbox holds MERGE_AT rows,
 * and run one slice of it; returns 1 while a merge is under way (the writer calls again when idle). The
 * head cache starts over after a full merge, so that no room it forgets has rows left in the inbox. */
static int sq_after_batch(void *ctx) {
  struct sq *q = ctx;
  if (q->nheads >= HEAD_CACHE_MAX) {
    if (merge_all(q)) return call_fail(q, "merge", SQLITE_ERROR);
    heads_clear(q);
    return 0;
  }
  int rc = 0;
  if (!q->merging) {
    if (q->ibx_len < q->merge_at) return 0;
    rc = merge_start(q, q->merge_chunk);
  }
  /* Slices keep up with appends as a rule; if batches outrun them, the merge finishes now (the inbox stays
   * under twice its size, plus a batch). */
  while (!rc && q->merging) {
    rc = merge_step(q);
    if (q->ibx_len <= 2 * q->merge_at) break;
  }
  if (rc) { /* logged once per streak; the slice is tried again after the next batch */
    if (!q->failing) log_warn("store(sqlite): moving the inbox into messages failed: %s", q->lasterr);
    q->failing = true;
    return STORE_EUNAVAILABLE;
  }
  return q->merging ? 1 : 0;
}

/* ---- reads ---- */

/* Append the rows of one range query (room, after, before, limit bound) to out; SQLite result code. */
static int read_rows(struct sq *q, int which, const char *room, uint64_t after, uint64_t before, size_t limit,
                     struct store_msg_list *out) {
  sqlite3_stmt *s = q->st[which];
  bind_text(s, 1, room);
  sqlite3_bind_int64(s, 2, clamp64(after));
  sqlite3_bind_int64(s, 3, before ? clamp64(before) : INT64_MAX);
  sqlite3_bind_int64(s, 4, limit > INT64_MAX ? INT64_MAX : (int64_t)limit);
  int rc;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    bool ok = true;
    struct store_msg m = {
        .room = col_str(s, 0, &ok),
        .seq = (uint64_t)sqlite3_column_int64(s, 1),
        .mid = col_str(s, 2, &ok),
        .ts = (uint64_t)sqlite3_column_int64(s, 3),
        .user_id = col_str(s, 4, &ok),
        .user_name = col_str(s, 5, &ok),
        .cmid = col_str(s, 6, &ok),
        .body = col_str(s, 7, &ok),
    };
    if (!ok) store_msg_clear(&m);
    if (!ok || store_msg_list_push(out, &m)) {
      rc = SQLITE_NOMEM;
      break;
    }
  }
  done(s);
  return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* A room's messages are in two tables: the older ones in messages, the newest in the inbox (every inbox
 * row of a room has a higher seq than its rows in messages). Both are read in one read transaction, so
 * a merge in between cannot hide or double a row. */
static int sq_read(void *ctx, const char *room, uint64_t after, uint64_t before, size_t limit, bool newest,
                   struct store_msg_list *out) {
  struct sq *q = ctx;
  if (!room || !out) return STORE_EINVAL;
  if (!limit || (before && before <= after + 1)) return STORE_OK;
  size_t first = out->n;
  int rc = sqlite3_step(q->st[S_BEGIN_READ]);
  done(q->st[S_BEGIN_READ]);
  if (rc != SQLITE_DONE) return call_fail(q, "read", rc);
  /* A merge under way has copied some inbox rows to messages without deleting them yet: each table is
   * read only beyond what the other one gave. */
  if (newest) { /* newest first: the inbox, then messages below its oldest row; reversed below */
    rc = read_rows(q, S_INBOX_READ_DESC, room, after, before, limit, out);
    size_t got = out->n - first;
    if (!rc && got < limit)
      rc = read_rows(q, S_READ_DESC, room, after, got ? out->v[out->n - 1].seq : before, limit - got, out);
  } else {
    rc = read_rows(q, S_READ_ASC, room, after, before, limit, out);
    size_t got = out->n - first;
    if (!rc && got < limit)
      rc = read_rows(q, S_INBOX_READ_ASC, room, got ? out->v[out->n - 1].seq : after, before, limit - got,
                     out);
  }
  int ret = rc == SQLITE_NOMEM ? STORE_ENOMEM : rc ? call_fail(q, "read", rc) : STORE_OK;
  sqlite3_step(q->st[S_COMMIT]); /* ends the read transaction */
  done(q->st[S_COMMIT]);
  if (ret) { /* leave out as it was */
    for (size_t i = first; i < out->n; i++) store_msg_clear(&out->v[i]);
    out->n = first;
    return ret;
  }
  if (newest) /* rows came newest first */
    for (size_t i = first, j = out->n; j > i + 1; i++) {
      j--;
      struct store_msg t = out->v[i];
      out->v[i] = out->v[j];
      out->v[j] = t;
    }
  return call_ok(q);
}

static int sq_head(void *ctx, const char *room, uint64_t *seq) {
  struct sq *q = ctx;
  if (!room || !seq) return STORE_EINVAL;
  sqlite3_stmt *s = q->st[S_ROOM_HEAD];
  bind_text(s, 1, room);
  int rc = sqlite3_step(s);
  *seq = rc == SQLITE_ROW ? (uint64_t)sqlite3_column_int64(s, 0) : 0;
  done(s);
  rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
  return rc ? call_fail(q, "head", rc) : call_ok(q);
}

static int sq_set_last_seen(void *ctx, const char *user_id, uint64_t ts) {
  struct sq *q = ctx;
  if (!user_id) return STORE_EINVAL;
  sqlite3_stmt *s = q->st[S_SET_SEEN];
  bind_text(s, 1, user_id);
  sqlite3_bind_int64(s, 2, clamp64(ts));
  int rc = sqlite3_step(s);
  done(s);
  return rc == SQLITE_DONE ? call_ok(q) : call_fail(q, "set_last_seen", rc);
}

static int sq_get_last_seen(void *ctx, const char *user_id, uint64_t *ts) {
  struct sq *q = ctx;
  if (!user_id || !ts) return STORE_EINVAL;
  sqlite3_stmt *s = q->st[S_GET_SEEN];
  bind_text(s, 1, user_id);
  int rc = sqlite3_step(s);
  *ts = rc == SQLITE_ROW ? (uint64_t)sqlite3_column_int64(s, 0) : 0;
  done(s);
  return rc == SQLITE_ROW || rc == SQLITE_DONE ? call_ok(q) : call_fail(q, "get_last_seen", rc);
}

/* ---- room lists and read markers ---- */

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Step a statement that returns no rows; a store error code. */
static int exec_stmt(struct sq *q, sqlite3_stmt *s, const char *what) {
  int rc = sqlite3_step(s);
  done(s);
  return rc == SQLITE_DONE ? STORE_OK : call_fail(q, what, rc);
}

static int sq_member_set(void *ctx, const char *user_id, const char *room, bool member) {
  struct sq *q = ctx;
  if (!user_id || !user_id[0] || !room || !room[0]) return STORE_EINVAL;
  sqlite3_stmt *s;
  int ret;
  if (member) {
    s = q->st[S_MEMBER_ADD];
    bind_text(s, 1, user_id);
    bind_text(s, 2, room);
    sqlite3_bind_int64(s, 3, clamp64(now_ms()));
    ret = exec_stmt(q, s, "member_set");
    return ret ? ret : call_ok(q);
  }
  /* Removal: a row without a marker goes; one with a marker stays, unlisted. All or nothing: a transaction
   * of its own, or a savepoint inside a group (sq_group). */
  bool own = sqlite3_get_autocommit(q->db) != 0;
  if (own)
    ret = exec_stmt(q, q->st[S_BEGIN], "member_set");
  else
    ret = sqlite3_exec(q->db, "SAVEPOINT member", NULL, NULL, NULL) ? call_fail(q, "member_set", SQLITE_ERROR)
                                                                    : 0;
  if (ret) return ret;
  s = q->st[S_MEMBER_DROP];
  bind_text(s, 1, user_id);
  bind_text(s, 2, room);
  if (!(ret = exec_stmt(q, s, "member_set"))) {
    s = q->st[S_MEMBER_UNLIST];
    bind_text(s, 1, user_id);
    bind_text(s, 2, room);
    ret = exec_stmt(q, s, "member_set");
  }
  if (own) {
    if (!ret) ret = exec_stmt(q, q->st[S_COMMIT], "member_set");
    if (ret && sqlite3_get_autocommit(q->db) == 0) exec_stmt(q, q->st[S_ROLLBACK], "member_set");
  } else if (sqlite3_get_autocommit(q->db) == 0) { /* (an I/O error may have ended the group already) */
    if (ret) sqlite3_exec(q->db, "ROLLBACK TO member", NULL, NULL, NULL);
    sqlite3_exec(q->db, "RELEASE member", NULL, NULL, NULL);
  }
  return ret ? ret : call_ok(q);
}

/* Both deletes or neither: a transaction of its own, or a savepoint inside a group (sq_group). */
static int sq_forget_user(void *ctx, const char *user_id, bool prefix) {
  struct sq *q = ctx;
  if (!user_id || !user_id[0]) return STORE_EINVAL;
  char *upper = NULL; /* prefix: the first id after every id that starts with it */
  int rc = prefix ? store_prefix_end(user_id, &upper) : STORE_OK;
  if (rc) return rc;
  bool own = sqlite3_get_autocommit(q->db) != 0;
  int ret;
  if (own)
    ret = exec_stmt(q, q->st[S_BEGIN], "forget_user");
  else
    ret = sqlite3_exec(q->db, "SAVEPOINT forget", NULL, NULL, NULL)
              ? call_fail(q, "forget_user", SQLITE_ERROR)
              : 0;
  if (ret) {
    free(upper);
    return ret;
  }
  sqlite3_stmt *s = q->st[prefix ? S_FORGET_MEMBERS_RANGE : S_FORGET_MEMBERS];
  bind_text(s, 1, user_id);
  if (prefix) bind_text(s, 2, upper);
  if (!(ret = exec_stmt(q, s, "forget_user"))) {
    s = q->st[prefix ? S_FORGET_SEEN_RANGE : S_FORGET_SEEN];
    bind_text(s, 1, user_id);
    if (prefix) bind_text(s, 2, upper);
    ret = exec_stmt(q, s, "forget_user");
  }
  free(upper);
  if (own) {
    if (!ret) ret = exec_stmt(q, q->st[S_COMMIT], "forget_user");
    if (ret && sqlite3_get_autocommit(q->db) == 0) exec_stmt(q, q->st[S_ROLLBACK], "forget_user");
  } else if (sqlite3_get_autocommit(q->db) == 0) {
    if (ret) sqlite3_exec(q->db, "ROLLBACK TO forget", NULL, NULL, NULL);
    sqlite3_exec(q->db, "RELEASE forget", NULL, NULL, NULL);
  }
  return ret ? ret : call_ok(q);
}

static int read_marker(struct sq *q, const char *user_id, const char *room, uint64_t *read) {
  sqlite3_stmt *s = q->st[S_READ_GET];
  bind_text(s, 1, user_id);
  bind_text(s, 2, room);
  int rc = sqlite3_step(s);
  *read = rc == SQLITE_ROW ? (uint64_t)sqlite3_column_int64(s, 0) : 0;
  done(s);
  return rc == SQLITE_ROW || rc == SQLITE_DONE ? STORE_OK : call_fail(q, "read_set", rc);
}

static int sq_read_set(void *ctx, const char *user_id, const char *room, uint64_t seq, uint64_t *read) {
  struct sq *q = ctx;
  if (!user_id || !user_id[0] || !room || !room[0] || !read) return STORE_EINVAL;
  int ret;
  if (seq) {
    /* One statement: it returns the row only when the marker moved (or was created) */
    sqlite3_stmt *s = q->st[S_READ_SET];
    bind_text(s, 1, user_id);
    bind_text(s, 2, room);
    sqlite3_bind_int64(s, 3, clamp64(seq));
    int rc = sqlite3_step(s);
    bool moved = rc == SQLITE_ROW;
    if (moved) {
      *read = (uint64_t)sqlite3_column_int64(s, 0);
      rc = sqlite3_step(s);
    }
    done(s);
    if (rc != SQLITE_DONE) return call_fail(q, "read_set", rc);
    if (moved) return call_ok(q);
  }
  if ((ret = read_marker(q, user_id, room, read))) return ret; /* already at or beyond seq */
  return call_ok(q);
}

static int sq_rooms_of(void *ctx, const char *user_id, struct store_room_list *out) {
  struct sq *q = ctx;
  if (!user_id || !user_id[0] || !out) return STORE_EINVAL;
  /* The writer knows every room's head (its cache holds each room with inbox rows); another connection
   * asks the inbox. */
  bool cached = q->appender && !q->shared;
  sqlite3_stmt *s = q->st[cached ? S_ROOMS_OF : S_ROOMS_OF_FULL];
  size_t first = out->n;
  int rc, ret = STORE_OK;
  bind_text(s, 1, user_id);
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    bool ok = true;
    struct store_room r = {.room = col_str(s, 0, &ok),
                           .head = (uint64_t)sqlite3_column_int64(s, 1),
                           .read = (uint64_t)sqlite3_column_int64(s, 2)};
    if (cached && r.room) {
      struct head_entry *h;
      HASH_FIND_STR(q->heads, r.room, h);
      if (h && h->committed > r.head) r.head = h->committed;
    }
    if (!ok || !r.room || store_room_list_push(out, &r)) {
      free(r.room);
      ret = STORE_ENOMEM;
      break;
    }
  }
  if (!ret && rc != SQLITE_DONE) ret = call_fail(q, "rooms_of", rc);
  done(s);
  if (ret) { /* leave out as it was */
    for (size_t i = first; i < out->n; i++) free(out->v[i].room);
    out->n = first;
    return ret;
  }
  return call_ok(q);
}

/* ---- retention ---- */

/* Apply retention to one room in its own transaction (short write locks between message batches).
 * Returns a store error code. */
static int retain_room(struct sq *q, const char *room, uint64_t ts_before, uint64_t keep_count,
                       uint64_t *deleted) {
  int rc = sqlite3_step(q->st[S_BEGIN]);
  done(q->st[S_BEGIN]);
  if (rc != SQLITE_DONE) return call_fail(q, "retain", rc);
  uint64_t n = 0, newest = 0;
  sqlite3_stmt *s = q->st[S_MAX_SEQ];
  bind_text(s, 1, room);
  rc = sqlite3_step(s);
  if (rc == SQLITE_ROW) {
    newest = (uint64_t)sqlite3_column_int64(s, 0); /* max() of no rows is NULL → 0 */
    rc = SQLITE_DONE;
  }
  done(s);
  if (rc != SQLITE_DONE) goto fail;
  if (keep_count && newest) {
    s = q->st[S_NTH_NEWEST]; /* the newest seq beyond the keep_count newest: it and older ones go */
    bind_text(s, 1, room);
    sqlite3_bind_int64(s, 2, clamp64(keep_count));
    rc = sqlite3_step(s);
    uint64_t upto = rc == SQLITE_ROW ? (uint64_t)sqlite3_column_int64(s, 0) : 0;
    done(s);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) goto fail;
    if (upto) {
      s = q->st[S_DEL_UPTO];
      bind_text(s, 1, room);
      sqlite3_bind_int64(s, 2, (int64_t)upto);
      sqlite3_bind_int64(s, 3, (int64_t)newest);
      rc = sqlite3_step(s);
      done(s);
      if (rc != SQLITE_DONE) goto fail;
      n += (uint64_t)sqlite3_changes(q->db);
    }
  }
  if (ts_before && newest) {
    s = q->st[S_DEL_OLDER];
    bind_text(s, 1, room);
    sqlite3_bind_int64(s, 2, clamp64(ts_before));
    sqlite3_bind_int64(s, 3, (int64_t)newest);
    rc = sqlite3_step(s);
    done(s);
    if (rc != SQLITE_DONE) goto fail;
    n += (uint64_t)sqlite3_changes(q->db);
  }
  rc = sqlite3_step(q->st[S_COMMIT]);
  done(q->st[S_COMMIT]);
  if (rc != SQLITE_DONE) goto fail;
  *deleted += n;
  return STORE_OK;
fail:
  rc = call_fail(q, "retain", rc); /* before ROLLBACK replaces the error message */
  if (sqlite3_get_autocommit(q->db) == 0) {
    sqlite3_step(q->st[S_ROLLBACK]);
    done(q->st[S_ROLLBACK]);
  }
  return rc;
}

static int sq_retain(void *ctx, const char *pattern, uint64_t ts_before, uint64_t keep_count,
                     uint64_t *deleted) {
  struct sq *q = ctx;
  int rc;
  if (!pattern || !deleted) return STORE_EINVAL;
  *deleted = 0;
  if (!ts_before && !keep_count) return STORE_OK;
  /* Retention counts and dates a room's messages in one table: the inbox moves there first. */
  if ((rc = merge_all(q))) {
    log_warn("store(sqlite): retention: moving the inbox into messages failed: %s", q->lasterr);
    return map_rc(rc);
  }
  inbox_forget(q, INT64_MAX);
  /* Collect the matching rooms first: the deletes run in their own transactions. */
  char **rooms = NULL;
  size_t nrooms = 0, cap = 0;
  int ret = STORE_OK;
  sqlite3_stmt *s = q->st[S_ROOMS];
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    const char *room = (const char *)sqlite3_column_text(s, 0);
    if (!room || !config_glob_match(pattern, room)) continue;
    if (nrooms == cap) {
      cap = cap ? cap * 2 : 16;
      char **v = realloc(rooms, cap * sizeof *v);
      if (!v) {
        ret = STORE_ENOMEM;
        break;
      }
      rooms = v;
    }
    if (!(rooms[nrooms] = strdup(room))) {
      ret = STORE_ENOMEM;
      break;
    }
    nrooms++;
  }
  done(s);
  if (!ret && rc != SQLITE_DONE) ret = call_fail(q, "retain", rc);
  for (size_t i = 0; !ret && i < nrooms; i++) ret = retain_room(q, rooms[i], ts_before, keep_count, deleted);
  for (size_t i = 0; i < nrooms; i++) free(rooms[i]);
  free(rooms);
  return ret ? ret : call_ok(q);
}

/* ---- checkpoints ---- */

static int sq_wal_pages(void *ctx) { return ((struct sq *)ctx)->wal_pages; }

/* Copy the WAL into the database file. PASSIVE runs beside the writer (it copies what is committed and
 * never waits); a hard checkpoint (RESTART) waits for the writer between transactions and copies all of it,
 * so that the next write starts the WAL over, which PASSIVE alone cannot do while writes never pause. */
static int sq_checkpoint(void *ctx, bool hard, int *wal_left) {
  struct sq *q = ctx;
  int log = 0, done_frames = 0;
  int rc = sqlite3_wal_checkpoint_v2(
      q->db, NULL, hard ? SQLITE_CHECKPOINT_RESTART : SQLITE_CHECKPOINT_PASSIVE, &log, &done_frames);
  if (wal_left) *wal_left = rc == SQLITE_OK && log >= 0 && done_frames >= 0 ? log - done_frames : -1;
  /* SQLite syncs the database file only after a checkpoint that copied the whole WAL, which a background
   * one under constant writes never does: the pages it copied would wait, unsynced, for the checkpoint that
   * lets the WAL start over (the writer's, ask_checkpoint in store.c), whose sync then flushed all of them
   * while appends waited (83 ms with a 64k-page WAL). Syncing here, off the writer, leaves that one only
   * its own pages. The WAL was synced before the copy, so this adds no ordering SQLite relies on. (After
   * the writer's own copy, which SQLite has synced already, it is a second sync with nothing to write.) */
  if (rc == SQLITE_OK && !hard && done_frames > 0) {
    sqlite3_file *f = NULL;
    if (sqlite3_file_control(q->db, "main", SQLITE_FCNTL_FILE_POINTER, &f) == SQLITE_OK && f && f->pMethods)
      rc = f->pMethods->xSync(f, SQLITE_SYNC_NORMAL);
  }
  if (rc == SQLITE_BUSY) return STORE_OK; /* a hard one that timed out waiting: the next one tries again */
  return rc ? call_fail(q, "checkpoint", rc) : call_ok(q);
}

/* A run of small writes in one transaction (a join storm: one commit instead of one per join). SQLite may
 * end a transaction itself on an I/O error or a full disk; the writes after that ran on their own, and the
 * end reports the error for the whole run (they are idempotent: a client that retries loses nothing). */
static int sq_group(void *ctx, bool begin) {
  struct sq *q = ctx;
  if (begin) return exec_stmt(q, q->st[S_BEGIN], "group");
  if (sqlite3_get_autocommit(q->db)) return call_fail(q, "group", SQLITE_ABORT);
  int ret = exec_stmt(q, q->st[S_COMMIT], "group");
  if (ret && sqlite3_get_autocommit(q->db) == 0) exec_stmt(q, q->st[S_ROLLBACK], "group");
  return ret;
}

const struct store_backend store_backend_sqlite = {
    .name = "sqlite",
    .open = sq_open,
    .close = sq_close,
    .append = sq_append,
    .read = sq_read,
    .head = sq_head,
    .set_last_seen = sq_set_last_seen,
    .get_last_seen = sq_get_last_seen,
    .retain = sq_retain,
    .member_set = sq_member_set,
    .read_set = sq_read_set,
    .rooms_of = sq_rooms_of,
    .forget_user = sq_forget_user,
    .after_batch = sq_after_batch,
    .group = sq_group,
    .wal_pages = sq_wal_pages,
    .checkpoint = sq_checkpoint,
};
