#include "proto/codec.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <msgpack.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "proto/errors.h"

#define MAX_DEPTH 32 /* a top-level map or array is level 1 */
/* Encoding walks the tree recursively; bound it so a cyclic tree fails instead of overflowing the stack. */
#define ENCODE_MAX_DEPTH  2048
#define JSON_DECODE_FLAGS (JSON_REJECT_DUPLICATES | JSON_DECODE_ANY | JSON_ALLOW_NUL)
#define JSON_ENCODE_FLAGS (JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(17))
/* The per-thread encode scratch buffer of codec_frame is released after use beyond this size. */
#define SCRATCH_KEEP (256u * 1024u)

static const char *const subprotocols[CODEC_COUNT] = {
    [CODEC_JSON] = "parley.v1.json",
    [CODEC_MSGPACK] = "parley.v1.msgpack",
};

const char *codec_subprotocol(codec_t c) { return ((unsigned)c < CODEC_COUNT) ? subprotocols[c] : NULL; }

static bool utf8_valid(const uint8_t *s, size_t n);

/* The message goes into an error reply's msg, which must be UTF-8: jansson's quotes the input near the
 * error (possibly ending inside a sequence) and vsnprintf may cut a sequence; such bytes become '?'. */
__attribute__((format(printf, 3, 4))) static int fail(char *err, size_t errlen, const char *fmt, ...) {
  if (err && errlen) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    uint8_t *s = (uint8_t *)err;
    for (size_t i = 0, n = strlen(err); i < n;) {
      size_t k = s[i] < 0x80 ? 1 : s[i] >= 0xf0 ? 4 : s[i] >= 0xe0 ? 3 : 2;
      if (k > 1 && (k > n - i || !utf8_valid(s + i, k))) s[i] = '?', k = 1;
      i += k;
    }
  }
  return PERR_BAD_FRAME;
}

static int fail_nomem(char *err, size_t errlen) {
  if (err && errlen) snprintf(err, errlen, "out of memory");
  return PERR_INTERNAL;
}

/* ---- JSON ---------------------------------------------------------------------------------------- */

/* True if v nests containers deeper than `left` more levels. */
static bool too_deep(const json_t *v, int left) {
  if (json_is_array(v)) {
    if (left == 0) return true;
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e) if (too_deep(e, left - 1)) return true;
  } else if (json_is_object(v)) {
    if (left == 0) return true;
    for (void *it = json_object_iter((json_t *)v); it; it = json_object_iter_next((json_t *)v, it))
      if (too_deep(json_object_iter_value(it), left - 1)) return true;
  }
  return false;
}

static int json_decode(const uint8_t *p, size_t n, json_t **out, char *err, size_t errlen) {
  json_error_t je;
  json_t *v = json_loadb((const char *)p, n, JSON_DECODE_FLAGS, &je);
  if (!v) {
    if (json_error_code(&je) == json_error_out_of_memory) return fail_nomem(err, errlen);
    return fail(err, errlen, "invalid JSON at offset %d: %s", je.position, je.text);
  }
  if (too_deep(v, MAX_DEPTH)) {
    json_decref(v);
    return fail(err, errlen, "nesting deeper than %d levels", MAX_DEPTH);
  }
  *out = v;
  return 0;
}

/* ---- MessagePack --------------------------------------------------------------------------------- */

/* Strict UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing above U+10FFFF. NUL is valid. */
static bool utf8_valid(const uint8_t *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    uint8_t c = s[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    size_t k;
    uint8_t lo = 0x80, hi = 0xbf; /* allowed range of the second byte */
    if (c >= 0xc2 && c <= 0xdf) {
      k = 1;
    } else if (c >= 0xe0 && c <= 0xef) {
      k = 2;
      if (c == 0xe0) lo = 0xa0; /* overlong */
      if (c == 0xed) hi = 0x9f; /* surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
      k = 3;
      if (c == 0xf0) lo = 0x90; /* overlong */
      if (c == 0xf4) hi = 0x8f; /* > U+10FFFF */
    } else {
      return false;
    }
    if (n - i - 1 < k) return false;
    if (s[i + 1] < lo || s[i + 1] > hi) return false;
    for (size_t j = 2; j <= k; j++)
      if ((s[i + j] & 0xc0) != 0x80) return false;
    i += k + 1;
  }
  return true;
}

