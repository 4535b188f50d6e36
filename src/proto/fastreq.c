/* fastreq: the hot requests (send, typing, ping, read) read straight from the frame, without building a
 * json_t tree. It only ever accepts: whatever it does not fully understand — invalid JSON, duplicate
 * keys, escapes in the envelope's strings, nesting beyond MAX_DEPTH, out-of-range numbers, a field of
 * the wrong type, another op — is left to codec_decode + request_parse, which answer exactly as before.
 * The JSON rules followed are jansson's (the slow path): RFC 8259 syntax, strict UTF-8 in strings, no
 * lone surrogates, no NUL in keys, no duplicate keys, integers within int64, finite reals. */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "proto/codec.h"
#include "proto/request.h"
#include "proto/v1.h"

#define MAX_DEPTH   32 /* as codec.c: a top-level map is level 1 */
#define MAX_KEYS    32 /* keys of one object checked for duplicates here; more: the slow path */
#define MAX_UNKNOWN 8  /* unknown top-level fields; more: the slow path */
#define NUM_MAX     64 /* longest number text handled here */

struct jp {
  const uint8_t *p, *e;
  buf_t *out; /* canonical output of generic values */
  buf_t *tmp; /* decoded strings with escapes */
};

static inline void ws(struct jp *s) {
  while (s->p < s->e && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r')) s->p++;
}

static inline bool eat(struct jp *s, uint8_t c) {
  ws(s);
  if (s->p < s->e && *s->p == c) {
    s->p++;
    return true;
  }
  return false;
}

/* Length of the valid UTF-8 sequence at p (lead byte >= 0x80), 0 if invalid (RFC 3629 as codec.c). */
static size_t utf8_seq(const uint8_t *p, const uint8_t *e) {
  uint8_t c = p[0], lo = 0x80, hi = 0xbf;
  size_t k;
  if (c >= 0xc2 && c <= 0xdf)
    k = 1;
  else if (c >= 0xe0 && c <= 0xef) {
    k = 2;
    if (c == 0xe0) lo = 0xa0;
    if (c == 0xed) hi = 0x9f;
  } else if (c >= 0xf0 && c <= 0xf4) {
    k = 3;
    if (c == 0xf0) lo = 0x90;
    if (c == 0xf4) hi = 0x8f;
  } else
    return 0;
  if ((size_t)(e - p) <= k) return 0;
  if (p[1] < lo || p[1] > hi) return 0;
  for (size_t j = 2; j <= k; j++)
    if ((p[j] & 0xc0) != 0x80) return 0;
  return k + 1;
}

/* A string at s->p (the opening quote). On success *v and *n are its decoded bytes: a slice of the input
 * when it has no escapes, else s->tmp's contents (valid until the next string). Returns 0 or -1. */
static int str(struct jp *s, const uint8_t **v, size_t *n) {
  if (s->p >= s->e || *s->p != '"') return -1;
  const uint8_t *q = ++s->p, *start = q;
  bool esc = false;
  while (q < s->e && *q != '"') {
    uint8_t c = *q;
    if (c < 0x20) return -1;
    if (c == '\\') {
      esc = true;
      q += 2; /* validated below */
      if (q > s->e) return -1;
      continue;
    }
    if (c < 0x80) {
      q++;
      continue;
    }
    size_t k = utf8_seq(q, s->e);
    if (!k) return -1;
    q += k;
  }
  if (q >= s->e) return -1;
  s->p = q + 1;
  if (!esc) {
    *v = start;
    *n = (size_t)(q - start);
    return 0;
  }
  /* decode the escapes */
  buf_t *t = s->tmp;
  t->len = 0;
  const uint8_t *r = start, *run = start;
  while (r < q) {
    if (*r != '\\') {
      r++;
      continue;
    }
    if (buf_append(t, run, (size_t)(r - run))) return -1;
    uint8_t u[4];
    size_t un, took = codec_json_unescape(r, q, u, &un);
    if (!took || buf_append(t, u, un)) return -1;
    r += took;
    run = r;
  }
  if (r != q) return -1; /* an escape ran past the closing quote (cannot happen: the scan paired them) */
  if (buf_append(t, run, (size_t)(q - run))) return -1;
  *v = t->data ? t->data : (const uint8_t *)"";
  *n = t->len;
  return 0;
}

/* A number at s->p: its canonical form appended to out (if not NULL); *is_int and *iv when integer. */
static int num(struct jp *s, buf_t *out, bool *is_int, int64_t *iv) {
  const uint8_t *q = s->p, *b = q;
  if (q < s->e && *q == '-') q++;
  if (q >= s->e || *q < '0' || *q > '9') return -1;
  if (*q == '0') {
    q++;
    if (q < s->e && *q >= '0' && *q <= '9') return -1;
  } else
    while (q < s->e && *q >= '0' && *q <= '9') q++;
  bool real = false;
  if (q < s->e && *q == '.') {
    real = true;
    q++;
    if (q >= s->e || *q < '0' || *q > '9') return -1;
    while (q < s->e && *q >= '0' && *q <= '9') q++;
  }
  if (q < s->e && (*q == 'e' || *q == 'E')) {
    real = true;
    q++;
    if (q < s->e && (*q == '+' || *q == '-')) q++;
    if (q >= s->e || *q < '0' || *q > '9') return -1;
    while (q < s->e && *q >= '0' && *q <= '9') q++;
  }
  size_t len = (size_t)(q - b);
  if (!real && len <= 18) { /* fits int64 whatever the digits */
    const uint8_t *d = b + (*b == '-');
    int64_t v = 0;
    for (; d < q; d++) v = v * 10 + (*d - '0');
    if (*b == '-') v = -v;
    s->p = q;
    if (is_int) *is_int = true, *iv = v;
    return out ? codec_json_int(out, v) : 0;
  }
  if (len >= NUM_MAX) return -1;
  char txt[NUM_MAX];
  memcpy(txt, b, len);
  txt[len] = 0;
  s->p = q;
  errno = 0;
  if (!real) {
    long long v = strtoll(txt, NULL, 10);
    if (errno == ERANGE) return -1;
    if (is_int) *is_int = true, *iv = v;
    return out ? codec_json_int(out, v) : 0;
  }
  double d = strtod(txt, NULL);
  if (d == HUGE_VAL || d == -HUGE_VAL) return -1;
  if (is_int) *is_int = false;
  return out ? codec_json_real(out, d) : 0;
}

static bool lit(struct jp *s, const char *w, size_t n) {
  if ((size_t)(s->e - s->p) < n || memcmp(s->p, w, n)) return false;
  s->p += n;
  return true;
}

/* Any value at s->p (after whitespace), its canonical compact JSON appended to s->out. level: the nesting
 * level a container here would have. */
static int value(struct jp *s, int level) {
  ws(s);
  if (s->p >= s->e) return -1;
  buf_t *o = s->out;
  switch (*s->p) {
  case 'n':
    return lit(s, "null", 4) ? buf_append(o, "null", 4) : -1;
  case 't':
    return lit(s, "true", 4) ? buf_append(o, "true", 4) : -1;
  case 'f':
    return lit(s, "false", 5) ? buf_append(o, "false", 5) : -1;
  case '"': {
    const uint8_t *v, *at = s->p;
    size_t n;
    if (str(s, &v, &n)) return -1;
    /* without escapes the input holds no control character, quote or backslash: it is canonical */
    if (v == at + 1) return buf_append(o, at, n + 2);
    return codec_json_str(o, (const char *)v, n);
  }
  case '[': {
    if (level > MAX_DEPTH) return -1;
    s->p++;
    if (buf_putc(o, '[')) return -1;
    if (eat(s, ']')) return buf_putc(o, ']');
    for (;;) {
      if (value(s, level + 1)) return -1;
      if (eat(s, ']')) return buf_putc(o, ']');
      if (!eat(s, ',') || buf_putc(o, ',')) return -1;
    }
  }
  case '{': {
    if (level > MAX_DEPTH) return -1;
    s->p++;
    if (buf_putc(o, '{')) return -1;
    if (eat(s, '}')) return buf_putc(o, '}');
    size_t koff[MAX_KEYS], klen[MAX_KEYS], nk = 0;
    for (;;) {
      ws(s);
      const uint8_t *k;
      size_t kn;
      if (nk == MAX_KEYS || str(s, &k, &kn) || memchr(k, 0, kn)) return -1;
      size_t at = o->len;
      if (codec_json_str(o, (const char *)k, kn)) return -1;
      size_t cl = o->len - at;
      for (size_t i = 0; i < nk; i++) /* canonical forms are equal iff the keys are */
        if (klen[i] == cl && !memcmp(o->data + koff[i], o->data + at, cl)) return -1;
      koff[nk] = at, klen[nk++] = cl;
      if (!eat(s, ':') || buf_putc(o, ':') || value(s, level + 1)) return -1;
      if (eat(s, '}')) return buf_putc(o, '}');
      if (!eat(s, ',') || buf_putc(o, ',')) return -1;
    }
  }
  default:
    if (*s->p == '-' || (*s->p >= '0' && *s->p <= '9')) return num(s, o, NULL, NULL);
    return -1;
  }
}

/* An envelope string: no escapes (else the slow path), returned as a slice. */
static int plain(struct jp *s, const uint8_t **v, size_t *n) {
  ws(s);
  const uint8_t *save = s->p;
  if (str(s, v, n)) return -1;
  if (memchr(save, '\\', (size_t)(s->p - save))) return -1;
  return 0;
}

enum { K_ID = 1, K_OP = 2, K_ROOM = 4, K_CMID = 8, K_BODY = 16, K_ACTIVE = 32, K_SEQ = 64 };

static bool key_is(const uint8_t *k, size_t n, const char *w) { return strlen(w) == n && !memcmp(k, w, n); }

bool request_parse_fast(const uint8_t *p, size_t n, struct request *req, buf_t *body, buf_t *tmp) {
  struct jp s = {.p = p, .e = p + n, .out = body, .tmp = tmp};
  body->len = 0;
  unsigned seen = 0;
  const uint8_t *unk[MAX_UNKNOWN];
  size_t unkn[MAX_UNKNOWN], nunk = 0;
  bool id_int = false, active = false;
  int64_t id_i = 0, seq = 0;
  const uint8_t *id_s = NULL, *op = NULL, *room = NULL, *cmid = NULL;
  size_t id_n = 0, op_n = 0, room_n = 0, cmid_n = 0, body_at = 0, body_len = 0;

  if (!eat(&s, '{')) return false;
  if (!eat(&s, '}'))
    for (;;) {
      const uint8_t *k;
      size_t kn;
      if (plain(&s, &k, &kn) || !eat(&s, ':')) return false;
      unsigned bit = 0;
      if (key_is(k, kn, "id"))
        bit = K_ID;
      else if (key_is(k, kn, "op"))
        bit = K_OP;
      else if (key_is(k, kn, "room"))
        bit = K_ROOM;
      else if (key_is(k, kn, "cmid"))
        bit = K_CMID;
      else if (key_is(k, kn, "body"))
        bit = K_BODY;
      else if (key_is(k, kn, "active"))
        bit = K_ACTIVE;
      else if (key_is(k, kn, "seq"))
        bit = K_SEQ;
      if (bit & seen) return false; /* duplicate */
      seen |= bit;
      ws(&s);
      if (s.p >= s.e) return false;
      switch (bit) {
      case K_ID:
        if (*s.p == '"') {
          if (plain(&s, &id_s, &id_n)) return false;
        } else {
          bool is_int = false;
          if (num(&s, NULL, &is_int, &id_i) || !is_int) return false;
          id_int = true;
        }
        break;
      case K_OP:
        if (plain(&s, &op, &op_n)) return false;
        break;
      case K_ROOM:
        if (plain(&s, &room, &room_n)) return false;
        break;
      case K_CMID:
        if (plain(&s, &cmid, &cmid_n)) return false;
        break;
      case K_ACTIVE:
        if (lit(&s, "true", 4))
          active = true;
        else if (!lit(&s, "false", 5))
          return false;
        break;
      case K_SEQ: {
        bool is_int = false;
        if (num(&s, NULL, &is_int, &seq) || !is_int || seq < 0) return false;
        break;
      }
      case K_BODY:
        body_at = body->len;
        if (value(&s, 2)) return false;
        body_len = body->len - body_at;
        break;
      default: { /* unknown: validated, then dropped */
        if (memchr(k, 0, kn) || nunk == MAX_UNKNOWN) return false;
        for (size_t i = 0; i < nunk; i++)
          if (unkn[i] == kn && !memcmp(unk[i], k, kn)) return false;
        unk[nunk] = k, unkn[nunk++] = kn;
        size_t at = body->len;
        if (value(&s, 2)) return false;
        body->len = at;
      }
      }
      if (eat(&s, '}')) break;
      if (!eat(&s, ',')) return false;
    }
  ws(&s);
  if (s.p != s.e) return false;

  /* the request, as request_parse would make it; anything it would refuse: the slow path */
  if (!(seen & K_ID) || !(seen & K_OP)) return false;
  enum op o;
  if (key_is(op, op_n, "send"))
    o = OP_SEND;
  else if (key_is(op, op_n, "typing"))
    o = OP_TYPING;
  else if (key_is(op, op_n, "ping"))
    o = OP_PING;
  else if (key_is(op, op_n, "read"))
    o = OP_READ;
  else
    return false;
  if (!id_int && (id_n < 1 || id_n > REQ_ID_MAX || memchr(id_s, 0, id_n))) return false;
  if (o != OP_PING) {
    if (!(seen & K_ROOM) || room_n > ROOM_NAME_MAX) return false;
    memcpy(req->room_buf, room, room_n);
    req->room_buf[room_n] = 0;
    if (!room_name_valid(req->room_buf)) return false;
  }
  if (o == OP_SEND &&
      (!(seen & K_BODY) || !(seen & K_CMID) || cmid_n < 1 || cmid_n > CMID_MAX || memchr(cmid, 0, cmid_n)))
    return false;
  if (o == OP_TYPING && !(seen & K_ACTIVE)) return false;
  if (o == OP_READ && !(seen & K_SEQ)) return false;

  memset(req, 0, offsetof(struct request, room_buf));
  req->op = o;
  req->id = id_int ? json_integer(id_i) : json_stringn_nocheck((const char *)id_s, id_n);
  if (!req->id) return false;
  if (o != OP_PING) req->room = req->room_buf;
  if (o == OP_SEND) {
    memcpy(req->cmid_buf, cmid, cmid_n);
    req->cmid_buf[cmid_n] = 0;
    req->cmid = req->cmid_buf;
    req->body_json = (const char *)body->data + body_at;
    req->body_json_len = body_len;
  } else if (o == OP_TYPING) {
    req->active = active;
  } else if (o == OP_READ) {
    req->seq = seq;
    req->has_seq = true;
  }
  return true;
}
