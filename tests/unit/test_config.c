/* test_config: the key table, value parsing, conf.d loading, reload, dump and the generated doc. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the four above, which it needs */

#include "config.h"
#include "util/log.h"

#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define KIB ((int64_t)1024)
#define MIB (KIB * 1024)
#define GIB (MIB * 1024)

/* ---- helpers ---- */

static char err[1024];

static int set(struct config *c, const char *key, const char *value) {
  err[0] = '\0';
  return config_set(c, key, value, "t:1", err, sizeof err);
}

/* set() that must succeed; names the input when it does not. */
static void set_ok(struct config *c, const char *key, const char *value) {
  if (set(c, key, value)) fail_msg("%s = '%s': %s", key, value, err);
}

static int load(struct config *c, const char *text) {
  err[0] = '\0';
  return config_load_text(c, "x.conf", text, err, sizeof err);
}

static void write_file(const char *dir, const char *name, const char *text) {
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
}

/* The rest of f from its start, NUL-terminated (malloc'd); closes f. A FILE rather than open_memstream, which
 * GCC's -Wdangling-pointer misreads at -O2. */
static char *drain(FILE *f) {
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  rewind(f);
  char *buf = malloc((size_t)n + 1);
  assert_non_null(buf);
  assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
  buf[n] = '\0';
  fclose(f);
  return buf;
}

static char *slurp(const char *path) {
  FILE *f = fopen(path, "rb");
  return f ? drain(f) : NULL;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  return remove(path);
}
static void rm_rf(const char *dir) { nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS); }

static char *make_tmpdir(void) {
  char tmpl[] = "/tmp/parley-config-XXXXXX";
  assert_non_null(mkdtemp(tmpl));
  return strdup(tmpl);
}

static char *dump_str(const struct config *c) {
  FILE *f = tmpfile();
  assert_non_null(f);
  config_dump(c, f);
  return drain(f);
}

static char *doc_str(void) {
  FILE *f = tmpfile();
  assert_non_null(f);
  config_write_doc(f);
  return drain(f);
}

/* Run fn with stderr captured; returns what was written (malloc'd). */
static char *capture_stderr(void (*fn)(void *), void *arg) {
  char path[] = "/tmp/parley-config-log-XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  fflush(stderr);
  int saved = dup(2);
  dup2(fd, 2);
  fn(arg);
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  close(fd);
  char *out = slurp(path);
  unlink(path);
  return out;
}

/* ---- defaults ---- */

static void test_defaults(void **state) {
  struct config c;
  assert_int_equal(config_defaults(&c), 0);
  assert_string_equal(c.base_dir, "");
  assert_string_equal(c.server_host, "127.0.0.1");
  assert_int_equal(c.server_port, 8080);
  assert_string_equal(c.server_data_dir, "data");
  assert_string_equal(c.server_web_root, "");
  assert_int_equal(c.log_level, LOG_INFO);
  assert_false(c.auth_allow_anonymous);
  assert_string_equal(c.auth_jwt_secret, "");
  assert_int_equal(c.limits_max_frame, 64 * KIB);
  assert_int_equal(c.limits_max_body, 16 * KIB);
  assert_int_equal(c.limits_max_rooms_per_conn, 100);
  assert_int_equal(c.limits_max_connections, 10000);
  assert_int_equal(c.limits_idle_timeout, 60000);
  assert_int_equal(c.limits_hello_timeout, 10000);
  assert_int_equal(c.limits_out_queue_bytes, MIB);

  config_free(&c);
  struct config zero;
  memset(&zero, 0, sizeof zero);
  assert_memory_equal(&c, &zero, sizeof c);
  config_free(&c); /* a zeroed struct is fine */
}

/* ---- value types ---- */

static void test_bool(void **state) {
  struct config c;
  config_defaults(&c);
  const char *yes[] = {"true", "yes", "on", "1", "TRUE", "Yes", "ON"};
  const char *no[] = {"false", "no", "off", "0", "False", "NO", "Off"};
  for (size_t i = 0; i < sizeof yes / sizeof *yes; i++) {
    c.auth_allow_anonymous = false;
    assert_int_equal(set(&c, "auth.allow_anonymous", yes[i]), 0);
    assert_true(c.auth_allow_anonymous);
  }
  for (size_t i = 0; i < sizeof no / sizeof *no; i++) {
    c.auth_allow_anonymous = true;
    assert_int_equal(set(&c, "auth.allow_anonymous", no[i]), 0);
    assert_false(c.auth_allow_anonymous);
  }
  assert_int_equal(set(&c, "auth.allow_anonymous", "maybe"), -EINVAL);
  /* the message lists every spelling the parser accepts */
  assert_string_equal(err, "t:1: auth.allow_anonymous: 'maybe' is not a bool "
                           "(use true, false, yes, no, on, off, 1 or 0)");
  assert_false(c.auth_allow_anonymous); /* unchanged on error */
  assert_int_equal(set(&c, "auth.allow_anonymous", "2"), -EINVAL);
  /* keys under a pattern or kid are named in full, from a conf file as from config_set */
  assert_int_equal(load(&c, "server.port = 9000\nrooms.lobby-*.history = maybe\n"), -EINVAL);
  assert_string_equal(err, "x.conf:2: rooms.lobby-*.history: 'maybe' is not a bool "
                           "(use true, false, yes, no, on, off, 1 or 0)");
  assert_int_equal(set(&c, "rooms.x.access", "nobody"), -EINVAL);
  assert_non_null(strstr(err, "t:1: rooms.x.access: 'nobody' is not one of "));
  assert_int_equal(set(&c, "rooms.x.max_age", "soon"), -EINVAL);
  assert_non_null(strstr(err, "t:1: rooms.x.max_age: 'soon' is not a duration"));
  assert_int_equal(set(&c, "auth.keys.k1.alg", "none"), -EINVAL);
  assert_non_null(strstr(err, "t:1: auth.keys.k1.alg: 'none' is not one of "));
  config_free(&c);
}

