/* hooks: the dispatch table, owners (scripts/plugins), reload, timers and metrics. */
#include "hooks/internal.h"

#include "util/log.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const point_names[PARLEY_HOOK__COUNT] = {
    "on_connect", "on_auth", "on_join", "on_message", "on_typing", "on_leave", "on_disconnect", "on_offline",
};

const char *hooks_point_name(int point) {
  return point >= 0 && point < PARLEY_HOOK__COUNT ? point_names[point] : NULL;
}

int hooks_point_parse(const char *name) {
  for (int i = 0; i < PARLEY_HOOK__COUNT; i++)
    if (!strcmp(name, point_names[i]) || !strcmp(name, point_names[i] + 3)) return i;
  return -1;
}

void hooks__log(struct hooks *h, int level, const char *fmt, ...) {
  if (level > log_level_current) return;
  char line[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  if (h && h->host.log)
    h->host.log(h->host.ud, level, line);
  else
    log_write(level, "%s", line);
}

void hook_result_clear(struct hook_result *r) {
  free(r->reason);
  free(r->body);
  free(r->name);
  free(r->user_id);
  *r = (struct hook_result)HOOK_RESULT_INIT;
}

void hooks__free_handlers(struct handler *hd) {
  while (hd) {
    struct handler *next = hd->next;
    free(hd);
    hd = next;
  }
}

/* ---- dispatch ---- */

static int cmp_handler(const void *pa, const void *pb) {
  const struct handler *a = *(struct handler *const *)pa, *b = *(struct handler *const *)pb;
  int64_t qa = a->owner->priority + a->priority, qb = b->owner->priority + b->priority;
  if (qa != qb) return qa > qb ? -1 : 1;
  if (a->owner->order != b->owner->order) return a->owner->order < b->owner->order ? -1 : 1;
  return a->seq < b->seq ? -1 : a->seq > b->seq;
}

int hooks__rebuild(struct hooks *h) {
  struct handler **pt[PARLEY_HOOK__COUNT] = {0};
  size_t n[PARLEY_HOOK__COUNT] = {0};
  for (size_t i = 0; i < h->nowners; i++)
    for (struct handler *hd = h->owners[i]->handlers; hd; hd = hd->next) n[hd->point]++;
  for (int p = 0; p < PARLEY_HOOK__COUNT; p++) {
    if (!n[p]) continue;
    if (!(pt[p] = malloc(n[p] * sizeof *pt[p]))) {
      for (int q = 0; q < p; q++) free(pt[q]);
      return -ENOMEM;
    }
    n[p] = 0;
  }
  for (size_t i = 0; i < h->nowners; i++)
    for (struct handler *hd = h->owners[i]->handlers; hd; hd = hd->next) pt[hd->point][n[hd->point]++] = hd;
  for (int p = 0; p < PARLEY_HOOK__COUNT; p++) {
    if (n[p] > 1) qsort(pt[p], n[p], sizeof *pt[p], cmp_handler);
    free(h->pt[p]);
    h->pt[p] = pt[p];
    h->npt[p] = n[p];
  }
  return 0;
}

bool hooks_has(const struct hooks *h, enum parley_hook_point point) { return h && h->npt[point] != 0; }

static bool notification(int point) { return point >= PARLEY_HOOK_LEAVE; }

static void drop_extras(struct hook_result *r) {
  const char *by = r->by;
  hook_result_clear(r);
  r->by = by;
}

/* A handler's decision is only valid where the point has it. */
static bool decision_ok(int point, const struct hook_result *r, int d) {
  if (d == PARLEY_ALLOW || d == PARLEY_REJECT) return true;
  if (d != PARLEY_REWRITE) return false;
  if (point == PARLEY_HOOK_MESSAGE) return r->body != NULL;
  if (point == PARLEY_HOOK_AUTH) return r->name || r->user_id;
  return false;
}

enum parley_decision hooks_dispatch(struct hooks *h, enum parley_hook_point point, struct parley_event *ev,
                                    struct hook_result *res) {
  size_t n = h ? h->npt[point] : 0;
  if (!n) return PARLEY_PASS;
  ev->size = sizeof *ev;
  ev->point = point;
  struct handler **list = h->pt[point];
  bool closed = h->cfg && h->cfg->hooks_fail[point] && !notification(point);
  enum parley_decision out = PARLEY_PASS;
  h->depth++;
  for (size_t i = 0; i < n; i++) {
    struct handler *hd = list[i];
    struct hook_owner *o = hd->owner;
    o->calls++;
    int d = hd->invoke(hd, ev, res);
    if (d >= 0 && !notification(point) && d != PARLEY_PASS && !decision_ok(point, res, d)) {
      hooks__log(h, LOG_ERROR, "%s %s: %s: decision %d is not valid here",
                 o->kind == OWNER_LUA ? "script" : "plugin", o->name, point_names[point], d);
      d = HOOK_ERR;
    }
    if (d < 0) {
      o->errors++;
      if (d == HOOK_ERR_BUDGET) o->budget_kills++;
      drop_extras(res);
      if (closed) {
        res->decision = out = PARLEY_REJECT;
        res->reason = strdup(HOOKS_FAIL_REASON);
        res->by = o->name;
        break;
      }
      continue;
    }
    if (notification(point) || d == PARLEY_PASS) {
      drop_extras(res);
      continue;
    }
    if (d == PARLEY_REJECT) {
      o->rejects++;
      if (!res->reason) res->reason = strdup("rejected");
    } else if (d == PARLEY_REWRITE) {
      o->rewrites++;
    }
    res->decision = out = (enum parley_decision)d;
    res->by = o->name;
    break;
  }
  /* The list may not change under the loop above: scripts over their memory cap are reset afterwards. */
  if (--h->depth == 0 && h->pending_reset) lua__reset_pending(h);
  return out;
}

/* ---- timers ---- */

static void timer_closed(uv_handle_t *hd) { free(hd->data); }

static void timer_cb(uv_timer_t *t) {
  struct hook_timer *tm = t->data;
  tm->fire(tm); /* may close tm */
}

int hooks__timer_start(struct hooks *h, struct hook_timer **head, struct hook_timer *tm, uint64_t after_ms,
                       uint64_t repeat_ms) {
  if (!h->host.loop) return -ENOTSUP;
  int rc = uv_timer_init(h->host.loop, &tm->t);
  if (rc) return rc;
  tm->t.data = tm;
  tm->id = ++h->next_timer_id;
  tm->head = head;
  tm->next = *head;
  *head = tm;
  uv_timer_start(&tm->t, timer_cb, after_ms, repeat_ms);
  return 0;
}

void hooks__timer_again(struct hook_timer *tm, uint64_t after_ms) {
  uv_timer_start(&tm->t, timer_cb, after_ms, 0);
}

void hooks__timer_close(struct hook_timer *tm) {
  for (struct hook_timer **pp = tm->head; *pp; pp = &(*pp)->next)
    if (*pp == tm) {
      *pp = tm->next;
      break;
    }
  uv_timer_stop(&tm->t);
  tm->t.data = tm;
  uv_close((uv_handle_t *)&tm->t, timer_closed);
}

/* ---- owners and reload ---- */

static void owner_unload(struct hook_owner *o) {
  if (!o->impl) return;
  if (o->kind == OWNER_LUA)
    lua__unload(o);
  else
    plugin__unload(o);
}

static void owner_free(struct hook_owner *o) {
  owner_unload(o);
  if (o->kind == OWNER_EMBED) hooks__free_handlers(o->handlers);
  if (o->kind == OWNER_LUA) lua__owner_free(o);
  free(o->name);
  free(o->path);
  free(o);
}

static struct hook_owner *find_owner(struct hooks *h, enum owner_kind kind, const char *name) {
  for (size_t i = 0; i < h->nowners; i++)
    if (h->owners[i]->kind == kind && !strcmp(h->owners[i]->name, name)) return h->owners[i];
  return NULL;
}

/* ---- options, optional sections, room globs ---- */

bool hooks_glob_can_match(const char *g) {
  size_t fixed = 0; /* characters every match has: all but '*' */
  for (const char *p = g; *p; p++) {
    unsigned char c = (unsigned char)*p;
    if (c == '*') continue;
    fixed++;
    if (c != '?' && !((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '_' || c == '.' || c == ':' || c == '@' || c == '-'))
      return false;
  }
  return fixed <= 128 && (fixed > 0 || strchr(g, '*')); /* "" matches only "", not a name */
}

/* scripts.<name>.optional / plugins.<name>.optional: 1, 0, or -1 when the value is not a bool. */
static int ext_optional(const struct ext_section *e) {
  const struct ext_opt *o = config_ext_opt(e, "optional");
  if (!o) return 0;
  static const char *const yes[] = {"true", "yes", "on", "1"}, *const no[] = {"false", "no", "off", "0"};
  for (int i = 0; i < 4; i++) {
    if (!strcasecmp(o->value, yes[i])) return 1;
    if (!strcasecmp(o->value, no[i])) return 0;
  }
  return -1;
}

static bool listed(const char *const *keys, const char *k) {
  for (; keys && *keys; keys++)
    if (!strcmp(*keys, k)) return true;
  return false;
}

/* Report each option of e that the loaded owner does not declare: into problems (hooks_check) or as a
 * warning in the log. Returns how many. */
static int check_options(struct hooks *h, const struct ext_section *e, const struct hook_owner *o,
                         buf_t *problems) {
  const char *const *keys = o->kind == OWNER_LUA ? lua__options(o) : plugin__options(o);
  if (!keys) return 0; /* a plugin that declares nothing */
  const char *pre = e->plugin ? "plugins" : "scripts";
  int n = 0;
  for (size_t i = 0; i < e->nopts; i++) {
    const struct ext_opt *opt = &e->opts[i];
    if (!strcmp(opt->key, "optional") || listed(keys, opt->key)) continue;
    char known[300] = "";
    size_t kl = 0;
    for (const char *const *k = keys; *k && kl < sizeof known - 1; k++)
      kl += (size_t)snprintf(known + kl, sizeof known - kl, "%s%s", kl ? ", " : "", *k);
    char line[700];
    snprintf(line, sizeof line, "%s%s%s.%s.%s: unknown option (%s %s reads: %s)", opt->where,
             opt->where[0] ? ": " : "", pre, e->name, opt->key, e->plugin ? "plugin" : "script", e->name,
             known[0] ? known : "none");
    if (problems)
      buf_printf(problems, "%s\n", line);
    else
      hooks__log(h, LOG_WARN, "%s", line);
    n++;
  }
  return n;
}

/* Load (or reload) one section. Returns 0, 1 on a logged load failure, -ENOMEM. */
static int load_section(struct hooks *h, const struct ext_section *e, size_t order) {
  enum owner_kind kind = e->plugin ? OWNER_PLUGIN : OWNER_LUA;
  const char *what = e->plugin ? "plugin" : "script";
  struct hook_owner *o = find_owner(h, kind, e->name);
  if (!o) {
    struct hook_owner **os = realloc(h->owners, (h->nowners + 1) * sizeof *os);
    if (!os) return -ENOMEM;
    h->owners = os;
    if (!(o = calloc(1, sizeof *o)) || !(o->name = strdup(e->name))) {
      free(o);
      return -ENOMEM;
    }
    o->hooks = h;
    o->kind = kind;
    h->owners[h->nowners++] = o;
  }
  o->seen = true;
  o->order = order;
  o->priority = e->priority;
  if (!e->path[0]) {
    hooks__log(h, LOG_ERROR, "%s %s: no %s.%s.path set; not loaded", what, e->name,
               e->plugin ? "plugins" : "scripts", e->name);
    o->load_failures++;
    return 1;
  }
  char *path = config_path(h->cfg, e->path);
  if (!path) return -ENOMEM;
  /* A plugin already loaded from the same file stays: dlopen would hand back the same image anyway. */
  if (kind == OWNER_PLUGIN && o->impl && o->path && !strcmp(o->path, path)) {
    free(path);
    plugin__reload(o);
    return 0;
  }
  char err[512] = "";
  int rc = kind == OWNER_LUA ? lua__load(o, path, err, sizeof err) : plugin__load(o, path, err, sizeof err);
  if (rc == -ENOMEM) {
    free(path);
    return rc;
  }
  if (rc) {
    o->load_failures++;
    hooks__log(h, LOG_ERROR, "%s %s: %s%s", what, e->name, err,
               o->impl ? "; keeping the previously loaded version" : "; not loaded");
    free(path);
    return 1;
  }
  free(o->path);
  o->path = path;
  hooks__log(h, LOG_INFO, "%s %s: loaded %s", what, e->name, path);
  check_options(h, e, o, NULL);
  return 0;
}

int hooks_reload(struct hooks *h, const struct config *cfg) {
  h->cfg = cfg;
  for (size_t i = 0; i < h->nowners; i++) h->owners[i]->seen = false;
  int failures = 0;
  h->required_failures = 0;
  for (size_t i = 0; i < cfg->nexts; i++) {
    int rc = load_section(h, &cfg->exts[i], i);
    if (rc < 0) return rc;
    failures += rc;
    if (rc && ext_optional(&cfg->exts[i]) != 1) h->required_failures++;
  }
  size_t keep = 0;
  for (size_t i = 0; i < h->nowners; i++) {
    struct hook_owner *o = h->owners[i];
    if (o->seen || o->kind == OWNER_EMBED) { /* embedded handlers are not part of the configuration */
      h->owners[keep++] = o;
      continue;
    }
    hooks__log(h, LOG_INFO, "%s %s: removed from the configuration; unloaded",
               o->kind == OWNER_LUA ? "script" : "plugin", o->name);
    owner_free(o);
  }
  h->nowners = keep;
  if (hooks__rebuild(h)) return -ENOMEM;
  return failures;
}

int hooks_new(struct hooks **out, const struct hooks_host *host, const struct config *cfg) {
  struct hooks *h = calloc(1, sizeof *h);
  if (!h) return -ENOMEM;
  if (host) h->host = *host;
  h->cfg = cfg;
  int rc = cfg ? hooks_reload(h, cfg) : 0;
  if (rc > 0 && h->required_failures) {
    hooks__log(h, LOG_ERROR,
               "hooks: %zu script(s)/plugin(s) failed to load (set scripts.<name>.optional = true or "
               "plugins.<name>.optional = true to start without one)",
               h->required_failures);
    rc = -EINVAL;
  }
  if (rc < 0) {
    hooks_free(h);
    return rc;
  }
  *out = h;
  return 0;
}

__attribute__((format(printf, 2, 3))) static void problem(buf_t *b, const char *fmt, ...) {
  char line[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  buf_printf(b, "%s\n", line);
}

/* Warnings of scripts while they load (a bad option value ...) go to stderr; the rest is not shown. */
static void check_log(void *ud, int level, const char *line) {
  if (level <= LOG_WARN) fprintf(stderr, "%s: %s\n", level == LOG_ERROR ? "error" : "warning", line);
}

int hooks_check(const struct config *cfg, char *err, size_t errlen) {
  struct hooks h = {.cfg = cfg, .checking = true};
  h.host.log = check_log;
  buf_t out = BUF_INIT;
  int n = 0;
  for (size_t i = 0; i < cfg->nexts; i++) {
    const struct ext_section *e = &cfg->exts[i];
    const char *what = e->plugin ? "plugin" : "script", *pre = e->plugin ? "plugins" : "scripts";
    if (ext_optional(e) < 0) {
      const struct ext_opt *o = config_ext_opt(e, "optional");
      problem(&out, "%s%s%s.%s.optional: '%s' is not a bool (use true or false)", o->where,
              o->where[0] ? ": " : "", pre, e->name, o->value);
      n++;
    }
    if (!e->path[0]) {
      problem(&out, "%s %s: %s.%s.path is not set", what, e->name, pre, e->name);
      n++;
      continue;
    }
    char *path = config_path(cfg, e->path);
    struct hook_owner o = {.hooks = &h, .kind = e->plugin ? OWNER_PLUGIN : OWNER_LUA, .name = e->name};
    char msg[512] = "";
    int rc = !path       ? -ENOMEM
             : e->plugin ? plugin__check(&o, path, msg, sizeof msg)
                         : lua__load(&o, path, msg, sizeof msg);
    free(path);
    if (rc == -ENOMEM) {
      buf_free(&out);
      return -ENOMEM;
    }
    if (rc) {
      problem(&out, "%s %s: %s", what, e->name, msg);
      n++;
    } else {
      n += check_options(&h, e, &o, &out);
    }
    if (e->plugin) {
      plugin__unload(&o);
    } else {
      lua__unload(&o);
      lua__owner_free(&o);
    }
  }
  for (size_t i = 0; i < cfg->nrooms; i++)
    if (!hooks_glob_can_match(cfg->rooms[i].pattern)) {
      problem(
          &out,
          "rooms.%s: the room glob can never match a room name (names are 1..128 of A-Z a-z 0-9 _ . : @ -)",
          cfg->rooms[i].pattern);
      n++;
    }
  if (errlen) {
    size_t len = out.len && out.data[out.len - 1] == '\n' ? out.len - 1 : out.len; /* no last newline */
    snprintf(err, errlen, "%.*s", (int)len, out.data ? (const char *)out.data : "");
  }
  buf_free(&out);
  return n;
}

void hooks_free(struct hooks *h) {
  if (!h) return;
  /* Reverse order: a plugin loaded later may depend on an earlier one's published state. */
  for (size_t i = h->nowners; i-- > 0;) owner_free(h->owners[i]);
  free(h->owners);
  for (int p = 0; p < PARLEY_HOOK__COUNT; p++) free(h->pt[p]);
  free(h);
}

/* ---- embedded handlers (hooks_add_embedded) ---- */

static int embed_invoke(struct handler *hd, const struct parley_event *ev, struct hook_result *res) {
  int d = hd->fn(hd->ud, ev, (struct parley_result *)res); /* plugin.c: a parley_result is a hook_result */
  if (d < 0 || d > PARLEY_REWRITE) {
    if (d != PARLEY_ERROR)
      hooks__log(hd->owner->hooks, LOG_ERROR, "embedded handler: %s: returned %d",
                 hooks_point_name(ev->point), d);
    return HOOK_ERR;
  }
  return d;
}

int hooks_add_embedded(struct hooks *h, int point, parley_hook_fn fn, void *ud, int priority) {
  if (!h || !fn || point < 0 || point >= PARLEY_HOOK__COUNT) return -EINVAL;
  if (h->depth) return -EBUSY;
  struct hook_owner *o = find_owner(h, OWNER_EMBED, "embed");
  if (!o) {
    struct hook_owner **os = realloc(h->owners, (h->nowners + 1) * sizeof *os);
    if (!os) return -ENOMEM;
    h->owners = os;
    if (!(o = calloc(1, sizeof *o)) || !(o->name = strdup("embed"))) {
      free(o);
      return -ENOMEM;
    }
    o->hooks = h;
    o->kind = OWNER_EMBED;
    o->order = SIZE_MAX; /* ties: after every script and plugin */
    h->owners[h->nowners++] = o;
  }
  struct handler *hd = calloc(1, sizeof *hd), **pp = &o->handlers;
  if (!hd) return -ENOMEM;
  hd->owner = o;
  hd->point = point;
  hd->priority = priority;
  hd->invoke = embed_invoke;
  hd->fn = fn;
  hd->ud = ud;
  for (; *pp; pp = &(*pp)->next) hd->seq++;
  *pp = hd;
  if (hooks__rebuild(h)) { /* the tables stay as they were: take the handler back out */
    *pp = NULL;
    free(hd);
    return -ENOMEM;
  }
  return 0;
}

/* ---- metrics ---- */

static int metric(buf_t *out, const struct hooks *h, const char *name, const char *type, const char *help,
                  uint64_t (*get)(const struct hook_owner *)) {
  int rc = buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
  for (size_t i = 0; !rc && i < h->nowners; i++) {
    const struct hook_owner *o = h->owners[i];
    rc = buf_printf(out, "%s{kind=\"%s\",name=\"%s\"} %" PRIu64 "\n", name,
                    o->kind == OWNER_LUA     ? "lua"
                    : o->kind == OWNER_EMBED ? "embed"
                                             : "plugin",
                    o->name, get(o));
  }
  return rc;
}

static uint64_t g_calls(const struct hook_owner *o) { return o->calls; }
static uint64_t g_errors(const struct hook_owner *o) { return o->errors; }
static uint64_t g_kills(const struct hook_owner *o) { return o->budget_kills; }
static uint64_t g_rejects(const struct hook_owner *o) { return o->rejects; }
static uint64_t g_rewrites(const struct hook_owner *o) { return o->rewrites; }
static uint64_t g_failures(const struct hook_owner *o) { return o->load_failures; }
static uint64_t g_loaded(const struct hook_owner *o) { return o->impl != NULL || o->kind == OWNER_EMBED; }
static uint64_t g_memory(const struct hook_owner *o) { return o->kind == OWNER_LUA ? lua__memory(o) : 0; }

int hooks_metrics_render(const struct hooks *h, buf_t *out) {
  /* Names are [A-Za-z0-9_-] (config checks), so they need no escaping in label values. */
  int rc = 0;
  rc = rc ? rc : metric(out, h, "parley_hook_calls_total", "counter", "Handler calls.", g_calls);
  rc = rc ? rc
          : metric(out, h, "parley_hook_errors_total", "counter",
                   "Handler calls that failed (runtime error, bad return, budget or memory).", g_errors);
  rc = rc ? rc
          : metric(out, h, "parley_hook_budget_kills_total", "counter",
                   "Lua calls stopped by the instruction budget or the memory cap.", g_kills);
  rc = rc ? rc : metric(out, h, "parley_hook_rejects_total", "counter", "Reject decisions.", g_rejects);
  rc = rc ? rc : metric(out, h, "parley_hook_rewrites_total", "counter", "Rewrite decisions.", g_rewrites);
  rc = rc ? rc
          : metric(out, h, "parley_hook_load_failures_total", "counter", "Failed loads and reloads.",
                   g_failures);
  rc = rc ? rc
          : metric(out, h, "parley_hook_loaded", "gauge", "1 while a version is loaded and running.",
                   g_loaded);
  rc = rc ? rc
          : metric(out, h, "parley_hook_memory_bytes", "gauge", "Memory of a Lua script's state.", g_memory);
  return rc;
}
