/* lua: sandboxed Lua 5.4 scripts (docs/hooks.md "Lua scripts").
 *
 * One lua_State per script, not one shared state with an _ENV per script: the memory cap is then exact per
 * script (the allocator of a state is the cap), a script that exhausts its memory or wedges its state is
 * reset alone, reload is "build a new state, swap on success", and scripts cannot reach each other through
 * the shared string metatable or library tables. The price is ~30 KiB per script, which is nothing here.
 *
 * Sandbox: a capped allocator; only base, string, table, math, utf8 and coroutine are opened, and the
 * script's globals are a fresh allow-listed table installed as the chunk's _ENV (the state's real globals
 * are unreachable: no debug library, no getfenv). No dofile, loadfile, require, collectgarbage,
 * string.dump; `load` accepts text chunks only and binds them to the script's env; setmetatable refuses
 * __gc (finalizers run with hooks off, where nothing could stop them).
 *
 * Budget: every call (handler, timer, load) may spend hooks.lua.instructions and run for
 * hooks.lua.time_limit. A count hook adds up instructions and reads the clock every HOOK_EVERY
 * instructions; once a call is over, it re-arms itself with count 1 before raising, so every following
 * instruction raises again and `pcall` cannot swallow the kill. Work the hook cannot see, because it is
 * done in C between two instructions, is charged to the same budget before it is done: every byte the
 * allocator hands out (strings built by `..`, string.upper, table.concat ...), the bytes library functions
 * scan (wrapped: tonumber, utf8.len, string.sub ...), the ranges table functions loop over (insert, remove,
 * move, sort, unpack, concat), and for the pattern functions (find, match, gmatch, gsub) their worst-case
 * cost estimate (subject length ^ (backtracking quantifiers + 1)): a call that does not fit is refused as a
 * budget kill. Once a call is stopped the allocator refuses to grow anything until it has unwound. */
#include "hooks/internal.h"
#include "hooks/kvstore.h"
#include "hooks/wordset.h"
#include "proto/codec.h"

#include "util/log.h"

#include <errno.h>
#include <jansson.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define HOOK_EVERY     1000 /* most instructions between budget and clock checks ... */
#define HOOK_MIN       10   /* ... and fewest, while instructions are slow (long strings compared, coerced) */
#define MAX_STRING     (1u << 20) /* longest string a script may make: bounds what one instruction can scan */
#define BYTES_PER_INSN 8 /* C work on bytes (allocated, scanned) charged as one instruction per this many */
#define MAX_DEPTH      4 /* nested calls into one script (a hook that kicks, whose disconnect hook runs ...) */
#define JSON_DEPTH     64        /* nesting of converted values */
#define MAX_ENCODED    (1 << 20) /* bytes of JSON a script may produce in one value */

int lua__invoke(struct handler *hd, const struct parley_event *ev, struct hook_result *res);

static const char *const point_field_names[] = {"connect", "auth",  "join",       "message",
                                                "typing",  "leave", "disconnect", "offline"};

static int event_index(lua_State *L);

static char null_sentinel, empty_array_sentinel; /* parley.null, parley.empty_array */

struct lscript {
  struct hook_owner *owner;
  lua_State *L;
  size_t mem_used, mem_limit;
  int64_t budget, used;
  uint64_t deadline_ns; /* CLOCK_MONOTONIC time at which the running call is stopped */
  uint64_t window_ns;   /* time of the last count hook */
  bool killed, oom, loading, needs_reset;
  char kill_msg[400]; /* why the running call was stopped (the first reason), for the log */
  unsigned depth;
  int env_ref;
  struct handler *pending; /* handlers registered while loading */
  unsigned nseq;
  struct hook_timer *timers;
  char *source; /* the text this state was built from, for a reset */
  size_t source_len;
  json_t *json_tmp;                  /* freed after the call that converted it */
  const struct parley_event *cur_ev; /* the event of the running handler call, for the lazy event table */
  const void *cur_tbl;               /* ... and its table */
  char **options;                    /* keys read through parley.option_* (NULL-terminated, owned) */
  size_t noptions;
};

static struct lscript *script_of(lua_State *L) {
  void *ud;
  lua_getallocf(L, &ud);
  return ud;
}

static struct hooks *hooks_of(struct lscript *s) { return s->owner->hooks; }

#define slog(s, level, ...) script_log((s), (level), __VA_ARGS__)
__attribute__((format(printf, 3, 4))) static void script_log(struct lscript *s, int level, const char *fmt,
                                                             ...) {
  char msg[900];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  hooks__log(hooks_of(s), level, "script %s: %s", s->owner->name, msg);
}

/* ---- allocator and budget ---- */

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The value every kill raises: a string made when the state is built, so raising needs no allocation
 * (allocations are refused once a call is stopped). The reason is in s->kill_msg. */
static char kill_key;

/* Record why the running call is stopped; the first reason stays. */
__attribute__((format(printf, 2, 3))) static void set_killed(struct lscript *s, const char *fmt, ...) {
  if (s->killed) return;
  s->killed = true;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(s->kill_msg, sizeof s->kill_msg, fmt, ap);
  va_end(ap);
}

/* Stop the running call: every next instruction of this thread raises again (pcall can't help), and the
 * allocator refuses to grow anything until the call has unwound. */
static int raise_kill(lua_State *L) {
  lua_sethook(L, lua_gethook(L), LUA_MASKCOUNT, 1);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &kill_key);
  return lua_error(L);
}

/* The allocator is the memory cap and part of the budget: while a call runs, every byte it allocates is
 * charged (strings built by `..`, string.upper, table.concat ... are all allocated), and once the call is
 * stopped nothing may grow, so a script that catches the kill with pcall cannot go on building strings
 * between two instruction checks. */
static void *lalloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  struct lscript *s = ud;
  size_t old = ptr ? osize : 0;
  if (nsize == 0) {
    free(ptr);
    s->mem_used -= old;
    return NULL;
  }
  if (!ptr && osize == LUA_TSTRING && nsize > MAX_STRING + 64) return NULL; /* raises "not enough memory" */
  if (nsize > old && s->depth) {
    if (s->killed) return NULL;
    s->used += (int64_t)((nsize - old) / BYTES_PER_INSN);
    if (s->used >= s->budget) {
      set_killed(s, "instruction budget exceeded (hooks.lua.instructions = %lld, allocated bytes included)",
                 (long long)s->budget);
      return NULL;
    }
  }
  if (nsize > old && s->mem_used - old + nsize > s->mem_limit) {
    s->oom = true;
    return NULL;
  }
  void *p = realloc(ptr, nsize);
  if (!p) return NULL;
  s->mem_used = s->mem_used - old + nsize;
  return p;
}

/* Every HOOK_EVERY instructions: the instruction budget and the wall-clock deadline. */
static void count_hook(lua_State *L, lua_Debug *ar) {
  struct lscript *s = script_of(L);
  int count = lua_gethookcount(L);
  s->used += count;
  if (!s->killed) {
    uint64_t now = now_ns(), window = now - s->window_ns;
    s->window_ns = now;
    bool late = now >= s->deadline_ns;
    if (s->used < s->budget && !late) {
      /* Checks every HOOK_EVERY instructions while they are fast; when a window was slow (instructions on
       * long strings), every HOOK_MIN, so the deadline is seen soon after it passes. */
      int next = window > 2000000 ? HOOK_MIN : window < 200000 && count < HOOK_EVERY ? count * 2 : count;
      if (next > HOOK_EVERY) next = HOOK_EVERY;
      if (next != count) lua_sethook(L, count_hook, LUA_MASKCOUNT, next);
      return;
    }
    lua_getinfo(L, "Sl", ar); /* fills ar's own buffers: no allocation */
    const struct config *cfg = hooks_of(s)->cfg;
    if (late)
      set_killed(s, "%s:%d: time limit exceeded (hooks.lua.time_limit = %lld ms)", ar->short_src,
                 ar->currentline, (long long)(cfg ? cfg->hooks_lua_time_limit : 0));
    else
      set_killed(s, "%s:%d: instruction budget exceeded (hooks.lua.instructions = %lld)", ar->short_src,
                 ar->currentline, (long long)s->budget);
  }
  raise_kill(L);
}

static void begin_call(struct lscript *s) {
  if (s->depth++) return; /* a nested call shares the outer call's budget and deadline */
  const struct config *cfg = hooks_of(s)->cfg;
  s->budget = cfg ? cfg->hooks_lua_instructions : 1000000;
  if (cfg && (size_t)cfg->hooks_lua_memory > s->mem_limit) s->mem_limit = (size_t)cfg->hooks_lua_memory;
  s->window_ns = now_ns();
  s->deadline_ns = s->window_ns + (uint64_t)(cfg ? cfg->hooks_lua_time_limit : 200) * 1000000u;
  s->used = 0;
  s->killed = s->oom = false;
  s->kill_msg[0] = 0;
  lua_sethook(s->L, count_hook, LUA_MASKCOUNT, 100);
}

