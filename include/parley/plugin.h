/* plugin.h — the ABI between parleyd and C plugins (docs/hooks.md "C plugins").
 *
 * Self-contained: C only, no libuv/jansson/libwebsockets types. A plugin is a shared object that exports one
 * data symbol, `parley_plugin` (PARLEY_PLUGIN_SYMBOL), and links no parleyd symbols: everything it may do
 * goes through the function table handed to its init. parleyd loads it with dlopen(RTLD_NOW | RTLD_LOCAL) and
 * refuses it, with a logged reason, when the symbol is missing, the magic, ABI version or descriptor size
 * differ, or init fails; a refused plugin is fully undone and the server runs on.
 *
 *   static int on_message(void *ud, const struct parley_event *ev, struct parley_result *res) {
 *     if (ev->body_len > 1000) return api->reject(res, "too long");
 *     return PARLEY_PASS;
 *   }
 *   static int init(struct parley_plugin_ctx *ctx, const struct parley_api *a, void **state) {
 *     api = a;
 *     return api->hook(ctx, PARLEY_HOOK_MESSAGE, on_message, NULL, 0);
 *   }
 *   PARLEY_PLUGIN_EXPORT const struct parley_plugin parley_plugin = PARLEY_PLUGIN_INIT("mine", "1.0", init,
 * NULL);
 *
 * Everything runs on the server's loop thread: handlers must not block (no disk or network waits) and must
 * return quickly. Strings in events are valid only during the call; copy what you keep. */
#ifndef PARLEY_PLUGIN_H
#define PARLEY_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PARLEY_PLUGIN_MAGIC  0x50524c59u /* "PRLY" */
#define PARLEY_PLUGIN_ABI    1           /* bumped on any incompatible change of this header */
#define PARLEY_PLUGIN_SYMBOL "parley_plugin"
#define PARLEY_PLUGIN_EXPORT __attribute__((visibility("default")))
/* Optional second data symbol: the option keys the plugin reads (plugins.<name>.<key>), NULL-terminated.
 *   PARLEY_PLUGIN_EXPORT const char *const parley_plugin_options[] = {"max", "prefix", NULL};
 * When a plugin exports it, `parleyd --check` reports any other key of its section as an unknown option
 * (a typo) and the server logs a warning for it; without it, its options are not checked. A separate
 * symbol, so the descriptor and ABI 1 are unchanged. */
#define PARLEY_PLUGIN_OPTIONS_SYMBOL "parley_plugin_options"

/* Hook points, in this order everywhere (config keys hooks.<name>.fail, metrics, docs). */
enum parley_hook_point {
  PARLEY_HOOK_CONNECT = 0, /* a WebSocket connection was accepted; may reject (the connection is closed) */
  PARLEY_HOOK_AUTH,        /* hello verified; may reject, or rewrite the display name / user id */
  PARLEY_HOOK_JOIN,        /* join request; may reject */
  PARLEY_HOOK_MESSAGE,     /* send request; may reject or rewrite the body */
  PARLEY_HOOK_TYPING,      /* typing request; may reject (dropped silently) */
  PARLEY_HOOK_LEAVE,       /* notification: a user left a room */
  PARLEY_HOOK_DISCONNECT,  /* notification: a connection closed */
  PARLEY_HOOK_OFFLINE,     /* notification: a user's last session ended (exactly once) */
  PARLEY_HOOK__COUNT
};

/* What a handler returns. The first handler returning anything but PARLEY_PASS decides and stops the chain
 * (notification points ignore decisions and run every handler). A negative return is a handler error: the
 * point's fail policy (hooks.<point>.fail) applies. */
enum parley_decision {
  PARLEY_PASS = 0,    /* no opinion: ask the next handler */
  PARLEY_ALLOW = 1,   /* accept as is; later handlers are not asked */
  PARLEY_REJECT = 2,  /* refuse; set a reason with api->reject */
  PARLEY_REWRITE = 3, /* accept with changes set by api->rewrite_body / api->rewrite_name */
  PARLEY_ERROR = -1
};

/* The event a handler sees. Fields a point does not have are NULL / 0. Read-only. */
struct parley_event {
  uint32_t size; /* sizeof(struct parley_event) as built by the server: check before reading new fields */
  int32_t point; /* enum parley_hook_point */
  const char *user_id;   /* stable user id ("" before auth) */
  const char *user_name; /* display name ("" before auth) */
  const char *room;      /* join, message, typing, leave */
  uint64_t conn_id;      /* connection id, unique for the server's life */
  const char *client_ip; /* textual peer address */
  const char *body;      /* message: the body as compact JSON text (not NUL-terminated in general) */
  size_t body_len;       /* bytes in body */
  int32_t typing_active; /* typing: 1 started, 0 stopped */
  int32_t reserved_i;
  const void *reserved[4];
};

struct parley_result;     /* opaque; set through the api functions below */
struct parley_plugin_ctx; /* opaque handle of one loaded plugin */

