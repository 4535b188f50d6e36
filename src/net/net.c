/* net: libwebsockets server on a foreign libuv loop (see net.h for the write discipline). */
#include <uv.h> /* before libwebsockets.h, as its libuv glue needs */

#include <libwebsockets.h>

#include "net/net.h"

#include <errno.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "auth/devlogin.h"
#include "net/ws.h"
#include "proto/v1.h"
#include "util/buf.h"
#include "util/log.h"

#define WRITE_BATCH_MAX (256 * 1024) /* bytes gathered into one lws_write */

/* RX_PIECE is the protocols' rx_buffer_size. lws keeps a buffer of that size (+ LWS_PRE + 4) for every
 * WebSocket connection from the upgrade on, reads at most that much from a connection per poll event, and
 * hands longer messages over in pieces of that size, which LWS_CALLBACK_RECEIVE reassembles. 1024 instead
 * of 4096 takes 3 KB off every idle connection (M: 6.8 -> 3.8 KB). But one read of 1 KB per loop iteration
 * starves a connection that sends faster than that (A at 400k deliveries/s, where each sender sends 400
 * messages/s: p99 0.2-0.9 s instead of ~50 ms), so a connection whose read filled the buffer is read again
 * in the same iteration (the reread list, on_check), up to REREAD_MAX more times. A read that finds nothing
 * costs one recv() that returns EAGAIN. tx_packet_size must not be 0: lws would then cut every write into
 * pieces of rx_buffer_size and keep the rest for later POLLOUTs; our writes are batched up to
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
  uint32_t rx_epoch;          /* loop iterations (on_check), to tell this iteration's reads from older ones */
  struct wsconn *held_head;   /* dirty connections whose flush waits for hold_timer (coalescing) */
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

#define HTTP_BODY_MAX 4096

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

enum { PROTO_HTTP = 0, PROTO_JSON = 1, PROTO_MSGPACK = 2 };

/* ---- UTF-8 of text messages and close reasons ------------------------------------------------------
 *
 * Checked here, not by lws (LWS_SERVER_OPTION_VALIDATE_UTF8 is off): lws 4.1 checks a close frame's
 * reason before it tells the application about the close frame, and on invalid UTF-8 closes the TCP
 * connection without a close frame (it also accepts a reason that ends inside a character). Here a text
 * message that is not UTF-8 closes with 1007 and such a close reason with 1002. */

/* Feed n bytes of a message to the strict UTF-8 check (RFC 3629: no overlong forms, no surrogates,
 * nothing above U+10FFFF); st carries a character split between pieces. False at the first invalid
 * byte. The message is complete and valid if, after its last piece, st->need is 0. */
static bool utf8_feed(struct utf8_state *st, const uint8_t *s, size_t n) {
  uint8_t need = st->need, lo = st->lo, hi = st->hi;
  size_t i = 0;
  while (i < n) {
    if (need) {
      uint8_t c = s[i++];
      if (c < lo || c > hi) return false;
      need--;
      lo = 0x80;
      hi = 0xbf;
      continue;
    }
    while (n - i >= 8) { /* ASCII, 8 bytes at a time */
      uint64_t v;
      memcpy(&v, s + i, 8);
      if (v & 0x8080808080808080ull) break;
      i += 8;
    }
    if (i == n) break;
    uint8_t c = s[i++];
    if (c < 0x80) continue;
    if (c < 0xc2 || c > 0xf4) return false;
    need = c < 0xe0 ? 1 : c < 0xf0 ? 2 : 3;
    lo = c == 0xe0 ? 0xa0 : c == 0xf0 ? 0x90 : 0x80;
    hi = c == 0xed ? 0x9f : c == 0xf4 ? 0x8f : 0xbf;
  }
  st->need = need;
  st->lo = lo;
  st->hi = hi;
  return true;
}

/* ---- outbound queue -------------------------------------------------------------------------------- */

