/* net/ws: the WebSocket protocol callbacks: connection setup, receive reassembly (with rereads of
 * connections that filled lws's receive buffer), the UTF-8 check of text messages and close reasons,
 * close handling, and idle pings. The outbound side is net/outq.c; the framing helpers are net/ws.h. */
#include "net/internal.h"

#include <stdlib.h>
#include <string.h>

#include "net/ws.h"

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

void ws_on_idle_timer(uv_timer_t *t) {
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
    if (!w->close_code) outq_send(w, net->ping);
  }
}

/* Read again, once each, the connections whose read in this iteration filled lws's buffer (RX_PIECE); a
 * read that fills it again puts its connection back on the list, up to REREAD_MAX times per iteration. */
void ws_reread(struct net *net) {
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

/* The wire format of the connection's subprotocol: the protocol's user pointer (protocols[] in net/net.c; one
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

int ws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len) {
  struct wsconn *w = user;
  struct net *net = lws_context_user(lws_get_context(wsi));
  switch (reason) {
  case LWS_CALLBACK_ESTABLISHED: {
    w->wsi = wsi;
    w->net = net;
    char peer[64];
    lws_get_peer_simple(wsi, peer, sizeof peer);
    w->conn = core_conn_open(net->core, ws_format(wsi), &outq_tx, w, peer);
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
        if (outq_flush(w)) return ws_fail(w, 0, NULL);
        lws_callback_on_writable(wsi);
        return 0;
      }
      /* lws 4.1 drops the close frame when a WRITEABLE callback asks to close (seen with strace), so
       * the frame is written here like every other pre-framed frame, and the socket closed after it. */
      if (outq_send_close_frame(w)) return ws_fail(w, 0, NULL);
      w->close_sent = true;
      if (!lws_partial_buffered(wsi)) return ws_fail(w, 0, NULL);
      lws_callback_on_writable(wsi);
      return 0;
    }
    return outq_flush(w) ? ws_fail(w, 0, NULL) : 0;
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
    outq_dirty_unlink(w);
    reread_unlink(w);
    idle_unlink(w);
    outq_clear(w);
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