static void end_call(struct lscript *s) {
  if (--s->depth) return;
  if (s->oom) {
    lua_gc(s->L, LUA_GCCOLLECT);
    if (s->mem_used > s->mem_limit / 4 * 3 && !s->loading) {
      s->needs_reset = true; /* still full after a collection: the garbage is reachable, start over */
      hooks_of(s)->pending_reset = true;
    }
  }
  const struct config *cfg = hooks_of(s)->cfg;
  if (cfg && !s->loading) s->mem_limit = (size_t)cfg->hooks_lua_memory; /* a lowered cap applies from now */
  if (s->json_tmp) {
    json_decref(s->json_tmp);
    s->json_tmp = NULL;
  }
}

/* The error text of a failed call: the kill reason when the call was stopped, else the error value. */
static const char *call_error(struct lscript *s, lua_State *L) {
  if (s->killed) return s->kill_msg;
  return lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "(error object is not a string)";
}

/* Charge `insns` instructions of C work before doing it; raise as a budget kill when they do not fit. */
static void charge(lua_State *L, double insns, const char *what) {
  struct lscript *s = script_of(L);
  if (!s->depth) return;
  if (!s->killed && (double)s->used + insns < (double)s->budget) {
    s->used += (int64_t)insns;
    return;
  }
  set_killed(s, "%s: too expensive for the remaining budget (hooks.lua.instructions = %lld)", what,
             (long long)s->budget);
  raise_kill(L);
}

/* Charge n bytes of C work (scanned or written). */
static void charge_bytes(lua_State *L, double n, const char *what) {
  charge(L, n / BYTES_PER_INSN + 1, what);
}

/* Worst-case steps of a Lua pattern over n bytes: each backtracking item (x* x+ x- %b %1) multiplies by n,
 * except a last one that nothing able to fail follows (its continuation cannot make it backtrack); x?
 * doubles; an unanchored search tries n starts (string.gmatch always does: it does not treat '^' as an
 * anchor, and one charge covers every step of its iteration). An estimate, deliberately pessimistic. */
static double pattern_cost(const char *p, size_t pl, size_t n, bool anchors) {
  size_t i = 0;
  bool anchored = anchors && pl && p[0] == '^'; /* gmatch: a leading '^' is an ordinary character */
  if (anchored) i = 1;
  int q = 0, opt = 0;
  bool last_unbounded = false, dollar = false;
  while (i < pl) {
    char c = p[i];
    if (c == '(' || c == ')') {
      i++;
      continue;
    }
    if (c == '$' && i == pl - 1) {
      dollar = true;
      i++;
      continue;
    }
    if (c == '%' && i + 1 < pl && p[i + 1] == 'b') {
      q++;
      last_unbounded = true;
      i += 4;
      continue;
    }
    if (c == '%' && i + 1 < pl && p[i + 1] >= '1' && p[i + 1] <= '9') {
      q++;
      last_unbounded = true;
      i += 2;
      continue;
    }
    bool frontier = c == '%' && i + 1 < pl && p[i + 1] == 'f';
    if (frontier) i += 2, c = i < pl ? p[i] : 0;
    if (c == '%') {
      i += 2;
    } else if (c == '[') {
      i++;
      if (i < pl && p[i] == '^') i++;
      do { /* the first ']' is literal */
        if (i < pl && p[i] == '%') i++;
        i++;
      } while (i < pl && p[i] != ']');
      i++;
    } else {
      i++;
    }
    if (frontier) {
      last_unbounded = false;
      continue;
    }
    if (i < pl && (p[i] == '*' || p[i] == '+' || p[i] == '-')) {
      q++;
      last_unbounded = true;
      i++;
    } else if (i < pl && p[i] == '?') {
      opt++;
      last_unbounded = false;
      i++;
    } else {
      last_unbounded = false;
    }
  }
  if (last_unbounded && !dollar) q--;
  double m = (double)n + 1;
  double cost = (anchored ? 1.0 : m) * pow(m, q) * pow(2, opt > 60 ? 60 : opt) * ((double)pl + 1);
  return cost;
}

/* Call the wrapped original (upvalue 1) with the arguments as they are. */
static int call_orig(lua_State *L) {
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
  return lua_gettop(L);
}

static int w_pattern(lua_State *L, const char *what, bool plain_arg, bool anchors) {
  size_t n, pl;
  luaL_checklstring(L, 1, &n);
  const char *p = luaL_checklstring(L, 2, &pl);
  bool plain = plain_arg && lua_toboolean(L, 4);
  double steps = plain ? ((double)n + 1) * ((double)pl + 1) : pattern_cost(p, pl, n, anchors);
  struct lscript *s = script_of(L);
  if (s->depth && !s->killed && (double)s->used + steps / 2 >= (double)s->budget) {
    set_killed(s,
               "%s: pattern too expensive for a %zu-byte subject within the budget (use plain find or "
               "simpler patterns)",
               what, n);
    raise_kill(L);
  }
  charge(L, steps / 2, what);
  return call_orig(L);
}
static int w_find(lua_State *L) { return w_pattern(L, "string.find", true, true); }
static int w_match(lua_State *L) { return w_pattern(L, "string.match", false, true); }
static int w_gmatch(lua_State *L) { return w_pattern(L, "string.gmatch", false, false); }
static int w_gsub(lua_State *L) { return w_pattern(L, "string.gsub", false, true); }

/* string.rep: its output, and one step per copy (copies of "" still loop in C). */
static int w_rep(lua_State *L) {
  size_t l, lsep = 0;
  luaL_checklstring(L, 1, &l);
  lua_Integer n = luaL_checkinteger(L, 2);
  luaL_optlstring(L, 3, "", &lsep);
  if (n > 0) charge(L, (((double)l + (double)lsep) / BYTES_PER_INSN + 1) * (double)n, "string.rep");
  return call_orig(L);
}

/* Functions that read or write their string arguments in C (string.upper, utf8.len, tonumber ...): the
 * bytes of every string argument. What they allocate is charged again by the allocator. */
static int w_bytes(lua_State *L) {
  double n = 0;
  for (int i = 1, top = lua_gettop(L); i <= top; i++)
    if (lua_type(L, i) == LUA_TSTRING) n += (double)lua_rawlen(L, i);
  charge_bytes(L, n, "string function");
  return call_orig(L);
}

/* string.sub and string.byte work on the range they return, not the whole subject. */
static int w_range(lua_State *L, bool to_end) {
  size_t l;
  luaL_checklstring(L, 1, &l);
  lua_Integer n = (lua_Integer)l, i = luaL_optinteger(L, 2, 1);
  lua_Integer j = luaL_optinteger(L, 3, to_end ? -1 : i);
  if (i < 0) i = n + i + 1;
  if (i < 1) i = 1;
  if (j < 0) j = n + j + 1;
  if (j > n) j = n;
  charge_bytes(L, j >= i ? (double)(j - i + 1) : 0, "string function");
  return call_orig(L);
}
static int w_sub(lua_State *L) { return w_range(L, true); }
static int w_byte(lua_State *L) { return w_range(L, false); }

/* table functions that loop in C over a range (the length may come from __len: believe it and charge
 * it). */
static double len_arg(lua_State *L, int idx) {
  if (lua_type(L, idx) != LUA_TTABLE) return 0; /* the original raises */
  lua_Integer n = luaL_len(L, idx);
  return n > 0 ? (double)n : 0;
}
static int w_tlen(lua_State *L) { /* insert, remove, concat, unpack */
  double n = len_arg(L, 1);
  if (lua_isinteger(L, 2) && lua_isinteger(L, 3)) { /* concat(t, sep, i, j), unpack(t, i, j) */
    double a = (double)lua_tointeger(L, 2), b = (double)lua_tointeger(L, 3);
    if (lua_isinteger(L, 4)) a = b, b = (double)lua_tointeger(L, 4);
    if (b - a + 1 > n) n = b - a + 1;
  }
  charge(L, n + 1, "table function");
  return call_orig(L);
}
static int w_tmove(lua_State *L) { /* table.move(a1, f, e, t [, a2]) */
  double f = (double)luaL_checkinteger(L, 2), e = (double)luaL_checkinteger(L, 3);
  charge(L, (e >= f ? e - f + 1 : 0) + 1, "table.move");
  return call_orig(L);
}
static int w_tsort(lua_State *L) { /* comparisons in C; a Lua comparator is counted by the hook too */
  double n = len_arg(L, 1);
  charge(L, n * (log2(n + 1) + 1) * 2, "table.sort");
  return call_orig(L);
}

/* Refuses metatables with __gc: Lua runs finalizers with hooks disabled (so neither the instruction budget
 * nor the time limit could stop one), also when the state is closed at shutdown. A table is marked for
 * finalization only if its metatable has __gc when setmetatable is called (Lua 5.4 manual §2.5.3), so a
 * __gc added to the metatable afterwards never runs. Tables are the only finalizable values a script can
 * make: its userdata (parley.wordset) have locked metatables without __gc. */
static int w_setmetatable(lua_State *L) {
  if (lua_type(L, 2) == LUA_TTABLE) {
    lua_pushliteral(L, "__gc");
    int t = lua_rawget(L, 2);
    lua_pop(L, 1);
    if (t != LUA_TNIL) return luaL_error(L, "setmetatable: __gc metamethods are not allowed in scripts");
  }
  return call_orig(L);
}

