/* A configurable test plugin for tests/integration/test_hooks.py: one handler on every hook point, whose
 * decision comes from the configuration, per instance (load the same .so under several names):
 *
 *   plugins.<name>.on_<point> = pass | allow | reject | rewrite | error     (default pass)
 *   plugins.<name>.reason     = text of the reject reason                    (default "rejected by <name>")
 *   plugins.<name>.rewrite    = on_message: the new body as JSON text; on_auth: the new display name
 *   plugins.<name>.log_room   = room into which every call of on_leave/on_disconnect/on_offline is
 *                               published as {"hook": POINT, "by": NAME, "user": USER, "room": ROOM}
 *
 * Decision points never decide for events in log_room. Options are re-read on reload. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parley/plugin.h"

static const char *const point_names[PARLEY_HOOK__COUNT] = {
    "on_connect", "on_auth", "on_join", "on_message", "on_typing", "on_leave", "on_disconnect", "on_offline"};

enum mode { M_PASS, M_ALLOW, M_REJECT, M_REWRITE, M_ERROR };

struct inst {
  const struct parley_api *api;
  struct parley_plugin_ctx *ctx;
  int mode[PARLEY_HOOK__COUNT];
  char name[64];
  char reason[256];
  char rewrite[1024];
  char log_room[129];
};

static void copy_opt(struct inst *in, const char *key, char *dst, size_t n, const char *def) {
  const char *v = in->api->config_get(in->ctx, key);
  snprintf(dst, n, "%s", v ? v : def);
}

static void reload(struct parley_plugin_ctx *ctx, void *state) {
  struct inst *in = state;
  (void)ctx;
  for (int p = 0; p < PARLEY_HOOK__COUNT; p++) {
    const char *v = in->api->config_get(in->ctx, point_names[p]);
    int m = M_PASS;
    if (v && !strcmp(v, "allow"))
      m = M_ALLOW;
    else if (v && !strcmp(v, "reject"))
      m = M_REJECT;
    else if (v && !strcmp(v, "rewrite"))
      m = M_REWRITE;
    else if (v && !strcmp(v, "error"))
      m = M_ERROR;
    in->mode[p] = m;
  }
  copy_opt(in, "name", in->name, sizeof in->name, "hookall");
  char def[128];
  snprintf(def, sizeof def, "rejected by %s", in->name);
  copy_opt(in, "reason", in->reason, sizeof in->reason, def);
  copy_opt(in, "rewrite", in->rewrite, sizeof in->rewrite, "\"rewritten\"");
  copy_opt(in, "log_room", in->log_room, sizeof in->log_room, "");
}

/* Append s to out as a JSON string (ids and rooms in the tests are plain ASCII). */
static size_t json_str(char *out, size_t pos, size_t cap, const char *s) {
  if (!s) return pos + (size_t)snprintf(out + pos, pos < cap ? cap - pos : 0, "null");
  if (pos < cap) out[pos] = '"';
  pos++;
  for (; *s && pos + 2 < cap; s++) {
    if (*s == '"' || *s == '\\') out[pos++] = '\\';
    out[pos++] = (unsigned char)*s < 0x20 ? '?' : *s;
  }
  if (pos < cap) out[pos] = '"';
  return pos + 1;
}

static int handle(void *ud, const struct parley_event *ev, struct parley_result *res) {
  struct inst *in = ud;
  int p = ev->point;
  if (p < 0 || p >= PARLEY_HOOK__COUNT) return PARLEY_PASS;
  if (p >= PARLEY_HOOK_LEAVE) {
    if (in->log_room[0]) {
      char buf[1024];
      size_t n = (size_t)snprintf(buf, sizeof buf, "{\"hook\":\"%s\",\"by\":", point_names[p]);
      n = json_str(buf, n, sizeof buf, in->name);
      n += (size_t)snprintf(buf + n, sizeof buf - n, ",\"user\":");
      n = json_str(buf, n, sizeof buf, ev->user_id);
      n += (size_t)snprintf(buf + n, sizeof buf - n, ",\"room\":");
      n = json_str(buf, n, sizeof buf, ev->room);
      n += (size_t)snprintf(buf + n, sizeof buf - n, "}");
      if (n < sizeof buf) in->api->publish(in->ctx, in->log_room, buf, n);
    }
    return PARLEY_PASS;
  }
  if (in->log_room[0] && ev->room && !strcmp(ev->room, in->log_room)) return PARLEY_PASS;
  switch (in->mode[p]) {
  case M_ALLOW:
    return PARLEY_ALLOW;
  case M_REJECT:
    return in->api->reject(res, in->reason);
  case M_ERROR:
    return PARLEY_ERROR;
  case M_REWRITE:
    if (p == PARLEY_HOOK_MESSAGE) return in->api->rewrite_body(res, in->rewrite, strlen(in->rewrite));
    if (p == PARLEY_HOOK_AUTH) return in->api->rewrite_name(res, in->rewrite);
    return PARLEY_ERROR;
  default:
    return PARLEY_PASS;
  }
}

static int init(struct parley_plugin_ctx *ctx, const struct parley_api *api, void **state) {
  if (api->size < sizeof *api || api->abi_version != PARLEY_PLUGIN_ABI) return -1;
  struct inst *in = calloc(1, sizeof *in);
  if (!in) return -1;
  in->api = api;
  in->ctx = ctx;
  *state = in;
  reload(ctx, in);
  for (int p = 0; p < PARLEY_HOOK__COUNT; p++) {
    int rc = api->hook(ctx, p, handle, in, 0);
    if (rc) return rc;
  }
  api->log(ctx, PARLEY_LOG_INFO, "hookall %s ready", in->name);
  return 0;
}

static void fini(void *state) { free(state); }

PARLEY_PLUGIN_EXPORT const struct parley_plugin parley_plugin = {PARLEY_PLUGIN_HEADER, .name = "hookall",
                                                                 .version = "1.0",     .init = init,
                                                                 .shutdown = fini,     .reload = reload};
