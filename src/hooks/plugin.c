/* plugin: C plugins loaded with dlopen(RTLD_NOW | RTLD_LOCAL) (include/parley/plugin.h).
 *
 * The descriptor is checked field by field before anything of the plugin runs; init gets the api table and
 * may register handlers and timers only through it. A refused or failed plugin is undone completely
 * (handlers freed, timers closed, shutdown called if init succeeded, dlclose) and the reason logged. */
#include "hooks/internal.h"

#include "util/log.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct parley_plugin_ctx {
  struct hook_owner *owner;
  void *dl;
  const struct parley_plugin *desc;
  const char *const *options; /* PARLEY_PLUGIN_OPTIONS_SYMBOL, or NULL */
  void *state;
  bool in_init;
  bool inited;
  struct handler *pending; /* registered during init */
  unsigned nseq;
  struct hook_timer *timers;
};

/* The result handed to plugin handlers is the dispatch's hook_result. */
struct parley_result {
  struct hook_result r;
};

static void api_log(struct parley_plugin_ctx *ctx, int level, const char *fmt, ...) {
  char msg[900];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (level < LOG_ERROR) level = LOG_ERROR;
  if (level > LOG_DEBUG) level = LOG_DEBUG;
  hooks__log(ctx->owner->hooks, level, "plugin %s: %s", ctx->owner->name, msg);
}

static int invoke(struct handler *hd, const struct parley_event *ev, struct hook_result *res) {
  int d = hd->fn(hd->ud, ev, (struct parley_result *)res);
  if (d < 0 || d > PARLEY_REWRITE) {
    if (d != PARLEY_ERROR)
      hooks__log(hd->owner->hooks, LOG_ERROR, "plugin %s: %s: handler returned %d", hd->owner->name,
                 hooks_point_name(ev->point), d);
    return HOOK_ERR;
  }
  return d;
}

static int api_hook(struct parley_plugin_ctx *ctx, int point, parley_hook_fn fn, void *ud, int priority) {
  if (!ctx->in_init) return -EPERM;
  if (point < 0 || point >= PARLEY_HOOK__COUNT || !fn) return -EINVAL;
  struct handler *hd = calloc(1, sizeof *hd);
  if (!hd) return -ENOMEM;
  hd->owner = ctx->owner;
  hd->point = point;
  hd->priority = priority;
  hd->seq = ctx->nseq++;
  hd->invoke = invoke;
  hd->fn = fn;
  hd->ud = ud;
  struct handler **pp = &ctx->pending;
  while (*pp) pp = &(*pp)->next;
  *pp = hd;
  return 0;
}

static int api_publish(struct parley_plugin_ctx *ctx, const char *room, const char *body, size_t len) {
  struct hooks *h = ctx->owner->hooks;
  if (!room || !body) return -EINVAL;
  return h->host.publish ? h->host.publish(h->host.ud, room, body, len) : -ENOTSUP;
}

static int api_kick(struct parley_plugin_ctx *ctx, const char *user, const char *reason) {
  struct hooks *h = ctx->owner->hooks;
  if (!user) return -EINVAL;
  return h->host.kick ? h->host.kick(h->host.ud, user, reason ? reason : "kicked") : -ENOTSUP;
}

static const struct ext_opt *opt(struct parley_plugin_ctx *ctx, const char *key) {
  const struct config *cfg = ctx->owner->hooks->cfg;
  return cfg && key ? config_ext_opt(config_ext(cfg, true, ctx->owner->name), key) : NULL;
}

static const char *api_config_get(struct parley_plugin_ctx *ctx, const char *key) {
  const struct ext_opt *o = opt(ctx, key);
  return o ? o->value : NULL;
}

/* "123", "-5", "4KiB", "2m" (powers of 1024 for k/m/g with optional "iB"/"b"). */
static int parse_scaled(const char *s, int64_t *out) {
  char *end;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (errno || end == s) return -1;
  int64_t mul = 1;
  if (*end) {
    char c = *end | 0x20;
    mul = c == 'k' ? 1024 : c == 'm' ? 1024 * 1024 : c == 'g' ? 1024 * 1024 * 1024 : 0;
    if (!mul) return -1;
    end++;
    if (!strcasecmp(end, "ib") || !strcasecmp(end, "b")) end += strlen(end);
    if (*end) return -1;
  }
  if (v > INT64_MAX / mul || v < INT64_MIN / mul) return -1;
  *out = (int64_t)v * mul;
  return 0;
}

