/* test_jwt: keysets, every algorithm, the attacks of docs/security.md, claim checks and minting. RSA and EC
 * keys are generated at test time with `openssl genpkey` into a temporary directory (never committed). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the four above, which it needs */

#include "auth/jwt.h"
#include "auth/token_cli.h"
#include "config.h"

#include <errno.h>
#include <ftw.h>
#include <jwt.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define NOW 1700000000

static char dir[64];
static char err[1024];

/* ---- key files ---- */

static void sh(const char *fmt, const char *a, const char *b) {
  char cmd[1024];
  snprintf(cmd, sizeof cmd, fmt, a, b);
  if (system(cmd) != 0) fail_msg("command failed: %s", cmd);
}

/* dir/<name>.key (private) and dir/<name>.pub (public) */
static void genkey(const char *name, const char *opts) {
  char cmd[1024];
  snprintf(cmd, sizeof cmd, "openssl genpkey %s -out %s/%s.key 2>/dev/null && ", opts, dir, name);
  size_t n = strlen(cmd);
  snprintf(cmd + n, sizeof cmd - n, "openssl pkey -in %s/%s.key -pubout -out %s/%s.pub 2>/dev/null", dir,
           name, dir, name);
  sh("%s%s", cmd, "");
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  return remove(path);
}

static int setup(void **state) {
  strcpy(dir, "/tmp/parley-jwt-XXXXXX");
  if (!mkdtemp(dir)) return -1;
  const char *rsa = "-algorithm RSA -pkeyopt rsa_keygen_bits:2048";
  genkey("rsa1", rsa);
  genkey("rsa2", rsa);
  genkey("rsa1024", "-algorithm RSA -pkeyopt rsa_keygen_bits:1024");
  genkey("p256a", "-algorithm EC -pkeyopt ec_paramgen_curve:P-256");
  genkey("p256b", "-algorithm EC -pkeyopt ec_paramgen_curve:P-256");
  genkey("p384a", "-algorithm EC -pkeyopt ec_paramgen_curve:P-384");
  genkey("p384b", "-algorithm EC -pkeyopt ec_paramgen_curve:P-384");
  return 0;
}

static int teardown(void **state) {
  nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
  return 0;
}

/* ---- helpers ---- */

static void set(struct config *c, const char *key, const char *value) {
  if (config_set(c, key, value, "t", err, sizeof err)) fail_msg("%s = %s: %s", key, value, err);
}

static char *path(const char *name, const char *ext) {
  static char buf[8][128];
  static int i;
  char *p = buf[i++ % 8];
  snprintf(p, 128, "%s/%s.%s", dir, name, ext);
  return p;
}

/* A config with one key `kid` (alg, secret or key pair `pair`). */
static void add_key(struct config *c, const char *kid, const char *alg, const char *secret, const char *pair,
                    bool priv) {
  char k[128];
  snprintf(k, sizeof k, "auth.keys.%s.alg", kid);
  set(c, k, alg);
  if (secret) {
    snprintf(k, sizeof k, "auth.keys.%s.secret", kid);
    set(c, k, secret);
  }
  if (pair) {
    snprintf(k, sizeof k, "auth.keys.%s.public_key", kid);
    set(c, k, path(pair, "pub"));
    if (priv) {
      snprintf(k, sizeof k, "auth.keys.%s.private_key", kid);
      set(c, k, path(pair, "key"));
    }
  }
}

static struct jwt_keyset *keyset(const struct config *c) {
  struct jwt_keyset *ks = NULL;
  if (jwt_keyset_new(c, &ks, err, sizeof err)) fail_msg("keyset: %s", err);
  return ks;
}

static char *mint(const struct jwt_keyset *ks, const char *kid, const char *sub, const char *extra) {
  struct jwt_mint_req req = {.kid = kid, .sub = sub, .now = NOW, .ttl = 3600, .extra = extra};
  char *tok = NULL;
  if (jwt_mint(ks, &req, &tok, err, sizeof err)) fail_msg("mint: %s", err);
  return tok;
}

static const struct jwt_check check_now = {NOW, 30, NULL, NULL};

static int verify(const struct jwt_keyset *ks, const char *tok, const struct jwt_check *chk) {
  struct jwt_claims cl;
  int rc = jwt_verify(ks, tok, chk ? chk : &check_now, &cl);
  jwt_claims_free(&cl);
  return rc;
}

static void b64url(const unsigned char *in, size_t n, char *out) {
  static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  size_t o = 0;
  for (size_t i = 0; i < n; i += 3) {
    uint32_t v =
        (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0) | (i + 2 < n ? in[i + 2] : 0);
    out[o++] = tab[v >> 18 & 63];
    out[o++] = tab[v >> 12 & 63];
    if (i + 1 < n) out[o++] = tab[v >> 6 & 63];
    if (i + 2 < n) out[o++] = tab[v & 63];
  }
  out[o] = '\0';
}

/* A token with exactly this header and payload, HMAC-signed (md: EVP_sha256() ...) with key, or with an
 * empty signature when key is NULL. */
static char *raw_token(const char *header, const char *payload, const EVP_MD *md, const void *key,
                       size_t klen) {
  char *t = malloc(16384);
  b64url((const unsigned char *)header, strlen(header), t);
  strcat(t, ".");
  b64url((const unsigned char *)payload, strlen(payload), t + strlen(t));
  size_t signed_len = strlen(t);
  strcat(t, ".");
  if (key) {
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mlen = 0;
    HMAC(md, key, (int)klen, (const unsigned char *)t, signed_len, mac, &mlen);
    b64url(mac, mlen, t + strlen(t));
  }
  return t;
}

#define SECRET "test-secret-0123456789-0123456789-abcdef"

