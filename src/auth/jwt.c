/* jwt: keyset, verification with pinned algorithms, claim checks, minting. See jwt.h. */
#include "auth/jwt.h"

#include <errno.h>
#include <jansson.h>
#include <jwt.h>
#include <math.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_TOKEN  8192 /* bytes; far above any sane token, far below limits.max_frame */
#define MAX_SUB    128
#define MAX_NAME   128
#define MAX_KEYLEN (64 * 1024) /* PEM file */

/* ---- errors ---- */

static const struct {
  int code;
  const char *name, *text;
} errs[] = {
#define X(id, n, t) {JWT_E_##id, n, t},
    JWT_ERR_MAP(X)
#undef X
};

const char *jwt_err_name(int err) {
  if (!err) return "ok";
  for (size_t i = 0; i < sizeof errs / sizeof *errs; i++)
    if (errs[i].code == err) return errs[i].name;
  return "internal";
}

const char *jwt_err_text(int err) {
  if (!err) return "ok";
  for (size_t i = 0; i < sizeof errs / sizeof *errs; i++)
    if (errs[i].code == err) return errs[i].text;
  return "internal error";
}

__attribute__((format(printf, 3, 4))) static void seterr(char *err, size_t errlen, const char *fmt, ...) {
  if (!err || !errlen) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

/* ---- grants ---- */

int grant_parse(const char *item, size_t len, struct grant *out) {
  out->pattern = NULL;
  out->rights = 0;
  const char *colon = NULL;
  for (size_t i = 0; i < len; i++) {
    if (item[i] == '\0') return JWT_E_CLAIM;
    if (item[i] == ':') colon = item + i;
  }
  if (!colon || colon == item || (size_t)(colon - item) > GRANT_MAX_PATTERN) return JWT_E_CLAIM;
  unsigned rights = 0;
  for (const char *r = colon + 1; r < item + len; r++) {
    if (*r == 'r')
      rights |= GRANT_READ;
    else if (*r == 'w')
      rights |= GRANT_WRITE;
    else
      return JWT_E_CLAIM;
  }
  if (!(out->pattern = strndup(item, (size_t)(colon - item)))) return JWT_E_NOMEM;
  out->rights = rights;
  return 0;
}

void grants_free(struct grant *g, size_t n) {
  for (size_t i = 0; i < n; i++) free(g[i].pattern);
  free(g);
}

static bool is_blank(char c) { return c == ' ' || c == '\t'; }

int grants_parse_list(const char *list, struct grant **out, size_t *n) {
  *out = NULL;
  *n = 0;
  struct grant *g = NULL;
  size_t cnt = 0;
  int rc = 0;
  for (const char *p = list; *p;) {
    const char *e = strchr(p, ',');
    if (!e) e = p + strlen(p);
    const char *a = p, *b = e;
    while (a < b && is_blank(*a)) a++;
    while (b > a && is_blank(b[-1])) b--;
    p = *e ? e + 1 : e;
    if (a == b) {
      if (*e || cnt) { /* an empty item between commas */
        rc = JWT_E_CLAIM;
        goto fail;
      }
      continue;
    }
    if (cnt == GRANT_MAX_COUNT) {
      rc = JWT_E_CLAIM;
      goto fail;
    }
    struct grant *ng = realloc(g, (cnt + 1) * sizeof *ng);
    if (!ng) {
      rc = JWT_E_NOMEM;
      goto fail;
    }
    g = ng;
    if ((rc = grant_parse(a, (size_t)(b - a), &g[cnt]))) goto fail;
    cnt++;
  }
  *out = g;
  *n = cnt;
  return 0;
fail:
  grants_free(g, cnt);
  return rc;
}

unsigned grants_rights(const struct grant *g, size_t n, const char *room) {
  unsigned r = 0;
  for (size_t i = 0; i < n; i++)
    if ((g[i].rights & ~r) && config_glob_match(g[i].pattern, room)) r |= g[i].rights;
  return r;
}

/* ---- keyset ---- */

struct jwt_key {
  char *kid;          /* NULL: the default key from auth.jwt_secret */
  jwt_alg_t alg;      /* pinned */
  unsigned char *key; /* HS: the secret; RS/ES: the public key PEM */
  size_t keylen;
  unsigned char *priv; /* RS/ES private key PEM, or NULL */
  size_t privlen;
};

struct jwt_keyset {
  struct jwt_key *keys;
  size_t n;
  const struct jwt_key *def; /* for tokens without kid; NULL: none */
};

static const jwt_alg_t cfg_algs[] = {JWT_ALG_HS256, JWT_ALG_HS384, JWT_ALG_HS512, JWT_ALG_RS256,
                                     JWT_ALG_RS384, JWT_ALG_RS512, JWT_ALG_ES256, JWT_ALG_ES384};

static bool is_hmac(jwt_alg_t a) { return a == JWT_ALG_HS256 || a == JWT_ALG_HS384 || a == JWT_ALG_HS512; }
static bool is_ec(jwt_alg_t a) { return a == JWT_ALG_ES256 || a == JWT_ALG_ES384; }

static int read_pem(const struct config *cfg, const char *path, unsigned char **out, size_t *len, char *err,
                    size_t errlen, const char *what) {
  char *full = config_path(cfg, path);
  if (!full) return -ENOMEM;
  int rc = -EINVAL;
  FILE *f = fopen(full, "rb");
  unsigned char *buf = NULL;
  if (!f) {
    seterr(err, errlen, "%s: %s: %s", what, path, strerror(errno));
    goto out;
  }
  if (!(buf = malloc(MAX_KEYLEN + 1))) {
    rc = -ENOMEM;
    goto out;
  }
  size_t n = fread(buf, 1, MAX_KEYLEN + 1, f);
  if (ferror(f) || n > MAX_KEYLEN || n == 0) {
    seterr(err, errlen, "%s: %s: %s", what, path, ferror(f) ? strerror(errno) : n ? "too large" : "empty");
    goto out;
  }
  buf[n] = '\0';
  *out = buf;
  *len = n;
  buf = NULL;
  rc = 0;
out:
  if (f) fclose(f);
  free(buf);
  free(full);
  return rc;
}

/* The PEM holds a key that fits alg: RSA of at least 2048 bits for RS*, the alg's curve for ES*. */
static int check_pem(const unsigned char *pem, size_t len, bool private, jwt_alg_t alg, const char *what,
                     const char *path, char *err, size_t errlen) {
  BIO *bio = BIO_new_mem_buf(pem, (int)len);
  if (!bio) return -ENOMEM;
  EVP_PKEY *pk =
      private ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
  BIO_free(bio);
  int rc = -EINVAL;
  if (!pk) {
    seterr(err, errlen, "%s: %s: not a PEM %s key", what, path, private ? "private" : "public");
    return rc;
  }
  if (is_ec(alg)) {
    char group[64] = "";
    size_t glen = 0;
    const char *want = alg == JWT_ALG_ES256 ? "prime256v1" : "secp384r1";
    if (EVP_PKEY_base_id(pk) != EVP_PKEY_EC || !EVP_PKEY_get_group_name(pk, group, sizeof group, &glen) ||
        strcmp(group, want))
      seterr(err, errlen, "%s: %s: %s needs an EC key on curve %s", what, path, jwt_alg_str(alg),
             alg == JWT_ALG_ES256 ? "P-256" : "P-384");
    else
      rc = 0;
  } else if (EVP_PKEY_base_id(pk) != EVP_PKEY_RSA) {
    seterr(err, errlen, "%s: %s: %s needs an RSA key", what, path, jwt_alg_str(alg));
  } else if (EVP_PKEY_bits(pk) < 2048) {
    seterr(err, errlen, "%s: %s: RSA key of %d bits; at least 2048 are needed", what, path,
           EVP_PKEY_bits(pk));
  } else {
    rc = 0;
  }
  EVP_PKEY_free(pk);
  return rc;
}

static void key_free(struct jwt_key *k) {
  free(k->kid);
  if (k->key) memset(k->key, 0, k->keylen);
  if (k->priv) memset(k->priv, 0, k->privlen);
  free(k->key);
  free(k->priv);
}

void jwt_keyset_free(struct jwt_keyset *ks) {
  if (!ks) return;
  for (size_t i = 0; i < ks->n; i++) key_free(&ks->keys[i]);
  free(ks->keys);
  free(ks);
}

size_t jwt_keyset_size(const struct jwt_keyset *ks) { return ks ? ks->n : 0; }

static int add_auth_key(const struct config *cfg, const struct auth_key *a, struct jwt_key *k, char *err,
                        size_t errlen) {
  char what[300];
  memset(k, 0, sizeof *k);
  if (a->alg < 0 || (size_t)a->alg >= sizeof cfg_algs / sizeof *cfg_algs) return -EINVAL;
  k->alg = cfg_algs[a->alg];
  if (!(k->kid = strdup(a->kid))) return -ENOMEM;
  if (is_hmac(k->alg)) {
    if (!a->secret || !*a->secret) {
      seterr(err, errlen, "auth.keys.%s.secret: %s needs a secret", a->kid, jwt_alg_str(k->alg));
      return -EINVAL;
    }
    if ((a->public_key && *a->public_key) || (a->private_key && *a->private_key)) {
      seterr(err, errlen, "auth.keys.%s: %s takes a secret, not key files", a->kid, jwt_alg_str(k->alg));
      return -EINVAL;
    }
    k->keylen = strlen(a->secret);
    if (!(k->key = (unsigned char *)strdup(a->secret))) return -ENOMEM;
    return 0;
  }
  if (a->secret && *a->secret) {
    seterr(err, errlen, "auth.keys.%s.secret: %s takes key files, not a secret", a->kid, jwt_alg_str(k->alg));
    return -EINVAL;
  }
  if (!a->public_key || !*a->public_key) {
    seterr(err, errlen, "auth.keys.%s.public_key: %s needs a public key file", a->kid, jwt_alg_str(k->alg));
    return -EINVAL;
  }
  snprintf(what, sizeof what, "auth.keys.%s.public_key", a->kid);
  int rc = read_pem(cfg, a->public_key, &k->key, &k->keylen, err, errlen, what);
  if (!rc) rc = check_pem(k->key, k->keylen, false, k->alg, what, a->public_key, err, errlen);
  if (rc || !a->private_key || !*a->private_key) return rc;
  snprintf(what, sizeof what, "auth.keys.%s.private_key", a->kid);
  rc = read_pem(cfg, a->private_key, &k->priv, &k->privlen, err, errlen, what);
  if (!rc) rc = check_pem(k->priv, k->privlen, true, k->alg, what, a->private_key, err, errlen);
  return rc;
}

int jwt_keyset_new(const struct config *cfg, struct jwt_keyset **out, char *err, size_t errlen) {
  *out = NULL;
  struct jwt_keyset *ks = calloc(1, sizeof *ks);
  if (!ks || !(ks->keys = calloc(cfg->nauth_keys + 1, sizeof *ks->keys))) {
    free(ks);
    seterr(err, errlen, "out of memory");
    return -ENOMEM;
  }
  int rc = 0;
  const char *def_kid = cfg->auth_default_kid ? cfg->auth_default_kid : "";
  bool secret = cfg->auth_jwt_secret && *cfg->auth_jwt_secret;
  if (*def_kid && secret) {
    seterr(err, errlen, "auth.default_kid and auth.jwt_secret are both set; keep one");
    rc = -EINVAL;
    goto fail;
  }
  for (size_t i = 0; i < cfg->nauth_keys; i++) {
    rc = add_auth_key(cfg, &cfg->auth_keys[i], &ks->keys[ks->n], err, errlen);
    ks->n++; /* also on error: key_free releases what was set */
    if (rc == -ENOMEM) seterr(err, errlen, "out of memory");
    if (rc) goto fail;
    if (*def_kid && !strcmp(def_kid, cfg->auth_keys[i].kid)) ks->def = &ks->keys[ks->n - 1];
  }
  if (*def_kid && !ks->def) {
    seterr(err, errlen, "auth.default_kid: no key auth.keys.%s is configured", def_kid);
    rc = -EINVAL;
    goto fail;
  }
  if (secret) {
    struct jwt_key *k = &ks->keys[ks->n++];
    k->alg = JWT_ALG_HS256;
    k->keylen = strlen(cfg->auth_jwt_secret);
    if (!(k->key = (unsigned char *)strdup(cfg->auth_jwt_secret))) {
      seterr(err, errlen, "out of memory");
      rc = -ENOMEM;
      goto fail;
    }
    ks->def = k;
  }
  *out = ks;
  return 0;
fail:
  jwt_keyset_free(ks);
  return rc;
}

static const struct jwt_key *find_key(const struct jwt_keyset *ks, const char *kid) {
  if (!kid) return ks->def;
  for (size_t i = 0; i < ks->n; i++)
    if (ks->keys[i].kid && !strcmp(ks->keys[i].kid, kid)) return &ks->keys[i];
  return NULL;
}

/* ---- verification ---- */

static int b64url_val(unsigned char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '-') return 62;
  if (c == '_') return 63;
  return -1;
}

