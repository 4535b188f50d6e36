/* hooks/internal.h: what hooks.c, lua.c and plugin.c share. Not for the core. */
#ifndef PARLEY_HOOKS_INTERNAL_H
#define PARLEY_HOOKS_INTERNAL_H

#include <uv.h>

#include "config.h"
#include "hooks/hooks.h"

/* invoke's negative returns */
#define HOOK_ERR        -1 /* runtime error or bad return value */
#define HOOK_ERR_BUDGET -2 /* instruction budget or memory cap */

enum owner_kind { OWNER_LUA, OWNER_PLUGIN, OWNER_EMBED /* C callbacks of an embedding program */ };

struct handler;
typedef int (*handler_invoke_fn)(struct handler *hd, const struct parley_event *ev, struct hook_result *res);

/* A registered handler. Owned by its owner's list (impl side), referenced by the per-point arrays. */
struct handler {
  struct hook_owner *owner;
  int point;
  int priority; /* the handler's own; the sort adds owner->priority */
  unsigned seq; /* registration order within the owner */
  handler_invoke_fn invoke;
  parley_hook_fn fn; /* plugins */
  void *ud;          /* plugins: their ud; Lua: struct lscript * */
  int ref;           /* Lua: registry ref of the function */
  struct handler *next;
};

/* One script or plugin section. Persists across reloads of the same name (counters, kv); impl is swapped. */
struct hook_owner {
  struct hooks *hooks;
  enum owner_kind kind;
  char *name;
  char *path;       /* resolved path of the loaded version */
  int64_t priority; /* scripts.<name>.priority / plugins.<name>.priority */
  size_t order;     /* position in the configuration, for ties */
  bool seen;        /* mark for hooks_reload */
  uint64_t calls, errors, budget_kills, rejects, rewrites, load_failures;
  void *impl;               /* struct lscript * or struct parley_plugin_ctx *; NULL while not loaded */
  struct handler *handlers; /* of the loaded impl */
  void *kv;                 /* Lua: struct kvstore * (hooks/kvstore.h), owned; survives reloads */
};

/* A timer of a script or plugin, on host->loop. Freed in its close callback. */
struct hook_timer {
  uv_timer_t t;
  uint64_t id;
  void (*fire)(struct hook_timer *tm); /* kind-specific */
  void *impl;                          /* lscript or plugin ctx */
  parley_timer_fn cb;                  /* plugins */
  void *ud;
  int ref; /* Lua function ref */
  struct hook_timer **head, *next;
};

struct hooks {
  struct hooks_host host;
  const struct config *cfg;
  struct handler **pt[PARLEY_HOOK__COUNT]; /* sorted */
  size_t npt[PARLEY_HOOK__COUNT];
  struct hook_owner **owners;
  size_t nowners;
  unsigned depth; /* nested dispatch */
  bool pending_reset;
  bool checking; /* hooks_check: scripts load without a loop or host; plugins are not initialised */
  size_t required_failures; /* set by hooks_reload: sections not marked optional that failed to load */
  uint64_t next_timer_id;
};

/* Log through host->log or util/log. */
void hooks__log(struct hooks *h, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Re-sort the per-point arrays after handlers changed. 0 or -ENOMEM (arrays then left as they were). */
int hooks__rebuild(struct hooks *h);
/* Start a timer; links it into *head. 0, -ENOTSUP (no loop) or -ENOMEM. */
int hooks__timer_start(struct hooks *h, struct hook_timer **head, struct hook_timer *tm, uint64_t after_ms,
                       uint64_t repeat_ms);
/* Start a (one-shot) timer again from its callback. */
void hooks__timer_again(struct hook_timer *tm, uint64_t after_ms);
/* Stop and close one timer (unlinks it; memory freed in the close callback). */
void hooks__timer_close(struct hook_timer *tm);
/* Free a handler list. */
void hooks__free_handlers(struct handler *hd);

/* lua.c */
int lua__load(struct hook_owner *o, const char *path, char *err, size_t errlen);
void lua__unload(struct hook_owner *o);
void lua__owner_free(struct hook_owner *o); /* kv */
size_t lua__memory(const struct hook_owner *o);
/* The option keys the loaded script read while it loaded (its declared options), NULL-terminated. */
const char *const *lua__options(const struct hook_owner *o);
void lua__reset_pending(struct hooks *h); /* reset scripts whose memory stayed over the cap */

/* plugin.c */
int plugin__load(struct hook_owner *o, const char *path, char *err, size_t errlen);
void plugin__unload(struct hook_owner *o);
void plugin__reload(struct hook_owner *o); /* call the plugin's reload, if any */
/* --check: open and validate the plugin without calling init; o->impl holds it until plugin__unload. */
int plugin__check(struct hook_owner *o, const char *path, char *err, size_t errlen);
/* The loaded plugin's declared option keys (NULL-terminated), or NULL when it declares none. */
const char *const *plugin__options(const struct hook_owner *o);

#endif
