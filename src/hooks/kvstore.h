/* hooks/kvstore: the bounded in-memory key-value store behind parley.kv (docs/hooks.md), one per script name.
 *
 * Keys are byte strings (any bytes, NUL included); values are 64-bit integers, doubles, booleans or byte
 * strings. Bounds: at most KVSTORE_MAX_KEYS keys and KVSTORE_MAX_BYTES bytes in all, where an entry counts
 * its key, its string value and a fixed per-entry overhead; keys of at most KVSTORE_MAX_KEY bytes, string
 * values of at most KVSTORE_MAX_VALUE bytes. A set beyond a bound fails and changes nothing; nothing is
 * ever evicted.
 *
 * Ownership: kvstore_new returns a store the caller owns and frees with kvstore_free. The store copies the
 * keys and string values it is given (the caller keeps its own); a value read back (kvstore_get) or a key
 * seen through an iterator points into the store and stays valid only until the store is next changed.
 *
 * Pure C, no Lua: the Lua binding (lua.c) maps Lua values and errors onto this. Not thread-safe. */
#ifndef PARLEY_HOOKS_KVSTORE_H
#define PARLEY_HOOKS_KVSTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KVSTORE_MAX_KEYS  10000
#define KVSTORE_MAX_BYTES (4u << 20)
#define KVSTORE_MAX_KEY   256
#define KVSTORE_MAX_VALUE (64u << 10)

/* kvstore_set / kvstore_incr failures (0 = done); -ENOMEM when out of memory. */
#define KVSTORE_E_KEY   -1 /* key longer than KVSTORE_MAX_KEY */
#define KVSTORE_E_VALUE -2 /* string value longer than KVSTORE_MAX_VALUE */
#define KVSTORE_E_FULL  -3 /* would exceed KVSTORE_MAX_KEYS or KVSTORE_MAX_BYTES */
#define KVSTORE_E_TYPE  -4 /* kvstore_incr: the value is not an integer */

enum kvstore_type { KVSTORE_INT = 1, KVSTORE_FLOAT, KVSTORE_BOOL, KVSTORE_STRING };

struct kvstore_value {
  enum kvstore_type type;
  int64_t i;     /* KVSTORE_INT; KVSTORE_BOOL: 0 or 1 */
  double f;      /* KVSTORE_FLOAT */
  const char *s; /* KVSTORE_STRING: s[0..slen), NUL-terminated when read back */
  size_t slen;
};

struct kvstore; /* opaque */

/* An empty store, or NULL when out of memory. */
struct kvstore *kvstore_new(void);
/* Free the store and everything in it. NULL is fine. */
void kvstore_free(struct kvstore *kv);

/* Fill *v with the value of key k[0..n) and return true, or return false when there is none. */
bool kvstore_get(const struct kvstore *kv, const char *k, size_t n, struct kvstore_value *v);
/* Set key k[0..n) to *v (copied). 0, KVSTORE_E_KEY, KVSTORE_E_VALUE, KVSTORE_E_FULL or -ENOMEM; on failure
 * the store is unchanged. Replacing a value only checks the byte bound. */
int kvstore_set(struct kvstore *kv, const char *k, size_t n, const struct kvstore_value *v);
/* Remove key k[0..n), if there. */
void kvstore_del(struct kvstore *kv, const char *k, size_t n);
/* Add by to the integer at k[0..n) (0 when absent), wrapping around on overflow, and store the sum in *out.
 * 0, KVSTORE_E_TYPE (the value is not an integer), or kvstore_set's failures; on failure nothing changes. */
int kvstore_incr(struct kvstore *kv, const char *k, size_t n, int64_t by, int64_t *out);

size_t kvstore_count(const struct kvstore *kv); /* keys */
size_t kvstore_bytes(const struct kvstore *kv); /* as counted against KVSTORE_MAX_BYTES */

/* Iteration over the keys, in no particular order: zero an iterator, then call kvstore_next until it returns
 * false. The store must not change during an iteration. */
struct kvstore_iter {
  size_t bucket;
  const void *ent;
};
bool kvstore_next(const struct kvstore *kv, struct kvstore_iter *it, const char **k, size_t *n);

#endif
