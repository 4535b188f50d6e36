/* fuzz_jwt: token verification (src/auth/jwt.c) against a keyset of HS256, HS512, RS256 and ES256 keys
 * plus a default HS256 secret (tests/fuzz/keys/: test keys, used nowhere else).
 *
 * The first byte chooses the mode. Mode "verify" (byte % 4 != 3): the rest is a token; jwt_verify must not
 * crash, must return 0 or a JWT_E_* code, and a token it accepts must carry a signature that an
 * independent check (OpenSSL directly, the key chosen by the header's kid) finds valid for that exact
 * text with the key's algorithm, spelled canonically (tests/unit/test_jwt.c test_signature_spelling), and
 * claims that pass the checks (sub, name, exp). Mode "mint" (byte % 4 == 3): the rest, split at NUL bytes,
 * gives kid, sub, name, rooms and extra claims; a minted token must verify (or fail on a claim only), and
 * a copy with one byte changed must not verify unless the independent check agrees. Any disagreement
 * aborts. */
#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/jwt.h"
#include "config.h"

#define CHECK(cond, ...)                                                                                     \
  do {                                                                                                       \
    if (!(cond)) {                                                                                           \
      fprintf(stderr, "fuzz_jwt: check failed: %s: ", #cond);                                                \
      fprintf(stderr, __VA_ARGS__);                                                                          \
      fputc('\n', stderr);                                                                                   \
      abort();                                                                                               \
    }                                                                                                        \
  } while (0)

#define NOW    1800000000 /* the verifier's clock (2027) */
#define LEEWAY 30

/* The keys, as the oracle knows them (independently of jwt.c). kid NULL: the default (auth.jwt_secret). */
static struct okey {
  const char *kid, *alg, *secret, *pub, *priv;
  EVP_PKEY *pk;
} okeys[] = {
    {NULL, "HS256", "fuzz-default-secret", NULL, NULL, NULL},
    {"hs", "HS256", "fuzz-hs256-secret", NULL, NULL, NULL},
    {"hs5", "HS512", "fuzz-hs512-secret", NULL, NULL, NULL},
    {"rs", "RS256", NULL, "keys/rsa.pub.pem", "keys/rsa.pem", NULL},
    {"es", "ES256", NULL, "keys/ec.pub.pem", "keys/ec.pem", NULL},
};
#define NKEYS (sizeof okeys / sizeof *okeys)

static struct config cfg;
static struct jwt_keyset *ks;
static bool verbose; /* FUZZ_VERBOSE=1: print each verification's result (to check the seed corpus) */

static void setc(const char *k, const char *v) {
  char err[256];
  CHECK(config_set(&cfg, k, v, NULL, err, sizeof err) == 0, "%s", err);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  CHECK(config_defaults(&cfg) == 0, "config_defaults");
  free(cfg.base_dir);
  cfg.base_dir = strdup(PARLEY_SOURCE_DIR "/tests/fuzz");
  setc("auth.jwt_secret", okeys[0].secret);
  char k[64];
  for (size_t i = 1; i < NKEYS; i++) {
    snprintf(k, sizeof k, "auth.keys.%s.alg", okeys[i].kid);
    setc(k, okeys[i].alg);
    if (okeys[i].secret) {
      snprintf(k, sizeof k, "auth.keys.%s.secret", okeys[i].kid);
      setc(k, okeys[i].secret);
      continue;
    }
    snprintf(k, sizeof k, "auth.keys.%s.public_key", okeys[i].kid);
    setc(k, okeys[i].pub);
    snprintf(k, sizeof k, "auth.keys.%s.private_key", okeys[i].kid);
    setc(k, okeys[i].priv);
    char path[512];
    snprintf(path, sizeof path, "%s/%s", cfg.base_dir, okeys[i].pub);
    FILE *f = fopen(path, "r");
    CHECK(f && (okeys[i].pk = PEM_read_PUBKEY(f, NULL, NULL, NULL)), "%s", path);
    fclose(f);
  }
  char err[256];
  CHECK(jwt_keyset_new(&cfg, &ks, err, sizeof err) == 0, "%s", err);
  verbose = getenv("FUZZ_VERBOSE") != NULL;
  return 0;
}

/* ---- the oracle ---- */

/* base64url without padding; strict: in its canonical spelling only (len % 4 != 1, unused bits zero). */
static unsigned char *b64url(const char *s, size_t len, bool strict, size_t *outlen) {
  if (strict && len % 4 == 1) return NULL;
  unsigned char *out = malloc(len / 4 * 3 + 3);
  uint32_t acc = 0;
  int bits = 0;
  size_t o = 0;
  for (size_t i = 0; i < len; i++) {
    const char *al = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const char *c = s[i] ? strchr(al, s[i]) : NULL;
    if (!c) {
      free(out);
      return NULL;
    }
    acc = acc << 6 | (uint32_t)(c - al);
    bits += 6;
    if (bits >= 8) bits -= 8, out[o++] = (unsigned char)(acc >> bits);
  }
  if (strict && (acc & ((1u << bits) - 1))) {
    free(out);
    return NULL;
  }
  *outlen = o;
  return out;
}

/* Whether token's signature is valid for its first two segments under the key its header names. */
static bool oracle_signed(const char *token) {
  const char *d1 = strchr(token, '.'), *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
  if (!d2 || strchr(d2 + 1, '.')) return false;
  size_t hl;
  unsigned char *h = b64url(token, (size_t)(d1 - token), false, &hl);
  if (!h) return false;
  json_t *hdr = json_loadb((const char *)h, hl, 0, NULL);
  free(h);
  json_t *kid = json_object_get(hdr, "kid"), *alg = json_object_get(hdr, "alg");
  const struct okey *k = NULL;
  for (size_t i = 0; i < NKEYS; i++)
    if (kid ? (okeys[i].kid && json_is_string(kid) && !strcmp(okeys[i].kid, json_string_value(kid)))
            : !okeys[i].kid)
      k = &okeys[i];
  bool alg_ok = k && json_is_string(alg) && !strcmp(json_string_value(alg), k->alg);
  json_decref(hdr);
  if (!alg_ok) return false;
  size_t sl;
  unsigned char *sig = b64url(d2 + 1, strlen(d2 + 1), true, &sl);
  if (!sig) return false;
  const unsigned char *msg = (const unsigned char *)token;
  size_t ml = (size_t)(d2 - token);
  bool ok = false;
  if (k->secret) {
    unsigned char mac[64];
    size_t maclen = 0;
    const char *md = strcmp(k->alg, "HS512") ? "SHA256" : "SHA512";
    ok = EVP_Q_mac(NULL, "HMAC", NULL, md, NULL, k->secret, strlen(k->secret), msg, ml, mac, sizeof mac,
                   &maclen) &&
         maclen == sl && !memcmp(mac, sig, sl);
  } else {
    unsigned char *der = NULL;
    size_t derlen = sl;
    unsigned char *s = sig;
    if (!strcmp(k->alg, "ES256")) { /* JWS: raw r||s; OpenSSL: DER */
      if (sl != 64) goto done;
      ECDSA_SIG *es = ECDSA_SIG_new();
      ECDSA_SIG_set0(es, BN_bin2bn(sig, 32, NULL), BN_bin2bn(sig + 32, 32, NULL));
      int n = i2d_ECDSA_SIG(es, &der);
      ECDSA_SIG_free(es);
      if (n <= 0) goto done;
      s = der, derlen = (size_t)n;
    }
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    ok = EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, k->pk) == 1 &&
         EVP_DigestVerify(ctx, s, derlen, msg, ml) == 1;
    EVP_MD_CTX_free(ctx);
    OPENSSL_free(der);
  }
done:
  free(sig);
  return ok;
}

