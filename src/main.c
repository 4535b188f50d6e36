/* parleyd: the Parley server command line — a thin user of include/parley/parley.h. */
#include <ctype.h>
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
  fprintf(f, "usage: parleyd [-c CONF_DIR] [--set KEY=VALUE]... [-p PORT] [--check] [--print-config]\n"
             "       parleyd token --sub ID [--name N] [--rooms 'pat:rw,...'] [--ttl 1h] [-c CONF_DIR]\n"
             "       parleyd --config-doc | --version | --help\n"
             "\n"
             "  -c, --conf DIR    configuration directory (default: conf.d); *.conf files, sorted\n"
             "      --set KEY=VALUE  set one key after the conf files (repeatable, later wins; the value as\n"
             "                    in a conf file, without quotes), e.g. --set log.level=debug\n"
             "  -p, --port PORT   the same as --set server.port=PORT\n"
             "      --check       validate the configuration and exit (0: valid, 1: errors on stderr)\n"
             "      --print-config  print the effective configuration and exit\n"
             "      --config-doc  print the configuration reference (docs/configuration.md)\n"
             "  -v, --version     print the version\n"
             "\n"
             "Signals: SIGTERM/SIGINT drain and stop; SIGHUP reloads the configuration (the --set and -p\n"
             "values are applied again on top of the re-read files).\n");
}

/* One command-line override. */
struct cli_set {
  char *opt;         /* owned: the option as written, e.g. "--set server.port=80", then a copy of its
                      * argument that key and value point into; names the option in errors */
  const char *key;   /* into opt, or a static name ("server.port" for -p) */
  const char *value; /* into opt */
};

static char *trim(char *s, char *end) {
  while (s < end && isspace((unsigned char)*s)) s++;
  while (end > s && isspace((unsigned char)end[-1])) end--;
  *end = '\0';
  return s;
}

/* Append an override: "--set" with "KEY=VALUE", or "-p" with a port (key given). Returns 0, or prints a
 * usage error and returns -1. */
static int add_set(struct cli_set **sets, size_t *n, const char *flag, const char *arg, const char *key) {
  size_t len = strlen(flag) + 1 + strlen(arg) + 1;
  char *opt = malloc(len + strlen(arg) + 1); /* "flag arg" + a copy of arg to split */
  struct cli_set *v = opt ? realloc(*sets, (*n + 1) * sizeof *v) : NULL;
  if (!v) {
    free(opt);
    fprintf(stderr, "parleyd: out of memory\n");
    return -1;
  }
  *sets = v;
  snprintf(opt, len, "%s %s", flag, arg);
  char *copy = strcpy(opt + len, arg);
  if (key) {
    v[*n] = (struct cli_set){opt, key, trim(copy, copy + strlen(copy))};
  } else {
    char *eq = strchr(copy, '=');
    char *k = eq ? trim(copy, eq) : NULL;
    if (!k || !*k) {
      fprintf(stderr, "parleyd: %s: expected KEY=VALUE (e.g. --set server.port=9000)\n", opt);
      free(opt);
      return -1;
    }
    v[*n] = (struct cli_set){opt, k, trim(eq + 1, eq + 1 + strlen(eq + 1))};
  }
  (*n)++;
  return 0;
}

static void free_sets(struct cli_set *sets, size_t n) {
  for (size_t i = 0; i < n; i++) free(sets[i].opt);
  free(sets);
}

/* The effective configuration: conf's files, then the overrides in order. Errors name the file and line,
 * or the option ("--set server.port=x: server.port: ..."). cfg is always left valid for config_free. */
static int load(struct config *cfg, const char *conf, const struct cli_set *sets, size_t nsets, char *err,
                size_t errlen) {
  int rc = config_load_dir(cfg, conf, err, errlen);
  for (size_t i = 0; !rc && i < nsets; i++)
    rc = config_set(cfg, sets[i].key, sets[i].value, sets[i].opt, err, errlen);
  return rc;
}

