/* mongo: the MongoDB storage backend (backend.h, docs/storage.md), on libmongoc.
 *
 * Connections: the ctxs opened with the same URI share one mongoc_client_pool_t (refcounted below) and
 * each pops its own mongoc_client_t (a client is not thread-safe; a ctx is used by one thread). A pool
 * monitors the server from a background thread, so after an outage the next call finds it again within
 * about half a second; a lone single-threaded client would skip the server for a 5 s "cooldown" after
 * every failed check. Collections: messages {room, seq, mid, ts, user_id, user_name,
 * cmid, body} with unique indexes (room, seq) and (user_id, cmid); rooms {_id: room, head};
 * users {_id: user_id, last_seen}; memberships {user_id, room, read, listed, joined_at} with a unique
 * index (user_id, room): a user's listed rooms and read markers (a marker may outlive its listing).
 * body is kept as the JSON text it came as, byte for byte.
 *
 * Gapless seqs without transactions (a standalone mongod has none): a seq is taken only by inserting
 * its message. The next seq of a room is 1 + max(messages' highest seq, rooms.head) — read through the
 * (room, seq) index — and rooms.head is moved forward only after the messages are written. A failed
 * insert therefore consumes no seq; a concurrent second writer would collide on the unique (room, seq)
 * index instead of forking the sequence. rooms.head keeps seqs from being reused if a room's messages
 * are ever removed by hand. */
#include <mongoc/mongoc.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "store/backend.h"
#include "util/log.h"

#define DEFAULT_SERVER_SELECTION_MS 2000
#define DEFAULT_CONNECT_MS          2000
#define DEFAULT_SOCKET_MS           30000

/* One pool per distinct URI text, shared by the ctxs that use it. */
struct pool_ref {
  struct pool_ref *next;
  char *uri; /* as configured */
  mongoc_client_pool_t *pool;
  unsigned refs;
};

static pthread_mutex_t pools_mu = PTHREAD_MUTEX_INITIALIZER;
static struct pool_ref *pools;

struct mg {
  struct pool_ref *pool;
  mongoc_client_t *client; /* popped from pool->pool */
  mongoc_collection_t *messages, *rooms, *users, *memberships;
  char *uri_shown; /* the URI with any password masked, for messages */
  bool failing;    /* the last call without an err argument failed (logged once per streak) */
};

static pthread_once_t init_once = PTHREAD_ONCE_INIT;

/* libmongoc's own log lines go through ours: warnings and errors only. A server without the
 * endSessions command (the test emulator) makes every client close warn; that one is debug. */
static void log_from_mongoc(mongoc_log_level_t level, const char *domain, const char *msg, void *data) {
  if (level <= MONGOC_LOG_LEVEL_ERROR)
    log_error("mongoc %s: %s", domain, msg);
  else if (level == MONGOC_LOG_LEVEL_WARNING && strstr(msg, "endSessions"))
    log_debug("mongoc %s: %s", domain, msg);
  else if (level == MONGOC_LOG_LEVEL_WARNING)
    log_warn("mongoc %s: %s", domain, msg);
}

static void init(void) {
  mongoc_init();
  mongoc_log_set_handler(log_from_mongoc, NULL);
  /* no mongoc_cleanup: it must not run while another thread may still use the driver */
}

/* "mongodb://user:secret@host/" → "mongodb://user:***@host/" */
static char *mask_uri(const char *uri) {
  const char *auth = strstr(uri, "://");
  auth = auth ? auth + 3 : uri;
  const char *at = strchr(auth, '@'), *colon = strchr(auth, ':');
  const char *slash = strchr(auth, '/');
  if (!at || (slash && slash < at) || !colon || colon > at) return strdup(uri);
  size_t n = (size_t)(colon + 1 - uri);
  size_t len = n + 3 + strlen(at) + 1;
  char *out = malloc(len);
  if (out) snprintf(out, len, "%.*s***%s", (int)n, uri, at);
  return out;
}

static int call_fail(struct mg *g, const char *what, const bson_error_t *e) {
  if (!g->failing) log_warn("store(mongo): %s failed: %s", what, e->message);
  g->failing = true;
  return STORE_EUNAVAILABLE;
}

static int call_ok(struct mg *g) {
  if (g->failing) log_info("store(mongo): calls succeed again");
  g->failing = false;
  return STORE_OK;
}

static int64_t i64(uint64_t v) { return v > INT64_MAX ? INT64_MAX : (int64_t)v; }

static uint64_t get_u64(const bson_t *doc, const char *key) {
  bson_iter_t it;
  if (!bson_iter_init_find(&it, doc, key)) return 0;
  if (!BSON_ITER_HOLDS_INT64(&it) && !BSON_ITER_HOLDS_INT32(&it) && !BSON_ITER_HOLDS_DOUBLE(&it)) return 0;
  int64_t v = bson_iter_as_int64(&it);
  return v < 0 ? 0 : (uint64_t)v;
}

/* A string field as a malloc'd copy; absent/null → NULL; *ok cleared on allocation failure. */
static char *get_str(const bson_t *doc, const char *key, bool *ok) {
  bson_iter_t it;
  if (!bson_iter_init_find(&it, doc, key) || !BSON_ITER_HOLDS_UTF8(&it)) return NULL;
  char *s = strdup(bson_iter_utf8(&it, NULL));
  if (!s) *ok = false;
  return s;
}

