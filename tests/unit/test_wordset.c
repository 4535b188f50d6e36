/* test_wordset: hooks/wordset without Lua — what a word is (boundaries, digits, UTF-8), ASCII-only case
 * folding, masking one mark per UTF-8 character, duplicates, and the size bounds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the four above, which it needs */

#include "hooks/wordset.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A set of the NULL-terminated words; free() it. */
static struct wordset *make(const char *const *words) {
  size_t n = 0, chars = 0;
  for (; words[n]; n++) chars += strlen(words[n]);
  size_t size = wordset_size(n, chars);
  assert_true(size > 0);
  struct wordset *ws = wordset_init(malloc(size), n, chars);
  assert_non_null(ws);
  for (size_t i = 0; words[i]; i++) wordset_add(ws, words[i], strlen(words[i]));
  return ws;
}

/* The first match in t from 0 as "start-end" (0-based, end exclusive), or "-". */
static const char *find(const struct wordset *ws, const char *t) {
  static char out[64];
  size_t s, e;
  if (!wordset_find(ws, t, strlen(t), 0, &s, &e)) return "-";
  snprintf(out, sizeof out, "%zu-%zu", s, e);
  return out;
}

struct buf {
  char b[1024];
  size_t n;
  int calls;
};
static void emit(void *ud, const char *p, size_t n) {
  struct buf *b = ud;
  assert_true(b->n + n < sizeof b->b);
  memcpy(b->b + b->n, p, n);
  b->n += n;
  b->b[b->n] = 0;
  b->calls++;
}

/* The masked text, or "(unchanged)" when nothing matched (then emit must not have been called). */
static const char *mask(const struct wordset *ws, const char *t, const char *m, size_t *count) {
  static struct buf b;
  memset(&b, 0, sizeof b);
  *count = wordset_mask(ws, t, strlen(t), m, strlen(m), emit, &b);
  if (!*count) {
    assert_int_equal(b.calls, 0);
    return "(unchanged)";
  }
  return b.b;
}

static void test_case_folding(void **state) {
  (void)state;
  struct wordset *ws = make((const char *const[]){"BadWord", "[x", "\xc3\x84rger" /* Ärger */, NULL});
  assert_true(wordset_has(ws, "badword", 7));
  assert_true(wordset_has(ws, "BADWORD", 7));
  assert_true(wordset_has(ws, "bAdWoRd", 7));
  assert_false(wordset_has(ws, "badwor", 6));
  assert_false(wordset_has(ws, "badwordx", 8));
  /* only A-Z fold: '[' | 0x20 is '{', which must not match */
  assert_true(wordset_has(ws, "[X", 2));
  assert_false(wordset_has(ws, "{x", 2));
  assert_false(wordset_has(ws, "[x ", 3));
  /* non-ASCII bytes compare exactly: Ä does not fold to ä, the ASCII letters after it do fold */
  assert_true(wordset_has(ws, "\xc3\x84RGER", 6));
  assert_false(wordset_has(ws, "\xc3\xa4rger", 6));
  assert_string_equal(find(ws, "so BADWORD!"), "3-10");
  free(ws);
}