static uint64_t be(const uint8_t *p, size_t n) {
  uint64_t v = 0;
  for (size_t i = 0; i < n; i++) v = (v << 8) | p[i];
  return v;
}

/* Structural check of one MessagePack value before msgpack-c sees it: msgpack-c allocates a container's
 * element array from its announced size before reading a single element (a 5-byte "array of 2^32-1"
 * asks malloc for 128 GiB), so every announced size is checked against the bytes that remain. Also
 * rejects what has no JSON equivalent (bin, ext, non-string keys), nesting deeper than MAX_DEPTH,
 * truncation and trailing bytes, so the conversion below only sees well-formed, bounded input. */
static int mp_scan(const uint8_t *p, size_t n, char *err, size_t errlen) {
  uint64_t left[MAX_DEPTH + 1]; /* items still to read per open container; [0] is the top level */
  bool is_map[MAX_DEPTH + 1];
  int depth = 0;
  size_t i = 0;
  left[0] = 1;
  is_map[0] = false;
  while (depth >= 0) {
    if (left[depth] == 0) {
      depth--;
      continue;
    }
    bool key = is_map[depth] && left[depth] % 2 == 0;
    left[depth]--;
    if (i >= n) return fail(err, errlen, "truncated MessagePack value");
    uint8_t t = p[i++];
    size_t width = 0;   /* bytes of a length/count field, or of a fixed-size scalar body */
    uint64_t count = 0; /* string length or container item count */
    bool container = false, map = false, str = false;
    if (t <= 0x7f || t >= 0xe0) {
      /* positive / negative fixint */
    } else if (t <= 0x8f) {
      container = map = true;
      count = t & 0x0f;
    } else if (t <= 0x9f) {
      container = true;
      count = t & 0x0f;
    } else if (t <= 0xbf) {
      str = true;
      count = t & 0x1f;
    } else {
      switch (t) {
      case 0xc0: /* nil */
      case 0xc2: /* false */
      case 0xc3: /* true */
        break;
      case 0xc4:
      case 0xc5:
      case 0xc6:
        return fail(err, errlen, "MessagePack bin values are not supported");
      case 0xc7:
      case 0xc8:
      case 0xc9:
      case 0xd4:
      case 0xd5:
      case 0xd6:
      case 0xd7:
      case 0xd8:
        return fail(err, errlen, "MessagePack ext values are not supported");
      case 0xca:
        width = 4;
        break;
      case 0xcb:
        width = 8;
        break;
      case 0xcc:
      case 0xd0:
        width = 1;
        break;
      case 0xcd:
      case 0xd1:
        width = 2;
        break;
      case 0xce:
      case 0xd2:
        width = 4;
        break;
      case 0xcf:
      case 0xd3:
        width = 8;
        break;
      case 0xd9:
        str = true;
        width = 1;
        break;
      case 0xda:
        str = true;
        width = 2;
        break;
      case 0xdb:
        str = true;
        width = 4;
        break;
      case 0xdc:
        container = true;
        width = 2;
        break;
      case 0xdd:
        container = true;
        width = 4;
        break;
      case 0xde:
        container = map = true;
        width = 2;
        break;
      case 0xdf:
        container = map = true;
        width = 4;
        break;
      default: /* 0xc1 */
        return fail(err, errlen, "invalid MessagePack type byte 0x%02x at offset %zu", t, i - 1);
      }
    }
    if (key && !str) return fail(err, errlen, "MessagePack map keys must be strings");
    if (n - i < width) return fail(err, errlen, "truncated MessagePack value");
    if ((str || container) && width) count = be(p + i, width);
    i += width;
    if (str) {
      if (n - i < count) return fail(err, errlen, "truncated MessagePack value");
      i += count;
    } else if (container) {
      if (depth == MAX_DEPTH) return fail(err, errlen, "nesting deeper than %d levels", MAX_DEPTH);
      uint64_t items = map ? count * 2 : count; /* count < 2^32: no overflow */
      if (items > n - i) return fail(err, errlen, "truncated MessagePack value");
      depth++;
      left[depth] = items;
      is_map[depth] = map;
    }
  }
  if (i != n) return fail(err, errlen, "%zu trailing bytes after the MessagePack value", n - i);
  return 0;
}

