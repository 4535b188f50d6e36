/* hooks/kvstore: see kvstore.h. A chained hash table (FNV-1a, power-of-two buckets, doubled when there are
 * as many entries as buckets); each entry is one allocation holding its key, plus one for a string value. */
#include "hooks/kvstore.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct kv_ent {
  struct kv_ent *next;
  int type;
  int64_t i;
  double f;
  char *s; /* owned; NUL-terminated */
  size_t slen, klen;
  char key[]; /* NUL-terminated */
};

struct kvstore {
  struct kv_ent **b;
  size_t nb, n, bytes;
};

static uint64_t kv_hash(const char *k, size_t n) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)k[i]) * 1099511628211ull;
  return h;
}

/* The link that points at key k, or at the end of its bucket's chain; NULL while there are no buckets. */
static struct kv_ent **kv_find(const struct kvstore *kv, const char *k, size_t n) {
  if (!kv->nb) return NULL;
  struct kv_ent **pp = &kv->b[kv_hash(k, n) & (kv->nb - 1)];
  for (; *pp; pp = &(*pp)->next)
    if ((*pp)->klen == n && !memcmp((*pp)->key, k, n)) return pp;
  return pp;
}

static void kv_free_ent(struct kvstore *kv, struct kv_ent *e) {
  kv->bytes -= e->klen + e->slen + sizeof *e;
  kv->n--;
  free(e->s);
  free(e);
}

static int kv_grow(struct kvstore *kv) {
  size_t nb = kv->nb ? kv->nb * 2 : 64;
  struct kv_ent **b = calloc(nb, sizeof *b);
  if (!b) return -ENOMEM;
  for (size_t i = 0; i < kv->nb; i++)
    for (struct kv_ent *e = kv->b[i], *next; e; e = next) {
      next = e->next;
      struct kv_ent **pp = &b[kv_hash(e->key, e->klen) & (nb - 1)];
      e->next = *pp;
      *pp = e;
    }
  free(kv->b);
  kv->b = b;
  kv->nb = nb;
  return 0;
}

struct kvstore *kvstore_new(void) {
  return calloc(1, sizeof(struct kvstore));
}

void kvstore_free(struct kvstore *kv) {
  if (!kv) return;
  for (size_t i = 0; i < kv->nb; i++)
    while (kv->b[i]) {
      struct kv_ent *e = kv->b[i];
      kv->b[i] = e->next;
      kv_free_ent(kv, e);
    }
  free(kv->b);
  free(kv);
}

bool kvstore_get(const struct kvstore *kv, const char *k, size_t n, struct kvstore_value *v) {
  struct kv_ent **pp = kv_find(kv, k, n);
  if (!pp || !*pp) return false;
  const struct kv_ent *e = *pp;
  v->type = (enum kvstore_type)e->type;
  v->i = e->i;
  v->f = e->f;
  v->s = e->s;
  v->slen = e->slen;
  return true;
}

void kvstore_del(struct kvstore *kv, const char *k, size_t n) {
  struct kv_ent **pp = kv_find(kv, k, n);
  if (pp && *pp) {
    struct kv_ent *e = *pp;
    *pp = e->next;
    kv_free_ent(kv, e);
  }
}

int kvstore_set(struct kvstore *kv, const char *k, size_t n, const struct kvstore_value *v) {
  if (n > KVSTORE_MAX_KEY) return KVSTORE_E_KEY;
  size_t slen = v->type == KVSTORE_STRING ? v->slen : 0;
  if (slen > KVSTORE_MAX_VALUE) return KVSTORE_E_VALUE;
  struct kv_ent **pp = kv_find(kv, k, n);
  struct kv_ent *e = pp ? *pp : NULL;
  size_t old = e ? e->slen : 0;
  if ((!e && (kv->n >= KVSTORE_MAX_KEYS || kv->bytes + n + slen + sizeof *e > KVSTORE_MAX_BYTES)) ||
      (e && kv->bytes - old + slen > KVSTORE_MAX_BYTES))
    return KVSTORE_E_FULL;
  char *copy = NULL;
  if (v->type == KVSTORE_STRING) {
    if (!(copy = malloc(slen + 1))) return -ENOMEM;
    memcpy(copy, v->s, slen);
    copy[slen] = 0;
  }
  if (!e) {
    if (kv->n >= kv->nb && kv_grow(kv)) {
      free(copy);
      return -ENOMEM;
    }
    pp = kv_find(kv, k, n);
    if (!(e = calloc(1, sizeof *e + n + 1))) {
      free(copy);
      return -ENOMEM;
    }
    memcpy(e->key, k, n);
    e->klen = n;
    *pp = e;
    kv->n++;
    kv->bytes += n + sizeof *e;
  }
  free(e->s);
  kv->bytes = kv->bytes - old + slen;
  e->s = copy;
  e->slen = slen;
  e->type = v->type;
  if (v->type == KVSTORE_INT)
    e->i = v->i;
  else if (v->type == KVSTORE_FLOAT)
    e->f = v->f;
  else if (v->type == KVSTORE_BOOL)
    e->i = v->i != 0;
  return 0;
}

int kvstore_incr(struct kvstore *kv, const char *k, size_t n, int64_t by, int64_t *out) {
  struct kvstore_value cur;
  int64_t v = 0;
  if (kvstore_get(kv, k, n, &cur)) {
    if (cur.type != KVSTORE_INT) return KVSTORE_E_TYPE;
    v = cur.i;
  }
  struct kvstore_value sum = {.type = KVSTORE_INT, .i = (int64_t)((uint64_t)v + (uint64_t)by)};
  int r = kvstore_set(kv, k, n, &sum);
  if (!r) *out = sum.i;
  return r;
}

size_t kvstore_count(const struct kvstore *kv) { return kv->n; }
size_t kvstore_bytes(const struct kvstore *kv) { return kv->bytes; }

bool kvstore_next(const struct kvstore *kv, struct kvstore_iter *it, const char **k, size_t *n) {
  const struct kv_ent *e = it->ent ? ((const struct kv_ent *)it->ent)->next : NULL;
  while (!e && it->bucket < kv->nb) e = kv->b[it->bucket++];
  it->ent = e;
  if (!e) return false;
  *k = e->key;
  *n = e->klen;
  return true;
}