/* The pool for uristr, created on first use: timeouts and write concern defaulted into the URI. */
static int pool_create(const char *uristr, const char *shown, mongoc_client_pool_t **out, char *err,
                       size_t errlen) {
  bson_error_t e;
  mongoc_uri_t *uri = mongoc_uri_new_with_error(uristr, &e);
  if (!uri) {
    store_seterr(err, errlen, "invalid MongoDB URI %s: %s", shown, e.message);
    return STORE_EINVAL;
  }
  /* Bounded waits unless the URI says otherwise: an unreachable server fails a call after
   * serverSelectionTimeoutMS instead of libmongoc's 30 s, a hung one after socketTimeoutMS. */
  if (!mongoc_uri_has_option(uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS))
    mongoc_uri_set_option_as_int32(uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS, DEFAULT_SERVER_SELECTION_MS);
  if (!mongoc_uri_has_option(uri, MONGOC_URI_CONNECTTIMEOUTMS))
    mongoc_uri_set_option_as_int32(uri, MONGOC_URI_CONNECTTIMEOUTMS, DEFAULT_CONNECT_MS);
  if (!mongoc_uri_has_option(uri, MONGOC_URI_SOCKETTIMEOUTMS))
    mongoc_uri_set_option_as_int32(uri, MONGOC_URI_SOCKETTIMEOUTMS, DEFAULT_SOCKET_MS);
  /* Durable acks: majority, journaled, unless the URI sets a write concern of its own. */
  const mongoc_write_concern_t *uwc = mongoc_uri_get_write_concern(uri);
  if (mongoc_write_concern_get_w(uwc) == MONGOC_WRITE_CONCERN_W_DEFAULT &&
      !mongoc_write_concern_get_wmajority(uwc) && !mongoc_write_concern_journal_is_set(uwc)) {
    mongoc_write_concern_t *wc = mongoc_write_concern_new();
    mongoc_write_concern_set_wmajority(wc, 0);
    mongoc_write_concern_set_journal(wc, true);
    mongoc_uri_set_write_concern(uri, wc);
    mongoc_write_concern_destroy(wc);
  }
  mongoc_client_pool_t *pool = mongoc_client_pool_new_with_error(uri, &e);
  mongoc_uri_destroy(uri);
  if (!pool) {
    store_seterr(err, errlen, "invalid MongoDB URI %s: %s", shown, e.message);
    return STORE_EINVAL;
  }
  mongoc_client_pool_set_error_api(pool, MONGOC_ERROR_API_VERSION_2);
  mongoc_client_pool_set_appname(pool, "parleyd");
  *out = pool;
  return STORE_OK;
}

static int pool_acquire(const char *uristr, const char *shown, struct pool_ref **out, char *err,
                        size_t errlen) {
  pthread_mutex_lock(&pools_mu);
  struct pool_ref *p = pools;
  while (p && strcmp(p->uri, uristr)) p = p->next;
  int ret = STORE_OK;
  if (!p) {
    p = calloc(1, sizeof *p);
    if (!p || !(p->uri = strdup(uristr))) {
      free(p);
      store_seterr(err, errlen, "out of memory");
      ret = STORE_ENOMEM;
    } else if ((ret = pool_create(uristr, shown, &p->pool, err, errlen))) {
      free(p->uri);
      free(p);
    } else {
      p->next = pools;
      pools = p;
    }
  }
  if (!ret) {
    p->refs++;
    *out = p;
  }
  pthread_mutex_unlock(&pools_mu);
  return ret;
}

/* Give the client back; the last user of a pool destroys it (and its monitoring threads). */
static void pool_release(struct pool_ref *p, mongoc_client_t *client) {
  pthread_mutex_lock(&pools_mu);
  if (client) mongoc_client_pool_push(p->pool, client);
  if (--p->refs == 0) {
    struct pool_ref **pp = &pools;
    while (*pp != p) pp = &(*pp)->next;
    *pp = p->next;
    mongoc_client_pool_destroy(p->pool);
    free(p->uri);
    free(p);
  }
  pthread_mutex_unlock(&pools_mu);
}

static void mg_close(void *ctx) {
  struct mg *g = ctx;
  if (!g) return;
  if (g->messages) mongoc_collection_destroy(g->messages);
  if (g->rooms) mongoc_collection_destroy(g->rooms);
  if (g->users) mongoc_collection_destroy(g->users);
  if (g->memberships) mongoc_collection_destroy(g->memberships);
  if (g->pool) pool_release(g->pool, g->client);
  free(g->uri_shown);
  free(g);
}

static bool create_indexes(struct mg *g, const char *dbname, bson_error_t *e) {
  bson_t *cmd = BCON_NEW("createIndexes", BCON_UTF8("messages"), "indexes", "[",                /**/
                         "{", "key", "{", "room", BCON_INT32(1), "seq", BCON_INT32(1), "}",     /**/
                         "name", BCON_UTF8("room_seq"), "unique", BCON_BOOL(true), "}",         /**/
                         "{", "key", "{", "user_id", BCON_INT32(1), "cmid", BCON_INT32(1), "}", /**/
                         "name", BCON_UTF8("user_cmid"), "unique", BCON_BOOL(true), "}", "]");
  bool ok = mongoc_client_write_command_with_opts(g->client, dbname, cmd, NULL, NULL, e);
  bson_destroy(cmd);
  if (!ok) return false;
  cmd = BCON_NEW("createIndexes", BCON_UTF8("memberships"), "indexes", "[",             /**/
                 "{", "key", "{", "user_id", BCON_INT32(1), "room", BCON_INT32(1), "}", /**/
                 "name", BCON_UTF8("user_room"), "unique", BCON_BOOL(true), "}", "]");
  ok = mongoc_client_write_command_with_opts(g->client, dbname, cmd, NULL, NULL, e);
  bson_destroy(cmd);
  return ok;
}

