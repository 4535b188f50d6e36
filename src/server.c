/* server: the lifecycle behind include/parley/parley.h — configuration (from conf.d or code), start on a
 * caller's loop or Parley's own, reload (SIGHUP), drain and stop. parleyd (main.c) is a user of it. The
 * acting and reading calls (publish, presence, history, ...) live in embed/embed.c.
 *
 * Stop, step by step (every step on the loop): parley_server_stop refuses new handshakes and closes the
 * clients with 1001; the tick waits for them (DRAIN_MAX_MS at most); finish_stop tears lws down (first
 * lws_context_destroy), unloads hooks, commits the store's queue and closes every handle of ours; an idle
 * handle then waits until no handle on the loop is still closing (lws's included), and its close callback
 * frees core, store and net and calls the user's cb. Freeing net calls lws_context_destroy a second time:
 * on a foreign loop the first call only starts closing lws's handles, and lws frees the rest of its
 * context (~330 KB) only in a second call made once those handles have closed. From then on nothing of
 * Parley's is on the loop. */
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
#include "proto/codec.h"
#include "proto/wire.h"
#include "server.h"
#include "store/store.h"
#include "util/log.h"
#include "version.h"

#define TICK_MS        100
#define DRAIN_MAX_MS   3000
#define FIN_MAX_ROUNDS 10000 /* loop iterations to wait for closing handles before giving up */
#define SET_WHERE      "parley_config_set"

/* ---- configuration from code ---------------------------------------------------------------------- */

struct config_kv {
  char *key, *value;
};

struct parley_config {
  char *conf_dir;         /* owned; NULL: defaults */
  struct config_kv *sets; /* owned, in order */
  size_t nsets;
  struct config cfg; /* defaults + dir + sets: what a server made now would run with */
  char err[512];
};

/* Build out from src's recipe. out is always left valid for config_free. */
static int config_build(const char *conf_dir, const struct config_kv *sets, size_t nsets, struct config *out,
                        char *err, size_t errlen) {
  int rc = conf_dir ? config_load_dir(out, conf_dir, err, errlen) : config_defaults(out);
  for (size_t i = 0; !rc && i < nsets; i++)
    rc = config_set(out, sets[i].key, sets[i].value, SET_WHERE, err, errlen);
  if (rc > 0) rc = -EINVAL;
  return rc;
}

int parley_config_new(parley_config **out) {
  if (!out) return -EINVAL;
  *out = NULL;
  parley_config *c = calloc(1, sizeof *c);
  if (!c) return -ENOMEM;
  if (config_defaults(&c->cfg)) {
    config_free(&c->cfg);
    free(c);
    return -ENOMEM;
  }
  *out = c;
  return 0;
}

int parley_config_load_dir(parley_config *c, const char *dir) {
  if (!c) return -EINVAL;
  c->err[0] = 0;
  if (!dir) {
    snprintf(c->err, sizeof c->err, "no directory given");
    return -EINVAL;
  }
  char *d = strdup(dir);
  if (!d) return -ENOMEM;
  struct config fresh;
  int rc = config_build(d, c->sets, c->nsets, &fresh, c->err, sizeof c->err);
  if (rc) {
    config_free(&fresh);
    free(d);
    return rc;
  }
  config_free(&c->cfg);
  c->cfg = fresh;
  free(c->conf_dir);
  c->conf_dir = d;
  return 0;
}

int parley_config_set(parley_config *c, const char *key, const char *value) {
  if (!c) return -EINVAL;
  c->err[0] = 0;
  if (!key || !value) {
    snprintf(c->err, sizeof c->err, "%s: key and value are required", SET_WHERE);
    return -EINVAL;
  }
  int rc = config_set(&c->cfg, key, value, SET_WHERE, c->err, sizeof c->err);
  if (rc) return rc > 0 ? -EINVAL : rc;
  struct config_kv *v = realloc(c->sets, (c->nsets + 1) * sizeof *v);
  if (!v) return -ENOMEM;
  c->sets = v;
  if (!(v[c->nsets].key = strdup(key)) || !(v[c->nsets].value = strdup(value))) {
    free(v[c->nsets].key);
    return -ENOMEM;
  }
  c->nsets++;
  return 0;
}

const char *parley_config_error(const parley_config *c) { return c ? c->err : "no configuration"; }

