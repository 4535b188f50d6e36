#include "core/metrics.h"

#include <inttypes.h>

#include "core/core.h"
#include "core/internal.h"
#include "store/store.h"

#define COUNTER(name, help, value)                                                                           \
  buf_printf(out, "# HELP " name " " help "\n# TYPE " name " counter\n" name " %" PRIu64 "\n",               \
             (uint64_t)(value))
#define GAUGE(name, help, value)                                                                             \
  buf_printf(out, "# HELP " name " " help "\n# TYPE " name " gauge\n" name " %" PRIu64 "\n",                 \
             (uint64_t)(value))

int metrics_render(const struct core *core, buf_t *out) {
  const struct metrics *m = core_metrics((struct core *)core);
  GAUGE("parley_connections", "Open WebSocket connections.", core_conn_count(core));
  GAUGE("parley_rooms", "Rooms in memory.", core_room_count(core));
  GAUGE("parley_users", "Users with a session here (attached or within session.resume_ttl).",
        HASH_COUNT(core->users));
  GAUGE("parley_sessions", "Sessions, attached or detached.", core->session_ops->count(core->session_ctx));
  GAUGE("parley_last_seen_entries", "Last-seen times of users gone offline kept in memory (guests: none).",
        HASH_COUNT(core->seen));
  COUNTER("parley_connections_total", "WebSocket connections accepted.", m->connections_total);
  COUNTER("parley_connections_refused_total", "WebSocket handshakes refused.", m->connections_refused);
  COUNTER("parley_frames_in_total", "WebSocket messages received.", m->frames_in);
  COUNTER("parley_bytes_in_total", "WebSocket payload bytes received.", m->bytes_in);
  COUNTER("parley_frames_out_total", "Frames queued to clients.", m->frames_out);
  COUNTER("parley_bytes_out_total", "Bytes queued to clients, framing included.", m->bytes_out);
  COUNTER("parley_messages_total", "Messages accepted.", m->messages_total);
  COUNTER("parley_deliveries_total", "Message events queued to connections.", m->deliveries_total);
  COUNTER("parley_queue_drops_total", "Ephemeral frames dropped under outbound pressure.", m->queue_drops);
  COUNTER("parley_slow_consumer_closes_total", "Connections closed with 4008 (slow consumer).",
          m->slow_closes);
  COUNTER("parley_socket_writes_total",
          "Write system calls to client sockets (frames per write: "
          "parley_frames_out_total / this).",
          m->socket_writes);
  COUNTER("parley_write_holds_total", "Flushes deferred while the loop was busy (server.write_coalesce).",
          m->write_holds);
  COUNTER("parley_socket_rereads_total",
          "Reads repeated in the same loop iteration because the previous read filled the receive buffer.",
          m->socket_rereads);
  buf_printf(out, "# HELP parley_errors_total Error replies by code.\n# TYPE parley_errors_total counter\n");
  for (int e = 1; e < PERR__COUNT; e++)
    buf_printf(out, "parley_errors_total{code=\"%s\"} %" PRIu64 "\n", perr_name((enum perr)e), m->errors[e]);
  if (core->store) {
    struct store_stats st;
    store_stats(core->store, &st);
    GAUGE("parley_store_pending", "Sends waiting for the store writer.", store_pending_appends(core->store));
    COUNTER("parley_store_commits_total", "Append batches committed or attempted (one transaction each).",
            st.commits);
    COUNTER("parley_store_appends_total", "Sends in those batches (appends / commits: the group size).",
            st.appended);
    COUNTER("parley_store_append_failures_total", "Append batches that failed.", st.append_fails);
    COUNTER("parley_store_checkpoints_total", "SQLite checkpoints run.", st.checkpoints);
    COUNTER(
        "parley_store_wal_restarts_total",
        "Times the writer copied the rest of the WAL at store.sqlite.wal_reset_pages (the WAL starts over).",
        st.wal_restarts);
    COUNTER("parley_store_grouped_writes_total",
            "Membership, read-marker and last-seen writes that shared a transaction with others waiting with "
            "them.",
            st.grouped);
  }
  core_metrics_hooks(core, out);
  return 0;
}