/* Strict base64url without padding into a malloc'd, NUL-terminated buffer. */
static int b64url_decode(const char *s, size_t len, char **out, size_t *outlen) {
  if (len % 4 == 1) return JWT_E_MALFORMED;
  char *buf = malloc(len / 4 * 3 + 3);
  if (!buf) return JWT_E_NOMEM;
  size_t o = 0;
  uint32_t acc = 0;
  int bits = 0;
  for (size_t i = 0; i < len; i++) {
    int v = b64url_val((unsigned char)s[i]);
    if (v < 0) {
      free(buf);
      return JWT_E_MALFORMED;
    }
    acc = (acc << 6) | (uint32_t)v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      buf[o++] = (char)((acc >> bits) & 0xff);
    }
  }
  buf[o] = '\0';
  *out = buf;
  *outlen = o;
  return 0;
}

/* Whether s is base64url in its one canonical spelling (alphabet only, no padding, unused low bits zero).
 * The signature must be: libjwt 1.10 skips other characters in RS and ES signatures and ignores the unused
 * bits, which would give one signed token endless accepted spellings. */
static bool b64url_canonical(const char *s, size_t len) {
  if (len % 4 == 1) return false;
  for (size_t i = 0; i < len; i++)
    if (b64url_val((unsigned char)s[i]) < 0) return false;
  return len % 4 == 0 || !(b64url_val((unsigned char)s[len - 1]) & (len % 4 == 2 ? 0x0f : 0x03));
}

