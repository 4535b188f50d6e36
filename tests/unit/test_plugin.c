/* Unit tests for hooks/plugin.c with real .so plugins (tests/plugins): the good one's handlers, config and
 * timer work; wrong magic, ABI version, descriptor size, missing symbol, missing file and init failure are
 * refused with a clear reason and leave nothing behind. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
/* cmocka needs the four headers above first */
#include <cmocka.h>

#include <uv.h>

#include "hooks/internal.h"
#include "hooks_helpers.h"

#ifndef PARLEY_TEST_PLUGIN_DIR
#error "PARLEY_TEST_PLUGIN_DIR: the directory of the test plugins (tests/plugins/CMakeLists.txt sets it)"
#endif

static int setup(void **state) {
  reset_records();
  return 0;
}
static int teardown(void **state) {
  free_records();
  return 0;
}

static void add_plugin(struct config *c, const char *name, const char *file) {
  char key[128], path[512];
  snprintf(key, sizeof key, "plugins.%s.path", name);
  snprintf(path, sizeof path, "%s/%s.so", PARLEY_TEST_PLUGIN_DIR, file);
  cset(c, key, path);
}

static void test_good_plugin(void **state) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  struct config c;
  config_defaults(&c);
  add_plugin(&c, "good", "good");
  cset(&c, "plugins.good.deny", "spam");
  cset(&c, "plugins.good.delay_ms", "5000000"); /* out of range: clamped to 1000 and logged */
  struct hooks *h;
  struct hooks_host host = test_host(&loop);
  assert_int_equal(hooks_new(&h, &host, &c), 0);
  assert_non_null(strstr(text_of(&logged), "plugin good: good plugin ready, deny=spam"));
  assert_non_null(
      strstr(text_of(&logged), "test:1: plugins.good.delay_ms: 5000000 is out of range 0..1000; using 1000"));
  assert_non_null(strstr(text_of(&logged), "plugin good: good 1.0 initialised"));
  assert_true(hooks_has(h, PARLEY_HOOK_MESSAGE));
  struct hook_result res = HOOK_RESULT_INIT;
  assert_int_equal(send_msg(h, "u", "r", "\"buy spam now\"", &res), PARLEY_REJECT);
  assert_string_equal(res.reason, "plugin says no");
  assert_string_equal(res.by, "good");
  assert_int_equal(send_msg(h, "u", "r", "\"shout\"", &res), PARLEY_REWRITE);
  assert_string_equal(res.body, "\"SHOUT\"");
  assert_int_equal(send_msg(h, "u", "r", "\"hello\"", &res), PARLEY_PASS);

  /* on_auth: rename; a plugin error with the default closed policy refuses */
  struct parley_event ev = {0};
  ev.user_id = "u1";
  ev.user_name = "anon";
  hook_result_clear(&res);
  assert_int_equal(hooks_dispatch(h, PARLEY_HOOK_AUTH, &ev, &res), PARLEY_REWRITE);
  assert_string_equal(res.name, "guest");
  ev.user_name = "broken";
  hook_result_clear(&res);
  assert_int_equal(hooks_dispatch(h, PARLEY_HOOK_AUTH, &ev, &res), PARLEY_REJECT);
  assert_string_equal(res.reason, HOOKS_FAIL_REASON);

  /* with a Lua script at a higher priority, the script decides first */
  char tmpl[] = "/tmp/parley-plugin-XXXXXX";
  assert_non_null(mkdtemp(tmpl));
  snprintf(tdir, sizeof tdir, "%s", tmpl);
  add_script(
      &c, "first",
      "parley.hook('on_message', function(e) if e.body == 'lua' then return false, 'lua says no' end end)");
  cset(&c, "scripts.first.priority", "10");
  assert_int_equal(hooks_reload(h, &c), 0);
  assert_int_equal(send_msg(h, "u", "r", "\"lua\"", &res), PARLEY_REJECT);
  assert_string_equal(res.reason, "lua says no");
  assert_int_equal(send_msg(h, "u", "r", "\"spam\"", &res), PARLEY_REJECT);
  assert_string_equal(res.reason, "plugin says no");
  remove_tdir();

  /* the timer from init publishes (delay clamped to 1 s) */
  for (int i = 0; i < 50 && !published.len; i++) uv_run(&loop, UV_RUN_ONCE);
  assert_string_equal(text_of(&published), "timers {\"tick\":1}\n");

  buf_t m = BUF_INIT;
  assert_int_equal(hooks_metrics_render(h, &m), 0);
  assert_non_null(strstr((char *)m.data, "parley_hook_rejects_total{kind=\"plugin\",name=\"good\"} 2\n"));
  assert_non_null(strstr((char *)m.data, "parley_hook_errors_total{kind=\"plugin\",name=\"good\"} 1\n"));
  buf_free(&m);
  hook_result_clear(&res);
  hooks_free(h);
  uv_run(&loop, UV_RUN_NOWAIT);
  assert_int_equal(uv_loop_close(&loop), 0);
  config_free(&c);
}