static char *hs256(const char *payload) {
  return raw_token("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", payload, EVP_sha256(), SECRET, strlen(SECRET));
}

static void default_config(struct config *c) {
  config_defaults(c);
  set(c, "auth.jwt_secret", SECRET);
}

/* ---- every algorithm ---- */

static void test_algorithms(void **state) {
  static const struct {
    const char *alg, *good, *bad; /* key pair names, or secrets for HS */
    bool hmac;
  } algs[] = {
      {"HS256", SECRET, "another-secret-0123456789-0123456789", true},
      {"HS384", SECRET, "another-secret-0123456789-0123456789", true},
      {"HS512", SECRET, "another-secret-0123456789-0123456789", true},
      {"RS256", "rsa1", "rsa2", false},
      {"RS384", "rsa1", "rsa2", false},
      {"RS512", "rsa1", "rsa2", false},
      {"ES256", "p256a", "p256b", false},
      {"ES384", "p384a", "p384b", false},
  };
  for (size_t i = 0; i < sizeof algs / sizeof *algs; i++) {
    struct config right, wrong;
    config_defaults(&right);
    config_defaults(&wrong);
    add_key(&right, "k", algs[i].alg, algs[i].hmac ? algs[i].good : NULL, algs[i].hmac ? NULL : algs[i].good,
            true);
    add_key(&wrong, "k", algs[i].alg, algs[i].hmac ? algs[i].bad : NULL, algs[i].hmac ? NULL : algs[i].bad,
            true);
    struct jwt_keyset *ks = keyset(&right), *other = keyset(&wrong);

    char *tok = mint(ks, "k", "u42", "{\"name\":\"Ann\",\"rooms\":[\"team-*:rw\"]}");
    struct jwt_claims cl;
    int rc = jwt_verify(ks, tok, &check_now, &cl);
    if (rc) fail_msg("%s: %s", algs[i].alg, jwt_err_name(rc));
    assert_string_equal(cl.sub, "u42");
    assert_string_equal(cl.name, "Ann");
    assert_int_equal(cl.exp, NOW + 3600);
    assert_int_equal(cl.ngrants, 1);
    assert_string_equal(cl.grants[0].pattern, "team-*");
    assert_int_equal(cl.grants[0].rights, GRANT_READ | GRANT_WRITE);
    jwt_claims_free(&cl);

    /* signed with the wrong key under the same kid and alg */
    char *forged = mint(other, "k", "u42", NULL);
    rc = verify(ks, forged, NULL);
    if (rc != JWT_E_BAD_SIGNATURE) fail_msg("%s wrong key: %s", algs[i].alg, jwt_err_name(rc));
    free(forged);
    free(tok);
    jwt_keyset_free(ks);
    jwt_keyset_free(other);
    config_free(&right);
    config_free(&wrong);
  }
}

/* ---- attacks ---- */

static void test_tampered(void **state) {
  struct config c;
  default_config(&c);
  struct jwt_keyset *ks = keyset(&c);
  /* The token is cut up in a copy of our own: pointers into the malloc'd minted string made GCC 12's
   * -Wdangling-pointer (-O2/-O3, mint inlined) mistake them for pointers to mint's local `tok`. */
  char tok[4096];
  char *minted = mint(ks, NULL, "u42", NULL);
  assert_true(strlen(minted) < sizeof tok);
  strcpy(tok, minted);
  free(minted);
  assert_int_equal(verify(ks, tok, NULL), 0);

  /* payload replaced (another sub), signature kept */
  char *other = hs256("{\"sub\":\"admin\"}");
  char *d1 = strchr(tok, '.'), *d2 = strrchr(tok, '.');
  char *o1 = strchr(other, '.'), *o2 = strrchr(other, '.');
  char forged[16384];
  snprintf(forged, sizeof forged, "%.*s%.*s%s", (int)(d1 - tok), tok, (int)(o2 - o1), o1, d2);
  assert_int_equal(verify(ks, forged, NULL), JWT_E_BAD_SIGNATURE);

  /* header replaced (an extra member), signature kept */
  char hdr[256];
  const char *h = "{\"alg\":\"HS256\",\"typ\":\"JWT\",\"x\":1}";
  b64url((const unsigned char *)h, strlen(h), hdr);
  snprintf(forged, sizeof forged, "%s%s", hdr, d1);
  assert_int_equal(verify(ks, forged, NULL), JWT_E_BAD_SIGNATURE);

  /* one flipped signature character; signature cut off */
  snprintf(forged, sizeof forged, "%s", tok);
  char *last = forged + strlen(forged) - 2;
  *last = *last == 'A' ? 'B' : 'A';
  assert_int_equal(verify(ks, forged, NULL), JWT_E_BAD_SIGNATURE);
  snprintf(forged, sizeof forged, "%.*s.", (int)(d2 - tok), tok);
  assert_int_equal(verify(ks, forged, NULL), JWT_E_BAD_SIGNATURE);

  free(other);
  jwt_keyset_free(ks);
  config_free(&c);
}

/* Found by tests/fuzz/fuzz_jwt: libjwt 1.10 skips characters outside base64 in RS and ES signatures and
 * ignores their unused low bits, so a signed token had endless accepted spellings. Only the canonical
 * base64url spelling of the signature is accepted now (for every algorithm). */
