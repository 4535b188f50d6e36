/* devlogin: the development login (auth.dev_login): a name in, a token for that name out. Never for
 * production: anyone can be anyone. */
#ifndef PARLEY_AUTH_DEVLOGIN_H
#define PARLEY_AUTH_DEVLOGIN_H

#include "auth/auth.h"
#include "config.h"

/* Mint a token (the default key, auth.token_ttl) for display name `name` (1..64 bytes). The user id is
 * the name folded to [a-z0-9-]; ids of guests ("guest-…") are refused. On success returns 0 with
 * *token and *user_id (the caller frees both); else -1 with a reason in msg. */
int devlogin_mint(const struct auth *auth, const struct config *cfg, const char *name, char **token,
                  char **user_id, char *msg, size_t msglen);

#endif
