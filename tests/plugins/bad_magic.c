/* Test plugin with a wrong magic number: must be refused. */
#include "parley/plugin.h"

static int init(struct parley_plugin_ctx *ctx, const struct parley_api *api, void **state) { return 0; }

PARLEY_PLUGIN_EXPORT const struct parley_plugin parley_plugin = {
    0xdeadbeefu, PARLEY_PLUGIN_ABI, sizeof(struct parley_plugin), 0, "bad_magic", "1", init, NULL, NULL, {0}};