static int64_t api_config_int(struct parley_plugin_ctx *ctx, const char *key, int64_t def, int64_t min,
                              int64_t max) {
  const struct ext_opt *o = opt(ctx, key);
  if (!o) return def;
  int64_t v;
  if (parse_scaled(o->value, &v)) {
    api_log(ctx, LOG_WARN, "%s: plugins.%s.%s: '%s' is not an integer; using %lld", o->where,
            ctx->owner->name, key, o->value, (long long)def);
    return def;
  }
  if (v < min || v > max) {
    int64_t c = v < min ? min : max;
    api_log(ctx, LOG_WARN, "%s: plugins.%s.%s: %s is out of range %lld..%lld; using %lld", o->where,
            ctx->owner->name, key, o->value, (long long)min, (long long)max, (long long)c);
    return c;
  }
  return v;
}

static void plugin_timer_fire(struct hook_timer *tm) {
  bool repeat = uv_timer_get_repeat(&tm->t) != 0;
  tm->cb(tm->ud);
  if (!repeat && !uv_is_closing((uv_handle_t *)&tm->t)) hooks__timer_close(tm);
}

static int api_timer_start(struct parley_plugin_ctx *ctx, uint64_t after_ms, uint64_t repeat_ms,
                           parley_timer_fn cb, void *ud, uint64_t *id) {
  if (!cb) return -EINVAL;
  struct hook_timer *tm = calloc(1, sizeof *tm);
  if (!tm) return -ENOMEM;
  tm->impl = ctx;
  tm->fire = plugin_timer_fire;
  tm->cb = cb;
  tm->ud = ud;
  int rc = hooks__timer_start(ctx->owner->hooks, &ctx->timers, tm, after_ms, repeat_ms);
  if (rc) {
    free(tm);
    return rc;
  }
  if (id) *id = tm->id;
  return 0;
}

static int api_timer_stop(struct parley_plugin_ctx *ctx, uint64_t id) {
  for (struct hook_timer *tm = ctx->timers; tm; tm = tm->next)
    if (tm->id == id) {
      hooks__timer_close(tm);
      return 0;
    }
  return -ENOENT;
}

static int set_str(char **dst, const char *s, size_t n) {
  char *c = malloc(n + 1);
  if (!c) return -ENOMEM;
  memcpy(c, s, n);
  c[n] = 0;
  free(*dst);
  *dst = c;
  return 0;
}

static int api_reject(struct parley_result *res, const char *reason) {
  if (reason) set_str(&res->r.reason, reason, strlen(reason)); /* on failure dispatch uses "rejected" */
  return PARLEY_REJECT;
}

static int api_rewrite_body(struct parley_result *res, const char *json, size_t len) {
  if (!json || set_str(&res->r.body, json, len)) return PARLEY_ERROR;
  res->r.body_len = len;
  return PARLEY_REWRITE;
}

static int api_rewrite_name(struct parley_result *res, const char *name) {
  return name && !set_str(&res->r.name, name, strlen(name)) ? PARLEY_REWRITE : PARLEY_ERROR;
}

static int api_rewrite_user(struct parley_result *res, const char *user) {
  return user && !set_str(&res->r.user_id, user, strlen(user)) ? PARLEY_REWRITE : PARLEY_ERROR;
}

static const struct parley_api api = {
    .size = sizeof(struct parley_api),
    .abi_version = PARLEY_PLUGIN_ABI,
    .log = api_log,
    .hook = api_hook,
    .publish = api_publish,
    .kick = api_kick,
    .config_get = api_config_get,
    .config_int = api_config_int,
    .timer_start = api_timer_start,
    .timer_stop = api_timer_stop,
    .reject = api_reject,
    .rewrite_body = api_rewrite_body,
    .rewrite_name = api_rewrite_name,
    .rewrite_user = api_rewrite_user,
};

static void ctx_destroy(struct parley_plugin_ctx *ctx) {
  while (ctx->timers) hooks__timer_close(ctx->timers);
  if (ctx->inited && ctx->desc->shutdown) ctx->desc->shutdown(ctx->state);
  hooks__free_handlers(ctx->pending);
  if (ctx->dl) dlclose(ctx->dl);
  free(ctx);
}