static void wrap(lua_State *L, int tbl, const char *name, lua_CFunction f) {
  lua_getfield(L, tbl, name);
  lua_pushcclosure(L, f, 1);
  lua_setfield(L, tbl, name);
}

/* ---- JSON <-> Lua ---- */

static void push_json(lua_State *L, json_t *j, int depth) {
  if (depth > JSON_DEPTH) luaL_error(L, "JSON nested too deep");
  luaL_checkstack(L, 4, "JSON nested too deep");
  switch (json_typeof(j)) {
  case JSON_OBJECT: {
    lua_createtable(L, 0, (int)json_object_size(j));
    const char *k;
    json_t *v;
    json_object_foreach(j, k, v) {
      push_json(L, v, depth + 1);
      lua_setfield(L, -2, k);
    }
    break;
  }
  case JSON_ARRAY: {
    size_t n = json_array_size(j);
    if (!n) {
      lua_pushlightuserdata(L, &empty_array_sentinel);
      break;
    }
    lua_createtable(L, (int)n, 0);
    for (size_t i = 0; i < n; i++) {
      push_json(L, json_array_get(j, i), depth + 1);
      lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    break;
  }
  case JSON_STRING:
    lua_pushlstring(L, json_string_value(j), json_string_length(j));
    break;
  case JSON_INTEGER:
    lua_pushinteger(L, (lua_Integer)json_integer_value(j));
    break;
  case JSON_REAL:
    lua_pushnumber(L, json_real_value(j));
    break;
  case JSON_TRUE:
    lua_pushboolean(L, 1);
    break;
  case JSON_FALSE:
    lua_pushboolean(L, 0);
    break;
  default:
    lua_pushlightuserdata(L, &null_sentinel);
  }
}

/* A direct reader from JSON text to Lua values, for bodies as parleyd's own encoder writes them (compact,
 * valid, checked on the way in): no jansson tree in between. It gives up on anything else — malformed
 * text, an integer that does not fit, nesting past JSON_DEPTH — leaving the stack as it found it, and the
 * caller then takes the jansson path (which reports the error). */
struct jread {
  lua_State *L;
  const char *p, *end;
};

static bool jr_value(struct jread *r, int depth);

static void jr_ws(struct jread *r) {
  while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r')) r->p++;
}

/* A string at r->p (after its opening quote): pushed, r->p past the closing quote. */
static bool jr_string(struct jread *r) {
  const char *s = r->p;
  while (r->p < r->end && *r->p != '"' && *r->p != '\\' && (unsigned char)*r->p >= 0x20) r->p++;
  if (r->p >= r->end) return false;
  if (*r->p == '"') { /* no escapes: the common case */
    lua_pushlstring(r->L, s, (size_t)(r->p - s));
    r->p++;
    return true;
  }
  luaL_Buffer b;
  luaL_buffinit(r->L, &b);
  luaL_addlstring(&b, s, (size_t)(r->p - s));
  while (r->p < r->end && *r->p != '"') {
    unsigned char c = (unsigned char)*r->p;
    if (c < 0x20) return false;
    if (c != '\\') {
      luaL_addchar(&b, (char)c);
      r->p++;
      continue;
    }
    uint8_t u[4];
    size_t un, took = codec_json_unescape((const uint8_t *)r->p, (const uint8_t *)r->end, u, &un);
    if (!took) return false;
    luaL_addlstring(&b, (const char *)u, un);
    r->p += took;
  }
  if (r->p >= r->end) return false;
  r->p++;
  luaL_pushresult(&b);
  return true;
}

static bool jr_number(struct jread *r) {
  const char *s = r->p;
  bool real = false;
  if (r->p < r->end && *r->p == '-') r->p++;
  while (r->p < r->end) {
    char c = *r->p;
    if (c >= '0' && c <= '9') {
      r->p++;
    } else if (c == '.' || c == 'e' || c == 'E' || ((c == '+' || c == '-') && real)) {
      real = true;
      r->p++;
    } else {
      break;
    }
  }
  size_t n = (size_t)(r->p - s);
  if (!n || n >= 64) return false;
  char tmp[64];
  memcpy(tmp, s, n);
  tmp[n] = '\0';
  char *e;
  errno = 0;
  if (!real) {
    long long v = strtoll(tmp, &e, 10);
    if (errno || *e) return false; /* out of range: jansson decides */
    lua_pushinteger(r->L, (lua_Integer)v);
  } else {
    double v = strtod(tmp, &e);
    if (errno || *e) return false;
    lua_pushnumber(r->L, v);
  }
  return true;
}

static bool jr_value(struct jread *r, int depth) {
  if (depth > JSON_DEPTH || !lua_checkstack(r->L, 4)) return false;
  jr_ws(r);
  if (r->p >= r->end) return false;
  lua_State *L = r->L;
  switch (*r->p) {
  case '"':
    r->p++;
    return jr_string(r);
  case '{': {
    r->p++;
    lua_createtable(L, 0, 4);
    jr_ws(r);
    if (r->p < r->end && *r->p == '}') {
      r->p++;
      return true;
    }
    for (;;) {
      jr_ws(r);
      if (r->p >= r->end || *r->p != '"') return false;
      r->p++;
      if (!jr_string(r)) return false;
      jr_ws(r);
      if (r->p >= r->end || *r->p != ':') return false;
      r->p++;
      if (!jr_value(r, depth + 1)) return false;
      lua_rawset(L, -3);
      jr_ws(r);
      if (r->p < r->end && *r->p == ',') {
        r->p++;
        continue;
      }
      if (r->p < r->end && *r->p == '}') {
        r->p++;
        return true;
      }
      return false;
    }
  }
  case '[': {
    r->p++;
    jr_ws(r);
    if (r->p < r->end && *r->p == ']') {
      r->p++;
      lua_pushlightuserdata(L, &empty_array_sentinel);
      return true;
    }
    lua_createtable(L, 4, 0);
    for (lua_Integer i = 1;; i++) {
      if (!jr_value(r, depth + 1)) return false;
      lua_rawseti(L, -2, i);
      jr_ws(r);
      if (r->p < r->end && *r->p == ',') {
        r->p++;
        continue;
      }
      if (r->p < r->end && *r->p == ']') {
        r->p++;
        return true;
      }
      return false;
    }
  }
  case 't':
    if (r->end - r->p < 4 || memcmp(r->p, "true", 4)) return false;
    r->p += 4;
    lua_pushboolean(L, 1);
    return true;
  case 'f':
    if (r->end - r->p < 5 || memcmp(r->p, "false", 5)) return false;
    r->p += 5;
    lua_pushboolean(L, 0);
    return true;
  case 'n':
    if (r->end - r->p < 4 || memcmp(r->p, "null", 4)) return false;
    r->p += 4;
    lua_pushlightuserdata(L, &null_sentinel);
    return true;
  default:
    return jr_number(r);
  }
}

/* The whole text as one value, nothing after it; false (stack as it was) when jansson must decide. */
static bool push_json_direct(lua_State *L, const char *t, size_t n) {
  int top = lua_gettop(L);
  struct jread r = {.L = L, .p = t, .end = t + n};
  if (jr_value(&r, 0)) {
    jr_ws(&r);
    if (r.p == r.end) return true;
  }
  lua_settop(L, top);
  return false;
}

/* Push the value of JSON text; a string without escapes (the common body) skips the parser. */
static void push_json_text(lua_State *L, const char *t, size_t n) {
  if (n >= 2 && t[0] == '"' && t[n - 1] == '"' && !memchr(t + 1, '\\', n - 2)) {
    lua_pushlstring(L, t + 1, n - 2);
    return;
  }
  struct lscript *s = script_of(L);
  json_error_t je;
  json_t *j = json_loadb(t, n, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
  if (!j) luaL_error(L, "body is not valid JSON: %s", je.text);
  if (s->json_tmp) json_decref(s->json_tmp);
  s->json_tmp = j; /* freed by end_call even if a push below raises */
  push_json(L, j, 0);
}

static bool valid_utf8(const unsigned char *p, size_t n) {
  for (size_t i = 0; i < n;) {
    unsigned c = p[i];
    size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (!len || i + len > n) return false;
    unsigned cp = len == 1 ? c : len == 2 ? c & 0x1f : len == 3 ? c & 0x0f : c & 0x07;
    for (size_t k = 1; k < len; k++) {
      if ((p[i + k] & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (p[i + k] & 0x3f);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) ||
        (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) || (cp >= 0xd800 && cp <= 0xdfff))
      return false;
    i += len;
  }
  return true;
}

static int enc_string(buf_t *b, const char *s, size_t n, const char **err) {
  if (!valid_utf8((const unsigned char *)s, n)) {
    *err = "string is not valid UTF-8";
    return -1;
  }
  if (buf_reserve(b, n + 2)) return -ENOMEM;
  buf_putc(b, '"');
  size_t run = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    if (buf_append(b, s + run, i - run)) return -ENOMEM;
    run = i + 1;
    int rc = c == '"'    ? buf_append(b, "\\\"", 2)
             : c == '\\' ? buf_append(b, "\\\\", 2)
             : c == '\n' ? buf_append(b, "\\n", 2)
             : c == '\t' ? buf_append(b, "\\t", 2)
                         : buf_printf(b, "\\u%04x", c);
    if (rc) return -ENOMEM;
  }
  if (buf_append(b, s + run, n - run) || buf_putc(b, '"')) return -ENOMEM;
  return 0;
}

/* Encode the value at idx as compact JSON. Arrays: tables whose keys are exactly 1..n (n >= 1); every other
 * table is an object with string keys (integer keys written in decimal). */
static int encode(lua_State *L, int idx, buf_t *b, int depth, const char **err) {
  if (b->len > MAX_ENCODED) {
    *err = "value too large";
    return -1;
  }
  if (depth > JSON_DEPTH || !lua_checkstack(L, 4)) {
    *err = "value nested too deep (or a cycle)";
    return -1;
  }
  idx = lua_absindex(L, idx);
  switch (lua_type(L, idx)) {
  case LUA_TNIL:
    return buf_append(b, "null", 4);
  case LUA_TBOOLEAN:
    return lua_toboolean(L, idx) ? buf_append(b, "true", 4) : buf_append(b, "false", 5);
  case LUA_TNUMBER:
    if (lua_isinteger(L, idx)) return buf_printf(b, "%lld", (long long)lua_tointeger(L, idx));
    {
      lua_Number x = lua_tonumber(L, idx);
      if (!isfinite(x)) {
        *err = "NaN or infinite number";
        return -1;
      }
      return buf_printf(b, "%.17g", (double)x);
    }
  case LUA_TSTRING: {
    size_t n;
    const char *s = lua_tolstring(L, idx, &n);
    return enc_string(b, s, n, err);
  }
  case LUA_TLIGHTUSERDATA:
    if (lua_touserdata(L, idx) == &null_sentinel) return buf_append(b, "null", 4);
    if (lua_touserdata(L, idx) == &empty_array_sentinel) return buf_append(b, "[]", 2);
    break;
  case LUA_TTABLE: {
    lua_Unsigned len = lua_rawlen(L, idx), count = 0;
    bool array = len > 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
      lua_pop(L, 1);
      count++;
      if (array &&
          !(lua_isinteger(L, -1) && lua_tointeger(L, -1) >= 1 && (lua_Unsigned)lua_tointeger(L, -1) <= len))
        array = false;
    }
    if (array && count == len) {
      if (buf_putc(b, '[')) return -ENOMEM;
      for (lua_Unsigned i = 1; i <= len; i++) {
        if (i > 1 && buf_putc(b, ',')) return -ENOMEM;
        lua_rawgeti(L, idx, (lua_Integer)i);
        int rc = encode(L, -1, b, depth + 1, err);
        lua_pop(L, 1);
        if (rc) return rc;
      }
      return buf_putc(b, ']');
    }
    if (buf_putc(b, '{')) return -ENOMEM;
    bool first = true;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
      if (!first && buf_putc(b, ',')) return -ENOMEM;
      first = false;
      int rc;
      if (lua_type(L, -2) == LUA_TSTRING) {
        size_t kn;
        const char *k = lua_tolstring(L, -2, &kn);
        rc = enc_string(b, k, kn, err);
      } else if (lua_isinteger(L, -2)) {
        rc = buf_printf(b, "\"%lld\"", (long long)lua_tointeger(L, -2));
      } else {
        *err = "a table key is neither a string nor an integer";
        rc = -1;
      }
      if (!rc) rc = buf_putc(b, ':');
      if (!rc) rc = encode(L, -1, b, depth + 1, err);
      lua_pop(L, 1);
      if (rc) {
        lua_pop(L, 1);
        return rc;
      }
    }
    return buf_putc(b, '}');
  }
  default:
    break;
  }
  *err =
      lua_type(L, idx) == LUA_TFUNCTION ? "a function cannot be JSON" : "a value of this type cannot be JSON";
  return -1;
}

