/* auth: who a connection is. Verifies hello tokens (JWT HS256 with auth.jwt_secret) or makes a guest. */
#ifndef PARLEY_AUTH_AUTH_H
#define PARLEY_AUTH_AUTH_H

#include <stdint.h>

#include "config.h"
#include "proto/errors.h"

struct identity {
  char *id;   /* owned */
  char *name; /* owned */
};

/* token may be NULL (guest). guest_no numbers guests. On PERR_OK out is filled (caller frees with
 * identity_free); otherwise *msg says why (static text). now is wall-clock seconds. */
enum perr auth_identify(const struct config *cfg, const char *token, uint64_t guest_no, int64_t now,
                        struct identity *out, const char **msg);
void identity_free(struct identity *id);

#endif
