/* auth: hello and refresh on top of jwt.c. See auth.h. */
#include "auth/auth.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

struct auth {
  struct jwt_keyset *keys;
};

int auth_new(const struct config *cfg, struct auth **out, char *err, size_t errlen) {
  *out = NULL;
  struct grant *g;
  size_t n;
  int rc = grants_parse_list(cfg->auth_guest_rooms ? cfg->auth_guest_rooms : "", &g, &n);
  if (rc == JWT_E_NOMEM) return -ENOMEM;
  if (rc) {
    snprintf(err, errlen, "auth.guest_rooms: '%s' is not a list of pattern:rights (rights r, w), e.g. *:rw",
             cfg->auth_guest_rooms);
    return -EINVAL;
  }
  grants_free(g, n);
  struct auth *a = calloc(1, sizeof *a);
  if (!a) return -ENOMEM;
  if ((rc = jwt_keyset_new(cfg, &a->keys, err, errlen))) {
    free(a);
    return rc;
  }
  *out = a;
  return 0;
}

void auth_free(struct auth *a) {
  if (!a) return;
  jwt_keyset_free(a->keys);
  free(a);
}

static int verify(const struct auth *a, const struct config *cfg, const char *token, int64_t now,
                  struct jwt_claims *cl, char *msg, size_t msglen) {
  struct jwt_check chk = {now, cfg->auth_leeway / 1000, cfg->auth_audience, cfg->auth_issuer};
  int rc = jwt_verify(a ? a->keys : NULL, token, &chk, cl);
  if (rc) {
    snprintf(msg, msglen, "%s: %s", jwt_err_name(rc), jwt_err_text(rc));
    return rc == JWT_E_NOMEM ? -ENOMEM : -EACCES;
  }
  if (!strncmp(cl->sub, "guest-", 6)) {
    snprintf(msg, msglen, "reserved_sub: user ids starting with guest- are reserved for guests");
    jwt_claims_free(cl);
    return -EACCES;
  }
  return 0;
}

/* A guest id: "guest-" and 16 hex digits of a 64-bit number from the kernel's random source. Ids never
 * repeat, also not across restarts (a collision is a 2^-64 event per pair), and knowing one guest's id
 * tells nothing about another's. -1 when the random source fails: no guest rather than a guessable one. */
static int guest_id(char id[32], char name[32]) {
  uint64_t r = 0;
  size_t got = 0;
  while (got < sizeof r) {
    ssize_t n = getrandom((char *)&r + got, sizeof r - got, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    got += (size_t)n;
  }
  snprintf(id, 32, "guest-%016llx", (unsigned long long)r);
  snprintf(name, 32, "Guest %.4s", id + 6);
  return 0;
}

int auth_hello(const struct auth *a, const struct config *cfg, const char *token, int64_t now,
               struct identity *out, char *msg, size_t msglen) {
  memset(out, 0, sizeof *out);
  if (token) {
    struct jwt_claims cl;
    int rc = verify(a, cfg, token, now, &cl, msg, msglen);
    if (rc) return rc;
    /* the claims' allocations move into the identity */
    *out = (struct identity){cl.sub, cl.name, cl.grants, cl.ngrants, false, cl.exp};
    return 0;
  }
  if (!cfg->auth_allow_anonymous) {
    snprintf(msg, msglen, "a token is required (anonymous access is disabled)");
    return -EPERM;
  }
  char id[32], name[32];
  if (guest_id(id, name)) {
    snprintf(msg, msglen, "cannot make a guest id now (no random numbers)");
    return -EIO;
  }
  out->id = strdup(id);
  out->name = strdup(name);
  out->guest = true;
  if (!out->id || !out->name) {
    identity_free(out);
    snprintf(msg, msglen, "out of memory");
    return -ENOMEM;
  }
  return 0;
}

int auth_refresh(const struct auth *a, const struct config *cfg, const char *token, int64_t now,
                 struct identity *who, char *msg, size_t msglen) {
  if (who->guest) {
    snprintf(msg, msglen, "guest: a guest has no token to refresh");
    return -EACCES;
  }
  struct jwt_claims cl;
  int rc = verify(a, cfg, token, now, &cl, msg, msglen);
  if (rc) return rc;
  if (strcmp(cl.sub, who->id)) {
    snprintf(msg, msglen, "sub_mismatch: the new token is for another user");
    jwt_claims_free(&cl);
    return -EACCES;
  }
  grants_free(who->grants, who->ngrants);
  who->grants = cl.grants;
  who->ngrants = cl.ngrants;
  who->exp = cl.exp;
  cl.grants = NULL;
  cl.ngrants = 0;
  jwt_claims_free(&cl);
  return 0;
}

int64_t auth_deadline_ms(const struct config *cfg, const struct identity *who) {
  return who->exp > 0 ? who->exp * 1000 + cfg->auth_leeway : 0;
}

void identity_free(struct identity *id) {
  free(id->id);
  free(id->name);
  grants_free(id->grants, id->ngrants);
  memset(id, 0, sizeof *id);
}

const struct jwt_keyset *auth_keyset(const struct auth *a) { return a ? a->keys : NULL; }
