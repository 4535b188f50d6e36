/* hooks/wordset: a set of whole words matched in one pass over a text (parley.wordset, docs/hooks.md).
 *
 * A word is a maximal run of ASCII letters, digits and bytes >= 0x80 (so UTF-8 letters join words); words
 * compare ASCII-case-insensitively (non-ASCII bytes compare exactly). Matching is linear in the text and
 * allocates nothing.
 *
 * Ownership: a set is one flat block of memory that the CALLER owns. Ask wordset_size for its size, allocate
 * it (aligned for uint32_t; malloc and Lua userdata are), wordset_init it, wordset_add the words, and free
 * the block the way it was allocated: the set holds no pointers, needs no destructor and keeps no reference
 * to the words added (they are copied, lowercased). Results point into the text the caller passed.
 *
 * Pure C, no Lua: the Lua binding (lua.c) checks its arguments, charges the script's budget, then calls
 * these. */
#ifndef PARLEY_HOOKS_WORDSET_H
#define PARLEY_HOOKS_WORDSET_H

#include <stdbool.h>
#include <stddef.h>

#define WORDSET_MAX_WORD  255         /* longest word a set holds, in bytes */
#define WORDSET_MAX_WORDS 1000000     /* most words a set is sized for */
#define WORDSET_MAX_POOL  (64u << 20) /* most bytes of words + one per word */

struct wordset; /* opaque */

/* Bytes of a set sized for up to nwords words of chars bytes in total (the sum of their lengths), or 0 when
 * that is more than WORDSET_MAX_WORDS words or WORDSET_MAX_POOL bytes (chars + nwords). */
size_t wordset_size(size_t nwords, size_t chars);

/* Make the block mem (wordset_size(nwords, chars) bytes) an empty set with room for those words. */
struct wordset *wordset_init(void *mem, size_t nwords, size_t chars);

/* Add the word w[0..n). Returns true if added; false if it is empty, longer than WORDSET_MAX_WORD, already in
 * the set (in any case), or the words added so far plus this one exceed what the set was sized for. */
bool wordset_add(struct wordset *ws, const char *w, size_t n);

/* Whether w[0..n) is in the set (ASCII-case-insensitively). w is compared as given: it is not split. */
bool wordset_has(const struct wordset *ws, const char *w, size_t n);

/* Number of distinct words in the set. */
size_t wordset_count(const struct wordset *ws);

/* The first word of t[from..n) (words delimited as above, from taken as a word boundary) that is in the
 * set: sets *start and *end (0-based, end exclusive) and returns true; false when there is none. */
bool wordset_find(const struct wordset *ws, const char *t, size_t n, size_t from, size_t *start, size_t *end);

/* Where wordset_mask writes the masked text; it may not return (Lua's buffer raises on a memory error:
 * wordset_mask holds no resources, so that is safe). */
typedef void (*wordset_emit_fn)(void *ud, const char *p, size_t n);

/* Mask every word of t[0..n) that is in the set: each is replaced by one copy of mask[0..mask_len) per UTF-8
 * character (byte not of the form 10xxxxxx). Returns the number of words masked. When that is > 0 the
 * masked text is passed to emit in pieces, in order; when it is 0 emit is never called (the text is
 * unchanged: use it as it is). */
size_t wordset_mask(const struct wordset *ws, const char *t, size_t n, const char *mask, size_t mask_len,
                    wordset_emit_fn emit, void *ud);

#endif