static void dirty_unlink(struct wsconn *w) {
  if (!w->dirty) return;
  if (w->dirty_prev)
    w->dirty_prev->dirty_next = w->dirty_next;
  else if (w->held)
    w->net->held_head = w->dirty_next;
  else
    w->net->dirty_head = w->dirty_next;
  if (w->dirty_next) w->dirty_next->dirty_prev = w->dirty_prev;
  w->dirty_prev = w->dirty_next = NULL;
  w->dirty = w->held = false;
}

static void reread_push(struct wsconn *w) {
  struct net *net = w->net;
  w->reread = true;
  w->reread_prev = NULL;
  w->reread_next = net->reread_head;
  if (net->reread_head) net->reread_head->reread_prev = w;
  net->reread_head = w;
}

static void reread_unlink(struct wsconn *w) {
  if (!w->reread) return;
  if (w->reread_prev)
    w->reread_prev->reread_next = w->reread_next;
  else
    w->net->reread_head = w->reread_next;
  if (w->reread_next) w->reread_next->reread_prev = w->reread_prev;
  w->reread_prev = w->reread_next = NULL;
  w->reread = false;
}

/* Put a dirty connection (already unlinked) on the held list: hold_timer flushes it. */
static void hold(struct wsconn *w) {
  struct net *net = w->net;
  core_metrics(net->core)->write_holds++;
  w->dirty = w->held = true;
  w->dirty_prev = NULL;
  w->dirty_next = net->held_head;
  if (w->dirty_next) w->dirty_next->dirty_prev = w;
  net->held_head = w;
}

static void dirty_mark(struct wsconn *w) {
  if (w->dirty) return;
  w->dirty = true;
  w->dirty_prev = NULL;
  w->dirty_next = w->net->dirty_head;
  if (w->dirty_next) w->dirty_next->dirty_prev = w;
  w->net->dirty_head = w;
}

/* ---- idle connections ------------------------------------------------------------------------------
 *
 * lws 4.1 keeps its per-connection timers (the retry policy's validity ping/hangup among them) in one list
 * per thread sorted by insertion, walked from the head on every insert: with a 60 s interval every new
 * connection walks all the others, which made connecting 10k clients quadratic (36% of the server's CPU
 * in lws_dll2_add_sorted). lws's validity timer is therefore off (secs_since_valid_hangup = 0) and idle
 * connections are pinged from here: one FIFO list, in due order because every entry is due idle_ms
 * after its last activity, and one timer. O(1) per touch. */

static void idle_unlink(struct wsconn *w) {
  if (!w->idle_due) return;
  if (w->idle_prev)
    w->idle_prev->idle_next = w->idle_next;
  else
    w->net->idle_head = w->idle_next;
  if (w->idle_next)
    w->idle_next->idle_prev = w->idle_prev;
  else
    w->net->idle_tail = w->idle_prev;
  w->idle_prev = w->idle_next = NULL;
  w->idle_due = 0;
}

static void idle_append(struct wsconn *w, uint64_t due) {
  struct net *net = w->net;
  w->idle_due = due ? due : 1;
  w->idle_next = NULL;
  w->idle_prev = net->idle_tail;
  if (net->idle_tail)
    net->idle_tail->idle_next = w;
  else
    net->idle_head = w;
  net->idle_tail = w;
}

/* Something arrived from the client: it is alive for another idle_ms. */
static void idle_touch(struct wsconn *w) {
  uint64_t due = uv_now(w->net->loop) + w->net->idle_ms;
  w->ping_out = false;
  if (w->idle_due == due) return; /* already the latest: nothing to move in this millisecond */
  idle_unlink(w);
  idle_append(w, due);
}

static int tx_send(void *ctx, frame_t *f);