static void test_boundaries(void **state) {
  (void)state;
  struct wordset *ws = make((const char *const[]){"bad", "evil", "42", NULL});
  assert_string_equal(find(ws, "bad"), "0-3");
  assert_string_equal(find(ws, "this is bad."), "8-11");
  assert_string_equal(find(ws, "so bad"), "3-6"); /* at the very end */
  /* letters, digits and bytes >= 0x80 join a word: no match inside a longer word */
  assert_string_equal(find(ws, "badness"), "-");
  assert_string_equal(find(ws, "notbad"), "-");
  assert_string_equal(find(ws, "bad1"), "-");
  assert_string_equal(find(ws, "1bad"), "-");
  assert_string_equal(find(ws, "bad\xc3\xa9"), "-"); /* badé */
  assert_string_equal(find(ws, "\xc3\xa9"
                               "bad"),
                      "-");
  assert_string_equal(find(ws, "x42y 420"), "-");
  /* everything else separates, including punctuation that is part of words in prose */
  assert_string_equal(find(ws, "bad_x"), "0-3");
  assert_string_equal(find(ws, "bad's"), "0-3");
  assert_string_equal(find(ws, "(bad)"), "1-4");
  assert_string_equal(find(ws, "a-evil-b"), "2-6");
  assert_string_equal(find(ws, "x\tbad\n"), "2-5");
  assert_string_equal(find(ws, "an answer: 42"), "11-13");
  /* the first listed word of the text, not the first of the list */
  assert_string_equal(find(ws, "fine evil and bad"), "5-9");
  /* from continues after a match; a match never starts inside a word */
  const char *t = "bad, evil; nobad bad";
  size_t s, e, n = strlen(t);
  assert_true(wordset_find(ws, t, n, 0, &s, &e));
  assert_true(wordset_find(ws, t, n, e, &s, &e));
  assert_int_equal(s, 5);
  assert_int_equal(e, 9);
  assert_true(wordset_find(ws, t, n, e, &s, &e));
  assert_int_equal(s, 17);
  assert_int_equal(e, 20);
  assert_false(wordset_find(ws, t, n, e, &s, &e));
  /* the text's length bounds the scan: "bad" cut to "ba" is not a match, "badness" cut to "bad" is */
  assert_false(wordset_find(ws, "bad", 2, 0, &s, &e));
  assert_true(wordset_find(ws, "badness", 3, 0, &s, &e));
  assert_int_equal(e, 3);
  assert_string_equal(find(ws, ""), "-");
  free(ws);
}

static void test_utf8(void **state) {
  (void)state;
  struct wordset *ws =
      make((const char *const[]){"caf\xc3\xa9" /* café */, "\xe6\x97\xa5\xe6\x9c\xac", NULL});
  assert_string_equal(find(ws, "un caf\xc3\xa9!"), "3-8");
  assert_string_equal(find(ws, "un CAF\xc3\xa9!"), "3-8");
  assert_string_equal(find(ws, "un caf\xc3\x89!"), "-"); /* É: no Unicode folding */
  assert_string_equal(find(ws, "cafe"), "-");
  /* no spaces between CJK characters: the whole run is one word */
  assert_string_equal(find(ws, "\xe6\x88\x91\xe6\x97\xa5\xe6\x9c\xac"), "-");
  assert_string_equal(find(ws, "\xe6\x97\xa5\xe6\x9c\xac ok"), "0-6");
  size_t count;
  assert_string_equal(mask(ws, "un caf\xc3\xa9 noir", "*", &count), "un **** noir"); /* 4 characters */
  assert_int_equal(count, 1);
  assert_string_equal(mask(ws, "\xe6\x97\xa5\xe6\x9c\xac!", "#", &count), "##!");
  assert_string_equal(mask(ws, "caf\xc3\xa9", "\xe2\x80\xa2", &count),
                      "\xe2\x80\xa2\xe2\x80\xa2\xe2\x80\xa2\xe2\x80\xa2");
  free(ws);
}

static void test_mask(void **state) {
  (void)state;
  struct wordset *ws = make((const char *const[]){"bad", "evil", NULL});
  size_t count;
  assert_string_equal(mask(ws, "Bad, bad evil... badly", "*", &count), "***, *** ****... badly");
  assert_int_equal(count, 3);
  assert_string_equal(mask(ws, "bad", "*", &count), "***");
  assert_int_equal(count, 1);
  assert_string_equal(mask(ws, "x bad", "-", &count), "x ---");
  assert_string_equal(mask(ws, "evil x", "ab", &count), "abababab x"); /* the mark is repeated as a whole */
  assert_string_equal(mask(ws, "a bad b", "", &count), "a  b");        /* an empty mark removes the word */
  assert_int_equal(count, 1);
  assert_string_equal(mask(ws, "badly evilness", "*", &count), "(unchanged)");
  assert_int_equal(count, 0);
  assert_string_equal(mask(ws, "", "*", &count), "(unchanged)");
  free(ws);
}