/* Encode the value at idx into *out (malloc'd, NUL-terminated) or raise. */
static char *encode_or_raise(lua_State *L, int idx, size_t *len) {
  buf_t b = BUF_INIT;
  const char *err = "out of memory";
  int rc = encode(L, idx, &b, 0, &err);
  if (!rc) rc = buf_putc(&b, 0);
  if (rc) {
    buf_free(&b);
    luaL_error(L, "cannot convert to JSON: %s", err);
  }
  *len = b.len - 1;
  return (char *)b.data;
}

/* ---- the parley table ---- */

static int l_hook(lua_State *L) {
  struct lscript *s = script_of(L);
  const char *name = luaL_checkstring(L, 1);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  lua_Integer prio = luaL_optinteger(L, 3, 0);
  int point = hooks_point_parse(name);
  if (point < 0) return luaL_error(L, "parley.hook: unknown hook '%s'", name);
  if (!s->loading) return luaL_error(L, "parley.hook: hooks are registered while the script loads");
  if (prio < -1000000 || prio > 1000000)
    return luaL_error(L, "parley.hook: priority out of -1000000..1000000");
  struct handler *hd = calloc(1, sizeof *hd);
  if (!hd) return luaL_error(L, "out of memory");
  lua_pushvalue(L, 2);
  hd->ref = luaL_ref(L, LUA_REGISTRYINDEX);
  hd->owner = s->owner;
  hd->point = point;
  hd->priority = (int)prio;
  hd->seq = s->nseq++;
  hd->ud = s;
  hd->invoke = lua__invoke;
  /* append: registration order is the tie-break */
  struct handler **pp = &s->pending;
  while (*pp) pp = &(*pp)->next;
  *pp = hd;
  return 0;
}

/* Reading an option declares it (hooks_check reports the keys of the section no script reads). */
static void declare_option(struct lscript *s, const char *key) {
  for (size_t i = 0; i < s->noptions; i++)
    if (!strcmp(s->options[i], key)) return;
  if (s->noptions >= 1000) return;
  char **o = realloc(s->options, (s->noptions + 2) * sizeof *o);
  if (!o) return;
  s->options = o;
  if (!(o[s->noptions] = strdup(key))) return;
  o[++s->noptions] = NULL;
}

const char *const *lua__options(const struct hook_owner *o) {
  static const char *const none[] = {NULL};
  const struct lscript *s = o->impl;
  return s && s->options ? (const char *const *)s->options : none;
}

static const struct ext_opt *option(lua_State *L, const char *key) {
  struct lscript *s = script_of(L);
  declare_option(s, key);
  const struct config *cfg = hooks_of(s)->cfg;
  return cfg ? config_ext_opt(config_ext(cfg, false, s->owner->name), key) : NULL;
}

static int l_option_string(lua_State *L) {
  const char *key = luaL_checkstring(L, 1);
  const struct ext_opt *o = option(L, key);
  if (o)
    lua_pushstring(L, o->value);
  else
    lua_settop(L, 2);
  return 1;
}

static int l_option_number(lua_State *L) {
  struct lscript *s = script_of(L);
  const char *key = luaL_checkstring(L, 1);
  lua_Number def = luaL_optnumber(L, 2, 0);
  bool has_min = !lua_isnoneornil(L, 3), has_max = !lua_isnoneornil(L, 4);
  lua_Number lo = luaL_optnumber(L, 3, 0), hi = luaL_optnumber(L, 4, 0);
  const struct ext_opt *o = option(L, key);
  if (!o) {
    lua_pushvalue(L, 2);
    if (lua_isnil(L, -1)) lua_pushinteger(L, 0);
    return 1;
  }
  if (!lua_stringtonumber(L, o->value)) {
    slog(s, LOG_WARN, "%s: scripts.%s.%s: '%s' is not a number; using %g", o->where, s->owner->name, key,
         o->value, (double)def);
    lua_pushvalue(L, 2);
    return 1;
  }
  lua_Number v = lua_tonumber(L, -1);
  if ((has_min && v < lo) || (has_max && v > hi)) {
    lua_Number c = has_min && v < lo ? lo : hi;
    slog(s, LOG_WARN, "%s: scripts.%s.%s: %s is out of range; using %g", o->where, s->owner->name, key,
         o->value, (double)c);
    lua_pop(L, 1);
    lua_pushvalue(L, has_min && v < lo ? 3 : 4);
  }
  return 1;
}

static int l_option_bool(lua_State *L) {
  struct lscript *s = script_of(L);
  const char *key = luaL_checkstring(L, 1);
  int def = lua_toboolean(L, 2);
  const struct ext_opt *o = option(L, key);
  if (!o) {
    lua_pushboolean(L, def);
    return 1;
  }
  static const char *const yes[] = {"true", "yes", "on", "1"}, *const no[] = {"false", "no", "off", "0"};
  for (int i = 0; i < 4; i++) {
    if (!strcasecmp(o->value, yes[i]) || !strcasecmp(o->value, no[i])) {
      lua_pushboolean(L, !strcasecmp(o->value, yes[i]));
      return 1;
    }
  }
  slog(s, LOG_WARN, "%s: scripts.%s.%s: '%s' is not a bool; using %s", o->where, s->owner->name, key,
       o->value, def ? "true" : "false");
  lua_pushboolean(L, def);
  return 1;
}

