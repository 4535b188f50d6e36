#include "auth/devlogin.h"

#include <ctype.h>
#include <jwt.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int devlogin_mint(const struct config *cfg, const char *name, char **token, char **user_id,
                  const char **msg) {
  *token = *user_id = NULL;
  size_t n = name ? strlen(name) : 0;
  if (n < 1 || n > 64) {
    *msg = "name must be 1..64 bytes";
    return -1;
  }
  if (!cfg->auth_jwt_secret || !*cfg->auth_jwt_secret) {
    *msg = "auth.jwt_secret is not set";
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
    *msg = "name needs at least one letter or digit";
    return -1;
  }
  jwt_t *jwt = NULL;
  if (jwt_new(&jwt)) {
    *msg = "out of memory";
    return -1;
  }
  time_t now = time(NULL);
  int rc = jwt_add_grant(jwt, "sub", id) || jwt_add_grant(jwt, "name", name) ||
           jwt_add_grant_int(jwt, "iat", (long)now) ||
           jwt_add_grant_int(jwt, "exp", (long)(now + cfg->auth_token_ttl / 1000)) ||
           jwt_set_alg(jwt, JWT_ALG_HS256, (const unsigned char *)cfg->auth_jwt_secret,
                       (int)strlen(cfg->auth_jwt_secret));
  char *t = rc ? NULL : jwt_encode_str(jwt);
  jwt_free(jwt);
  if (!t || !(*user_id = strdup(id))) {
    free(t);
    *msg = "cannot mint a token";
    return -1;
  }
  *token = t;
  return 0;
}
