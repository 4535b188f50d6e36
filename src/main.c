/* parleyd: the Parley server command line — a thin user of include/parley/parley.h. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"
#include "auth/token_cli.h"
#include "config.h"
#include "hooks/hooks.h"
#include "parley/parley.h"

static void usage(FILE *f) {
  fprintf(f, "usage: parleyd [-c CONF_DIR] [--check] [--print-config]\n"
             "       parleyd token --sub ID [--name N] [--rooms 'pat:rw,...'] [--ttl 1h] [-c CONF_DIR]\n"
             "       parleyd --config-doc | --version | --help\n"
             "\n"
             "  -c, --conf DIR    configuration directory (default: conf.d); *.conf files, sorted\n"
             "      --check       validate the configuration and exit (0: valid, 1: errors on stderr)\n"
             "      --print-config  print the effective configuration and exit\n"
             "      --config-doc  print the configuration reference (docs/configuration.md)\n"
             "  -v, --version     print the version\n"
             "\n"
             "Signals: SIGTERM/SIGINT drain and stop; SIGHUP reloads the configuration.\n");
}

int main(int argc, char **argv) {
  const char *conf = "conf.d";
  int check = 0, print = 0;
  static const struct option longopts[] = {
      {"conf", required_argument, NULL, 'c'},
      {"check", no_argument, NULL, 'k'},
      {"print-config", no_argument, NULL, 'p'},
      {"config-doc", no_argument, NULL, 'd'},
      {"version", no_argument, NULL, 'v'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0},
  };
  if (argc > 1 && !strcmp(argv[1], "token")) return token_cli_main(argc - 1, argv + 1);
  int opt;
  while ((opt = getopt_long(argc, argv, "c:vh", longopts, NULL)) != -1) {
    switch (opt) {
    case 'c':
      conf = optarg;
      break;
    case 'k':
      check = 1;
      break;
    case 'p':
      print = 1;
      break;
    case 'd':
      config_write_doc(stdout);
      return 0;
    case 'v':
      printf("parleyd %s\n", parley_version());
      return 0;
    case 'h':
      usage(stdout);
      return 0;
    default:
      usage(stderr);
      return 2;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "parleyd: unexpected argument '%s'\n", argv[optind]);
    usage(stderr);
    return 2;
  }

  if (check || print) {
    struct config cfg;
    char err[512];
    int rc = config_load_dir(&cfg, conf, err, sizeof err);
    struct auth *auth = NULL;
    if (!rc) rc = auth_new(&cfg, &auth, err, sizeof err); /* key files, guest rooms */
    /* every script and plugin loads, options are declared, room globs can match */
    if (!rc && check && hooks_check(&cfg, err, sizeof err)) rc = -EINVAL;
    auth_free(auth);
    if (rc) {
      fprintf(stderr, "%s\n", err);
      config_free(&cfg);
      return 1;
    }
    if (print)
      config_dump(&cfg, stdout);
    else
      fprintf(stderr, "%s: configuration ok\n", conf);
    config_free(&cfg);
    return 0;
  }

  parley_server *s = NULL;
  char err[512];
  int rc = parley_server_new(&s, conf, err, sizeof err);
  if (rc) {
    fprintf(stderr, "parleyd: %s\n", err);
    return 1;
  }
  signal(SIGPIPE, SIG_IGN); /* a write to a closed peer or pipe must not end parleyd (parley.h, "Signals") */
  rc = parley_server_run(s, 1);
  if (rc) fprintf(stderr, "parleyd: %s\n", parley_strerror(rc));
  parley_server_free(s);
  return rc ? 1 : 0;
}