/* A list of words separated by blanks or commas; the default may be a table or such a string. */
static int l_option_list(lua_State *L) {
  const char *key = luaL_checkstring(L, 1);
  const struct ext_opt *o = option(L, key);
  if (!o && lua_istable(L, 2)) {
    lua_settop(L, 2);
    return 1;
  }
  const char *t = o ? o->value : luaL_optstring(L, 2, "");
  lua_newtable(L);
  lua_Integer n = 0;
  while (*t) {
    while (*t == ' ' || *t == ',' || *t == '\t' || *t == '\n') t++;
    const char *e = t;
    while (*e && *e != ' ' && *e != ',' && *e != '\t' && *e != '\n') e++;
    if (e > t) {
      lua_pushlstring(L, t, (size_t)(e - t));
      lua_rawseti(L, -2, ++n);
    }
    t = e;
  }
  return 1;
}

/* parley.option_globs(key [, default]): option_list for room globs; a glob that can never match a room
 * name is an error (the script does not load), reported at the option's file:line. */
static int l_option_globs(lua_State *L) {
  struct lscript *s = script_of(L);
  const char *key = luaL_checkstring(L, 1);
  const struct ext_opt *o = option(L, key);
  lua_pushcfunction(L, l_option_list);
  lua_insert(L, 1);
  lua_call(L, lua_gettop(L) - 1, 1);
  for (lua_Integer i = 1;; i++) {
    int t = lua_rawgeti(L, -1, i);
    if (t == LUA_TNIL) break;
    const char *g = lua_tostring(L, -1);
    if (t != LUA_TSTRING || !hooks_glob_can_match(g))
      return luaL_error(L,
                        "%s%sscripts.%s.%s: room glob '%s' can never match a room name (names are 1..128 of "
                        "A-Z a-z 0-9 _ . : @ -)",
                        o ? o->where : "", o ? ": " : "", s->owner->name, key, g ? g : "?");
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return 1;
}

/* parley.match(globs, name): whether name matches a glob (a string) or any glob of an array, with the
 * glob rules of conf.d's rooms.<glob> keys (`*` any run of characters, `?` one). */
static int l_match(lua_State *L) {
  size_t nl;
  const char *name = luaL_checklstring(L, 2, &nl);
  if (lua_type(L, 1) == LUA_TSTRING) { /* a glob with '*' may backtrack: name x glob steps */
    charge_bytes(L, ((double)lua_rawlen(L, 1) + 1) * ((double)nl + 1), "parley.match");
    lua_pushboolean(L, config_glob_match(lua_tostring(L, 1), name));
    return 1;
  }
  luaL_checktype(L, 1, LUA_TTABLE);
  for (lua_Integer i = 1;; i++) {
    int t = lua_rawgeti(L, 1, i);
    if (t == LUA_TNIL) break;
    if (t != LUA_TSTRING) return luaL_error(L, "parley.match: glob %d is not a string", (int)i);
    charge_bytes(L, ((double)lua_rawlen(L, -1) + 1) * ((double)nl + 1), "parley.match");
    bool hit = config_glob_match(lua_tostring(L, -1), name);
    lua_pop(L, 1);
    if (hit) {
      lua_pushboolean(L, 1);
      return 1;
    }
  }
  lua_pushboolean(L, 0);
  return 1;
}

static int level_of(const char *s) {
  int l = log_level_parse(s);
  return l < 0 ? LOG_INFO : l;
}

static int l_log(lua_State *L) {
  struct lscript *s = script_of(L);
  int level = level_of(luaL_checkstring(L, 1));
  size_t n;
  const char *msg = luaL_tolstring(L, 2, &n);
  slog(s, level, "%.*s", (int)(n > 800 ? 800 : n), msg);
  return 0;
}

static int l_print(lua_State *L) {
  struct lscript *s = script_of(L);
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (int i = 1, n = lua_gettop(L); i <= n; i++) {
    if (i > 1) luaL_addchar(&b, '\t');
    luaL_tolstring(L, i, NULL);
    luaL_addvalue(&b);
  }
  luaL_pushresult(&b);
  slog(s, LOG_INFO, "%s", lua_tostring(L, -1));
  return 0;
}

static int push_rc(lua_State *L, int rc) {
  if (!rc) {
    lua_pushboolean(L, 1);
    return 1;
  }
  lua_pushnil(L);
  lua_pushstring(L, rc == -ENOTSUP ? "not available" : strerror(-rc));
  return 2;
}

static int l_publish(lua_State *L) {
  struct lscript *s = script_of(L);
  const char *room = luaL_checkstring(L, 1);
  luaL_checkany(L, 2);
  size_t len;
  char *json = encode_or_raise(L, 2, &len);
  struct hooks *h = hooks_of(s);
  int rc = h->host.publish ? h->host.publish(h->host.ud, room, json, len) : -ENOTSUP;
  free(json);
  return push_rc(L, rc);
}

static int l_kick(lua_State *L) {
  struct lscript *s = script_of(L);
  const char *user = luaL_checkstring(L, 1);
  const char *reason = luaL_optstring(L, 2, "kicked");
  struct hooks *h = hooks_of(s);
  return push_rc(L, h->host.kick ? h->host.kick(h->host.ud, user, reason) : -ENOTSUP);
}

/* timers */

static void lua_timer_fire(struct hook_timer *tm) {
  struct lscript *s = tm->impl;
  lua_State *L = s->L;
  int top = lua_gettop(L);
  begin_call(s);
  lua_rawgeti(L, LUA_REGISTRYINDEX, tm->ref);
  int rc = lua_pcall(L, 0, 1, 0);
  bool killed = s->killed;
  if (rc == LUA_OK && killed) rc = LUA_ERRRUN;
  lua_Integer again = 0;
  if (rc != LUA_OK) {
    s->owner->errors++;
    if (killed || rc == LUA_ERRMEM) s->owner->budget_kills++;
    slog(s, LOG_ERROR, "timer: %s", call_error(s, L));
  } else if (lua_isinteger(L, -1) || lua_isnumber(L, -1)) {
    again = (lua_Integer)lua_tonumber(L, -1);
  }
  lua_settop(L, top);
  end_call(s);
  if (uv_is_closing((uv_handle_t *)&tm->t)) {
    /* cancelled by its own callback */
  } else if (again > 0) {
    hooks__timer_again(tm, (uint64_t)again);
  } else {
    luaL_unref(L, LUA_REGISTRYINDEX, tm->ref);
    hooks__timer_close(tm);
  }
  struct hooks *h = hooks_of(s);
  if (h->pending_reset && !h->depth) lua__reset_pending(h);
}

static int l_timer(lua_State *L) {
  struct lscript *s = script_of(L);
  lua_Integer after = luaL_checkinteger(L, 1);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  if (after < 0) after = 0;
  if (hooks_of(s)->checking) { /* hooks_check: no loop; nothing runs later */
    lua_pushinteger(L, 0);
    return 1;
  }
  struct hook_timer *tm = calloc(1, sizeof *tm);
  if (!tm) return luaL_error(L, "out of memory");
  tm->impl = s;
  tm->fire = lua_timer_fire;
  lua_pushvalue(L, 2);
  tm->ref = luaL_ref(L, LUA_REGISTRYINDEX);
  int rc = hooks__timer_start(hooks_of(s), &s->timers, tm, (uint64_t)after, 0);
  if (rc) {
    luaL_unref(L, LUA_REGISTRYINDEX, tm->ref);
    free(tm);
    return luaL_error(L, "parley.timer: %s", rc == -ENOTSUP ? "no event loop" : uv_strerror(rc));
  }
  lua_pushinteger(L, (lua_Integer)tm->id);
  return 1;
}

static int l_cancel(lua_State *L) {
  struct lscript *s = script_of(L);
  lua_Integer id = luaL_checkinteger(L, 1);
  for (struct hook_timer *tm = s->timers; tm; tm = tm->next)
    if ((lua_Integer)tm->id == id) {
      luaL_unref(L, LUA_REGISTRYINDEX, tm->ref);
      hooks__timer_close(tm);
      lua_pushboolean(L, 1);
      return 1;
    }
  lua_pushboolean(L, 0);
  return 1;
}

/* Milliseconds on a monotonic clock (for intervals; not a date). */
static int l_now(lua_State *L) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  lua_pushinteger(L, (lua_Integer)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
  return 1;
}

static int l_encode(lua_State *L) {
  luaL_checkany(L, 1);
  size_t len;
  char *json = encode_or_raise(L, 1, &len);
  lua_pushlstring(L, json, len); /* may raise (memory): json leaks then; bounded by MAX_ENCODED */
  free(json);
  return 1;
}

static int l_decode(lua_State *L) {
  size_t n;
  const char *t = luaL_checklstring(L, 1, &n);
  push_json_text(L, t, n);
  return 1;
}

/* ---- parley.wordset: whole-word matching in C (hooks/wordset.c), linear in the text, no Lua garbage per
 * message. The set is one userdata block (counted by the memory cap) holding a struct wordset. ---- */

#define WORDSET_MT "parley.wordset"

/* parley.wordset(list): list is an array of strings or one string of words separated by blanks/commas. */
static int l_wordset(lua_State *L) {
  lua_settop(L, 1);
  if (lua_type(L, 1) == LUA_TSTRING) { /* split through option_list's splitter */
    lua_pushcfunction(L, l_option_list);
    lua_pushliteral(L, "");
    lua_pushvalue(L, 1);
    lua_call(L, 2, 1);
    lua_replace(L, 1);
  }
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_Integer n = (lua_Integer)lua_rawlen(L, 1);
  size_t chars = 0;
  for (lua_Integer i = 1; i <= n; i++) {
    size_t l;
    lua_rawgeti(L, 1, i);
    if (!lua_isstring(L, -1)) return luaL_error(L, "parley.wordset: item %d is not a string", (int)i);
    lua_tolstring(L, -1, &l);
    lua_pop(L, 1);
    if (l > WORDSET_MAX_WORD)
      return luaL_error(L, "parley.wordset: word %d is longer than %d bytes", (int)i, WORDSET_MAX_WORD);
    chars += l;
  }
  size_t size = wordset_size((size_t)n, chars);
  if (!size) return luaL_error(L, "parley.wordset: too many words");
  struct wordset *ws = wordset_init(lua_newuserdatauv(L, size, 0), (size_t)n, chars);
  for (lua_Integer i = 1; i <= n; i++) {
    size_t l;
    lua_rawgeti(L, 1, i);
    const char *w = lua_tolstring(L, -1, &l);
    wordset_add(ws, w, l); /* false for "" and duplicates: skipped */
    lua_pop(L, 1);
  }
  luaL_setmetatable(L, WORDSET_MT);
  return 1;
}

/* set:find(text) -> word, start, end (1-based, inclusive) of the first listed word, or nil */
static int l_ws_find(lua_State *L) {
  const struct wordset *ws = luaL_checkudata(L, 1, WORDSET_MT);
  size_t n, s, e;
  const char *t = luaL_checklstring(L, 2, &n);
  charge_bytes(L, (double)n, "wordset:find");
  if (!wordset_find(ws, t, n, 0, &s, &e)) {
    lua_pushnil(L);
    return 1;
  }
  lua_pushlstring(L, t + s, e - s);
  lua_pushinteger(L, (lua_Integer)s + 1);
  lua_pushinteger(L, (lua_Integer)e);
  return 3;
}

static void ws_emit(void *ud, const char *p, size_t n) { luaL_addlstring(ud, p, n); }

/* set:mask(text [, char]) -> text with each listed word replaced by char per character, count */
static int l_ws_mask(lua_State *L) {
  const struct wordset *ws = luaL_checkudata(L, 1, WORDSET_MT);
  size_t n, cl;
  const char *t = luaL_checklstring(L, 2, &n);
  const char *ch = luaL_optlstring(L, 3, "*", &cl);
  charge_bytes(L, (double)n * (double)(cl + 1), "wordset:mask");
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  size_t count = wordset_mask(ws, t, n, ch, cl, ws_emit, &b);
  if (!count) {
    lua_settop(L, 2);
    lua_pushinteger(L, 0);
    return 2;
  }
  luaL_pushresult(&b);
  lua_pushinteger(L, (lua_Integer)count);
  return 2;
}

static int l_ws_has(lua_State *L) {
  const struct wordset *ws = luaL_checkudata(L, 1, WORDSET_MT);
  size_t n;
  const char *w = luaL_checklstring(L, 2, &n);
  lua_pushboolean(L, wordset_has(ws, w, n));
  return 1;
}

static int l_ws_len(lua_State *L) {
  const struct wordset *ws = luaL_checkudata(L, 1, WORDSET_MT);
  lua_pushinteger(L, (lua_Integer)wordset_count(ws));
  return 1;
}

/* ---- parley.kv: a bounded in-memory store per script name (hooks/kvstore.c), owned by the hook_owner so
 * it survives reloads ---- */

static struct kvstore *kv_of(lua_State *L) {
  struct lscript *s = script_of(L);
  if (!s->owner->kv && !(s->owner->kv = kvstore_new())) luaL_error(L, "out of memory");
  return s->owner->kv;
}

static int l_kv_get(lua_State *L) {
  size_t n;
  const char *k = luaL_checklstring(L, 1, &n);
  struct kvstore_value v;
  if (!kvstore_get(kv_of(L), k, n, &v)) {
    lua_pushnil(L);
    return 1;
  }
  switch (v.type) {
  case KVSTORE_INT:
    lua_pushinteger(L, (lua_Integer)v.i);
    break;
  case KVSTORE_FLOAT:
    lua_pushnumber(L, (lua_Number)v.f);
    break;
  case KVSTORE_BOOL:
    lua_pushboolean(L, (int)v.i);
    break;
  default:
    lua_pushlstring(L, v.s, v.slen);
  }
  return 1;
}

/* The Lua face of kvstore_set/kvstore_incr's failures: raises, or pushes nil, "kv full" and returns 2. */
static int kv_fail(lua_State *L, int r) {
  switch (r) {
  case KVSTORE_E_KEY:
    return luaL_error(L, "parley.kv: key longer than %d bytes", KVSTORE_MAX_KEY);
  case KVSTORE_E_VALUE:
    return luaL_error(L, "parley.kv: value longer than %d bytes", (int)KVSTORE_MAX_VALUE);
  case KVSTORE_E_FULL:
    lua_pushnil(L);
    lua_pushstring(L, "kv full");
    return 2;
  default:
    return luaL_error(L, "out of memory");
  }
}

static int l_kv_set(lua_State *L) {
  size_t n;
  const char *k = luaL_checklstring(L, 1, &n);
  lua_settop(L, 2);
  struct kvstore *kv = kv_of(L);
  struct kvstore_value v = {0};
  switch (lua_type(L, 2)) {
  case LUA_TNIL:
    kvstore_del(kv, k, n);
    lua_pushboolean(L, 1);
    return 1;
  case LUA_TNUMBER:
    if (lua_isinteger(L, 2))
      v.type = KVSTORE_INT, v.i = (int64_t)lua_tointeger(L, 2);
    else
      v.type = KVSTORE_FLOAT, v.f = (double)lua_tonumber(L, 2);
    break;
  case LUA_TBOOLEAN:
    v.type = KVSTORE_BOOL, v.i = lua_toboolean(L, 2);
    break;
  case LUA_TSTRING:
    v.type = KVSTORE_STRING, v.s = lua_tolstring(L, 2, &v.slen);
    break;
  default:
    return luaL_error(L, "parley.kv: values are strings, numbers or booleans");
  }
  int r = kvstore_set(kv, k, n, &v);
  if (r) return kv_fail(L, r);
  lua_pushboolean(L, 1);
  return 1;
}

static int l_kv_del(lua_State *L) {
  size_t n;
  const char *k = luaL_checklstring(L, 1, &n);
  kvstore_del(kv_of(L), k, n);
  lua_pushboolean(L, 1);
  return 1;
}

static int l_kv_incr(lua_State *L) {
  size_t n;
  const char *k = luaL_checklstring(L, 1, &n);
  lua_Integer by = luaL_optinteger(L, 2, 1);
  int64_t v;
  int r = kvstore_incr(kv_of(L), k, n, (int64_t)by, &v);
  if (r == KVSTORE_E_TYPE) return luaL_error(L, "parley.kv.incr: '%s' is not an integer", k);
  if (r) return kv_fail(L, r);
  lua_pushinteger(L, (lua_Integer)v);
  return 1;
}

/* parley.kv.keys([prefix]) -> array of keys (unordered) */
static int l_kv_keys(lua_State *L) {
  size_t pn = 0;
  const char *prefix = luaL_optlstring(L, 1, "", &pn);
  struct kvstore *kv = kv_of(L);
  lua_newtable(L);
  lua_Integer i = 0;
  struct kvstore_iter it = {0};
  const char *k;
  size_t kn;
  while (kvstore_next(kv, &it, &k, &kn))
    if (kn >= pn && !memcmp(k, prefix, pn)) {
      lua_pushlstring(L, k, kn);
      lua_rawseti(L, -2, ++i);
    }
  return 1;
}

/* load(chunk [, chunkname [, mode [, env]]]): text only, bound to the script's env unless env is given. */
static int l_load(lua_State *L) {
  size_t n;
  if (lua_type(L, 1) != LUA_TSTRING) {
    lua_pushnil(L);
    lua_pushliteral(L, "load: only string chunks are allowed");
    return 2;
  }
  const char *chunk = lua_tolstring(L, 1, &n);
  charge_bytes(L, (double)n, "load");
  const char *name = luaL_optstring(L, 2, "=(load)");
  int env = lua_gettop(L) >= 4 ? 4 : 0;
  if (luaL_loadbufferx(L, chunk, n, name, "t") != LUA_OK) {
    lua_pushnil(L);
    lua_insert(L, -2);
    return 2;
  }
  if (env)
    lua_pushvalue(L, env);
  else
    lua_rawgeti(L, LUA_REGISTRYINDEX, script_of(L)->env_ref);
  if (!lua_setupvalue(L, -2, 1)) lua_pop(L, 1);
  return 1;
}

static void open_sandbox(lua_State *L, struct lscript *s) {
  static const char *const base_allowed[] = {"assert", "error",        "ipairs",       "next",     "pairs",
                                             "pcall",  "rawequal",     "rawget",       "rawlen",   "rawset",
                                             "select", "setmetatable", "getmetatable", "tonumber", "tostring",
                                             "type",   "xpcall",       "_VERSION",     NULL};
  luaL_requiref(L, "_G", luaopen_base, 1);
  int g = lua_gettop(L);
  lua_newtable(L); /* env */
  int env = lua_gettop(L);
  for (size_t i = 0; base_allowed[i]; i++) {
    lua_getfield(L, g, base_allowed[i]);
    lua_setfield(L, env, base_allowed[i]);
  }
  lua_pushcfunction(L, l_load);
  lua_setfield(L, env, "load");
  lua_pushcfunction(L, l_print);
  lua_setfield(L, env, "print");
  static const struct {
    const char *name;
    lua_CFunction open;
  } libs[] = {{LUA_STRLIBNAME, luaopen_string},
              {LUA_TABLIBNAME, luaopen_table},
              {LUA_MATHLIBNAME, luaopen_math},
              {LUA_UTF8LIBNAME, luaopen_utf8},
              {LUA_COLIBNAME, luaopen_coroutine}};
  for (size_t i = 0; i < sizeof libs / sizeof libs[0]; i++) {
    luaL_requiref(L, libs[i].name, libs[i].open, 0);
    lua_setfield(L, env, libs[i].name);
  }
  /* The string table is also the strings' metatable __index (s:find): wrap it in place. */
  lua_getfield(L, env, "string");
  int str = lua_gettop(L);
  wrap(L, str, "find", w_find);
  wrap(L, str, "match", w_match);
  wrap(L, str, "gmatch", w_gmatch);
  wrap(L, str, "gsub", w_gsub);
  wrap(L, str, "rep", w_rep);
  static const char *const str_bytes[] = {"char",    "format", "lower", "pack", "packsize",
                                          "reverse", "unpack", "upper", NULL};
  for (size_t i = 0; str_bytes[i]; i++) wrap(L, str, str_bytes[i], w_bytes);
  wrap(L, str, "sub", w_sub);
  wrap(L, str, "byte", w_byte);
  lua_pushnil(L);
  lua_setfield(L, str, "dump");
  lua_pop(L, 1);
  lua_getfield(L, env, "utf8");
  static const char *const utf8_bytes[] = {"char", "codepoint", "len", "offset", NULL};
  for (size_t i = 0; utf8_bytes[i]; i++) wrap(L, lua_gettop(L), utf8_bytes[i], w_bytes);
  lua_pop(L, 1);
  lua_getfield(L, env, "table");
  int tab = lua_gettop(L);
  wrap(L, tab, "insert", w_tlen);
  wrap(L, tab, "remove", w_tlen);
  wrap(L, tab, "concat", w_tlen);
  wrap(L, tab, "unpack", w_tlen);
  wrap(L, tab, "move", w_tmove);
  wrap(L, tab, "sort", w_tsort);
  lua_pop(L, 1);
  wrap(L, env, "setmetatable", w_setmetatable);
  wrap(L, env, "tonumber", w_bytes);
  lua_pushliteral(L, "stopped: budget or time limit exceeded");
  lua_rawsetp(L, LUA_REGISTRYINDEX, &kill_key);

  static const luaL_Reg parley[] = {{"hook", l_hook},
                                    {"option_string", l_option_string},
                                    {"option_number", l_option_number},
                                    {"option_bool", l_option_bool},
                                    {"option_list", l_option_list},
                                    {"option_globs", l_option_globs},
                                    {"match", l_match},
                                    {"log", l_log},
                                    {"publish", l_publish},
                                    {"kick", l_kick},
                                    {"timer", l_timer},
                                    {"cancel", l_cancel},
                                    {"encode", l_encode},
                                    {"now", l_now},
                                    {"wordset", l_wordset},
                                    {"decode", l_decode},
                                    {NULL, NULL}};
  static const luaL_Reg wsm[] = {{"find", l_ws_find}, {"mask", l_ws_mask}, {"has", l_ws_has}, {NULL, NULL}};
  luaL_newmetatable(L, WORDSET_MT);
  luaL_newlib(L, wsm);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, l_ws_len);
  lua_setfield(L, -2, "__len");
  lua_pushliteral(L, "locked");
  lua_setfield(L, -2, "__metatable");
  lua_pop(L, 1);
  lua_createtable(L, 0, 2); /* event tables' metatable */
  lua_pushcfunction(L, event_index);
  lua_setfield(L, -2, "__index");
  lua_pushliteral(L, "locked");
  lua_setfield(L, -2, "__metatable");
  lua_rawsetp(L, LUA_REGISTRYINDEX, &point_field_names);
  luaL_newlib(L, parley);
  static const luaL_Reg kv[] = {{"get", l_kv_get},   {"set", l_kv_set},   {"del", l_kv_del},
                                {"incr", l_kv_incr}, {"keys", l_kv_keys}, {NULL, NULL}};
  luaL_newlib(L, kv);
  lua_setfield(L, -2, "kv");
  lua_pushlightuserdata(L, &null_sentinel);
  lua_setfield(L, -2, "null");
  lua_pushlightuserdata(L, &empty_array_sentinel);
  lua_setfield(L, -2, "empty_array");
  lua_pushstring(L, s->owner->name);
  lua_setfield(L, -2, "name");
  lua_setfield(L, env, "parley");
  lua_pushvalue(L, env);
  lua_setfield(L, env, "_G"); /* the script's own globals, not the state's */
  lua_pushvalue(L, env);
  s->env_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_settop(L, g - 1);
}