static void kv_free(struct config_kv *sets, size_t n) {
  for (size_t i = 0; i < n; i++) {
    free(sets[i].key);
    free(sets[i].value);
  }
  free(sets);
}

void parley_config_free(parley_config *c) {
  if (!c) return;
  config_free(&c->cfg);
  kv_free(c->sets, c->nsets);
  free(c->conf_dir);
  free(c);
}

/* ---- the server ----------------------------------------------------------------------------------- */

enum server_state {
  SERVER_IDLE,     /* created, failed to start, or stopped: nothing on any loop */
  SERVER_RUNNING,  /* serving */
  SERVER_STOPPING, /* draining clients */
  SERVER_CLOSING,  /* handles closing; the stop cb follows */
};

struct embed_hook {
  int point;
  parley_hook_fn fn;
  void *ud;
  int priority;
};

struct parley_server {
  struct config cfg;      /* live configuration */
  char *conf_dir;         /* owned; NULL: none */
  struct config_kv *sets; /* owned: keys set in code, applied on top of conf_dir again on reload */
  size_t nsets;
  uv_loop_t own_loop; /* parley_server_run's */
  uv_loop_t *loop;    /* borrowed (or &own_loop) while not IDLE */
  struct auth *auth;  /* token keys; replaced on reload */
  struct store *store;
  struct core *core;
  struct hooks *hooks;
  struct net *net;
  uv_timer_t tick;
  uv_idle_t fin; /* waits for closing handles at the end of a stop */
  unsigned fin_rounds;
  uv_signal_t sig_term, sig_int, sig_hup;
  bool signals;
  enum server_state state;
  uint64_t stop_started;
  parley_stop_cb stop_cb;
  void *stop_ud;
  struct embed_hook *eh; /* parley_server_hook registrations, re-applied on every start */
  size_t neh;
  struct log_sink log; /* log.level and parley_server_set_log's callback; bound to the loop thread */
};

const char *parley_version(void) { return PARLEY_VERSION_STRING; }
int parley_abi_version(void) { return PARLEY_ABI_VERSION; }

const char *parley_strerror(int code) {
  switch (code) {
  case 0:
    return "success";
  case -EINVAL:
    return "invalid argument or configuration";
  case -ERANGE:
    return "configuration value out of range";
  case -ENOMEM:
    return "out of memory";
  case -EADDRINUSE:
    return "cannot listen on the configured address";
  case -EIO:
    return "message store error";
  case -EALREADY:
    return "already started or stopping";
  case -ENOTCONN:
    return "server not running";
  case -EBUSY:
    return "server busy (running, or inside a hook dispatch)";
  case -EMSGSIZE:
    return "message body over limits.max_body";
  case -EAGAIN:
    return "store queue full; retry later";
  case -ECANCELED:
    return "cancelled: the server stopped";
  case -ENOENT:
    return "no such file or directory";
  default:
    return code < 0 ? strerror(-code) : "unknown error";
  }
}

static int server_new(parley_server **out, const char *conf_dir, const struct config_kv *sets, size_t nsets,
                      char *err, size_t errlen) {
  char scratch[512];
  if (!err || !errlen) {
    err = scratch;
    errlen = sizeof scratch;
  }
  err[0] = 0;
  if (!out) {
    snprintf(err, errlen, "out is NULL");
    return -EINVAL;
  }
  *out = NULL;
  parley_server *s = calloc(1, sizeof *s);
  if (!s) return -ENOMEM;
  int rc = -ENOMEM;
  if (conf_dir && !(s->conf_dir = strdup(conf_dir))) goto fail;
  if (nsets && !(s->sets = calloc(nsets, sizeof *s->sets))) goto fail;
  for (; s->nsets < nsets; s->nsets++) {
    struct config_kv *d = &s->sets[s->nsets];
    if (!(d->key = strdup(sets[s->nsets].key)) || !(d->value = strdup(sets[s->nsets].value))) {
      free(d->key);
      goto fail;
    }
  }
  if ((rc = config_build(s->conf_dir, s->sets, s->nsets, &s->cfg, err, errlen))) goto fail;
  log_sink_init(&s->log, (int)s->cfg.log_level);
  if ((rc = auth_new(&s->cfg, &s->auth, err, errlen))) {
    rc = rc < 0 ? rc : -EINVAL;
    goto fail;
  }
  *out = s;
  return 0;
fail:
  if (rc == -ENOMEM && !err[0]) snprintf(err, errlen, "out of memory");
  config_free(&s->cfg);
  kv_free(s->sets, s->nsets);
  free(s->conf_dir);
  free(s);
  return rc;
}