/* One base64url JSON object segment. */
static int decode_object(const char *s, size_t len, json_t **out) {
  char *raw;
  size_t rawlen;
  int rc = b64url_decode(s, len, &raw, &rawlen);
  if (rc) return rc;
  /* Duplicate members are refused: libjwt (last one wins) and we must not read different values. */
  json_t *j = json_loadb(raw, rawlen, JSON_REJECT_DUPLICATES, NULL);
  free(raw);
  if (!json_is_object(j)) {
    json_decref(j);
    return JWT_E_MALFORMED;
  }
  *out = j;
  return 0;
}

/* NumericDate claim: absent (*present = false), a number (clamped), or JWT_E_CLAIM. */
static int numeric_claim(json_t *payload, const char *name, bool *present, double *v) {
  json_t *j = json_object_get(payload, name);
  *present = j != NULL;
  if (!j) return 0;
  if (!json_is_number(j)) return JWT_E_CLAIM;
  *v = json_number_value(j);
  if (!isfinite(*v)) return JWT_E_CLAIM;
  if (*v > 1e15) *v = 1e15;
  if (*v < -1e15) *v = -1e15;
  return 0;
}

static int check_times(json_t *payload, const struct jwt_check *chk, int64_t *exp_out) {
  bool has;
  double v;
  int rc;
  double now = (double)chk->now, leeway = (double)(chk->leeway > 0 ? chk->leeway : 0);
  *exp_out = 0;
  if ((rc = numeric_claim(payload, "exp", &has, &v))) return rc;
  if (has) {
    if (now - leeway >= v) return JWT_E_EXPIRED;
    *exp_out = (int64_t)ceil(v);
    if (*exp_out <= 0) *exp_out = 1;
  }
  if ((rc = numeric_claim(payload, "nbf", &has, &v))) return rc;
  if (has && now + leeway < v) return JWT_E_NOT_YET_VALID;
  if ((rc = numeric_claim(payload, "iat", &has, &v))) return rc;
  if (has && v > now + leeway) return JWT_E_IAT_FUTURE;
  return 0;
}