static int open_sandbox_p(lua_State *L) {
  open_sandbox(L, lua_touserdata(L, 1));
  return 0;
}

/* Only reached by a bug (an error outside lua_pcall): say so before Lua aborts. */
static int panic(lua_State *L) {
  log_error("hooks: unprotected Lua error: %s", lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "?");
  return 0;
}

/* ---- calls ---- */

/* The event table is filled lazily: its metatable's __index converts a field from the C event on first
 * read during the call and caches it in the table (most handlers read two or three fields; the body's
 * conversion is the expensive part). After the call, fields never read are nil: copy what you keep. */
static int event_index(lua_State *L) {
  struct lscript *s = script_of(L);
  const struct parley_event *ev = s->cur_ev;
  const char *k = lua_tostring(L, 2);
  if (!ev || !k || lua_topointer(L, 1) != s->cur_tbl) return 0;
  if (!strcmp(k, "hook"))
    lua_pushstring(L, point_field_names[ev->point]);
  else if (!strcmp(k, "user"))
    lua_pushstring(L, ev->user_id);
  else if (!strcmp(k, "name"))
    lua_pushstring(L, ev->user_name);
  else if (!strcmp(k, "room"))
    lua_pushstring(L, ev->room);
  else if (!strcmp(k, "ip"))
    lua_pushstring(L, ev->client_ip);
  else if (!strcmp(k, "conn"))
    lua_pushinteger(L, (lua_Integer)ev->conn_id);
  else if (!strcmp(k, "body") && ev->body) {
    if (!push_json_direct(L, ev->body, ev->body_len)) push_json_text(L, ev->body, ev->body_len);
  } else if (!strcmp(k, "active") && ev->point == PARLEY_HOOK_TYPING)
    lua_pushboolean(L, ev->typing_active);
  else
    return 0;
  lua_pushvalue(L, 2);
  lua_pushvalue(L, -2);
  lua_rawset(L, 1);
  return 1;
}

