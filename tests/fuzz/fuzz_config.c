/* fuzz_config: the text of one conf file (src/config.c), up to its first NUL byte.
 *
 * config_load_text must not crash and must report an error as "fuzz.conf:LINE: ..." (or accept). A text
 * it accepts must survive the round trip of config_dump (src/config.h: "loads back to the same value"):
 * load(dump(c)) succeeds and dumps to the same text. The accepted config is also applied as a reload onto
 * the defaults (config_apply_reload) and its per-room lookups are exercised. Any disagreement aborts. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "util/log.h"

#define CHECK(cond, ...)                                                                                     \
  do {                                                                                                       \
    if (!(cond)) {                                                                                           \
      fprintf(stderr, "fuzz_config: check failed: %s: ", #cond);                                             \
      fprintf(stderr, __VA_ARGS__);                                                                          \
      fputc('\n', stderr);                                                                                   \
      abort();                                                                                               \
    }                                                                                                        \
  } while (0)

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  log_set_level(LOG_ERROR); /* config_apply_reload logs each restart-only change at info */
  return 0;
}

/* config_dump's text, malloc'd. */
static char *dump(const struct config *c) {
  char *text = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&text, &len);
  CHECK(f != NULL, "open_memstream");
  config_dump(c, f);
  fclose(f);
  return text;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
  char *text = malloc(n + 1);
  memcpy(text, data, n);
  text[n] = 0;
  struct config a, b, live;
  char err[512] = "";
  CHECK(config_defaults(&a) == 0, "config_defaults");
  int rc = config_load_text(&a, "fuzz.conf", text, err, sizeof err);
  if (rc) {
    CHECK(rc < 0 && !strncmp(err, "fuzz.conf:", 10), "error %d: '%s'", rc, err);
    config_free(&a);
    free(text);
    return 0;
  }
  char *d1 = dump(&a);
  CHECK(config_defaults(&b) == 0, "config_defaults");
  rc = config_load_text(&b, "dump", d1, err, sizeof err);
  CHECK(rc == 0, "the dump does not load back: %s\n--- input:\n%s\n--- dump:\n%s", err, text, d1);
  char *d2 = dump(&b);
  CHECK(!strcmp(d1, d2), "the dump changed on reload\n--- input:\n%s\n--- first:\n%s\n--- second:\n%s", text,
        d1, d2);

  /* a reload onto the defaults, then the lookups the core makes per room */
  CHECK(config_defaults(&live) == 0, "config_defaults");
  config_apply_reload(&live, &a);
  const char *rooms[] = {"lobby", "team-a", "dm:ann:bob", "x"};
  for (size_t i = 0; i < sizeof rooms / sizeof *rooms; i++) {
    (void)config_room_history(&live, rooms[i]);
    (void)config_room_max_age(&live, rooms[i]);
    (void)config_room_max_count(&live, rooms[i]);
    int64_t acc = config_room_access(&live, rooms[i]);
    CHECK(acc >= ROOM_PUBLIC && acc <= ROOM_PRIVATE, "access %lld", (long long)acc);
    CHECK(config_room_history(&live, rooms[i]) == config_room_history(&a, rooms[i]), "history of %s",
          rooms[i]);
  }
  for (size_t i = 0; i < a.nexts; i++) {
    const struct ext_section *e = config_ext(&a, a.exts[i].plugin, a.exts[i].name);
    CHECK(e != NULL, "section %s", a.exts[i].name);
    char *path = config_path(&a, e->path);
    free(path);
  }
  config_free(&live);
  free(d1);
  free(d2);
  config_free(&a);
  config_free(&b);
  free(text);
  return 0;
}
