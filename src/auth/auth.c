#include "auth/auth.h"

#include <jwt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/request.h"

static enum perr verify(const struct config *cfg, const char *token, int64_t now, struct identity *out,
                        const char **msg) {
  const char *secret = cfg->auth_jwt_secret;
  if (!secret || !*secret) {
    *msg = "token authentication is not configured";
    return PERR_AUTH_FAILED;
  }
  jwt_t *jwt = NULL;
  /* libjwt checks the signature only; the algorithm is pinned below (no alg confusion, no "none"). */
  if (jwt_decode(&jwt, token, (const unsigned char *)secret, (int)strlen(secret)) || !jwt) {
    *msg = "token is malformed or its signature does not verify";
    return PERR_AUTH_FAILED;
  }
  enum perr rc = PERR_AUTH_FAILED;
  if (jwt_get_alg(jwt) != JWT_ALG_HS256) {
    *msg = "token algorithm must be HS256";
    goto out;
  }
  long exp = jwt_get_grant_int(jwt, "exp");
  if (exp > 0 && now >= exp) {
    *msg = "token has expired";
    goto out;
  }
  long nbf = jwt_get_grant_int(jwt, "nbf");
  if (nbf > 0 && now < nbf) {
    *msg = "token is not valid yet";
    goto out;
  }
  const char *sub = jwt_get_grant(jwt, "sub");
  if (!sub || !*sub || strlen(sub) > 128) {
    *msg = "token has no valid 'sub' claim";
    goto out;
  }
  const char *name = jwt_get_grant(jwt, "name");
  if (!name || !*name) name = sub;
  out->id = strdup(sub);
  out->name = strndup(name, 128);
  if (!out->id || !out->name) {
    identity_free(out);
    *msg = "out of memory";
    rc = PERR_INTERNAL;
    goto out;
  }
  rc = PERR_OK;
out:
  jwt_free(jwt);
  return rc;
}

enum perr auth_identify(const struct config *cfg, const char *token, uint64_t guest_no, int64_t now,
                        struct identity *out, const char **msg) {
  out->id = out->name = NULL;
  if (token) return verify(cfg, token, now, out, msg);
  if (!cfg->auth_allow_anonymous) {
    *msg = "a token is required (anonymous access is disabled)";
    return PERR_AUTH_REQUIRED;
  }
  char id[32], name[32];
  snprintf(id, sizeof id, "guest-%llu", (unsigned long long)guest_no);
  snprintf(name, sizeof name, "Guest %llu", (unsigned long long)guest_no);
  out->id = strdup(id);
  out->name = strdup(name);
  if (!out->id || !out->name) {
    identity_free(out);
    *msg = "out of memory";
    return PERR_INTERNAL;
  }
  return PERR_OK;
}

void identity_free(struct identity *id) {
  free(id->id);
  free(id->name);
  id->id = id->name = NULL;
}