static void refused(const char *file, const char *reason) {
  struct config c;
  config_defaults(&c);
  add_plugin(&c, "p", file);
  reset_records();
  struct hooks *h = NULL;
  struct hooks_host host = test_host(NULL);
  /* not optional: the start fails, naming the reason */
  assert_int_equal(hooks_new(&h, &host, &c), -EINVAL);
  if (!strstr(text_of(&logged), reason)) fail_msg("log lacks \"%s\":\n%s", reason, text_of(&logged));
  assert_non_null(strstr(text_of(&logged), "optional = true"));
  /* --check reports it without initialising anything (init_fail passes: its init is not called) */
  char err[1024];
  int n = hooks_check(&c, err, sizeof err);
  if (!strcmp(file, "init_fail")) {
    assert_int_equal(n, 0);
  } else {
    assert_int_equal(n, 1);
    if (!strstr(err, reason)) fail_msg("check lacks \"%s\": %s", reason, err);
    assert_non_null(strstr(err, "plugin p: refused: "));
  }
  /* optional: logged, and the server runs on */
  cset(&c, "plugins.p.optional", "true");
  reset_records();
  assert_int_equal(hooks_new(&h, &host, &c), 0);
  if (!strstr(text_of(&logged), reason)) fail_msg("log lacks \"%s\":\n%s", reason, text_of(&logged));
  assert_non_null(strstr(text_of(&logged), "plugin p: refused: "));
  for (int p = 0; p < PARLEY_HOOK__COUNT; p++) assert_false(hooks_has(h, p));
  assert_null(h->owners[0]->impl);
  assert_int_equal(h->owners[0]->load_failures, 1);
  hooks_free(h);
  config_free(&c);
}

static void test_bad_magic(void **state) {
  refused("bad_magic", "bad magic 0xdeadbeef (expected 0x50524c59)");
}
static void test_bad_abi(void **state) {
  refused("bad_abi", "built for plugin ABI 42, this server speaks ABI 1");
}
static void test_bad_size(void **state) {
  char want[96];
  snprintf(want, sizeof want, "descriptor size %zu, expected %zu", sizeof(struct parley_plugin) - 8,
           sizeof(struct parley_plugin));
  refused("bad_size", want);
}
static void test_init_fail(void **state) { refused("init_fail", "init failed (-22)"); }
static void test_no_symbol(void **state) { refused("no_symbol", "no 'parley_plugin' symbol"); }
static void test_missing_file(void **state) { refused("does_not_exist", "dlopen: "); }

static void test_good_next_to_bad(void **state) {
  struct config c;
  config_defaults(&c);
  add_plugin(&c, "bad", "bad_magic");
  cset(&c, "plugins.bad.optional", "yes");
  add_plugin(&c, "good", "good");
  struct hooks *h;
  struct hooks_host host = test_host(NULL);
  assert_int_equal(hooks_new(&h, &host, &c), 0);
  struct hook_result res = HOOK_RESULT_INIT;
  assert_int_equal(send_msg(h, "u", "r", "\"forbidden\"", &res), PARLEY_REJECT);
  /* reload keeps a plugin loaded from the same path; removing it unloads it */
  assert_int_equal(hooks_reload(h, &c), 1);
  assert_int_equal(send_msg(h, "u", "r", "\"forbidden\"", &res), PARLEY_REJECT);
  struct config empty;
  config_defaults(&empty);
  assert_int_equal(hooks_reload(h, &empty), 0);
  assert_false(hooks_has(h, PARLEY_HOOK_MESSAGE));
  hook_result_clear(&res);
  hooks_free(h);
  config_free(&c);
  config_free(&empty);
}

