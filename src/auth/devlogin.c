#include "auth/devlogin.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int devlogin_mint(const struct auth *auth, const struct config *cfg, const char *name, char **token,
                  char **user_id, char *msg, size_t msglen) {
  *token = *user_id = NULL;
  size_t n = name ? strlen(name) : 0;
  if (n < 1 || n > 64) {
    snprintf(msg, msglen, "name must be 1..64 bytes");
    return -1;
  }
  char id[72];
  size_t k = 0;
  for (size_t i = 0; i < n && k < sizeof id - 1; i++) {
    unsigned char ch = (unsigned char)name[i];
    if (isalnum(ch))
      id[k++] = (char)tolower(ch);
    else if ((ch == ' ' || ch == '-' || ch == '_' || ch == '.') && k && id[k - 1] != '-')
      id[k++] = '-';
  }
  while (k && id[k - 1] == '-') k--;
  id[k] = 0;
  if (!k) {
    snprintf(msg, msglen, "name needs at least one letter or digit");
    return -1;
  }
  if (!strncmp(id, "guest-", 6)) {
    snprintf(msg, msglen, "names starting with 'guest' are reserved for guests");
    return -1;
  }
  struct jwt_mint_req req = {
      .sub = id, .name = name, .now = (int64_t)time(NULL), .ttl = cfg->auth_token_ttl / 1000};
  if (cfg->auth_audience && *cfg->auth_audience) req.aud = cfg->auth_audience;
  if (cfg->auth_issuer && *cfg->auth_issuer) req.iss = cfg->auth_issuer;
  char err[160];
  if (jwt_mint(auth_keyset(auth), &req, token, err, sizeof err)) {
    snprintf(msg, msglen, "cannot mint a token: %s", err);
    return -1;
  }
  if (!(*user_id = strdup(id))) {
    free(*token);
    *token = NULL;
    snprintf(msg, msglen, "out of memory");
    return -1;
  }
  return 0;
}