static void test_int(void **state) {
  struct config c;
  config_defaults(&c);
  assert_int_equal(set(&c, "server.port", "1"), 0);
  assert_int_equal(c.server_port, 1);
  assert_int_equal(set(&c, "server.port", "65535"), 0);
  assert_int_equal(c.server_port, 65535);
  assert_int_equal(set(&c, "server.port", "+443"), 0);
  assert_int_equal(c.server_port, 443);

  assert_int_equal(set(&c, "server.port", "0"), -ERANGE);
  assert_string_equal(err, "t:1: server.port: '0' is out of range (1..65535)");
  assert_int_equal(set(&c, "server.port", "65536"), -ERANGE);
  assert_int_equal(set(&c, "server.port", "-1"), -ERANGE);
  /* overflow of int64 is detected, not wrapped into range */
  assert_int_equal(set(&c, "server.port", "18446744073709559896"), -ERANGE);
  assert_string_equal(err, "t:1: server.port: '18446744073709559896' is out of range (1..65535)");
  assert_int_equal(set(&c, "server.port", "9223372036854775807"), -ERANGE);
  assert_int_equal(set(&c, "server.port", "-9223372036854775809"), -ERANGE);
  assert_int_equal(c.server_port, 443);

  const char *bad[] = {"", "-", "+", "80a", "0x50", "8 0", "8.0", "eighty", " 80"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    assert_int_equal(set(&c, "server.port", bad[i]), -EINVAL);
  }
  assert_int_equal(set(&c, "server.port", "eighty"), -EINVAL);
  assert_string_equal(err, "t:1: server.port: 'eighty' is not an integer (use a whole number, e.g. 100)");

  assert_int_equal(set(&c, "limits.max_connections", "1000000"), 0);
  assert_int_equal(c.limits_max_connections, 1000000);
  assert_int_equal(set(&c, "limits.max_connections", "1000001"), -ERANGE);
  assert_string_equal(err, "t:1: limits.max_connections: '1000001' is out of range (1..1000000)");
  assert_int_equal(set(&c, "limits.max_rooms_per_conn", "100000"), 0);
  assert_int_equal(set(&c, "limits.max_rooms_per_conn", "0"), -ERANGE);
  config_free(&c);
}

static void test_size(void **state) {
  struct config c;
  config_defaults(&c);
  struct {
    const char *text;
    int64_t want;
  } ok[] = {
      {"4096", 4096},
      {"4096B", 4096},
      {"8192b", 8192},
      {"64KiB", 64 * KIB},
      {"64kib", 64 * KIB},
      {"64k", 64 * KIB},
      {"64K", 64 * KIB},
      {"64KB", 64 * KIB},
      {"64kb", 64 * KIB},
      {"1MiB", MIB},
      {"1m", MIB},
      {"1M", MIB},
      {"1mb", MIB},
      {"1MB", MIB},
      {"1 MiB", MIB},
      {"1g", GIB},
      {"1GiB", GIB},
      {"1gb", GIB},
      {"1G", GIB},
      {"4KiB", 4 * KIB},
      {"1048576", MIB},
      {"3MiB", 3 * MIB},
      {"1023MiB", 1023 * MIB},
  };
  for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
    set_ok(&c, "limits.out_queue_bytes", ok[i].text);
    assert_int_equal(c.limits_out_queue_bytes, ok[i].want);
  }

  set_ok(&c, "limits.max_body", "512B");
  assert_int_equal(c.limits_max_body, 512);
  set_ok(&c, "limits.max_body", "16b");
  assert_int_equal(c.limits_max_body, 16);

  assert_int_equal(set(&c, "limits.max_frame", "12 parsecs"), -EINVAL);
  assert_string_equal(err, "t:1: limits.max_frame: '12 parsecs' is not a size (use e.g. 64KiB)");
  const char *bad[] = {"", "KiB", "1.5MiB", "-1", "1TiB", "1 K i B", "1KiBs", "0x100"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    assert_int_equal(set(&c, "limits.max_frame", bad[i]), -EINVAL);
  }

  /* bounds, stated in the key's own units */
  assert_int_equal(set(&c, "limits.max_frame", "256"), 0);
  assert_int_equal(c.limits_max_frame, 256);
  assert_int_equal(set(&c, "limits.max_frame", "16MiB"), 0);
  assert_int_equal(c.limits_max_frame, 16 * MIB);
  assert_int_equal(set(&c, "limits.max_frame", "255"), -ERANGE);
  assert_string_equal(err, "t:1: limits.max_frame: '255' is out of range (256B..16MiB)");
  assert_int_equal(set(&c, "limits.max_frame", "16777217"), -ERANGE);
  assert_int_equal(set(&c, "limits.max_body", "15"), -ERANGE);
  assert_string_equal(err, "t:1: limits.max_body: '15' is out of range (16B..16MiB)");
  assert_int_equal(set(&c, "limits.out_queue_bytes", "2g"), -ERANGE);
  assert_string_equal(err, "t:1: limits.out_queue_bytes: '2g' is out of range (4KiB..1GiB)");

  /* overflow: of the digits, and of digits * unit */
  assert_int_equal(set(&c, "limits.max_frame", "99999999999999999999"), -ERANGE);
  assert_int_equal(set(&c, "limits.max_frame", "9007199254740992KiB"), -ERANGE);
  assert_int_equal(set(&c, "limits.max_frame", "8589934592GiB"), -ERANGE);
  assert_int_equal(c.limits_max_frame, 16 * MIB);
  config_free(&c);
}