static void test_msgpolicy(void **state) {
  struct config c;
  config_defaults(&c);
  add_plugin(&c, "media", "msgpolicy");
  cset(&c, "plugins.media.rooms", "media-* lobby");
  cset(&c, "plugins.media.max_bytes", "12");
  cset(&c, "plugins.media.require_string", "true");
  cset(&c, "plugins.media.deny", "spam, eggs ,");
  struct hooks *h;
  struct hooks_host host = test_host(NULL);
  assert_int_equal(hooks_new(&h, &host, &c), 0);
  struct hook_result res = HOOK_RESULT_INIT;
  assert_int_equal(send_msg(h, "u", "media-1", "\"hello\"", &res), PARLEY_PASS);
  assert_int_equal(send_msg(h, "u", "media-1", "\"hello world!\"", &res), PARLEY_REJECT);
  assert_string_equal(res.reason, "message too large for this room");
  assert_int_equal(send_msg(h, "u", "lobby", "{\"a\":1}", &res), PARLEY_REJECT);
  assert_string_equal(res.reason, "only text messages in this room");
  assert_int_equal(send_msg(h, "u", "lobby", "\"eggs\"", &res), PARLEY_REJECT);
  assert_string_equal(res.reason, "message refused by room policy");
  assert_int_equal(send_msg(h, "u", "other", "\"spam spam spam spam\"", &res), PARLEY_PASS);
  /* options are re-read on reload (the plugin stays loaded) */
  cset(&c, "plugins.media.max_bytes", "1KiB");
  cset(&c, "plugins.media.deny", "");
  assert_int_equal(hooks_reload(h, &c), 0);
  assert_int_equal(send_msg(h, "u", "media-1", "\"hello world, eggs!\"", &res), PARLEY_PASS);
  hook_result_clear(&res);
  hooks_free(h);
  config_free(&c);
}

/* --check: options a plugin declares (parley_plugin_options) vs. its section; bad optional values. */
static void test_check_options(void **state) {
  struct config c;
  config_defaults(&c);
  add_plugin(&c, "good", "good");
  cset(&c, "plugins.good.deny", "x");
  cset(&c, "plugins.good.optional", "false");
  char err[1024];
  assert_int_equal(hooks_check(&c, err, sizeof err), 0);
  assert_string_equal(err, "");
  config_set(&c, "plugins.good.denny", "x", "conf.d/50.conf:7", err, sizeof err);
  cset(&c, "plugins.good.optional", "maybe");
  assert_int_equal(hooks_check(&c, err, sizeof err), 2);
  assert_non_null(strstr(err, "test:1: plugins.good.optional: 'maybe' is not a bool"));
  assert_non_null(strstr(
      err, "conf.d/50.conf:7: plugins.good.denny: unknown option (plugin good reads: deny, delay_ms)"));
  /* the shipped msgpolicy declares its options */
  add_plugin(&c, "media", "msgpolicy");
  cset(&c, "plugins.media.whatever", "1");
  assert_int_equal(hooks_check(&c, err, sizeof err), 3);
  assert_non_null(
      strstr(err, "plugins.media.whatever: unknown option (plugin media reads: rooms, max_bytes"));
  /* a plugin without the symbol declares nothing: its options are not checked */
  add_plugin(&c, "all", "hookall");
  cset(&c, "plugins.all.whatever", "1");
  assert_int_equal(hooks_check(&c, err, sizeof err), 3);
  /* at start-up an unknown option is a warning */
  cset(&c, "plugins.good.optional", "no");
  reset_records();
  struct hooks *h;
  struct hooks_host host = test_host(NULL);
  assert_int_equal(hooks_new(&h, &host, &c), 0);
  assert_non_null(strstr(text_of(&logged), "plugins.good.denny: unknown option"));
  hooks_free(h);
  config_free(&c);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_good_plugin, setup, teardown),
      cmocka_unit_test_setup_teardown(test_bad_magic, setup, teardown),
      cmocka_unit_test_setup_teardown(test_bad_abi, setup, teardown),
      cmocka_unit_test_setup_teardown(test_bad_size, setup, teardown),
      cmocka_unit_test_setup_teardown(test_init_fail, setup, teardown),
      cmocka_unit_test_setup_teardown(test_no_symbol, setup, teardown),
      cmocka_unit_test_setup_teardown(test_missing_file, setup, teardown),
      cmocka_unit_test_setup_teardown(test_good_next_to_bad, setup, teardown),
      cmocka_unit_test_setup_teardown(test_msgpolicy, setup, teardown),
      cmocka_unit_test_setup_teardown(test_check_options, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