/* ---- the checks ---- */

/* Verify token; a token that verifies must be signed (oracle) and carry valid claims. Returns the code. */
static int verify(const char *token, const struct jwt_check *chk) {
  struct jwt_claims cl;
  int rc = jwt_verify(ks, token, chk, &cl);
  if (verbose) fprintf(stderr, "fuzz_jwt: %s: %.60s\n", jwt_err_name(rc), token);
  CHECK(rc == 0 || (rc >= JWT_E_MALFORMED && rc <= JWT_E_NOMEM), "code %d", rc);
  CHECK(strcmp(jwt_err_name(rc), "") && strcmp(jwt_err_text(rc), ""), "code %d has no name", rc);
  if (rc) {
    CHECK(!cl.sub && !cl.name && !cl.grants && !cl.ngrants, "claims left on error %d", rc);
    return rc;
  }
  CHECK(oracle_signed(token), "a token verified without a valid signature by its key: %s", token);
  CHECK(cl.sub && *cl.sub && strlen(cl.sub) <= 128, "sub");
  CHECK(cl.name && *cl.name && strlen(cl.name) <= 128, "name");
  CHECK(cl.exp == 0 || cl.exp > chk->now - chk->leeway, "expired token accepted (exp %lld)",
        (long long)cl.exp);
  CHECK(cl.ngrants <= GRANT_MAX_COUNT, "%zu grants", cl.ngrants);
  for (size_t i = 0; i < cl.ngrants; i++)
    CHECK(cl.grants[i].pattern && *cl.grants[i].pattern &&
              strlen(cl.grants[i].pattern) <= GRANT_MAX_PATTERN &&
              cl.grants[i].rights <= (GRANT_READ | GRANT_WRITE),
          "grant %zu", i);
  jwt_claims_free(&cl);
  return 0;
}

