/* net: libwebsockets server on a foreign libuv loop (see net.h for the write discipline): creation and
 * teardown of the lws context and its protocols. The outbound queue is net/outq.c, the WebSocket
 * callbacks net/ws.c, the HTTP routes net/http.c (their shared state: net/internal.h). */
#include "net/internal.h"

#include "net/net.h"

#include <errno.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util/log.h"

enum { PROTO_HTTP = 0, PROTO_JSON = 1, PROTO_MSGPACK = 2 };

static const struct lws_protocols protocols[] = {
    {"http", http_callback, sizeof(struct httpconn), 0, 0, NULL, 0},
    /* the names are the formats' (registered by net_new before the context exists) */
    {"parley.v1.json", ws_callback, sizeof(struct wsconn), RX_PIECE, 0, &format_v1_json, WRITE_BATCH_MAX},
    {"parley.v1.msgpack", ws_callback, sizeof(struct wsconn), RX_PIECE, 0, &format_v1_msgpack,
     WRITE_BATCH_MAX},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static void lws_log_bridge(int level, const char *line) {
  size_t n = strlen(line);
  while (n && line[n - 1] == '\n') n--;
  log_write(level == LLL_ERR    ? LOG_ERROR
            : level == LLL_WARN ? LOG_WARN
                                : LOG_INFO,
            "lws: %.*s", (int)n, line);
}

/* Can host:port be bound? Checked before lws gets it, so a busy port is a clean error. */
static int probe_listen(const char *host, int port, char *err, size_t errlen) {
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *ai;
  char ps[16];
  snprintf(ps, sizeof ps, "%d", port);
  int rc = getaddrinfo(host, ps, &hints, &ai);
  if (rc) {
    snprintf(err, errlen, "server.host '%s': %s", host, gai_strerror(rc));
    return -1;
  }
  int fd = socket(ai->ai_family, SOCK_STREAM, 0), one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  rc = fd < 0 ? -1 : bind(fd, ai->ai_addr, ai->ai_addrlen);
  if (rc) snprintf(err, errlen, "cannot listen on %s:%d: %s", host, port, strerror(errno));
  if (fd >= 0) close(fd);
  freeaddrinfo(ai);
  return rc ? -1 : 0;
}

struct net *net_new(uv_loop_t *loop, struct core *core, const struct config *cfg, char *err, size_t errlen) {
  if (probe_listen(cfg->server_host, (int)cfg->server_port, err, errlen)) return NULL;
  struct net *net = calloc(1, sizeof *net);
  if (!net) {
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  net->core = core;
  formats_v1_register();
  net->cfg = cfg;
  net->loop = loop;
  lws_set_log_level(log_level_current >= LOG_DEBUG ? (LLL_ERR | LLL_WARN | LLL_NOTICE) : (LLL_ERR | LLL_WARN),
                    lws_log_bridge);

  struct lws_context_creation_info info;
  memset(&info, 0, sizeof info);
  void *loops[] = {loop};
  /* no LWS_SERVER_OPTION_VALIDATE_UTF8: ws_callback checks UTF-8 (see utf8_feed in net/ws.c) */
  info.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_HTTP_HEADERS_SECURITY_BEST_PRACTICES_ENFORCE;
  info.foreign_loops = loops;
  info.port = (int)cfg->server_port;
  info.iface = cfg->server_host;
  if (strchr(cfg->server_host, '.') && !strchr(cfg->server_host, ':'))
    /* lws 4.1 ignores info.iface for an IPv4 address while IPv6 is enabled and listens on every
     * interface: turn IPv6 off so that an IPv4 server.host is the only address listened on */
    info.options |= LWS_SERVER_OPTION_DISABLE_IPV6;
  info.protocols = protocols;
  info.user = net;
  info.max_http_header_data = (unsigned short)cfg->limits_max_header_size;
  info.timeout_secs = (unsigned)((cfg->limits_handshake_timeout + 999) / 1000);
  if (cfg->tls_cert && *cfg->tls_cert) {
    net->tls_cert = config_path(cfg, cfg->tls_cert);
    net->tls_key = config_path(cfg, cfg->tls_key);
    info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
    info.ssl_cert_filepath = net->tls_cert;
    info.ssl_private_key_filepath = net->tls_key;
    net->tls = true;
    info.alpn = "http/1.1"; /* one HTTP/1.1 code path; WebSocket over HTTP/2 is not offered */
  }
  info.fd_limit_per_thread = 0;
  /* no validity timers in lws (see "idle connections" in net/ws.c): a policy with hangup 0 turns them off;
   * without a policy lws would use its default (ping after 5 minutes) */
  static const lws_retry_bo_t retry = {.secs_since_valid_ping = 0, .secs_since_valid_hangup = 0};
  info.retry_and_idle_policy = &retry;
  net->idle_ms = (uint64_t)cfg->limits_idle_timeout;

  if (cfg->server_web_root && *cfg->server_web_root) http_mounts(net, &info);

  info.pcontext = &net->ctx;
  net->ctx = lws_create_context(&info);
  if (net->ctx && !lws_get_vhost_by_name(net->ctx, "default")) {
    /* lws keeps a context whose listener failed. Tearing down a context on a foreign loop leaves libuv
     * close callbacks that point into lws's evlib plugin, so it is not torn down here: the caller exits.
     * probe_listen() below makes this path rare. */
    net->ctx = NULL;
  }
  if (!net->ctx) {
    snprintf(err, errlen, "cannot listen on %s:%lld (address in use or not available?)", cfg->server_host,
             (long long)cfg->server_port);
    free(net->web_root);
    free(net->tls_cert);
    free(net->tls_key);
    free(net);
    return NULL;
  }
  uv_check_init(loop, &net->flush_check);
  net->flush_check.data = net;
  uv_check_start(&net->flush_check, outq_on_check);
  uv_timer_init(loop, &net->hold_timer);
  net->hold_timer.data = net;
  net->hold_max_us = (uint64_t)cfg->server_write_coalesce * 1000;
  if (net->hold_max_us) { /* the load measure needs libuv's idle-time accounting */
    if (uv_loop_configure(loop, UV_METRICS_IDLE_TIME)) net->hold_max_us = 0;
    net->load_t0 = uv_hrtime();
    net->load_idle0 = uv_metrics_idle_time(loop);
  }
  uv_timer_init(loop, &net->idle_timer);
  net->idle_timer.data = net;
  uint64_t tick = net->idle_ms / 8;
  if (tick < 100) tick = 100;
  if (tick > 1000) tick = 1000;
  uv_timer_start(&net->idle_timer, ws_on_idle_timer, tick, tick);
  uv_unref((uv_handle_t *)&net->idle_timer); /* does not keep the loop alive on its own */
  return net;
}

void net_stop_accepting(struct net *net) { net->draining = true; }
void net_set_auth(struct net *net, const struct auth *auth) { net->auth = auth; }
void net_set_reload(struct net *net, int (*fn)(void *ud), void *ud) {
  net->reload = fn;
  net->reload_ud = ud;
}

void net_destroy_in_loop(struct net *net) {
  if (net->ctx) lws_context_destroy(net->ctx);
  if (!uv_is_closing((uv_handle_t *)&net->flush_check)) uv_close((uv_handle_t *)&net->flush_check, NULL);
  if (!uv_is_closing((uv_handle_t *)&net->idle_timer)) uv_close((uv_handle_t *)&net->idle_timer, NULL);
  if (!uv_is_closing((uv_handle_t *)&net->hold_timer)) uv_close((uv_handle_t *)&net->hold_timer, NULL);
}

void net_free(struct net *net) {
  if (!net) return;
  /* With a foreign loop, lws finishes its teardown only in a second lws_context_destroy() after uv_run
   * returned (the first one, in net_destroy_in_loop, needs the loop to run): without it ~330 KB leak. */
  if (net->ctx) lws_context_destroy(net->ctx);
  buf_free(&net->scratch);
  decoder_free(&net->dec);
  frame_unref(net->ping);
  free(net->web_root);
  free(net->tls_cert);
  free(net->tls_key);
  free(net);
}