static void on_idle_timer(uv_timer_t *t) {
  struct net *net = t->data;
  uint64_t now = uv_now(net->loop);
  if (!net->ping) {
    net->ping = frame_from("p", 1, 0); /* with a payload: lws 4.1 does not report an empty pong */
    if (!net->ping) return;
    memcpy(frame_payload(net->ping) - 2, "\x89\x01", 2); /* a ping frame, not ws_frame's text frame */
    net->ping->head = 2;
  }
  while (net->idle_head && net->idle_head->idle_due <= now) {
    struct wsconn *w = net->idle_head;
    idle_unlink(w);
    if (w->ping_out) { /* no pong, nothing else either: the peer is gone. (An async kill would wait for
                        * lws's next timer service, which nothing schedules on a foreign loop.) */
      w->ended = true;
      lws_set_timeout(w->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_SYNC);
      continue;
    }
    w->ping_out = true;
    idle_append(w, now + net->idle_ms);
    if (!w->close_code) tx_send(w, net->ping);
  }
}

static void q_clear(struct wsconn *w) {
  for (uint32_t i = 0; i < w->qlen; i++) frame_unref(w->q[(w->qhead + i) % w->qcap]);
  w->qhead = w->qlen = 0;
  w->qbytes = 0;
}

/* Drop every ephemeral frame still queued, keeping the order of the rest. */
static void q_drop_ephemeral(struct wsconn *w) {
  uint32_t kept = 0;
  for (uint32_t i = 0; i < w->qlen; i++) {
    frame_t *f = w->q[(w->qhead + i) % w->qcap];
    if (f->flags & FRAME_EPHEMERAL) {
      w->qbytes -= ws_len(f);
      core_metrics(w->net->core)->queue_drops++;
      frame_unref(f);
    } else {
      w->q[(w->qhead + kept) % w->qcap] = f;
      kept++;
    }
  }
  w->qlen = kept;
}

static void request_close(struct wsconn *w, int code, const char *reason) {
  if (w->close_code) return;
  w->close_code = code;
  w->close_reason = strdup(reason ? reason : ""); /* NULL (out of memory): no reason text */
  lws_callback_on_writable(w->wsi);
}

static int tx_send(void *ctx, frame_t *f) {
  struct wsconn *w = ctx;
  if (w->close_code) return -1;
  struct metrics *m = core_metrics(w->net->core);
  size_t bound = (size_t)w->net->cfg->limits_out_queue_bytes;
  ws_frame(f); /* once per frame, whatever its number of recipients */
  size_t flen = ws_len(f);
  if (w->qbytes && w->qbytes + flen > bound) { /* an empty queue takes any one frame (a big reply) */
    if (f->flags & FRAME_EPHEMERAL) {
      m->queue_drops++;
      return 0;
    }
    q_drop_ephemeral(w);
    if (w->qbytes && w->qbytes + flen > bound) {
      q_clear(w);
      m->slow_closes++;
      log_info("closing a slow consumer: outbound queue over %zu bytes", bound);
      request_close(w, WS_CLOSE_SLOW_CONSUMER, "slow consumer");
      return -1;
    }
  }
  if (w->qlen == w->qcap) {
    uint32_t cap = w->qcap ? w->qcap * 2 : 8;
    frame_t **q = malloc(cap * sizeof *q);
    if (!q) {
      request_close(w, WS_CLOSE_INTERNAL, "out of memory");
      return -1;
    }
    for (uint32_t i = 0; i < w->qlen; i++) q[i] = w->q[(w->qhead + i) % w->qcap];
    free(w->q);
    w->q = q;
    w->qhead = 0;
    w->qcap = cap;
  }
  w->q[(w->qhead + w->qlen++) % w->qcap] = frame_ref(f);
  w->qbytes += flen;
  m->frames_out++;
  m->bytes_out += flen;
  dirty_mark(w);
  return 0;
}

static void tx_close(void *ctx, enum conn_close_why why, const char *reason) {
  request_close(ctx, ws_close_code(why), reason);
}
static size_t tx_queued(void *ctx) { return ((struct wsconn *)ctx)->qbytes; }

