/* Unit tests for hooks/lua.c: the sandbox (budget, memory cap, forbidden libraries, bytecode, patterns),
 * error reports with script and line, JSON conversion, options, kv, timers, and the shipped moderation
 * scripts (scripts/moderation). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
/* cmocka needs the four headers above first */
#include <cmocka.h>

#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "hooks/internal.h"
#include "hooks_helpers.h"

static int setup(void **state) {
  make_tdir();
  reset_records();
  return 0;
}
static int teardown(void **state) {
  remove_tdir();
  free_records();
  return 0;
}

static struct hooks *load1(struct config *c, const char *name, const char *text) {
  add_script(c, name, text);
  struct hooks *h;
  struct hooks_host host = test_host(NULL);
  if (hooks_new(&h, &host, c)) fail_msg("%s", text_of(&logged));
  return h;
}

static struct hook_owner *owner(struct hooks *h, const char *name) {
  for (size_t i = 0; i < h->nowners; i++)
    if (!strcmp(h->owners[i]->name, name)) return h->owners[i];
  fail_msg("no owner %s", name);
  return NULL;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void test_infinite_loop(void **state) {
  struct config c;
  config_defaults(&c);
  struct hooks *h =
      load1(&c, "loop",
            "parley.hook('on_message', function(e)\n"
            "  if e.body == 'loop' then while true do end end\n"
            "  if e.body == 'ploop' then while true do pcall(function() while true do end end) end end\n"
            "  if e.body == 'xloop' then\n"
            "    local co = coroutine.wrap(function() while true do end end)\n"
            "    while true do pcall(co) end\n"
            "  end\n"
            "  return true\n"
            "end)\n");
  struct hook_result res = HOOK_RESULT_INIT;
  const char *loops[] = {"\"loop\"", "\"ploop\"", "\"xloop\""};
  for (int i = 0; i < 3; i++) {
    reset_records();
    double t0 = now_s();
    assert_int_equal(send_msg(h, "u", "r", loops[i], &res), PARLEY_PASS); /* fail open: skipped */
    double dt = now_s() - t0;
    assert_true(dt < 1.0);
    assert_non_null(strstr(text_of(&logged), "instruction budget exceeded"));
    assert_non_null(strstr(text_of(&logged), "loop.lua:"));
    /* the next message still flows */
    assert_int_equal(send_msg(h, "u", "r", "\"ok\"", &res), PARLEY_ALLOW);
  }
  assert_int_equal(owner(h, "loop")->budget_kills, 3);
  assert_int_equal(owner(h, "loop")->errors, 3);
  /* a loop at load time fails the load */
  add_script(&c, "loadloop", "while true do end");
  reset_records();
  assert_int_equal(hooks_reload(h, &c), 1);
  assert_non_null(strstr(text_of(&logged), "script loadloop: "));
  assert_non_null(strstr(text_of(&logged), "instruction budget exceeded"));
  hook_result_clear(&res);
  hooks_free(h);
  config_free(&c);
}

static void test_memory_cap(void **state) {
  struct config c;
  config_defaults(&c);
  cset(&c, "hooks.lua.memory", "1MiB");
  cset(&c, "hooks.lua.instructions", "100000000");
  struct hooks *h = load1(
      &c, "bomb",
      "keep = {}\n"
      "parley.hook('on_message', function(e)\n"
      "  if e.body == 'local' then local t = {} while true do t[#t + 1] = ('x'):rep(100) .. #t end end\n"
      "  if e.body == 'global' then while true do keep[#keep + 1] = ('y'):rep(100) .. #keep end end\n"
      "  if e.body == 'rep' then return string.rep('z', 1 << 30) end\n"
      "  return true\n"
      "end)\n");
  struct hook_result res = HOOK_RESULT_INIT;
  /* garbage that dies with the call: collected, the state stays usable */
  reset_records();
  assert_int_equal(send_msg(h, "u", "r", "\"local\"", &res), PARLEY_PASS);
  assert_non_null(strstr(text_of(&logged), "memory cap reached"));
  struct hook_owner *o = owner(h, "bomb");
  void *impl = o->impl;
  assert_int_equal(send_msg(h, "u", "r", "\"ok\"", &res), PARLEY_ALLOW);
  assert_ptr_equal(o->impl, impl);
  /* one big allocation in C */
  assert_int_equal(send_msg(h, "u", "r", "\"rep\"", &res), PARLEY_PASS);
  assert_int_equal(send_msg(h, "u", "r", "\"ok\"", &res), PARLEY_ALLOW);
  /* memory that stays reachable: the script is restarted from its source */
  reset_records();
  assert_int_equal(send_msg(h, "u", "r", "\"global\"", &res), PARLEY_PASS);
  assert_non_null(strstr(text_of(&logged), "restarting the script"));
  assert_int_equal(send_msg(h, "u", "r", "\"ok\"", &res), PARLEY_ALLOW);
  assert_true(lua__memory(o) < 256 * 1024);
  assert_int_equal(o->budget_kills, 3);
  hook_result_clear(&res);
  hooks_free(h);
  config_free(&c);
}

static void test_sandbox(void **state) {
  struct config c;
  config_defaults(&c);
  struct hooks *h =
      load1(&c, "sb",
            "assert(os == nil and io == nil and debug == nil and package == nil)\n"
            "assert(require == nil and dofile == nil and loadfile == nil and collectgarbage == nil)\n"
            "assert(string.dump == nil)\n"
            "local f, err = load('\\27Lua\\84\\0\\25\\147\\13\\10\\26\\10')\n"
            "assert(f == nil and err:find('binary', 1, true), err)\n"
            "assert(load(function() return 'return 1' end) == nil)\n"
            "assert(load('return 1 + 1')() == 2)\n"
            "assert(load('return os')() == nil)\n"
            "x = 5\n"
            "assert(load('return x')() == 5)\n"
            "assert(_G.x == 5 and _G.parley == parley)\n"
            "assert(getmetatable('').__index.find == string.find)\n"
            "parley.hook('on_message', function(e)\n"
            "  if e.body == 'os' then return os.execute('true') end\n"
            "  if e.body == 'io' then return io.open('/etc/passwd') end\n"
            "  if e.body == 'pattern' then return string.find(string.rep('a', 3000), '.-.-b') end\n"
            "  if e.body == 'method' then return (string.rep('a', 3000)):find('.-.-b') end\n"
            "  if e.body == 'ppattern' then while true do pcall(string.find, string.rep('a', 3000), '.-.-b') "
            "end end\n"
            "  if e.body == 'cheap' then local n = 0 for w in ('a b c '):rep(1000):gmatch('%a+') do n = n + "
            "1 end return n == 3000 end\n"
            "  return true\n"
            "end)\n");
  assert_int_equal(owner(h, "sb")->load_failures, 0);
  assert_non_null(owner(h, "sb")->impl);
  struct hook_result res = HOOK_RESULT_INIT;
  reset_records();
  assert_int_equal(send_msg(h, "u", "r", "\"os\"", &res), PARLEY_PASS);
  assert_non_null(strstr(text_of(&logged), "script sb: on_message: "));
  assert_non_null(strstr(text_of(&logged), "sb.lua:14: attempt to index a nil value (global 'os')"));
  assert_int_equal(send_msg(h, "u", "r", "\"io\"", &res), PARLEY_PASS);
  assert_non_null(strstr(text_of(&logged), "sb.lua:15: attempt to index a nil value (global 'io')"));
  const char *patterns[] = {"\"pattern\"", "\"method\"", "\"ppattern\""};
  for (int i = 0; i < 3; i++) {
    reset_records();
    double t0 = now_s();
    assert_int_equal(send_msg(h, "u", "r", patterns[i], &res), PARLEY_PASS);
    assert_true(now_s() - t0 < 0.5);
    /* under pcall the refusal is caught, and the re-armed hook stops the next instruction; the log names
     * the first reason */
    assert_non_null(strstr(text_of(&logged), "pattern too expensive"));
  }
  assert_int_equal(owner(h, "sb")->budget_kills, 3);
  assert_int_equal(send_msg(h, "u", "r", "\"cheap\"", &res), PARLEY_ALLOW);
  hook_result_clear(&res);
  hooks_free(h);
  config_free(&c);
}

static void test_error_line_and_returns(void **state) {
  struct config c;
  config_defaults(&c);
  struct hooks *h =
      load1(&c, "err",
            "parley.hook('on_message', function(e)\n"
            "  if e.body == 1 then error('boom') end\n"
            "  if e.body == 2 then return false end\n"
            "  if e.body == 3 then return function() end end\n"
            "  if e.body == 4 then return {body = {f = print}} end\n"
            "  if e.body == 5 then return {body = parley.empty_array} end\n"
            "  if e.body == 6 then return {body = {n = parley.null, a = {1, 2}, o = {}, [7] = 'x'}} end\n"
            "  if e.body == 7 then return {body = e.body} end\n"
            "end)\n");
  struct hook_result res = HOOK_RESULT_INIT;
  reset_records();
  assert_int_equal(send_msg(h, "u", "r", "1", &res), PARLEY_PASS);
  assert_non_null(strstr(text_of(&logged), "script err: on_message: "));
  assert_non_null(strstr(text_of(&logged), "err.lua:2: boom"));
  assert_int_equal(send_msg(h, "u", "r", "2", &res), PARLEY_REJECT);
  assert_string_equal(res.reason, "rejected");
  reset_records();
  assert_int_equal(send_msg(h, "u", "r", "3", &res), PARLEY_PASS);
  assert_non_null(strstr(text_of(&logged), "err.lua:1: bad return value"));
  reset_records();
  assert_int_equal(send_msg(h, "u", "r", "4", &res), PARLEY_PASS);
  assert_non_null(strstr(text_of(&logged), "a function cannot be JSON"));
  assert_int_equal(send_msg(h, "u", "r", "5", &res), PARLEY_REWRITE);
  assert_string_equal(res.body, "[]");
  assert_int_equal(send_msg(h, "u", "r", "6", &res), PARLEY_REWRITE);
  assert_non_null(strstr(res.body, "\"n\":null"));
  assert_non_null(strstr(res.body, "\"a\":[1,2]"));
  assert_non_null(strstr(res.body, "\"o\":{}"));
  assert_non_null(strstr(res.body, "\"7\":\"x\""));
  assert_int_equal(send_msg(h, "u", "r", "7", &res), PARLEY_REWRITE);
  assert_string_equal(res.body, "7");
  hook_result_clear(&res);
  hooks_free(h);
  config_free(&c);
}

static void test_json_round_trip(void **state) {
  struct config c;
  config_defaults(&c);
  struct hooks *h = load1(&c, "rt", "parley.hook('on_message', function(e) return {body = e.body} end)");
  struct hook_result res = HOOK_RESULT_INIT;
  /* body in -> body a script handing it back writes (escapes decoded, our encoder's form) */
  static const struct {
    const char *in, *out;
  } cases[] = {
      {"\"plain\"", "\"plain\""},
      {"\"esc \\\" \\\\ \\n \\u00e9 \\ud83d\\ude00\"", "\"esc \\\" \\\\ \\n \xc3\xa9 \xf0\x9f\x98\x80\""},
      {"[]", "[]"},
      {"[1,2,[3,[]]]", "[1,2,[3,[]]]"},
      {"{}", "{}"},
      {"true", "true"},
      {"-12", "-12"},
      {"1.5", "1.5"},
      {"{\"a\":{\"b\":[null,false]}}", "{\"a\":{\"b\":[null,false]}}"},
      {"{\"k\\u00e9y\":\"v\\t\\/\"}", "{\"k\xc3\xa9y\":\"v\\t/\"}"},
      {"[1.25,-3,{\"x\":[]},\"\"]", "[1.25,-3,{\"x\":[]},\"\"]"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    assert_int_equal(send_msg(h, "u", "r", cases[i].in, &res), PARLEY_REWRITE);
    assert_string_equal(res.body, cases[i].out);
  }
  /* a nil body field means "no body" (docs/hooks.md): null comes back as null */
  assert_int_equal(send_msg(h, "u", "r", "null", &res), PARLEY_REWRITE);
  assert_string_equal(res.body, "null");
  hook_result_clear(&res);
  hooks_free(h);
  config_free(&c);
}

/* parley.match: conf.d's room globs, on one glob or a list; a non-string glob is an error. */
static void test_match(void **state) {
  struct config c;
  config_defaults(&c);
  struct hooks *h = load1(&c, "m",
                          "parley.hook('on_message', function(e)\n"
                          "  local g = {'dev-*', 'help?'}\n"
                          "  if e.body == 'bad' then return {body = parley.match({'b', 7}, 'a')} end\n"
                          "  return {body = {parley.match('*', e.body), parley.match(g, e.body),\n"
                          "                  parley.match('lobby', e.body), parley.match({}, e.body)}}\n"
                          "end)");
  struct hook_result res = HOOK_RESULT_INIT;
  static const struct {
    const char *room, *want;
  } cases[] = {
      {"\"lobby\"", "[true,false,true,false]"}, {"\"dev-1\"", "[true,true,false,false]"},
      {"\"dev-\"", "[true,true,false,false]"},  {"\"help1\"", "[true,true,false,false]"},
      {"\"help\"", "[true,false,false,false]"}, {"\"help12\"", "[true,false,false,false]"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    assert_int_equal(send_msg(h, "u", "r", cases[i].room, &res), PARLEY_REWRITE);
    assert_string_equal(res.body, cases[i].want);
  }
  assert_int_not_equal(send_msg(h, "u", "r", "\"bad\"", &res), PARLEY_REWRITE); /* the handler raised */
  hook_result_clear(&res);
  hooks_free(h);
  config_free(&c);
}

static void test_options_kv_reload(void **state) {
  struct config c;
  config_defaults(&c);
  cset(&c, "scripts.opt.n", "500");
  cset(&c, "scripts.opt.bad", "abc");
  cset(&c, "scripts.opt.flag", "yes");
  cset(&c, "scripts.opt.list", "a, b  c");
  const char *text =
      "local n = parley.option_number('n', 1, 0, 100)\n"
      "local bad = parley.option_number('bad', 7)\n"
      "local flag = parley.option_bool('flag', false)\n"
      "local list = parley.option_list('list')\n"
      "local s = parley.option_string('missing', 'dflt')\n"
      "assert(n == 100 and bad == 7 and flag == true and #list == 3 and list[3] == 'c' and s == 'dflt')\n"
      "parley.hook('on_message', function(e)\n"
      "  if e.body == 'set' then assert(parley.kv.set('k', 'v')) parley.kv.incr('n', 5) return true end\n"
      "  if e.body == 'big' then return parley.kv.set('big', ('x'):rep(70000)) end\n"
      "  return false, tostring(parley.kv.get('k')) .. ',' .. tostring(parley.kv.get('n')) .. ',' .. "
      "#parley.kv.keys()\n"
      "end)\n";
  struct hooks *h = load1(&c, "opt", text);
  assert_non_null(strstr(text_of(&logged), "test:1: scripts.opt.n: 500 is out of range; using 100"));
  assert_non_null(strstr(text_of(&logged), "test:1: scripts.opt.bad: 'abc' is not a number; using 7"));
  struct hook_result res = HOOK_RESULT_INIT;
  assert_int_equal(send_msg(h, "u", "r", "\"get\"", &res), PARLEY_REJECT);
  assert_string_equal(res.reason, "nil,nil,0");
  assert_int_equal(send_msg(h, "u", "r", "\"set\"", &res), PARLEY_ALLOW);
  reset_records();
  assert_int_equal(send_msg(h, "u", "r", "\"big\"", &res), PARLEY_PASS);
  assert_non_null(strstr(text_of(&logged), "parley.kv: value longer than"));
  /* kv survives a reload of the same script */
  assert_int_equal(hooks_reload(h, &c), 0);
  assert_int_equal(send_msg(h, "u", "r", "\"get\"", &res), PARLEY_REJECT);
  assert_string_equal(res.reason, "v,5,2");
  hook_result_clear(&res);
  hooks_free(h);
  config_free(&c);
}

/* The Lua faces of hooks/wordset.c and hooks/kvstore.c (their rules are in test_wordset and test_kvstore):
 * 1-based inclusive positions, mask returning the text itself when nothing matched, error texts, kv types
 * and "kv full", and what wordset:find/mask charge to the instruction budget. */
static void test_wordset_kv_bindings(void **state) {
  struct config c;
  config_defaults(&c);
  struct hooks *h =
      load1(&c, "wk",
            /* 1,048,000 bytes: wordset:find charges 131,001 instructions (n / 8 + 1), wordset:mask
             * n * (mark length + 1) / 8 + 1; the default budget (1,000,000) pays for 7 finds, not 8, and a
             * mask with a mark of 6 bytes, not 7 */
            "T = ('.'):rep(1000):rep(1048)\n"
            "local ws = parley.wordset({'Bad', 'evil', 'bad', ''})\n"
            "local function api()\n"
            "  assert(#ws == 2)\n"
            "  local w, s, e = ws:find('so BAD!')\n"
            "  assert(w == 'BAD' and s == 4 and e == 6, tostring(s) .. '-' .. tostring(e))\n"
            "  assert(ws:find('badly') == nil)\n"
            "  local t, n = ws:mask('bad evil ok', '#')\n"
            "  assert(t == '### #### ok' and n == 2 and math.type(n) == 'integer', t)\n"
            "  t, n = ws:mask('x Bad')\n"
            "  assert(t == 'x ***' and n == 1)\n"
            "  t, n = ws:mask('all fine')\n"
            "  assert(t == 'all fine' and n == 0)\n"
            "  assert(ws:has('EVIL') and not ws:has('ev') and not ws:has('bad '))\n"
            "  local ws2 = parley.wordset('one, two  three')\n"
            "  assert(#ws2 == 3 and ws2:has('two'))\n"
            "  assert(parley.wordset({42}):find('the 42') == '42')\n"
            "  local ok, err = pcall(parley.wordset, {('x'):rep(256)})\n"
            "  assert(not ok and err:find('word 1 is longer than 255 bytes', 1, true), err)\n"
            "  assert(#parley.wordset({('x'):rep(255)}) == 1)\n"
            "  ok, err = pcall(parley.wordset, {'a', {}})\n"
            "  assert(not ok and err:find('item 2 is not a string', 1, true), err)\n"
            "  local kv = parley.kv\n"
            "  assert(kv.set('f', 1.5) and math.type(kv.get('f')) == 'float' and kv.get('f') == 1.5)\n"
            "  assert(kv.set('i', 3) and math.type(kv.get('i')) == 'integer' and kv.get('i') == 3)\n"
            "  assert(kv.set('b', false) and kv.get('b') == false)\n"
            "  assert(kv.set('s', 'a\\0b') and kv.get('s') == 'a\\0b')\n"
            "  assert(kv.set('s', nil) == true and kv.get('s') == nil)\n"
            "  assert(kv.del('i') == true and kv.get('i') == nil and kv.del('i') == true)\n"
            "  ok, err = pcall(kv.set, 'x', {})\n"
            "  assert(not ok and err:find('values are strings, numbers or booleans', 1, true), err)\n"
            "  ok, err = pcall(kv.set, ('k'):rep(257), 1)\n"
            "  assert(not ok and err:find('parley.kv: key longer than 256 bytes', 1, true), err)\n"
            "  assert(kv.set(('k'):rep(257), nil) == true)\n"
            "  ok, err = pcall(kv.set, 'v', ('v'):rep(65537))\n"
            "  assert(not ok and err:find('parley.kv: value longer than 65536 bytes', 1, true), err)\n"
            "  ok, err = pcall(kv.incr, 'f')\n"
            "  assert(not ok and err:find(\"parley.kv.incr: 'f' is not an integer\", 1, true), err)\n"
            "  assert(kv.incr('c') == 1 and kv.incr('c', 10) == 11 and kv.get('c') == 11)\n"
            "  assert(kv.incr('m', math.maxinteger) == math.maxinteger and kv.incr('m') == math.mininteger)\n"
            "  local keys = kv.keys('c')\n"
            "  assert(#keys == 1 and keys[1] == 'c')\n"
            "  assert(#kv.keys() == 4)\n"
            "end\n"
            "local function fill()\n"
            "  for i = #parley.kv.keys() + 1, 10000 do assert(parley.kv.set('fill' .. i, i)) end\n"
            "  local r, e = parley.kv.set('new', 1)\n"
            "  assert(r == nil and e == 'kv full')\n"
            "  r, e = parley.kv.incr('new')\n"
            "  assert(r == nil and e == 'kv full')\n"
            "  assert(parley.kv.set('c', 'replacing is fine'))\n"
            "  assert(parley.kv.del('fill10000') and parley.kv.set('new', 1))\n"
            "end\n"
            "parley.hook('on_message', function(e)\n"
            "  if e.body == 'api' then api() end\n"
            "  if e.body == 'fill' then fill() end\n"
            "  if e.body == 'find7' then for i = 1, 7 do assert(not ws:find(T)) end end\n"
            "  if e.body == 'find8' then for i = 1, 8 do assert(not ws:find(T)) end end\n"
            "  if e.body == 'mask6' then assert(ws:mask(T, '123456') == T) end\n"
            "  if e.body == 'mask7' then assert(ws:mask(T, '1234567') == T) end\n"
            "  return true\n"
            "end)\n");
  struct hook_result res = HOOK_RESULT_INIT;
  const char *ok[] = {"\"api\"", "\"fill\"", "\"find7\"", "\"mask6\""};
  for (int i = 0; i < 4; i++) {
    reset_records();
    int r = send_msg(h, "u", "r", ok[i], &res);
    if (r != PARLEY_ALLOW) fail_msg("%s: %s", ok[i], text_of(&logged));
  }
  const char *killed[][2] = {{"\"find8\"", "wordset:find: too expensive"},
                             {"\"mask7\"", "wordset:mask: too expensive"}};
  for (int i = 0; i < 2; i++) {
    reset_records();
    assert_int_equal(send_msg(h, "u", "r", killed[i][0], &res), PARLEY_PASS);
    if (!strstr(text_of(&logged), killed[i][1])) fail_msg("%s: %s", killed[i][0], text_of(&logged));
  }
  assert_int_equal(owner(h, "wk")->budget_kills, 2);
  hook_result_clear(&res);
  hooks_free(h);
  config_free(&c);
}

static void test_timers(void **state) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  struct config c;
  config_defaults(&c);
  add_script(&c, "tm",
             "local n = 0\n"
             "parley.timer(1, function() n = n + 1 parley.publish('t', n) if n < 3 then return 1 end end)\n"
             "parley.timer(1, function() while true do end end)\n"
             "local never = parley.timer(50000, function() parley.publish('t', 'never') end)\n"
             "parley.timer(1, function() parley.cancel(never) end)\n"
             "parley.timer(60000, function() end) -- pending at unload\n");
  struct hooks *h;
  struct hooks_host host = test_host(&loop);
  assert_int_equal(hooks_new(&h, &host, &c), 0);
  for (int i = 0; i < 100 && !strstr(text_of(&published), "t 3\n"); i++) uv_run(&loop, UV_RUN_ONCE);
  assert_string_equal(text_of(&published), "t 1\nt 2\nt 3\n");
  assert_non_null(strstr(text_of(&logged), "script tm: timer: "));
  assert_non_null(strstr(text_of(&logged), "instruction budget exceeded"));
  hooks_free(h);
  uv_run(&loop, UV_RUN_NOWAIT);
  assert_int_equal(uv_loop_close(&loop), 0); /* every timer handle was closed */
  config_free(&c);
}

/* ---- shipped moderation scripts ---- */

static void add_shipped(struct config *c, const char *name) {
  char key[128];
  snprintf(key, sizeof key, "scripts.%s.path", name);
  char path[512];
  snprintf(path, sizeof path, "%s/scripts/moderation/%s.lua", PARLEY_SOURCE_DIR, name);
  cset(c, key, path);
}

static struct hooks *shipped(struct config *c) {
  struct hooks *h;
  struct hooks_host host = test_host(NULL);
  assert_int_equal(hooks_new(&h, &host, c), 0);
  for (size_t i = 0; i < h->nowners; i++) {
    if (!h->owners[i]->impl) fail_msg("%s", text_of(&logged));
  }
  return h;
}

static void test_profanity(void **state) {
  struct config c;
  config_defaults(&c);
  add_shipped(&c, "profanity");
  cset(&c, "scripts.profanity.words", "darn, heck");
  cset(&c, "scripts.profanity.rooms", "public-* lobby");
  struct hooks *h = shipped(&c);
  struct hook_result res = HOOK_RESULT_INIT;
  assert_int_equal(send_msg(h, "u", "public-1", "\"oh DARN it\"", &res), PARLEY_REJECT);
  assert_string_equal(res.reason, "message contains a banned word");
  assert_int_equal(send_msg(h, "u", "lobby", "{\"text\":\"heck\"}", &res), PARLEY_REJECT);
  assert_int_equal(send_msg(h, "u", "lobby", "\"darned heckle\"", &res), PARLEY_PASS); /* whole words only */
  assert_int_equal(send_msg(h, "u", "private", "\"darn\"", &res), PARLEY_PASS);        /* room not covered */
  assert_int_equal(send_msg(h, "u", "lobby", "42", &res), PARLEY_PASS);

  cset(&c, "scripts.profanity.mode", "mask");
  assert_int_equal(hooks_reload(h, &c), 0);
  assert_int_equal(send_msg(h, "u", "lobby", "\"oh Darn, heck!\"", &res), PARLEY_REWRITE);
  assert_string_equal(res.body, "\"oh ****, ****!\"");
  assert_int_equal(send_msg(h, "u", "lobby", "{\"text\":\"darn\",\"x\":1}", &res), PARLEY_REWRITE);
  assert_non_null(strstr(res.body, "\"text\":\"****\""));
  assert_non_null(strstr(res.body, "\"x\":1"));
  hook_result_clear(&res);
  hooks_free(h);
  config_free(&c);
}

static void test_slowmode(void **state) {
  struct config c;
  config_defaults(&c);
  add_shipped(&c, "slowmode");
  cset(&c, "scripts.slowmode.interval", "0.2");
  cset(&c, "scripts.slowmode.rooms", "slow-*");
  cset(&c, "scripts.slowmode.exempt", "mod");
  struct hooks *h = shipped(&c);
  struct hook_result res = HOOK_RESULT_INIT;
  assert_int_equal(send_msg(h, "alice", "slow-1", "\"1\"", &res), PARLEY_PASS);
  assert_int_equal(send_msg(h, "alice", "slow-1", "\"2\"", &res), PARLEY_REJECT);
  assert_non_null(strstr(res.reason, "slow mode: wait"));
  assert_int_equal(send_msg(h, "bob", "slow-1", "\"1\"", &res), PARLEY_PASS);   /* per user */
  assert_int_equal(send_msg(h, "alice", "slow-2", "\"1\"", &res), PARLEY_PASS); /* per room */
  assert_int_equal(send_msg(h, "alice", "fast", "\"1\"", &res), PARLEY_PASS);
  assert_int_equal(send_msg(h, "alice", "fast", "\"1\"", &res), PARLEY_PASS);
  assert_int_equal(send_msg(h, "mod", "slow-1", "\"1\"", &res), PARLEY_PASS);
  assert_int_equal(send_msg(h, "mod", "slow-1", "\"1\"", &res), PARLEY_PASS);
  usleep(250 * 1000);
  assert_int_equal(send_msg(h, "alice", "slow-1", "\"3\"", &res), PARLEY_PASS);
  hook_result_clear(&res);
  hooks_free(h);
  config_free(&c);
}

static void test_links(void **state) {
  struct config c;
  config_defaults(&c);
  add_shipped(&c, "links");
  cset(&c, "scripts.links.max_links", "1");
  cset(&c, "scripts.links.allow", "example.com");
  struct hooks *h = shipped(&c);
  struct hook_result res = HOOK_RESULT_INIT;
  assert_int_equal(send_msg(h, "u", "r", "\"see https://a.org\"", &res), PARLEY_PASS);
  assert_int_equal(send_msg(h, "u", "r", "\"https://a.org and http://b.org\"", &res), PARLEY_REJECT);
  assert_string_equal(res.reason, "too many links (2, at most 1)");
  assert_int_equal(send_msg(h, "u", "r", "\"www.a.org www.b.org\"", &res), PARLEY_REJECT);
  assert_int_equal(send_msg(h, "u", "r", "\"https://docs.example.com https://example.com x.org\"", &res),
                   PARLEY_PASS);
  assert_int_equal(send_msg(h, "u", "r", "{\"text\":\"https://a.org https://b.org\"}", &res), PARLEY_REJECT);
  cset(&c, "scripts.links.max_links", "0");
  assert_int_equal(hooks_reload(h, &c), 0);
  assert_int_equal(send_msg(h, "u", "r", "\"see https://a.org\"", &res), PARLEY_REJECT);
  assert_string_equal(res.reason, "links are not allowed here");
  hook_result_clear(&res);
  hooks_free(h);
  config_free(&c);
}

static void test_mute(void **state) {
  struct config c;
  config_defaults(&c);
  add_shipped(&c, "mute");
  cset(&c, "scripts.mute.moderators", "mod");
  struct hooks *h = shipped(&c);
  struct hook_result res = HOOK_RESULT_INIT;
  assert_int_equal(send_msg(h, "bob", "r", "\"hello\"", &res), PARLEY_PASS);
  assert_int_equal(send_msg(h, "bob", "r", "\"/mute alice\"", &res), PARLEY_PASS); /* not a moderator */
  assert_int_equal(send_msg(h, "mod", "r", "\"/mute bob 5\"", &res), PARLEY_REJECT);
  assert_string_equal(res.reason, "muted bob for 5 min");
  assert_int_equal(send_msg(h, "bob", "r", "\"hello\"", &res), PARLEY_REJECT);
  assert_string_equal(res.reason, "you are muted");
  struct parley_event ev = {0};
  ev.user_id = "bob";
  ev.room = "r";
  ev.typing_active = 1;
  hook_result_clear(&res);
  assert_int_equal(hooks_dispatch(h, PARLEY_HOOK_TYPING, &ev, &res), PARLEY_REJECT);
  /* the mute list survives a reload */
  assert_int_equal(hooks_reload(h, &c), 0);
  assert_int_equal(send_msg(h, "bob", "r", "{\"text\":\"hi\"}", &res), PARLEY_REJECT);
  assert_int_equal(send_msg(h, "mod", "r", "{\"text\":\"/unmute bob\"}", &res), PARLEY_REJECT);
  assert_string_equal(res.reason, "unmuted bob");
  assert_int_equal(send_msg(h, "bob", "r", "\"hello\"", &res), PARLEY_PASS);
  hook_result_clear(&res);
  hooks_free(h);
  config_free(&c);
}

/* Run fn in a child process; fail when it does not finish (exit 0) within secs. A defect that wedges the
 * process then fails the test instead of hanging the suite. */
static void bounded(void (*fn)(void), double secs, const char *what) {
  fflush(NULL);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    fn();
    _exit(0);
  }
  double t0 = now_s();
  int status = 0;
  while (waitpid(pid, &status, WNOHANG) == 0) {
    if (now_s() - t0 > secs) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      fail_msg("%s: still running after %.1f s", what, secs);
    }
    usleep(10000);
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) fail_msg("%s: child failed (status %d)", what, status);
}