/* Convert a msgpack object that passed mp_scan. Returns 0, or an error code with err written. */
static int mp_to_json(const msgpack_object *o, json_t **out, char *err, size_t errlen) {
  json_t *v = NULL;
  switch (o->type) {
  case MSGPACK_OBJECT_NIL:
    v = json_null();
    break;
  case MSGPACK_OBJECT_BOOLEAN:
    v = json_boolean(o->via.boolean);
    break;
  case MSGPACK_OBJECT_POSITIVE_INTEGER:
    if (o->via.u64 > INT64_MAX) return fail(err, errlen, "integer %" PRIu64 " out of range", o->via.u64);
    v = json_integer((json_int_t)o->via.u64);
    break;
  case MSGPACK_OBJECT_NEGATIVE_INTEGER:
    v = json_integer((json_int_t)o->via.i64);
    break;
  case MSGPACK_OBJECT_FLOAT32:
  case MSGPACK_OBJECT_FLOAT64:
    if (!isfinite(o->via.f64)) return fail(err, errlen, "non-finite float");
    v = json_real(o->via.f64);
    break;
  case MSGPACK_OBJECT_STR: {
    const char *s = o->via.str.size ? o->via.str.ptr : ""; /* msgpack-c gives NULL for "" */
    if (!utf8_valid((const uint8_t *)s, o->via.str.size))
      return fail(err, errlen, "string is not valid UTF-8");
    v = json_stringn_nocheck(s, o->via.str.size);
    break;
  }
  case MSGPACK_OBJECT_ARRAY:
    if (!(v = json_array())) break;
    for (uint32_t i = 0; i < o->via.array.size; i++) {
      json_t *e = NULL;
      int rc = mp_to_json(&o->via.array.ptr[i], &e, err, errlen);
      if (rc || json_array_append_new(v, e)) {
        json_decref(v);
        return rc ? rc : fail_nomem(err, errlen);
      }
    }
    break;
  case MSGPACK_OBJECT_MAP:
    if (!(v = json_object())) break;
    for (uint32_t i = 0; i < o->via.map.size; i++) {
      const msgpack_object_kv *kv = &o->via.map.ptr[i];
      size_t klen = kv->key.via.str.size;
      const char *k = klen ? kv->key.via.str.ptr : "";
      const char *why = NULL;
      if (kv->key.type != MSGPACK_OBJECT_STR)
        why = "MessagePack map keys must be strings";
      else if (!utf8_valid((const uint8_t *)k, klen))
        why = "map key is not valid UTF-8";
      else if (memchr(k, '\0', klen)) /* as in JSON, where jansson refuses them */
        why = "map key contains a NUL byte";
      else if (json_object_getn(v, k, klen))
        why = "duplicate map key";
      json_t *e = NULL;
      int rc = why ? fail(err, errlen, "%s", why) : mp_to_json(&kv->val, &e, err, errlen);
      if (rc || json_object_setn_new_nocheck(v, k, klen, e)) {
        json_decref(v);
        return rc ? rc : fail_nomem(err, errlen);
      }
    }
    break;
  default: /* bin, ext: refused by mp_scan already */
    return fail(err, errlen, "MessagePack type %d is not supported", (int)o->type);
  }
  if (!v) return fail_nomem(err, errlen);
  *out = v;
  return 0;
}

static int mp_decode(const uint8_t *p, size_t n, json_t **out, char *err, size_t errlen) {
  int rc = mp_scan(p, n, err, errlen);
  if (rc) return rc;
  msgpack_unpacked u;
  msgpack_unpacked_init(&u);
  size_t off = 0;
  msgpack_unpack_return r = msgpack_unpack_next(&u, (const char *)p, n, &off);
  if (r == MSGPACK_UNPACK_SUCCESS && off == n) {
    rc = mp_to_json(&u.data, out, err, errlen);
  } else if (r == MSGPACK_UNPACK_NOMEM_ERROR) {
    rc = fail_nomem(err, errlen);
  } else {
    rc = fail(err, errlen, "invalid MessagePack"); /* not reached after mp_scan */
  }
  msgpack_unpacked_destroy(&u);
  return rc;
}

int codec_decode(codec_t c, const uint8_t *p, size_t n, json_t **out, char *err, size_t errlen) {
  *out = NULL;
  switch (c) {
  case CODEC_JSON:
    return json_decode(p, n, out, err, errlen);
  case CODEC_MSGPACK:
    return mp_decode(p, n, out, err, errlen);
  }
  return fail(err, errlen, "unknown codec");
}

