/* Unit tests for hooks/hooks.c: dispatch order by priority, first decision stops, fail-open vs fail-closed,
 * notification points, the no-handler fast path, reload, metrics. Handlers are small Lua scripts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
/* cmocka needs the four headers above first */
#include <cmocka.h>

#include "hooks_helpers.h"

/* A script that publishes its name to room "order" whenever it runs, then returns `ret` (Lua code). */
static void add_tracer(struct config *c, const char *name, int prio, const char *ret) {
  char text[512], key[128], val[32];
  snprintf(text, sizeof text,
           "parley.hook('on_message', function(e) parley.publish('order', '%s') %s end)\n"
           "parley.hook('on_leave', function(e) parley.publish('leave', '%s') return false end)\n",
           name, ret, name);
  add_script(c, name, text);
  snprintf(key, sizeof key, "scripts.%s.priority", name);
  snprintf(val, sizeof val, "%d", prio);
  cset(c, key, val);
}

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

static void test_no_handler_fast_path(void **state) {
  struct config c;
  assert_int_equal(config_defaults(&c), 0);
  struct hooks *h;
  struct hooks_host host = test_host(NULL);
  assert_int_equal(hooks_new(&h, &host, &c), 0);
  for (int p = 0; p < PARLEY_HOOK__COUNT; p++) assert_false(hooks_has(h, p));
  struct parley_event ev = {0};
  struct hook_result res = HOOK_RESULT_INIT;
  assert_int_equal(hooks_dispatch(h, PARLEY_HOOK_MESSAGE, &ev, &res), PARLEY_PASS);
  assert_int_equal(ev.size, 0); /* not even touched */
  assert_null(res.reason);
  /* a NULL hooks (module not created) is a pass too */
  assert_int_equal(hooks_dispatch(NULL, PARLEY_HOOK_JOIN, &ev, &res), PARLEY_PASS);
  assert_false(hooks_has(NULL, PARLEY_HOOK_JOIN));
  hooks_free(h);
  config_free(&c);
}

static void test_priority_order(void **state) {
  struct config c;
  config_defaults(&c);
  add_tracer(&c, "a", 0, "");
  add_tracer(&c, "b", 10, "");
  add_tracer(&c, "c", 5, "");
  add_tracer(&c, "d", 0, ""); /* ties with a: configuration order */
  struct hooks *h;
  struct hooks_host host = test_host(NULL);
  assert_int_equal(hooks_new(&h, &host, &c), 0);
  assert_true(hooks_has(h, PARLEY_HOOK_MESSAGE));
  assert_false(hooks_has(h, PARLEY_HOOK_JOIN));
  struct hook_result res = HOOK_RESULT_INIT;
  assert_int_equal(send_msg(h, "u", "r", "\"hi\"", &res), PARLEY_PASS);
  assert_string_equal(text_of(&published), "order \"b\"\norder \"c\"\norder \"a\"\norder \"d\"\n");
  hook_result_clear(&res);
  hooks_free(h);
  config_free(&c);
}

static void test_first_decision_stops(void **state) {
  struct config c;
  config_defaults(&c);
  add_tracer(&c, "low", 1, "return true");
  add_tracer(&c, "high", 9, "return false, 'no thanks'");
  add_tracer(&c, "mid", 5, "return nil");
  struct hooks *h;
  struct hooks_host host = test_host(NULL);
  assert_int_equal(hooks_new(&h, &host, &c), 0);
  struct hook_result res = HOOK_RESULT_INIT;
  assert_int_equal(send_msg(h, "u", "r", "\"hi\"", &res), PARLEY_REJECT);
  assert_string_equal(res.reason, "no thanks");
  assert_string_equal(res.by, "high");
  assert_string_equal(text_of(&published), "order \"high\"\n");

  /* notification points ignore decisions: every handler runs */
  reset_records();
  struct parley_event ev = {0};
  ev.user_id = "u";
  ev.room = "r";
  hook_result_clear(&res);
  assert_int_equal(hooks_dispatch(h, PARLEY_HOOK_LEAVE, &ev, &res), PARLEY_PASS);
  assert_string_equal(text_of(&published), "leave \"high\"\nleave \"mid\"\nleave \"low\"\n");
  assert_null(res.reason);
  hook_result_clear(&res);
  hooks_free(h);
  config_free(&c);
}