static int mg_open(const struct config *cfg, void **ctx, char *err, size_t errlen) {
  *ctx = NULL;
  pthread_once(&init_once, init);
  const char *uristr = cfg->store_mongo_uri ? cfg->store_mongo_uri : "";
  const char *dbname = cfg->store_mongo_database ? cfg->store_mongo_database : "";
  if (!dbname[0]) {
    store_seterr(err, errlen, "store.mongo.database is empty");
    return STORE_EINVAL;
  }
  struct mg *g = calloc(1, sizeof *g);
  if (!g || !(g->uri_shown = mask_uri(uristr))) {
    free(g);
    store_seterr(err, errlen, "out of memory");
    return STORE_ENOMEM;
  }
  bson_error_t e;
  int ret = pool_acquire(uristr, g->uri_shown, &g->pool, err, errlen);
  if (ret) goto fail;
  g->client = mongoc_client_pool_pop(g->pool->pool);

  bson_t *ping = BCON_NEW("ping", BCON_INT32(1));
  bool ok = mongoc_client_command_simple(g->client, "admin", ping, NULL, NULL, &e);
  bson_destroy(ping);
  if (!ok) {
    store_seterr(err, errlen, "cannot reach MongoDB at %s: %s", g->uri_shown, e.message);
    ret = STORE_EUNAVAILABLE;
    goto fail;
  }
  if (!create_indexes(g, dbname, &e)) {
    store_seterr(err, errlen, "MongoDB at %s: creating the indexes in database %s failed: %s", g->uri_shown,
                 dbname, e.message);
    ret = STORE_EUNAVAILABLE;
    goto fail;
  }
  g->messages = mongoc_client_get_collection(g->client, dbname, "messages");
  g->rooms = mongoc_client_get_collection(g->client, dbname, "rooms");
  g->users = mongoc_client_get_collection(g->client, dbname, "users");
  g->memberships = mongoc_client_get_collection(g->client, dbname, "memberships");
  *ctx = g;
  return STORE_OK;
fail:
  mg_close(g);
  return ret ? ret : STORE_EUNAVAILABLE;
}

/* ---- heads ---- */

/* Highest seq among room's messages (0: none), through the (room, seq) index. With skip > 0, the seq
 * that many messages below the highest (0: fewer messages than that). */
static bool nth_newest_seq(struct mg *g, const char *room, uint64_t skip, uint64_t *seq, bson_error_t *e) {
  bson_t *filter = BCON_NEW("room", BCON_UTF8(room));
  bson_t *opts = BCON_NEW("sort", "{", "seq", BCON_INT32(-1), "}", "projection", "{", "seq", BCON_INT32(1),
                          "_id", BCON_INT32(0), "}", "limit", BCON_INT64(1));
  if (skip) BSON_APPEND_INT64(opts, "skip", i64(skip));
  mongoc_cursor_t *c = mongoc_collection_find_with_opts(g->messages, filter, opts, NULL);
  const bson_t *doc;
  *seq = 0;
  if (mongoc_cursor_next(c, &doc)) *seq = get_u64(doc, "seq");
  bool ok = !mongoc_cursor_error(c, e);
  mongoc_cursor_destroy(c);
  bson_destroy(opts);
  bson_destroy(filter);
  return ok;
}

static bool room_doc_head(struct mg *g, const char *room, uint64_t *head, bson_error_t *e) {
  bson_t *filter = BCON_NEW("_id", BCON_UTF8(room));
  bson_t *opts = BCON_NEW("limit", BCON_INT64(1));
  mongoc_cursor_t *c = mongoc_collection_find_with_opts(g->rooms, filter, opts, NULL);
  const bson_t *doc;
  *head = 0;
  if (mongoc_cursor_next(c, &doc)) *head = get_u64(doc, "head");
  bool ok = !mongoc_cursor_error(c, e);
  mongoc_cursor_destroy(c);
  bson_destroy(opts);
  bson_destroy(filter);
  return ok;
}

/* A room's head: the larger of its highest stored seq and rooms.head (see the top of the file). */
static bool room_head(struct mg *g, const char *room, uint64_t *head, bson_error_t *e) {
  uint64_t a, b;
  if (!nth_newest_seq(g, room, 0, &a, e) || !room_doc_head(g, room, &b, e)) return false;
  *head = a > b ? a : b;
  return true;
}

/* ---- append ---- */

struct outcome {
  bool dup;
  bool tried;  /* sent in an insert of an earlier attempt of this append (kept across attempts) */
  bool stored; /* …and found stored with its own mid: written by that attempt, not a duplicate */
  size_t of;   /* dup within the batch: index of the original item, or SIZE_MAX */
  uint64_t seq, ts;
  char *room, *mid; /* dup: the original's (owned here until applied) */
};

struct head_view {
  const char *room; /* borrowed from an item */
  uint64_t head;
};

static bool valid_item(const struct store_msg *m) {
  return m->room && m->room[0] && m->mid && m->user_id && m->cmid && m->cmid[0] && m->body;
}

/* One find for every (user_id, cmid) of the batch: mark the items whose message is already stored —
 * as duplicates, or as stored if the stored one has the item's own mid. */
