/* embed-publisher: an application timer on the same uv loop as Parley publishes ticks into a room — a
 * sensor, a game clock or a job queue would do the same. Each tick also reads presence; the last one
 * (COUNT, 0 = forever) stops the server and prints the metrics.
 *
 * Usage: embed-publisher [PORT [INTERVAL_MS [COUNT [DATA_DIR]]]]   (defaults 8080, 1000, 0, ./data)
 * Clients: join room "ticks" and receive {"tick": n, "present": k} messages from user "parley". */
#include <uv.h>

#include <parley/parley.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

struct app {
  parley_server *server;
  uv_timer_t timer;
  uv_signal_t sigint;
  long tick, count;
};

static void on_stopped(parley_server *s, void *ud) {
  struct app *app = ud;
  printf("stopped after %ld ticks\n", app->tick);
  uv_close((uv_handle_t *)&app->sigint, NULL);
}

static void stop(struct app *app) {
  struct parley_metrics m;
  if (parley_server_metrics(app->server, &m, sizeof m) == 0)
    printf("metrics: %llu messages, %llu deliveries, %llu connections now\n",
           (unsigned long long)m.messages_total, (unsigned long long)m.deliveries_total,
           (unsigned long long)m.connections);
  uv_timer_stop(&app->timer);
  uv_close((uv_handle_t *)&app->timer, NULL);
  parley_server_stop(app->server, on_stopped, app);
}

static void count_one(void *ud, const struct parley_presence *p) { ++*(int *)ud; }

static void on_tick(uv_timer_t *t) {
  struct app *app = t->data;
  int present = 0;
  parley_server_presence(app->server, "ticks", count_one, &present);
  char body[64];
  int n = snprintf(body, sizeof body, "{\"tick\":%ld,\"present\":%d}", ++app->tick, present);
  int rc = parley_server_publish(app->server, "ticks", body, (size_t)n);
  printf("tick %ld -> ticks (%d present)%s%s\n", app->tick, present, rc ? ": " : "",
         rc ? parley_strerror(rc) : "");
  fflush(stdout);
  if (app->count && app->tick >= app->count) stop(app);
}

static void on_signal(uv_signal_t *h, int signum) {
  struct app *app = h->data;
  if (!uv_is_closing((uv_handle_t *)&app->timer)) stop(app);
}

int main(int argc, char **argv) {
  const char *port = argc > 1 ? argv[1] : "8080";
  long interval = argc > 2 ? atol(argv[2]) : 1000;
  struct app app = {.count = argc > 3 ? atol(argv[3]) : 0};
  parley_config *cfg;
  char err[512];
  if (parley_config_new(&cfg) || parley_config_set(cfg, "server.port", port) ||
      parley_config_set(cfg, "server.data_dir", argc > 4 ? argv[4] : "data") ||
      parley_config_set(cfg, "auth.allow_anonymous", "true") ||
      parley_config_set(cfg, "rooms.ticks.history", "false")) { /* ticks are ephemeral: not stored */
    fprintf(stderr, "config: %s\n", parley_config_error(cfg));
    return 1;
  }
  int rc = parley_server_new_with_config(&app.server, cfg, err, sizeof err);
  parley_config_free(cfg);
  if (rc) {
    fprintf(stderr, "parley: %s\n", err);
    return 1;
  }
  uv_loop_t loop;
  uv_loop_init(&loop);
  signal(SIGPIPE, SIG_IGN); /* the program owns signal dispositions (parley.h, "Signals") */
  if ((rc = parley_server_start(app.server, &loop))) {
    fprintf(stderr, "parley: %s\n", parley_strerror(rc));
    uv_run(&loop, UV_RUN_NOWAIT); /* let a failed start's handles close */
    uv_loop_close(&loop);
    parley_server_free(app.server);
    return 1;
  }
  uv_timer_init(&loop, &app.timer);
  app.timer.data = &app;
  uv_timer_start(&app.timer, on_tick, (uint64_t)interval, (uint64_t)interval);
  uv_signal_init(&loop, &app.sigint);
  app.sigint.data = &app;
  uv_signal_start(&app.sigint, on_signal, SIGINT);
  printf("embed-publisher: ws://127.0.0.1:%s/ws, room \"ticks\" every %ld ms\n", port, interval);
  fflush(stdout);

  uv_run(&loop, UV_RUN_DEFAULT);
  rc = uv_loop_close(&loop); /* 0: Parley left nothing behind */
  printf("loop closed: %s\n", rc ? uv_strerror(rc) : "ok");
  parley_server_free(app.server);
  return rc ? 1 : 0;
}
