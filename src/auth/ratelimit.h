/* ratelimit: token buckets, keyed bucket tables, strike counting and per-key connection counts for the
 * abuse limits of docs/security.md. Pure: the caller passes a millisecond clock (monotonic), so tests
 * drive time. Not thread-safe: the loop thread owns them.
 *
 * Use: one struct rl_bucket per connection and class (send, join, typing) inside the connection; one
 * rl_table per shared class (send per user, send per IP, connect per IP); one rl_strikes per connection;
 * one rl_conns for the per-IP connection cap. A take that returns > 0 is a rejection: reply
 * `rate_limited` with retry_after = that value, and rl_strike() the connection; when rl_strike() returns
 * true close it with 4029. The rate (struct config_rate) is passed on every call, so a reload applies at
 * once; n = 0 means "no limit". */
#ifndef PARLEY_AUTH_RATELIMIT_H
#define PARLEY_AUTH_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

/* A bucket that starts full; zero-initialized (calloc, = {0}) is a full bucket. */
struct rl_bucket {
  int64_t debt; /* tokens used and not yet refilled, in units of 1/per_ms token */
  int64_t last; /* ms of the last take */
};

/* Take one token at now_ms. Returns 0 (allowed) or the ms to wait until a token is available (> 0);
 * a rejected take costs nothing. */
int64_t rl_bucket_take(struct rl_bucket *b, const struct config_rate *r, int64_t now_ms);
/* true when the bucket is full at now_ms (it can be forgotten). */
bool rl_bucket_idle(const struct rl_bucket *b, const struct config_rate *r, int64_t now_ms);

/* Buckets by key (user id, IP text), at most max entries: a full table forgets its least recently used
 * entry. Entries whose bucket is full again are dropped as takes go by. Lookups are O(1) (uthash). */
struct rl_table;
struct rl_table *rl_table_new(size_t max);
void rl_table_free(struct rl_table *t);
/* rl_bucket_take on key's bucket (created full). 0 or retry-after ms, as rl_bucket_take; -1 on out of
 * memory (the caller lets the event through: a limiter that fails must not lock everyone out). */
int64_t rl_table_take(struct rl_table *t, const char *key, const struct config_rate *r, int64_t now_ms);
size_t rl_table_count(const struct rl_table *t);
/* Drop every entry whose bucket is full at now_ms (e.g. from a 10 s timer); returns how many. */
size_t rl_table_expire(struct rl_table *t, const struct config_rate *r, int64_t now_ms);

/* Graded response: n rejections within window_ms -> true ("close the connection with 4029"), then the count
 * starts again. Estimated in O(1) like a sliding window: the previous fixed window's count, weighted by the
 * part of it still inside the last window_ms, plus the current window's. n <= 0: never. Zero-initialized
 * is empty. */
struct rl_strikes {
  int64_t start; /* ms: start of the current fixed window */
  int64_t prev;  /* strikes in the previous window */
  int64_t cur;   /* strikes in the current window */
};
bool rl_strike(struct rl_strikes *s, int64_t n, int64_t window_ms, int64_t now_ms);

/* Concurrent connections per key (client IP). */
struct rl_conns;
struct rl_conns *rl_conns_new(void);
void rl_conns_free(struct rl_conns *c);
/* Count one more connection of key unless it has max already (max <= 0: no cap). Returns 0, -EBUSY (at
 * the cap: refuse the handshake) or -ENOMEM. */
int rl_conns_acquire(struct rl_conns *c, const char *key, int64_t max);
/* The connection of a successful rl_conns_acquire ended. */
void rl_conns_release(struct rl_conns *c, const char *key);
int64_t rl_conns_count(const struct rl_conns *c, const char *key);

#endif