/* Runs protected: (event lightuserdata, fn) -> fn(event table) -> 2 results. */
static int trampoline(lua_State *L) {
  struct lscript *s = script_of(L);
  lua_createtable(L, 0, 2);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &point_field_names); /* the event metatable */
  lua_setmetatable(L, -2);
  const void *prev_tbl = s->cur_tbl;
  const struct parley_event *prev_ev = s->cur_ev;
  s->cur_ev = lua_touserdata(L, 1);
  s->cur_tbl = lua_topointer(L, -1);
  lua_call(L, 1, 2); /* on error cur_* are restored by lua__invoke */
  s->cur_ev = prev_ev;
  s->cur_tbl = prev_tbl;
  return 2;
}

static char *dup_field(lua_State *L, int t, const char *k) {
  lua_getfield(L, t, k);
  char *v = lua_type(L, -1) == LUA_TSTRING ? strdup(lua_tostring(L, -1)) : NULL;
  lua_pop(L, 1);
  return v;
}

/* Turn a handler's (r1, r2) at the top of the stack into a decision. */
static int decide(struct lscript *s, int point, struct hook_result *res, const char **why) {
  lua_State *L = s->L;
  int r1 = lua_gettop(L) - 1, r2 = r1 + 1;
  switch (lua_type(L, r1)) {
  case LUA_TNIL:
    return PARLEY_PASS;
  case LUA_TBOOLEAN:
    if (lua_toboolean(L, r1)) return PARLEY_ALLOW;
    res->reason = strdup(lua_type(L, r2) == LUA_TSTRING ? lua_tostring(L, r2) : "rejected");
    return PARLEY_REJECT;
  case LUA_TSTRING:
    if (point == PARLEY_HOOK_AUTH) {
      res->name = strdup(lua_tostring(L, r1));
      return PARLEY_REWRITE;
    }
    if (point != PARLEY_HOOK_MESSAGE) break;
    __attribute__((fallthrough)); /* a string is the new body */
  case LUA_TTABLE: {
    if (point == PARLEY_HOOK_AUTH) {
      res->name = dup_field(L, r1, "name");
      res->user_id = dup_field(L, r1, "user");
      if (res->name || res->user_id) return PARLEY_REWRITE;
      *why = "on_auth rewrite table needs name or user";
      return HOOK_ERR;
    }
    if (point != PARLEY_HOOK_MESSAGE) break;
    int v = r1;
    if (lua_type(L, r1) == LUA_TTABLE) {
      lua_getfield(L, r1, "body");
      if (lua_isnil(L, -1)) {
        *why = "a rewrite table needs a body field";
        return HOOK_ERR;
      }
      v = lua_gettop(L);
    }
    buf_t b = BUF_INIT;
    const char *err = "out of memory";
    int rc = encode(L, v, &b, 0, &err);
    if (!rc) rc = buf_putc(&b, 0);
    if (rc) {
      buf_free(&b);
      *why = err;
      return HOOK_ERR;
    }
    res->body = (char *)b.data;
    res->body_len = b.len - 1;
    return PARLEY_REWRITE;
  }
  default:
    break;
  }
  *why = "bad return value (nil, true, false[, reason], a string or a table)";
  return HOOK_ERR;
}