/* ---- the id of a refused frame ------------------------------------------------------------------- */

/* Skip one MessagePack value of any type (bin and ext included) at p[*i]. Returns -1 when it is
 * truncated or invalid. Iterative: nesting costs no stack. */
static int mp_skip(const uint8_t *p, size_t n, size_t *i) {
  uint64_t pending = 1; /* values still to skip */
  while (pending) {
    pending--;
    if (*i >= n) return -1;
    uint8_t t = p[(*i)++];
    size_t width = 0;   /* bytes of the length/count field, or of a fixed-size body */
    uint64_t count = 0; /* string/bin/ext bytes, or items */
    bool container = false, map = false, bytes = false;
    if (t <= 0x7f || t >= 0xe0 || t == 0xc0 || t == 0xc2 || t == 0xc3) {
      /* fixint, nil, bool */
    } else if (t <= 0x8f) {
      container = map = true;
      count = t & 0x0f;
    } else if (t <= 0x9f) {
      container = true;
      count = t & 0x0f;
    } else if (t <= 0xbf) {
      bytes = true;
      count = t & 0x1f;
    } else if (t == 0xc4 || t == 0xd9) { /* bin 8, str 8 */
      bytes = true;
      width = 1;
    } else if (t == 0xc5 || t == 0xda) {
      bytes = true;
      width = 2;
    } else if (t == 0xc6 || t == 0xdb) {
      bytes = true;
      width = 4;
    } else if (t >= 0xc7 && t <= 0xc9) { /* ext 8/16/32: length, type, data */
      bytes = true;
      width = (size_t)1 << (t - 0xc7);
    } else if (t >= 0xd4 && t <= 0xd8) { /* fixext: type + 1..16 bytes */
      count = 1 + ((uint64_t)1 << (t - 0xd4));
      bytes = true;
    } else if (t == 0xca || t == 0xce || t == 0xd2) {
      width = 4;
    } else if (t == 0xcb || t == 0xcf || t == 0xd3) {
      width = 8;
    } else if (t == 0xcc || t == 0xd0) {
      width = 1;
    } else if (t == 0xcd || t == 0xd1) {
      width = 2;
    } else if (t == 0xdc || t == 0xde) {
      container = true;
      map = t == 0xde;
      width = 2;
    } else if (t == 0xdd || t == 0xdf) {
      container = true;
      map = t == 0xdf;
      width = 4;
    } else {
      return -1; /* 0xc1 */
    }
    if (n - *i < width) return -1;
    if (bytes || container) {
      if (width) count = be(p + *i, width);
      if (t >= 0xc7 && t <= 0xc9) count++; /* the ext type byte */
    }
    *i += width;
    if (bytes) {
      if (n - *i < count) return -1;
      *i += count;
    } else if (container) {
      uint64_t items = map ? count * 2 : count;
      if (items > n - *i) return -1; /* every item takes a byte at least */
      pending += items;
    }
  }
  return 0;
}

/* The bytes of a MessagePack string at p[*i] (any str form); -1, nothing consumed, if it is not one. */
static int mp_str(const uint8_t *p, size_t n, size_t *i, const uint8_t **s, size_t *len) {
  if (*i >= n) return -1;
  uint8_t t = p[*i];
  size_t at = *i + 1, l;
  if (t >= 0xa0 && t <= 0xbf) {
    l = t & 0x1f;
  } else if (t >= 0xd9 && t <= 0xdb) {
    size_t w = (size_t)1 << (t - 0xd9);
    if (n - at < w) return -1;
    l = (size_t)be(p + at, w);
    at += w;
  } else {
    return -1;
  }
  if (n - at < l) return -1;
  *s = p + at;
  *len = l;
  *i = at + l;
  return 0;
}

/* An integer or string MessagePack value at p[*i] as a json_t; NULL for any other type or an unreadable one.
 */