static bool find_stored_dups(struct mg *g, const struct store_append *items, size_t n, struct outcome *out,
                             bool *oom, bson_error_t *e) {
  bson_t filter = BSON_INITIALIZER, or ;
  char key[16];
  BSON_APPEND_ARRAY_BEGIN(&filter, "$or", & or);
  for (size_t i = 0; i < n; i++) {
    bson_t cond;
    const char *k;
    bson_uint32_to_string((uint32_t)i, &k, key, sizeof key);
    BSON_APPEND_DOCUMENT_BEGIN(& or, k, &cond);
    BSON_APPEND_UTF8(&cond, "user_id", items[i].msg.user_id);
    BSON_APPEND_UTF8(&cond, "cmid", items[i].msg.cmid);
    bson_append_document_end(& or, &cond);
  }
  bson_append_array_end(&filter, & or);
  bson_t *opts =
      BCON_NEW("projection", "{", "_id", BCON_INT32(0), "room", BCON_INT32(1), "seq", BCON_INT32(1), "mid",
               BCON_INT32(1), "ts", BCON_INT32(1), "user_id", BCON_INT32(1), "cmid", BCON_INT32(1), "}");
  mongoc_cursor_t *c = mongoc_collection_find_with_opts(g->messages, &filter, opts, NULL);
  const bson_t *doc;
  while (mongoc_cursor_next(c, &doc)) {
    bson_iter_t it;
    const char *uid = NULL, *cmid = NULL;
    if (bson_iter_init_find(&it, doc, "user_id") && BSON_ITER_HOLDS_UTF8(&it))
      uid = bson_iter_utf8(&it, NULL);
    if (bson_iter_init_find(&it, doc, "cmid") && BSON_ITER_HOLDS_UTF8(&it)) cmid = bson_iter_utf8(&it, NULL);
    if (!uid || !cmid) continue;
    for (size_t i = 0; i < n; i++) {
      if (out[i].dup || out[i].stored || strcmp(items[i].msg.user_id, uid) || strcmp(items[i].msg.cmid, cmid))
        continue;
      bson_iter_t mit;
      if (out[i].tried && bson_iter_init_find(&mit, doc, "mid") && BSON_ITER_HOLDS_UTF8(&mit) &&
          !strcmp(bson_iter_utf8(&mit, NULL), items[i].msg.mid)) {
        /* Our own message, from an insert that failed part-way (an ordered insert keeps its prefix). */
        out[i].stored = true;
        out[i].seq = get_u64(doc, "seq");
        continue;
      }
      bool ok = true;
      out[i].dup = true;
      out[i].room = get_str(doc, "room", &ok);
      out[i].mid = get_str(doc, "mid", &ok);
      out[i].seq = get_u64(doc, "seq");
      out[i].ts = get_u64(doc, "ts");
      if (!ok) *oom = true;
    }
  }
  bool ok = !mongoc_cursor_error(c, e);
  mongoc_cursor_destroy(c);
  bson_destroy(opts);
  bson_destroy(&filter);
  return ok;
}

static bson_t *message_doc(const struct store_msg *m, uint64_t seq) {
  bson_t *d = bson_new();
  BSON_APPEND_UTF8(d, "room", m->room);
  BSON_APPEND_INT64(d, "seq", i64(seq));
  BSON_APPEND_UTF8(d, "mid", m->mid);
  BSON_APPEND_INT64(d, "ts", i64(m->ts));
  BSON_APPEND_UTF8(d, "user_id", m->user_id);
  if (m->user_name)
    BSON_APPEND_UTF8(d, "user_name", m->user_name);
  else
    BSON_APPEND_NULL(d, "user_name");
  BSON_APPEND_UTF8(d, "cmid", m->cmid);
  BSON_APPEND_UTF8(d, "body", m->body);
  return d;
}

/* rooms.head = the batch's new heads, in one unordered bulk of upserts. */
static bool store_heads(struct mg *g, const struct head_view *heads, size_t nheads, bson_error_t *e) {
  bson_t *bopts = BCON_NEW("ordered", BCON_BOOL(false));
  mongoc_bulk_operation_t *bulk = mongoc_collection_create_bulk_operation_with_opts(g->rooms, bopts);
  bson_destroy(bopts);
  bson_t *uopts = BCON_NEW("upsert", BCON_BOOL(true));
  bool ok = true;
  for (size_t h = 0; ok && h < nheads; h++) {
    bson_t *sel = BCON_NEW("_id", BCON_UTF8(heads[h].room));
    bson_t *upd = BCON_NEW("$set", "{", "head", BCON_INT64(i64(heads[h].head)), "}");
    ok = mongoc_bulk_operation_update_one_with_opts(bulk, sel, upd, uopts, e);
    bson_destroy(upd);
    bson_destroy(sel);
  }
  bson_destroy(uopts);
  if (ok) ok = mongoc_bulk_operation_execute(bulk, NULL, e) != 0;
  mongoc_bulk_operation_destroy(bulk);
  return ok;
}

#define DUPLICATE_KEY 11000

/* One try at a batch: fills out[] (nothing is applied to the items). Returns STORE_OK, or an error with
 * *collided set when the insert hit a unique index: another writer got there first. */
