/* token_cli: `parleyd token ...` mints a token with a configured key, for development and tests. */
#include "auth/token_cli.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth/jwt.h"
#include "config.h"

static void usage(FILE *f) {
  fputs("usage: parleyd token --sub ID [--name NAME] [--rooms LIST] [--ttl DURATION] [--kid KID]\n"
        "                     [--aud AUD] [--iss ISS] [-c CONF_DIR]\n"
        "Print a token signed with a key of the configuration (docs/security.md).\n"
        "  --sub ID         user id (the sub claim), required\n"
        "  --name NAME      display name (default: the user id)\n"
        "  --rooms LIST     room grants, pattern:rights items separated by commas, e.g. 'team-*:rw,news:r'\n"
        "  --ttl DURATION   lifetime, e.g. 90s, 30m, 1h (default: auth.token_ttl)\n"
        "  --kid KID        sign with auth.keys.KID (default: the default key: auth.default_kid or\n"
        "                   auth.jwt_secret); RS/ES keys need their private_key\n"
        "  --aud AUD        aud claim (default: auth.audience, if set)\n"
        "  --iss ISS        iss claim (default: auth.issuer, if set)\n"
        "  -c, --conf DIR   configuration directory (default: conf.d)\n",
        f);
}

int token_cli_main(int argc, char **argv) {
  static const struct option longopts[] = {
      {"sub", required_argument, NULL, 's'},   {"name", required_argument, NULL, 'n'},
      {"rooms", required_argument, NULL, 'r'}, {"ttl", required_argument, NULL, 't'},
      {"kid", required_argument, NULL, 'k'},   {"aud", required_argument, NULL, 'a'},
      {"iss", required_argument, NULL, 'i'},   {"conf", required_argument, NULL, 'c'},
      {"help", no_argument, NULL, 'h'},        {NULL, 0, NULL, 0},
  };
  const char *sub = NULL, *name = NULL, *rooms = NULL, *ttl = NULL, *kid = NULL, *aud = NULL, *iss = NULL;
  const char *conf = "conf.d";
  int opt;
  optind = 1;
  while ((opt = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
    switch (opt) {
    case 's':
      sub = optarg;
      break;
    case 'n':
      name = optarg;
      break;
    case 'r':
      rooms = optarg;
      break;
    case 't':
      ttl = optarg;
      break;
    case 'k':
      kid = optarg;
      break;
    case 'a':
      aud = optarg;
      break;
    case 'i':
      iss = optarg;
      break;
    case 'c':
      conf = optarg;
      break;
    case 'h':
      usage(stdout);
      return 0;
    default:
      usage(stderr);
      return 2;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "parleyd token: unexpected argument '%s'\n", argv[optind]);
    usage(stderr);
    return 2;
  }
  if (!sub || !*sub) {
    fputs("parleyd token: --sub is required\n", stderr);
    usage(stderr);
    return 2;
  }

  struct config cfg;
  struct jwt_keyset *ks = NULL;
  char *token = NULL;
  char err[1024];
  int status = 1;
  if (config_load_dir(&cfg, conf, err, sizeof err)) {
    fprintf(stderr, "parleyd token: %s\n", err);
    goto out;
  }
  /* --ttl goes through the config parser: the same syntax and range as auth.token_ttl */
  if (ttl && config_set(&cfg, "auth.token_ttl", ttl, "--ttl", err, sizeof err)) {
    fprintf(stderr, "parleyd token: %s\n", err);
    goto out;
  }
  if (jwt_keyset_new(&cfg, &ks, err, sizeof err)) {
    fprintf(stderr, "parleyd token: %s\n", err);
    goto out;
  }
  struct jwt_mint_req req = {
      .kid = kid,
      .sub = sub,
      .name = name,
      .rooms = rooms,
      .aud = aud ? aud : (*cfg.auth_audience ? cfg.auth_audience : NULL),
      .iss = iss ? iss : (*cfg.auth_issuer ? cfg.auth_issuer : NULL),
      .now = (int64_t)time(NULL),
      .ttl = cfg.auth_token_ttl / 1000,
  };
  if (jwt_mint(ks, &req, &token, err, sizeof err)) {
    fprintf(stderr, "parleyd token: %s\n", err);
    goto out;
  }
  printf("%s\n", token);
  status = 0;
out:
  free(token);
  jwt_keyset_free(ks);
  config_free(&cfg);
  return status;
}
