/* Helpers shared by test_hooks.c, test_lua.c and test_plugin.c: a temp dir for scripts, a recording host
 * (publish, kick, log) and config building. Header-only: each test is one executable. */
#ifndef PARLEY_TEST_HOOKS_HELPERS_H
#define PARLEY_TEST_HOOKS_HELPERS_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "hooks/hooks.h"
#include "util/buf.h"

static char tdir[256];
static buf_t logged = BUF_INIT;    /* every log line of the hooks module */
static buf_t published = BUF_INIT; /* "room body\n" per publish */
static buf_t kicked = BUF_INIT;    /* "user reason\n" per kick */

static inline void rec_log(void *ud, int level, const char *line) {
  buf_printf(&logged, "%s\n", line);
  if (getenv("HOOKS_TEST_VERBOSE")) fprintf(stderr, "log: %s\n", line);
}
static inline int rec_publish(void *ud, const char *room, const char *body, size_t len) {
  buf_printf(&published, "%s %.*s\n", room, (int)len, body);
  return 0;
}
static inline int rec_kick(void *ud, const char *user, const char *reason) {
  buf_printf(&kicked, "%s %s\n", user, reason);
  return 0;
}

static inline const char *text_of(buf_t *b) { return b->data ? (const char *)b->data : ""; }

static inline void reset_records(void) {
  buf_reset(&logged);
  buf_reset(&published);
  buf_reset(&kicked);
  if (logged.data) logged.data[0] = 0;
  if (published.data) published.data[0] = 0;
  if (kicked.data) kicked.data[0] = 0;
}

static inline void free_records(void) {
  buf_free(&logged);
  buf_free(&published);
  buf_free(&kicked);
}

static inline void make_tdir(void) {
  snprintf(tdir, sizeof tdir, "/tmp/parley-hooks-XXXXXX");
  if (!mkdtemp(tdir)) abort();
}

static inline void remove_tdir(void) {
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tdir);
  if (system(cmd)) {
  }
}

/* Write tdir/name with text; returns the path (static buffer rotated over 8 slots). */
static inline const char *write_script(const char *name, const char *text) {
  static char paths[8][512];
  static int slot;
  char *p = paths[slot++ % 8];
  snprintf(p, 512, "%s/%s", tdir, name);
  FILE *f = fopen(p, "w");
  if (!f) abort();
  fputs(text, f);
  fclose(f);
  return p;
}

static inline void cset(struct config *c, const char *key, const char *value) {
  char err[256];
  if (config_set(c, key, value, "test:1", err, sizeof err)) {
    fprintf(stderr, "config_set %s: %s\n", key, err);
    abort();
  }
}

/* scripts.<name>.path = tdir/<name>.lua with text (written now). */
static inline void add_script(struct config *c, const char *name, const char *text) {
  char file[128], key[160];
  snprintf(file, sizeof file, "%s.lua", name);
  const char *path = write_script(file, text);
  snprintf(key, sizeof key, "scripts.%s.path", name);
  cset(c, key, path);
}

static inline struct hooks_host test_host(void *loop) {
  struct hooks_host h = {NULL, loop, rec_publish, rec_kick, rec_log};
  return h;
}

/* Dispatch on_message with a JSON body in room as user. */
static inline enum parley_decision send_msg(struct hooks *h, const char *user, const char *room,
                                            const char *body, struct hook_result *res) {
  struct parley_event ev = {0};
  ev.user_id = user;
  ev.user_name = user;
  ev.room = room;
  ev.conn_id = 1;
  ev.client_ip = "127.0.0.1";
  ev.body = body;
  ev.body_len = strlen(body);
  hook_result_clear(res);
  return hooks_dispatch(h, PARLEY_HOOK_MESSAGE, &ev, res);
}

#endif
