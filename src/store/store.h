/* store: the loop-facing storage interface. Requests go through bounded queues to two threads — a
 * writer (appends in group-committed batches, last-seen updates, retention) and a reader (history,
 * heads, last-seen reads) — each with its own backend connection (backend.h). Completions come back
 * to the loop thread through one uv_async, in submission order per thread.
 *
 * Ownership: the caller allocates a request (usually embedded in its own struct), fills it and
 * submits it; the store owns it until it calls req->done on the loop thread, which hands it back. */
#ifndef PARLEY_STORE_STORE_H
#define PARLEY_STORE_STORE_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "config.h"
#include "store/backend.h"

enum store_req_kind {
  STORE_REQ_APPEND,        /* writer: sequence and store u.append */
  STORE_REQ_LAST_SEEN_SET, /* writer */
  STORE_REQ_RETAIN,        /* writer */
  STORE_REQ_READ,          /* reader: u.read → u.read.out */
  STORE_REQ_HEAD,          /* reader: u.head.room → u.head.seq */
  STORE_REQ_LAST_SEEN_GET, /* reader */
  STORE_REQ_MEMBER_SET,    /* writer: u.member */
  STORE_REQ_READ_SET,      /* writer: u.marker → u.marker.read */
  STORE_REQ_ROOMS,         /* writer (ordered after membership changes): u.rooms.user_id → u.rooms.out */
  STORE_REQ_FORGET_USER,   /* writer: u.forget.user_id's (or, with prefix, every such user's) rows go */
};

/* store_submit's refusals; negative errno values like enum store_err (see the table in backend.h). */
#define STORE_EOVERLOADED (-ENOBUFS)   /* submit: the queue is full */
#define STORE_ECLOSED     (-ESHUTDOWN) /* submit: the store is shutting down */

struct store_req {
  enum store_req_kind kind;
  void (*done)(struct store_req *req); /* loop thread; the caller owns req again */
  int err;                             /* result: 0 or enum store_err (a negative errno) */
  char errmsg[160];
  struct store_req *next; /* queue link (store-private) */
  union {
    struct store_append append;
    struct {
      char *room; /* owned by the request's owner */
      uint64_t after, before;
      size_t limit;
      bool newest;
      struct store_msg_list out; /* filled by the reader; the owner frees it */
    } read;
    struct {
      char *room;
      uint64_t seq;
    } head;
    struct {
      char *user_id;
      uint64_t ts;
    } last_seen;
    struct {
      char *pattern;
      uint64_t ts_before, keep_count, deleted;
    } retain;
    struct {
      char *user_id, *room;
      bool member;
    } member;
    struct {
      char *user_id, *room;
      uint64_t seq, read;
    } marker;
    struct {
      char *user_id;
      struct store_room_list out; /* filled by the reader; the owner frees it */
    } rooms;
    struct {
      char *user_id;
      bool prefix;
    } forget;
  } u;
};

struct store;

/* Open the configured backend (once per thread: writer, reader and, for SQLite, checkpoints) and start the
 * threads. NULL on failure with a clear reason in err (e.g. the MongoDB server cannot be reached). */
struct store *store_open(uv_loop_t *loop, const struct config *cfg, char *err, size_t errlen);
/* Submit a request. Returns 0 (done will be called) or STORE_EOVERLOADED / STORE_ECLOSED (done will
 * not be called; the caller still owns req). Loop thread only. */
int store_submit(struct store *s, struct store_req *req);
/* Appends submitted and not completed yet. */
size_t store_pending_appends(const struct store *s);

/* Counters since store_open (any thread may be updating them; the values are read atomically). */
struct store_stats {
  uint64_t commits;      /* append batches the writer ran (one transaction / bulk write each) */
  uint64_t appended;     /* append requests in those batches */
  uint64_t checkpoints;  /* checkpoints run (SQLite) */
  uint64_t wal_restarts; /* the writer's copies of the rest of the WAL at store.sqlite.wal_reset_pages */
  uint64_t append_fails; /* batches that failed */
  uint64_t grouped;      /* membership, read-marker and last-seen writes committed several to a transaction */
};
void store_stats(const struct store *s, struct store_stats *out);
/* Finish every queued request (their done callbacks run, on this thread, before this returns), stop
 * the threads and close the backends. Loop thread; the loop must then run once to close the async
 * handle before s is freed by store_free. */
void store_close(struct store *s);
void store_free(struct store *s);

#endif