static int check_aud_iss(json_t *payload, const struct jwt_check *chk) {
  if (chk->issuer && *chk->issuer) {
    json_t *iss = json_object_get(payload, "iss");
    if (!json_is_string(iss) || strcmp(json_string_value(iss), chk->issuer) ||
        json_string_length(iss) != strlen(chk->issuer))
      return JWT_E_ISSUER;
  }
  if (chk->audience && *chk->audience) {
    json_t *aud = json_object_get(payload, "aud");
    size_t alen = strlen(chk->audience);
    if (json_is_string(aud)) {
      if (json_string_length(aud) != alen || strcmp(json_string_value(aud), chk->audience))
        return JWT_E_AUDIENCE;
    } else if (json_is_array(aud)) {
      size_t i;
      json_t *a;
      bool found = false;
      json_array_foreach(aud, i, a) {
        if (json_is_string(a) && json_string_length(a) == alen &&
            !strcmp(json_string_value(a), chk->audience))
          found = true;
      }
      if (!found) return JWT_E_AUDIENCE;
    } else {
      return JWT_E_AUDIENCE;
    }
  }
  return 0;
}

/* len bytes of s, cut back to a UTF-8 character boundary. */
static size_t utf8_cut(const char *s, size_t len, size_t max) {
  if (len <= max) return len;
  size_t n = max;
  while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80) n--;
  return n;
}