int parley_server_new(parley_server **out, const char *conf_dir, char *err, size_t errlen) {
  return server_new(out, conf_dir, NULL, 0, err, errlen);
}

int parley_server_new_with_config(parley_server **out, const parley_config *cfg, char *err, size_t errlen) {
  if (!cfg) {
    if (err && errlen) snprintf(err, errlen, "cfg is NULL");
    if (out) *out = NULL;
    return -EINVAL;
  }
  return server_new(out, cfg->conf_dir, cfg->sets, cfg->nsets, err, errlen);
}

/* ---- start --------------------------------------------------------------------------------------- */

/* The thread stops logging to s's sink (unless another server's is bound to it by now). */
static void log_unbind(parley_server *s) {
  if (log_bound() == &s->log) log_bind(NULL);
}

static void store_free_closed(uv_handle_t *h) {
  store_free(h->data);
  free(h);
}

/* Free st (store_free) from the close callback of a helper handle closed now, i.e. after the store's own
 * async handle closed by a store_close that follows this call. Out of memory: st is leaked (logged). */
static void store_free_later(uv_loop_t *loop, struct store *st) {
  uv_idle_t *h = malloc(sizeof *h);
  if (!h || uv_idle_init(loop, h)) {
    free(h);
    log_error("out of memory: leaking a closed store");
    return;
  }
  h->data = st;
  uv_close((uv_handle_t *)h, store_free_closed);
}

static void on_tick(uv_timer_t *t);
static int net_reload_cb(void *ud) { return parley_server_reload(ud); }

static void on_signal(uv_signal_t *h, int signum) {
  parley_server *s = h->data;
  if (signum == SIGHUP)
    parley_server_reload(s);
  else
    parley_server_stop(s, NULL, NULL);
}

static void start_signal(parley_server *s, uv_signal_t *h, int signum) {
  uv_signal_init(s->loop, h);
  h->data = s;
  uv_signal_start(h, on_signal, signum);
}

int parley_server_start(parley_server *s, uv_loop_t *loop) {
  if (!s || !loop) return -EINVAL;
  if (s->state != SERVER_IDLE) return -EALREADY;
  /* No signal disposition is changed here: see "Signals" in parley.h. */
  log_bind(&s->log); /* this is the loop thread; the store's threads inherit the binding */
  char err[512];
  s->loop = loop;
  s->store = store_open(loop, &s->cfg, err, sizeof err); /* on failure its handle closes by itself */
  if (!s->store) {
    log_error("cannot open the message store: %s", err);
    log_unbind(s);
    return -EIO;
  }
  int rc = -ENOMEM;
  if (!(s->core = core_new(&s->cfg, s->store))) goto fail;
  core_set_auth(s->core, s->auth);
  /* Before listening: a script or plugin that fails to load and is not optional fails the start. */
  struct hooks_host host = {
      .ud = s->core, .loop = loop, .publish = core_host_publish, .kick = core_host_kick};
  int hrc = hooks_new(&s->hooks, &host, &s->cfg);
  if (hrc == 0) {
    for (size_t i = 0; i < s->neh; i++)
      if (hooks_add_embedded(s->hooks, s->eh[i].point, s->eh[i].fn, s->eh[i].ud, s->eh[i].priority))
        log_error("hooks: out of memory registering an embedded handler");
    core_set_hooks(s->core, s->hooks);
  } else if (hrc == -EINVAL) {
    rc = -EINVAL;
    goto fail;
  } else {
    log_error("hooks: out of memory; running without scripts and plugins");
  }
  if (!(s->net = net_new(loop, s->core, &s->cfg, err, sizeof err))) {
    log_error("%s", err);
    rc = -EADDRINUSE;
    goto fail;
  }
  net_set_auth(s->net, s->auth);
  net_set_reload(s->net, net_reload_cb, s);
  uv_timer_init(loop, &s->tick);
  s->tick.data = s;
  uv_timer_start(&s->tick, on_tick, TICK_MS, TICK_MS);
  s->stop_cb = NULL;
  s->stop_ud = NULL;
  s->state = SERVER_RUNNING;
  log_info("parley %s listening on %s:%lld (ws path /ws)", PARLEY_VERSION_STRING, s->cfg.server_host,
           (long long)s->cfg.server_port);
  return 0;
fail:
  /* The store's async handle closes now and its memory must outlive the close callback, which runs when
   * the caller's loop runs next: a helper handle closed just before it frees the store after it. */
  hooks_free(s->hooks); /* its timers close on the loop, which the caller runs next */
  s->hooks = NULL;
  store_free_later(loop, s->store); /* before store_close: close callbacks run last-closed first */
  store_close(s->store);
  core_free(s->core);
  s->core = NULL;
  s->store = NULL;
  s->loop = NULL;
  log_unbind(s);
  return rc;
}

