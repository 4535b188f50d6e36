/* embed: the acting and reading half of include/parley/parley.h (publish, kick, presence, history,
 * metrics, hook results), on top of the server that server.c runs. Internal to libparley. */
#ifndef PARLEY_EMBED_EMBED_H
#define PARLEY_EMBED_EMBED_H

#include <uv.h>

#include "parley/parley.h"

struct core;
struct store;
struct config;

/* server.c: the running server's parts; NULL unless the server is running (not stopping). */
struct core *embed_core(parley_server *s);
struct store *embed_store(parley_server *s);
const struct config *embed_config(const parley_server *s);
uv_loop_t *embed_loop(parley_server *s);

/* Free st (store_free) from the close callback of a helper handle closed now, i.e. after the store's own
 * async handle closed by a store_close that follows this call. Out of memory: st is leaked (logged). */
void embed_store_free_later(uv_loop_t *loop, struct store *st);

#endif
