/* net/http: the HTTP protocol's routes (/healthz, /metrics, POST /api/dev/login, POST /api/admin/reload),
 * the checks of a WebSocket upgrade (path, draining, server.origins, admission, limits, subprotocol), and
 * the mounts of server.web_root. */
#include "net/internal.h"

#include <stdlib.h>
#include <string.h>

#include "auth/devlogin.h"

#define HTTP_BODY_MAX 4096

/* ---- HTTP ------------------------------------------------------------------------------------------ */

/* Send a complete small response. Returns what the callback should return. */
static int http_respond(struct lws *wsi, unsigned status, const char *ctype, const void *body, size_t len) {
  size_t cap = LWS_PRE + 1024 + len;
  uint8_t *buf = malloc(cap);
  if (!buf) return -1;
  uint8_t *start = buf + LWS_PRE, *p = start, *end = buf + cap - 1;
  if (lws_add_http_common_headers(wsi, status, ctype, (lws_filepos_t)len, &p, end) ||
      lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CACHE_CONTROL, (const unsigned char *)"no-store", 8,
                                   &p, end) ||
      lws_finalize_http_header(wsi, &p, end)) {
    free(buf);
    return -1;
  }
  memcpy(p, body, len);
  p += len;
  int wr = lws_write(wsi, start, (size_t)(p - start), LWS_WRITE_HTTP_FINAL);
  free(buf);
  if (wr < 0) return -1;
  return lws_http_transaction_completed(wsi) ? -1 : 1;
}

static int http_text(struct lws *wsi, unsigned status, const char *text) {
  return http_respond(wsi, status, "text/plain; charset=utf-8", text, strlen(text));
}

static int http_json(struct lws *wsi, unsigned status, json_t *doc) {
  char *text = json_dumps(doc, JSON_COMPACT);
  json_decref(doc);
  if (!text) return -1;
  int rc = http_respond(wsi, status, "application/json", text, strlen(text));
  free(text);
  return rc;
}

static int http_json_error(struct lws *wsi, unsigned status, const char *msg) {
  return http_json(wsi, status, json_pack("{s:s}", "error", msg));
}

/* POST /api/dev/login {"name": "..."} → {"token", "user": {"id", "name"}} (auth.dev_login only). */
static int dev_login(struct net *net, struct lws *wsi, const buf_t *body) {
  json_t *doc = body->len ? json_loadb((const char *)body->data, body->len, 0, NULL) : NULL;
  const char *name = json_string_value(json_object_get(doc, "name"));
  char *token = NULL, *uid = NULL;
  const char *msg = "send {\"name\": \"...\"}";
  int rc;
  char why[200];
  snprintf(why, sizeof why, "%s", msg);
  if (name && devlogin_mint(net->auth, net->cfg, name, &token, &uid, why, sizeof why) == 0)
    rc = http_json(wsi, 200, json_pack("{s:s,s:{s:s,s:s}}", "token", token, "user", "id", uid, "name", name));
  else
    rc = http_json_error(wsi, 400, why);
  free(token);
  free(uid);
  json_decref(doc);
  return rc;
}

static bool offers_known_subprotocol(struct lws *wsi) {
  char hdr[256];
  if (lws_hdr_copy(wsi, hdr, sizeof hdr, WSI_TOKEN_PROTOCOL) <= 0) return false;
  char *save = NULL;
  for (char *t = strtok_r(hdr, ", ", &save); t; t = strtok_r(NULL, ", ", &save))
    if (format_find(t)) return true;
  return false;
}

static const char *peer_ip(struct lws *wsi, char *buf, size_t len) {
  lws_get_peer_simple(wsi, buf, len);
  return buf;
}

/* Whether origin (ol bytes) is one of list's comma-separated entries, or list has "*". */
static bool origin_listed(const char *list, const char *origin, size_t ol) {
  for (const char *p = list; *p;) {
    while (*p == ',' || *p == ' ') p++;
    const char *e = p;
    while (*e && *e != ',') e++;
    const char *t = e;
    while (t > p && t[-1] == ' ') t--;
    size_t n = (size_t)(t - p);
    if ((n == 1 && *p == '*') || (n == ol && !memcmp(p, origin, n))) return true;
    p = e;
  }
  return false;
}

