/* A well-formed test plugin: on_message rejects bodies containing plugins.<name>.deny (default "forbidden"),
 * rewrites the body "\"shout\"" to "\"SHOUT\"", passes the rest; on_auth renames "anon" to "guest"; init
 * starts a one-shot timer that publishes {"tick":1} to room "timers". Declares its options (deny, delay_ms).
 */
#include <stdio.h>
#include <string.h>

#include "parley/plugin.h"

static const struct parley_api *api;
static struct parley_plugin_ctx *me;
static char deny[64];

static int on_message(void *ud, const struct parley_event *ev, struct parley_result *res) {
  if (ev->body_len >= strlen(deny) && memmem(ev->body, ev->body_len, deny, strlen(deny)))
    return api->reject(res, "plugin says no");
  if (ev->body_len == 7 && !memcmp(ev->body, "\"shout\"", 7)) return api->rewrite_body(res, "\"SHOUT\"", 7);
  return PARLEY_PASS;
}

static int on_auth(void *ud, const struct parley_event *ev, struct parley_result *res) {
  if (!strcmp(ev->user_name, "anon")) return api->rewrite_name(res, "guest");
  if (!strcmp(ev->user_name, "broken")) return PARLEY_ERROR;
  return PARLEY_PASS;
}

static void tick(void *ud) { api->publish(me, "timers", "{\"tick\":1}", 10); }

static int init(struct parley_plugin_ctx *ctx, const struct parley_api *a, void **state) {
  if (a->size < sizeof *a || a->abi_version != PARLEY_PLUGIN_ABI) return -1;
  api = a;
  me = ctx;
  const char *d = api->config_get(ctx, "deny");
  snprintf(deny, sizeof deny, "%s", d ? d : "forbidden");
  int64_t delay = api->config_int(ctx, "delay_ms", 5, 0, 1000);
  api->timer_start(ctx, (uint64_t)delay, 0, tick, NULL, NULL); /* -ENOTSUP without a loop: fine */
  int rc = api->hook(ctx, PARLEY_HOOK_MESSAGE, on_message, NULL, 0);
  if (!rc) rc = api->hook(ctx, PARLEY_HOOK_AUTH, on_auth, NULL, 0);
  api->log(ctx, PARLEY_LOG_INFO, "good plugin ready, deny=%s", deny);
  return rc;
}

static void shutdown_(void *state) {}

/* The options it reads, for --check. */
PARLEY_PLUGIN_EXPORT const char *const parley_plugin_options[] = {"deny", "delay_ms", NULL};

PARLEY_PLUGIN_EXPORT const struct parley_plugin parley_plugin =
    PARLEY_PLUGIN_INIT("good", "1.0", init, shutdown_);