/* ---- stop ---------------------------------------------------------------------------------------- */

static void close_handle(uv_handle_t *h, uv_close_cb cb) {
  if (h->loop && !uv_is_closing(h)) uv_close(h, cb);
}

/* The last step: nothing of ours is on the loop any more. */
static void fin_closed(uv_handle_t *h) {
  parley_server *s = h->data;
  net_free(s->net); /* the second lws_context_destroy: lws's handles are all closed now */
  s->net = NULL;
  core_free(s->core);
  s->core = NULL;
  store_free(s->store);
  s->store = NULL;
  s->loop = NULL;
  s->state = SERVER_IDLE;
  parley_stop_cb cb = s->stop_cb;
  void *ud = s->stop_ud;
  s->stop_cb = NULL;
  log_info("stopped");
  log_unbind(s);
  codec_thread_release(); /* the loop thread's encode buffers: the thread may end now */
  wire_thread_release();
  if (cb) cb(s, ud); /* may free s */
}

static void count_closing(uv_handle_t *h, void *arg) {
  if (uv_is_closing(h)) ++*(size_t *)arg;
}

/* Once per iteration: wait until no handle on the loop is closing (lws closes its handles in stages). */
static void on_fin(uv_idle_t *h) {
  parley_server *s = h->data;
  size_t closing = 0;
  uv_walk(h->loop, count_closing, &closing);
  if (closing && ++s->fin_rounds < FIN_MAX_ROUNDS) return;
  if (closing) log_warn("stop: %zu handles still closing; finishing anyway", closing);
  uv_idle_stop(h);
  uv_close((uv_handle_t *)h, fin_closed);
}

static void finish_stop(parley_server *s) {
  log_info("stopping: %zu connections left; closing", core_conn_count(s->core));
  s->state = SERVER_CLOSING;
  net_destroy_in_loop(s->net);
  core_set_hooks(s->core, NULL);
  hooks_free(s->hooks); /* inside the loop: its timers close with it */
  s->hooks = NULL;
  store_close(s->store); /* commits what is queued; its completions still find the core */
  close_handle((uv_handle_t *)&s->tick, NULL);
  if (s->signals) {
    close_handle((uv_handle_t *)&s->sig_term, NULL);
    close_handle((uv_handle_t *)&s->sig_int, NULL);
    close_handle((uv_handle_t *)&s->sig_hup, NULL);
    s->signals = false;
  }
  s->fin_rounds = 0;
  uv_idle_init(s->loop, &s->fin);
  s->fin.data = s;
  uv_idle_start(&s->fin, on_fin);
}

static void on_tick(uv_timer_t *t) {
  parley_server *s = t->data;
  uint64_t now = core_mono_ms();
  core_tick(s->core, now);
  if (s->state == SERVER_STOPPING &&
      (core_conn_count(s->core) == 0 || now - s->stop_started > DRAIN_MAX_MS)) {
    uv_timer_stop(t);
    finish_stop(s);
  }
}

int parley_server_stop(parley_server *s, parley_stop_cb cb, void *ud) {
  if (!s) return -EINVAL;
  if (s->state == SERVER_IDLE) return -ENOTCONN;
  if (s->state != SERVER_RUNNING) return -EALREADY;
  s->state = SERVER_STOPPING;
  s->stop_cb = cb;
  s->stop_ud = ud;
  s->stop_started = core_mono_ms();
  struct log_sink *prev = log_bind(&s->log);
  log_info("stopping: closing %zu connections with 1001", core_conn_count(s->core));
  log_bind(prev);
  net_stop_accepting(s->net);
  core_close_all(s->core, CONN_CLOSE_SHUTDOWN, "server shutting down");
  /* Finish without waiting for the next tick when nobody is connected. */
  if (core_conn_count(s->core) == 0) uv_timer_start(&s->tick, on_tick, 0, TICK_MS);
  return 0;
}