static json_t *mp_scalar(const uint8_t *p, size_t n, size_t *i) {
  if (*i >= n) return NULL;
  uint8_t t = p[*i];
  size_t at = *i + 1;
  if (t <= 0x7f) return *i = at, json_integer(t);
  if (t >= 0xe0) return *i = at, json_integer((int8_t)t);
  static const uint8_t widths[] = {1, 2, 4, 8, 1, 2, 4, 8}; /* 0xcc..0xd3 */
  if (t >= 0xcc && t <= 0xd3) {
    size_t w = widths[t - 0xcc];
    if (n - at < w) return NULL;
    uint64_t u = be(p + at, w);
    int64_t v;
    if (t <= 0xcf) { /* unsigned */
      if (u > INT64_MAX) return NULL;
      v = (int64_t)u;
    } else { /* signed, sign-extended from w bytes */
      v = w == 8 ? (int64_t)u : (int64_t)(u ^ (1ull << (w * 8 - 1))) - (int64_t)(1ull << (w * 8 - 1));
    }
    *i = at + w;
    return json_integer(v);
  }
  const uint8_t *str;
  size_t len;
  if (mp_str(p, n, i, &str, &len) || !utf8_valid(str, len)) return NULL;
  return json_stringn((const char *)str, len);
}

static json_t *mp_peek_id(const uint8_t *p, size_t n) {
  size_t i = 0;
  if (!n) return NULL;
  uint8_t t = p[i++];
  uint64_t count;
  if (t >= 0x80 && t <= 0x8f) {
    count = t & 0x0f;
  } else if ((t == 0xde || t == 0xdf) && n - i >= (t == 0xde ? 2u : 4u)) {
    size_t w = t == 0xde ? 2 : 4;
    count = be(p + i, w);
    i += w;
  } else {
    return NULL; /* not a map */
  }
  json_t *id = NULL;
  for (uint64_t k = 0; k < count; k++) {
    const uint8_t *key;
    size_t kl;
    bool is_id = false;
    if (!mp_str(p, n, &i, &key, &kl))
      is_id = kl == 2 && key[0] == 'i' && key[1] == 'd';
    else if (mp_skip(p, n, &i))
      break; /* unreadable from here on */
    if (!is_id) {
      if (mp_skip(p, n, &i)) break;
      continue;
    }
    if (id) { /* a second "id": which one is meant is not known */
      json_decref(id);
      return NULL;
    }
    id = mp_scalar(p, n, &i);
    if (!id) return NULL; /* not an integer or a string, or unreadable */
  }
  return id;
}

/* Skip JSON whitespace. */
static size_t js_ws(const uint8_t *p, size_t n, size_t i) {
  while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r')) i++;
  return i;
}

/* The end of the JSON string whose opening quote is p[i] (just past its closing quote); 0 if unterminated. */
static size_t js_str_end(const uint8_t *p, size_t n, size_t i) {
  for (i++; i < n; i++) {
    if (p[i] == '\\')
      i++;
    else if (p[i] == '"')
      return i + 1;
  }
  return 0;
}

/* The end of the JSON value starting at p[i] (after whitespace), found lexically: strings and bracket
 * nesting are followed, nothing is validated. 0 if it does not end within the input. */
static size_t js_value_end(const uint8_t *p, size_t n, size_t i) {
  if (i >= n) return 0;
  if (p[i] == '"') return js_str_end(p, n, i);
  if (p[i] == '{' || p[i] == '[') {
    size_t depth = 0;
    while (i < n) {
      uint8_t c = p[i];
      if (c == '"') {
        i = js_str_end(p, n, i);
        if (!i) return 0;
        continue;
      }
      if (c == '{' || c == '[') depth++;
      if ((c == '}' || c == ']') && --depth == 0) return i + 1;
      i++;
    }
    return 0;
  }
  size_t s = i;
  while (i < n && !strchr(",}] \t\r\n", p[i])) i++;
  return i > s ? i : 0;
}

