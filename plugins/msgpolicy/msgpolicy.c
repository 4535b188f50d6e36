/* msgpolicy: a per-room message size and format policy, as a Parley C plugin (plugins/msgpolicy/README.md).
 *
 * Options (plugins.<name>.<option>), re-read on every configuration reload:
 *   rooms          = "*"        blank-separated room globs the policy covers ('*' any run, '?' one byte)
 *   max_bytes      = 4KiB       largest body, as compact JSON bytes
 *   require_string = false      true: the body must be a JSON string (no objects, numbers ...)
 *   deny           = "a, b"     comma-separated substrings refused anywhere in the body's JSON text
 * Load the same .so under several names (plugins.small.path, plugins.media.path ...) for several policies. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parley/plugin.h"

struct policy {
  const struct parley_api *api;
  struct parley_plugin_ctx *ctx;
  char rooms[512];
  char deny[1024]; /* NUL-separated substrings, ended by an empty one */
  int64_t max_bytes;
  int require_string;
};

static int glob(const char *p, const char *s) {
  const char *star = NULL, *ss = NULL;
  while (*s) {
    if (*p == '*') {
      star = p++;
      ss = s;
    } else if (*p && (*p == '?' || *p == *s)) {
      p++;
      s++;
    } else if (star) {
      p = star + 1;
      s = ++ss;
    } else {
      return 0;
    }
  }
  while (*p == '*') p++;
  return !*p;
}

static int covers(const struct policy *pol, const char *room) {
  char pat[512];
  for (const char *r = pol->rooms; *r;) {
    size_t n = strcspn(r, " \t");
    if (n && n < sizeof pat) {
      memcpy(pat, r, n);
      pat[n] = 0;
      if (glob(pat, room)) return 1;
    }
    r += n;
    r += strspn(r, " \t");
  }
  return 0;
}

static void read_options(struct policy *pol) {
  const struct parley_api *api = pol->api;
  const char *rooms = api->config_get(pol->ctx, "rooms");
  snprintf(pol->rooms, sizeof pol->rooms, "%s", rooms ? rooms : "*");
  pol->max_bytes = api->config_int(pol->ctx, "max_bytes", 4096, 1, 16 << 20);
  const char *rs = api->config_get(pol->ctx, "require_string");
  pol->require_string =
      rs && (!strcmp(rs, "true") || !strcmp(rs, "yes") || !strcmp(rs, "on") || !strcmp(rs, "1"));
  /* "a, b ,c" -> "a\0b\0c\0\0" */
  const char *d = api->config_get(pol->ctx, "deny");
  size_t w = 0;
  for (d = d ? d : ""; *d && w + 2 < sizeof pol->deny;) {
    d += strspn(d, " \t,");
    size_t n = strcspn(d, ",");
    while (n && (d[n - 1] == ' ' || d[n - 1] == '\t')) n--;
    if (n && w + n + 2 < sizeof pol->deny) {
      memcpy(pol->deny + w, d, n);
      w += n;
      pol->deny[w++] = 0;
    }
    d += strcspn(d, ",");
  }
  pol->deny[w] = 0;
}

static int on_message(void *ud, const struct parley_event *ev, struct parley_result *res) {
  const struct policy *pol = ud;
  if (!ev->room || !covers(pol, ev->room)) return PARLEY_PASS;
  if ((int64_t)ev->body_len > pol->max_bytes) return pol->api->reject(res, "message too large for this room");
  if (pol->require_string && (ev->body_len < 2 || ev->body[0] != '"'))
    return pol->api->reject(res, "only text messages in this room");
  for (const char *s = pol->deny; *s; s += strlen(s) + 1)
    if (memmem(ev->body, ev->body_len, s, strlen(s)))
      return pol->api->reject(res, "message refused by room policy");
  return PARLEY_PASS;
}

static int init(struct parley_plugin_ctx *ctx, const struct parley_api *api, void **state) {
  if (api->size < sizeof *api) return -1; /* a server older than our header */
  struct policy *pol = calloc(1, sizeof *pol);
  if (!pol) return -12;
  pol->api = api;
  pol->ctx = ctx;
  read_options(pol);
  *state = pol;
  api->log(ctx, PARLEY_LOG_INFO, "rooms \"%s\", max_bytes %lld%s", pol->rooms, (long long)pol->max_bytes,
           pol->require_string ? ", strings only" : "");
  return api->hook(ctx, PARLEY_HOOK_MESSAGE, on_message, pol, 0);
}

static void reload(struct parley_plugin_ctx *ctx, void *state) { read_options(state); }

static void fini(void *state) { free(state); }

PARLEY_PLUGIN_EXPORT const struct parley_plugin parley_plugin = {PARLEY_PLUGIN_HEADER, .name = "msgpolicy",
                                                                 .version = "1.0",     .init = init,
                                                                 .shutdown = fini,     .reload = reload};

/* The options above, so that `parleyd --check` reports a misspelt one (include/parley/plugin.h). */
PARLEY_PLUGIN_EXPORT const char *const parley_plugin_options[] = {"rooms", "max_bytes", "require_string",
                                                                  "deny", NULL};