/* Whether the handshake's Origin may connect (server.origins; no Origin header: not a browser, allowed).
 * The Origin is compared in full, whatever its length (limits.max_header_size bounds it): lws_hdr_copy
 * fails when the header does not fit the buffer, so the buffer is sized from lws_hdr_total_length, and
 * any failure to read it refuses. */
static bool origin_allowed(const struct net *net, struct lws *wsi) {
  const char *list = net->cfg->server_origins;
  if (!list || !*list) return true;
  int len = lws_hdr_total_length(wsi, WSI_TOKEN_ORIGIN);
  if (len <= 0) return true; /* no Origin header (or an empty one, which no browser sends) */
  char *origin = malloc((size_t)len + 1);
  bool ok = false;
  if (origin && lws_hdr_copy(wsi, origin, len + 1, WSI_TOKEN_ORIGIN) == len)
    ok = origin_listed(list, origin, (size_t)len);
  free(origin);
  return ok;
}

static int confirm_upgrade(struct net *net, struct lws *wsi, const char *to) {
  struct metrics *m = core_metrics(net->core);
  char uri[256];
  if (lws_hdr_copy(wsi, uri, sizeof uri, WSI_TOKEN_GET_URI) <= 0) uri[0] = 0;
  char *q = strchr(uri, '?');
  if (q) *q = 0;
  int rc = 0, admit;
  char ip[64];
  if (strcmp(to, "websocket"))
    rc = http_text(wsi, 400, "only WebSocket upgrades are supported\n");
  else if (strcmp(uri, "/ws"))
    rc = http_text(wsi, 404, "WebSocket endpoint is /ws\n");
  else if (net->draining)
    rc = http_text(wsi, 503, "server is shutting down\n");
  else if (!origin_allowed(net, wsi))
    rc = http_text(wsi, 403, "this Origin may not connect (server.origins)\n");
  else if ((admit = core_admit(net->core, peer_ip(wsi, ip, sizeof ip))) != 0)
    rc = http_text(wsi, (unsigned)admit,
                   admit == 429 ? "too many connection attempts from your address; retry later\n"
                                : "too many connections from your address (limits.max_connections_per_ip)\n");
  else if (core_conn_count(net->core) >= (size_t)net->cfg->limits_max_connections)
    rc = http_text(wsi, 503, "server is at limits.max_connections\n");
  else if (!offers_known_subprotocol(wsi))
    rc = http_text(wsi, 400,
                   "offer a WebSocket subprotocol: parley.v1.json or parley.v1.msgpack "
                   "(Sec-WebSocket-Protocol)\n");
  if (rc) m->connections_refused++;
  return rc;
}