static void test_fail_open_closed(void **state) {
  struct config c;
  config_defaults(&c);
  add_tracer(&c, "broken", 10, "error('boom')");
  add_tracer(&c, "judge", 0, "return true");
  struct hooks *h;
  struct hooks_host host = test_host(NULL);
  assert_int_equal(hooks_new(&h, &host, &c), 0);
  struct hook_result res = HOOK_RESULT_INIT;
  /* default open: the failing handler is skipped, the next one decides */
  assert_int_equal(send_msg(h, "u", "r", "\"hi\"", &res), PARLEY_ALLOW);
  assert_string_equal(res.by, "judge");
  assert_non_null(strstr(text_of(&logged), "script broken: on_message: "));
  assert_non_null(strstr(text_of(&logged), "broken.lua:1: boom"));

  /* closed: the failure refuses */
  cset(&c, "hooks.on_message.fail", "closed");
  assert_int_equal(hooks_reload(h, &c), 0);
  reset_records();
  assert_int_equal(send_msg(h, "u", "r", "\"hi\"", &res), PARLEY_REJECT);
  assert_string_equal(res.reason, HOOKS_FAIL_REASON);
  assert_string_equal(res.by, "broken");
  assert_string_equal(text_of(&published), "order \"broken\"\n");

  /* on_auth is closed by default; a bad return value counts as a failure */
  add_script(&c, "authz", "parley.hook('on_auth', function(e) return 42 end)");
  assert_int_equal(hooks_reload(h, &c), 0);
  struct parley_event ev = {0};
  ev.user_id = "u";
  ev.user_name = "U";
  hook_result_clear(&res);
  assert_int_equal(hooks_dispatch(h, PARLEY_HOOK_AUTH, &ev, &res), PARLEY_REJECT);
  assert_string_equal(res.reason, HOOKS_FAIL_REASON);
  assert_non_null(strstr(text_of(&logged), "script authz: on_auth: handler defined at"));
  cset(&c, "hooks.on_auth.fail", "open");
  assert_int_equal(hooks_reload(h, &c), 0);
  hook_result_clear(&res);
  assert_int_equal(hooks_dispatch(h, PARLEY_HOOK_AUTH, &ev, &res), PARLEY_PASS);

  /* a rewrite where the point has none is a failure too */
  add_script(&c, "joiner", "parley.hook('on_join', function(e) return {body = 1} end)");
  cset(&c, "hooks.on_join.fail", "closed");
  assert_int_equal(hooks_reload(h, &c), 0);
  hook_result_clear(&res);
  assert_int_equal(hooks_dispatch(h, PARLEY_HOOK_JOIN, &ev, &res), PARLEY_REJECT);
  assert_string_equal(res.reason, HOOKS_FAIL_REASON);

  buf_t m = BUF_INIT;
  assert_int_equal(hooks_metrics_render(h, &m), 0);
  assert_non_null(strstr((char *)m.data, "parley_hook_errors_total{kind=\"lua\",name=\"broken\"} 2\n"));
  assert_non_null(strstr((char *)m.data, "parley_hook_calls_total{kind=\"lua\",name=\"judge\"} 1\n"));
  assert_non_null(strstr((char *)m.data, "parley_hook_loaded{kind=\"lua\",name=\"authz\"} 1\n"));
  assert_non_null(strstr((char *)m.data, "# TYPE parley_hook_budget_kills_total counter\n"));
  buf_free(&m);
  hook_result_clear(&res);
  hooks_free(h);
  config_free(&c);
}

static void test_rewrite_and_auth(void **state) {
  struct config c;
  config_defaults(&c);
  add_script(
      &c, "rw",
      "parley.hook('on_message', function(e)\n"
      "  if type(e.body) == 'table' then e.body.text = e.body.text:upper() return {body = e.body} end\n"
      "  return e.body .. '!'\n"
      "end)\n"
      "parley.hook('on_auth', function(e) if e.name == 'x' then return {name = 'X', user = 'ux'} end end)\n");
  struct hooks *h;
  struct hooks_host host = test_host(NULL);
  assert_int_equal(hooks_new(&h, &host, &c), 0);
  struct hook_result res = HOOK_RESULT_INIT;
  assert_int_equal(send_msg(h, "u", "r", "\"hi\"", &res), PARLEY_REWRITE);
  assert_string_equal(res.body, "\"hi!\"");
  assert_int_equal(res.body_len, 5);
  assert_int_equal(send_msg(h, "u", "r", "{\"text\":\"abc\",\"n\":[1,2.5,true,null]}", &res), PARLEY_REWRITE);
  /* object key order is the table's: check the parts */
  assert_non_null(strstr(res.body, "\"text\":\"ABC\""));
  assert_non_null(strstr(res.body, "\"n\":[1,2.5,true,null]"));
  struct parley_event ev = {0};
  ev.user_id = "u";
  ev.user_name = "x";
  hook_result_clear(&res);
  assert_int_equal(hooks_dispatch(h, PARLEY_HOOK_AUTH, &ev, &res), PARLEY_REWRITE);
  assert_string_equal(res.name, "X");
  assert_string_equal(res.user_id, "ux");
  hook_result_clear(&res);
  hooks_free(h);
  config_free(&c);
}