static int add_grant(struct jwt_claims *c, const char *item, size_t len) {
  if (c->ngrants == GRANT_MAX_COUNT) return JWT_E_CLAIM;
  struct grant *g = realloc(c->grants, (c->ngrants + 1) * sizeof *g);
  if (!g) return JWT_E_NOMEM;
  c->grants = g;
  int rc = grant_parse(item, len, &g[c->ngrants]);
  if (!rc) c->ngrants++;
  return rc;
}

static int parse_rooms(json_t *rooms, struct jwt_claims *c) {
  if (!rooms || json_is_null(rooms)) return 0;
  int rc = 0;
  if (json_is_array(rooms)) {
    size_t i;
    json_t *v;
    json_array_foreach(rooms, i, v) {
      if (!json_is_string(v)) return JWT_E_CLAIM;
      if ((rc = add_grant(c, json_string_value(v), json_string_length(v)))) return rc;
    }
    return 0;
  }
  if (json_is_object(rooms)) {
    const char *k;
    json_t *v;
    json_object_foreach(rooms, k, v) {
      if (!json_is_string(v)) return JWT_E_CLAIM;
      size_t kl = strlen(k), vl = json_string_length(v);
      if (!kl || kl > GRANT_MAX_PATTERN || vl > 8) return JWT_E_CLAIM;
      char item[GRANT_MAX_PATTERN + 1 + 8 + 1];
      memcpy(item, k, kl);
      item[kl] = ':';
      memcpy(item + kl + 1, json_string_value(v), vl);
      if ((rc = add_grant(c, item, kl + 1 + vl))) return rc;
    }
    return 0;
  }
  return JWT_E_CLAIM;
}

