/* net/internal.h: what the files of net/ share, and nothing else includes. net.c creates and tears down
 * the lws context; outq.c holds the per-connection outbound queue, its flush (direct sendmsg() on plain TCP)
 * and write coalescing (the uv_check callback); ws.c the WebSocket protocol callbacks (receive reassembly,
 * UTF-8, close handling, idle pings, rereads); http.c the HTTP routes, the upgrade checks and the static
 * mount. */
#ifndef PARLEY_NET_INTERNAL_H
#define PARLEY_NET_INTERNAL_H

#include <uv.h> /* before libwebsockets.h, as its libuv glue needs */

#include <libwebsockets.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "core/core.h"
#include "proto/v1.h"
#include "util/buf.h"
#include "util/frame.h"

#define WRITE_BATCH_MAX (256 * 1024) /* bytes gathered into one lws_write */

/* RX_PIECE is the protocols' rx_buffer_size. lws keeps a buffer of that size (+ LWS_PRE + 4) for every
 * WebSocket connection from the upgrade on, reads at most that much from a connection per poll event, and
 * hands longer messages over in pieces of that size, which LWS_CALLBACK_RECEIVE reassembles. 1024 instead
 * of 4096 takes 3 KB off every idle connection (M: 6.8 -> 3.8 KB). But one read of 1 KB per loop iteration
 * starves a connection that sends faster than that (A at 400k deliveries/s, where each sender sends 400
 * messages/s: p99 0.2-0.9 s instead of ~50 ms), so a connection whose read filled the buffer is read again
 * in the same iteration (the reread list, outq_on_check), up to REREAD_MAX more times. A read that finds
 * nothing costs one recv() that returns EAGAIN. tx_packet_size must not be 0: lws would then cut every write
 * into pieces of rx_buffer_size and keep the rest for later POLLOUTs; our writes are batched up to
 * WRITE_BATCH_MAX. */
#define RX_PIECE   1024
#define REREAD_MAX 7

struct wsconn;

struct utf8_state {
  uint8_t need;   /* continuation bytes still to come */
  uint8_t lo, hi; /* the range of the next continuation byte */
};

struct net {
  struct lws_context *ctx;
  struct core *core;
  const struct config *cfg;
  uv_loop_t *loop;
  uv_check_t flush_check;
  struct wsconn *dirty_head;  /* connections with frames to write this iteration */
  struct wsconn *reread_head; /* connections whose last read filled lws's receive buffer: read again */
  uint32_t rx_epoch; /* loop iterations (outq_on_check), to tell this iteration's reads from older ones */
  struct wsconn *held_head; /* dirty connections whose flush waits for hold_timer (coalescing) */
  uv_timer_t hold_timer;
  uint64_t hold_max_us;                 /* server.write_coalesce in µs; 0: off */
  uint64_t hold_us;                     /* the current window: 0 while the loop is not busy */
  uint64_t load_t0;                     /* start of the current load sample (uv_hrtime ns) */
  uint64_t load_idle0;                  /* uv_metrics_idle_time at load_t0 */
  double load;                          /* share of the recent wall time the loop spent working, 0..1 */
  uv_timer_t idle_timer;                /* pings idle connections, closes the ones that did not answer */
  struct wsconn *idle_head, *idle_tail; /* by due time: every entry uses the same interval */
  uint64_t idle_ms;
  frame_t *ping;      /* a WebSocket ping, shared by every connection */
  buf_t scratch;      /* LWS_PRE + gathered frames */
  struct decoder dec; /* the wire formats' decoding scratch (this loop's) */
  bool draining;
  bool tls;                /* writes go through lws_write; plain TCP writes go to the socket directly */
  const struct auth *auth; /* borrowed: for the development login */
  int (*reload)(void *ud); /* the admin reload endpoint's action */
  void *reload_ud;
  char *web_root;           /* owned */
  char *tls_cert, *tls_key; /* owned: resolved paths */
  struct lws_http_mount mounts[4];
};

/* Per-request state of the HTTP protocol (lws allocates it zeroed, frees it after the request). */
struct httpconn {
  char path[48];
  buf_t body;
  bool too_big;
};

/* Per-connection state; lws allocates it zeroed (per_session_data_size) and frees it after CLOSED. */
struct wsconn {
  struct lws *wsi;
  struct net *net;
  struct conn *conn;
  frame_t **q; /* ring of queued frames, each holding one reference */
  uint32_t qhead, qlen, qcap;
  size_t qbytes;
  buf_t rx; /* reassembly of a fragmented message */
  bool in_message;
  bool dirty;
  bool held;              /* dirty, and on net->held_head instead of net->dirty_head */
  uint32_t last_flush_us; /* uv_hrtime() / 1000 of the last flush, wrapping */
  bool ping_out;          /* a ping is out; the connection is closed if nothing arrives before idle_due */
  struct wsconn *dirty_prev, *dirty_next;
  struct wsconn *idle_prev, *idle_next;
  struct wsconn *reread_prev, *reread_next;
  bool reread;          /* on net->reread_head */
  uint8_t rx_rounds;    /* reads of this connection in this iteration beyond lws's own (at most REREAD_MAX) */
  uint32_t rx_epoch;    /* net->rx_epoch when rx_bytes was counted */
  uint32_t rx_bytes;    /* wire bytes lws handed over from this connection's current read (estimated) */
  uint64_t idle_due;    /* uv_now() ms */
  int close_code;       /* nonzero: close at the next WRITEABLE */
  int peer_code;        /* the close code the client sent, 0: none */
  bool close_sent;      /* our close frame is written: close the socket once lws has sent it */
  char *close_reason;   /* owned; set with close_code */
  bool ended;           /* a callback of ours ended the connection (returned -1, or the idle kill) */
  bool peer_closed;     /* the client sent a close frame */
  struct utf8_state u8; /* the text message being received, checked piece by piece */
};

/* outq.c: the transport the core writes through (outq_send queues a frame, dirty-marks the connection). */
extern const struct conn_tx outq_tx;
/* Queue f for w (as outq_tx.send). 0, or -1 if the connection is closing. */
int outq_send(void *ctx, frame_t *f);
/* Write what w's queue holds, as far as the socket takes it. -1 if the connection failed. */
int outq_flush(struct wsconn *w);
/* Write w's close frame (close_code + close_reason) as raw bytes. -1 if the write failed. */
int outq_send_close_frame(struct wsconn *w);
/* Take w off the dirty or held list. */
void outq_dirty_unlink(struct wsconn *w);
/* Drop every queued frame. */
void outq_clear(struct wsconn *w);
/* The uv_check callback (handle data: the net): rereads, then flushes or holds the dirty connections. */
void outq_on_check(uv_check_t *h);

/* ws.c */
int ws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len);
/* Read again the connections on net->reread_head (called by outq_on_check before the flushes). */
void ws_reread(struct net *net);
/* The idle timer's callback (handle data: the net): pings idle connections, ends unanswered ones. */
void ws_on_idle_timer(uv_timer_t *t);

/* http.c */
int http_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len);
/* Fill net->mounts for server.web_root (the API routes, then the files) and point info at them. */
void http_mounts(struct net *net, struct lws_context_creation_info *info);

#endif