static void test_signature_spelling(void **state) {
  static const struct {
    const char *alg, *pair, *secret;
  } algs[] = {{"RS256", "rsa1", NULL}, {"ES256", "p256a", NULL}, {"HS256", NULL, SECRET}};
  for (size_t i = 0; i < sizeof algs / sizeof *algs; i++) {
    struct config c;
    config_defaults(&c);
    add_key(&c, "k", algs[i].alg, algs[i].secret, algs[i].pair, true);
    struct jwt_keyset *ks = keyset(&c);
    /* a copy of its own: cutting into mint()'s result, once inlined, read to GCC 12 as a pointer to
     * mint()'s local (-Wdangling-pointer in a Release build) */
    char tok[8192];
    char *minted = mint(ks, "k", "u42", NULL);
    snprintf(tok, sizeof tok, "%s", minted);
    free(minted);
    assert_int_equal(verify(ks, tok, NULL), 0);
    size_t len = strlen(tok), sig = (size_t)(strrchr(tok, '.') + 1 - tok);
    char spelled[16384];
    static const char *inserts[] = {":", "=", " ", "\n", "!", "~", "+", "/"};
    for (size_t j = 0; j < sizeof inserts / sizeof *inserts; j++) { /* one character more, mid-signature */
      snprintf(spelled, sizeof spelled, "%.*s%s%s", (int)(sig + 8), tok, inserts[j], tok + sig + 8);
      int rc = verify(ks, spelled, NULL);
      if (rc != JWT_E_MALFORMED)
        fail_msg("%s with '%s' inserted: %s", algs[i].alg, inserts[j], jwt_err_name(rc));
    }
    /* the last character with other unused low bits: same signature bytes, another spelling */
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t unused = (len - sig) % 4 == 2 ? 4 : (len - sig) % 4 == 3 ? 2 : 0;
    assert_true(unused > 0); /* 32, 64 and 256-byte signatures all leave unused bits */
    snprintf(spelled, sizeof spelled, "%s", tok);
    int v = (int)(strchr(tab, spelled[len - 1]) - tab);
    spelled[len - 1] = tab[v | 1];
    assert_int_not_equal(spelled[len - 1], tok[len - 1]);
    int rc = verify(ks, spelled, NULL);
    if (rc != JWT_E_MALFORMED) fail_msg("%s with non-canonical low bits: %s", algs[i].alg, jwt_err_name(rc));
    jwt_keyset_free(ks);
    config_free(&c);
  }
}

static void test_alg_none(void **state) {
  struct config c;
  default_config(&c);
  add_key(&c, "rsa", "RS256", NULL, "rsa1", false);
  struct jwt_keyset *ks = keyset(&c);
  const char *payload = "{\"sub\":\"u42\"}";
  char *t1 = raw_token("{\"alg\":\"none\",\"typ\":\"JWT\"}", payload, NULL, NULL, 0);
  char *t2 = raw_token("{\"alg\":\"none\",\"kid\":\"rsa\"}", payload, NULL, NULL, 0);
  char *t3 = raw_token("{\"alg\":\"NONE\"}", payload, NULL, NULL, 0);
  assert_int_equal(verify(ks, t1, NULL), JWT_E_ALG);
  assert_int_equal(verify(ks, t2, NULL), JWT_E_ALG);
  assert_int_equal(verify(ks, t3, NULL), JWT_E_ALG);
  /* another HMAC than the pinned one is refused too */
  char *t4 = raw_token("{\"alg\":\"HS512\"}", payload, EVP_sha512(), SECRET, strlen(SECRET));
  assert_int_equal(verify(ks, t4, NULL), JWT_E_ALG);
  free(t1);
  free(t2);
  free(t3);
  free(t4);
  jwt_keyset_free(ks);
  config_free(&c);
}

static char *slurp(const char *p, size_t *len) {
  FILE *f = fopen(p, "rb");
  assert_non_null(f);
  char *buf = calloc(1, 65536);
  *len = fread(buf, 1, 65535, f);
  fclose(f);
  return buf;
}

static void test_hs_rs_confusion(void **state) {
  struct config c;
  config_defaults(&c);
  add_key(&c, "rsa", "RS256", NULL, "rsa1", false);
  struct jwt_keyset *ks = keyset(&c);
  size_t len;
  char *pem = slurp(path("rsa1", "pub"), &len);
  char *tok = raw_token("{\"alg\":\"HS256\",\"kid\":\"rsa\"}", "{\"sub\":\"admin\"}", EVP_sha256(), pem, len);

  /* the threat is real: libjwt alone accepts it with the public key as the "secret" */
  jwt_t *j = NULL;
  assert_int_equal(jwt_decode(&j, tok, (const unsigned char *)pem, (int)len), 0);
  jwt_free(j);

  assert_int_equal(verify(ks, tok, NULL), JWT_E_ALG);
  free(tok);
  free(pem);
  jwt_keyset_free(ks);
  config_free(&c);
}

/* ---- times ---- */