/* dlopen and check the descriptor; nothing of the plugin runs. 0 or -EINVAL with the reason in err. */
static int open_checked(struct parley_plugin_ctx *ctx, const char *path, char *err, size_t errlen) {
  dlerror();
  if (!(ctx->dl = dlopen(path, RTLD_NOW | RTLD_LOCAL))) {
    snprintf(err, errlen, "refused: dlopen: %s", dlerror());
    return -EINVAL;
  }
  const struct parley_plugin *d = dlsym(ctx->dl, PARLEY_PLUGIN_SYMBOL);
  if (!d) {
    snprintf(err, errlen, "refused: %s: no '%s' symbol (declare it with PARLEY_PLUGIN_EXPORT)", path,
             PARLEY_PLUGIN_SYMBOL);
    return -EINVAL;
  }
  if (d->magic != PARLEY_PLUGIN_MAGIC) {
    snprintf(err, errlen, "refused: %s: bad magic 0x%08x (expected 0x%08x): not a Parley plugin descriptor",
             path, d->magic, PARLEY_PLUGIN_MAGIC);
    return -EINVAL;
  }
  if (d->abi_version != PARLEY_PLUGIN_ABI) {
    snprintf(err, errlen, "refused: %s: built for plugin ABI %u, this server speaks ABI %u: rebuild it", path,
             d->abi_version, PARLEY_PLUGIN_ABI);
    return -EINVAL;
  }
  if (d->size != sizeof(struct parley_plugin)) {
    snprintf(err, errlen,
             "refused: %s: descriptor size %u, expected %zu (built against a different plugin.h)", path,
             d->size, sizeof(struct parley_plugin));
    return -EINVAL;
  }
  if (!d->init || !d->name || !d->name[0]) {
    snprintf(err, errlen, "refused: %s: descriptor has no %s", path, d->init ? "name" : "init function");
    return -EINVAL;
  }
  ctx->desc = d;
  ctx->options = dlsym(ctx->dl, PARLEY_PLUGIN_OPTIONS_SYMBOL);
  return 0;
}

int plugin__check(struct hook_owner *o, const char *path, char *err, size_t errlen) {
  struct parley_plugin_ctx *ctx = calloc(1, sizeof *ctx);
  if (!ctx) return -ENOMEM;
  ctx->owner = o;
  if (open_checked(ctx, path, err, errlen)) {
    ctx_destroy(ctx);
    return -EINVAL;
  }
  plugin__unload(o);
  o->impl = ctx;
  return 0;
}

const char *const *plugin__options(const struct hook_owner *o) {
  const struct parley_plugin_ctx *ctx = o->impl;
  return ctx ? ctx->options : NULL;
}

int plugin__load(struct hook_owner *o, const char *path, char *err, size_t errlen) {
  struct parley_plugin_ctx *ctx = calloc(1, sizeof *ctx);
  if (!ctx) return -ENOMEM;
  ctx->owner = o;
  if (open_checked(ctx, path, err, errlen)) goto fail;
  const struct parley_plugin *d = ctx->desc;
  /* Handlers are owned by ctx until init succeeds; the old version keeps running meanwhile. */
  ctx->in_init = true;
  int rc = d->init(ctx, &api, &ctx->state);
  ctx->in_init = false;
  if (rc) {
    snprintf(err, errlen, "refused: %s: init failed (%d)", path, rc);
    goto fail;
  }
  ctx->inited = true;
  plugin__unload(o);
  o->impl = ctx;
  o->handlers = ctx->pending;
  ctx->pending = NULL;
  hooks__log(o->hooks, LOG_INFO, "plugin %s: %s %s initialised", o->name, d->name,
             d->version ? d->version : "");
  return 0;
fail:
  ctx_destroy(ctx);
  return -EINVAL;
}

void plugin__reload(struct hook_owner *o) {
  struct parley_plugin_ctx *ctx = o->impl;
  if (ctx && ctx->desc->reload) ctx->desc->reload(ctx, ctx->state);
}

void plugin__unload(struct hook_owner *o) {
  if (!o->impl) return;
  struct parley_plugin_ctx *ctx = o->impl;
  /* The per-point arrays still point at these handlers: the caller rebuilds before the next dispatch. */
  hooks__free_handlers(o->handlers);
  o->handlers = NULL;
  o->impl = NULL;
  ctx_destroy(ctx);
}