static void test_duration(void **state) {
  struct config c;
  config_defaults(&c);
  struct {
    const char *text;
    int64_t want;
  } ok[] = {
      {"60", 60000},   {"60s", 60000},  {"60S", 60000},   {"1m", 60000},    {"1 m", 60000},
      {"1h", 3600000}, {"1H", 3600000}, {"1500ms", 1500}, {"1000MS", 1000}, {"59m", 59 * 60000},
  };
  for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
    set_ok(&c, "limits.idle_timeout", ok[i].text);
    assert_int_equal(c.limits_idle_timeout, ok[i].want);
  }
  assert_int_equal(set(&c, "limits.idle_timeout", "999ms"), -ERANGE);
  assert_string_equal(err, "t:1: limits.idle_timeout: '999ms' is out of range (1s..1h)");
  assert_int_equal(set(&c, "limits.idle_timeout", "61m"), -ERANGE);
  assert_int_equal(set(&c, "limits.idle_timeout", "0"), -ERANGE);

  assert_int_equal(set(&c, "limits.hello_timeout", "100ms"), 0);
  assert_int_equal(c.limits_hello_timeout, 100);
  assert_int_equal(set(&c, "limits.hello_timeout", "10m"), 0);
  assert_int_equal(c.limits_hello_timeout, 600000);
  assert_int_equal(set(&c, "limits.hello_timeout", "99ms"), -ERANGE);
  assert_string_equal(err, "t:1: limits.hello_timeout: '99ms' is out of range (100ms..10m)");

  assert_int_equal(set(&c, "limits.hello_timeout", "1d"), -EINVAL);
  assert_string_equal(err, "t:1: limits.hello_timeout: '1d' is not a duration (use e.g. 30s or 500ms)");
  const char *bad[] = {"", "s", "1.5s", "-1s", "1sec", "1 min", "5us"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    assert_int_equal(set(&c, "limits.hello_timeout", bad[i]), -EINVAL);
  }
  assert_int_equal(set(&c, "limits.hello_timeout", "9999999999999999h"), -ERANGE);
  assert_int_equal(c.limits_hello_timeout, 600000);
  config_free(&c);
}

static void test_enum_and_string(void **state) {
  struct config c;
  config_defaults(&c);
  const char *names[] = {"error", "warn", "info", "debug"};
  const int levels[] = {LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG};
  for (int i = 0; i < 4; i++) {
    assert_int_equal(set(&c, "log.level", names[i]), 0);
    assert_int_equal(c.log_level, levels[i]);
    assert_int_equal(c.log_level, log_level_parse(names[i]));
  }
  assert_int_equal(set(&c, "log.level", "WARN"), 0);
  assert_int_equal(c.log_level, LOG_WARN);
  assert_int_equal(set(&c, "log.level", "verbose"), -EINVAL);
  assert_string_equal(err, "t:1: log.level: 'verbose' is not one of error, warn, info, debug");
  assert_int_equal(c.log_level, LOG_WARN);

  assert_int_equal(set(&c, "server.host", "::1"), 0);
  assert_string_equal(c.server_host, "::1");
  assert_int_equal(set(&c, "server.web_root", ""), 0);
  assert_string_equal(c.server_web_root, "");

  /* no `where`: no prefix; unknown keys suggest a near one */
  assert_int_equal(config_set(&c, "server.port", "x", NULL, err, sizeof err), -EINVAL);
  assert_string_equal(err, "server.port: 'x' is not an integer (use a whole number, e.g. 100)");
  assert_int_equal(set(&c, "server.prot", "1"), -EINVAL);
  assert_string_equal(err, "t:1: unknown key 'server.prot' (did you mean 'server.port'?)");
  assert_int_equal(set(&c, "max_body", "1"), -EINVAL);
  assert_string_equal(err, "t:1: unknown key 'max_body' (did you mean 'limits.max_body'?)");
  assert_int_equal(set(&c, "nothing.like.it", "1"), -EINVAL);
  assert_string_equal(err, "t:1: unknown key 'nothing.like.it'");

  /* a tiny or absent error buffer is fine */
  char small[8];
  assert_int_equal(config_set(&c, "server.port", "x", "file.conf:12", small, sizeof small), -EINVAL);
  assert_string_equal(small, "file.co");
  assert_int_equal(config_set(&c, "server.port", "x", "file.conf:12", NULL, 0), -EINVAL);
  config_free(&c);
}