static void test_reload(void **state) {
  struct config c;
  config_defaults(&c);
  add_script(&c, "s", "parley.hook('on_message', function(e) return false, 'v1' end)");
  add_script(&c, "gone", "parley.hook('on_join', function(e) return false end)");
  struct hooks *h;
  struct hooks_host host = test_host(NULL);
  assert_int_equal(hooks_new(&h, &host, &c), 0);
  struct hook_result res = HOOK_RESULT_INIT;
  send_msg(h, "u", "r", "1", &res);
  assert_string_equal(res.reason, "v1");

  /* a new version replaces the old one */
  write_script("s.lua", "parley.hook('on_message', function(e) return false, 'v2' end)");
  assert_int_equal(hooks_reload(h, &c), 0);
  send_msg(h, "u", "r", "1", &res);
  assert_string_equal(res.reason, "v2");

  /* a broken version keeps the old one running, and says why */
  write_script("s.lua", "parley.hook('on_message', function(e) return false, 'v3' end");
  reset_records();
  assert_int_equal(hooks_reload(h, &c), 1);
  assert_non_null(strstr(text_of(&logged), "script s: "));
  assert_non_null(strstr(text_of(&logged), "keeping the previously loaded version"));
  send_msg(h, "u", "r", "1", &res);
  assert_string_equal(res.reason, "v2");

  /* a section removed from the configuration is unloaded */
  assert_true(hooks_has(h, PARLEY_HOOK_JOIN));
  struct config c2;
  config_defaults(&c2);
  char key[] = "scripts.s.path";
  cset(&c2, key, config_ext(&c, false, "s")->path);
  write_script("s.lua", "parley.hook('on_message', function(e) return false, 'v4' end)");
  assert_int_equal(hooks_reload(h, &c2), 0);
  assert_false(hooks_has(h, PARLEY_HOOK_JOIN));
  send_msg(h, "u", "r", "1", &res);
  assert_string_equal(res.reason, "v4");

  /* a missing file is a logged failure, the rest runs */
  cset(&c2, "scripts.missing.path", "/nonexistent/x.lua");
  reset_records();
  assert_int_equal(hooks_reload(h, &c2), 1);
  assert_non_null(
      strstr(text_of(&logged), "script missing: /nonexistent/x.lua: No such file or directory; not loaded"));
  hook_result_clear(&res);
  hooks_free(h);
  config_free(&c);
  config_free(&c2);
}

static void test_config_sections(void **state) {
  struct config c;
  config_defaults(&c);
  char err[256];
  assert_int_equal(config_set(&c, "scripts.x.path", "a.lua", "f:1", err, sizeof err), 0);
  assert_int_equal(config_set(&c, "scripts.x.words", "a b", "f:2", err, sizeof err), 0);
  assert_int_equal(config_set(&c, "scripts.x.words", "c d", "f:3", err, sizeof err), 0);
  assert_int_equal(config_set(&c, "plugins.p.priority", "7", "f:4", err, sizeof err), 0);
  assert_int_equal(config_set(&c, "plugins.p.priority", "x", "f:5", err, sizeof err), -ERANGE);
  assert_non_null(strstr(err, "f:5: plugins.p.priority"));
  assert_int_equal(config_set(&c, "scripts.bad name.path", "x", "f:6", err, sizeof err), -EINVAL);
  assert_int_equal(config_set(&c, "scripts.x", "x", "f:7", err, sizeof err), -EINVAL);
  assert_int_equal(config_set(&c, "hooks.on_message.fail", "sometimes", "f:8", err, sizeof err), -EINVAL);
  const struct ext_section *e = config_ext(&c, false, "x");
  assert_non_null(e);
  assert_string_equal(e->path, "a.lua");
  assert_string_equal(config_ext_opt(e, "words")->value, "c d");
  assert_string_equal(config_ext_opt(e, "words")->where, "f:3");
  assert_int_equal(config_ext(&c, true, "p")->priority, 7);
  assert_null(config_ext(&c, true, "x"));
  assert_int_equal(c.hooks_fail[PARLEY_HOOK_AUTH], 1);
  assert_int_equal(c.hooks_fail[PARLEY_HOOK_MESSAGE], 0);
  /* a conf file line, and reload copies the sections */
  assert_int_equal(
      config_load_text(&c, "t.conf", "scripts.y.path = \"y.lua\"  # c\nscripts.y.n = 5\n", err, sizeof err),
      0);
  assert_string_equal(config_ext_opt(config_ext(&c, false, "y"), "n")->where, "t.conf:2");
  struct config live;
  config_defaults(&live);
  config_apply_reload(&live, &c);
  assert_int_equal(live.nexts, 3);
  assert_string_equal(config_ext_opt(config_ext(&live, false, "y"), "n")->value, "5");
  config_free(&live);
  config_free(&c);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_no_handler_fast_path, setup, teardown),
      cmocka_unit_test_setup_teardown(test_priority_order, setup, teardown),
      cmocka_unit_test_setup_teardown(test_first_decision_stops, setup, teardown),
      cmocka_unit_test_setup_teardown(test_fail_open_closed, setup, teardown),
      cmocka_unit_test_setup_teardown(test_rewrite_and_auth, setup, teardown),
      cmocka_unit_test_setup_teardown(test_reload, setup, teardown),
      cmocka_unit_test_setup_teardown(test_config_sections, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
