/* server: lifecycle of one parleyd — config, loop, core, front end; reload and graceful stop. */
#include <uv.h>

#include "parley/parley.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"
#include "config.h"
#include "core/core.h"
#include "hooks/hooks.h"
#include "net/net.h"
#include "store/store.h"
#include "util/log.h"
#include "version.h"

#define TICK_MS      100
#define DRAIN_MAX_MS 3000

struct parley_server {
  struct config cfg;
  char *conf_dir; /* owned; NULL: defaults only */
  uv_loop_t loop;
  struct auth *auth;   /* token keys; replaced on reload */
  struct store *store; /* NULL until running */
  struct core *core;
  struct hooks *hooks; /* scripts and plugins; NULL until running */
  struct net *net;
  uv_timer_t tick;
  uv_signal_t sig_term, sig_int, sig_hup;
  bool signals;
  bool stopping;
  uint64_t stop_started;
};

const char *parley_version(void) { return PARLEY_VERSION_STRING; }

const char *parley_strerror(int code) {
  if (code == 0) return "success";
  if (code == -EINVAL) return "invalid argument or configuration";
  if (code == -ENOMEM) return "out of memory";
  if (code == -EADDRINUSE) return "cannot listen on the configured address";
  if (code == -EIO) return "cannot open the message store";
  return strerror(-code);
}

int parley_server_new(parley_server **out, const char *conf_dir, char *err, size_t errlen) {
  *out = NULL;
  parley_server *s = calloc(1, sizeof *s);
  if (!s) return -ENOMEM;
  int rc = conf_dir ? config_load_dir(&s->cfg, conf_dir, err, errlen) : config_defaults(&s->cfg);
  if (rc) {
    config_free(&s->cfg);
    free(s);
    return rc < 0 ? rc : -EINVAL;
  }
  if (conf_dir && !(s->conf_dir = strdup(conf_dir))) {
    config_free(&s->cfg);
    free(s);
    return -ENOMEM;
  }
  log_set_level((int)s->cfg.log_level);
  if ((rc = auth_new(&s->cfg, &s->auth, err, errlen))) {
    config_free(&s->cfg);
    free(s->conf_dir);
    free(s);
    return rc < 0 ? rc : -EINVAL;
  }
  *out = s;
  return 0;
}

static void close_handle(uv_handle_t *h) {
  if (h->loop && !uv_is_closing(h)) uv_close(h, NULL);
}

static void finish_stop(parley_server *s) {
  net_destroy_in_loop(s->net);
  core_set_hooks(s->core, NULL);
  hooks_free(s->hooks); /* inside the loop: its timers close with it */
  s->hooks = NULL;
  store_close(s->store); /* commits what is queued; its completions still find the core */
  close_handle((uv_handle_t *)&s->tick);
  if (s->signals) {
    close_handle((uv_handle_t *)&s->sig_term);
    close_handle((uv_handle_t *)&s->sig_int);
    close_handle((uv_handle_t *)&s->sig_hup);
  }
}

static void on_tick(uv_timer_t *t) {
  parley_server *s = t->data;
  uint64_t now = core_mono_ms();
  core_tick(s->core, now);
  if (s->stopping && (core_conn_count(s->core) == 0 || now - s->stop_started > DRAIN_MAX_MS)) {
    log_info("stopped (%zu connections left)", core_conn_count(s->core));
    finish_stop(s);
  }
}

void parley_server_stop(parley_server *s) {
  if (s->stopping || !s->net) return;
  s->stopping = true;
  s->stop_started = core_mono_ms();
  log_info("stopping: closing %zu connections with 1001", core_conn_count(s->core));
  net_stop_accepting(s->net);
  core_close_all(s->core, CLOSE_GOING_AWAY, "server shutting down");
}