static int reload(parley_server *s) {
  if (!s->conf_dir && !s->nsets) return 0;
  struct config fresh;
  char err[512];
  int rc = config_build(s->conf_dir, s->sets, s->nsets, &fresh, err, sizeof err);
  if (rc) {
    log_error("reload failed, keeping the running configuration: %s", err);
    config_free(&fresh);
    return rc;
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
  atomic_store(&s->log.level, (int)s->cfg.log_level);
  if (s->hooks) {
    int failed = hooks_reload(s->hooks, &s->cfg);
    if (failed > 0)
      log_warn("reload: %d scripts/plugins failed to load; their previous versions keep running", failed);
  }
  log_info("configuration reloaded%s%s", s->conf_dir ? " from " : "", s->conf_dir ? s->conf_dir : "");
  return 0;
}

int parley_server_reload(parley_server *s) {
  if (!s) return -EINVAL;
  struct log_sink *prev = log_bind(&s->log); /* s's lines go to s's log whoever else runs on this thread */
  int rc = reload(s);
  log_bind(prev);
  return rc;
}

int parley_server_set_log(parley_server *s, parley_log_fn fn, void *ud) {
  if (!s) return -EINVAL;
  if (s->state != SERVER_IDLE) return -EBUSY; /* the store's threads may be reading the sink */
  s->log.fn = fn;
  s->log.ud = ud;
  return 0;
}

static void walk_close(uv_handle_t *h, void *arg) {
  if (!uv_is_closing(h)) {
    log_warn("closing a handle left open at shutdown (type %s)", uv_handle_type_name(h->type));
    uv_close(h, NULL);
  }
}

int parley_server_run(parley_server *s, int handle_signals) {
  if (!s) return -EINVAL;
  if (s->state != SERVER_IDLE) return -EALREADY;
  int rc = uv_loop_init(&s->own_loop);
  if (rc) return rc;
  if (!(rc = parley_server_start(s, &s->own_loop)) && handle_signals) {
    s->signals = true;
    start_signal(s, &s->sig_term, SIGTERM);
    start_signal(s, &s->sig_int, SIGINT);
    start_signal(s, &s->sig_hup, SIGHUP);
  }
  uv_run(&s->own_loop, UV_RUN_DEFAULT); /* until the stop completes (or, after a failed start, at once) */
  if (uv_loop_close(&s->own_loop) == UV_EBUSY) {
    uv_walk(&s->own_loop, walk_close, NULL);
    uv_run(&s->own_loop, UV_RUN_DEFAULT);
    uv_loop_close(&s->own_loop);
  }
  return rc;
}

int parley_server_free(parley_server *s) {
  if (!s) return 0;
  if (s->state != SERVER_IDLE) return -EBUSY;
  auth_free(s->auth);
  config_free(&s->cfg);
  kv_free(s->sets, s->nsets);
  free(s->conf_dir);
  free(s->eh);
  free(s);
  return 0;
}

/* ---- hooks in C, and what embed/embed.c reads (server.h) ------------------------------------------ */

int parley_server_hook(parley_server *s, enum parley_hook_point point, parley_hook_fn fn, void *ud,
                       int priority) {
  if (!s || !fn || (int)point < 0 || point >= PARLEY_HOOK__COUNT) return -EINVAL;
  struct embed_hook *v = realloc(s->eh, (s->neh + 1) * sizeof *v);
  if (!v) return -ENOMEM;
  s->eh = v;
  if (s->hooks) {
    int rc = hooks_add_embedded(s->hooks, (int)point, fn, ud, priority);
    if (rc) return rc;
  }
  v[s->neh++] = (struct embed_hook){(int)point, fn, ud, priority};
  return 0;
}

struct core *server_core(parley_server *s) {
  return s && s->state == SERVER_RUNNING ? s->core : NULL;
}
struct store *server_store(parley_server *s) {
  return s && s->state == SERVER_RUNNING ? s->store : NULL;
}
const struct config *server_config(const parley_server *s) { return &s->cfg; }
uv_loop_t *server_loop(parley_server *s) { return s->loop; }
int parley_server_port(const parley_server *s) {
  return s && s->state != SERVER_IDLE ? (int)s->cfg.server_port : 0;
}