static const struct conn_tx ws_tx = {tx_send, tx_close, tx_queued};

static void q_pop(struct wsconn *w) {
  frame_t *f = w->q[w->qhead];
  w->qbytes -= ws_len(f);
  frame_unref(f);
  w->qhead = (w->qhead + 1) % w->qcap;
  w->qlen--;
}

/* The queue is empty: give its ring back (an idle connection keeps none; malloc is cheap next to the
 * send() that emptied it). */
static void q_release(struct wsconn *w) {
  free(w->q);
  w->q = NULL;
  w->qhead = w->qcap = 0;
}

/* TLS: gather frames into the scratch buffer and write them with one lws_write. */
static int flush_lws(struct wsconn *w) {
  buf_t *s = &w->net->scratch;
  s->len = 0;
  if (buf_reserve(s, LWS_PRE)) return -1;
  s->len = LWS_PRE;
  uint32_t n = 0;
  while (n < w->qlen) {
    frame_t *f = w->q[(w->qhead + n) % w->qcap];
    if (n && s->len - LWS_PRE + ws_len(f) > WRITE_BATCH_MAX) break;
    if (buf_append(s, ws_bytes(f), ws_len(f))) break;
    n++;
  }
  if (!n) return -1; /* out of memory for even one frame */
  size_t len = s->len - LWS_PRE;
  int wr = lws_write(w->wsi, s->data + LWS_PRE, len, LWS_WRITE_RAW);
  core_metrics(w->net->core)->socket_writes++;
  for (uint32_t i = 0; i < n; i++) q_pop(w);
  if (wr < (int)len) {
    log_debug("lws_write returned %d for %zu bytes", wr, len);
    return -1;
  }
  return 0;
}

/* Plain TCP: one sendmsg() of up to IOV_BATCH queued frames straight from their shared buffers, no copy
 * and no lws bookkeeping. Only called when lws holds nothing of ours, so the byte stream stays in order.
 * A short write that ends inside a frame hands that frame's rest to lws_write, which keeps what the
 * socket does not take and sends it before anything else (lws's own pongs and close frames included);
 * the next flush waits for it (lws_partial_buffered). Returns -1 if the connection failed. */
#define IOV_BATCH 64
static int flush_direct(struct wsconn *w) {
  int fd = lws_get_socket_fd(w->wsi);
  if (fd < 0) return -1;
  while (w->qlen) {
    struct iovec iov[IOV_BATCH];
    uint32_t n = 0;
    size_t len = 0;
    while (n < w->qlen && n < IOV_BATCH && len < WRITE_BATCH_MAX) {
      frame_t *f = w->q[(w->qhead + n) % w->qcap];
      iov[n].iov_base = (void *)ws_bytes(f);
      iov[n].iov_len = ws_len(f);
      len += ws_len(f);
      n++;
    }
    struct msghdr mh = {.msg_iov = iov, .msg_iovlen = n};
    ssize_t wr = sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
    core_metrics(w->net->core)->socket_writes++;
    if (wr < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) break; /* socket full */
      log_debug("sendmsg: %s", strerror(errno));
      return -1;
    }
    size_t left = (size_t)wr;
    while (left && left >= ws_len(w->q[w->qhead])) {
      left -= ws_len(w->q[w->qhead]);
      q_pop(w);
    }
    if (left) { /* inside a frame: lws keeps the rest (it needs LWS_PRE bytes before what it writes) */
      frame_t *f = w->q[w->qhead];
      size_t rest = ws_len(f) - left;
      buf_t *s = &w->net->scratch;
      s->len = 0;
      if (buf_reserve(s, LWS_PRE + rest)) return -1;
      memcpy(s->data + LWS_PRE, ws_bytes(f) + left, rest);
      int lw = lws_write(w->wsi, s->data + LWS_PRE, rest, LWS_WRITE_RAW);
      q_pop(w);
      if (lw < (int)rest) return -1;
      break;
    }
    if ((size_t)wr < len) break; /* socket full, at a frame boundary */
  }
  return 0;
}

