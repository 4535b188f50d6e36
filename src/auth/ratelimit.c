/* ratelimit: see ratelimit.h. Integer arithmetic only: a bucket's debt is counted in units where one token
 * is per_ms units and the refill is n units per ms, so no division is needed except for retry-after. */
#include "auth/ratelimit.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Out of memory inside uthash must not exit the server: the add is then simply not done (checked with a
 * find after each add). */
#define HASH_NONFATAL_OOM 1
#include <uthash.h>

/* Capacity in units. n, burst <= 10^7 and per_ms <= 1 h keep every product far inside int64. */
static int64_t cap_units(const struct config_rate *r) { return r->burst * r->per_ms; }

static void refill(struct rl_bucket *b, const struct config_rate *r, int64_t now_ms) {
  int64_t dt = now_ms - b->last;
  if (dt <= 0 || b->debt <= 0) return;
  if (dt >= b->debt / r->n + 1)
    b->debt = 0;
  else
    b->debt -= dt * r->n;
}

int64_t rl_bucket_take(struct rl_bucket *b, const struct config_rate *r, int64_t now_ms) {
  if (!r || r->n <= 0 || r->per_ms <= 0) return 0;
  refill(b, r, now_ms);
  if (now_ms > b->last) b->last = now_ms;
  int64_t cap = cap_units(r);
  if (b->debt > cap) b->debt = cap; /* the rate shrank on reload */
  if (b->debt + r->per_ms <= cap) {
    b->debt += r->per_ms;
    return 0;
  }
  int64_t need = b->debt + r->per_ms - cap;
  return (need + r->n - 1) / r->n;
}

bool rl_bucket_idle(const struct rl_bucket *b, const struct config_rate *r, int64_t now_ms) {
  if (!r || r->n <= 0 || b->debt <= 0) return true;
  int64_t dt = now_ms - b->last;
  return dt > 0 && dt >= (b->debt + r->n - 1) / r->n;
}

/* ---- keyed table ---- */

struct rl_entry {
  UT_hash_handle hh;
  struct rl_entry *prev, *next; /* LRU list: head = least recently used */
  struct rl_bucket b;
  char key[]; /* NUL-terminated */
};

struct rl_table {
  struct rl_entry *hash;
  struct rl_entry *head, *tail;
  size_t n, max;
};

struct rl_table *rl_table_new(size_t max) {
  struct rl_table *t = calloc(1, sizeof *t);
  if (t) t->max = max ? max : 1;
  return t;
}

static void unlink_entry(struct rl_table *t, struct rl_entry *e) {
  if (e->prev)
    e->prev->next = e->next;
  else
    t->head = e->next;
  if (e->next)
    e->next->prev = e->prev;
  else
    t->tail = e->prev;
  e->prev = e->next = NULL;
}

static void append_entry(struct rl_table *t, struct rl_entry *e) {
  e->prev = t->tail;
  e->next = NULL;
  if (t->tail)
    t->tail->next = e;
  else
    t->head = e;
  t->tail = e;
}

static void drop_entry(struct rl_table *t, struct rl_entry *e) {
  HASH_DEL(t->hash, e);
  unlink_entry(t, e);
  free(e);
  t->n--;
}

void rl_table_free(struct rl_table *t) {
  if (!t) return;
  while (t->head) drop_entry(t, t->head);
  free(t);
}

size_t rl_table_count(const struct rl_table *t) { return t ? t->n : 0; }

int64_t rl_table_take(struct rl_table *t, const char *key, const struct config_rate *r, int64_t now_ms) {
  if (!r || r->n <= 0) return 0;
  /* Amortized expiry: the least recently used entries go once their buckets are full again. */
  for (int i = 0; i < 2 && t->head && rl_bucket_idle(&t->head->b, r, now_ms); i++) drop_entry(t, t->head);
  struct rl_entry *e;
  size_t klen = strlen(key);
  HASH_FIND(hh, t->hash, key, klen, e);
  if (!e) {
    if (t->n >= t->max) drop_entry(t, t->head);
    if (!(e = calloc(1, sizeof *e + klen + 1))) return -1;
    memcpy(e->key, key, klen + 1);
    HASH_ADD(hh, t->hash, key[0], klen, e);
    struct rl_entry *check;
    HASH_FIND(hh, t->hash, key, klen, check);
    if (check != e) {
      free(e);
      return -1;
    }
    t->n++;
    append_entry(t, e);
  } else {
    unlink_entry(t, e);
    append_entry(t, e);
  }
  return rl_bucket_take(&e->b, r, now_ms);
}

size_t rl_table_expire(struct rl_table *t, const struct config_rate *r, int64_t now_ms) {
  size_t dropped = 0;
  for (struct rl_entry *e = t->head, *next; e; e = next) {
    next = e->next;
    if (rl_bucket_idle(&e->b, r, now_ms)) {
      drop_entry(t, e);
      dropped++;
    }
  }
  return dropped;
}

/* ---- strikes ---- */

bool rl_strike(struct rl_strikes *s, int64_t n, int64_t window_ms, int64_t now_ms) {
  if (n <= 0 || window_ms <= 0) return false;
  if (!s->prev && !s->cur) s->start = now_ms; /* empty: the window starts now */
  int64_t elapsed = now_ms - s->start;
  if (elapsed < 0) elapsed = 0; /* the clock went backwards */
  if (elapsed >= window_ms) {
    int64_t k = elapsed / window_ms;
    s->prev = k == 1 ? s->cur : 0;
    s->cur = 0;
    s->start += k * window_ms;
    elapsed -= k * window_ms;
  }
  s->cur++;
  if (s->prev * (window_ms - elapsed) + s->cur * window_ms < n * window_ms) return false;
  *s = (struct rl_strikes){0};
  return true;
}

/* ---- connection counts ---- */

struct rl_count {
  UT_hash_handle hh;
  int64_t n;
  char key[];
};

struct rl_conns {
  struct rl_count *hash;
};

struct rl_conns *rl_conns_new(void) {
  return calloc(1, sizeof(struct rl_conns));
}

void rl_conns_free(struct rl_conns *c) {
  if (!c) return;
  struct rl_count *e, *tmp;
  HASH_ITER(hh, c->hash, e, tmp) {
    HASH_DEL(c->hash, e);
    free(e);
  }
  free(c);
}

static struct rl_count *find_count(const struct rl_conns *c, const char *key) {
  struct rl_count *e;
  HASH_FIND(hh, c->hash, key, strlen(key), e);
  return e;
}

int rl_conns_acquire(struct rl_conns *c, const char *key, int64_t max) {
  struct rl_count *e = find_count(c, key);
  if (e && max > 0 && e->n >= max) return -EBUSY;
  if (!e) {
    size_t klen = strlen(key);
    if (!(e = calloc(1, sizeof *e + klen + 1))) return -ENOMEM;
    memcpy(e->key, key, klen + 1);
    HASH_ADD(hh, c->hash, key[0], klen, e);
    if (find_count(c, key) != e) {
      free(e);
      return -ENOMEM;
    }
  }
  e->n++;
  return 0;
}

void rl_conns_release(struct rl_conns *c, const char *key) {
  struct rl_count *e = find_count(c, key);
  if (!e) return;
  if (--e->n <= 0) {
    HASH_DEL(c->hash, e);
    free(e);
  }
}

int64_t rl_conns_count(const struct rl_conns *c, const char *key) {
  struct rl_count *e = find_count(c, key);
  return e ? e->n : 0;
}