static void test_times(void **state) {
  struct config c;
  default_config(&c);
  struct jwt_keyset *ks = keyset(&c);
  struct jwt_check strict = {NOW, 0, NULL, NULL}, lenient = {NOW, 30, NULL, NULL};
  static const struct {
    const char *payload;
    int strict, lenient;
  } cases[] = {
      {"{\"sub\":\"u\",\"exp\":1700000001}", 0, 0},
      {"{\"sub\":\"u\",\"exp\":1700000000}", JWT_E_EXPIRED, 0},
      {"{\"sub\":\"u\",\"exp\":1699999971}", JWT_E_EXPIRED, 0},
      {"{\"sub\":\"u\",\"exp\":1699999970}", JWT_E_EXPIRED, JWT_E_EXPIRED},
      {"{\"sub\":\"u\",\"exp\":1600000000.5}", JWT_E_EXPIRED, JWT_E_EXPIRED},
      {"{\"sub\":\"u\",\"exp\":\"1800000000\"}", JWT_E_CLAIM, JWT_E_CLAIM},
      {"{\"sub\":\"u\",\"nbf\":1700000000}", 0, 0},
      {"{\"sub\":\"u\",\"nbf\":1700000001}", JWT_E_NOT_YET_VALID, 0},
      {"{\"sub\":\"u\",\"nbf\":1700000030}", JWT_E_NOT_YET_VALID, 0},
      {"{\"sub\":\"u\",\"nbf\":1700000031}", JWT_E_NOT_YET_VALID, JWT_E_NOT_YET_VALID},
      {"{\"sub\":\"u\",\"iat\":1700000000}", 0, 0},
      {"{\"sub\":\"u\",\"iat\":1700000030}", JWT_E_IAT_FUTURE, 0},
      {"{\"sub\":\"u\",\"iat\":1700000031}", JWT_E_IAT_FUTURE, JWT_E_IAT_FUTURE},
      {"{\"sub\":\"u\",\"iat\":1e300,\"exp\":1e300}", JWT_E_IAT_FUTURE, JWT_E_IAT_FUTURE},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    char *tok = hs256(cases[i].payload);
    int a = verify(ks, tok, &strict), b = verify(ks, tok, &lenient);
    if (a != cases[i].strict || b != cases[i].lenient)
      fail_msg("%s: strict %s (want %s), leeway %s (want %s)", cases[i].payload, jwt_err_name(a),
               jwt_err_name(cases[i].strict), jwt_err_name(b), jwt_err_name(cases[i].lenient));
    free(tok);
  }
  /* a far-future exp is clamped, not overflowed */
  char *tok = hs256("{\"sub\":\"u\",\"exp\":1e300}");
  struct jwt_claims cl;
  assert_int_equal(jwt_verify(ks, tok, &strict, &cl), 0);
  assert_true(cl.exp > NOW);
  jwt_claims_free(&cl);
  free(tok);
  jwt_keyset_free(ks);
  config_free(&c);
}

/* ---- aud, iss, sub ---- */

static void test_aud_iss(void **state) {
  struct config c;
  default_config(&c);
  struct jwt_keyset *ks = keyset(&c);
  struct jwt_check both = {NOW, 30, "parley", "https://id.example"}, none = {NOW, 30, "", NULL};
  static const struct {
    const char *payload;
    int both;
  } cases[] = {
      {"{\"sub\":\"u\",\"aud\":\"parley\",\"iss\":\"https://id.example\"}", 0},
      {"{\"sub\":\"u\",\"aud\":[\"x\",\"parley\"],\"iss\":\"https://id.example\"}", 0},
      {"{\"sub\":\"u\",\"aud\":\"other\",\"iss\":\"https://id.example\"}", JWT_E_AUDIENCE},
      {"{\"sub\":\"u\",\"aud\":[\"x\",1],\"iss\":\"https://id.example\"}", JWT_E_AUDIENCE},
      {"{\"sub\":\"u\",\"aud\":[],\"iss\":\"https://id.example\"}", JWT_E_AUDIENCE},
      {"{\"sub\":\"u\",\"iss\":\"https://id.example\"}", JWT_E_AUDIENCE},
      {"{\"sub\":\"u\",\"aud\":\"parleyx\",\"iss\":\"https://id.example\"}", JWT_E_AUDIENCE},
      {"{\"sub\":\"u\",\"aud\":\"parley\",\"iss\":\"https://evil.example\"}", JWT_E_ISSUER},
      {"{\"sub\":\"u\",\"aud\":\"parley\"}", JWT_E_ISSUER},
      {"{\"sub\":\"u\",\"aud\":\"parley\",\"iss\":[\"https://id.example\"]}", JWT_E_ISSUER},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    char *tok = hs256(cases[i].payload);
    int rc = verify(ks, tok, &both);
    if (rc != cases[i].both) fail_msg("%s: %s", cases[i].payload, jwt_err_name(rc));
    assert_int_equal(verify(ks, tok, &none), 0); /* not configured: not checked */
    free(tok);
  }
  jwt_keyset_free(ks);
  config_free(&c);
}