static int append_once(struct mg *g, const struct store_append *items, size_t n, struct outcome *out,
                       struct head_view *heads, const bson_t **docs, bool *collided, bson_error_t *e) {
  size_t nheads = 0, ndocs = 0;
  bool oom = false;
  int ret = STORE_EUNAVAILABLE;
  *collided = false;
  for (size_t i = 0; i < n; i++) {
    free(out[i].room);
    free(out[i].mid);
    out[i] = (struct outcome){.of = SIZE_MAX, .tried = out[i].tried};
  }
  /* 1. Duplicates: of stored messages (one find), then of earlier items of the batch. */
  if (!find_stored_dups(g, items, n, out, &oom, e)) goto done;
  for (size_t i = 1; i < n && !oom; i++) {
    if (out[i].dup || out[i].stored) continue;
    for (size_t j = 0; j < i; j++) {
      if (out[j].dup || strcmp(items[i].msg.user_id, items[j].msg.user_id) ||
          strcmp(items[i].msg.cmid, items[j].msg.cmid))
        continue;
      out[i].dup = true;
      out[i].of = j;
      out[i].ts = items[j].msg.ts;
      out[i].room = strdup(items[j].msg.room);
      out[i].mid = strdup(items[j].msg.mid);
      oom = !out[i].room || !out[i].mid;
      break;
    }
  }
  /* 2. Seqs: each new message gets its room's next one. */
  for (size_t i = 0; i < n && !oom; i++) {
    if (out[i].dup || out[i].stored) continue;
    const struct store_msg *m = &items[i].msg;
    size_t h = 0;
    while (h < nheads && strcmp(heads[h].room, m->room)) h++;
    if (h == nheads) {
      heads[h].room = m->room;
      if (!room_head(g, m->room, &heads[h].head, e)) goto done;
      nheads++;
    }
    out[i].seq = ++heads[h].head;
    out[i].tried = true;
    docs[ndocs++] = message_doc(m, out[i].seq);
  }
  if (oom) {
    ret = STORE_ENOMEM;
    bson_set_error(e, MONGOC_ERROR_CLIENT, MONGOC_ERROR_CLIENT_NO_ACCEPTABLE_PEER, "out of memory");
    goto done;
  }
  for (size_t i = 0; i < n; i++)
    if (out[i].of != SIZE_MAX) out[i].seq = out[out[i].of].seq;
  /* 3. One ordered insert, with the pool's write concern. */
  if (ndocs) {
    bson_t *opts = BCON_NEW("ordered", BCON_BOOL(true));
    bool ok = mongoc_collection_insert_many(g->messages, docs, ndocs, opts, NULL, e);
    bson_destroy(opts);
    if (!ok) {
      *collided = e->code == DUPLICATE_KEY;
      goto done;
    }
    /* The messages are stored: the append has succeeded. A failure to move rooms.head only delays it
     * (the next append and head() take the max with the messages' own seqs). */
    bson_error_t he;
    if (!store_heads(g, heads, nheads, &he))
      log_warn("store(mongo): updating rooms.head failed: %s", he.message);
  }
  ret = STORE_OK;
done:
  for (size_t i = 0; i < ndocs; i++) bson_destroy((bson_t *)docs[i]);
  return ret;
}

static int mg_append(void *ctx, struct store_append *items, size_t n, char *err, size_t errlen) {
  struct mg *g = ctx;
  if (!n) return STORE_OK;
  for (size_t i = 0; i < n; i++) {
    if (!valid_item(&items[i].msg)) {
      store_seterr(err, errlen, "append: item %zu lacks room, mid, user_id, cmid or body", i);
      return STORE_EINVAL;
    }
  }
  struct outcome *out = calloc(n, sizeof *out);
  struct head_view *heads = calloc(n, sizeof *heads);
  const bson_t **docs = calloc(n, sizeof *docs);
  int ret = STORE_ENOMEM;
  bson_error_t e;
  bson_set_error(&e, MONGOC_ERROR_CLIENT, MONGOC_ERROR_CLIENT_NO_ACCEPTABLE_PEER, "out of memory");
  if (out && heads && docs) {
    /* A collision on a unique index means another writer took the seq or stored the (user, cmid)
     * meanwhile: look again. (parleyd has one writer; this covers a second process by mistake.) */
    bool collided = true;
    for (int attempt = 0; attempt < 3 && collided; attempt++)
      ret = append_once(g, items, n, out, heads, docs, &collided, &e);
  }
  if (ret) {
    store_seterr(err, errlen, "MongoDB at %s: %s", g->uri_shown, e.message);
  } else {
    for (size_t i = 0; i < n; i++)
      store_append_settle(&items[i], out[i].dup, out[i].seq, &out[i].room, &out[i].mid, out[i].ts);
  }
  if (out)
    for (size_t i = 0; i < n; i++) {
      free(out[i].room);
      free(out[i].mid);
    }
  free(docs);
  free(out);
  free(heads);
  return ret;
}

/* ---- reads ---- */

static int mg_read(void *ctx, const char *room, uint64_t after, uint64_t before, size_t limit, bool newest,
                   struct store_msg_list *out) {
  struct mg *g = ctx;
  if (!room || !out) return STORE_EINVAL;
  if (!limit || (before && before <= after + 1)) return STORE_OK;
  bson_t filter = BSON_INITIALIZER, range;
  BSON_APPEND_UTF8(&filter, "room", room);
  BSON_APPEND_DOCUMENT_BEGIN(&filter, "seq", &range);
  BSON_APPEND_INT64(&range, "$gt", i64(after));
  if (before) BSON_APPEND_INT64(&range, "$lt", i64(before));
  bson_append_document_end(&filter, &range);
  bson_t *opts =
      BCON_NEW("sort", "{", "seq", BCON_INT32(newest ? -1 : 1), "}", "projection", "{", "_id", BCON_INT32(0),
               "}", "limit", BCON_INT64(limit > INT64_MAX ? INT64_MAX : (int64_t)limit));
  mongoc_cursor_t *c = mongoc_collection_find_with_opts(g->messages, &filter, opts, NULL);
  size_t first = out->n;
  int ret = STORE_OK;
  const bson_t *doc;
  while (mongoc_cursor_next(c, &doc)) {
    bool ok = true;
    struct store_msg m = {
        .room = get_str(doc, "room", &ok),
        .seq = get_u64(doc, "seq"),
        .mid = get_str(doc, "mid", &ok),
        .ts = get_u64(doc, "ts"),
        .user_id = get_str(doc, "user_id", &ok),
        .user_name = get_str(doc, "user_name", &ok),
        .cmid = get_str(doc, "cmid", &ok),
        .body = get_str(doc, "body", &ok),
    };
    if (!ok) store_msg_clear(&m);
    if (!ok || store_msg_list_push(out, &m)) {
      ret = STORE_ENOMEM;
      break;
    }
  }
  bson_error_t e;
  if (!ret && mongoc_cursor_error(c, &e)) ret = call_fail(g, "read", &e);
  mongoc_cursor_destroy(c);
  bson_destroy(opts);
  bson_destroy(&filter);
  if (ret) { /* leave out as it was */
    for (size_t i = first; i < out->n; i++) store_msg_clear(&out->v[i]);
    out->n = first;
    return ret;
  }
  if (newest) /* documents came newest first */
    for (size_t i = first, j = out->n; j > i + 1; i++) {
      j--;
      struct store_msg t = out->v[i];
      out->v[i] = out->v[j];
      out->v[j] = t;
    }
  return call_ok(g);
}

