/* server: what embed/embed.c reads of a server that server.c runs. Internal to libparley; server.c itself
 * calls nothing of embed/. */
#ifndef PARLEY_SERVER_H
#define PARLEY_SERVER_H

#include <uv.h>

#include "parley/parley.h"

struct core;
struct store;
struct config;

/* The running server's parts; NULL unless the server is running (not stopping). */
struct core *server_core(parley_server *s);
struct store *server_store(parley_server *s);
const struct config *server_config(const parley_server *s);
/* The loop the server runs on (NULL when idle). */
uv_loop_t *server_loop(parley_server *s);

#endif