static void test_sub_and_claims(void **state) {
  struct config c;
  default_config(&c);
  struct jwt_keyset *ks = keyset(&c);
  char long_sub[256];
  snprintf(long_sub, sizeof long_sub, "{\"sub\":\"%0129d\"}", 0);
  static const char *bad_sub[] = {"{}", "{\"sub\":\"\"}", "{\"sub\":42}", "{\"sub\":null}",
                                  "{\"name\":\"x\"}"};
  for (size_t i = 0; i < sizeof bad_sub / sizeof *bad_sub; i++) {
    char *tok = hs256(bad_sub[i]);
    int rc = verify(ks, tok, NULL);
    if (rc != JWT_E_SUB) fail_msg("%s: %s", bad_sub[i], jwt_err_name(rc));
    free(tok);
  }
  char *tok = hs256(long_sub);
  assert_int_equal(verify(ks, tok, NULL), JWT_E_SUB);
  free(tok);
  snprintf(long_sub, sizeof long_sub, "{\"sub\":\"%0128d\"}", 0);
  tok = hs256(long_sub);
  assert_int_equal(verify(ks, tok, NULL), 0);
  free(tok);

  static const char *bad_claims[] = {
      "{\"sub\":\"u\",\"name\":42}",         "{\"sub\":\"u\",\"rooms\":\"team:rw\"}",
      "{\"sub\":\"u\",\"rooms\":[42]}",      "{\"sub\":\"u\",\"rooms\":[\"nocolon\"]}",
      "{\"sub\":\"u\",\"rooms\":[\":rw\"]}", "{\"sub\":\"u\",\"rooms\":[\"a:rx\"]}",
      "{\"sub\":\"u\",\"rooms\":{\"a\":1}}", "{\"sub\":\"u\",\"rooms\":{\"a\":\"rwx\"}}",
      "{\"sub\":\"u\",\"nbf\":true}",
  };
  for (size_t i = 0; i < sizeof bad_claims / sizeof *bad_claims; i++) {
    tok = hs256(bad_claims[i]);
    int rc = verify(ks, tok, NULL);
    if (rc != JWT_E_CLAIM) fail_msg("%s: %s", bad_claims[i], jwt_err_name(rc));
    free(tok);
  }

  /* name defaults to sub; a long name is cut at a UTF-8 boundary; rooms as array and object */
  struct jwt_claims cl;
  tok = hs256("{\"sub\":\"u42\",\"rooms\":[\"dm:*:rw\",\"news:r\",\"x:\"]}");
  assert_int_equal(jwt_verify(ks, tok, &check_now, &cl), 0);
  assert_string_equal(cl.name, "u42");
  assert_int_equal(cl.exp, 0);
  assert_int_equal(cl.ngrants, 3);
  assert_string_equal(cl.grants[0].pattern, "dm:*");
  assert_int_equal(cl.grants[0].rights, GRANT_READ | GRANT_WRITE);
  assert_string_equal(cl.grants[1].pattern, "news");
  assert_int_equal(cl.grants[1].rights, GRANT_READ);
  assert_int_equal(cl.grants[2].rights, 0);
  jwt_claims_free(&cl);
  free(tok);

  char payload[1024] = "{\"sub\":\"u\",\"rooms\":{\"team-*\":\"w\",\"a:b\":\"r\"},\"name\":\"";
  for (int i = 0; i < 70; i++) strcat(payload, "\xc3\xa9"); /* é: 140 bytes */
  strcat(payload, "\"}");
  tok = hs256(payload);
  assert_int_equal(jwt_verify(ks, tok, &check_now, &cl), 0);
  assert_int_equal(strlen(cl.name), 128);
  assert_int_equal(cl.ngrants, 2);
  assert_string_equal(cl.grants[0].pattern, "team-*");
  assert_int_equal(cl.grants[0].rights, GRANT_WRITE);
  assert_string_equal(cl.grants[1].pattern, "a:b");
  jwt_claims_free(&cl);
  free(tok);
  jwt_keyset_free(ks);
  config_free(&c);
}

static void test_malformed(void **state) {
  struct config c;
  default_config(&c);
  struct jwt_keyset *ks = keyset(&c);
  static const char *bad[] = {"", "abc", "a.b", "a.b.c.d", "!!!.e30.sig", "e30.e30.sig", "bm90IGpzb24.e30.x"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    int rc = verify(ks, bad[i], NULL);
    if (rc != JWT_E_MALFORMED) fail_msg("'%s': %s", bad[i], jwt_err_name(rc));
  }
  assert_int_equal(verify(ks, NULL, NULL), JWT_E_MALFORMED);
  static const char *headers[] = {"{\"alg\":\"HS256\",\"alg\":\"RS256\"}",
                                  "{\"alg\":\"HS256\",\"crit\":[\"x\"]}", "{\"alg\":256}",
                                  "{\"alg\":\"HS256\",\"kid\":7}", "[\"HS256\"]"};
  for (size_t i = 0; i < sizeof headers / sizeof *headers; i++) {
    char *tok = raw_token(headers[i], "{\"sub\":\"u\"}", EVP_sha256(), SECRET, strlen(SECRET));
    int rc = verify(ks, tok, NULL);
    if (rc != JWT_E_MALFORMED) fail_msg("%s: %s", headers[i], jwt_err_name(rc));
    free(tok);
  }
  char *tok = raw_token("{\"alg\":\"HS256\"}", "[1]", EVP_sha256(), SECRET, strlen(SECRET));
  assert_int_equal(verify(ks, tok, NULL), JWT_E_MALFORMED);
  free(tok);
  /* strings with NUL (\u0000) are refused by the JSON parser, before any claim is read */
  tok = hs256("{\"sub\":\"a\\u0000b\"}");
  assert_int_equal(verify(ks, tok, NULL), JWT_E_MALFORMED);
  free(tok);
  char *huge = malloc(20000);
  memset(huge, 'a', 19999);
  huge[19999] = '\0';
  assert_int_equal(verify(ks, huge, NULL), JWT_E_MALFORMED);
  free(huge);
  jwt_keyset_free(ks);
  config_free(&c);
}

/* ---- kid and rotation ---- */