static int mg_head(void *ctx, const char *room, uint64_t *seq) {
  struct mg *g = ctx;
  if (!room || !seq) return STORE_EINVAL;
  bson_error_t e;
  return room_head(g, room, seq, &e) ? call_ok(g) : call_fail(g, "head", &e);
}

static int mg_set_last_seen(void *ctx, const char *user_id, uint64_t ts) {
  struct mg *g = ctx;
  if (!user_id) return STORE_EINVAL;
  bson_t *sel = BCON_NEW("_id", BCON_UTF8(user_id));
  bson_t *upd = BCON_NEW("$set", "{", "last_seen", BCON_INT64(i64(ts)), "}");
  bson_t *opts = BCON_NEW("upsert", BCON_BOOL(true));
  bson_error_t e;
  bool ok = mongoc_collection_update_one(g->users, sel, upd, opts, NULL, &e);
  bson_destroy(opts);
  bson_destroy(upd);
  bson_destroy(sel);
  return ok ? call_ok(g) : call_fail(g, "set_last_seen", &e);
}

static int mg_get_last_seen(void *ctx, const char *user_id, uint64_t *ts) {
  struct mg *g = ctx;
  if (!user_id || !ts) return STORE_EINVAL;
  bson_t *filter = BCON_NEW("_id", BCON_UTF8(user_id));
  bson_t *opts = BCON_NEW("limit", BCON_INT64(1));
  mongoc_cursor_t *c = mongoc_collection_find_with_opts(g->users, filter, opts, NULL);
  const bson_t *doc;
  *ts = 0;
  if (mongoc_cursor_next(c, &doc)) *ts = get_u64(doc, "last_seen");
  bson_error_t e;
  bool ok = !mongoc_cursor_error(c, &e);
  mongoc_cursor_destroy(c);
  bson_destroy(opts);
  bson_destroy(filter);
  return ok ? call_ok(g) : call_fail(g, "get_last_seen", &e);
}

/* ---- room lists and read markers ---- */

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* One update_one; *matched gets matchedCount + upsertedCount. */
static bool update1(mongoc_collection_t *c, const bson_t *sel, const bson_t *upd, bool upsert,
                    uint64_t *matched, bson_error_t *e) {
  bson_t *opts = BCON_NEW("upsert", BCON_BOOL(upsert));
  bson_t reply;
  bool ok = mongoc_collection_update_one(c, sel, upd, opts, &reply, e);
  if (ok && matched) *matched = get_u64(&reply, "matchedCount") + get_u64(&reply, "upsertedCount");
  bson_destroy(&reply);
  bson_destroy(opts);
  return ok;
}

/* The membership document of (user_id, room): *found, and its read marker and listed flag. */
static bool membership_get(struct mg *g, const char *user_id, const char *room, bool *found, uint64_t *read,
                           bool *listed, bson_error_t *e) {
  bson_t *filter = BCON_NEW("user_id", BCON_UTF8(user_id), "room", BCON_UTF8(room));
  bson_t *opts = BCON_NEW("limit", BCON_INT64(1));
  mongoc_cursor_t *c = mongoc_collection_find_with_opts(g->memberships, filter, opts, NULL);
  const bson_t *doc;
  *found = false;
  *read = 0;
  *listed = false;
  if (mongoc_cursor_next(c, &doc)) {
    bson_iter_t it;
    *found = true;
    *read = get_u64(doc, "read");
    *listed = bson_iter_init_find(&it, doc, "listed") && bson_iter_as_bool(&it);
  }
  bool ok = !mongoc_cursor_error(c, e);
  mongoc_cursor_destroy(c);
  bson_destroy(opts);
  bson_destroy(filter);
  return ok;
}

#define MEMBERSHIP_TRIES 3

static int mg_member_set(void *ctx, const char *user_id, const char *room, bool member) {
  struct mg *g = ctx;
  if (!user_id || !user_id[0] || !room || !room[0]) return STORE_EINVAL;
  bson_error_t e;
  bool ok = true;
  if (member) {
    /* List it unless it is listed already (then the upsert collides on user_room: nothing to do). The
     * collision is confirmed by a read, in case a second writer inserted a marker-only document. */
    bson_t *sel = BCON_NEW("user_id", BCON_UTF8(user_id), "room", BCON_UTF8(room), "listed", "{", "$ne",
                           BCON_BOOL(true), "}");
    bson_t *upd = BCON_NEW("$set", "{", "listed", BCON_BOOL(true), "joined_at", BCON_INT64(i64(now_ms())),
                           "}", "$setOnInsert", "{", "read", BCON_INT64(0), "}");
    bool listed = false;
    for (int attempt = 0; ok && !listed && attempt < MEMBERSHIP_TRIES; attempt++) {
      if (update1(g->memberships, sel, upd, true, NULL, &e)) {
        listed = true;
      } else if (e.code == DUPLICATE_KEY) {
        bool found;
        uint64_t read;
        ok = membership_get(g, user_id, room, &found, &read, &listed, &e);
      } else {
        ok = false;
      }
    }
    bson_destroy(upd);
    bson_destroy(sel);
    if (ok && !listed)
      bson_set_error(&e, MONGOC_ERROR_COLLECTION, DUPLICATE_KEY, "member_set: kept colliding");
    return ok && listed ? call_ok(g) : call_fail(g, "member_set", &e);
  }
  /* Removal: a document with a marker stays, unlisted; one without goes. */
  bson_t *sel = BCON_NEW("user_id", BCON_UTF8(user_id), "room", BCON_UTF8(room), "read", "{", "$gt",
                         BCON_INT64(0), "}");
  bson_t *upd = BCON_NEW("$set", "{", "listed", BCON_BOOL(false), "}");
  uint64_t matched = 0;
  ok = update1(g->memberships, sel, upd, false, &matched, &e);
  bson_destroy(upd);
  bson_destroy(sel);
  if (ok && !matched) {
    sel = BCON_NEW("user_id", BCON_UTF8(user_id), "room", BCON_UTF8(room), "read", "{", "$lte", BCON_INT64(0),
                   "}");
    ok = mongoc_collection_delete_one(g->memberships, sel, NULL, NULL, &e);
    bson_destroy(sel);
  }
  return ok ? call_ok(g) : call_fail(g, "member_set", &e);
}