/* The next NUL-terminated piece of the input (NULL when empty). */
static const char *piece(const char **p, const char *end) {
  if (*p >= end) return NULL;
  const char *s = *p;
  *p += strlen(s) + 1;
  return *s ? s : NULL;
}

static void mint_mode(const uint8_t *data, size_t n) {
  if (n < 3) return;
  uint8_t sel = data[0], flip = data[1];
  char *text = malloc(n - 1); /* NUL-terminated copy of the rest */
  memcpy(text, data + 2, n - 2);
  text[n - 2] = 0;
  const char *p = text, *end = text + n - 2;
  struct jwt_mint_req req = {.kid = okeys[sel % NKEYS].kid, .now = NOW, .ttl = (sel >> 3) * 60};
  req.sub = piece(&p, end);
  req.name = piece(&p, end);
  req.rooms = piece(&p, end);
  req.extra = piece(&p, end);
  char *tok = NULL, err[256];
  int rc = jwt_mint(ks, &req, &tok, err, sizeof err);
  if (rc == 0) {
    struct jwt_check chk = {.now = NOW, .leeway = LEEWAY};
    int vrc = verify(tok, &chk);
    CHECK(vrc != JWT_E_BAD_SIGNATURE && vrc != JWT_E_ALG && vrc != JWT_E_UNKNOWN_KID &&
              (vrc != JWT_E_MALFORMED || req.extra),
          "a minted token fails with %s: %s", jwt_err_name(vrc), tok);
    if (!req.extra) CHECK(vrc == 0, "a minted token fails with %s: %s", jwt_err_name(vrc), tok);
    /* one byte changed: verifies only if the oracle agrees (checked in verify) */
    size_t len = strlen(tok), at = (size_t)flip * 7919 % len;
    tok[at] = (char)(tok[at] ^ (1 + (sel & 0x3f)));
    if (tok[at]) verify(tok, &chk);
  }
  free(tok);
  free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
  if (n < 1) return 0;
  if (data[0] % 4 == 3) {
    mint_mode(data + 1, n - 1);
    return 0;
  }
  char *tok = malloc(n);
  memcpy(tok, data + 1, n - 1);
  tok[n - 1] = 0;
  struct jwt_check chk = {.now = NOW,
                          .leeway = data[0] & 4 ? LEEWAY : 0,
                          .audience = data[0] & 8 ? "parley" : NULL,
                          .issuer = data[0] & 16 ? "https://issuer.example" : NULL};
  verify(tok, &chk);
  free(tok);
  return 0;
}