static void test_kid_rotation(void **state) {
  struct config c;
  config_defaults(&c);
  add_key(&c, "2024", "HS256", SECRET, NULL, false);
  add_key(&c, "2025", "RS256", NULL, "rsa1", true);
  struct jwt_keyset *ks = keyset(&c);
  assert_int_equal(jwt_keyset_size(ks), 2);

  char *old = mint(ks, "2024", "u1", NULL), *cur = mint(ks, "2025", "u2", NULL);
  assert_int_equal(verify(ks, old, NULL), 0);
  assert_int_equal(verify(ks, cur, NULL), 0);

  /* no kid and no default key; a kid nobody configured */
  char *nokid = hs256("{\"sub\":\"u\"}");
  assert_int_equal(verify(ks, nokid, NULL), JWT_E_UNKNOWN_KID);
  char *unknown = raw_token("{\"alg\":\"HS256\",\"kid\":\"2023\"}", "{\"sub\":\"u\"}", EVP_sha256(), SECRET,
                            strlen(SECRET));
  assert_int_equal(verify(ks, unknown, NULL), JWT_E_UNKNOWN_KID);
  struct jwt_mint_req req = {.sub = "u"};
  char *t = NULL;
  assert_int_equal(jwt_mint(ks, &req, &t, err, sizeof err), -EINVAL);
  assert_non_null(strstr(err, "no default key"));

  /* retire 2024: its tokens stop verifying, 2025's keep working */
  struct config c2;
  config_defaults(&c2);
  add_key(&c2, "2025", "RS256", NULL, "rsa1", false);
  struct jwt_keyset *ks2 = keyset(&c2);
  assert_int_equal(verify(ks2, old, NULL), JWT_E_UNKNOWN_KID);
  assert_int_equal(verify(ks2, cur, NULL), 0);
  /* ... but it cannot mint without the private key */
  req.kid = "2025";
  assert_int_equal(jwt_mint(ks2, &req, &t, err, sizeof err), -EINVAL);
  assert_non_null(strstr(err, "private_key"));

  /* default_kid: tokens without kid use that key */
  set(&c2, "auth.default_kid", "2025");
  struct jwt_keyset *ks3 = keyset(&c2);
  jwt_t *j = NULL;
  size_t len;
  char *priv = slurp(path("rsa1", "key"), &len);
  assert_int_equal(jwt_new(&j), 0);
  jwt_add_grant(j, "sub", "u3");
  assert_int_equal(jwt_set_alg(j, JWT_ALG_RS256, (unsigned char *)priv, (int)len), 0);
  char *nokid_rs = jwt_encode_str(j);
  jwt_free(j);
  assert_int_equal(verify(ks3, nokid_rs, NULL), 0);
  assert_int_equal(verify(ks2, nokid_rs, NULL), JWT_E_UNKNOWN_KID);
  free(nokid_rs);
  free(priv);

  free(old);
  free(cur);
  free(nokid);
  free(unknown);
  jwt_keyset_free(ks);
  jwt_keyset_free(ks2);
  jwt_keyset_free(ks3);
  config_free(&c);
  config_free(&c2);
}

/* ---- keyset configuration errors ---- */

static void keyset_fails(struct config *c, const char *want) {
  struct jwt_keyset *ks = (struct jwt_keyset *)1;
  err[0] = '\0';
  assert_int_equal(jwt_keyset_new(c, &ks, err, sizeof err), -EINVAL);
  assert_null(ks);
  if (!strstr(err, want)) fail_msg("error '%s' does not contain '%s'", err, want);
  config_free(c);
}

static void test_keyset_errors(void **state) {
  struct config c;
  config_defaults(&c);
  add_key(&c, "k", "HS256", NULL, NULL, false);
  keyset_fails(&c, "auth.keys.k.secret: HS256 needs a secret");
  config_defaults(&c);
  add_key(&c, "k", "HS256", SECRET, "rsa1", false);
  keyset_fails(&c, "takes a secret, not key files");
  config_defaults(&c);
  add_key(&c, "k", "RS256", NULL, NULL, false);
  keyset_fails(&c, "auth.keys.k.public_key: RS256 needs a public key file");
  config_defaults(&c);
  add_key(&c, "k", "RS256", SECRET, "rsa1", false);
  keyset_fails(&c, "takes key files, not a secret");
  config_defaults(&c);
  set(&c, "auth.keys.k.alg", "RS256");
  set(&c, "auth.keys.k.public_key", "/nonexistent/k.pem");
  keyset_fails(&c, "auth.keys.k.public_key: /nonexistent/k.pem: No such file or directory");
  config_defaults(&c);
  add_key(&c, "k", "RS256", NULL, "p256a", false);
  keyset_fails(&c, "RS256 needs an RSA key");
  config_defaults(&c);
  add_key(&c, "k", "RS256", NULL, "rsa1024", false);
  keyset_fails(&c, "RSA key of 1024 bits");
  config_defaults(&c);
  add_key(&c, "k", "ES256", NULL, "p384a", false);
  keyset_fails(&c, "ES256 needs an EC key on curve P-256");
  config_defaults(&c);
  add_key(&c, "k", "ES384", NULL, "rsa1", false);
  keyset_fails(&c, "ES384 needs an EC key on curve P-384");
  config_defaults(&c);
  set(&c, "auth.keys.k.alg", "RS256");
  set(&c, "auth.keys.k.public_key", path("rsa1", "key")); /* a private key where the public one goes */
  keyset_fails(&c, "not a PEM public key");
  config_defaults(&c);
  set(&c, "auth.default_kid", "nope");
  keyset_fails(&c, "auth.default_kid: no key auth.keys.nope");
  config_defaults(&c);
  add_key(&c, "k", "HS256", SECRET, NULL, false);
  set(&c, "auth.default_kid", "k");
  set(&c, "auth.jwt_secret", SECRET);
  keyset_fails(&c, "both set");

  /* an empty keyset is fine: every token is unknown_kid */
  config_defaults(&c);
  struct jwt_keyset *ks = keyset(&c);
  assert_int_equal(jwt_keyset_size(ks), 0);
  char *tok = hs256("{\"sub\":\"u\"}");
  assert_int_equal(verify(ks, tok, NULL), JWT_E_UNKNOWN_KID);
  assert_int_equal(verify(NULL, tok, NULL), JWT_E_UNKNOWN_KID);
  free(tok);
  jwt_keyset_free(ks);
  config_free(&c);

  /* bad alg names are config errors */
  config_defaults(&c);
  assert_int_not_equal(config_set(&c, "auth.keys.k.alg", "none", "t", err, sizeof err), 0);
  assert_int_not_equal(config_set(&c, "auth.keys.k.alg", "PS256", "t", err, sizeof err), 0);
  assert_int_not_equal(config_set(&c, "auth.keys.k.colour", "x", "t", err, sizeof err), 0);
  assert_int_not_equal(config_set(&c, "auth.keys.alg", "HS256", "t", err, sizeof err), 0);
  config_free(&c);
}

/* ---- minting, grants, error table ---- */

