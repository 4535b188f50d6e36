/* embed-hooks: moderation and routing written as C callbacks in the embedding program — no plugin file,
 * no script. Parley runs on the application's own uv loop; Ctrl-C stops it through parley_server_stop.
 *
 *   on_join:    rooms "staff-*" are for users whose id starts with "staff" (guests are refused)
 *   on_message: a body containing "spam" is rejected; "darn" is masked (the body is rewritten)
 *   routing:    every accepted message in "support" is copied into "support-audit" with its author
 *
 * Usage: embed-hooks [PORT [DATA_DIR]]   (defaults 8080, ./data) */
#define _GNU_SOURCE /* memmem */
#include <uv.h>

#include <parley/parley.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

struct app {
  parley_server *server;
  uv_signal_t sigint, sigterm;
  unsigned rejected, rewritten, routed;
};

static int on_join(void *ud, const struct parley_event *ev, struct parley_result *res) {
  if (!strncmp(ev->room, "staff-", 6) && strncmp(ev->user_id, "staff", 5))
    return parley_result_reject(res, "staff rooms are for staff");
  return PARLEY_PASS; /* no opinion: later handlers (and the room's access rules) decide */
}

/* Moderation first (priority 100), routing after it (priority 0): a rejected message is never routed. */
static int moderate(void *ud, const struct parley_event *ev, struct parley_result *res) {
  struct app *app = ud;
  if (memmem(ev->body, ev->body_len, "spam", 4)) {
    app->rejected++;
    return parley_result_reject(res, "no spam here");
  }
  const char *bad = memmem(ev->body, ev->body_len, "darn", 4);
  if (bad) {
    char body[4096];
    if (ev->body_len >= sizeof body) return parley_result_reject(res, "message too long");
    memcpy(body, ev->body, ev->body_len);
    memcpy(body + (bad - ev->body), "****", 4); /* stays valid JSON: letters for stars */
    app->rewritten++;
    return parley_result_rewrite_body(res, body, ev->body_len);
  }
  return PARLEY_PASS;
}

static int route(void *ud, const struct parley_event *ev, struct parley_result *res) {
  struct app *app = ud;
  if (strcmp(ev->room, "support") != 0) return PARLEY_PASS;
  char copy[4400];
  int n = snprintf(copy, sizeof copy, "{\"from\":\"%s\",\"body\":%.*s}", ev->user_id, (int)ev->body_len,
                   ev->body);
  if (n > 0 && (size_t)n < sizeof copy &&
      parley_server_publish(app->server, "support-audit", copy, (size_t)n) == 0)
    app->routed++;    /* queued: published right after this message is handled */
  return PARLEY_PASS; /* routing does not decide anything */
}

static void on_stopped(parley_server *s, void *ud) {
  struct app *app = ud;
  printf("stopped: %u rejected, %u rewritten, %u routed\n", app->rejected, app->rewritten, app->routed);
  uv_close((uv_handle_t *)&app->sigint, NULL); /* the loop ends once our own handles are closed too */
  uv_close((uv_handle_t *)&app->sigterm, NULL);
}

static void on_signal(uv_signal_t *h, int signum) {
  struct app *app = h->data;
  parley_server_stop(app->server, on_stopped, app); /* -EALREADY on a second Ctrl-C: ignored */
}

int main(int argc, char **argv) {
  const char *port = argc > 1 ? argv[1] : "8080";
  struct app app = {0};
  parley_config *cfg;
  char err[512];
  if (parley_config_new(&cfg) || parley_config_set(cfg, "server.port", port) ||
      parley_config_set(cfg, "server.data_dir", argc > 2 ? argv[2] : "data") ||
      parley_config_set(cfg, "auth.allow_anonymous", "true")) {
    fprintf(stderr, "config: %s\n", parley_config_error(cfg));
    return 1;
  }
  int rc = parley_server_new_with_config(&app.server, cfg, err, sizeof err);
  parley_config_free(cfg);
  if (rc) {
    fprintf(stderr, "parley: %s\n", err);
    return 1;
  }
  parley_server_hook(app.server, PARLEY_HOOK_JOIN, on_join, &app, 0);
  parley_server_hook(app.server, PARLEY_HOOK_MESSAGE, moderate, &app, 100);
  parley_server_hook(app.server, PARLEY_HOOK_MESSAGE, route, &app, 0);

  uv_loop_t *loop = uv_default_loop();
  signal(SIGPIPE, SIG_IGN); /* the program owns signal dispositions (parley.h, "Signals") */
  if ((rc = parley_server_start(app.server, loop))) {
    fprintf(stderr, "parley: %s\n", parley_strerror(rc));
    parley_server_free(app.server);
    return 1;
  }
  uv_signal_init(loop, &app.sigint);
  uv_signal_init(loop, &app.sigterm);
  app.sigint.data = app.sigterm.data = &app;
  uv_signal_start(&app.sigint, on_signal, SIGINT);
  uv_signal_start(&app.sigterm, on_signal, SIGTERM);
  printf("embed-hooks: ws://127.0.0.1:%s/ws — try rooms support, support-audit, staff-x\n", port);
  fflush(stdout);

  uv_run(loop, UV_RUN_DEFAULT); /* returns after on_stopped: nothing is left on the loop */
  rc = uv_loop_close(loop);
  parley_server_free(app.server);
  return rc ? 1 : 0;
}
