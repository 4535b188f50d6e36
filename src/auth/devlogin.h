/* devlogin: the development login (auth.dev_login): a name in, a token for that name out. Never for
 * production — anyone can be anyone. */
#ifndef PARLEY_AUTH_DEVLOGIN_H
#define PARLEY_AUTH_DEVLOGIN_H

#include "config.h"

/* Mint a token for display name `name` (1..64 bytes). The user id is the name folded to
 * [a-z0-9_-]. On success returns 0 with *token, *user_id (caller frees both); else -1 with *msg. */
int devlogin_mint(const struct config *cfg, const char *name, char **token, char **user_id, const char **msg);

#endif