/* Run the server on conf + the overrides (kept by the server: a SIGHUP reload applies them again). */
static int run(const char *conf, const struct cli_set *sets, size_t nsets) {
  parley_config *pc = NULL;
  parley_server *s = NULL;
  char err[512] = "";
  int rc = parley_config_new(&pc);
  if (!rc && (rc = parley_config_load_dir(pc, conf)))
    snprintf(err, sizeof err, "%s", parley_config_error(pc));
  for (size_t i = 0; !rc && i < nsets; i++)
    if ((rc = parley_config_set(pc, sets[i].key, sets[i].value)))
      snprintf(err, sizeof err, "%s: %s", sets[i].opt, parley_config_error(pc));
  if (!rc) rc = parley_server_new_with_config(&s, pc, err, sizeof err);
  parley_config_free(pc);
  if (rc) {
    fprintf(stderr, "parleyd: %s\n", err[0] ? err : parley_strerror(rc));
    return 1;
  }
  signal(SIGPIPE, SIG_IGN); /* a write to a closed peer or pipe must not end parleyd (parley.h, "Signals") */
  rc = parley_server_run(s, 1);
  if (rc) fprintf(stderr, "parleyd: %s\n", parley_strerror(rc));
  parley_server_free(s);
  return rc ? 1 : 0;
}

enum { OPT_CHECK = 256, OPT_PRINT, OPT_DOC, OPT_SET };

int main(int argc, char **argv) {
  const char *conf = "conf.d";
  int check = 0, print = 0;
  static const struct option longopts[] = {
      {"conf", required_argument, NULL, 'c'},
      {"set", required_argument, NULL, OPT_SET},
      {"port", required_argument, NULL, 'p'},
      {"check", no_argument, NULL, OPT_CHECK},
      {"print-config", no_argument, NULL, OPT_PRINT},
      {"config-doc", no_argument, NULL, OPT_DOC},
      {"version", no_argument, NULL, 'v'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0},
  };
  if (argc > 1 && !strcmp(argv[1], "token")) return token_cli_main(argc - 1, argv + 1);
  struct cli_set *sets = NULL; /* owned: free_sets */
  size_t nsets = 0;
  int opt, status = -1, li = -1; /* li: index of the long option matched, -1 for a short one */
  while (status < 0 && (opt = getopt_long(argc, argv, "c:p:vh", longopts, &li)) != -1) {
    switch (opt) {
    case 'c':
      conf = optarg;
      break;
    case OPT_SET:
      if (add_set(&sets, &nsets, "--set", optarg, NULL)) status = 2;
      break;
    case 'p':
      if (add_set(&sets, &nsets, li >= 0 ? "--port" : "-p", optarg, "server.port")) status = 2;
      break;
    case OPT_CHECK:
      check = 1;
      break;
    case OPT_PRINT:
      print = 1;
      break;
    case OPT_DOC:
      config_write_doc(stdout);
      status = 0;
      break;
    case 'v':
      printf("parleyd %s\n", parley_version());
      status = 0;
      break;
    case 'h':
      usage(stdout);
      status = 0;
      break;
    default:
      usage(stderr);
      status = 2;
    }
    li = -1;
  }
  if (status < 0 && optind < argc) {
    fprintf(stderr, "parleyd: unexpected argument '%s'\n", argv[optind]);
    usage(stderr);
    status = 2;
  }
  if (status >= 0) {
    free_sets(sets, nsets);
    return status;
  }

  /* Validate first, also before a run: errors name the file and line or the option. */
  struct config cfg;
  char err[4096]; /* --check lists every problem of the scripts and plugins */
  int rc = load(&cfg, conf, sets, nsets, err, sizeof err);
  if (!rc && (check || print)) {
    struct auth *auth = NULL;
    rc = auth_new(&cfg, &auth, err, sizeof err); /* key files, guest rooms */
    auth_free(auth);
    /* every script and plugin loads, options are declared, room globs can match */
    if (!rc && check && hooks_check(&cfg, err, sizeof err)) rc = -EINVAL;
  }
  if (rc) {
    fprintf(stderr, "%s%s\n", check || print ? "" : "parleyd: ", err);
    status = 1;
  } else if (print) {
    config_dump(&cfg, stdout);
    status = 0;
  } else if (check) {
    fprintf(stderr, "%s: configuration ok\n", conf);
    status = 0;
  }
  config_free(&cfg);
  if (status < 0) status = run(conf, sets, nsets);
  free_sets(sets, nsets);
  return status;
}
