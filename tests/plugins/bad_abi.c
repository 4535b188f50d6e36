/* Test plugin built for another ABI version: must be refused. */
#include "parley/plugin.h"

static int init(struct parley_plugin_ctx *ctx, const struct parley_api *api, void **state) { return 0; }

PARLEY_PLUGIN_EXPORT const struct parley_plugin parley_plugin = {PARLEY_PLUGIN_MAGIC,
                                                                 PARLEY_PLUGIN_ABI + 41,
                                                                 sizeof(struct parley_plugin),
                                                                 0,
                                                                 "bad_abi",
                                                                 "1",
                                                                 init,
                                                                 NULL,
                                                                 NULL,
                                                                 {0}};
