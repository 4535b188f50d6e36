/* hooks/wordset: see wordset.h. The set is one block: an open-addressing table of offsets into a pool of
 * length-prefixed lowercase words, kept at most half full. */
#include "hooks/wordset.h"

#include <stdint.h>
#include <string.h>

struct wordset {
  uint32_t nslots; /* power of two, >= 2 * max_words */
  uint32_t nwords;
  uint32_t max_words; /* sized for */
  uint32_t pool_len;
  uint32_t pool_cap;
  uint32_t slots[]; /* offset + 1 into pool (0 = empty); the pool follows the slots */
};

static uint32_t slots_for(size_t nwords) {
  uint32_t nslots = 8;
  while (nslots < 2 * (uint32_t)nwords) nslots *= 2;
  return nslots;
}

static const unsigned char *pool_of(const struct wordset *ws) {
  return (const unsigned char *)&ws->slots[ws->nslots];
}

static bool word_byte(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c >= 0x80;
}
static unsigned char lower(unsigned char c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }

static uint32_t hash(const unsigned char *w, size_t n) {
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < n; i++) h = (h ^ lower(w[i])) * 16777619u;
  return h;
}

static bool has(const struct wordset *ws, const unsigned char *w, size_t n) {
  if (!ws->nwords || n > WORDSET_MAX_WORD) return false;
  const unsigned char *pool = pool_of(ws);
  for (uint32_t i = hash(w, n) & (ws->nslots - 1);; i = (i + 1) & (ws->nslots - 1)) {
    uint32_t off = ws->slots[i];
    if (!off) return false;
    const unsigned char *e = pool + off - 1;
    if (e[0] != n) continue;
    size_t k = 0;
    while (k < n && e[1 + k] == lower(w[k])) k++;
    if (k == n) return true;
  }
}

size_t wordset_size(size_t nwords, size_t chars) {
  if (nwords > WORDSET_MAX_WORDS || chars > WORDSET_MAX_POOL || chars + nwords > WORDSET_MAX_POOL) return 0;
  return sizeof(struct wordset) + slots_for(nwords) * sizeof(uint32_t) + chars + nwords;
}

struct wordset *wordset_init(void *mem, size_t nwords, size_t chars) {
  struct wordset *ws = mem;
  ws->nslots = slots_for(nwords);
  ws->nwords = 0;
  ws->max_words = (uint32_t)nwords;
  ws->pool_len = 0;
  ws->pool_cap = (uint32_t)(chars + nwords);
  memset(ws->slots, 0, ws->nslots * sizeof(uint32_t));
  return ws;
}

bool wordset_add(struct wordset *ws, const char *word, size_t n) {
  const unsigned char *w = (const unsigned char *)word;
  if (!n || n > WORDSET_MAX_WORD || has(ws, w, n)) return false;
  if (ws->nwords >= ws->max_words || ws->pool_cap - ws->pool_len < n + 1) return false;
  unsigned char *p = (unsigned char *)pool_of(ws);
  uint32_t off = ws->pool_len;
  p[off] = (unsigned char)n;
  for (size_t k = 0; k < n; k++) p[off + 1 + k] = lower(w[k]);
  ws->pool_len += (uint32_t)n + 1;
  uint32_t s = hash(w, n) & (ws->nslots - 1);
  while (ws->slots[s]) s = (s + 1) & (ws->nslots - 1);
  ws->slots[s] = off + 1;
  ws->nwords++;
  return true;
}

bool wordset_has(const struct wordset *ws, const char *w, size_t n) {
  return has(ws, (const unsigned char *)w, n);
}

size_t wordset_count(const struct wordset *ws) { return ws->nwords; }

bool wordset_find(const struct wordset *ws, const char *text, size_t n, size_t from, size_t *start,
                  size_t *end) {
  const unsigned char *t = (const unsigned char *)text;
  for (size_t i = from; i < n;) {
    if (!word_byte(t[i])) {
      i++;
      continue;
    }
    size_t s = i;
    while (i < n && word_byte(t[i])) i++;
    if (has(ws, t + s, i - s)) {
      *start = s;
      *end = i;
      return true;
    }
  }
  return false;
}

size_t wordset_mask(const struct wordset *ws, const char *text, size_t n, const char *mask, size_t mask_len,
                    wordset_emit_fn emit, void *ud) {
  const unsigned char *t = (const unsigned char *)text;
  size_t count = 0, done = 0;
  for (size_t i = 0; i < n;) {
    if (!word_byte(t[i])) {
      i++;
      continue;
    }
    size_t s = i;
    while (i < n && word_byte(t[i])) i++;
    if (!has(ws, t + s, i - s)) continue;
    emit(ud, text + done, s - done);
    for (size_t k = s; k < i; k++)
      if ((t[k] & 0xc0) != 0x80) emit(ud, mask, mask_len); /* one per UTF-8 character */
    done = i;
    count++;
  }
  if (count) emit(ud, text + done, n - done);
  return count;
}