static int mg_read_set(void *ctx, const char *user_id, const char *room, uint64_t seq, uint64_t *read) {
  struct mg *g = ctx;
  if (!user_id || !user_id[0] || !room || !room[0] || !read) return STORE_EINVAL;
  bson_error_t e;
  bool found, listed, ok = true;
  if (!seq) {
    ok = membership_get(g, user_id, room, &found, read, &listed, &e);
    return ok ? call_ok(g) : call_fail(g, "read_set", &e);
  }
  /* No $max: a conditional update (read < seq) that upserts when there is no document. If one exists
   * with read >= seq, the upsert collides on user_room, and the marker is read back instead. */
  bson_t *sel = BCON_NEW("user_id", BCON_UTF8(user_id), "room", BCON_UTF8(room), "read", "{", "$lt",
                         BCON_INT64(i64(seq)), "}");
  bson_t *upd = BCON_NEW("$set", "{", "read", BCON_INT64(i64(seq)), "}", "$setOnInsert", "{", "listed",
                         BCON_BOOL(false), "joined_at", BCON_INT64(0), "}");
  bool have = false;
  for (int attempt = 0; ok && !have && attempt < MEMBERSHIP_TRIES; attempt++) {
    if (update1(g->memberships, sel, upd, true, NULL, &e)) {
      *read = (uint64_t)i64(seq);
      have = true;
    } else if (e.code == DUPLICATE_KEY) {
      uint64_t cur;
      ok = membership_get(g, user_id, room, &found, &cur, &listed, &e);
      if (ok && found && cur >= (uint64_t)i64(seq)) { /* else it changed meanwhile: try again */
        *read = cur;
        have = true;
      }
    } else {
      ok = false;
    }
  }
  bson_destroy(upd);
  bson_destroy(sel);
  if (ok && !have) bson_set_error(&e, MONGOC_ERROR_COLLECTION, DUPLICATE_KEY, "read_set: kept colliding");
  return ok && have ? call_ok(g) : call_fail(g, "read_set", &e);
}

static int mg_forget_user(void *ctx, const char *user_id, bool prefix) {
  struct mg *g = ctx;
  if (!user_id || !user_id[0]) return STORE_EINVAL;
  char *upper = NULL; /* prefix: ids in [user_id, upper) */
  int rc = prefix ? store_prefix_end(user_id, &upper) : STORE_OK;
  if (rc) return rc;
  bson_error_t e;
  bson_t *sel = prefix ? BCON_NEW("user_id", "{", "$gte", BCON_UTF8(user_id), "$lt", BCON_UTF8(upper), "}")
                       : BCON_NEW("user_id", BCON_UTF8(user_id));
  bool ok = mongoc_collection_delete_many(g->memberships, sel, NULL, NULL, &e);
  bson_destroy(sel);
  if (ok) {
    sel = prefix ? BCON_NEW("_id", "{", "$gte", BCON_UTF8(user_id), "$lt", BCON_UTF8(upper), "}")
                 : BCON_NEW("_id", BCON_UTF8(user_id));
    ok = mongoc_collection_delete_many(g->users, sel, NULL, NULL, &e);
    bson_destroy(sel);
  }
  free(upper);
  return ok ? call_ok(g) : call_fail(g, "forget_user", &e);
}

static int room_cmp(const void *a, const void *b) {
  return strcmp(((const struct store_room *)a)->room, ((const struct store_room *)b)->room);
}

