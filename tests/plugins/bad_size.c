/* Test plugin whose descriptor size differs (as if built against another plugin.h): must be refused. */
#include "parley/plugin.h"

static int init(struct parley_plugin_ctx *ctx, const struct parley_api *api, void **state) { return 0; }

PARLEY_PLUGIN_EXPORT const struct parley_plugin parley_plugin = {PARLEY_PLUGIN_MAGIC,
                                                                 PARLEY_PLUGIN_ABI,
                                                                 sizeof(struct parley_plugin) - 8,
                                                                 0,
                                                                 "bad_size",
                                                                 "1",
                                                                 init,
                                                                 NULL,
                                                                 NULL,
                                                                 {0}};