/* ---- file syntax ---- */

static void test_text_syntax(void **state) {
  struct config c;
  config_defaults(&c);
  const char *text = "\xEF\xBB\xBF# a comment\n"
                     "\n"
                     "   \t\n"
                     "  # indented comment\n"
                     "server.host=0.0.0.0\n"
                     "\tserver.port\t=\t9000\t# trailing comment\n"
                     "server.data_dir = /var/lib/parley   \r\n"
                     "auth.jwt_secret = \"a \\\"q\\\" \\\\ b\\n\\t#x\"   # comment after quotes\n"
                     "server.web_root = web#root # comment\n"
                     "limits.max_body = 32KiB#no space: part of the value? no: bad size\n";
  /* the last line is an error, checked below; everything before it applies */
  assert_int_equal(load(&c, text), -EINVAL);
  assert_string_equal(
      err, "x.conf:10: limits.max_body: '32KiB#no space: part of the value? no: bad size' is not a "
           "size (use e.g. 64KiB)");
  assert_string_equal(c.server_host, "0.0.0.0");
  assert_int_equal(c.server_port, 9000);
  assert_string_equal(c.server_data_dir, "/var/lib/parley");
  assert_string_equal(c.auth_jwt_secret, "a \"q\" \\ b\n\t#x");
  assert_string_equal(c.server_web_root, "web#root");

  assert_int_equal(load(&c, "server.web_root =\nauth.jwt_secret = # nothing\nserver.host = \"\"\n"), 0);
  assert_string_equal(c.server_web_root, "");
  assert_string_equal(c.auth_jwt_secret, "");
  assert_string_equal(c.server_host, "");

  /* quotes keep blanks and '#'; a later line overrides an earlier one; no final newline is fine */
  assert_int_equal(load(&c, "server.host = \"  a # b  \"\nserver.port = 1\nserver.port = 2"), 0);
  assert_string_equal(c.server_host, "  a # b  ");
  assert_int_equal(c.server_port, 2);
  assert_int_equal(load(&c, ""), 0);
  config_free(&c);
}

static void test_text_errors(void **state) {
  struct config c;
  config_defaults(&c);
  struct {
    const char *text, *msg;
    int rc;
  } cases[] = {
      {"server.port 8080\n", "x.conf:1: missing '=' (expected: key = value)", -EINVAL},
      {"# ok\n = 5\n", "x.conf:2: empty key before '='", -EINVAL},
      {"\n\nserver.prot = 1\n", "x.conf:3: unknown key 'server.prot' (did you mean 'server.port'?)", -EINVAL},
      {"Server.Port = 1\n", "x.conf:1: unknown key 'Server.Port' (did you mean 'server.port'?)", -EINVAL},
      {"auth.jwt_secret = \"abc\n", "x.conf:1: auth.jwt_secret: unterminated quote", -EINVAL},
      {"auth.jwt_secret = \"abc\\\"\n", "x.conf:1: auth.jwt_secret: unterminated quote", -EINVAL},
      {"auth.jwt_secret = \"abc\\", "x.conf:1: auth.jwt_secret: unterminated quote", -EINVAL},
      {"auth.jwt_secret = \"a\" b\n", "x.conf:1: auth.jwt_secret: unexpected text after the closing quote",
       -EINVAL},
      {"auth.jwt_secret = \"a\\qb\"\n",
       "x.conf:1: auth.jwt_secret: unknown escape in string (use \\\" \\\\ \\n or \\t)", -EINVAL},
      {"limits.max_frame =\n", "x.conf:1: limits.max_frame: missing value", -EINVAL},
      {"limits.max_frame = # none\n", "x.conf:1: limits.max_frame: missing value", -EINVAL},
      {"limits.max_frame = \"\"\n", "x.conf:1: limits.max_frame: '' is not a size (use e.g. 64KiB)", -EINVAL},
      {"server.port = 1\r\nserver.port = 0\r\n", "x.conf:2: server.port: '0' is out of range (1..65535)",
       -ERANGE},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    assert_int_equal(load(&c, cases[i].text), cases[i].rc);
    assert_string_equal(err, cases[i].msg);
  }
  /* loading stops at the first error: line 3 is not applied */
  c.server_port = 8080;
  assert_int_equal(load(&c, "server.port = 1\nbogus = 2\nserver.port = 3\n"), -EINVAL);
  assert_string_equal(err, "x.conf:2: unknown key 'bogus'");
  assert_int_equal(c.server_port, 1);
  /* a quoted value for a number is unquoted first, like any value */
  assert_int_equal(load(&c, "limits.max_frame = \"1MiB\"\n"), 0);
  assert_int_equal(c.limits_max_frame, MIB);
  config_free(&c);
}

/* ---- conf.d ---- */

