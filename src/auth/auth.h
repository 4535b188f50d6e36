/* auth: who a connection is. Verifies hello/refresh tokens with the keyset of src/auth/jwt.h, or makes a
 * guest. The core owns one `struct auth` per configuration: build it at start (and in --check), rebuild it
 * on SIGHUP (keep the old one when the new one fails), free it at exit. What an identity may do in a room
 * is src/auth/access.h. */
#ifndef PARLEY_AUTH_AUTH_H
#define PARLEY_AUTH_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth/jwt.h"
#include "config.h"

struct identity {
  char *id;             /* owned: the token's sub, or "guest-<16 random hex digits>" */
  char *name;           /* owned */
  struct grant *grants; /* owned: the token's `rooms` grants (none for guests: see auth.guest_rooms) */
  size_t ngrants;
  bool guest;
  int64_t exp; /* the token's exp, seconds since the epoch; 0: none (guests, tokens without exp) */
};

struct auth;

/* Build the keys of cfg (auth.jwt_secret, auth.default_kid, auth.keys.*) and check auth.guest_rooms.
 * Returns 0, -EINVAL (err: "auth.keys.k1.public_key: ...: No such file or directory", ...) or -ENOMEM. */
int auth_new(const struct config *cfg, struct auth **out, char *err, size_t errlen);
void auth_free(struct auth *a);

/* auth_hello and auth_refresh return 0 or a negative errno (src/util/errors.h); the core turns it into the
 * protocol's error at its reply edge (core.c):
 *   -EPERM   no token and auth.allow_anonymous is off        (auth_required)
 *   -EACCES  the token does not verify, or refresh refused   (auth_failed)
 *   -ENOMEM, -EIO (no random numbers for a guest id)         (internal)
 * On failure msg holds "<subcode>: <text>" for -EACCES, the subcode being one of docs/security.md
 * (expired, bad_signature, ...), and a plain reason otherwise. */

/* At hello. token NULL: a new guest when auth.allow_anonymous (else -EPERM): id "guest-" and 16 random hex
 * digits — never repeated, also across restarts, and not predictable from other guests' ids — name "Guest "
 * and the id's first 4 digits.
 * With a token: -EACCES unless it verifies (keys, alg pin, exp/nbf/iat with auth.leeway, aud, iss, sub; a
 * sub starting with "guest-" is refused). now: wall-clock seconds. On 0 out is filled (free with
 * identity_free); otherwise out is zeroed. */
int auth_hello(const struct auth *a, const struct config *cfg, const char *token, int64_t now,
               struct identity *out, char *msg, size_t msglen);

/* At `refresh`: token must verify as at hello and carry the same sub as who (guests cannot refresh). On 0
 * who->exp and who->grants are replaced (id and name stay); re-check the connection's rooms with
 * access_rights afterwards, since grants may have shrunk. On error (-EACCES, -ENOMEM) who is unchanged and
 * msg as above (extra subcodes: sub_mismatch, guest). */
int auth_refresh(const struct auth *a, const struct config *cfg, const char *token, int64_t now,
                 struct identity *who, char *msg, size_t msglen);

/* When (ms since the epoch) a connection of who must be closed with 4002 unless refreshed before:
 * exp + auth.leeway. 0: never. */
int64_t auth_deadline_ms(const struct config *cfg, const struct identity *who);

void identity_free(struct identity *id);

/* The key set (for minting development tokens). */
const struct jwt_keyset *auth_keyset(const struct auth *a);

#endif
