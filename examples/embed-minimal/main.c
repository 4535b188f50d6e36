/* embed-minimal: a complete chat server in a few lines — Parley configured from code, on its own loop.
 * Usage: embed-minimal [PORT [DATA_DIR]]   (defaults 8080, ./data); Ctrl-C drains and stops. */
#include <parley/parley.h>
#include <signal.h>
#include <stdio.h>

int main(int argc, char **argv) {
  parley_config *cfg;
  parley_server *s;
  char err[512];
  if (parley_config_new(&cfg)) return 1;
  if (parley_config_set(cfg, "server.port", argc > 1 ? argv[1] : "8080") ||
      parley_config_set(cfg, "server.data_dir", argc > 2 ? argv[2] : "data") ||
      parley_config_set(cfg, "auth.allow_anonymous", "true")) { /* guests may chat */
    fprintf(stderr, "config: %s\n", parley_config_error(cfg));
    return 1;
  }
  int rc = parley_server_new_with_config(&s, cfg, err, sizeof err);
  parley_config_free(cfg); /* the server keeps its own copy */
  if (rc) {
    fprintf(stderr, "parley: %s\n", err);
    return 1;
  }
  printf("parley %s: chat on ws://127.0.0.1:%s/ws (Ctrl-C to stop)\n", parley_version(),
         argc > 1 ? argv[1] : "8080");
  fflush(stdout);
  signal(SIGPIPE, SIG_IGN);     /* the program owns signal dispositions (parley.h, "Signals") */
  rc = parley_server_run(s, 1); /* own loop; SIGINT/SIGTERM drain, SIGHUP reloads */
  if (rc) fprintf(stderr, "parley: %s\n", parley_strerror(rc));
  parley_server_free(s);
  return rc ? 1 : 0;
}