static int mg_rooms_of(void *ctx, const char *user_id, struct store_room_list *out) {
  struct mg *g = ctx;
  if (!user_id || !user_id[0] || !out) return STORE_EINVAL;
  size_t first = out->n;
  int ret = STORE_OK;
  bson_error_t e;
  /* 1. The listed rooms with their markers. */
  bson_t *filter = BCON_NEW("user_id", BCON_UTF8(user_id), "listed", BCON_BOOL(true));
  bson_t *opts =
      BCON_NEW("projection", "{", "_id", BCON_INT32(0), "room", BCON_INT32(1), "read", BCON_INT32(1), "}");
  mongoc_cursor_t *c = mongoc_collection_find_with_opts(g->memberships, filter, opts, NULL);
  const bson_t *doc;
  while (mongoc_cursor_next(c, &doc)) {
    bool ok = true;
    struct store_room r = {.room = get_str(doc, "room", &ok), .read = get_u64(doc, "read")};
    if (ok && !r.room) continue; /* not a document of ours */
    if (!ok || store_room_list_push(out, &r)) {
      free(r.room);
      ret = STORE_ENOMEM;
      break;
    }
  }
  if (!ret && mongoc_cursor_error(c, &e)) ret = call_fail(g, "rooms_of", &e);
  mongoc_cursor_destroy(c);
  bson_destroy(opts);
  bson_destroy(filter);
  size_t n = out->n - first;
  /* Sorted here, byte-wise like SQLite, whatever the server's collation. */
  if (!ret && n) qsort(out->v + first, n, sizeof *out->v, room_cmp);

  /* 2. Their heads, in one $in query on rooms. */
  if (!ret && n) {
    bson_t in_filter = BSON_INITIALIZER, id, arr;
    char key[16];
    BSON_APPEND_DOCUMENT_BEGIN(&in_filter, "_id", &id);
    BSON_APPEND_ARRAY_BEGIN(&id, "$in", &arr);
    for (size_t i = 0; i < n; i++) {
      const char *k;
      bson_uint32_to_string((uint32_t)i, &k, key, sizeof key);
      BSON_APPEND_UTF8(&arr, k, out->v[first + i].room);
    }
    bson_append_array_end(&id, &arr);
    bson_append_document_end(&in_filter, &id);
    opts = BCON_NEW("projection", "{", "_id", BCON_INT32(1), "head", BCON_INT32(1), "}");
    c = mongoc_collection_find_with_opts(g->rooms, &in_filter, opts, NULL);
    while (mongoc_cursor_next(c, &doc)) {
      bson_iter_t it;
      if (!bson_iter_init_find(&it, doc, "_id") || !BSON_ITER_HOLDS_UTF8(&it)) continue;
      struct store_room k = {.room = (char *)bson_iter_utf8(&it, NULL)};
      struct store_room *r = bsearch(&k, out->v + first, n, sizeof *out->v, room_cmp);
      if (r) r->head = get_u64(doc, "head");
    }
    if (mongoc_cursor_error(c, &e)) ret = call_fail(g, "rooms_of", &e);
    mongoc_cursor_destroy(c);
    bson_destroy(opts);
    bson_destroy(&in_filter);
  }
  if (ret) { /* leave out as it was */
    for (size_t i = first; i < out->n; i++) free(out->v[i].room);
    out->n = first;
    return ret;
  }
  return call_ok(g);
}

/* ---- retention ---- */

static bool delete_many(struct mg *g, bson_t *filter, uint64_t *deleted, bson_error_t *e) {
  bson_t reply;
  bool ok = mongoc_collection_delete_many(g->messages, filter, NULL, &reply, e);
  if (ok) *deleted += get_u64(&reply, "deletedCount");
  bson_destroy(&reply);
  bson_destroy(filter);
  return ok;
}

static bool retain_room(struct mg *g, const char *room, uint64_t ts_before, uint64_t keep_count,
                        uint64_t *deleted, bson_error_t *e) {
  uint64_t newest;
  if (!nth_newest_seq(g, room, 0, &newest, e)) return false;
  if (!newest) return true;
  if (keep_count) {
    uint64_t upto; /* the newest seq beyond the keep_count newest: it and older ones go */
    if (!nth_newest_seq(g, room, keep_count, &upto, e)) return false;
    if (upto && !delete_many(g,
                             BCON_NEW("room", BCON_UTF8(room), "seq", "{", "$lte", BCON_INT64(i64(upto)),
                                      "$lt", BCON_INT64(i64(newest)), "}"),
                             deleted, e))
      return false;
  }
  if (ts_before &&
      !delete_many(g,
                   BCON_NEW("room", BCON_UTF8(room), "ts", "{", "$lt", BCON_INT64(i64(ts_before)), "}", "seq",
                            "{", "$lt", BCON_INT64(i64(newest)), "}"),
                   deleted, e))
    return false;
  return true;
}

static int mg_retain(void *ctx, const char *pattern, uint64_t ts_before, uint64_t keep_count,
                     uint64_t *deleted) {
  struct mg *g = ctx;
  if (!pattern || !deleted) return STORE_EINVAL;
  *deleted = 0;
  if (!ts_before && !keep_count) return STORE_OK;
  /* The rooms are the ones ever appended to (rooms collection); the glob is applied here, exactly as
   * the SQLite backend does, rather than translated to a $regex. Names are collected first so that no
   * cursor is open across the deletes. */
  bson_t filter = BSON_INITIALIZER;
  bson_t *opts =
      BCON_NEW("projection", "{", "_id", BCON_INT32(1), "}", "sort", "{", "_id", BCON_INT32(1), "}");
  mongoc_cursor_t *c = mongoc_collection_find_with_opts(g->rooms, &filter, opts, NULL);
  char **rooms = NULL;
  size_t nrooms = 0, cap = 0;
  int ret = STORE_OK;
  const bson_t *doc;
  while (mongoc_cursor_next(c, &doc)) {
    bson_iter_t it;
    if (!bson_iter_init_find(&it, doc, "_id") || !BSON_ITER_HOLDS_UTF8(&it)) continue;
    const char *room = bson_iter_utf8(&it, NULL);
    if (!config_glob_match(pattern, room)) continue;
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
  bson_error_t e;
  if (!ret && mongoc_cursor_error(c, &e)) ret = call_fail(g, "retain", &e);
  mongoc_cursor_destroy(c);
  bson_destroy(opts);
  for (size_t i = 0; !ret && i < nrooms; i++)
    if (!retain_room(g, rooms[i], ts_before, keep_count, deleted, &e)) ret = call_fail(g, "retain", &e);
  for (size_t i = 0; i < nrooms; i++) free(rooms[i]);
  free(rooms);
  return ret ? ret : call_ok(g);
}

const struct store_backend store_backend_mongo = {
    .name = "mongo",
    .open = mg_open,
    .close = mg_close,
    .append = mg_append,
    .read = mg_read,
    .head = mg_head,
    .set_last_seen = mg_set_last_seen,
    .get_last_seen = mg_get_last_seen,
    .retain = mg_retain,
    .member_set = mg_member_set,
    .read_set = mg_read_set,
    .rooms_of = mg_rooms_of,
    .forget_user = mg_forget_user,
};
