/* net/outq: the per-connection outbound queue (net.h's write discipline): the transport the core writes
 * through (outq_tx), the dirty and held lists, the flush of a connection's queue (sendmsg() straight from
 * the shared frames on plain TCP, one gathered lws_write with TLS), close frames, and write coalescing in
 * the uv_check callback. */
#include "net/internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "net/ws.h"
#include "util/log.h"

/* ---- outbound queue -------------------------------------------------------------------------------- */

void outq_dirty_unlink(struct wsconn *w) {
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

void outq_clear(struct wsconn *w) {
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

int outq_send(void *ctx, frame_t *f) {
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
      outq_clear(w);
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

const struct conn_tx outq_tx = {outq_send, tx_close, tx_queued};

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
int outq_flush(struct wsconn *w) {
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
int outq_send_close_frame(struct wsconn *w) {
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
  if (outq_flush(w)) request_close(w, WS_CLOSE_INTERNAL, "write failed");
}

static void flush_held(struct net *net) {
  uint32_t now_us = (uint32_t)(uv_hrtime() / 1000);
  while (net->held_head) {
    struct wsconn *w = net->held_head;
    outq_dirty_unlink(w);
    if (w->close_code) continue; /* WRITEABLE finishes it */
    flush_one(w, now_us);
  }
}

static void on_hold_timer(uv_timer_t *t) { flush_held(t->data); }

void outq_on_check(uv_check_t *h) {
  struct net *net = h->data;
  if (net->reread_head) ws_reread(net); /* before the flushes: what it reads may queue frames */
  net->rx_epoch++;
  if (!net->dirty_head) return;
  uint64_t now_ns = uv_hrtime();
  load_sample(net, now_ns);
  uint32_t now_us = (uint32_t)(now_ns / 1000), hold_us = (uint32_t)net->hold_us;
  if (!hold_us && net->held_head) flush_held(net); /* the load went down: nothing waits any more */
  while (net->dirty_head) {
    struct wsconn *w = net->dirty_head;
    outq_dirty_unlink(w);
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