static void test_load_dir_order(void **state) {
  char *tmp = make_tmpdir();
  char dir[512], sub[PATH_MAX];
  snprintf(dir, sizeof dir, "%s/conf.d", tmp);
  assert_int_equal(mkdir(dir, 0700), 0);
  write_file(dir, "10-a.conf", "server.port = 1000\nserver.host = a\n");
  write_file(dir, "20-b.conf", "server.port = 2000\n");
  write_file(dir, "05-z.conf", "server.port = 500\nserver.web_root = z\nserver.host = z\n");
  write_file(dir, "30-c.conf.bak", "server.port = 3000\n");
  write_file(dir, "31-c.conf~", "server.port = 3100\n");
  write_file(dir, ".40-hidden.conf", "server.port = 4000\n");
  write_file(dir, "50-readme.txt", "this is not a conf file\n");
  write_file(dir, "conf", "server.port = 5000\n");
  write_file(dir, ".conf", "server.port = 5100\n");
  write_file(dir, "99-empty.conf", "");
  /* strcmp order, whatever the locale: "Z" < "a" */
  write_file(dir, "a.conf", "limits.max_body = 64KiB\n");
  write_file(dir, "Z.conf", "limits.max_body = 32KiB\n");
  snprintf(sub, sizeof sub, "%s/60-dir.conf", dir);
  assert_int_equal(mkdir(sub, 0700), 0);

  struct config c;
  assert_int_equal(config_load_dir(&c, dir, err, sizeof err), 0);
  assert_int_equal(c.server_port, 2000);
  assert_string_equal(c.server_host, "a");
  assert_string_equal(c.server_web_root, "z");
  assert_int_equal(c.limits_max_body, 64 * KIB);
  assert_int_equal(c.limits_max_frame, 64 * KIB); /* untouched: the default */
  char *real = realpath(tmp, NULL);
  assert_string_equal(c.base_dir, real);

  /* paths: relative ones against base_dir, absolute and empty ones as they are */
  char want[PATH_MAX];
  snprintf(want, sizeof want, "%s/data", real);
  char *p = config_path(&c, c.server_data_dir);
  assert_string_equal(p, want);
  free(p);
  p = config_path(&c, "/srv/parley");
  assert_string_equal(p, "/srv/parley");
  free(p);
  p = config_path(&c, "");
  assert_string_equal(p, "");
  free(p);
  config_free(&c);

  /* a trailing slash does not double the separator in messages; a relative dir works too */
  write_file(dir, "70-bad.conf", "\n\n\nserver.prot = 1\n");
  char slashed[PATH_MAX];
  snprintf(slashed, sizeof slashed, "%s/", dir);
  assert_int_equal(config_load_dir(&c, slashed, err, sizeof err), -EINVAL);
  snprintf(want, sizeof want, "%s/70-bad.conf:4: unknown key 'server.prot' (did you mean 'server.port'?)",
           dir);
  assert_string_equal(err, want);
  config_free(&c);

  char cwd[PATH_MAX];
  assert_non_null(getcwd(cwd, sizeof cwd));
  assert_int_equal(chdir(tmp), 0);
  assert_int_equal(config_load_dir(&c, "conf.d", err, sizeof err), -EINVAL);
  assert_string_equal(err, "conf.d/70-bad.conf:4: unknown key 'server.prot' (did you mean 'server.port'?)");
  assert_string_equal(c.base_dir, real);
  assert_int_equal(chdir(cwd), 0);
  config_free(&c);

  free(real);
  rm_rf(tmp);
  free(tmp);
}

static void test_load_dir_errors(void **state) {
  char *tmp = make_tmpdir();
  char dir[512], want[PATH_MAX];
  struct config c;

  /* an empty dir is fine: the built-in defaults */
  assert_int_equal(config_load_dir(&c, tmp, err, sizeof err), 0);
  assert_int_equal(c.server_port, 8080);
  assert_false(c.auth_allow_anonymous);
  config_free(&c);

  /* a missing one is not */
  snprintf(dir, sizeof dir, "%s/missing", tmp);
  assert_int_equal(config_load_dir(&c, dir, err, sizeof err), -ENOENT);
  snprintf(want, sizeof want, "%s: No such file or directory", dir);
  assert_string_equal(err, want);
  assert_int_equal(c.server_port, 8080); /* still valid */
  config_free(&c);

  /* a file is not a directory */
  write_file(tmp, "plain", "");
  snprintf(dir, sizeof dir, "%s/plain", tmp);
  assert_int_equal(config_load_dir(&c, dir, err, sizeof err), -ENOTDIR);
  snprintf(want, sizeof want, "%s: Not a directory", dir);
  assert_string_equal(err, want);
  config_free(&c);

  /* a bad value names the file and line; earlier files applied, later ones not read */
  snprintf(dir, sizeof dir, "%s/conf.d", tmp);
  assert_int_equal(mkdir(dir, 0700), 0);
  write_file(dir, "10-x.conf", "server.port = 1234\n");
  write_file(dir, "20-y.conf", "# frames\n\nlimits.max_body = 1KiB\nlimits.max_frame = 12 parsecs\n");
  write_file(dir, "30-z.conf", "server.port = 4321\n");
  assert_int_equal(config_load_dir(&c, dir, err, sizeof err), -EINVAL);
  snprintf(want, sizeof want, "%s/20-y.conf:4: limits.max_frame: '12 parsecs' is not a size (use e.g. 64KiB)",
           dir);
  assert_string_equal(err, want);
  assert_int_equal(c.server_port, 1234);
  config_free(&c);

  /* a dangling symlink is reported, not skipped */
  write_file(dir, "20-y.conf", "");
  char link[600];
  snprintf(link, sizeof link, "%s/15-gone.conf", dir);
  assert_int_equal(symlink("/nonexistent/parley.conf", link), 0);
  assert_int_equal(config_load_dir(&c, dir, err, sizeof err), -ENOENT);
  snprintf(want, sizeof want, "%s: No such file or directory", link);
  assert_string_equal(err, want);
  config_free(&c);

  /* a NUL byte means it is not a text file */
  unlink(link);
  snprintf(link, sizeof link, "%s/40-nul.conf", dir);
  FILE *f = fopen(link, "wb");
  fwrite("server.port = 1\0\n", 1, 17, f);
  fclose(f);
  assert_int_equal(config_load_dir(&c, dir, err, sizeof err), -EINVAL);
  snprintf(want, sizeof want, "%s: contains a NUL byte (not a text file?)", link);
  assert_string_equal(err, want);
  config_free(&c);

  rm_rf(tmp);
  free(tmp);
}