int http_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len) {
  struct net *net = lws_context_user(lws_get_context(wsi));
  switch (reason) {
  case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
    return confirm_upgrade(net, wsi, in);
  case LWS_CALLBACK_HTTP: {
    char uri[256];
    struct httpconn *hc = user;
    if (lws_hdr_copy(wsi, uri, sizeof uri, WSI_TOKEN_POST_URI) > 0) { /* POST: wait for the body */
      char *q = strchr(uri, '?');
      if (q) *q = 0;
      if (!strcmp(uri, "/api/dev/login") && net->cfg->auth_dev_login) {
        snprintf(hc->path, sizeof hc->path, "%.47s", uri);
        return 0;
      }
      if (!strcmp(uri, "/api/admin/reload") && net->cfg->hooks_admin_key && *net->cfg->hooks_admin_key) {
        char auth[300], want[300];
        snprintf(want, sizeof want, "Bearer %.280s", net->cfg->hooks_admin_key);
        if (lws_hdr_copy(wsi, auth, sizeof auth, WSI_TOKEN_HTTP_AUTHORIZATION) <= 0 || strcmp(auth, want))
          return http_json_error(wsi, 401, "a valid Authorization: Bearer <hooks.admin_key> is required");
        int rc = net->reload ? net->reload(net->reload_ud) : -1;
        return rc ? http_json_error(wsi, 500,
                                    "reload failed; the previous configuration keeps running (see the log)")
                  : http_json(wsi, 200, json_pack("{s:b}", "reloaded", 1));
      }
      return http_text(wsi, 404, "not found\n");
    }
    if (lws_hdr_copy(wsi, uri, sizeof uri, WSI_TOKEN_GET_URI) <= 0)
      return http_text(wsi, 405, "method not allowed\n");
    char *q = strchr(uri, '?');
    if (q) *q = 0;
    if (!strcmp(uri, "/healthz"))
      return net->draining ? http_text(wsi, 503, "draining\n") : http_text(wsi, 200, "ok\n");
    if (!strcmp(uri, "/metrics")) {
      buf_t b = BUF_INIT;
      metrics_render(net->core, &b);
      int rc = http_respond(wsi, 200, "text/plain; version=0.0.4; charset=utf-8", b.data, b.len);
      buf_free(&b);
      return rc;
    }
    return http_text(wsi, 404, "not found\n");
  }
  case LWS_CALLBACK_HTTP_BODY: {
    struct httpconn *hc = user;
    if (hc->body.len + len > HTTP_BODY_MAX)
      hc->too_big = true;
    else if (buf_append(&hc->body, in, len))
      return -1;
    return 0;
  }
  case LWS_CALLBACK_HTTP_BODY_COMPLETION: {
    /* http_respond() completes the transaction, and lws then frees hc (it rebinds the connection to
     * its protocol for the next request): take what is needed out of hc first, touch it no more. */
    struct httpconn *hc = user;
    buf_t body = hc->body; /* now owned here */
    hc->body = (buf_t)BUF_INIT;
    bool too_big = hc->too_big;
    int rc = too_big ? http_json_error(wsi, 413, "body too large") : dev_login(net, wsi, &body);
    buf_free(&body);
    return rc;
  }
  case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
  case LWS_CALLBACK_CLOSED_HTTP:
    if (user) buf_free(&((struct httpconn *)user)->body);
    return lws_callback_http_dummy(wsi, reason, user, in, len);
  default:
    return lws_callback_http_dummy(wsi, reason, user, in, len);
  }
}

static const struct lws_protocol_vhost_options mime_webmanifest = {NULL, NULL, ".webmanifest",
                                                                   "application/manifest+json"};
static const struct lws_protocol_vhost_options mime_map = {&mime_webmanifest, NULL, ".map",
                                                           "application/json"};
static const struct lws_protocol_vhost_options mime_wasm = {&mime_map, NULL, ".wasm", "application/wasm"};
static const struct lws_protocol_vhost_options mime_mjs = {&mime_wasm, NULL, ".mjs", "text/javascript"};

/* Called when server.web_root is set: /healthz, /metrics and /api stay routes of http_callback, the rest
 * is served from the directory. */
void http_mounts(struct net *net, struct lws_context_creation_info *info) {
  net->web_root = config_path(net->cfg, net->cfg->server_web_root);
  struct lws_http_mount *m = net->mounts;
  static const char *const callbacks[] = {"/healthz", "/metrics", "/api"};
  for (int i = 0; i < 3; i++) {
    m[i].mountpoint = callbacks[i];
    m[i].mountpoint_len = (unsigned char)strlen(m[i].mountpoint);
    m[i].origin = "http";
    m[i].origin_protocol = LWSMPRO_CALLBACK;
    m[i].mount_next = &m[i + 1];
  }
  m[3].mountpoint = "/";
  m[3].mountpoint_len = 1;
  m[3].origin = net->web_root;
  m[3].origin_protocol = LWSMPRO_FILE;
  m[3].def = "index.html";
  m[3].extra_mimetypes = &mime_mjs;
  info->mounts = m;
}
