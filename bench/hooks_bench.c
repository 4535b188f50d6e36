/* hooks_bench: per-message cost of hooks_dispatch(on_message) — no handler, a no-op Lua hook, the shipped
 * word filter (scripts/moderation/profanity.lua) with 1,000 words in reject and mask mode, and optionally a C
 * plugin. A benchmark, not a test: it prints figures.
 *
 *   hooks_bench [ITERATIONS] [PLUGIN.so]      (run from the repository root: it reads scripts/moderation) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "hooks/hooks.h"

static void quiet(void *ud, int level, const char *line) {
  if (level <= 1) fprintf(stderr, "%s\n", line);
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void set(struct config *c, const char *k, const char *v) {
  char err[256];
  if (config_set(c, k, v, "bench", err, sizeof err)) {
    fprintf(stderr, "%s\n", err);
    exit(1);
  }
}

static void run(const char *label, struct config *c, const char *body, long iters) {
  struct hooks *h;
  struct hooks_host host = {0};
  host.log = quiet;
  if (hooks_new(&h, &host, c)) exit(1);
  struct parley_event ev = {0};
  ev.user_id = "u1";
  ev.user_name = "User One";
  ev.room = "lobby";
  ev.client_ip = "127.0.0.1";
  ev.body = body;
  ev.body_len = strlen(body);
  struct hook_result res = HOOK_RESULT_INIT;
  int last = 0;
  for (long i = 0; i < iters / 10; i++) { /* warm up */
    last = hooks_dispatch(h, PARLEY_HOOK_MESSAGE, &ev, &res);
    hook_result_clear(&res);
  }
  double t0 = now();
  for (long i = 0; i < iters; i++) {
    last = hooks_dispatch(h, PARLEY_HOOK_MESSAGE, &ev, &res);
    hook_result_clear(&res);
  }
  double dt = now() - t0;
  printf("%-44s %8.3f us/message  (decision %d, %ld messages)\n", label, dt / (double)iters * 1e6, last,
         iters);
  hooks_free(h);
}

int main(int argc, char **argv) {
  long iters = argc > 1 ? atol(argv[1]) : 200000;
  const char *plugin = argc > 2 ? argv[2] : NULL;
  const char *msg = "\"the quick brown fox jumps over the lazy dog and then naps for hours\""; /* 14 words */
  const char *objmsg = "{\"text\":\"the quick brown fox jumps over the lazy dog and then naps for hours\"}";
  char dir[] = "/tmp/hooks-bench-XXXXXX";
  if (!mkdtemp(dir)) return 1;
  char noop[300];
  snprintf(noop, sizeof noop, "%s/noop.lua", dir);
  FILE *f = fopen(noop, "w");
  fputs("parley.hook('on_message', function(e) return nil end)\n", f);
  fclose(f);

  /* 1,000 words: 995 made up + 5 real-looking ones, none in the message */
  size_t cap = 16 * 1000;
  char *words = malloc(cap), *w = words;
  for (int i = 0; i < 995; i++) w += sprintf(w, "bad%03dword ", i);
  strcpy(w, "darn heck dang crud bleep");

  struct config c;
  config_defaults(&c);
  run("no handler (fast path)", &c, msg, iters * 10);
  set(&c, "scripts.noop.path", noop);
  run("no-op Lua hook", &c, msg, iters);
  config_free(&c);

  const char *modes[] = {"reject", "mask"};
  for (int m = 0; m < 2; m++) {
    config_defaults(&c);
    set(&c, "scripts.profanity.path", "scripts/moderation/profanity.lua");
    set(&c, "scripts.profanity.words", words);
    set(&c, "scripts.profanity.mode", modes[m]);
    char label[80];
    snprintf(label, sizeof label, "word filter, 1,000 words, %s, clean", modes[m]);
    run(label, &c, msg, iters);
    snprintf(label, sizeof label, "word filter, 1,000 words, %s, object body", modes[m]);
    run(label, &c, objmsg, iters);
    snprintf(label, sizeof label, "word filter, 1,000 words, %s, 1 hit", modes[m]);
    run(label, &c, "\"the quick brown fox says darn and naps\"", iters);
    config_free(&c);
  }
  if (plugin) {
    config_defaults(&c);
    set(&c, "plugins.p.path", plugin);
    set(&c, "plugins.p.deny", "spam, eggs");
    run("C plugin", &c, msg, iters * 10);
    config_free(&c);
  }
  free(words);
  unlink(noop);
  rmdir(dir);
  return 0;
}