/* Write what w's queue holds, as far as the socket takes it. Returns -1 if the connection failed. */
static int flush(struct wsconn *w) {
  if (!w->qlen) return 0;
  /* lws_send_pipe_choked() costs a poll() syscall per call; lws_partial_buffered() only looks at what
   * lws still holds of our previous write, which is all that matters: lws keeps a short write's rest and
   * sends it before anything else, and we write again only once it has drained. */
  if (lws_partial_buffered(w->wsi)) {
    lws_callback_on_writable(w->wsi);
    return 0;
  }
  if ((w->net->tls ? flush_lws(w) : flush_direct(w)) < 0) return -1;
  if (!w->qlen) {
    q_release(w);
    if (w->conn && !w->close_code) core_conn_drained(w->net->core, w->conn); /* may queue more */
  }
  if (w->qlen) lws_callback_on_writable(w->wsi);
  return 0;
}

/* Write a close frame (code + reason) as raw bytes. Returns -1 if the write failed. */
static int send_close_frame(struct wsconn *w) {
  uint8_t frame[LWS_PRE + 2 + 2 + 123];
  size_t rl = w->close_reason ? strlen(w->close_reason) : 0;
  if (rl > 123) rl = 123;
  uint8_t *p = frame + LWS_PRE;
  p[0] = 0x88; /* FIN + close */
  p[1] = (uint8_t)(2 + rl);
  p[2] = (uint8_t)(w->close_code >> 8);
  p[3] = (uint8_t)(w->close_code & 0xff);
  if (rl) memcpy(p + 4, w->close_reason, rl);
  return lws_write(w->wsi, p, 4 + rl, LWS_WRITE_RAW) < 0 ? -1 : 0;
}

/* ---- write coalescing -----------------------------------------------------------------------------
 *
 * Every send() on loopback TCP costs ~11 µs of kernel time (it also runs the receiver's TCP input), far
 * more than the frames it carries. While the loop is busy, a connection that was flushed less than
 * hold_us ago is therefore not flushed again at once: its frames wait on the held list, and hold_timer
 * flushes them all together after at most hold_us, so several frames share one send(). A connection
 * that was quiet for hold_us is flushed at once, and while the loop is not busy (load < LOAD_LOW)
 * hold_us is 0: a lightly loaded server adds no latency. hold_us grows with the load up to
 * server.write_coalesce. The load is the share of wall time the loop spent outside epoll_wait
 * (uv_metrics_idle_time), sampled every LOAD_SAMPLE_NS. */
#define LOAD_SAMPLE_NS   10000000ull /* 10 ms */
#define LOAD_LOW         0.5
#define LOAD_HIGH        0.9
#define HOLD_FLUSH_BYTES (32 * 1024) /* this much queued is flushed at once: enough to amortize a send */

static void load_sample(struct net *net, uint64_t now_ns) {
  if (!net->hold_max_us) return;
  uint64_t dt = now_ns - net->load_t0;
  if (dt < LOAD_SAMPLE_NS) return;
  uint64_t idle = uv_metrics_idle_time(net->loop);
  double busy = 1.0 - (double)(idle - net->load_idle0) / (double)dt;
  if (busy < 0) busy = 0;
  net->load = 0.5 * net->load + 0.5 * busy;
  net->load_t0 = now_ns;
  net->load_idle0 = idle;
  double f = (net->load - LOAD_LOW) / (LOAD_HIGH - LOAD_LOW);
  if (f <= 0)
    net->hold_us = 0;
  else
    net->hold_us = (uint64_t)((double)net->hold_max_us * (f > 1 ? 1 : f));
}

static void flush_one(struct wsconn *w, uint32_t now_us) {
  w->last_flush_us = now_us;
  if (flush(w)) request_close(w, WS_CLOSE_INTERNAL, "write failed");
}