static json_t *js_peek_id(const uint8_t *p, size_t n) {
  size_t i = js_ws(p, n, 0);
  if (i >= n || p[i] != '{') return NULL; /* not a map */
  json_t *id = NULL;
  i++;
  for (;;) {
    i = js_ws(p, n, i);
    if (i >= n || p[i] != '"') break;
    size_t ke = js_str_end(p, n, i);
    if (!ke) break;
    json_t *k = NULL;
    bool is_id = (ke - i == 4 && !memcmp(p + i, "\"id\"", 4)) ||
                 (memchr(p + i, '\\', ke - i) && /* an escaped key: decode it */
                  (k = json_loadb((const char *)p + i, ke - i, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL)) &&
                  json_string_length(k) == 2 && !memcmp(json_string_value(k), "id", 2));
    json_decref(k);
    i = js_ws(p, n, ke);
    if (i >= n || p[i] != ':') break;
    size_t vs = js_ws(p, n, i + 1), ve = js_value_end(p, n, vs);
    if (!ve) break;
    if (is_id) {
      if (id) { /* a second "id": which one is meant is not known */
        json_decref(id);
        return NULL;
      }
      id = json_loadb((const char *)p + vs, ve - vs, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
      if (!json_is_integer(id) && !json_is_string(id)) {
        json_decref(id);
        return NULL;
      }
    }
    i = js_ws(p, n, ve);
    if (i >= n || p[i] != ',') break;
    i++;
  }
  return id;
}

json_t *codec_peek_id(codec_t c, const uint8_t *p, size_t n) {
  switch (c) {
  case CODEC_JSON:
    return js_peek_id(p, n);
  case CODEC_MSGPACK:
    return mp_peek_id(p, n);
  }
  return NULL;
}

/* ---- encoding ------------------------------------------------------------------------------------ */

/* JSON output without jansson's dump: it writes through a callback a few bytes at a time and formats
 * integers with snprintf, which was a fifth of the send path in callgrind. Same output as
 * json_dumps(JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(17)): keys in insertion order, UTF-8
 * passed through, control characters, quote and backslash escaped. */
static int jw_string(buf_t *b, const char *p, size_t n) {
  static const char hex[] = "0123456789ABCDEF"; /* as jansson */
  if (buf_reserve(b, n + 2)) return -ENOMEM;
  b->data[b->len++] = '"';
  size_t run = 0; /* bytes copied as they are */
  for (size_t i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)p[i];
    if (ch >= 0x20 && ch != '"' && ch != '\\') continue;
    if (buf_append(b, p + run, i - run)) return -ENOMEM;
    run = i + 1;
    char esc[6] = {'\\', 0};
    size_t el = 2;
    switch (ch) {
    case '"':
      esc[1] = '"';
      break;
    case '\\':
      esc[1] = '\\';
      break;
    case '\n':
      esc[1] = 'n';
      break;
    case '\r':
      esc[1] = 'r';
      break;
    case '\t':
      esc[1] = 't';
      break;
    case '\b':
      esc[1] = 'b';
      break;
    case '\f':
      esc[1] = 'f';
      break;
    default:
      esc[1] = 'u', esc[2] = '0', esc[3] = '0', esc[4] = hex[ch >> 4], esc[5] = hex[ch & 15];
      el = 6;
    }
    if (buf_append(b, esc, el)) return -ENOMEM;
  }
  if (buf_append(b, p + run, n - run) || buf_putc(b, '"')) return -ENOMEM;
  return 0;
}

static int jw_int(buf_t *b, json_int_t v) {
  char tmp[24], *e = tmp + sizeof tmp, *q = e;
  uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
  do {
    *--q = (char)('0' + u % 10);
    u /= 10;
  } while (u);
  if (v < 0) *--q = '-';
  return buf_append(b, q, (size_t)(e - q)) ? -ENOMEM : 0;
}

int codec_json_real(buf_t *b, double d) {
  if (!isfinite(d)) return -EINVAL;
  char tmp[32];
  int n = snprintf(tmp, sizeof tmp, "%.17g", d);
  if (n <= 0 || (size_t)n >= sizeof tmp) return -EINVAL;
  char *e = strchr(tmp, 'e');
  if (e) { /* as jansson: no '+' and no leading zeros in the exponent */
    char *w = e + 1, *q = e + 1;
    if (*q == '+')
      q++;
    else if (*q == '-')
      *w++ = *q++;
    while (*q == '0' && q[1]) q++;
    memmove(w, q, strlen(q) + 1);
    n = (int)strlen(tmp);
  }
  if (!strpbrk(tmp, ".eE") && (size_t)n + 2 < sizeof tmp) { /* keep it a real, as jansson does */
    tmp[n++] = '.';
    tmp[n++] = '0';
  }
  return buf_append(b, tmp, (size_t)n) ? -ENOMEM : 0;
}

int codec_json_str(buf_t *b, const char *p, size_t n) { return jw_string(b, p, n); }
int codec_json_int(buf_t *b, int64_t v) { return jw_int(b, (json_int_t)v); }