static void test_build(void **state) {
  (void)state;
  /* duplicates in any case are one word; empty words are skipped */
  struct wordset *ws = make((const char *const[]){"Bad", "bad", "BAD", "", "evil", NULL});
  assert_int_equal(wordset_count(ws), 2);
  assert_false(wordset_has(ws, "", 0));
  free(ws);
  ws = make((const char *const[]){NULL});
  assert_int_equal(wordset_count(ws), 0);
  assert_false(wordset_has(ws, "a", 1));
  assert_string_equal(find(ws, "a b c"), "-");
  free(ws);

  /* the longest word */
  char w[WORDSET_MAX_WORD + 2];
  memset(w, 'a', sizeof w - 1);
  w[sizeof w - 1] = 0;
  ws = wordset_init(malloc(wordset_size(2, 2 * WORDSET_MAX_WORD + 1)), 2, 2 * WORDSET_MAX_WORD + 1);
  assert_false(wordset_add(ws, w, WORDSET_MAX_WORD + 1));
  assert_true(wordset_add(ws, w, WORDSET_MAX_WORD));
  assert_true(wordset_has(ws, w, WORDSET_MAX_WORD));
  assert_false(wordset_has(ws, w, WORDSET_MAX_WORD + 1));
  w[WORDSET_MAX_WORD] = ' ';
  assert_string_equal(find(ws, w), "0-255");
  free(ws);

  /* a set takes no more than it was sized for */
  ws = wordset_init(malloc(wordset_size(2, 6)), 2, 6);
  assert_true(wordset_add(ws, "abc", 3));
  assert_false(wordset_add(ws, "abc", 3));
  assert_true(wordset_add(ws, "def", 3));
  assert_false(wordset_add(ws, "g", 1)); /* a third word */
  assert_int_equal(wordset_count(ws), 2);
  free(ws);
  ws = wordset_init(malloc(wordset_size(2, 4)), 2, 4);
  assert_true(wordset_add(ws, "abc", 3));
  assert_false(wordset_add(ws, "de", 2)); /* 4 + 2 bytes: over */
  assert_true(wordset_add(ws, "d", 1));
  assert_true(wordset_has(ws, "d", 1));
  free(ws);

  /* bounds: words, and bytes counted as the words' lengths plus one each */
  assert_true(wordset_size(WORDSET_MAX_WORDS, 0) > 0);
  assert_int_equal(wordset_size(WORDSET_MAX_WORDS + 1, 0), 0);
  assert_true(wordset_size(1, WORDSET_MAX_POOL - 1) > 0);
  assert_int_equal(wordset_size(1, WORDSET_MAX_POOL), 0);
  assert_true(wordset_size(1000, WORDSET_MAX_POOL - 1000) > 0);
  assert_int_equal(wordset_size(1000, WORDSET_MAX_POOL - 999), 0);
  assert_int_equal(wordset_size(0, SIZE_MAX), 0);
}

static void test_many(void **state) {
  (void)state;
  enum { N = 5000 };
  size_t chars = 0;
  char w[32];
  for (int i = 0; i < N; i++) chars += (size_t)snprintf(w, sizeof w, "W%d", i);
  struct wordset *ws = wordset_init(malloc(wordset_size(N, chars)), N, chars);
  for (int i = 0; i < N; i++) assert_true(wordset_add(ws, w, (size_t)snprintf(w, sizeof w, "W%d", i)));
  assert_int_equal(wordset_count(ws), N);
  for (int i = 0; i < N; i++) {
    int n = snprintf(w, sizeof w, "w%d", i);
    assert_true(wordset_has(ws, w, (size_t)n));
  }
  for (int i = N; i < 2 * N; i++) {
    int n = snprintf(w, sizeof w, "w%d", i);
    assert_false(wordset_has(ws, w, (size_t)n));
  }
  assert_string_equal(find(ws, "w5000 w50000 w4999"), "13-18");
  free(ws);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_case_folding), cmocka_unit_test(test_boundaries), cmocka_unit_test(test_utf8),
      cmocka_unit_test(test_mask),         cmocka_unit_test(test_build),      cmocka_unit_test(test_many),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
