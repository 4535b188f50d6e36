/* store backends: the blocking half of the storage interface. Each backend (sqlite.c, mongo.c, postgres.c)
 * implements struct store_backend; every function here runs on a store thread, never on the loop
 * thread, and one ctx is used by one thread at a time (the writer and the reader each open their
 * own ctx). store.c wraps these in queues and completions for the loop (store.h). */
#ifndef PARLEY_STORE_BACKEND_H
#define PARLEY_STORE_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "util/errors.h"

/* One stored message. Strings are NUL-terminated and owned by whoever filled the struct
 * (store_msg_clear frees them). body is the compact JSON text of the message body. */
struct store_msg {
  char *room;
  uint64_t seq;
  char *mid;
  uint64_t ts; /* ms since the epoch */
  char *user_id;
  char *user_name;
  char *cmid;
  char *body;
};

/* One append request, sequenced by the backend inside the batch's transaction:
 *  - if a message with (msg.user_id, msg.cmid) is already stored (or earlier in this batch), the
 *    item becomes a duplicate: dup = true and msg.seq/mid/ts/room are overwritten with the stored
 *    original's (free the old strings first), nothing is written;
 *  - else msg.seq = (highest seq of msg.room) + 1 and the message is written.
 * msg.mid and msg.ts are chosen by the caller before the append. */
struct store_append {
  struct store_msg msg;
  bool dup;
};

struct store_msg_list {
  struct store_msg *v;
  size_t n, cap;
};

/* One entry of a user's room list. */
struct store_room {
  char *room;    /* owned */
  uint64_t head; /* the room's highest seq (0: none) */
  uint64_t read; /* the user's read marker (0: nothing read) */
};

struct store_room_list {
  struct store_room *v;
  size_t n, cap;
};

/* Results of the storage interface: 0, or one of these negative errno values (the rule for every
 * function across modules, src/util/errors.h). The names say what the store means by them:
 *   STORE_EUNAVAILABLE  -EAGAIN     the server/file cannot be reached or written now; retry later
 *   STORE_EINVAL        -EINVAL     bad argument
 *   STORE_ENOMEM        -ENOMEM     out of memory
 *   STORE_ECORRUPT      -EPROTO     damaged data or unknown schema version; needs an operator
 *   STORE_EOVERLOADED   -ENOBUFS    store_submit: the append queue is full (store.h)
 *   STORE_ECLOSED       -ESHUTDOWN  store_submit: the store is shutting down (store.h)
 * They are distinct, so a submit refusal stored in store_req.err (presence.c does) is never mistaken
 * for a backend failure. */
enum store_err {
  STORE_OK = 0,
  STORE_EUNAVAILABLE = -EAGAIN,
  STORE_EINVAL = -EINVAL,
  STORE_ENOMEM = -ENOMEM,
  STORE_ECORRUPT = -EPROTO,
};

