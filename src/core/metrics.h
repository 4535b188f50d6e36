/* metrics: process-wide counters, owned by the core and touched only on the loop thread. Rendered in
 * the Prometheus text format for GET /metrics. */
#ifndef PARLEY_CORE_METRICS_H
#define PARLEY_CORE_METRICS_H

#include <stdint.h>

#include "proto/errors.h"
#include "util/buf.h"

struct metrics {
  uint64_t connections_total;     /* WebSocket connections accepted */
  uint64_t connections_refused;   /* handshakes refused (no subprotocol, at capacity, …) */
  uint64_t frames_in, bytes_in;   /* WebSocket messages / payload bytes received */
  uint64_t frames_out, bytes_out; /* frames / bytes queued for clients (framing included) */
  uint64_t messages_total;        /* messages accepted (acknowledged sends, publishes) */
  uint64_t deliveries_total;      /* message events queued to connections */
  uint64_t queue_drops;           /* ephemeral frames dropped under outbound pressure */
  uint64_t slow_closes;           /* connections closed with 4008 */
  uint64_t socket_writes;         /* write system calls to client sockets (each may carry many frames) */
  uint64_t write_holds;           /* flushes deferred by write coalescing (server.write_coalesce) */
  uint64_t socket_rereads;        /* reads repeated in one loop iteration after a read filled lws's buffer */
  uint64_t errors[PERR__COUNT];   /* error replies by code */
};

struct core;
/* Append the exposition text (gauges read from the core) to out. */
int metrics_render(const struct core *core, buf_t *out);
/* The hooks' counters (per script/plugin), appended by metrics_render. */
void core_metrics_hooks(const struct core *core, buf_t *out);

#endif