static int read_claims(json_t *payload, const struct jwt_check *chk, struct jwt_claims *out) {
  int rc;
  if ((rc = check_times(payload, chk, &out->exp))) return rc;
  if ((rc = check_aud_iss(payload, chk))) return rc;
  json_t *sub = json_object_get(payload, "sub");
  if (!json_is_string(sub)) return JWT_E_SUB;
  size_t sl = json_string_length(sub);
  if (sl < 1 || sl > MAX_SUB || strlen(json_string_value(sub)) != sl) return JWT_E_SUB;
  json_t *name = json_object_get(payload, "name");
  if (name && !json_is_string(name) && !json_is_null(name)) return JWT_E_CLAIM;
  const char *nm = json_string_value(sub);
  size_t nl = sl;
  if (json_is_string(name) && json_string_length(name) > 0) {
    nm = json_string_value(name);
    nl = strlen(nm); /* an embedded NUL ends the name */
    nl = utf8_cut(nm, nl, MAX_NAME);
    if (!nl) nm = json_string_value(sub), nl = sl;
  }
  if ((rc = parse_rooms(json_object_get(payload, "rooms"), out))) return rc;
  if (!(out->sub = strndup(json_string_value(sub), sl)) || !(out->name = strndup(nm, nl))) return JWT_E_NOMEM;
  return 0;
}

void jwt_claims_free(struct jwt_claims *c) {
  free(c->sub);
  free(c->name);
  grants_free(c->grants, c->ngrants);
  memset(c, 0, sizeof *c);
}

int jwt_verify(const struct jwt_keyset *ks, const char *token, const struct jwt_check *chk,
               struct jwt_claims *out) {
  memset(out, 0, sizeof *out);
  if (!token) return JWT_E_MALFORMED;
  size_t len = strnlen(token, MAX_TOKEN + 1);
  if (len > MAX_TOKEN) return JWT_E_MALFORMED;
  const char *d1 = memchr(token, '.', len);
  const char *d2 = d1 ? memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - token)) : NULL;
  if (!d1 || !d2 || memchr(d2 + 1, '.', len - (size_t)(d2 + 1 - token)) ||
      !b64url_canonical(d2 + 1, len - (size_t)(d2 + 1 - token)))
    return JWT_E_MALFORMED;

  json_t *header = NULL, *payload = NULL;
  jwt_t *jwt = NULL;
  int rc = decode_object(token, (size_t)(d1 - token), &header);
  if (rc) goto out;
  json_t *alg = json_object_get(header, "alg"), *kid = json_object_get(header, "kid");
  if (!json_is_string(alg) || (kid && !json_is_string(kid)) || json_object_get(header, "crit")) {
    rc = JWT_E_MALFORMED;
    goto out;
  }
  if ((rc = decode_object(d1 + 1, (size_t)(d2 - d1 - 1), &payload))) goto out;
  const struct jwt_key *key = ks ? find_key(ks, kid ? json_string_value(kid) : NULL) : NULL;
  if (!key) {
    rc = JWT_E_UNKNOWN_KID;
    goto out;
  }
  /* The pin: the header must name exactly the key's algorithm. This refuses "none" and an HS256 token
   * "signed" with an RSA public key before libjwt could accept it. */
  if (strcmp(json_string_value(alg), jwt_alg_str(key->alg))) {
    rc = JWT_E_ALG;
    goto out;
  }
  if (d2[1] == '\0') { /* no signature at all */
    rc = JWT_E_BAD_SIGNATURE;
    goto out;
  }
  int jrc = jwt_decode(&jwt, token, key->key, (int)key->keylen);
  if (jrc || !jwt) {
    rc = jrc == ENOMEM ? JWT_E_NOMEM : JWT_E_BAD_SIGNATURE;
    goto out;
  }
  if (jwt_get_alg(jwt) != key->alg) { /* belt and braces: what libjwt verified with */
    rc = JWT_E_ALG;
    goto out;
  }
  rc = read_claims(payload, chk, out);
out:
  if (rc) jwt_claims_free(out);
  if (jwt) jwt_free(jwt);
  json_decref(header);
  json_decref(payload);
  return rc;
}

/* ---- minting ---- */

