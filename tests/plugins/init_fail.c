/* Test plugin whose init registers a handler and then fails: must be refused and fully undone. */
#include "parley/plugin.h"

static int on_message(void *ud, const struct parley_event *ev, struct parley_result *res) {
  return PARLEY_REJECT;
}

static int init(struct parley_plugin_ctx *ctx, const struct parley_api *api, void **state) {
  api->hook(ctx, PARLEY_HOOK_MESSAGE, on_message, NULL, 0);
  return -22;
}

PARLEY_PLUGIN_EXPORT const struct parley_plugin parley_plugin =
    PARLEY_PLUGIN_INIT("init_fail", "1", init, NULL);