static void flush_held(struct net *net) {
  uint32_t now_us = (uint32_t)(uv_hrtime() / 1000);
  while (net->held_head) {
    struct wsconn *w = net->held_head;
    dirty_unlink(w);
    if (w->close_code) continue; /* WRITEABLE finishes it */
    flush_one(w, now_us);
  }
}

static void on_hold_timer(uv_timer_t *t) { flush_held(t->data); }

/* Read again, once each, the connections whose read in this iteration filled lws's buffer (RX_PIECE); a
 * read that fills it again puts its connection back on the list, up to REREAD_MAX times per iteration. */
static void reread(struct net *net) {
  while (net->reread_head) {
    struct wsconn *w = net->reread_head;
    reread_unlink(w);
    if (w->close_code || !w->conn) continue;
    w->rx_rounds++;
    w->rx_bytes = 0;
    core_metrics(net->core)->socket_rereads++;
    struct lws_pollfd pfd = {.fd = lws_get_socket_fd(w->wsi), .events = LWS_POLLIN, .revents = LWS_POLLIN};
    lws_service_fd_tsi(net->ctx, &pfd, 0); /* as lws's own poll callback does; CLOSED may free w here */
  }
}

static void on_check(uv_check_t *h) {
  struct net *net = h->data;
  if (net->reread_head) reread(net); /* before the flushes: what it reads may queue frames */
  net->rx_epoch++;
  if (!net->dirty_head) return;
  uint64_t now_ns = uv_hrtime();
  load_sample(net, now_ns);
  uint32_t now_us = (uint32_t)(now_ns / 1000), hold_us = (uint32_t)net->hold_us;
  if (!hold_us && net->held_head) flush_held(net); /* the load went down: nothing waits any more */
  while (net->dirty_head) {
    struct wsconn *w = net->dirty_head;
    dirty_unlink(w);
    if (w->close_code) continue; /* WRITEABLE finishes it */
    if (hold_us && now_us - w->last_flush_us < hold_us && w->qbytes < HOLD_FLUSH_BYTES) {
      hold(w);
      if (!uv_is_active((uv_handle_t *)&net->hold_timer))
        uv_timer_start(&net->hold_timer, on_hold_timer, (hold_us + 999) / 1000, 0);
      continue;
    }
    flush_one(w, now_us);
  }
}

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