int jwt_mint(const struct jwt_keyset *ks, const struct jwt_mint_req *req, char **token, char *err,
             size_t errlen) {
  *token = NULL;
  const struct jwt_key *key = ks ? find_key(ks, req->kid) : NULL;
  if (!key) {
    if (req->kid)
      seterr(err, errlen, "no key auth.keys.%s is configured", req->kid);
    else
      seterr(err, errlen, "no default key: set auth.jwt_secret or auth.default_kid, or give a kid");
    return -EINVAL;
  }
  const unsigned char *sk = is_hmac(key->alg) ? key->key : key->priv;
  size_t sklen = is_hmac(key->alg) ? key->keylen : key->privlen;
  if (!sk) {
    seterr(err, errlen, "key %s (%s) has no private_key to sign with", key->kid ? key->kid : "(default)",
           jwt_alg_str(key->alg));
    return -EINVAL;
  }
  if (!req->sub || !*req->sub || strlen(req->sub) > MAX_SUB) {
    seterr(err, errlen, "sub must be 1-%d bytes", MAX_SUB);
    return -EINVAL;
  }
  if (req->ttl < 0) {
    seterr(err, errlen, "ttl must not be negative");
    return -EINVAL;
  }
  int rc = -ENOMEM;
  jwt_t *jwt = NULL;
  json_t *extra = json_object();
  if (!extra) goto out;
  if (req->rooms) {
    struct grant *g;
    size_t n;
    int grc = grants_parse_list(req->rooms, &g, &n);
    if (grc) {
      rc = grc == JWT_E_NOMEM ? -ENOMEM : -EINVAL;
      if (rc == -EINVAL)
        seterr(err, errlen, "rooms: '%s' is not a list of pattern:rights (rights r, w), e.g. team-*:rw",
               req->rooms);
      goto out;
    }
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < n; i++) {
      char item[GRANT_MAX_PATTERN + 4];
      snprintf(item, sizeof item, "%s:%s%s", g[i].pattern, g[i].rights & GRANT_READ ? "r" : "",
               g[i].rights & GRANT_WRITE ? "w" : "");
      json_array_append_new(arr, json_string(item));
    }
    grants_free(g, n);
    if (!arr || json_object_set_new(extra, "rooms", arr)) goto out;
  }
  if (req->aud && json_object_set_new(extra, "aud", json_string(req->aud))) goto out;
  if (req->extra) {
    json_t *x = json_loads(req->extra, 0, NULL);
    if (!json_is_object(x)) {
      json_decref(x);
      seterr(err, errlen, "extra claims are not a JSON object");
      rc = -EINVAL;
      goto out;
    }
    json_object_update(extra, x);
    json_decref(x);
  }
  char *extra_s = json_dumps(extra, JSON_COMPACT);
  if (!extra_s) goto out;
  int jrc = jwt_new(&jwt);
  if (!jrc && key->kid) jrc = jwt_add_header(jwt, "kid", key->kid);
  if (!jrc) jrc = jwt_add_grant(jwt, "sub", req->sub);
  if (!jrc && req->name) jrc = jwt_add_grant(jwt, "name", req->name);
  if (!jrc && req->iss) jrc = jwt_add_grant(jwt, "iss", req->iss);
  if (!jrc) jrc = jwt_add_grant_int(jwt, "iat", (long)req->now);
  if (!jrc && req->ttl) jrc = jwt_add_grant_int(jwt, "exp", (long)(req->now + req->ttl));
  if (!jrc && json_object_size(extra)) jrc = jwt_add_grants_json(jwt, extra_s);
  free(extra_s);
  if (!jrc) jrc = jwt_set_alg(jwt, key->alg, sk, (int)sklen);
  if (jrc) {
    rc = jrc == ENOMEM ? -ENOMEM : -EINVAL;
    if (rc == -EINVAL) seterr(err, errlen, "cannot build the token (libjwt error %d)", jrc);
    goto out;
  }
  if (!(*token = jwt_encode_str(jwt))) {
    seterr(err, errlen, "cannot sign the token (bad private key?)");
    rc = -EINVAL;
    goto out;
  }
  rc = 0;
out:
  if (rc == -ENOMEM) seterr(err, errlen, "out of memory");
  json_decref(extra);
  if (jwt) jwt_free(jwt);
  return rc;
}
