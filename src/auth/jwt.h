/* jwt: verify and mint JSON Web Tokens with a keyset built from the configuration (docs/security.md).
 *
 * libjwt 1.10 checks signatures only, so everything else is done here: the key is chosen by the header's
 * `kid` (no kid: the default key), the token's `alg` must be the one configured for that key (this rejects
 * `none` and HS/RS confusion before libjwt sees the token), and exp / nbf / iat (with leeway), aud, iss, sub
 * and the `rooms` grants are checked on the payload. Pure: no clock, no globals; `now` is passed in. */
#ifndef PARLEY_AUTH_JWT_H
#define PARLEY_AUTH_JWT_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"

/* Verification results: 0 or one of these (negative). `name` is the stable subcode (docs/security.md;
 * the core puts it at the start of the `auth_failed` msg), `text` a sentence for people. */
#define JWT_ERR_MAP(X)                                                                                       \
  X(MALFORMED, "malformed", "the token is not a well-formed JWT")                                            \
  X(BAD_SIGNATURE, "bad_signature", "the token's signature does not verify")                                 \
  X(UNKNOWN_KID, "unknown_kid", "no key is configured for the token's kid")                                  \
  X(ALG, "alg_not_allowed", "the token's alg is not the one configured for its key")                         \
  X(EXPIRED, "expired", "the token has expired")                                                             \
  X(NOT_YET_VALID, "not_yet_valid", "the token is not valid yet (nbf)")                                      \
  X(IAT_FUTURE, "issued_in_future", "the token was issued in the future (iat)")                              \
  X(AUDIENCE, "bad_audience", "the token's aud does not name this server")                                   \
  X(ISSUER, "bad_issuer", "the token's iss is not the configured issuer")                                    \
  X(SUB, "missing_sub", "the token has no valid sub (1-128 bytes)")                                          \
  X(CLAIM, "bad_claim", "a claim of the token has the wrong type or shape")                                  \
  X(NOMEM, "internal", "out of memory")

enum jwt_err {
  JWT_OK = 0,
#define X(id, name, text) JWT_E_##id,
  JWT_E__FIRST = -1000, /* the codes run -999, -998, ... */
  JWT_ERR_MAP(X)
#undef X
};
const char *jwt_err_name(int err); /* "malformed", ... ("ok" for 0) */
const char *jwt_err_text(int err);

/* A room grant: rooms matching the glob `pattern` ("*" any run, "?" one) get `rights`. */
#define GRANT_READ  1u
#define GRANT_WRITE 2u
struct grant {
  char *pattern; /* owned */
  unsigned rights;
};
#define GRANT_MAX_PATTERN 256 /* bytes */
#define GRANT_MAX_COUNT   256 /* grants per token or list */

/* One "pattern:rights" item (split at the LAST ':', so "dm:*:rw" is pattern "dm:*"; rights are letters
 * r and w, possibly none) of len bytes. Returns 0, JWT_E_CLAIM (bad shape) or JWT_E_NOMEM. */
int grant_parse(const char *item, size_t len, struct grant *out);
/* A comma-separated list of items (blanks around items ignored; "" is the empty list) into a malloc'd
 * array (caller frees with grants_free). Returns 0, JWT_E_CLAIM or JWT_E_NOMEM. */
int grants_parse_list(const char *list, struct grant **out, size_t *n);
void grants_free(struct grant *g, size_t n);
/* The union of the rights of every grant whose pattern matches room. */
unsigned grants_rights(const struct grant *g, size_t n, const char *room);

struct jwt_keyset; /* opaque; immutable once built, so any number of verifications may share it */

/* Build the keyset of cfg: auth.keys.<kid>.* (PEM files read and checked now: type, curve, RSA >= 2048
 * bits) plus the default key (auth.default_kid, or auth.jwt_secret as HS256). An empty keyset is fine
 * (every token then fails with unknown_kid). Returns 0, -EINVAL (err says which key and why, e.g.
 * "auth.keys.k1.public_key: keys/k1.pem: No such file or directory") or -ENOMEM. Call at start and on
 * reload; reading the files blocks briefly. */
int jwt_keyset_new(const struct config *cfg, struct jwt_keyset **out, char *err, size_t errlen);
void jwt_keyset_free(struct jwt_keyset *ks);
size_t jwt_keyset_size(const struct jwt_keyset *ks); /* keys, the default one included */

/* What the payload must satisfy besides the signature. Times in seconds since the epoch. */
struct jwt_check {
  int64_t now;
  int64_t leeway;       /* seconds of clock skew allowed for exp, nbf and iat */
  const char *audience; /* NULL or "": aud is not checked */
  const char *issuer;   /* NULL or "": iss is not checked */
};

/* The verified token. Strings and grants are owned; free with jwt_claims_free. */
struct jwt_claims {
  char *sub;            /* 1..128 bytes, no NUL */
  char *name;           /* `name`, at most 128 bytes (cut at a UTF-8 boundary); defaults to sub */
  int64_t exp;          /* 0: no exp claim */
  struct grant *grants; /* from the `rooms` claim: ["pattern:rights", ...] or {"pattern": "rights"} */
  size_t ngrants;
};

/* Verify token against ks and chk. Returns 0 (out filled) or a JWT_E_* code (out zeroed). */
int jwt_verify(const struct jwt_keyset *ks, const char *token, const struct jwt_check *chk,
               struct jwt_claims *out);
void jwt_claims_free(struct jwt_claims *c);

/* A token to mint (CLI, development login, tests). */
struct jwt_mint_req {
  const char *kid;   /* NULL: the default key */
  const char *sub;   /* required */
  const char *name;  /* NULL: no name claim */
  const char *rooms; /* NULL: no rooms claim; else a grants list ("team-*:rw,lobby:r") */
  const char *aud;   /* NULL: none */
  const char *iss;   /* NULL: none */
  int64_t now;       /* iat */
  int64_t ttl;       /* seconds; exp = now + ttl; 0: no exp */
  const char *extra; /* NULL, or a JSON object whose members are added to the payload (tests) */
};

/* Sign with the key's secret (HS*) or private key file (RS*, ES*). Returns 0 and a malloc'd token in
 * *token, or -EINVAL (err says why: unknown kid, no private key, bad rooms list ...) / -ENOMEM. */
int jwt_mint(const struct jwt_keyset *ks, const struct jwt_mint_req *req, char **token, char *err,
             size_t errlen);

#endif