static void test_mint(void **state) {
  struct config c;
  default_config(&c);
  struct jwt_keyset *ks = keyset(&c);
  struct jwt_mint_req req = {.sub = "u42",
                             .name = "Test User",
                             .rooms = "team-*:rw, dm:*:r",
                             .aud = "parley",
                             .iss = "me",
                             .now = NOW,
                             .ttl = 60};
  char *tok = NULL;
  assert_int_equal(jwt_mint(ks, &req, &tok, err, sizeof err), 0);
  struct jwt_check chk = {NOW + 59, 0, "parley", "me"};
  struct jwt_claims cl;
  assert_int_equal(jwt_verify(ks, tok, &chk, &cl), 0);
  assert_string_equal(cl.name, "Test User");
  assert_int_equal(cl.exp, NOW + 60);
  assert_int_equal(cl.ngrants, 2);
  assert_string_equal(cl.grants[1].pattern, "dm:*");
  assert_int_equal(cl.grants[1].rights, GRANT_READ);
  jwt_claims_free(&cl);
  chk.now = NOW + 60;
  assert_int_equal(jwt_verify(ks, tok, &chk, &cl), JWT_E_EXPIRED);
  free(tok);

  req.rooms = "team-*";
  assert_int_equal(jwt_mint(ks, &req, &tok, err, sizeof err), -EINVAL);
  assert_non_null(strstr(err, "rooms"));
  req.rooms = NULL;
  req.sub = "";
  assert_int_equal(jwt_mint(ks, &req, &tok, err, sizeof err), -EINVAL);
  req.sub = "u";
  req.kid = "nope";
  assert_int_equal(jwt_mint(ks, &req, &tok, err, sizeof err), -EINVAL);
  assert_non_null(strstr(err, "auth.keys.nope"));
  jwt_keyset_free(ks);
  config_free(&c);
}