static int jw_value(buf_t *b, const json_t *v, int depth) {
  if (depth > ENCODE_MAX_DEPTH) return -EINVAL;
  switch (json_typeof(v)) {
  case JSON_NULL:
    return buf_append(b, "null", 4) ? -ENOMEM : 0;
  case JSON_TRUE:
    return buf_append(b, "true", 4) ? -ENOMEM : 0;
  case JSON_FALSE:
    return buf_append(b, "false", 5) ? -ENOMEM : 0;
  case JSON_INTEGER:
    return jw_int(b, json_integer_value(v));
  case JSON_REAL:
    return codec_json_real(b, json_real_value(v));
  case JSON_STRING:
    return jw_string(b, json_string_value(v), json_string_length(v));
  case JSON_ARRAY: {
    if (buf_putc(b, '[')) return -ENOMEM;
    size_t n = json_array_size(v);
    for (size_t i = 0; i < n; i++) {
      if (i && buf_putc(b, ',')) return -ENOMEM;
      int rc = jw_value(b, json_array_get(v, i), depth + 1);
      if (rc) return rc;
    }
    return buf_putc(b, ']') ? -ENOMEM : 0;
  }
  case JSON_OBJECT: {
    if (buf_putc(b, '{')) return -ENOMEM;
    bool first = true;
    for (void *it = json_object_iter((json_t *)v); it; it = json_object_iter_next((json_t *)v, it)) {
      if (!first && buf_putc(b, ',')) return -ENOMEM;
      first = false;
      const char *k = json_object_iter_key(it);
      int rc = jw_string(b, k, strlen(k));
      if (!rc) rc = buf_putc(b, ':') ? -ENOMEM : 0;
      if (!rc) rc = jw_value(b, json_object_iter_value(it), depth + 1);
      if (rc) return rc;
    }
    return buf_putc(b, '}') ? -ENOMEM : 0;
  }
  }
  return -EINVAL;
}

static int mp_write_cb(void *b, const char *p, size_t n) { return buf_append(b, p, n) ? -1 : 0; }

/* Returns 0, -1 when the packer's write callback failed (out of memory), or -EINVAL. */
static int mp_pack(msgpack_packer *pk, const json_t *v, int depth) {
  if (depth > ENCODE_MAX_DEPTH) return -EINVAL;
  switch (json_typeof(v)) {
  case JSON_NULL:
    return msgpack_pack_nil(pk);
  case JSON_TRUE:
    return msgpack_pack_true(pk);
  case JSON_FALSE:
    return msgpack_pack_false(pk);
  case JSON_INTEGER:
    return msgpack_pack_int64(pk, json_integer_value(v));
  case JSON_REAL:
    return msgpack_pack_double(pk, json_real_value(v));
  case JSON_STRING: {
    size_t len = json_string_length(v);
    if (len > UINT32_MAX) return -EINVAL;
    int rc = msgpack_pack_str(pk, len);
    return rc ? rc : msgpack_pack_str_body(pk, json_string_value(v), len);
  }
  case JSON_ARRAY: {
    size_t n = json_array_size(v);
    if (n > UINT32_MAX) return -EINVAL;
    int rc = msgpack_pack_array(pk, n);
    for (size_t i = 0; !rc && i < n; i++) rc = mp_pack(pk, json_array_get(v, i), depth + 1);
    return rc;
  }
  case JSON_OBJECT: {
    json_t *o = (json_t *)v; /* jansson's iterator API is not const-correct; nothing is modified */
    size_t n = json_object_size(o);
    if (n > UINT32_MAX) return -EINVAL;
    int rc = msgpack_pack_map(pk, n);
    for (void *it = json_object_iter(o); !rc && it; it = json_object_iter_next(o, it)) {
      size_t klen = json_object_iter_key_len(it);
      if (klen > UINT32_MAX) return -EINVAL;
      rc = msgpack_pack_str(pk, klen);
      if (!rc) rc = msgpack_pack_str_body(pk, json_object_iter_key(it), klen);
      if (!rc) rc = mp_pack(pk, json_object_iter_value(it), depth + 1);
    }
    return rc;
  }
  }
  return -EINVAL;
}