/* In a child: assert_* failures must become a nonzero exit. */
#define CHILD_CHECK(cond)                                                                                    \
  do {                                                                                                       \
    if (!(cond)) {                                                                                           \
      fprintf(stderr, "%s:%d: check failed: %s\n%s", __FILE__, __LINE__, #cond, text_of(&logged));           \
      _exit(1);                                                                                              \
    }                                                                                                        \
  } while (0)

/* Lua runs finalizers with hooks off: a __gc that loops would wedge the loop (and lua_close at shutdown). */
static void gc_child(void) {
  struct config c;
  config_defaults(&c);
  add_script(&c, "fin",
             "local later = setmetatable({}, {})\n"
             "getmetatable(later).__gc = function() while true do end end -- added after: never marked\n"
             "ok_load = pcall(setmetatable, {}, {__gc = function() while true do end end})\n"
             "parley.hook('on_message', function(e)\n"
             "  if e.body == 'gc' then\n"
             "    setmetatable({}, {__gc = function() while true do end end})\n"
             "    for i = 1, 100000 do local t = {i} end -- garbage: the collector runs finalizers\n"
             "    return true\n"
             "  end\n"
             "  if e.body == 'gcfalse' then setmetatable({}, {__gc = false}) return true end\n"
             "  if e.body == 'close' then\n"
             "    local x <close> = setmetatable({}, {__close = function() while true do end end})\n"
             "    return true\n"
             "  end\n"
             "  return not ok_load\n"
             "end)\n");
  struct hooks *h;
  struct hooks_host host = test_host(NULL);
  CHILD_CHECK(hooks_new(&h, &host, &c) == 0);
  struct hook_result res = HOOK_RESULT_INIT;
  CHILD_CHECK(send_msg(h, "u", "r", "\"load\"", &res) == PARLEY_ALLOW); /* refused at load as well */
  CHILD_CHECK(send_msg(h, "u", "r", "\"gc\"", &res) == PARLEY_PASS);
  CHILD_CHECK(strstr(text_of(&logged), "__gc metamethods are not allowed"));
  CHILD_CHECK(send_msg(h, "u", "r", "\"gcfalse\"", &res) == PARLEY_PASS);
  /* __close runs as ordinary code, under the budget */
  reset_records();
  CHILD_CHECK(send_msg(h, "u", "r", "\"close\"", &res) == PARLEY_PASS);
  CHILD_CHECK(strstr(text_of(&logged), "instruction budget exceeded"));
  hook_result_clear(&res);
  hooks_free(h); /* lua_close runs pending finalizers */
  config_free(&c);
  free_records();
}

static void test_finalizers(void **state) { bounded(gc_child, 10, "__gc"); }

/* Work done in C by library functions and `..` is charged: a call ends within a bounded time whatever it
 * calls, at the configured budget and at the default one. */
static const char *const escapes[] = {
    /* gmatch does not anchor on '^': every start is tried */
    "gmatch",   "for m in C:gmatch('^.-b') do end",
    "upper",    "while true do local t = S:upper() end",
    "pupper",   "while true do pcall(string.upper, S) end",
    "concat",   "while true do local t = S .. 'y' end",
    "pconcat",  "while true do pcall(function() return S .. 'y' end) end",
    "double",   "local s = 'x' for i = 1, 22 do s = s .. s end",
    "rep0",     "local s = (''):rep(1 << 50)",
    "move",     "table.move({}, 1, 1 << 50, 2)",
    "remove",   "table.remove(setmetatable({}, {__len = function() return 1 << 50 end}), 1)",
    "insert",   "table.insert(setmetatable({}, {__len = function() return 1 << 50 end}), 1, 1)",
    "tonumber", "while true do tonumber(S) end",
    "tconcat",  "while true do local s = table.concat(T) end",
    "utf8",     "while true do pcall(utf8.len, S) end",
    "sort",     "while true do table.sort(N) end",
    NULL};

static const char *escape_budget;

static void escapes_child(void) {
  struct config c;
  config_defaults(&c);
  buf_t src = BUF_INIT;
  /* big values built at load (under the default budget); the calls run under escape_budget */
  buf_printf(&src, "S = 'x' for i = 1, 19 do S = S .. S end\n"
                   "C = S:sub(1, 30000):gsub('x', '^')\n"
                   "T = {} for i = 1, 500 do T[i] = S:sub(1, 1000) end\n"
                   "N = {} for i = 1, 50000 do N[i] = i end\n"
                   "parley.hook('on_message', function(e)\n");
  for (int i = 0; escapes[i]; i += 2)
    buf_printf(&src, "  if e.body == '%s' then %s end\n", escapes[i], escapes[i + 1]);
  buf_printf(&src, "  return true\nend)\n");
  buf_putc(&src, 0);
  add_script(&c, "esc", (const char *)src.data);
  buf_free(&src);
  struct hooks *h;
  struct hooks_host host = test_host(NULL);
  CHILD_CHECK(hooks_new(&h, &host, &c) == 0);
  CHILD_CHECK(owner(h, "esc")->impl);
  if (escape_budget) cset(&c, "hooks.lua.instructions", escape_budget);
  struct hook_result res = HOOK_RESULT_INIT;
  for (int i = 0; escapes[i]; i += 2) {
    char body[64];
    snprintf(body, sizeof body, "\"%s\"", escapes[i]);
    reset_records();
    double t0 = now_s();
    int d = send_msg(h, "u", "r", body, &res);
    double dt = now_s() - t0;
    if (getenv("HOOKS_TEST_VERBOSE")) fprintf(stderr, "%s: %.3f s\n", escapes[i], dt);
    if (dt > 1.0) fprintf(stderr, "%s took %.3f s\n", escapes[i], dt);
    CHILD_CHECK(d == PARLEY_PASS); /* stopped: fail open */
    CHILD_CHECK(dt < 1.0);
    CHILD_CHECK(strstr(text_of(&logged), "budget") || strstr(text_of(&logged), "memory cap"));
    CHILD_CHECK(send_msg(h, "u", "r", "\"ok\"", &res) == PARLEY_ALLOW);
  }
  hook_result_clear(&res);
  hooks_free(h);
  config_free(&c);
  free_records();
}

static void test_budget_escapes(void **state) {
  escape_budget = NULL;
  bounded(escapes_child, 20, "escapes at the default budget");
  escape_budget = "5000";
  bounded(escapes_child, 20, "escapes at hooks.lua.instructions = 5000");
}

/* What no charge sees: VM operations that read long strings without allocating (comparison, coercion).
 * The clock check every HOOK_EVERY instructions bounds them. */
static void test_time_limit_uncharged(void **state) {
  struct config c;
  config_defaults(&c);
  cset(&c, "hooks.lua.instructions", "1000000000");
  cset(&c, "hooks.lua.time_limit", "100ms");
  struct hooks *h = load1(&c, "cmp",
                          "S = (' '):rep(1 << 19) .. '1' S2 = (' '):rep(1 << 19) .. '1'\n"
                          "local function add() return S + 0 end\n"
                          "parley.hook('on_message', function(e)\n"
                          "  if e.body == 'eq' then while true do local b = S == S2 end end\n"
                          "  if e.body == 'lt' then while true do local b = S < S2 end end\n"
                          "  if e.body == 'arith' then while true do local b = S + 0 end end\n"
                          "  if e.body == 'parith' then while true do pcall(add) end end\n"
                          "  return true\n"
                          "end)\n");
  struct hook_result res = HOOK_RESULT_INIT;
  const char *bodies[] = {"\"eq\"", "\"lt\"", "\"arith\"", "\"parith\""};
  for (int i = 0; i < 4; i++) {
    reset_records();
    double t0 = now_s();
    assert_int_equal(send_msg(h, "u", "r", bodies[i], &res), PARLEY_PASS);
    double dt = now_s() - t0;
    if (getenv("HOOKS_TEST_VERBOSE")) fprintf(stderr, "%s: %.3f s\n", bodies[i], dt);
    assert_true(dt < 1.0);
    assert_non_null(strstr(text_of(&logged), "time limit exceeded"));
  }
  hook_result_clear(&res);
  hooks_free(h);
  config_free(&c);
}

/* The wall-clock limit stops a call whatever its instruction budget. */
static void test_time_limit(void **state) {
  struct config c;
  config_defaults(&c);
  cset(&c, "hooks.lua.instructions", "1000000000");
  cset(&c, "hooks.lua.time_limit", "50ms");
  struct hooks *h = load1(&c, "slow", "parley.hook('on_message', function(e) while true do end end)\n");
  struct hook_result res = HOOK_RESULT_INIT;
  reset_records();
  double t0 = now_s();
  assert_int_equal(send_msg(h, "u", "r", "\"x\"", &res), PARLEY_PASS);
  double dt = now_s() - t0;
  assert_true(dt >= 0.045 && dt < 0.5);
  assert_non_null(strstr(text_of(&logged), "slow.lua:1: time limit exceeded (hooks.lua.time_limit = 50 ms)"));
  assert_int_equal(owner(h, "slow")->budget_kills, 1);
  /* the smallest budget still loads a script: building the sandbox and compiling are not charged */
  cset(&c, "hooks.lua.instructions", "1000");
  add_script(&c, "small",
             "local words = {}\nfor i = 1, 10 do words[i] = 'w' .. i end\n"
             "parley.hook('on_message', function(e) return true end)\n");
  assert_int_equal(hooks_reload(h, &c), 0);
  assert_int_equal(send_msg(h, "u", "r", "\"x\"", &res),
                   PARLEY_ALLOW); /* slow is stopped (fail open), small allows */
  hook_result_clear(&res);
  hooks_free(h);
  config_free(&c);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_infinite_loop, setup, teardown),
      cmocka_unit_test_setup_teardown(test_memory_cap, setup, teardown),
      cmocka_unit_test_setup_teardown(test_sandbox, setup, teardown),
      cmocka_unit_test_setup_teardown(test_error_line_and_returns, setup, teardown),
      cmocka_unit_test_setup_teardown(test_json_round_trip, setup, teardown),
      cmocka_unit_test_setup_teardown(test_match, setup, teardown),
      cmocka_unit_test_setup_teardown(test_options_kv_reload, setup, teardown),
      cmocka_unit_test_setup_teardown(test_wordset_kv_bindings, setup, teardown),
      cmocka_unit_test_setup_teardown(test_timers, setup, teardown),
      cmocka_unit_test_setup_teardown(test_profanity, setup, teardown),
      cmocka_unit_test_setup_teardown(test_slowmode, setup, teardown),
      cmocka_unit_test_setup_teardown(test_links, setup, teardown),
      cmocka_unit_test_setup_teardown(test_mute, setup, teardown),
      cmocka_unit_test_setup_teardown(test_finalizers, setup, teardown),
      cmocka_unit_test_setup_teardown(test_budget_escapes, setup, teardown),
      cmocka_unit_test_setup_teardown(test_time_limit, setup, teardown),
      cmocka_unit_test_setup_teardown(test_time_limit_uncharged, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
