#include "proto/request.h"
#include "proto/v1.h"

#include <stddef.h>
#include <string.h>

#define TOKEN_MAX     8192
#define CLIENT_MAX    64
#define OP_MAX_FIELDS 6

static const char *const op_names[OP__COUNT] = {
#define X(name, str) [OP_##name] = str,
    OP_MAP(X)
#undef X
};

const char *op_name(enum op op) { return ((unsigned)op < OP__COUNT) ? op_names[op] : "unknown"; }

bool room_name_valid(const char *s) {
  if (!s) return false;
  size_t n = 0;
  for (; s[n]; n++) {
    unsigned char c = (unsigned char)s[n];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
              c == '-' || c == '.' || c == ':' || c == '@';
    if (!ok || n == ROOM_NAME_MAX) return false;
  }
  return n > 0;
}

/* ---- the op table -------------------------------------------------------------------------------- */

enum ftype {
  FT_STR,  /* string of min..max bytes without NUL -> const char * */
  FT_ROOM, /* string that is a valid room name (else PERR_BAD_ROOM) -> const char * */
  FT_UINT, /* integer >= 0 -> int64_t, plus a bool "present" member */
  FT_ANY,  /* any value, null included -> json_t * */
  FT_BOOL, /* true/false -> bool */
  FT_IDS,  /* array of 1..max_len strings of 1..128 bytes without NUL -> json_t * */
};

enum fmsg { FM_MISSING, FM_TYPE, FM_RANGE, FM_NUL, FM__COUNT };

struct field {
  const char *name; /* NULL ends an op's list */
  enum ftype type;
  bool required;
  size_t min_len, max_len; /* FT_STR: byte length bounds */
  size_t off;              /* the member of struct request that receives the value */
  size_t has_off;          /* FT_UINT: the bool member set when the field is present */
  const char *msg[FM__COUNT];
};

/* Offset of a struct request member, checked at compile time to be of type T. */
#define MEMBER(m, T)                                                                                         \
  (offsetof(struct request, m) + 0 * sizeof(char[_Generic(((struct request *)0)->m, T : 1)]))
#define STR_(x)     #x
#define XSTR(x)     STR_(x)
#define MISSING(nm) "missing field '" nm "'"

/* The row of one field; its messages are built at compile time, so they are static strings. */
#define F_STR(nm, member, req, lo, hi)                                                                       \
  {                                                                                                          \
    .name = nm, .type = FT_STR, .required = req, .min_len = lo, .max_len = hi,                               \
    .off = MEMBER(member, const char *), .msg = {                                                            \
      [FM_MISSING] = MISSING(nm),                                                                            \
      [FM_TYPE] = "field '" nm "' must be a string",                                                         \
      [FM_RANGE] = "field '" nm "' must be " XSTR(lo) ".." XSTR(hi) " bytes",                                \
      [FM_NUL] = "field '" nm "' must not contain NUL bytes"                                                 \
    }                                                                                                        \
  }
#define F_ROOM(nm, member, req)                                                                              \
  {                                                                                                          \
    .name = nm, .type = FT_ROOM, .required = req, .off = MEMBER(member, const char *), .msg = {              \
      [FM_MISSING] = MISSING(nm),                                                                            \
      [FM_TYPE] = "field '" nm "' must be a string",                                                         \
      [FM_RANGE] = "field '" nm "' is not a valid room name",                                                \
      [FM_NUL] = "field '" nm "' is not a valid room name"                                                   \
    }                                                                                                        \
  }
#define F_UINT(nm, member, has, req)                                                                         \
  {                                                                                                          \
    .name = nm, .type = FT_UINT, .required = req, .off = MEMBER(member, int64_t),                            \
    .has_off = MEMBER(has, bool), .msg = {                                                                   \
      [FM_MISSING] = MISSING(nm),                                                                            \
      [FM_TYPE] = "field '" nm "' must be a non-negative integer",                                           \
      [FM_RANGE] = "field '" nm "' must be a non-negative integer"                                           \
    }                                                                                                        \
  }
#define F_ANY(nm, member, req)                                                                               \
  {                                                                                                          \
    .name = nm, .type = FT_ANY, .required = req, .off = MEMBER(member, json_t *), .msg = {                   \
      [FM_MISSING] = MISSING(nm)                                                                             \
    }                                                                                                        \
  }

#define F_BOOL(nm, member, req)                                                                              \
  {                                                                                                          \
    .name = nm, .type = FT_BOOL, .required = req, .off = MEMBER(member, bool), .msg = {                      \
      [FM_MISSING] = MISSING(nm),                                                                            \
      [FM_TYPE] = "field '" nm "' must be true or false"                                                     \
    }                                                                                                        \
  }
#define F_IDS(nm, member, req, hi)                                                                           \
  {                                                                                                          \
    .name = nm, .type = FT_IDS, .required = req, .max_len = hi, .off = MEMBER(member, json_t *), .msg = {    \
      [FM_MISSING] = MISSING(nm),                                                                            \
      [FM_TYPE] = "field '" nm "' must be an array of user ids",                                             \
      [FM_RANGE] = "field '" nm "' must hold 1.." XSTR(hi) " user ids of 1..128 bytes"                       \
    }                                                                                                        \
  }