int parley_server_reload(parley_server *s) {
  if (!s->conf_dir) return 0;
  struct config fresh;
  char err[512];
  int rc = config_load_dir(&fresh, s->conf_dir, err, sizeof err);
  if (rc) {
    log_error("reload failed, keeping the running configuration: %s", err);
    config_free(&fresh);
    return rc < 0 ? rc : -EINVAL;
  }
  struct auth *check = NULL;
  if ((rc = auth_new(&fresh, &check, err, sizeof err))) {
    log_error("reload failed, keeping the running configuration: %s", err);
    config_free(&fresh);
    return rc < 0 ? rc : -EINVAL;
  }
  auth_free(check);
  config_apply_reload(&s->cfg, &fresh);
  config_free(&fresh);
  struct auth *a = NULL;
  if (auth_new(&s->cfg, &a, err, sizeof err) == 0) { /* from the applied values */
    if (s->core) core_set_auth(s->core, a);
    if (s->net) net_set_auth(s->net, a);
    auth_free(s->auth);
    s->auth = a;
  } else {
    log_error("reload: keeping the previous token keys: %s", err);
  }
  log_set_level((int)s->cfg.log_level);
  if (s->hooks) {
    int failed = hooks_reload(s->hooks, &s->cfg);
    if (failed > 0)
      log_warn("reload: %d scripts/plugins failed to load; their previous versions keep running", failed);
  }
  log_info("configuration reloaded from %s", s->conf_dir);
  return 0;
}

static int net_reload_cb(void *ud) { return parley_server_reload(ud); }

static void on_signal(uv_signal_t *h, int signum) {
  parley_server *s = h->data;
  if (signum == SIGHUP)
    parley_server_reload(s);
  else
    parley_server_stop(s);
}

static void start_signal(parley_server *s, uv_signal_t *h, int signum) {
  uv_signal_init(&s->loop, h);
  h->data = s;
  uv_signal_start(h, on_signal, signum);
}

static void walk_close(uv_handle_t *h, void *arg) {
  if (!uv_is_closing(h)) {
    log_warn("closing a handle left open at shutdown (type %s)", uv_handle_type_name(h->type));
    uv_close(h, NULL);
  }
}

int parley_server_run(parley_server *s, int handle_signals) {
  int rc = uv_loop_init(&s->loop);
  if (rc) return rc;
  signal(SIGPIPE, SIG_IGN);
  char err[512];
  s->store = store_open(&s->loop, &s->cfg, err, sizeof err);
  if (!s->store) {
    log_error("cannot open the message store: %s", err);
    uv_run(&s->loop, UV_RUN_NOWAIT);
    uv_loop_close(&s->loop);
    return -EIO;
  }
  s->core = core_new(&s->cfg, s->store);
  if (s->core) core_set_auth(s->core, s->auth);
  if (!s->core) {
    store_close(s->store);
    uv_run(&s->loop, UV_RUN_NOWAIT);
    store_free(s->store);
    uv_loop_close(&s->loop);
    return -ENOMEM;
  }
  s->net = net_new(&s->loop, s->core, &s->cfg, err, sizeof err);
  if (!s->net) {
    log_error("%s", err);
    store_close(s->store);
    core_free(s->core);
    s->core = NULL;
    uv_run(&s->loop, UV_RUN_NOWAIT);
    store_free(s->store);
    s->store = NULL;
    uv_loop_close(&s->loop);
    return -EADDRINUSE;
  }
  net_set_auth(s->net, s->auth);
  net_set_reload(s->net, net_reload_cb, s);
  struct hooks_host host = {
      .ud = s->core, .loop = &s->loop, .publish = core_host_publish, .kick = core_host_kick};
  if (hooks_new(&s->hooks, &host, &s->cfg) == 0)
    core_set_hooks(s->core, s->hooks);
  else
    log_error("hooks: out of memory; running without scripts and plugins");
  uv_timer_init(&s->loop, &s->tick);
  s->tick.data = s;
  uv_timer_start(&s->tick, on_tick, TICK_MS, TICK_MS);
  s->signals = handle_signals != 0;
  if (s->signals) {
    start_signal(s, &s->sig_term, SIGTERM);
    start_signal(s, &s->sig_int, SIGINT);
    start_signal(s, &s->sig_hup, SIGHUP);
  }
  log_info("parley %s listening on %s:%lld (ws path /ws)", PARLEY_VERSION_STRING, s->cfg.server_host,
           (long long)s->cfg.server_port);
  uv_run(&s->loop, UV_RUN_DEFAULT);

  net_free(s->net);
  s->net = NULL;
  core_free(s->core);
  s->core = NULL;
  store_free(s->store);
  s->store = NULL;
  if (uv_loop_close(&s->loop) == UV_EBUSY) {
    uv_walk(&s->loop, walk_close, NULL);
    uv_run(&s->loop, UV_RUN_DEFAULT);
    uv_loop_close(&s->loop);
  }
  s->stopping = false;
  return 0;
}

void parley_server_free(parley_server *s) {
  if (!s) return;
  auth_free(s->auth);
  config_free(&s->cfg);
  free(s->conf_dir);
  free(s);
}