typedef int (*parley_hook_fn)(void *ud, const struct parley_event *ev, struct parley_result *res);
typedef void (*parley_timer_fn)(void *ud);

enum parley_log_level { PARLEY_LOG_ERROR = 0, PARLEY_LOG_WARN, PARLEY_LOG_INFO, PARLEY_LOG_DEBUG };

/* The server's functions for a plugin. `size` is sizeof(struct parley_api) of the server: a plugin built
 * against a newer header checks it before calling a function added later. All functions return 0 or a
 * negative errno code unless stated otherwise. */
struct parley_api {
  uint32_t size;
  uint32_t abi_version; /* PARLEY_PLUGIN_ABI of the server */

  /* Log a line prefixed with "plugin NAME: ". */
  void (*log)(struct parley_plugin_ctx *ctx, int level, const char *fmt, ...)
      __attribute__((format(printf, 3, 4)));
  /* Register fn for a point. Effective priority = plugins.<name>.priority + priority; higher runs first,
   * ties in configuration order. Only valid during init. */
  int (*hook)(struct parley_plugin_ctx *ctx, int point, parley_hook_fn fn, void *ud, int priority);
  /* Publish body_json (compact JSON text, len bytes) into room as the server. */
  int (*publish)(struct parley_plugin_ctx *ctx, const char *room, const char *body_json, size_t len);
  /* Close every connection of user_id with a `kicked` event carrying reason. */
  int (*kick)(struct parley_plugin_ctx *ctx, const char *user_id, const char *reason);
  /* plugins.<name>.<key> from the configuration, as text; NULL when unset. Valid until the next call into
   * the plugin returns (a reload may change it); copy what you keep. */
  const char *(*config_get)(struct parley_plugin_ctx *ctx, const char *key);
  /* The same parsed as an integer (sizes like 4KiB allowed), def when unset; out of [min, max] or not a
   * number: logged and clamped / defaulted, never an error. */
  int64_t (*config_int)(struct parley_plugin_ctx *ctx, const char *key, int64_t def, int64_t min,
                        int64_t max);
  /* One-shot (repeat_ms 0) or repeating timer on the loop; *id (may be NULL) identifies it for timer_stop.
   * Every timer of a plugin is stopped before its shutdown runs. */
  int (*timer_start)(struct parley_plugin_ctx *ctx, uint64_t after_ms, uint64_t repeat_ms, parley_timer_fn cb,
                     void *ud, uint64_t *id);
  int (*timer_stop)(struct parley_plugin_ctx *ctx, uint64_t id);
  /* Result setters, for the res of the running handler only; each returns the decision to return:
   *   return api->reject(res, "no links here");   (PARLEY_REJECT)
   *   return api->rewrite_body(res, "\"hi\"", 4);  (PARLEY_REWRITE; the text must be valid JSON) */
  int (*reject)(struct parley_result *res, const char *reason);
  int (*rewrite_body)(struct parley_result *res, const char *json, size_t len);
  int (*rewrite_name)(struct parley_result *res, const char *name);    /* on_auth: new display name */
  int (*rewrite_user)(struct parley_result *res, const char *user_id); /* on_auth: new user id */
  void *reserved[8];
};

/* The descriptor a plugin exports as `parley_plugin`. */
struct parley_plugin {
  uint32_t magic;       /* PARLEY_PLUGIN_MAGIC */
  uint32_t abi_version; /* PARLEY_PLUGIN_ABI the plugin was built against */
  uint32_t size;        /* sizeof(struct parley_plugin) */
  uint32_t flags;       /* 0 */
  const char *name;     /* short name for logs */
  const char *version;  /* free text */
  /* Register hooks and timers; *state (initially NULL) is passed to shutdown. Nonzero refuses the plugin:
   * whatever it registered is undone. */
  int (*init)(struct parley_plugin_ctx *ctx, const struct parley_api *api, void **state);
  /* Release state; timers are already stopped. May be NULL. */
  void (*shutdown)(void *state);
  /* The configuration was reloaded (SIGHUP, admin reload) and this plugin stays loaded: re-read options
   * with config_get/config_int here. Hooks cannot be added or removed. May be NULL. */
  void (*reload)(struct parley_plugin_ctx *ctx, void *state);
  void *reserved[5];
};

/* The checked header fields, for a designated initializer:
 *   PARLEY_PLUGIN_EXPORT const struct parley_plugin parley_plugin = {
 *       PARLEY_PLUGIN_HEADER, .name = "x", .version = "1", .init = init, .shutdown = fini, .reload = reload};
 */
#define PARLEY_PLUGIN_HEADER                                                                                 \
  .magic = PARLEY_PLUGIN_MAGIC, .abi_version = PARLEY_PLUGIN_ABI, .size = sizeof(struct parley_plugin)
/* The same as a whole initializer without reload. */
#define PARLEY_PLUGIN_INIT(name_, version_, init_, shutdown_)                                                \
  { PARLEY_PLUGIN_HEADER, .name = name_, .version = version_, .init = init_, .shutdown = shutdown_ }

#ifdef __cplusplus
}
#endif
#endif