static void test_grants(void **state) {
  struct grant *g;
  size_t n;
  assert_int_equal(grants_parse_list("", &g, &n), 0);
  assert_int_equal(n, 0);
  assert_int_equal(grants_parse_list(" *:rw ", &g, &n), 0);
  assert_int_equal(n, 1);
  grants_free(g, n);
  assert_int_equal(grants_parse_list("team-*:rw,news:r, dm:*:w,lobby:", &g, &n), 0);
  assert_int_equal(n, 4);
  assert_int_equal(grants_rights(g, n, "team-a"), GRANT_READ | GRANT_WRITE);
  assert_int_equal(grants_rights(g, n, "news"), GRANT_READ);
  assert_int_equal(grants_rights(g, n, "dm:a:b"), GRANT_WRITE);
  assert_int_equal(grants_rights(g, n, "lobby"), 0);
  assert_int_equal(grants_rights(g, n, "other"), 0);
  grants_free(g, n);
  static const char *bad[] = {"a", ",a:r", "a:r,,b:r", ":r", "a:x", "a:R"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
    if (grants_parse_list(bad[i], &g, &n) != JWT_E_CLAIM) fail_msg("'%s' parsed", bad[i]);
}

static void test_error_table(void **state) {
  static const int codes[] = {JWT_E_MALFORMED, JWT_E_BAD_SIGNATURE, JWT_E_UNKNOWN_KID, JWT_E_ALG,
                              JWT_E_EXPIRED,   JWT_E_NOT_YET_VALID, JWT_E_IAT_FUTURE,  JWT_E_AUDIENCE,
                              JWT_E_ISSUER,    JWT_E_SUB,           JWT_E_CLAIM,       JWT_E_NOMEM};
  size_t n = sizeof codes / sizeof *codes;
  for (size_t i = 0; i < n; i++) {
    assert_true(codes[i] < 0);
    assert_true(strlen(jwt_err_text(codes[i])) > 5);
    for (size_t j = 0; j < i; j++) assert_string_not_equal(jwt_err_name(codes[i]), jwt_err_name(codes[j]));
  }
  assert_string_equal(jwt_err_name(JWT_E_EXPIRED), "expired");
  assert_string_equal(jwt_err_name(JWT_E_ALG), "alg_not_allowed");
  assert_string_equal(jwt_err_name(0), "ok");
}

/* ---- auth.keys.<kid>.* in the config: load, dump, reload ---- */

static void test_config_keys(void **state) {
  struct config c;
  config_defaults(&c);
  assert_int_equal(config_load_text(&c, "k.conf",
                                    "auth.keys.a.b.alg = RS384\n"
                                    "auth.keys.a.b.public_key = keys/ab.pem\n"
                                    "auth.keys.h.secret = \"s3cr\\\"et\"\n"
                                    "rooms.team-*.access = members\n",
                                    err, sizeof err),
                   0);
  assert_int_equal(c.nauth_keys, 2);
  const struct auth_key *k = config_auth_key(&c, "a.b");
  assert_non_null(k);
  assert_int_equal(k->alg, CJWT_RS384);
  assert_string_equal(k->public_key, "keys/ab.pem");
  assert_string_equal(k->secret, "");
  k = config_auth_key(&c, "h");
  assert_int_equal(k->alg, CJWT_HS256); /* the default */
  assert_string_equal(k->secret, "s3cr\"et");
  assert_null(config_auth_key(&c, "zzz"));
  assert_int_equal(config_room_access(&c, "team-a"), ROOM_MEMBERS);

  FILE *f = tmpfile();
  config_dump(&c, f);
  long n = ftell(f);
  rewind(f);
  char *dump = calloc(1, (size_t)n + 1);
  assert_int_equal(fread(dump, 1, (size_t)n, f), (size_t)n);
  fclose(f);
  assert_non_null(strstr(dump, "auth.keys.a.b.alg = RS384\n"));
  assert_non_null(strstr(dump, "auth.keys.h.secret = \"s3cr\\\"et\"\n"));
  assert_null(strstr(dump, "auth.keys.h.alg")); /* only what was set */
  assert_non_null(strstr(dump, "rooms.team-*.access = members\n"));
  struct config d, live;
  config_defaults(&d);
  assert_int_equal(config_load_text(&d, "dump", dump, err, sizeof err), 0);
  free(dump);
  config_defaults(&live);
  config_apply_reload(&live, &d);
  assert_int_equal(live.nauth_keys, 2);
  assert_string_equal(config_auth_key(&live, "h")->secret, "s3cr\"et");
  assert_int_equal(config_room_access(&live, "team-b"), ROOM_MEMBERS);
  config_free(&live);
  config_free(&d);

  assert_int_not_equal(config_load_text(&c, "bad.conf", "\n\nauth.keys.x.alg = none\n", err, sizeof err), 0);
  assert_non_null(strstr(err, "bad.conf:3: "));
  assert_int_not_equal(config_load_text(&c, "bad.conf", "rooms.x.access = secret\n", err, sizeof err), 0);
  assert_non_null(strstr(err, "bad.conf:1: "));
  config_free(&c);
}

/* ---- parleyd token ---- */

/* token_cli_main with stdout into out (the token line) and stderr dropped. */
static int run_cli(char *out, size_t outlen, int argc, char **argv) {
  char tmp[] = "/tmp/parley-cli-XXXXXX";
  int fd = mkstemp(tmp);
  assert_true(fd >= 0);
  fflush(stdout);
  fflush(stderr);
  int saved_out = dup(1), saved_err = dup(2);
  dup2(fd, 1);
  dup2(fd, 2);
  int rc = token_cli_main(argc, argv);
  fflush(stdout);
  fflush(stderr);
  dup2(saved_out, 1);
  dup2(saved_err, 2);
  close(saved_out);
  close(saved_err);
  lseek(fd, 0, SEEK_SET);
  ssize_t n = read(fd, out, outlen - 1);
  out[n > 0 ? n : 0] = '\0';
  close(fd);
  unlink(tmp);
  return rc;
}

static void test_cli(void **state) {
  char conf[128], file[160];
  snprintf(conf, sizeof conf, "%s/conf.d", dir);
  mkdir(conf, 0700);
  snprintf(file, sizeof file, "%s/10.conf", conf);
  FILE *f = fopen(file, "w");
  assert_non_null(f);
  fprintf(f,
          "auth.jwt_secret = \"%s\"\nauth.keys.r.alg = RS256\nauth.keys.r.public_key = %s\n"
          "auth.keys.r.private_key = %s\nauth.keys.v.alg = ES256\nauth.keys.v.public_key = %s\n"
          "auth.audience = parley\n",
          SECRET, path("rsa1", "pub"), path("rsa1", "key"), path("p256a", "pub"));
  fclose(f);
  struct config c;
  assert_int_equal(config_load_dir(&c, conf, err, sizeof err), 0);
  struct jwt_keyset *ks = keyset(&c);
  struct jwt_check chk = {(int64_t)time(NULL), 30, "parley", NULL};
  char out[4096];

  char *ok1[] = {"token",     "--sub", "u42", "--name", "Test User", "--rooms",
                 "team-*:rw", "--ttl", "1h",  "-c",     conf};
  assert_int_equal(run_cli(out, sizeof out, 11, ok1), 0);
  *strchr(out, '\n') = '\0';
  struct jwt_claims cl;
  assert_int_equal(jwt_verify(ks, out, &chk, &cl), 0);
  assert_string_equal(cl.name, "Test User");
  assert_true(cl.exp >= chk.now + 3599 && cl.exp <= chk.now + 3601);
  assert_int_equal(cl.ngrants, 1);
  jwt_claims_free(&cl);

  char *ok2[] = {"token", "--sub", "u1", "--kid", "r", "-c", conf};
  assert_int_equal(run_cli(out, sizeof out, 7, ok2), 0);
  *strchr(out, '\n') = '\0';
  assert_int_equal(jwt_verify(ks, out, &chk, &cl), 0); /* aud from auth.audience */
  jwt_claims_free(&cl);

  char *bad_ttl[] = {"token", "--sub", "u1", "--ttl", "soon", "-c", conf};
  assert_int_equal(run_cli(out, sizeof out, 7, bad_ttl), 1);
  assert_non_null(strstr(out, "--ttl"));
  char *no_priv[] = {"token", "--sub", "u1", "--kid", "v", "-c", conf};
  assert_int_equal(run_cli(out, sizeof out, 7, no_priv), 1);
  assert_non_null(strstr(out, "private_key"));
  char *no_kid[] = {"token", "--sub", "u1", "--kid", "nope", "-c", conf};
  assert_int_equal(run_cli(out, sizeof out, 7, no_kid), 1);
  char *no_sub[] = {"token", "-c", conf};
  assert_int_equal(run_cli(out, sizeof out, 3, no_sub), 2);
  assert_non_null(strstr(out, "--sub is required"));
  jwt_keyset_free(ks);
  config_free(&c);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_algorithms),
      cmocka_unit_test(test_tampered),
      cmocka_unit_test(test_signature_spelling),
      cmocka_unit_test(test_alg_none),
      cmocka_unit_test(test_hs_rs_confusion),
      cmocka_unit_test(test_times),
      cmocka_unit_test(test_aud_iss),
      cmocka_unit_test(test_sub_and_claims),
      cmocka_unit_test(test_malformed),
      cmocka_unit_test(test_kid_rotation),
      cmocka_unit_test(test_keyset_errors),
      cmocka_unit_test(test_mint),
      cmocka_unit_test(test_grants),
      cmocka_unit_test(test_error_table),
      cmocka_unit_test(test_config_keys),
      cmocka_unit_test(test_cli),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