int lua__invoke(struct handler *hd, const struct parley_event *ev, struct hook_result *res) {
  struct lscript *s = hd->ud;
  lua_State *L = s->L;
  const char *pname = hooks_point_name(ev->point);
  if (s->depth >= MAX_DEPTH || s->needs_reset) {
    slog(s, LOG_ERROR, "%s: %s", pname, s->needs_reset ? "state is being reset" : "nested too deep");
    return HOOK_ERR;
  }
  int top = lua_gettop(L);
  if (!lua_checkstack(L, 8)) return HOOK_ERR;
  begin_call(s);
  lua_pushcfunction(L, trampoline);
  lua_pushlightuserdata(L, (void *)ev);
  lua_rawgeti(L, LUA_REGISTRYINDEX, hd->ref);
  const struct parley_event *prev_ev = s->cur_ev;
  const void *prev_tbl = s->cur_tbl;
  int rc = lua_pcall(L, 2, 2, 0);
  s->cur_ev = prev_ev;
  s->cur_tbl = prev_tbl;
  int d;
  if (rc == LUA_OK && s->killed) rc = LUA_ERRRUN; /* stopped, but a pcall inside caught it: still a kill */
  if (rc != LUA_OK) {
    bool budget = s->killed || rc == LUA_ERRMEM || s->oom;
    const char *msg = call_error(s, L);
    if (rc == LUA_ERRMEM && !s->killed)
      slog(s, LOG_ERROR, "%s: memory cap reached (hooks.lua.memory = %zu bytes)", pname, s->mem_limit);
    else
      slog(s, LOG_ERROR, "%s: %s", pname, msg);
    d = budget ? HOOK_ERR_BUDGET : HOOK_ERR;
  } else {
    const char *why = NULL;
    d = decide(s, ev->point, res, &why);
    if (d == HOOK_ERR) {
      lua_Debug ar;
      lua_rawgeti(L, LUA_REGISTRYINDEX, hd->ref);
      lua_getinfo(L, ">S", &ar);
      slog(s, LOG_ERROR, "%s: handler defined at %s:%d: %s", pname, ar.short_src, ar.linedefined, why);
    } else if ((d == PARLEY_REJECT && !res->reason) ||
               (d == PARLEY_REWRITE && !res->body && !res->name && !res->user_id)) {
      d = HOOK_ERR; /* strdup failed */
    }
  }
  lua_settop(L, top);
  end_call(s);
  return d;
}

/* ---- load, unload, reset ---- */

static void lscript_destroy(struct lscript *s) {
  if (!s) return;
  while (s->timers) hooks__timer_close(s->timers); /* unlinks itself */
  hooks__free_handlers(s->pending);
  if (s->L) lua_close(s->L);
  if (s->json_tmp) json_decref(s->json_tmp);
  for (size_t i = 0; i < s->noptions; i++) free(s->options[i]);
  free(s->options);
  free(s->source);
  free(s);
}

/* Build a state from text; on success the old impl is replaced. */
static int load_text(struct hook_owner *o, const char *text, size_t len, const char *path, char *err,
                     size_t errlen) {
  struct hooks *h = o->hooks;
  struct lscript *s = calloc(1, sizeof *s);
  if (!s) return -ENOMEM;
  s->owner = o;
  s->mem_limit = h->cfg ? (size_t)h->cfg->hooks_lua_memory : 16u << 20;
  s->env_ref = LUA_NOREF;
  if (!(s->source = malloc(len + 1))) {
    free(s);
    return -ENOMEM;
  }
  memcpy(s->source, text, len);
  s->source[len] = 0;
  s->source_len = len;
  if (!(s->L = lua_newstate(lalloc, s))) {
    snprintf(err, errlen, "cannot create a Lua state (memory cap too small?)");
    lscript_destroy(s);
    return -EINVAL;
  }
  s->loading = true;
  lua_State *L = s->L;
  lua_atpanic(L, panic);
  /* Building the sandbox and compiling are ours and bounded by the file: only the memory cap applies. The
   * chunk's run is a call like any other (budget, time limit). */
  lua_pushcfunction(L, open_sandbox_p);
  lua_pushlightuserdata(L, s);
  int rc = lua_pcall(L, 1, 0, 0);
  char chunkname[600];
  snprintf(chunkname, sizeof chunkname, "@%s", path);
  if (rc == LUA_OK) rc = luaL_loadbufferx(L, text, len, chunkname, "t");
  if (rc == LUA_OK) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, s->env_ref);
    lua_setupvalue(L, -2, 1);
    begin_call(s);
    rc = lua_pcall(L, 0, 0, 0);
    if (rc == LUA_OK && s->killed) rc = LUA_ERRRUN;
    if (rc != LUA_OK) {
      const char *msg = call_error(s, L);
      snprintf(err, errlen, "%s", rc == LUA_ERRMEM && !s->killed ? "memory cap reached while loading" : msg);
    }
    end_call(s);
  } else {
    const char *msg = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "error";
    snprintf(err, errlen, "%s", rc == LUA_ERRMEM ? "memory cap reached while loading" : msg);
  }
  s->loading = false;
  if (rc != LUA_OK) {
    lscript_destroy(s);
    return -EINVAL;
  }
  if (!s->pending) slog(s, LOG_WARN, "registers no hook");
  lua__unload(o);
  o->impl = s;
  o->handlers = s->pending;
  s->pending = NULL;
  return 0;
}

static int read_all(const char *path, char **out, size_t *len, char *err, size_t errlen) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    snprintf(err, errlen, "%s: %s", path, strerror(errno));
    return -EINVAL;
  }
  buf_t b = BUF_INIT;
  char chunk[8192];
  size_t n;
  while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
    if (buf_append(&b, chunk, n)) {
      fclose(f);
      buf_free(&b);
      return -ENOMEM;
    }
  bool bad = ferror(f);
  fclose(f);
  if (bad) {
    buf_free(&b);
    snprintf(err, errlen, "%s: read error", path);
    return -EINVAL;
  }
  if (buf_putc(&b, 0)) {
    buf_free(&b);
    return -ENOMEM;
  }
  *out = (char *)b.data;
  *len = b.len - 1;
  return 0;
}

int lua__load(struct hook_owner *o, const char *path, char *err, size_t errlen) {
  char *text;
  size_t len;
  int rc = read_all(path, &text, &len, err, errlen);
  if (rc) return rc;
  rc = load_text(o, text, len, path, err, errlen);
  free(text);
  return rc;
}

void lua__unload(struct hook_owner *o) {
  if (!o->impl) return;
  lscript_destroy(o->impl);
  o->impl = NULL;
  /* o->handlers were owned by that state's registrations */
  hooks__free_handlers(o->handlers);
  o->handlers = NULL;
}

void lua__owner_free(struct hook_owner *o) {
  kvstore_free(o->kv);
  o->kv = NULL;
}

size_t lua__memory(const struct hook_owner *o) {
  return o->impl ? ((const struct lscript *)o->impl)->mem_used : 0;
}

void lua__reset_pending(struct hooks *h) {
  h->pending_reset = false;
  for (size_t i = 0; i < h->nowners; i++) {
    struct hook_owner *o = h->owners[i];
    struct lscript *s = o->kind == OWNER_LUA ? o->impl : NULL;
    if (!s || !s->needs_reset) continue;
    slog(s, LOG_WARN, "memory still over the cap after a collection; restarting the script (parley.kv kept)");
    char err[512] = "";
    char *text = s->source;
    s->source = NULL; /* keep it alive across load_text, which destroys s */
    int rc = load_text(o, text, strlen(text), o->path ? o->path : o->name, err, sizeof err);
    if (rc) {
      hooks__log(h, LOG_ERROR, "script %s: restart failed: %s; script disabled until the next reload",
                 o->name, err);
      lua__unload(o);
      o->load_failures++;
    }
    free(text);
  }
  if (hooks__rebuild(h)) hooks__log(h, LOG_ERROR, "hooks: out of memory rebuilding the handler table");
}