/* docs/protocol.md "Requests": one row per op. */
static const struct field op_fields[OP__COUNT][OP_MAX_FIELDS] = {
    [OP_HELLO] = {F_STR("token", token, false, 0, TOKEN_MAX), F_STR("client", client, false, 0, CLIENT_MAX),
                  F_STR("resume", resume, false, 1, 128)},
    [OP_JOIN] = {F_ROOM("room", room, true), F_UINT("since", since, has_since, false)},
    [OP_LEAVE] = {F_ROOM("room", room, true), F_BOOL("forget", forget, false)},
    [OP_SEND] = {F_ROOM("room", room, true), F_ANY("body", body, true),
                 F_STR("cmid", cmid, true, 1, CMID_MAX)},
    [OP_HISTORY] = {F_ROOM("room", room, true), F_UINT("before", before, has_before, false),
                    F_UINT("after", after, has_after, false), F_UINT("limit", limit, has_limit, false)},
    [OP_PING] = {{.name = NULL}},
    [OP_TYPING] = {F_ROOM("room", room, true), F_BOOL("active", active, true)},
    [OP_PRESENCE] = {F_ROOM("room", room, false), F_IDS("users", users, false, 100)},
    [OP_ROOMS] = {{.name = NULL}},
    [OP_REFRESH] = {F_STR("token", token, true, 1, TOKEN_MAX)},
    [OP_READ] = {F_ROOM("room", room, true), F_UINT("seq", seq, has_seq, true)},
};

/* ---- parsing ------------------------------------------------------------------------------------- */

bool request_id_valid(const json_t *id) {
  if (json_is_integer(id)) return true;
  if (!json_is_string(id)) return false;
  size_t n = json_string_length(id);
  return n >= 1 && n <= REQ_ID_MAX;
}

static enum perr fail(const struct field *f, enum fmsg m, enum perr code, const char **msg) {
  *msg = f->msg[m];
  return code;
}

static enum perr parse_field(json_t *doc, const struct field *f, struct request *req, const char **msg) {
  json_t *v = json_object_get(doc, f->name);
  if (!v) return f->required ? fail(f, FM_MISSING, PERR_BAD_REQUEST, msg) : PERR_OK;
  char *dst = (char *)req + f->off;
  switch (f->type) {
  case FT_STR:
  case FT_ROOM: {
    if (!json_is_string(v)) return fail(f, FM_TYPE, PERR_BAD_REQUEST, msg);
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    enum perr code = f->type == FT_ROOM ? PERR_BAD_ROOM : PERR_BAD_REQUEST;
    if (strlen(s) != n) return fail(f, FM_NUL, code, msg);
    if (f->type == FT_ROOM ? !room_name_valid(s) : (n < f->min_len || n > f->max_len))
      return fail(f, FM_RANGE, code, msg);
    memcpy(dst, &s, sizeof s);
    break;
  }
  case FT_UINT: {
    if (!json_is_integer(v)) return fail(f, FM_TYPE, PERR_BAD_REQUEST, msg);
    int64_t i = json_integer_value(v);
    if (i < 0) return fail(f, FM_RANGE, PERR_BAD_REQUEST, msg);
    bool t = true;
    memcpy(dst, &i, sizeof i);
    memcpy((char *)req + f->has_off, &t, sizeof t);
    break;
  }
  case FT_ANY:
    memcpy(dst, &v, sizeof v);
    break;
  case FT_BOOL: {
    if (!json_is_boolean(v)) return fail(f, FM_TYPE, PERR_BAD_REQUEST, msg);
    bool b = json_is_true(v);
    memcpy(dst, &b, sizeof b);
    break;
  }
  case FT_IDS: {
    if (!json_is_array(v)) return fail(f, FM_TYPE, PERR_BAD_REQUEST, msg);
    size_t n = json_array_size(v), i;
    if (n < 1 || n > f->max_len) return fail(f, FM_RANGE, PERR_BAD_REQUEST, msg);
    json_t *e;
    json_array_foreach(v, i, e) {
      if (!json_is_string(e)) return fail(f, FM_TYPE, PERR_BAD_REQUEST, msg);
      size_t len = json_string_length(e);
      if (len < 1 || len > 128 || strlen(json_string_value(e)) != len)
        return fail(f, FM_RANGE, PERR_BAD_REQUEST, msg);
    }
    memcpy(dst, &v, sizeof v);
    break;
  }
  }
  return PERR_OK;
}

enum perr request_parse(json_t *doc, struct request *req, const char **msg) {
  memset(req, 0, sizeof *req);
  *msg = NULL;
  if (!json_is_object(doc)) {
    *msg = "frame is not a map";
    return PERR_BAD_FRAME;
  }
  json_t *id = json_object_get(doc, "id");
  if (!request_id_valid(id)) {
    *msg = "missing or invalid id";
    return PERR_BAD_REQUEST;
  }
  req->id = id;

  json_t *op = json_object_get(doc, "op");
  if (!json_is_string(op)) {
    *msg = "missing or invalid op";
    return PERR_BAD_REQUEST;
  }
  const char *name = json_string_value(op);
  size_t len = json_string_length(op);
  int found = -1;
  for (int i = 0; i < OP__COUNT; i++)
    if (strlen(op_names[i]) == len && memcmp(op_names[i], name, len) == 0) found = i;
  if (found < 0) {
    *msg = "unknown op";
    return PERR_UNKNOWN_OP;
  }
  req->op = (enum op)found;

  for (const struct field *f = op_fields[found]; f < op_fields[found] + OP_MAX_FIELDS && f->name; f++) {
    enum perr e = parse_field(doc, f, req, msg);
    if (e != PERR_OK) return e;
  }
  return PERR_OK;
}

json_t *request_peek_id(codec_t c, const uint8_t *p, size_t n) {
  json_t *id = codec_peek_id(c, p, n);
  if (id && !request_id_valid(id)) {
    json_decref(id);
    id = NULL;
  }
  return id;
}