int codec_encode(codec_t c, const json_t *v, buf_t *b) {
  if (!v) return -EINVAL;
  size_t start = b->len;
  int rc;
  switch (c) {
  case CODEC_JSON:
    rc = jw_value(b, v, 0);
    break;
  case CODEC_MSGPACK: {
    msgpack_packer pk;
    msgpack_packer_init(&pk, b, mp_write_cb);
    rc = mp_pack(&pk, v, 0);
    if (rc == -1) rc = -ENOMEM;
    break;
  }
  default:
    rc = -EINVAL;
  }
  if (rc) b->len = start;
  return rc;
}

static _Thread_local buf_t scratch = BUF_INIT;

void codec_thread_release(void) { buf_free(&scratch); }

frame_t *codec_frame_wrap(codec_t c, const uint8_t *p, size_t len, uint32_t flags) {
  return frame_from(p, len, flags | (c == CODEC_MSGPACK ? FRAME_BINARY : 0));
}

frame_t *codec_frame(codec_t c, const json_t *v, uint32_t flags) {
  buf_reset(&scratch);
  if (codec_encode(c, v, &scratch)) return NULL;
  frame_t *f = codec_frame_wrap(c, scratch.data, scratch.len, flags);
  if (scratch.cap > SCRATCH_KEEP) buf_free(&scratch);
  return f;
}

char *codec_json_text(const json_t *v) {
  if (!v) return NULL;
  buf_reset(&scratch);
  char *out = NULL;
  if (!jw_value(&scratch, v, 0) && (out = malloc(scratch.len + 1))) {
    memcpy(out, scratch.data, scratch.len);
    out[scratch.len] = 0;
  }
  if (scratch.cap > SCRATCH_KEEP) buf_free(&scratch);
  return out;
}

size_t codec_json_size(const json_t *v) {
  if (!v) return 0;
  buf_reset(&scratch);
  size_t n = jw_value(&scratch, v, 0) ? 0 : scratch.len;
  if (scratch.cap > SCRATCH_KEEP) buf_free(&scratch);
  return n;
}

static int hex4(const uint8_t *p) {
  int v = 0;
  for (int i = 0; i < 4; i++) {
    int c = p[i], d;
    if (c >= '0' && c <= '9')
      d = c - '0';
    else if (c >= 'a' && c <= 'f')
      d = c - 'a' + 10;
    else if (c >= 'A' && c <= 'F')
      d = c - 'A' + 10;
    else
      return -1;
    v = v * 16 + d;
  }
  return v;
}

size_t codec_json_unescape(const uint8_t *p, const uint8_t *end, uint8_t out[4], size_t *outlen) {
  static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
  if (end - p < 2 || p[0] != '\\') return 0;
  const char *hit = p[1] ? strchr(from, p[1]) : NULL;
  if (hit) {
    out[0] = (uint8_t)to[hit - from];
    *outlen = 1;
    return 2;
  }
  if (p[1] != 'u' || end - p < 6) return 0;
  int cp = hex4(p + 2);
  size_t took = 6;
  if (cp < 0 || (cp >= 0xdc00 && cp <= 0xdfff)) return 0; /* not hex, or a lone low surrogate */
  if (cp >= 0xd800 && cp <= 0xdbff) {                     /* a high surrogate: its low half must follow */
    if (end - p < 12 || p[6] != '\\' || p[7] != 'u') return 0;
    int lo = hex4(p + 8);
    if (lo < 0xdc00 || lo > 0xdfff) return 0;
    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
    took = 12;
  }
  unsigned c = (unsigned)cp;
  if (c < 0x80) {
    out[0] = (uint8_t)c;
    *outlen = 1;
  } else if (c < 0x800) {
    out[0] = (uint8_t)(0xc0 | c >> 6), out[1] = (uint8_t)(0x80 | (c & 0x3f));
    *outlen = 2;
  } else if (c < 0x10000) {
    out[0] = (uint8_t)(0xe0 | c >> 12), out[1] = (uint8_t)(0x80 | ((c >> 6) & 0x3f));
    out[2] = (uint8_t)(0x80 | (c & 0x3f));
    *outlen = 3;
  } else {
    out[0] = (uint8_t)(0xf0 | c >> 18), out[1] = (uint8_t)(0x80 | ((c >> 12) & 0x3f));
    out[2] = (uint8_t)(0x80 | ((c >> 6) & 0x3f)), out[3] = (uint8_t)(0x80 | (c & 0x3f));
    *outlen = 4;
  }
  return took;
}