/* ---- reload ---- */

struct reload_args {
  struct config *live, *fresh;
};

static void do_reload(void *arg) {
  struct reload_args *a = arg;
  config_apply_reload(a->live, a->fresh);
}

static void test_reload(void **state) {
  struct config live, fresh;
  config_defaults(&live);
  config_defaults(&fresh);
  const char *changes = "server.host = 0.0.0.0\n"
                        "server.port = 9090\n"
                        "server.data_dir = /var/lib/parley\n"
                        "server.web_root = /srv/www\n"
                        "log.level = debug\n"
                        "auth.allow_anonymous = true\n"
                        "auth.jwt_secret = \"new secret\"\n"
                        "limits.max_frame = 1MiB\n"
                        "limits.max_body = 1MiB\n"
                        "limits.max_rooms_per_conn = 7\n"
                        "limits.max_connections = 77\n"
                        "limits.idle_timeout = 5m\n"
                        "limits.hello_timeout = 3s\n"
                        "limits.out_queue_bytes = 8MiB\n";
  assert_int_equal(config_load_text(&fresh, "fresh.conf", changes, err, sizeof err), 0);

  int saved_level = log_level_current;
  log_set_level(LOG_INFO);
  struct reload_args args = {&live, &fresh};
  char *log = capture_stderr(do_reload, &args);
  log_set_level(saved_level);
  config_free(&fresh); /* live must not share fresh's strings */

  /* reloadable keys copied */
  assert_int_equal(live.log_level, LOG_DEBUG);
  assert_true(live.auth_allow_anonymous);
  assert_string_equal(live.auth_jwt_secret, "new secret");
  assert_int_equal(live.limits_max_body, MIB);
  assert_int_equal(live.limits_max_rooms_per_conn, 7);
  assert_int_equal(live.limits_max_connections, 77);
  assert_int_equal(live.limits_hello_timeout, 3000);
  assert_int_equal(live.limits_out_queue_bytes, 8 * MIB);
  /* restart-only keys kept, and each named in the log */
  assert_string_equal(live.server_host, "127.0.0.1");
  assert_int_equal(live.server_port, 8080);
  assert_string_equal(live.server_data_dir, "data");
  assert_string_equal(live.server_web_root, "");
  assert_int_equal(live.limits_max_frame, 64 * KIB);
  assert_int_equal(live.limits_idle_timeout, 60000);
  const char *restart[] = {"server.host",     "server.port",      "server.data_dir",
                           "server.web_root", "limits.max_frame", "limits.idle_timeout"};
  for (size_t i = 0; i < sizeof restart / sizeof *restart; i++) {
    char line[128];
    snprintf(line, sizeof line, "config: %s changed; restart to apply", restart[i]);
    assert_non_null(strstr(log, line));
  }
  assert_null(strstr(log, "auth.jwt_secret changed; restart"));
  free(log);

  /* nothing changed: nothing logged */
  config_defaults(&fresh);
  config_free(&live);
  config_defaults(&live);
  args = (struct reload_args){&live, &fresh};
  log = capture_stderr(do_reload, &args);
  assert_string_equal(log, "");
  free(log);
  config_free(&fresh);
  config_free(&live);
}

/* ---- dump and doc ---- */