struct store_backend {
  const char *name; /* "sqlite", "mongo", "postgres" */
  /* Open (create schema / indexes / migrate). err gets a clear reason on failure. */
  int (*open)(const struct config *cfg, void **ctx, char *err, size_t errlen);
  void (*close)(void *ctx);
  /* Sequence and write items[0..n) in one transaction / bulk write (group commit). On failure
   * nothing of the batch is written, and the items are left as given (seq/dup untouched). One invalid
   * item (no room, mid, user_id, cmid or body) fails the whole batch with STORE_EINVAL. */
  int (*append)(void *ctx, struct store_append *items, size_t n, char *err, size_t errlen);
  /* Messages of room with after < seq < before (before == 0: no upper bound), at most limit of them,
   * appended to out in ascending seq order. newest: take the highest seqs of the range (for paging
   * backwards) instead of the lowest — the output is ascending either way. limit 0 returns nothing. */
  int (*read)(void *ctx, const char *room, uint64_t after, uint64_t before, size_t limit, bool newest,
              struct store_msg_list *out);
  /* Highest seq stored for room (0: none). */
  int (*head)(void *ctx, const char *room, uint64_t *seq);
  /* Last-seen time of a user (ms; 0: never). */
  int (*set_last_seen)(void *ctx, const char *user_id, uint64_t ts);
  int (*get_last_seen)(void *ctx, const char *user_id, uint64_t *ts);
  /* Retention: delete messages of rooms whose name matches the glob pattern ("*" matches any run of
   * characters) that are older than ts_before (ms; 0: no age limit) or not among the newest keep_count
   * of their room (0: no count limit). Never deletes a room's newest message, so head survives.
   * *deleted gets the number of messages removed. */
  int (*retain)(void *ctx, const char *pattern, uint64_t ts_before, uint64_t keep_count, uint64_t *deleted);
  /* Persistent membership: add (member = true; keeps an existing entry and its read marker) or remove
   * (member = false) room from the user's room list. Removing keeps the read marker (docs/storage.md). */
  int (*member_set)(void *ctx, const char *user_id, const char *room, bool member);
  /* Move the user's read marker of room to seq if that is higher (never backwards). The room need not
   * be in the user's list. *read gets the marker after the update. */
  int (*read_set)(void *ctx, const char *user_id, const char *room, uint64_t seq, uint64_t *read);
  /* The user's room list, sorted by room name, with each room's head and the user's read marker;
   * appended to out (left as it was on failure). */
  int (*rooms_of)(void *ctx, const char *user_id, struct store_room_list *out);
  /* Forget a user whose identity has ended (a guest whose session ended): delete its room list, read
   * markers and last-seen (every row member_set, read_set and set_last_seen wrote for user_id); its
   * messages stay. prefix: every user whose id starts with user_id (byte-wise; its last byte must not be
   * 0xFF), e.g. "guest-" at start-up for guests of an earlier run. No rows: success. */
  int (*forget_user)(void *ctx, const char *user_id, bool prefix);
  /* Optional. The writer calls it after each append batch has been completed (its acks are out), for
   * work that should not delay them (SQLite: moving the inbox into the messages table). */
  int (*after_batch)(void *ctx);
  /* Optional (writer): bracket a run of small writes (member_set, read_set, set_last_seen) in one
   * transaction: group(ctx, true) before the first, group(ctx, false) after the last. Each write still
   * returns its own result; an error from the end means the run's writes may not have been kept. */
  int (*group)(void *ctx, bool begin);
  /* Optional (NULL: the backend needs no checkpoints). Pages in the write-ahead log after this ctx's last
   * commit (read on the thread that uses ctx). */
  int (*wal_pages)(void *ctx);
  /* Copy the write-ahead log into the database, from a ctx of its own: hard = false never blocks the
   * writer; hard = true waits for it and empties the log. *wal_left gets the pages not yet copied. */
  int (*checkpoint)(void *ctx, bool hard, int *wal_left);
};

/* Format a message into err (errlen bytes; err NULL or errlen 0: nothing is written). */
__attribute__((format(printf, 3, 4))) void store_seterr(char *err, size_t errlen, const char *fmt, ...);
/* forget_user's prefix form: *end gets the first id after every id that starts with prefix (malloc'd, the
 * caller frees it). STORE_EINVAL when prefix ends in byte 0xFF (no such id), STORE_ENOMEM. */
int store_prefix_end(const char *prefix, char **end);

extern const struct store_backend store_backend_sqlite;
extern const struct store_backend store_backend_mongo;
extern const struct store_backend store_backend_postgres;

/* The backend store.backend names (sqlite, mongo, postgres). */
const struct store_backend *store_backend_for(const struct config *cfg);

/* Record an append's result in it: its seq, and for a duplicate the original's room, mid and ts (takes
 * *room and *mid, setting them to NULL; frees the item's own). Both backends settle a batch with it. */
void store_append_settle(struct store_append *it, bool dup, uint64_t seq, char **room, char **mid,
                         uint64_t ts);

void store_msg_clear(struct store_msg *m);
/* Deep copy. Returns 0 or STORE_ENOMEM. */
int store_msg_copy(struct store_msg *dst, const struct store_msg *src);
/* Both push functions take ownership of *m / *r: moved into the list, or freed on STORE_ENOMEM. */
int store_msg_list_push(struct store_msg_list *l, struct store_msg *m);
void store_msg_list_free(struct store_msg_list *l);
int store_room_list_push(struct store_room_list *l, struct store_room *r);
void store_room_list_free(struct store_room_list *l);

#endif