static int cb_http(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len) {
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

/* ---- WebSocket --------------------------------------------------------------------------------------- */

/* End the connection from inside a ws callback (which then returns what this returns): lws sends a close
 * frame with code and why, or none when code is 0 (the socket failed). */
static int ws_fail(struct wsconn *w, int code, const char *why) {
  w->ended = true;
  if (code) lws_close_reason(w->wsi, (enum lws_close_status)code, (unsigned char *)why, strlen(why));
  return -1;
}

/* lws is closing w's connection (LWS_CALLBACK_WS_SERVER_DROP_PROTOCOL; lws sends the close frame set
 * with lws_close_reason, if any, right after, unless the socket is gone: a client that closed or reset
 * TCP gets nothing). When no callback of ours ended the connection and the client sent no close frame,
 * lws's frame parser refused what the client sent. For some violations lws 4.1 sets no close reason and
 * would drop the TCP connection without a close frame: a control frame longer than 125 bytes, a 64-bit
 * payload length with its top bit set. Those get 1002 here (the ones lws gives a reason of its own, all
 * 1002, too). A close we had asked for but not yet written is sent instead. */
static void ws_dropping(struct wsconn *w, struct lws *wsi) {
  if (!w->net || w->ended || w->peer_closed || w->close_sent) return;
  int code = w->close_code ? w->close_code : WS_CLOSE_PROTOCOL;
  const char *why = w->close_code ? (w->close_reason ? w->close_reason : "") : "protocol error";
  size_t len = strlen(why);
  lws_close_reason(wsi, (enum lws_close_status)code, (unsigned char *)why, len > 123 ? 123 : len);
  w->close_code = code; /* nothing more is queued or read */
}

/* The wire format of the connection's subprotocol: the protocol's user pointer (protocols[] below; one
 * pointer per protocol rather than one per connection). */
static const struct format *ws_format(struct lws *wsi) { return lws_get_protocol(wsi)->user; }

/* One complete message of w's client: decoded by the connection's format, handed to the core. */
static void ws_message(struct net *net, struct wsconn *w, const uint8_t *p, size_t n, bool binary) {
  struct metrics *m = core_metrics(net->core);
  m->frames_in++;
  m->bytes_in += n;
  struct request req;
  char err[256];
  enum perr rc = ws_format(w->wsi)->decode(&net->dec, p, n, binary, &req, err, sizeof err);
  if (rc == PERR_OK)
    core_conn_request(net->core, w->conn, &req);
  else
    core_conn_refused(net->core, w->conn, req.id, rc, err);
  decoder_done(&net->dec, &req);
}

static int cb_ws(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len) {
  struct wsconn *w = user;
  struct net *net = lws_context_user(lws_get_context(wsi));
  switch (reason) {
  case LWS_CALLBACK_ESTABLISHED: {
    w->wsi = wsi;
    w->net = net;
    char peer[64];
    lws_get_peer_simple(wsi, peer, sizeof peer);
    w->conn = core_conn_open(net->core, ws_format(wsi), &ws_tx, w, peer);
    if (!w->conn) return ws_fail(w, WS_CLOSE_INTERNAL, "out of memory");
    idle_touch(w);
    return 0;
  }
  case LWS_CALLBACK_RECEIVE_PONG:
    idle_touch(w);
    return 0;
  case LWS_CALLBACK_RECEIVE: {
    if (!w->conn || w->close_code) return 0;
    idle_touch(w);
    if (w->rx_epoch != net->rx_epoch) { /* the first message of this iteration's read */
      w->rx_epoch = net->rx_epoch;
      w->rx_bytes = 0;
      w->rx_rounds = 0;
    }
    w->rx_bytes += (uint32_t)len + (len > 125 ? 8 : 6); /* + the frame header of a masked client frame */
    if (w->rx_bytes >= RX_PIECE / 2 && !w->reread && w->rx_rounds < REREAD_MAX) reread_push(w);
    if (!w->in_message) {
      w->rx.len = 0;
      w->in_message = true;
      w->u8 = (struct utf8_state){0, 0x80, 0xbf};
    }
    if (w->rx.len + len > (size_t)net->cfg->limits_max_frame)
      return ws_fail(w, WS_CLOSE_TOO_BIG, "frame larger than limits.max_frame");
    bool final = lws_is_final_fragment(wsi) && !lws_remaining_packet_payload(wsi);
    if (!lws_frame_is_binary(wsi) && (!utf8_feed(&w->u8, in, len) || (final && w->u8.need)))
      return ws_fail(w, WS_CLOSE_BAD_UTF8, "text frame is not valid UTF-8");
    if (final && w->rx.len == 0) { /* the whole message in one piece: no copy */
      w->in_message = false;
      ws_message(net, w, in, len, lws_frame_is_binary(wsi));
      return 0;
    }
    if (buf_append(&w->rx, in, len)) return ws_fail(w, WS_CLOSE_INTERNAL, "out of memory");
    if (final) {
      w->in_message = false;
      ws_message(net, w, w->rx.data, w->rx.len, lws_frame_is_binary(wsi));
      buf_free(&w->rx); /* messages longer than RX_PIECE are rare: keep no buffer per idle connection */
    }
    return 0;
  }
  case LWS_CALLBACK_SERVER_WRITEABLE:
    if (w->close_code) {
      if (lws_partial_buffered(wsi)) { /* lws still sends the rest of an earlier write */
        lws_callback_on_writable(wsi);
        return 0;
      }
      if (w->close_sent) return ws_fail(w, 0, NULL);
      if (w->qlen && w->close_code != WS_CLOSE_SLOW_CONSUMER) { /* say what is queued, then close */
        if (flush(w)) return ws_fail(w, 0, NULL);
        lws_callback_on_writable(wsi);
        return 0;
      }
      /* lws 4.1 drops the close frame when a WRITEABLE callback asks to close (seen with strace), so
       * the frame is written here like every other pre-framed frame, and the socket closed after it. */
      if (send_close_frame(w)) return ws_fail(w, 0, NULL);
      w->close_sent = true;
      if (!lws_partial_buffered(wsi)) return ws_fail(w, 0, NULL);
      lws_callback_on_writable(wsi);
      return 0;
    }
    return flush(w) ? ws_fail(w, 0, NULL) : 0;
  case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE: {
    w->peer_closed = true;
    if (len >= 2) w->peer_code = ((const uint8_t *)in)[0] << 8 | ((const uint8_t *)in)[1];
    struct utf8_state st = {0, 0x80, 0xbf};
    if (len == 1 || (len > 2 && (!utf8_feed(&st, (const uint8_t *)in + 2, len - 2) || st.need)))
      return ws_fail(w, WS_CLOSE_PROTOCOL,
                     len == 1 ? "close payload of 1 byte" : "close reason is not UTF-8");
    return 0;
  }
  case LWS_CALLBACK_WS_SERVER_DROP_PROTOCOL:
    ws_dropping(w, wsi);
    return 0;
  case LWS_CALLBACK_CLOSED:
    if (!w->net) return 0; /* never established */
    dirty_unlink(w);
    reread_unlink(w);
    idle_unlink(w);
    q_clear(w);
    free(w->q);
    w->q = NULL;
    buf_free(&w->rx);
    free(w->close_reason);
    w->close_reason = NULL;
    if (w->conn) core_conn_closed(net->core, w->conn, w->peer_code == WS_CLOSE_NORMAL);
    w->conn = NULL;
    return 0;
  default:
    return 0;
  }
}

static const struct lws_protocols protocols[] = {
    {"http", cb_http, sizeof(struct httpconn), 0, 0, NULL, 0},
    /* the names are the formats' (registered by net_new before the context exists) */
    {"parley.v1.json", cb_ws, sizeof(struct wsconn), RX_PIECE, 0, &format_v1_json, WRITE_BATCH_MAX},
    {"parley.v1.msgpack", cb_ws, sizeof(struct wsconn), RX_PIECE, 0, &format_v1_msgpack, WRITE_BATCH_MAX},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static const struct lws_protocol_vhost_options mime_webmanifest = {NULL, NULL, ".webmanifest",
                                                                   "application/manifest+json"};
static const struct lws_protocol_vhost_options mime_map = {&mime_webmanifest, NULL, ".map",
                                                           "application/json"};
static const struct lws_protocol_vhost_options mime_wasm = {&mime_map, NULL, ".wasm", "application/wasm"};
static const struct lws_protocol_vhost_options mime_mjs = {&mime_wasm, NULL, ".mjs", "text/javascript"};

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
  /* no LWS_SERVER_OPTION_VALIDATE_UTF8: cb_ws checks UTF-8 (see utf8_feed) */
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
  /* no validity timers in lws (see "idle connections" above): a policy with hangup 0 turns them off;
   * without a policy lws would use its default (ping after 5 minutes) */
  static const lws_retry_bo_t retry = {.secs_since_valid_ping = 0, .secs_since_valid_hangup = 0};
  info.retry_and_idle_policy = &retry;
  net->idle_ms = (uint64_t)cfg->limits_idle_timeout;

  if (cfg->server_web_root && *cfg->server_web_root) {
    net->web_root = config_path(cfg, cfg->server_web_root);
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
    info.mounts = m;
  }

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
  uv_check_start(&net->flush_check, on_check);
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
  uv_timer_start(&net->idle_timer, on_idle_timer, tick, tick);
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