static void test_dump_round_trip(void **state) {
  struct config a, b;
  config_defaults(&a);
  const char *text = "server.host = \"  spaced # \\\"quoted\\\" \\\\ back\\nnew\\ttab  \"\n"
                     "server.port = 1\n"
                     "server.data_dir = \"\"\n"
                     "log.level = error\n"
                     "auth.allow_anonymous = yes\n"
                     "limits.max_frame = 1000\n"
                     "limits.max_body = 3MiB\n"
                     "limits.idle_timeout = 1h\n"
                     "limits.hello_timeout = 1500ms\n"
                     "limits.out_queue_bytes = 1GiB\n";
  assert_int_equal(config_load_text(&a, "a.conf", text, err, sizeof err), 0);
  char *da = dump_str(&a);
  assert_non_null(strstr(da, "limits.max_frame = 1000B\n"));
  assert_non_null(strstr(da, "limits.hello_timeout = 1500ms\n"));
  assert_non_null(strstr(da, "limits.idle_timeout = 1h\n"));
  assert_non_null(strstr(da, "limits.out_queue_bytes = 1GiB\n"));
  assert_non_null(strstr(da, "auth.allow_anonymous = true\n"));
  assert_non_null(strstr(da, "server.data_dir = \"\"\n"));

  config_defaults(&b);
  assert_int_equal(config_load_text(&b, "dump", da, err, sizeof err), 0);
  char *db = dump_str(&b);
  assert_string_equal(da, db);
  assert_string_equal(a.server_host, b.server_host);
  assert_int_equal(a.limits_hello_timeout, b.limits_hello_timeout);
  assert_int_equal(a.log_level, b.log_level);
  free(da);
  free(db);
  config_free(&a);
  config_free(&b);

  /* defaults: one line per key, in table order (keys added later may appear in between) */
  config_defaults(&a);
  da = dump_str(&a);
  const char *lines[] = {"server.host = \"127.0.0.1\"\n",
                         "server.port = 8080\n",
                         "server.data_dir = \"data\"\n",
                         "server.web_root = \"\"\n",
                         "log.level = info\n",
                         "auth.allow_anonymous = false\n",
                         "auth.jwt_secret = \"\"\n",
                         "limits.max_frame = 64KiB\n",
                         "limits.max_body = 16KiB\n",
                         "limits.max_rooms_per_conn = 100\n",
                         "limits.max_connections = 10000\n",
                         "limits.idle_timeout = 1m\n",
                         "limits.hello_timeout = 10s\n",
                         "limits.out_queue_bytes = 1MiB\n"};
  const char *at = da;
  for (size_t i = 0; i < sizeof lines / sizeof *lines; i++) {
    const char *hit = strstr(at, lines[i]);
    if (!hit || (hit != da && hit[-1] != '\n')) fail_msg("dump lacks, or misorders: %s", lines[i]);
    at = hit + strlen(lines[i]);
  }
  free(da);
  config_free(&a);
}

static void test_doc(void **state) {
  char *doc = doc_str();
  assert_true(!strncmp(doc, "# Configuration\n", 16));
  assert_non_null(strstr(doc, "| key | type | default | range | reload | description |\n"));
  assert_non_null(strstr(doc, "parleyd --check"));
  assert_non_null(strstr(doc, "SIGHUP"));
  assert_non_null(strstr(doc, "| `limits.max_frame` | size | `64KiB` | 256B..16MiB | restart | "));
  assert_non_null(strstr(doc, "| `log.level` | enum | `info` | `error`, `warn`, `info`, `debug` | live | "));
  assert_non_null(strstr(doc, "| `server.host` | string | `\"127.0.0.1\"` |  | restart | "));

  /* every key of the dump has exactly one row */
  struct config c;
  config_defaults(&c);
  char *dump = dump_str(&c);
  size_t keys = 0;
  for (char *line = strtok(dump, "\n"); line; line = strtok(NULL, "\n")) {
    *strchr(line, ' ') = '\0';
    char row[128];
    snprintf(row, sizeof row, "\n| `%s` | ", line);
    char *hit = strstr(doc, row);
    assert_non_null(hit);
    assert_null(strstr(hit + 1, row));
    keys++;
  }
  assert_true(keys >= 14);
  size_t rows = 0;
  char *room_section = strstr(doc, "\n## Room rules\n");
  assert_non_null(room_section);
  for (char *p = strstr(doc, "\n| `"); p && p < room_section; p = strstr(p + 1, "\n| `")) rows++;
  assert_int_equal(rows, keys);
  assert_non_null(strstr(room_section, "| `rooms.<pattern>.history` | bool | `true` |"));
  assert_non_null(strstr(room_section, "| `rooms.<pattern>.max_count` | integer | `0` |"));
  free(dump);
  config_free(&c);

#ifdef PARLEY_SOURCE_DIR
  /* the committed docs/configuration.md is the generated one */
  char *committed = slurp(PARLEY_SOURCE_DIR "/docs/configuration.md");
  assert_non_null(committed);
  if (strcmp(committed, doc))
    fail_msg(
        "docs/configuration.md is stale: regenerate it with `parleyd --config-doc > docs/configuration.md`");
  free(committed);
#endif
  free(doc);
}

static void test_room_rules(void **state) {
  struct config c;
  config_defaults(&c);
  assert_true(config_room_history(&c, "lobby"));
  assert_int_equal(config_load_text(&c, "r.conf",
                                    "rooms.ticker-*.history = off\n"
                                    "rooms.*.max_count = 100\n"
                                    "rooms.ticker-eu.history = on\n"
                                    "rooms.a.b.c.max_age = 1h\n",
                                    err, sizeof err),
                   0);
  assert_false(config_room_history(&c, "ticker-us"));
  assert_true(config_room_history(&c, "ticker-eu")); /* the later rule wins */
  assert_true(config_room_history(&c, "lobby"));
  assert_int_equal(config_room_max_count(&c, "lobby"), 100);
  assert_int_equal(config_room_max_age(&c, "a.b.c"), 3600 * 1000);
  assert_int_equal(config_room_max_age(&c, "lobby"), 0);
  assert_true(config_glob_match("dm:*", "dm:a:b"));
  assert_false(config_glob_match("dm:?", "dm:ab"));

  /* errors name the file and line */
  assert_int_not_equal(config_load_text(&c, "bad.conf", "\nrooms.x.colour = red\n", err, sizeof err), 0);
  assert_non_null(strstr(err, "bad.conf:2: unknown room key 'colour'"));
  assert_int_not_equal(config_load_text(&c, "bad.conf", "rooms.history = off\n", err, sizeof err), 0);
  assert_non_null(strstr(err, "bad.conf:1:"));
  assert_int_not_equal(config_load_text(&c, "bad.conf", "rooms.x.max_count = lots\n", err, sizeof err), 0);
  assert_non_null(strstr(err, "bad.conf:1:"));

  /* dump round trip and reload keep the rules */
  char *dump = dump_str(&c);
  assert_non_null(strstr(dump, "rooms.ticker-*.history = false\n"));
  struct config d;
  config_defaults(&d);
  assert_int_equal(config_load_text(&d, "dump", dump, err, sizeof err), 0);
  assert_false(config_room_history(&d, "ticker-us"));
  struct config live;
  config_defaults(&live);
  config_apply_reload(&live, &d);
  assert_false(config_room_history(&live, "ticker-us"));
  assert_int_equal(config_room_max_count(&live, "x"), 100);
  free(dump);
  config_free(&live);
  config_free(&d);
  config_free(&c);
}

#ifdef PARLEY_SOURCE_DIR
/* The files the repository ships in conf.d/. A user's own files sit next to them (README: 50-local.conf),
 * so the tests below read these by name, never the directory as a whole. */
static const char *const shipped_conf[] = {"00-defaults.conf"};

static void test_shipped_conf(void **state) {
  /* a copy of the shipped files alone, in a conf dir of their own */
  char *tmp = make_tmpdir();
  char dir[512];
  snprintf(dir, sizeof dir, "%s/conf.d", tmp);
  assert_int_equal(mkdir(dir, 0700), 0);
  for (size_t i = 0; i < sizeof shipped_conf / sizeof *shipped_conf; i++) {
    char src[PATH_MAX];
    snprintf(src, sizeof src, "%s/conf.d/%s", PARLEY_SOURCE_DIR, shipped_conf[i]);
    char *text = slurp(src);
    if (!text) fail_msg("%s: not found", src);
    write_file(dir, shipped_conf[i], text);
    free(text);
  }
  struct config c;
  assert_int_equal(config_load_dir(&c, dir, err, sizeof err), 0);
  assert_string_equal(c.server_host, "127.0.0.1");
  assert_int_equal(c.server_port, 8080);
  assert_string_equal(c.server_data_dir, "data");
  assert_string_equal(c.server_web_root, "web/app/dist");
  assert_true(c.auth_allow_anonymous);
  assert_true(strlen(c.auth_jwt_secret) > 0);
  char *root = realpath(tmp, NULL);
  assert_string_equal(c.base_dir, root);
  free(root);
  rm_rf(tmp);
  free(tmp);

  /* every commented "# key = value" example is valid, and every key is shown (set or as an example) */
  char *text = slurp(PARLEY_SOURCE_DIR "/conf.d/00-defaults.conf");
  assert_non_null(text);
  size_t examples = 0;
  for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
    if (strncmp(line, "# ", 2) || !strstr(line, " = ")) continue;
    const char *key = line + 2, *sp = strchr(key, ' ');
    if (!memchr(key, '.', (size_t)(sp - key))) continue;
    assert_int_equal(config_load_text(&c, "example", key, err, sizeof err), 0);
    examples++;
  }
  assert_true(examples > 0);
  free(text);
  config_free(&c);

  text = slurp(PARLEY_SOURCE_DIR "/conf.d/00-defaults.conf");
  config_defaults(&c);
  char *dump = dump_str(&c);
  for (char *line = strtok(dump, "\n"); line; line = strtok(NULL, "\n")) {
    *strchr(line, ' ') = '\0';
    char shown[128];
    snprintf(shown, sizeof shown, "%s = ", line);
    if (!strstr(text, shown)) fail_msg("conf.d/00-defaults.conf does not show %s", line);
  }
  free(dump);
  free(text);
  config_free(&c);
}
#endif

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_defaults),
      cmocka_unit_test(test_bool),
      cmocka_unit_test(test_int),
      cmocka_unit_test(test_size),
      cmocka_unit_test(test_duration),
      cmocka_unit_test(test_enum_and_string),
      cmocka_unit_test(test_text_syntax),
      cmocka_unit_test(test_text_errors),
      cmocka_unit_test(test_load_dir_order),
      cmocka_unit_test(test_load_dir_errors),
      cmocka_unit_test(test_room_rules),
      cmocka_unit_test(test_reload),
      cmocka_unit_test(test_dump_round_trip),
      cmocka_unit_test(test_doc),
#ifdef PARLEY_SOURCE_DIR
      cmocka_unit_test(test_shipped_conf),
#endif
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
