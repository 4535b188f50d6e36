/* loadgen: load generator for Parley protocol v1 (JSON and MessagePack) and for the reference peers in
 * bench/peers (plain WebSocket and Socket.IO v4). One thread, epoll, non-blocking sockets; --procs K forks
 * K workers and merges their results. Only loopback targets (127.0.0.0/8) are accepted.
 * See bench/README.md for the workloads and the meaning of every figure. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

#define FD_MARGIN    64           /* fds kept free per process besides the connections */
#define MAX_FRAME    (16u << 20)  /* largest server frame accepted */
#define MAX_HTTP     16384        /* largest handshake response accepted */
#define WB_HIGH      (256u << 10) /* a sender with this much unsent output skips its turn */
#define TAG_TIMER    UINT64_MAX
#define TAG_CTL      (UINT64_MAX - 1)
#define NS           1000000000ull
#define WS_GUID      "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define SIO_PATH     "/socket.io/?EIO=4&transport=websocket"
#define MAX_PROCS    64
#define CLIENT_BOUND 85.0

/* ------------------------------------------------------------------------------------------------ */
/* utilities                                                                                        */

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * NS + (uint64_t)ts.tv_nsec;
}

static uint64_t rng_state = 88172645463325252ull;
static uint64_t rnd64(void) {
  uint64_t x = rng_state;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  rng_state = x;
  return x * 0x2545F4914F6CDD1Dull;
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("loadgen: ", stderr);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  exit(2);
}

struct buf {
  char *p;
  size_t len, cap;
};

static void buf_reserve(struct buf *b, size_t extra) {
  if (b->len + extra <= b->cap) return;
  size_t nc = b->cap ? b->cap : 256;
  while (nc < b->len + extra) nc *= 2;
  char *np = realloc(b->p, nc);
  if (!np) die("out of memory");
  b->p = np;
  b->cap = nc;
}
static void buf_add(struct buf *b, const void *d, size_t n) {
  buf_reserve(b, n);
  if (n) memcpy(b->p + b->len, d, n);
  b->len += n;
}
static void buf_addc(struct buf *b, char c) {
  buf_reserve(b, 1);
  b->p[b->len++] = c;
}
static void buf_adds(struct buf *b, const char *s) { buf_add(b, s, strlen(s)); }
static void buf_addu(struct buf *b, uint64_t v) {
  char t[24];
  int i = 24;
  do {
    t[--i] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  buf_add(b, t + i, (size_t)(24 - i));
}
static void buf_addf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void buf_addf(struct buf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  buf_reserve(b, (size_t)n + 1);
  va_start(ap, fmt);
  vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
}
static void buf_free(struct buf *b) {
  free(b->p);
  b->p = NULL;
  b->len = b->cap = 0;
}
/* a JSON string literal; control characters and non-ASCII bytes are replaced so that it is always valid */
static void buf_add_jstr(struct buf *b, const char *s) {
  buf_addc(b, '"');
  for (; *s; s++) {
    unsigned char ch = (unsigned char)*s;
    if (ch == '"' || ch == '\\') {
      buf_addc(b, '\\');
      buf_addc(b, (char)ch);
    } else if (ch < 0x20 || ch >= 0x7f) {
      buf_addc(b, '?');
    } else {
      buf_addc(b, (char)ch);
    }
  }
  buf_addc(b, '"');
}

/* SHA-1 and base64, for Sec-WebSocket-Key / Sec-WebSocket-Accept */
static uint32_t rol32(uint32_t v, int n) { return (v << n) | (v >> (32 - n)); }
static void sha1(const uint8_t *msg, size_t len, uint8_t out[20]) {
  uint32_t h[5] = {0x67452301u, 0xEFCDAB89u, 0x98BADCFEu, 0x10325476u, 0xC3D2E1F0u};
  size_t nblocks = (len + 9 + 63) / 64;
  uint64_t bits = (uint64_t)len * 8;
  for (size_t bi = 0; bi < nblocks; bi++) {
    uint8_t blk[64];
    for (size_t i = 0; i < 64; i++) {
      size_t pos = bi * 64 + i;
      if (pos < len)
        blk[i] = msg[pos];
      else if (pos == len)
        blk[i] = 0x80;
      else if (pos >= nblocks * 64 - 8)
        blk[i] = (uint8_t)(bits >> (8 * (nblocks * 64 - 1 - pos)));
      else
        blk[i] = 0;
    }
    uint32_t w[80];
    for (int i = 0; i < 16; i++)
      w[i] = (uint32_t)blk[4 * i] << 24 | (uint32_t)blk[4 * i + 1] << 16 | (uint32_t)blk[4 * i + 2] << 8 |
             blk[4 * i + 3];
    for (int i = 16; i < 80; i++) w[i] = rol32(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    for (int i = 0; i < 80; i++) {
      uint32_t f, k;
      if (i < 20)
        f = (b & c) | (~b & d), k = 0x5A827999u;
      else if (i < 40)
        f = b ^ c ^ d, k = 0x6ED9EBA1u;
      else if (i < 60)
        f = (b & c) | (b & d) | (c & d), k = 0x8F1BBCDCu;
      else
        f = b ^ c ^ d, k = 0xCA62C1D6u;
      uint32_t t = rol32(a, 5) + f + e + k + w[i];
      e = d;
      d = c;
      c = rol32(b, 30);
      b = a;
      a = t;
    }
    h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e;
  }
  for (int i = 0; i < 5; i++) {
    out[4 * i] = (uint8_t)(h[i] >> 24);
    out[4 * i + 1] = (uint8_t)(h[i] >> 16);
    out[4 * i + 2] = (uint8_t)(h[i] >> 8);
    out[4 * i + 3] = (uint8_t)h[i];
  }
}
static void base64(const uint8_t *in, size_t n, char *out) {
  static const char T[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  size_t o = 0;
  for (size_t i = 0; i < n; i += 3) {
    uint32_t v = (uint32_t)in[i] << 16;
    if (i + 1 < n) v |= (uint32_t)in[i + 1] << 8;
    if (i + 2 < n) v |= in[i + 2];
    out[o++] = T[v >> 18 & 63];
    out[o++] = T[v >> 12 & 63];
    out[o++] = i + 1 < n ? T[v >> 6 & 63] : '=';
    out[o++] = i + 2 < n ? T[v & 63] : '=';
  }
  out[o] = 0;
}
static void ws_accept_for(const char *key, char out[29]) {
  char cat[128];
  int n = snprintf(cat, sizeof cat, "%s%s", key, WS_GUID);
  uint8_t dig[20];
  sha1((const uint8_t *)cat, (size_t)n, dig);
  base64(dig, 20, out);
}

/* ------------------------------------------------------------------------------------------------ */
/* log-bucketed histogram (HDR-style): values < 128 exact, then 128 sub-buckets per power of two      */
/* (relative error < 0.8%). Values are microseconds. Histograms merge by adding counts.               */

#define H_SUB_BITS 7
#define H_SUB      (1 << H_SUB_BITS)
#define H_BUCKETS  ((64 - H_SUB_BITS + 1) * H_SUB)

struct hist {
  uint64_t n[H_BUCKETS];
  uint64_t count, max;
};

static int h_index(uint64_t v) {
  if (v < H_SUB) return (int)v;
  int e = 63 - __builtin_clzll(v);
  return (e - H_SUB_BITS + 1) * H_SUB + (int)((v >> (e - H_SUB_BITS)) - H_SUB);
}
static uint64_t h_upper(int idx) { /* highest value that falls in bucket idx */
  if (idx < H_SUB) return (uint64_t)idx;
  int b = idx / H_SUB, m = idx % H_SUB, shift = b - 1;
  return (((uint64_t)(H_SUB + m) << shift) + ((uint64_t)1 << shift)) - 1;
}
static void hist_add(struct hist *h, uint64_t v) {
  h->n[h_index(v)]++;
  h->count++;
  if (v > h->max) h->max = v;
}
static uint64_t hist_pct(const struct hist *h, double pct) {
  if (!h->count) return 0;
  uint64_t want = (uint64_t)((pct / 100.0) * (double)h->count + 0.999999);
  if (want < 1) want = 1;
  uint64_t cum = 0;
  for (int i = 0; i < H_BUCKETS; i++) {
    cum += h->n[i];
    if (cum >= want) {
      uint64_t u = h_upper(i);
      return u < h->max ? u : h->max;
    }
  }
  return h->max;
}
static void hist_json(struct buf *b, const char *name, const struct hist *h) {
  buf_addf(b, ",\"%s_max\":%" PRIu64 ",\"%s\":[", name, h->max, name);
  bool first = true;
  for (int i = 0; i < H_BUCKETS; i++) {
    if (!h->n[i]) continue;
    if (!first) buf_addc(b, ',');
    first = false;
    buf_addf(b, "%d,%" PRIu64, i, h->n[i]);
  }
  buf_addc(b, ']');
}

/* ------------------------------------------------------------------------------------------------ */
/* configuration and the global layout of connections and rooms                                    */

enum target { T_PARLEY, T_WS, T_SIO };
enum codec { C_JSON, C_MSGPACK };
static const char *const target_names[] = {"parley", "ws", "socketio"};

static struct cfg {
  enum target target;
  enum codec codec;
  struct sockaddr_in dst;
  char url[160]; /* host (< 128) ":" port */
  char path[256];
  long conns, room_size, senders_per_room, procs, count, size, src_ips, concurrency, tick_us;
  double rate, duration, warmup, connect_timeout, drain, typing_rate, churn_rate, connect_settle;
  int server_pid;
  bool idle, json, smoke, path_set, text;
} C = {
    .target = T_PARLEY,
    .codec = C_JSON,
    .conns = 1000,
    .room_size = 10,
    .senders_per_room = 1,
    .procs = 1,
    .size = 64,
    .src_ips = 8,
    .concurrency = 256,
    .tick_us = 1000,
    .rate = 1000,
    .duration = 10,
    .warmup = 2,
    .connect_timeout = 60,
    .drain = 3,
    .connect_settle = 10,
};

static long n_rooms(void) { return (C.conns + C.room_size - 1) / C.room_size; }
static long room_members(long r) {
  long m = C.conns - r * C.room_size;
  return m < C.room_size ? m : C.room_size;
}
static long spr(void) { return C.senders_per_room < C.room_size ? C.senders_per_room : C.room_size; }
static bool is_sender(long g) { return g % C.room_size < spr(); }
static long senders_before(long g) {
  long r = g / C.room_size, o = g % C.room_size;
  return r * spr() + (o < spr() ? o : spr());
}
/* worker i's slice of the global connections: whole rooms when there are at least as many rooms as workers */
static void slice_of(long i, long *lo, long *hi, bool *rooms_local) {
  long R = n_rooms();
  if (R >= C.procs) {
    long r0 = i * R / C.procs, r1 = (i + 1) * R / C.procs;
    *lo = r0 * C.room_size;
    *hi = r1 * C.room_size < C.conns ? r1 * C.room_size : C.conns;
    *rooms_local = true;
  } else {
    *lo = i * C.conns / C.procs;
    *hi = (i + 1) * C.conns / C.procs;
    *rooms_local = false;
  }
}

/* ------------------------------------------------------------------------------------------------ */
/* worker state                                                                                     */

enum cstate { CS_NEW, CS_TCP, CS_HTTP, CS_SIO_OPEN, CS_SIO_CONN, CS_HELLO, CS_JOIN, CS_READY, CS_DEAD };
enum phase { P_CONNECT, P_WAIT, P_RUN, P_DRAIN, P_DONE };

/* Parley requests in flight, for the send->ack latency: slot id % ACK_RING (acks come in request order) */
#define ACK_RING 256
struct pending {
  uint64_t id, t;
  uint8_t kind; /* 1 send, 2 other request (typing, join/leave churn) */
};

struct conn {
  int fd;
  uint8_t state, fop;
  bool out_armed, typing_on, churn_in;
  struct pending *pend;
  long gidx, room;
  uint64_t t_start, next_id, nsent;
  int64_t last_seq;
  struct buf rb, wb, fb; /* partial input, unsent output, fragmented message */
  size_t woff;
  char accept[32];
};

static struct stats {
  uint64_t sent, sent_all, expected, delivered, delivered_all, acks, send_errors, proto_errors, order_errors,
      closed, connect_errors, ready, lag, blocked, acked, ops_sent, op_acks, typing_events, other_events,
      ack_untracked;
  int close_code;
  double cpu_pct, win_s;
  char first_error[160];
  struct hist lat, clat, alat, olat; /* delivery, connect, send->ack of window sends, other request->reply */
} S;

static struct conn *conns;
static long w_lo, w_hi, nloc;
static bool rooms_local;
static int ep = -1, tfd = -1;
static uint64_t now, t0, win_start, win_end, last_rx;
static enum phase phase;
static long inflight, next_start, settled;
static long *senders, nsenders, rr;
static double rate_local, credits, ops_rate_local, ops_credits;
static long ops_rr;
static long count_local, sent_local;
static uint64_t last_tick;
static char nonce[12];
static struct buf pl, fr;
static char scratch[256 * 1024];

static void note_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void note_error(const char *fmt, ...) {
  if (S.first_error[0]) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(S.first_error, sizeof S.first_error, fmt, ap);
  va_end(ap);
}

static void conn_fail(struct conn *c, const char *why) {
  if (c->state == CS_DEAD) return;
  bool was_ready = c->state == CS_READY;
  if (c->state != CS_NEW) {
    if (!was_ready) inflight--;
  }
  if (c->fd >= 0) close(c->fd);
  c->fd = -1;
  c->state = CS_DEAD;
  if (was_ready) {
    if (phase < P_DONE) S.closed++;
  } else {
    S.connect_errors++;
    settled++;
  }
  note_error("conn %ld: %s", c->gidx, why);
  /* rb may be under parse: it is freed by the reader or at the end */
  buf_free(&c->wb);
  buf_free(&c->fb);
  c->woff = 0;
}

static void set_out(struct conn *c, bool on) {
  if (c->out_armed == on || c->fd < 0) return;
  struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0), .data.u64 = (uint64_t)(c - conns)};
  epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
  c->out_armed = on;
}

static void conn_write(struct conn *c, const char *d, size_t n) {
  if (c->state == CS_DEAD || c->fd < 0) return;
  if (c->wb.len == c->woff && c->state != CS_TCP) {
    c->wb.len = c->woff = 0;
    ssize_t w = send(c->fd, d, n, MSG_NOSIGNAL);
    if (w == (ssize_t)n) return;
    if (w < 0) {
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        conn_fail(c, strerror(errno));
        return;
      }
      w = 0;
    }
    d += w;
    n -= (size_t)w;
  }
  buf_add(&c->wb, d, n);
  set_out(c, true);
}

static void flush_out(struct conn *c) {
  while (c->woff < c->wb.len) {
    ssize_t w = send(c->fd, c->wb.p + c->woff, c->wb.len - c->woff, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      conn_fail(c, strerror(errno));
      return;
    }
    c->woff += (size_t)w;
  }
  c->wb.len = c->woff = 0;
  set_out(c, false);
}

/* one masked client frame */
static void ws_send(struct conn *c, int op, const char *p, size_t n) {
  fr.len = 0;
  buf_reserve(&fr, n + 14);
  uint8_t *h = (uint8_t *)fr.p;
  size_t hl;
  h[0] = (uint8_t)(0x80 | op);
  if (n < 126) {
    h[1] = (uint8_t)(0x80 | n);
    hl = 2;
  } else if (n < 65536) {
    h[1] = 0x80 | 126;
    h[2] = (uint8_t)(n >> 8);
    h[3] = (uint8_t)n;
    hl = 4;
  } else {
    h[1] = 0x80 | 127;
    for (int i = 0; i < 8; i++) h[2 + i] = (uint8_t)((uint64_t)n >> (56 - 8 * i));
    hl = 10;
  }
  uint64_t r = rnd64();
  uint8_t mk[4] = {(uint8_t)r, (uint8_t)(r >> 8), (uint8_t)(r >> 16), (uint8_t)(r >> 24)};
  memcpy(h + hl, mk, 4);
  hl += 4;
  uint8_t *o = h + hl;
  const uint8_t *s = (const uint8_t *)p;
  for (size_t i = 0; i < n; i++) o[i] = s[i] ^ mk[i & 3];
  conn_write(c, fr.p, hl + n);
}
static void ws_send_text(struct conn *c, const char *s) { ws_send(c, 1, s, strlen(s)); }

/* ------------------------------------------------------------------------------------------------ */
/* encoders                                                                                         */

static void mp_map(struct buf *b, uint32_t n) { buf_addc(b, (char)(0x80 | n)); } /* n < 16 */
static void mp_str(struct buf *b, const char *s, size_t n) {
  if (n < 32) {
    buf_addc(b, (char)(0xa0 | n));
  } else if (n < 256) {
    buf_addc(b, (char)0xd9);
    buf_addc(b, (char)n);
  } else if (n < 65536) {
    buf_addc(b, (char)0xda);
    buf_addc(b, (char)(n >> 8));
    buf_addc(b, (char)n);
  } else {
    buf_addc(b, (char)0xdb);
    for (int i = 3; i >= 0; i--) buf_addc(b, (char)(n >> (8 * i)));
  }
  buf_add(b, s, n);
}
static void mp_cstr(struct buf *b, const char *s) { mp_str(b, s, strlen(s)); }
static void mp_u64(struct buf *b, uint64_t v) { /* always 9 bytes */
  buf_addc(b, (char)0xcf);
  for (int i = 7; i >= 0; i--) buf_addc(b, (char)(v >> (8 * i)));
}
static void mp_uint(struct buf *b, uint64_t v) {
  if (v < 128)
    buf_addc(b, (char)v);
  else
    mp_u64(b, v);
}

/* padding: 'x's, or with --text words separated by blanks (for the word-filter hook to scan) */
static void pad_fill(struct buf *b, size_t pad) {
  static const char words[] = "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor ";
  buf_reserve(b, pad);
  if (C.text)
    for (size_t i = 0; i < pad; i++) b->p[b->len + i] = words[i % (sizeof words - 1)];
  else
    memset(b->p + b->len, 'x', pad);
  if (C.text && pad) b->p[b->len + pad - 1] = 'z'; /* no trailing blank */
  b->len += pad;
}

/* the message body {"t":<send time, CLOCK_MONOTONIC ns>,"p":"xxx…"} padded to --size encoded bytes */
static void body_json(struct buf *b, uint64_t t) {
  size_t start = b->len;
  buf_adds(b, "{\"t\":");
  buf_addu(b, t);
  buf_adds(b, ",\"p\":\"");
  size_t used = b->len - start + 2;
  size_t pad = (size_t)C.size > used ? (size_t)C.size - used : 0;
  pad_fill(b, pad);
  buf_adds(b, "\"}");
}
static void body_mp(struct buf *b, uint64_t t) {
  const size_t fixed = 1 + 2 + 9 + 2; /* map, "t", u64, "p" */
  size_t pad = 0;
  if ((size_t)C.size > fixed + 1) {
    size_t room = (size_t)C.size - fixed;
    if (room - 1 < 32)
      pad = room - 1;
    else if (room - 2 < 256)
      pad = room - 2;
    else
      pad = room - 3;
  }
  mp_map(b, 2);
  mp_cstr(b, "t");
  mp_u64(b, t);
  mp_cstr(b, "p");
  if (pad < 32) {
    buf_addc(b, (char)(0xa0 | pad));
  } else if (pad < 256) {
    buf_addc(b, (char)0xd9);
    buf_addc(b, (char)pad);
  } else {
    buf_addc(b, (char)0xda);
    buf_addc(b, (char)(pad >> 8));
    buf_addc(b, (char)pad);
  }
  pad_fill(b, pad);
}

static void send_hello(struct conn *c) {
  pl.len = 0;
  if (C.codec == C_JSON) {
    ws_send_text(c, "{\"id\":1,\"op\":\"hello\",\"client\":\"loadgen\"}");
  } else {
    mp_map(&pl, 3);
    mp_cstr(&pl, "id");
    mp_uint(&pl, 1);
    mp_cstr(&pl, "op");
    mp_cstr(&pl, "hello");
    mp_cstr(&pl, "client");
    mp_cstr(&pl, "loadgen");
    ws_send(c, 2, pl.p, pl.len);
  }
}

static void send_join(struct conn *c) {
  char room[32];
  snprintf(room, sizeof room, "r%ld", c->room);
  pl.len = 0;
  if (C.target == T_SIO) {
    buf_addf(&pl, "420[\"join\",\"%s\"]", room);
    ws_send(c, 1, pl.p, pl.len);
  } else if (C.codec == C_JSON || C.target == T_WS) {
    buf_addf(&pl, "{\"id\":2,\"op\":\"join\",\"room\":\"%s\"}", room);
    ws_send(c, 1, pl.p, pl.len);
  } else {
    mp_map(&pl, 3);
    mp_cstr(&pl, "id");
    mp_uint(&pl, 2);
    mp_cstr(&pl, "op");
    mp_cstr(&pl, "join");
    mp_cstr(&pl, "room");
    mp_cstr(&pl, room);
    ws_send(c, 2, pl.p, pl.len);
  }
  c->next_id = 3;
}

static void track(struct conn *c, uint64_t id, uint64_t t, uint8_t kind) {
  if (!c->pend) {
    c->pend = calloc(ACK_RING, sizeof *c->pend);
    if (!c->pend) die("out of memory");
  }
  struct pending *e = &c->pend[id % ACK_RING];
  if (e->kind) S.ack_untracked++; /* overwritten before its reply came */
  e->id = id;
  e->t = t;
  e->kind = kind;
}

/* typing storm and join/leave churn: one request on connection c (Parley only) */
static void send_op(struct conn *c) {
  uint64_t t = now_ns();
  uint64_t id = c->next_id++;
  char room[32];
  const char *op;
  bool typing = C.typing_rate > 0;
  if (typing) {
    snprintf(room, sizeof room, "r%ld", c->room);
    c->typing_on = !c->typing_on;
    op = "typing";
  } else {
    snprintf(room, sizeof room, "c%ld", c->room);
    c->churn_in = !c->churn_in;
    op = c->churn_in ? "join" : "leave";
  }
  pl.len = 0;
  if (C.codec == C_JSON) {
    buf_adds(&pl, "{\"id\":");
    buf_addu(&pl, id);
    buf_addf(&pl, ",\"op\":\"%s\",\"room\":\"%s\"", op, room);
    if (typing) buf_adds(&pl, c->typing_on ? ",\"active\":true" : ",\"active\":false");
    buf_addc(&pl, '}');
    ws_send(c, 1, pl.p, pl.len);
  } else {
    mp_map(&pl, typing ? 4 : 3);
    mp_cstr(&pl, "id");
    mp_uint(&pl, id);
    mp_cstr(&pl, "op");
    mp_cstr(&pl, op);
    mp_cstr(&pl, "room");
    mp_cstr(&pl, room);
    if (typing) {
      mp_cstr(&pl, "active");
      buf_addc(&pl, c->typing_on ? (char)0xc3 : (char)0xc2);
    }
    ws_send(c, 2, pl.p, pl.len);
  }
  track(c, id, t, 2);
  S.ops_sent++;
}

static void send_msg(struct conn *c) {
  uint64_t t = now_ns();
  uint64_t id = c->next_id++, n = ++c->nsent;
  pl.len = 0;
  switch (C.target) {
  case T_PARLEY:
    if (C.codec == C_JSON) {
      buf_adds(&pl, "{\"id\":");
      buf_addu(&pl, id);
      buf_adds(&pl, ",\"op\":\"send\",\"room\":\"r");
      buf_addu(&pl, (uint64_t)c->room);
      buf_adds(&pl, "\",\"body\":");
      body_json(&pl, t);
      buf_adds(&pl, ",\"cmid\":\"");
      buf_adds(&pl, nonce);
      buf_addc(&pl, '-');
      buf_addu(&pl, (uint64_t)c->gidx);
      buf_addc(&pl, '-');
      buf_addu(&pl, n);
      buf_adds(&pl, "\"}");
      ws_send(c, 1, pl.p, pl.len);
    } else {
      char tmp[64];
      mp_map(&pl, 5);
      mp_cstr(&pl, "id");
      mp_uint(&pl, id);
      mp_cstr(&pl, "op");
      mp_cstr(&pl, "send");
      mp_cstr(&pl, "room");
      snprintf(tmp, sizeof tmp, "r%ld", c->room);
      mp_cstr(&pl, tmp);
      mp_cstr(&pl, "body");
      body_mp(&pl, t);
      mp_cstr(&pl, "cmid");
      snprintf(tmp, sizeof tmp, "%s-%ld-%" PRIu64, nonce, c->gidx, n);
      mp_cstr(&pl, tmp);
      ws_send(c, 2, pl.p, pl.len);
    }
    break;
  case T_WS:
    buf_adds(&pl, "{\"op\":\"send\",\"room\":\"r");
    buf_addu(&pl, (uint64_t)c->room);
    buf_adds(&pl, "\",\"body\":");
    body_json(&pl, t);
    buf_addc(&pl, '}');
    ws_send(c, 1, pl.p, pl.len);
    break;
  case T_SIO:
    buf_adds(&pl, "42[\"msg\",{\"room\":\"r");
    buf_addu(&pl, (uint64_t)c->room);
    buf_adds(&pl, "\",\"body\":");
    body_json(&pl, t);
    buf_adds(&pl, "}]");
    ws_send(c, 1, pl.p, pl.len);
    break;
  }
  if (C.target == T_PARLEY) track(c, id, t, 1);
  S.sent_all++;
  if (t >= win_start && t < win_end) {
    S.sent++;
    S.expected += (uint64_t)room_members(c->room);
  }
}

/* ------------------------------------------------------------------------------------------------ */
/* decoders: just the fields loadgen needs, skipping everything else correctly                       */

struct pm {
  bool reply, re_null, ok, err, event, is_msg, is_typing, has_t, has_seq;
  int64_t re, t, seq;
  char code[40];
};

/* JSON */
static void j_ws(const char **p, const char *e) {
  while (*p < e && (**p == ' ' || **p == '\t' || **p == '\n' || **p == '\r')) (*p)++;
}
static bool j_str(const char **p, const char *e, const char **s, size_t *n) {
  j_ws(p, e);
  if (*p >= e || **p != '"') return false;
  const char *q = *p + 1;
  while (q < e && *q != '"') q += (*q == '\\') ? 2 : 1;
  if (q >= e) return false;
  *s = *p + 1;
  *n = (size_t)(q - *s);
  *p = q + 1;
  return true;
}
static bool j_int(const char **p, const char *e, int64_t *v) {
  j_ws(p, e);
  const char *q = *p;
  bool neg = false;
  if (q < e && *q == '-') neg = true, q++;
  if (q >= e || *q < '0' || *q > '9') return false;
  uint64_t x = 0;
  while (q < e && *q >= '0' && *q <= '9') x = x * 10 + (uint64_t)(*q++ - '0');
  while (q < e && (*q == '.' || *q == 'e' || *q == 'E' || *q == '+' || *q == '-' || (*q >= '0' && *q <= '9')))
    q++; /* a fraction or exponent: keep the integer part */
  *v = neg ? -(int64_t)x : (int64_t)x;
  *p = q;
  return true;
}
static bool j_lit(const char **p, const char *e, const char *lit) {
  size_t n = strlen(lit);
  if ((size_t)(e - *p) < n || memcmp(*p, lit, n) != 0) return false;
  *p += n;
  return true;
}
static bool j_skip(const char **p, const char *e, int depth) {
  j_ws(p, e);
  if (*p >= e || depth > 64) return false;
  const char *s;
  size_t n;
  int64_t v;
  switch (**p) {
  case '"':
    return j_str(p, e, &s, &n);
  case 't':
    return j_lit(p, e, "true");
  case 'f':
    return j_lit(p, e, "false");
  case 'n':
    return j_lit(p, e, "null");
  case '{':
  case '[': {
    char close = **p == '{' ? '}' : ']';
    bool obj = close == '}';
    (*p)++;
    j_ws(p, e);
    if (*p < e && **p == close) {
      (*p)++;
      return true;
    }
    for (;;) {
      if (obj) {
        if (!j_str(p, e, &s, &n)) return false;
        j_ws(p, e);
        if (*p >= e || **p != ':') return false;
        (*p)++;
      }
      if (!j_skip(p, e, depth + 1)) return false;
      j_ws(p, e);
      if (*p >= e) return false;
      if (**p == ',') {
        (*p)++;
        continue;
      }
      if (**p == close) {
        (*p)++;
        return true;
      }
      return false;
    }
  }
  default:
    return j_int(p, e, &v);
  }
}
static bool key_is(const char *k, size_t n, const char *lit) {
  return strlen(lit) == n && !memcmp(k, lit, n);
}

/* iterate an object: calls f for each key with *p at the value; f must consume the value */
typedef bool (*j_field_fn)(const char **p, const char *e, const char *k, size_t kn, struct pm *m);
static bool j_obj(const char **p, const char *e, struct pm *m, j_field_fn f) {
  j_ws(p, e);
  if (*p >= e || **p != '{') return j_skip(p, e, 1);
  (*p)++;
  j_ws(p, e);
  if (*p < e && **p == '}') {
    (*p)++;
    return true;
  }
  for (;;) {
    const char *k;
    size_t kn;
    if (!j_str(p, e, &k, &kn)) return false;
    j_ws(p, e);
    if (*p >= e || **p != ':') return false;
    (*p)++;
    j_ws(p, e);
    if (!f(p, e, k, kn, m)) return false;
    j_ws(p, e);
    if (*p >= e) return false;
    if (**p == ',') {
      (*p)++;
      continue;
    }
    if (**p == '}') {
      (*p)++;
      return true;
    }
    return false;
  }
}
static bool jf_body(const char **p, const char *e, const char *k, size_t kn, struct pm *m) {
  if (key_is(k, kn, "t") && *p < e && (**p == '-' || (**p >= '0' && **p <= '9'))) {
    m->has_t = true;
    return j_int(p, e, &m->t);
  }
  return j_skip(p, e, 2);
}
static bool jf_err(const char **p, const char *e, const char *k, size_t kn, struct pm *m) {
  const char *s;
  size_t n;
  if (key_is(k, kn, "code") && *p < e && **p == '"') {
    if (!j_str(p, e, &s, &n)) return false;
    if (n >= sizeof m->code) n = sizeof m->code - 1;
    memcpy(m->code, s, n);
    m->code[n] = 0;
    return true;
  }
  return j_skip(p, e, 2);
}
static bool jf_top(const char **p, const char *e, const char *k, size_t kn, struct pm *m) {
  const char *s;
  size_t n;
  if (key_is(k, kn, "re")) {
    m->reply = true;
    if (**p == 'n') {
      m->re_null = true;
      return j_lit(p, e, "null");
    }
    if (**p == '-' || (**p >= '0' && **p <= '9')) return j_int(p, e, &m->re);
    m->re = -1;
    return j_skip(p, e, 1);
  }
  if (key_is(k, kn, "ok")) {
    m->ok = true;
    return j_skip(p, e, 1);
  }
  if (key_is(k, kn, "err")) {
    m->err = true;
    return j_obj(p, e, m, jf_err);
  }
  if (key_is(k, kn, "ev")) {
    m->event = true;
    if (!j_str(p, e, &s, &n)) return false;
    m->is_msg = key_is(s, n, "message");
    m->is_typing = key_is(s, n, "typing");
    return true;
  }
  if (key_is(k, kn, "seq") && (**p == '-' || (**p >= '0' && **p <= '9'))) {
    m->has_seq = true;
    return j_int(p, e, &m->seq);
  }
  if (key_is(k, kn, "body")) return j_obj(p, e, m, jf_body);
  return j_skip(p, e, 1);
}
static bool parse_json(const char *p, size_t n, struct pm *m) {
  memset(m, 0, sizeof *m);
  const char *e = p + n;
  j_ws(&p, e);
  if (p >= e || *p != '{') return false;
  return j_obj(&p, e, m, jf_top);
}

/* MessagePack */
struct mr {
  const uint8_t *p, *e;
};
static uint64_t be_n(const uint8_t *p, int n) {
  uint64_t v = 0;
  for (int i = 0; i < n; i++) v = v << 8 | p[i];
  return v;
}
static bool mr_need(struct mr *r, size_t n) { return (size_t)(r->e - r->p) >= n; }
static bool mr_skip(struct mr *r, int depth);
static bool mr_skipn(struct mr *r, size_t n) {
  if (!mr_need(r, n)) return false;
  r->p += n;
  return true;
}
/* a container header: sets *count and *is_map; false for non-containers */
static bool mr_container(struct mr *r, uint64_t *count, bool *is_map) {
  if (!mr_need(r, 1)) return false;
  uint8_t b = *r->p;
  if ((b & 0xf0) == 0x80 || (b & 0xf0) == 0x90) {
    *count = b & 0x0f;
    *is_map = (b & 0xf0) == 0x80;
    r->p++;
    return true;
  }
  int w = (b == 0xdc || b == 0xde) ? 2 : (b == 0xdd || b == 0xdf) ? 4 : 0;
  if (!w || !mr_need(r, 1 + (size_t)w)) return false;
  *count = be_n(r->p + 1, w);
  *is_map = b == 0xde || b == 0xdf;
  r->p += 1 + w;
  return true;
}
static bool mr_str(struct mr *r, const char **s, size_t *n) {
  if (!mr_need(r, 1)) return false;
  uint8_t b = *r->p;
  size_t hl, len;
  if ((b & 0xe0) == 0xa0)
    hl = 1, len = b & 0x1f;
  else if (b == 0xd9 && mr_need(r, 2))
    hl = 2, len = r->p[1];
  else if (b == 0xda && mr_need(r, 3))
    hl = 3, len = (size_t)be_n(r->p + 1, 2);
  else if (b == 0xdb && mr_need(r, 5))
    hl = 5, len = (size_t)be_n(r->p + 1, 4);
  else
    return false;
  if (!mr_need(r, hl + len)) return false;
  *s = (const char *)r->p + hl;
  *n = len;
  r->p += hl + len;
  return true;
}
static bool mr_int(struct mr *r, int64_t *v) {
  if (!mr_need(r, 1)) return false;
  uint8_t b = *r->p;
  if (b < 0x80) {
    *v = b;
    r->p++;
    return true;
  }
  if (b >= 0xe0) {
    *v = (int8_t)b;
    r->p++;
    return true;
  }
  int w;
  bool sign;
  switch (b) {
  case 0xcc:
    w = 1, sign = false;
    break;
  case 0xcd:
    w = 2, sign = false;
    break;
  case 0xce:
    w = 4, sign = false;
    break;
  case 0xcf:
    w = 8, sign = false;
    break;
  case 0xd0:
    w = 1, sign = true;
    break;
  case 0xd1:
    w = 2, sign = true;
    break;
  case 0xd2:
    w = 4, sign = true;
    break;
  case 0xd3:
    w = 8, sign = true;
    break;
  default:
    return false;
  }
  if (!mr_need(r, 1 + (size_t)w)) return false;
  uint64_t x = be_n(r->p + 1, w);
  if (sign && w < 8 && (x >> (8 * w - 1))) x |= ~(uint64_t)0 << (8 * w);
  *v = (int64_t)x;
  r->p += 1 + w;
  return true;
}
static bool mr_skip(struct mr *r, int depth) {
  if (!mr_need(r, 1) || depth > 64) return false;
  uint8_t b = *r->p;
  const char *s;
  size_t n;
  int64_t v;
  uint64_t cnt;
  bool is_map;
  if (b < 0x80 || b >= 0xe0 || (b >= 0xcc && b <= 0xd3)) return mr_int(r, &v);
  if ((b & 0xe0) == 0xa0 || b == 0xd9 || b == 0xda || b == 0xdb) return mr_str(r, &s, &n);
  if (mr_container(r, &cnt, &is_map)) {
    if (is_map) cnt *= 2;
    for (uint64_t i = 0; i < cnt; i++)
      if (!mr_skip(r, depth + 1)) return false;
    return true;
  }
  switch (b) {
  case 0xc0:
  case 0xc2:
  case 0xc3:
    return mr_skipn(r, 1);
  case 0xca:
    return mr_skipn(r, 5);
  case 0xcb:
    return mr_skipn(r, 9);
  case 0xc4:
    return mr_need(r, 2) && mr_skipn(r, 2 + r->p[1]);
  case 0xc5:
    return mr_need(r, 3) && mr_skipn(r, 3 + (size_t)be_n(r->p + 1, 2));
  case 0xc6:
    return mr_need(r, 5) && mr_skipn(r, 5 + (size_t)be_n(r->p + 1, 4));
  case 0xd4:
    return mr_skipn(r, 3);
  case 0xd5:
    return mr_skipn(r, 4);
  case 0xd6:
    return mr_skipn(r, 6);
  case 0xd7:
    return mr_skipn(r, 10);
  case 0xd8:
    return mr_skipn(r, 18);
  case 0xc7:
    return mr_need(r, 2) && mr_skipn(r, 3 + r->p[1]);
  case 0xc8:
    return mr_need(r, 3) && mr_skipn(r, 4 + (size_t)be_n(r->p + 1, 2));
  case 0xc9:
    return mr_need(r, 5) && mr_skipn(r, 6 + (size_t)be_n(r->p + 1, 4));
  default:
    return false;
  }
}
typedef bool (*m_field_fn)(struct mr *r, const char *k, size_t kn, struct pm *m);
static bool mr_obj(struct mr *r, struct pm *m, m_field_fn f) {
  uint64_t cnt;
  bool is_map;
  const uint8_t *save = r->p;
  if (!mr_container(r, &cnt, &is_map) || !is_map) {
    r->p = save;
    return mr_skip(r, 1);
  }
  for (uint64_t i = 0; i < cnt; i++) {
    const char *k;
    size_t kn;
    if (!mr_str(r, &k, &kn)) return false;
    if (!f(r, k, kn, m)) return false;
  }
  return true;
}
static bool mf_body(struct mr *r, const char *k, size_t kn, struct pm *m) {
  const uint8_t *save = r->p;
  if (key_is(k, kn, "t") && mr_int(r, &m->t)) {
    m->has_t = true;
    return true;
  }
  r->p = save;
  return mr_skip(r, 2);
}
static bool mf_err(struct mr *r, const char *k, size_t kn, struct pm *m) {
  const char *s;
  size_t n;
  const uint8_t *save = r->p;
  if (key_is(k, kn, "code") && mr_str(r, &s, &n)) {
    if (n >= sizeof m->code) n = sizeof m->code - 1;
    memcpy(m->code, s, n);
    m->code[n] = 0;
    return true;
  }
  r->p = save;
  return mr_skip(r, 2);
}
static bool mf_top(struct mr *r, const char *k, size_t kn, struct pm *m) {
  const char *s;
  size_t n;
  const uint8_t *save = r->p;
  if (key_is(k, kn, "re")) {
    m->reply = true;
    if (mr_need(r, 1) && *r->p == 0xc0) {
      m->re_null = true;
      r->p++;
      return true;
    }
    if (mr_int(r, &m->re)) return true;
    m->re = -1;
    return mr_skip(r, 1);
  }
  if (key_is(k, kn, "ok")) {
    m->ok = true;
    return mr_skip(r, 1);
  }
  if (key_is(k, kn, "err")) {
    m->err = true;
    return mr_obj(r, m, mf_err);
  }
  if (key_is(k, kn, "ev")) {
    m->event = true;
    if (!mr_str(r, &s, &n)) return false;
    m->is_msg = key_is(s, n, "message");
    m->is_typing = key_is(s, n, "typing");
    return true;
  }
  if (key_is(k, kn, "seq")) {
    if (mr_int(r, &m->seq)) {
      m->has_seq = true;
      return true;
    }
    r->p = save;
    return mr_skip(r, 1);
  }
  if (key_is(k, kn, "body")) return mr_obj(r, m, mf_body);
  return mr_skip(r, 1);
}
static bool parse_mp(const char *p, size_t n, struct pm *m) {
  memset(m, 0, sizeof *m);
  struct mr r = {(const uint8_t *)p, (const uint8_t *)p + n};
  uint64_t cnt;
  bool is_map;
  const uint8_t *save = r.p;
  if (!mr_container(&r, &cnt, &is_map) || !is_map) return false;
  r.p = save;
  return mr_obj(&r, m, mf_top) && r.p == r.e;
}

/* ------------------------------------------------------------------------------------------------ */
/* protocol state machines                                                                          */

static void conn_ready(struct conn *c) {
  c->state = CS_READY;
  S.ready++;
  inflight--;
  settled++;
  hist_add(&S.clat, (now - c->t_start) / 1000);
}

static void on_delivery(struct conn *c, const struct pm *m) {
  if (m->has_seq) {
    if (c->last_seq >= 0 && m->seq != c->last_seq + 1) S.order_errors++;
    c->last_seq = m->seq;
  }
  if (!m->has_t) {
    S.proto_errors++;
    note_error("conn %ld: message without body.t", c->gidx);
    return;
  }
  S.delivered_all++;
  last_rx = now;
  uint64_t t = (uint64_t)m->t;
  if (t >= win_start && t < win_end) {
    S.delivered++;
    hist_add(&S.lat, now > t ? (now - t) / 1000 : 0);
  }
}

/* Parley (both codecs) and the ws peer, which speaks a subset of Parley's JSON */
static void on_pm(struct conn *c, const struct pm *m) {
  if (m->reply) {
    if (m->re_null) {
      S.proto_errors++;
      note_error("conn %ld: unattributed error reply: %s", c->gidx, m->code);
      return;
    }
    if (c->state == CS_HELLO && m->re == 1) {
      if (m->ok) {
        c->state = CS_JOIN;
        send_join(c);
      } else {
        char why[64];
        snprintf(why, sizeof why, "hello refused: %s", m->code);
        conn_fail(c, why);
      }
      return;
    }
    if (c->state == CS_JOIN && m->re == 2) {
      if (m->ok) {
        conn_ready(c);
      } else {
        char why[64];
        snprintf(why, sizeof why, "join refused: %s", m->code);
        conn_fail(c, why);
      }
      return;
    }
    uint8_t kind = 1;
    if (c->pend && m->re >= 0) {
      struct pending *e = &c->pend[(uint64_t)m->re % ACK_RING];
      if (e->kind && e->id == (uint64_t)m->re) {
        kind = e->kind;
        uint64_t us = now > e->t ? (now - e->t) / 1000 : 0;
        if (kind == 2)
          hist_add(&S.olat, us);
        else if (!m->err && e->t >= win_start && e->t < win_end) {
          S.acked++;
          hist_add(&S.alat, us);
        }
        e->kind = 0;
      }
    }
    if (m->err) {
      S.send_errors++;
      note_error("conn %ld: error reply to request %" PRId64 ": %s", c->gidx, m->re, m->code);
    } else if (kind == 2) {
      S.op_acks++;
    } else {
      S.acks++;
    }
    return;
  }
  if (m->event && m->is_msg)
    on_delivery(c, m);
  else if (m->event && m->is_typing)
    S.typing_events++;
  else if (m->event)
    S.other_events++;
}

static void on_sio(struct conn *c, const char *p, size_t n) {
  if (!n) return;
  switch (p[0]) {
  case '0': /* engine.io open */
    if (c->state == CS_SIO_OPEN) {
      c->state = CS_SIO_CONN;
      ws_send_text(c, "40");
    }
    return;
  case '1':
    conn_fail(c, "engine.io close");
    return;
  case '2': /* engine.io ping -> pong with the same data */
    pl.len = 0;
    buf_addc(&pl, '3');
    buf_add(&pl, p + 1, n - 1);
    ws_send(c, 1, pl.p, pl.len);
    return;
  case '4':
    break;
  default:
    return; /* pong, noop, upgrade */
  }
  if (n < 2) return;
  const char *q = p + 2, *e = p + n;
  switch (p[1]) {
  case '0': /* socket.io connect ack */
    if (c->state == CS_SIO_CONN) {
      c->state = CS_JOIN;
      send_join(c);
    }
    return;
  case '1':
    conn_fail(c, "socket.io disconnect");
    return;
  case '4':
    conn_fail(c, "socket.io connect_error");
    return;
  case '3': { /* ack: id 0 is our join */
    int64_t id;
    if (c->state == CS_JOIN && j_int(&q, e, &id) && id == 0) conn_ready(c);
    return;
  }
  case '2': { /* event: [name, arg] */
    const char *s;
    size_t sn;
    while (q < e && *q >= '0' && *q <= '9') q++;
    j_ws(&q, e);
    if (q >= e || *q != '[') goto bad;
    q++;
    if (!j_str(&q, e, &s, &sn)) goto bad;
    if (!key_is(s, sn, "msg")) return;
    j_ws(&q, e);
    if (q >= e || *q != ',') goto bad;
    q++;
    struct pm m;
    memset(&m, 0, sizeof m);
    if (!j_obj(&q, e, &m, jf_top)) goto bad;
    m.event = m.is_msg = true;
    on_delivery(c, &m);
    return;
  }
  default:
    return;
  }
bad:
  S.proto_errors++;
  note_error("conn %ld: unparseable socket.io event", c->gidx);
}

static void on_message(struct conn *c, int op, const char *p, size_t n) {
  struct pm m;
  if (C.target == T_SIO) {
    if (op == 1) on_sio(c, p, n);
    return;
  }
  bool ok;
  if (C.target == T_PARLEY && C.codec == C_MSGPACK) {
    if (op != 2) {
      S.proto_errors++;
      note_error("conn %ld: text frame on the msgpack subprotocol", c->gidx);
      return;
    }
    ok = parse_mp(p, n, &m);
  } else {
    if (op != 1) {
      S.proto_errors++;
      note_error("conn %ld: binary frame on a JSON connection", c->gidx);
      return;
    }
    ok = parse_json(p, n, &m);
  }
  if (!ok) {
    S.proto_errors++;
    note_error("conn %ld: unparseable frame", c->gidx);
    return;
  }
  on_pm(c, &m);
}

static void on_frame(struct conn *c, bool fin, int op, char *p, size_t n) {
  switch (op) {
  case 8: { /* close */
    int code = n >= 2 ? ((uint8_t)p[0] << 8 | (uint8_t)p[1]) : 1005;
    S.close_code = code;
    char reply[2] = {n >= 2 ? p[0] : 0x03, n >= 2 ? p[1] : (char)0xe8}; /* echo the code, or 1000 */
    ws_send(c, 8, reply, 2);
    char why[64];
    snprintf(why, sizeof why, "closed by server with code %d", code);
    conn_fail(c, why);
    return;
  }
  case 9:
    ws_send(c, 10, p, n);
    return;
  case 10:
    return;
  case 0:
    if (!c->fop) {
      conn_fail(c, "continuation frame without a start");
      return;
    }
    buf_add(&c->fb, p, n);
    if (c->fb.len > MAX_FRAME) {
      conn_fail(c, "fragmented message too large");
      return;
    }
    if (fin) {
      int fop = c->fop;
      c->fop = 0;
      on_message(c, fop, c->fb.p, c->fb.len);
      if (c->state != CS_DEAD) c->fb.len = 0;
    }
    return;
  case 1:
  case 2:
    if (c->fop) {
      conn_fail(c, "new data frame inside a fragmented message");
      return;
    }
    if (fin) {
      on_message(c, op, p, n);
    } else {
      c->fop = (uint8_t)op;
      c->fb.len = 0;
      buf_add(&c->fb, p, n);
    }
    return;
  default:
    conn_fail(c, "unknown frame opcode");
    return;
  }
}

static const char *find_hdr(const char *h, size_t n, const char *name, size_t *vlen) {
  size_t nl = strlen(name);
  const char *e = h + n;
  const char *line = memchr(h, '\n', n);
  while (line && line + 1 < e) {
    line++;
    const char *eol = memchr(line, '\n', (size_t)(e - line));
    if (!eol) break;
    if ((size_t)(eol - line) > nl && line[nl] == ':' && !strncasecmp(line, name, nl)) {
      const char *v = line + nl + 1, *ve = eol;
      while (v < ve && (*v == ' ' || *v == '\t')) v++;
      while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t')) ve--;
      *vlen = (size_t)(ve - v);
      return v;
    }
    line = eol;
  }
  return NULL;
}

/* the handshake response is h[0..n) ending with the blank line */
static void on_http(struct conn *c, const char *h, size_t n) {
  if (n < 12 || memcmp(h, "HTTP/1.1 101", 12) != 0) {
    char why[96];
    size_t l = 0;
    while (l < n && l < 60 && h[l] != '\r' && h[l] != '\n') l++;
    snprintf(why, sizeof why, "handshake refused: %.*s", (int)l, h);
    conn_fail(c, why);
    return;
  }
  size_t vl;
  const char *v = find_hdr(h, n, "sec-websocket-accept", &vl);
  if (!v || vl != strlen(c->accept) || memcmp(v, c->accept, vl) != 0) {
    conn_fail(c, "bad Sec-WebSocket-Accept");
    return;
  }
  if (C.target == T_PARLEY) {
    const char *want = C.codec == C_JSON ? "parley.v1.json" : "parley.v1.msgpack";
    v = find_hdr(h, n, "sec-websocket-protocol", &vl);
    if (!v || vl != strlen(want) || memcmp(v, want, vl) != 0) {
      conn_fail(c, "server did not select the offered subprotocol");
      return;
    }
    c->state = CS_HELLO;
    send_hello(c);
  } else if (C.target == T_WS) {
    c->state = CS_JOIN;
    send_join(c);
  } else {
    c->state = CS_SIO_OPEN;
  }
}

/* parses what it can of p[0..n); returns the bytes consumed */
static size_t consume(struct conn *c, char *p, size_t n) {
  size_t off = 0;
  if (c->state == CS_HTTP) {
    const char *end = memmem(p, n, "\r\n\r\n", 4);
    if (!end) {
      if (n > MAX_HTTP) conn_fail(c, "handshake response too large");
      return 0;
    }
    off = (size_t)(end - p) + 4;
    on_http(c, p, off);
  }
  while (c->state != CS_DEAD && n - off >= 2) {
    uint8_t *h = (uint8_t *)p + off;
    bool fin = h[0] & 0x80, masked = h[1] & 0x80;
    int op = h[0] & 0x0f;
    if (h[0] & 0x70) {
      conn_fail(c, "reserved bits set (no extension was negotiated)");
      break;
    }
    uint64_t len = h[1] & 0x7f;
    size_t hl = 2;
    if (len == 126) {
      if (n - off < 4) break;
      len = be_n(h + 2, 2);
      hl = 4;
    } else if (len == 127) {
      if (n - off < 10) break;
      len = be_n(h + 2, 8);
      hl = 10;
    }
    if (len > MAX_FRAME) {
      conn_fail(c, "frame too large");
      break;
    }
    if (masked) hl += 4;
    if (n - off < hl + len) break;
    char *payload = p + off + hl;
    if (masked)
      for (size_t i = 0; i < len; i++) payload[i] ^= (char)h[hl - 4 + (i & 3)];
    on_frame(c, fin, op, payload, (size_t)len);
    off += hl + (size_t)len;
  }
  return off;
}

static void on_readable(struct conn *c) {
  for (int iter = 0; iter < 4 && c->state != CS_DEAD; iter++) {
    bool into_rb = c->rb.len > 0 || c->state == CS_HTTP;
    char *dst;
    size_t room;
    if (into_rb) {
      buf_reserve(&c->rb, 65536);
      dst = c->rb.p + c->rb.len;
      room = c->rb.cap - c->rb.len;
    } else {
      dst = scratch;
      room = sizeof scratch;
    }
    ssize_t r = recv(c->fd, dst, room, 0);
    if (r == 0) {
      conn_fail(c, "connection closed by server");
      break;
    }
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) conn_fail(c, strerror(errno));
      break;
    }
    now = now_ns();
    char *base;
    size_t len;
    if (into_rb) {
      c->rb.len += (size_t)r;
      base = c->rb.p;
      len = c->rb.len;
    } else {
      base = dst;
      len = (size_t)r;
    }
    size_t used = consume(c, base, len);
    if (c->state == CS_DEAD) break;
    if (into_rb) {
      memmove(c->rb.p, c->rb.p + used, len - used);
      c->rb.len = len - used;
    } else if (used < len) {
      buf_add(&c->rb, base + used, len - used);
    }
    if ((size_t)r < room) break;
  }
  if (c->state == CS_DEAD) buf_free(&c->rb);
}

static void send_upgrade(struct conn *c) {
  uint8_t raw[16];
  uint64_t a = rnd64(), b = rnd64();
  memcpy(raw, &a, 8);
  memcpy(raw + 8, &b, 8);
  char key[32];
  base64(raw, 16, key);
  ws_accept_for(key, c->accept);
  pl.len = 0;
  buf_addf(&pl,
           "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n",
           C.path, C.url, key);
  if (C.target == T_PARLEY)
    buf_addf(&pl, "Sec-WebSocket-Protocol: %s\r\n",
             C.codec == C_JSON ? "parley.v1.json" : "parley.v1.msgpack");
  buf_adds(&pl, "\r\n");
  c->state = CS_HTTP;
  conn_write(c, pl.p, pl.len);
}

static void on_writable(struct conn *c) {
  if (c->state == CS_TCP) {
    int err = 0;
    socklen_t l = sizeof err;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
    if (err) {
      conn_fail(c, strerror(err));
      return;
    }
    set_out(c, false);
    send_upgrade(c);
    return;
  }
  flush_out(c);
}

static void start_conn(struct conn *c) {
  c->t_start = now_ns();
  c->state = CS_TCP;
  inflight++;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    conn_fail(c, strerror(errno));
    return;
  }
  c->fd = fd;
  int one = 1;
  setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  struct sockaddr_in src = {.sin_family = AF_INET};
  src.sin_addr.s_addr = htonl(0x7f000002u + (uint32_t)(c->gidx % C.src_ips));
  if (bind(fd, (struct sockaddr *)&src, sizeof src) < 0) {
    conn_fail(c, strerror(errno));
    return;
  }
  struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.u64 = (uint64_t)(c - conns)};
  if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
    conn_fail(c, strerror(errno));
    return;
  }
  c->out_armed = true;
  if (connect(fd, (struct sockaddr *)&C.dst, sizeof C.dst) < 0 && errno != EINPROGRESS) {
    conn_fail(c, strerror(errno));
    return;
  }
}

/* ------------------------------------------------------------------------------------------------ */
/* worker                                                                                           */

static double cpu_seconds(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
         (double)ru.ru_stime.tv_usec / 1e6;
}

static void write_all(int fd, const char *p, size_t n) {
  while (n) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return;
    }
    p += w;
    n -= (size_t)w;
  }
}

static void arm_timer(bool on) {
  struct itimerspec its = {0};
  if (on) {
    its.it_interval.tv_sec = C.tick_us / 1000000;
    its.it_interval.tv_nsec = (C.tick_us % 1000000) * 1000;
    its.it_value = its.it_interval;
  }
  timerfd_settime(tfd, 0, &its, NULL);
}

static void on_tick(void) {
  uint64_t exp;
  if (read(tfd, &exp, sizeof exp) < 0) { /* spurious wakeup */
  }
  double dt = (double)(now - last_tick) / 1e9;
  last_tick = now;
  if (count_local > 0 && sent_local >= count_local) {
    arm_timer(false);
    return;
  }
  credits += rate_local * dt;
  double cap = rate_local * 0.05 + (double)nsenders; /* at most 50 ms of backlog */
  if (credits > cap) {
    S.lag += (uint64_t)(credits - cap);
    credits = cap;
  }
  long n = (long)credits;
  if (count_local > 0 && sent_local + n > count_local) n = count_local - sent_local;
  long skipped = 0;
  while (n > 0 && nsenders > 0 && skipped < nsenders) {
    struct conn *c = &conns[senders[rr]];
    rr = (rr + 1) % nsenders;
    if (c->state != CS_READY || c->wb.len - c->woff > WB_HIGH) {
      skipped++;
      continue;
    }
    skipped = 0;
    send_msg(c);
    n--;
    credits -= 1;
    sent_local++;
  }
  if (n > 0) S.blocked++;
  /* typing storm / churn: round-robin over every ready connection of this worker */
  if (ops_rate_local > 0 && nloc > 0) {
    ops_credits += ops_rate_local * dt;
    double ocap = ops_rate_local * 0.05 + 1;
    if (ops_credits > ocap) ops_credits = ocap;
    long tries = 0;
    while (ops_credits >= 1 && tries < nloc) {
      struct conn *c = &conns[ops_rr];
      ops_rr = (ops_rr + 1) % nloc;
      if (c->state != CS_READY || c->wb.len - c->woff > WB_HIGH) {
        tries++;
        continue;
      }
      tries = 0;
      send_op(c);
      ops_credits -= 1;
    }
  }
}

static int worker(long wi, int report_fd, int ctl_fd) {
  memset(&S, 0, sizeof S);
  slice_of(wi, &w_lo, &w_hi, &rooms_local);
  nloc = w_hi - w_lo;
  conns = calloc((size_t)(nloc ? nloc : 1), sizeof *conns);
  senders = calloc((size_t)(nloc ? nloc : 1), sizeof *senders);
  if (!conns || !senders) die("out of memory");
  for (long i = 0; i < nloc; i++) {
    struct conn *c = &conns[i];
    c->fd = -1;
    c->gidx = w_lo + i;
    c->room = c->gidx / C.room_size;
    c->last_seq = -1;
    if (is_sender(c->gidx)) senders[nsenders++] = i;
  }
  long tot_senders = senders_before(C.conns);
  long sb_lo = senders_before(w_lo), sb_hi = senders_before(w_hi);
  rate_local = tot_senders ? C.rate * (double)nsenders / (double)tot_senders : 0;
  if (C.count > 0 && tot_senders)
    count_local = (long)((double)C.count * (double)sb_hi / (double)tot_senders) -
                  (long)((double)C.count * (double)sb_lo / (double)tot_senders);
  if (C.count > 0 && count_local == 0) rate_local = 0;
  ops_rate_local = (C.typing_rate + C.churn_rate) * (double)nloc / (double)C.conns;

  ep = epoll_create1(EPOLL_CLOEXEC);
  tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  if (ep < 0 || tfd < 0) die("epoll/timerfd: %s", strerror(errno));
  struct epoll_event ev = {.events = EPOLLIN, .data.u64 = TAG_TIMER};
  epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &ev);
  ev.data.u64 = TAG_CTL;
  epoll_ctl(ep, EPOLL_CTL_ADD, ctl_fd, &ev);

  now = now_ns();
  uint64_t connect_deadline = now + (uint64_t)(C.connect_timeout * 1e9);
  uint64_t drain_end = 0;
  double cpu0 = 0, cpu_run0 = 0;
  bool cpu0_taken = false, go = false;
  struct buf ctl = {0};
  phase = P_CONNECT;
  struct epoll_event evs[512];
  int rc = 0;

  while (phase != P_DONE) {
    /* start connections, keeping at most --connect-concurrency handshakes in flight */
    if (phase == P_CONNECT) {
      while (next_start < nloc && inflight < C.concurrency) start_conn(&conns[next_start++]);
      if (settled >= nloc || now >= connect_deadline) {
        for (long i = 0; i < nloc; i++)
          if (conns[i].state != CS_READY && conns[i].state != CS_DEAD)
            conn_fail(&conns[i], "connect timeout");
        char line[96];
        int l = snprintf(line, sizeof line, "R %" PRIu64 " %" PRIu64 " %" PRIu64 "\n", now, S.ready,
                         S.connect_errors);
        write_all(report_fd, line, (size_t)l);
        phase = P_WAIT;
      }
    }
    int timeout = 100;
    if (phase == P_CONNECT) timeout = 20;
    if (phase == P_WAIT && go) timeout = now >= t0 ? 0 : (int)((t0 - now) / 1000000);
    if (phase == P_DRAIN) timeout = 10;
    int ne = epoll_wait(ep, evs, (int)(sizeof evs / sizeof evs[0]), timeout);
    if (ne < 0 && errno != EINTR) die("epoll_wait: %s", strerror(errno));
    now = now_ns();
    for (int i = 0; i < ne; i++) {
      uint64_t tag = evs[i].data.u64;
      if (tag == TAG_TIMER) {
        if (phase == P_RUN)
          on_tick();
        else {
          uint64_t x;
          if (read(tfd, &x, sizeof x) < 0) { /* nothing */
          }
        }
        continue;
      }
      if (tag == TAG_CTL) {
        char tmp[256];
        ssize_t r = read(ctl_fd, tmp, sizeof tmp);
        if (r <= 0) { /* the parent is gone */
          rc = 3;
          phase = P_DONE;
          break;
        }
        buf_add(&ctl, tmp, (size_t)r);
        if (!go && memchr(ctl.p, '\n', ctl.len) && ctl.p[0] == 'G') {
          buf_addc(&ctl, 0);
          t0 = strtoull(ctl.p + 2, NULL, 10);
          go = true;
          if (C.idle) {
            win_start = t0;
            win_end = t0 + (uint64_t)(C.duration * 1e9);
          } else {
            win_start = t0 + (uint64_t)(C.warmup * 1e9);
            win_end = win_start + (uint64_t)(C.duration * 1e9);
          }
        }
        continue;
      }
      struct conn *c = &conns[tag];
      if (c->state == CS_DEAD) continue;
      if (evs[i].events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) {
        if (c->state == CS_TCP || (evs[i].events & EPOLLOUT)) on_writable(c);
      }
      if (c->state != CS_DEAD && (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) && c->state != CS_TCP)
        on_readable(c);
      else if (c->state == CS_DEAD)
        buf_free(&c->rb);
    }
    /* phase changes */
    if (phase == P_WAIT && go && now >= t0) {
      phase = P_RUN;
      last_tick = last_rx = now;
      credits = 0;
      cpu_run0 = cpu_seconds();
      if (!C.idle && (rate_local > 0 || ops_rate_local > 0)) arm_timer(true);
    }
    if (phase == P_RUN) {
      if (!cpu0_taken && now >= win_start) {
        cpu0 = cpu_seconds();
        cpu0_taken = true;
      }
      bool count_done = C.count > 0 && sent_local >= count_local;
      bool count_settled =
          count_done && (rooms_local ? S.delivered >= S.expected : now - last_rx > 300000000ull);
      if (now >= win_end || (count_settled && !C.idle)) {
        arm_timer(false);
        double wall = (double)((now < win_end ? now : win_end) - win_start) / 1e9;
        if (!cpu0_taken) cpu0 = cpu_run0;
        S.win_s = wall;
        S.cpu_pct = wall > 0 ? 100.0 * (cpu_seconds() - cpu0) / wall : 0;
        phase = P_DRAIN;
        drain_end = now + (uint64_t)(C.drain * 1e9);
        last_rx = now;
        if (C.idle) phase = P_DONE;
      }
    }
    if (phase == P_DRAIN) {
      bool complete = rooms_local && S.delivered >= S.expected;
      bool quiet = !rooms_local && now - last_rx > 300000000ull;
      if (complete || quiet || now >= drain_end) phase = P_DONE;
    }
  }
  buf_free(&ctl);

  if (rc == 0) {
    struct buf o = {0};
    buf_addf(&o,
             "X {\"sent\":%" PRIu64 ",\"sent_all\":%" PRIu64 ",\"expected\":%" PRIu64
             ",\"delivered\":%" PRIu64 ",\"delivered_all\":%" PRIu64 ",\"acks\":%" PRIu64
             ",\"send_errors\":%" PRIu64 ",\"proto_errors\":%" PRIu64 ",\"order_errors\":%" PRIu64
             ",\"closed\":%" PRIu64 ",\"connect_errors\":%" PRIu64 ",\"ready\":%" PRIu64 ",\"lag\":%" PRIu64
             ",\"blocked\":%" PRIu64 ",\"close_code\":%d,\"cpu\":%.2f,\"win_s\":%.4f,\"acked\":%" PRIu64
             ",\"ops_sent\":%" PRIu64 ",\"op_acks\":%" PRIu64 ",\"typing_events\":%" PRIu64
             ",\"other_events\":%" PRIu64 ",\"ack_untracked\":%" PRIu64 ",\"err\":",
             S.sent, S.sent_all, S.expected, S.delivered, S.delivered_all, S.acks, S.send_errors,
             S.proto_errors, S.order_errors, S.closed, S.connect_errors, S.ready, S.lag, S.blocked,
             S.close_code, S.cpu_pct, S.win_s, S.acked, S.ops_sent, S.op_acks, S.typing_events,
             S.other_events, S.ack_untracked);
    buf_add_jstr(&o, S.first_error);
    hist_json(&o, "lat", &S.lat);
    hist_json(&o, "clat", &S.clat);
    hist_json(&o, "alat", &S.alat);
    hist_json(&o, "olat", &S.olat);
    buf_adds(&o, "}\n");
    write_all(report_fd, o.p, o.len);
    buf_free(&o);
  }
  for (long i = 0; i < nloc; i++) {
    if (conns[i].fd >= 0) close(conns[i].fd);
    buf_free(&conns[i].rb);
    buf_free(&conns[i].wb);
    buf_free(&conns[i].fb);
    free(conns[i].pend);
  }
  free(conns);
  free(senders);
  conns = NULL;
  senders = NULL;
  buf_free(&pl);
  buf_free(&fr);
  close(ep);
  close(tfd);
  close(report_fd);
  close(ctl_fd);
  return rc;
}

/* ------------------------------------------------------------------------------------------------ */
/* coordinator                                                                                      */

struct child {
  pid_t pid;
  int rfd, wfd;
  struct buf in;
  bool ready, done, eof;
  uint64_t ready_ts;
  char *result;
};
static struct child *kids;

static long proc_rss_kb(int pid) {
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/%d/status", pid);
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  long kb = -1;
  while (fgets(line, sizeof line, f))
    if (!strncmp(line, "VmRSS:", 6)) kb = strtol(line + 6, NULL, 10);
  fclose(f);
  return kb;
}
static long long proc_cpu_ticks(int pid) {
  char path[64], data[1024];
  snprintf(path, sizeof path, "/proc/%d/stat", pid);
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  size_t n = fread(data, 1, sizeof data - 1, f);
  fclose(f);
  data[n] = 0;
  char *p = strrchr(data, ')');
  if (!p) return -1;
  /* after ")": state(3) ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime(14) stime(15)
   */
  unsigned long long ut = 0, st = 0;
  if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2) return -1;
  return (long long)(ut + st);
}

/* the first line of /proc/stat: user nice system idle iowait irq softirq steal (ticks, all CPUs) */
static bool proc_stat_cpu(unsigned long long v[8]) {
  FILE *f = fopen("/proc/stat", "r");
  if (!f) return false;
  int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5],
                 &v[6], &v[7]);
  fclose(f);
  return n == 8;
}

/* busy ticks of the whole machine (all CPUs): user nice system irq softirq steal */
static long long machine_busy_ticks(void) {
  unsigned long long v[8];
  return proc_stat_cpu(v) ? (long long)(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) : -1;
}

/* ticks the hypervisor ran something else while this machine's vCPUs wanted to run (all CPUs) */
static long long machine_steal_ticks(void) {
  unsigned long long v[8];
  return proc_stat_cpu(v) ? (long long)v[7] : -1;
}

static uint64_t jnum_u(const char *s, const char *key) {
  char pat[48];
  snprintf(pat, sizeof pat, "\"%s\":", key);
  const char *p = strstr(s, pat);
  return p ? strtoull(p + strlen(pat), NULL, 10) : 0;
}
static double jnum_d(const char *s, const char *key) {
  char pat[48];
  snprintf(pat, sizeof pat, "\"%s\":", key);
  const char *p = strstr(s, pat);
  return p ? strtod(p + strlen(pat), NULL) : 0;
}
static void jhist_merge(const char *s, const char *key, struct hist *h) {
  char pat[48];
  snprintf(pat, sizeof pat, "\"%s\":[", key);
  const char *p = strstr(s, pat);
  char mk[24];
  snprintf(mk, sizeof mk, "%s_max", key);
  uint64_t mx = jnum_u(s, mk);
  if (mx > h->max) h->max = mx;
  if (!p) return;
  p += strlen(pat);
  while (*p && *p != ']') {
    char *e;
    unsigned long long i = strtoull(p, &e, 10);
    if (*e != ',') break;
    unsigned long long cnt = strtoull(e + 1, &e, 10);
    if (i < H_BUCKETS) {
      h->n[i] += cnt;
      h->count += cnt;
    }
    p = e;
    if (*p == ',') p++;
  }
}
static void jstr_copy(const char *s, const char *key, char *out, size_t cap) {
  char pat[48];
  snprintf(pat, sizeof pat, "\"%s\":\"", key);
  const char *p = strstr(s, pat);
  out[0] = 0;
  if (!p) return;
  p += strlen(pat);
  size_t o = 0;
  while (*p && *p != '"' && o + 1 < cap) {
    if (*p == '\\' && p[1]) p++;
    out[o++] = *p++;
  }
  out[o] = 0;
}

static void usage(FILE *f) {
  fprintf(f,
          "usage: loadgen [options]\n"
          "  --url HOST:PORT           target (loopback only: 127.0.0.0/8 or localhost) [127.0.0.1:8080]\n"
          "  --target parley|ws|socketio                                               [parley]\n"
          "  --codec json|msgpack      Parley subprotocol                              [json]\n"
          "  --path PATH               request path [/ws; / for ws; " SIO_PATH " for socketio]\n"
          "  --conns N                 connections                                     [1000]\n"
          "  --room-size S             members per room (conn i is in room i/S)        [10]\n"
          "  --senders-per-room K      senders in each room                            [1]\n"
          "  --rate R                  messages sent per second, all senders together  [1000]\n"
          "  --count M                 stop sending after M messages in total          [no limit]\n"
          "  --duration SEC            measured window (with --idle: how long to hold) [10]\n"
          "  --warmup SEC              sending before the window, not measured         [2]\n"
          "  --drain SEC               wait for in-flight deliveries, at most 3        [3]\n"
          "  --size BYTES              encoded size of each message body               [64]\n"
          "  --idle                    connect, hello, join, hold; no messages\n"
          "  --server-pid PID          report the server's CPU and RSS from /proc\n"
          "  --procs K                 worker processes (each under the fd limit)      [1]\n"
          "  --src-ips N               spread sources over 127.0.0.2 .. 127.0.0.(N+1) [8]\n"
          "  --connect-concurrency N   handshakes in flight per process                [256]\n"
          "  --connect-timeout SEC     give up on connections not ready by then        [60]\n"
          "  --tick-us US              pacing timer period                             [1000]\n"
          "  --typing-rate R           Parley: also R typing requests/s over all connections (typing storm)\n"
          "  --churn-rate R            Parley: also R join/leave requests/s over all connections, each on a\n"
          "                            second room c<k> of its group (the measured rooms are not touched)\n"
          "  --connect-settle SEC      with --server-pid: after connecting, wait at most SEC for the server\n"
          "                            to go idle before the first send (0: do not wait)  [10]\n"
          "  --text                    pad bodies with words and blanks instead of 'x's (word-filter hooks)\n"
          "  --json                    print one JSON line instead of the report\n"
          "  --smoke                   20 conns, rooms of 5, 200 messages; exit 1 unless all delivered\n");
}

static double parse_num(const char *opt, const char *v, double lo, double hi) {
  char *e;
  double d = strtod(v, &e);
  if (e == v || *e || d < lo || d > hi) die("%s: %s is not a number in [%g, %g]", opt, v, lo, hi);
  return d;
}

static void parse_url(const char *u) {
  if (!strncmp(u, "ws://", 5)) u += 5;
  char host[128];
  const char *colon = strrchr(u, ':');
  if (!colon || colon == u || (size_t)(colon - u) >= sizeof host) die("--url must be HOST:PORT, got %s", u);
  memcpy(host, u, (size_t)(colon - u));
  host[colon - u] = 0;
  char *e;
  long port = strtol(colon + 1, &e, 10);
  if (port <= 0 || port > 65535 || (*e && *e != '/')) die("--url: bad port in %s", u);
  if (*e == '/' && !C.path_set) snprintf(C.path, sizeof C.path, "%s", e);
  if (!strcmp(host, "localhost")) strcpy(host, "127.0.0.1");
  memset(&C.dst, 0, sizeof C.dst);
  C.dst.sin_family = AF_INET;
  C.dst.sin_port = htons((uint16_t)port);
  if (inet_pton(AF_INET, host, &C.dst.sin_addr) != 1)
    die("--url: %s is not an IPv4 address or localhost", host);
  if ((ntohl(C.dst.sin_addr.s_addr) >> 24) != 127)
    die("refusing target %s: only loopback addresses (127.0.0.0/8) may be load-tested", host);
  snprintf(C.url, sizeof C.url, "%s:%ld", host, port);
}

int main(int argc, char **argv) {
  static const struct option opts[] = {
      {"url", required_argument, 0, 'u'},
      {"target", required_argument, 0, 't'},
      {"codec", required_argument, 0, 'c'},
      {"path", required_argument, 0, 'P'},
      {"conns", required_argument, 0, 'n'},
      {"room-size", required_argument, 0, 's'},
      {"senders-per-room", required_argument, 0, 'k'},
      {"rate", required_argument, 0, 'r'},
      {"count", required_argument, 0, 'm'},
      {"duration", required_argument, 0, 'd'},
      {"warmup", required_argument, 0, 'w'},
      {"drain", required_argument, 0, 'D'},
      {"size", required_argument, 0, 'b'},
      {"idle", no_argument, 0, 'i'},
      {"server-pid", required_argument, 0, 'p'},
      {"procs", required_argument, 0, 'K'},
      {"src-ips", required_argument, 0, 'S'},
      {"connect-concurrency", required_argument, 0, 'C'},
      {"connect-timeout", required_argument, 0, 'T'},
      {"tick-us", required_argument, 0, 'U'},
      {"json", no_argument, 0, 'j'},
      {"typing-rate", required_argument, 0, 'Y'},
      {"churn-rate", required_argument, 0, 'H'},
      {"text", no_argument, 0, 'x'},
      {"connect-settle", required_argument, 0, 'L'},
      {"smoke", no_argument, 0, 'z'},
      {"help", no_argument, 0, 'h'},
      {0, 0, 0, 0},
  };
  const char *url = "127.0.0.1:8080";
  bool seen_conns = false, seen_rs = false, seen_count = false, seen_rate = false, seen_dur = false,
       seen_warm = false;
  int o;
  while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    switch (o) {
    case 'u':
      url = optarg;
      break;
    case 't':
      if (!strcmp(optarg, "parley"))
        C.target = T_PARLEY;
      else if (!strcmp(optarg, "ws"))
        C.target = T_WS;
      else if (!strcmp(optarg, "socketio") || !strcmp(optarg, "socket.io"))
        C.target = T_SIO;
      else
        die("--target must be parley, ws or socketio");
      break;
    case 'c':
      if (!strcmp(optarg, "json"))
        C.codec = C_JSON;
      else if (!strcmp(optarg, "msgpack"))
        C.codec = C_MSGPACK;
      else
        die("--codec must be json or msgpack");
      break;
    case 'P':
      snprintf(C.path, sizeof C.path, "%s", optarg);
      C.path_set = true;
      break;
    case 'n':
      C.conns = (long)parse_num("--conns", optarg, 1, 10000000), seen_conns = true;
      break;
    case 's':
      C.room_size = (long)parse_num("--room-size", optarg, 1, 10000000), seen_rs = true;
      break;
    case 'k':
      C.senders_per_room = (long)parse_num("--senders-per-room", optarg, 1, 10000000);
      break;
    case 'r':
      C.rate = parse_num("--rate", optarg, 0, 1e8), seen_rate = true;
      break;
    case 'm':
      C.count = (long)parse_num("--count", optarg, 1, 1e12), seen_count = true;
      break;
    case 'd':
      C.duration = parse_num("--duration", optarg, 0.01, 86400), seen_dur = true;
      break;
    case 'w':
      C.warmup = parse_num("--warmup", optarg, 0, 3600), seen_warm = true;
      break;
    case 'D':
      C.drain = parse_num("--drain", optarg, 0, 3);
      break;
    case 'b':
      C.size = (long)parse_num("--size", optarg, 1, 60000);
      break;
    case 'i':
      C.idle = true;
      break;
    case 'p':
      C.server_pid = (int)parse_num("--server-pid", optarg, 1, 1 << 30);
      break;
    case 'K':
      C.procs = (long)parse_num("--procs", optarg, 1, MAX_PROCS);
      break;
    case 'S':
      C.src_ips = (long)parse_num("--src-ips", optarg, 1, 250);
      break;
    case 'C':
      C.concurrency = (long)parse_num("--connect-concurrency", optarg, 1, 100000);
      break;
    case 'T':
      C.connect_timeout = parse_num("--connect-timeout", optarg, 0.1, 3600);
      break;
    case 'U':
      C.tick_us = (long)parse_num("--tick-us", optarg, 100, 1000000);
      break;
    case 'j':
      C.json = true;
      break;
    case 'Y':
      C.typing_rate = parse_num("--typing-rate", optarg, 0, 1e8);
      break;
    case 'H':
      C.churn_rate = parse_num("--churn-rate", optarg, 0, 1e8);
      break;
    case 'x':
      C.text = true;
      break;
    case 'L':
      C.connect_settle = parse_num("--connect-settle", optarg, 0, 60);
      break;
    case 'z':
      C.smoke = true;
      break;
    case 'h':
      usage(stdout);
      return 0;
    default:
      usage(stderr);
      return 2;
    }
  }
  if (optind < argc) die("unexpected argument %s (see --help)", argv[optind]);
  if (C.smoke) {
    if (!seen_conns) C.conns = 20;
    if (!seen_rs) C.room_size = 5;
    if (!seen_count) C.count = 200;
    if (!seen_rate) C.rate = 2000;
    if (!seen_dur) C.duration = 5;
    if (!seen_warm) C.warmup = 0;
    if (C.connect_timeout > 20) C.connect_timeout = 20;
    C.idle = false;
  }
  if (!C.path_set)
    snprintf(C.path, sizeof C.path, "%s", C.target == T_PARLEY ? "/ws" : C.target == T_WS ? "/" : SIO_PATH);
  parse_url(url);
  if (C.target != T_PARLEY && C.codec == C_MSGPACK) die("--codec msgpack is for --target parley only");
  if (C.procs > C.conns) C.procs = C.conns;
  if (!C.idle && C.rate <= 0) die("--rate must be > 0 (or use --idle)");
  if ((C.typing_rate > 0 || C.churn_rate > 0) && C.target != T_PARLEY)
    die("--typing-rate and --churn-rate are for --target parley only");
  if (C.typing_rate > 0 && C.churn_rate > 0) die("--typing-rate and --churn-rate exclude each other");

  /* file descriptors: raise the soft limit to the hard one and check each worker fits */
  struct rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);
  getrlimit(RLIMIT_NOFILE, &rl);
  long per_proc = 0;
  for (long i = 0; i < C.procs; i++) {
    long lo, hi;
    bool rl_;
    slice_of(i, &lo, &hi, &rl_);
    if (hi - lo > per_proc) per_proc = hi - lo;
  }
  long fd_cap = rl.rlim_cur == RLIM_INFINITY ? 1L << 30 : (long)rl.rlim_cur;
  if (per_proc + FD_MARGIN > fd_cap) {
    long need = (C.conns + (fd_cap - FD_MARGIN) - 1) / (fd_cap - FD_MARGIN);
    die("%ld connections per process exceed the fd limit (%ld, %d kept free): run several processes, "
        "e.g. --procs %ld",
        per_proc, fd_cap, FD_MARGIN, need < 2 ? 2 : need);
  }

  signal(SIGPIPE, SIG_IGN);
  rng_state ^= now_ns() ^ ((uint64_t)getpid() << 32);
  if (!rng_state) rng_state = 1;
  snprintf(nonce, sizeof nonce, "%08" PRIx64, rnd64() & 0xffffffffu);

  /* a server still busy with a previous (overloaded) run would distort this one: wait up to 20 s for it to
   * go quiet (under 10% CPU over 200 ms) */
  double settle_s = 0;
  bool server_busy = false;
  if (C.server_pid) {
    uint64_t s0 = now_ns();
    long long a = proc_cpu_ticks(C.server_pid);
    long clk_tck = sysconf(_SC_CLK_TCK);
    for (;;) {
      struct timespec ts = {0, 200000000};
      nanosleep(&ts, NULL);
      long long b = proc_cpu_ticks(C.server_pid);
      if (a < 0 || b < 0) die("--server-pid %d: no such process", C.server_pid);
      if ((double)(b - a) / (double)clk_tck < 0.02) break;
      if (now_ns() - s0 > 20 * NS) {
        server_busy = true;
        break;
      }
      a = b;
    }
    settle_s = (double)(now_ns() - s0) / 1e9;
  }
  long rss_before = C.server_pid ? proc_rss_kb(C.server_pid) : -1;
  if (C.server_pid && rss_before < 0) die("--server-pid %d: no such process", C.server_pid);
  long rss_connected = -1, rss_end = -1;
  long long cpu_a = -1, cpu_b = -1, mach_a = -1, mach_b = -1, steal_a = -1, steal_b = -1;
  uint64_t cpu_a_t = 0, cpu_b_t = 0;

  fflush(stdout);
  fflush(stderr);
  uint64_t t_begin = now_ns();
  kids = calloc((size_t)C.procs, sizeof *kids);
  if (!kids) die("out of memory");
  for (long i = 0; i < C.procs; i++) {
    int rp[2], cp[2];
    if (pipe2(rp, O_CLOEXEC) < 0 || pipe2(cp, O_CLOEXEC) < 0) die("pipe: %s", strerror(errno));
    pid_t pid = fork();
    if (pid < 0) die("fork: %s", strerror(errno));
    if (pid == 0) {
      close(rp[0]);
      close(cp[1]);
      for (long j = 0; j < i; j++) {
        close(kids[j].rfd);
        close(kids[j].wfd);
      }
      rng_state ^= (uint64_t)(i + 1) * 0x9E3779B97F4A7C15ull;
      int rc = worker(i, rp[1], cp[0]);
      free(kids);
      exit(rc);
    }
    close(rp[1]);
    close(cp[0]);
    kids[i].pid = pid;
    kids[i].rfd = rp[0];
    kids[i].wfd = cp[1];
  }

  /* coordinate: wait for every worker's R line, send G t0, sample the server, collect X lines */
  uint64_t ready_deadline = t_begin + (uint64_t)((C.connect_timeout + 15) * 1e9);
  uint64_t res_deadline = 0, s_start = 0, s_end = 0, go_t0 = 0;
  bool go_sent = false, timed_out = false, busy_after_connect = false;
  double connect_settle_s = 0;
  struct pollfd *pfd = calloc((size_t)C.procs, sizeof *pfd);
  if (!pfd) die("out of memory");
  for (;;) {
    uint64_t tn = now_ns();
    bool all_ready = true, all_done = true;
    for (long i = 0; i < C.procs; i++) {
      if (!kids[i].ready && !kids[i].eof) all_ready = false;
      if (!kids[i].done && !kids[i].eof) all_done = false;
    }
    if (!go_sent && all_ready) {
      if (C.server_pid) rss_connected = proc_rss_kb(C.server_pid);
      /* the connect storm (and, for Parley, the join notifications it fans out) may keep the server busy for
       * a while: let it go quiet (< 10% CPU over 100 ms, at most --connect-settle s) before the first send */
      if (C.server_pid && !C.idle && C.connect_settle > 0) {
        uint64_t s0 = now_ns();
        long clk_tck = sysconf(_SC_CLK_TCK);
        long long a = proc_cpu_ticks(C.server_pid);
        for (;;) {
          struct timespec ts = {0, 100000000};
          nanosleep(&ts, NULL);
          long long b = proc_cpu_ticks(C.server_pid);
          if (a < 0 || b < 0 || (double)(b - a) / (double)clk_tck < 0.01) break;
          if ((double)(now_ns() - s0) / 1e9 > C.connect_settle) {
            busy_after_connect = true;
            break;
          }
          a = b;
        }
        connect_settle_s = (double)(now_ns() - s0) / 1e9;
      }
      tn = now_ns();
      go_t0 = tn + 50000000ull;
      if (C.idle) {
        s_start = go_t0;
        double hold = C.duration - (C.duration / 10 < 0.2 ? C.duration / 10 : 0.2);
        s_end = go_t0 + (uint64_t)(hold * 1e9);
        res_deadline = go_t0 + (uint64_t)((C.duration + 10) * 1e9);
      } else {
        s_start = go_t0 + (uint64_t)(C.warmup * 1e9);
        s_end = s_start + (uint64_t)(C.duration * 1e9);
        res_deadline = s_end + (uint64_t)((C.drain + 10) * 1e9);
      }
      char line[64];
      int l = snprintf(line, sizeof line, "G %" PRIu64 "\n", go_t0);
      for (long i = 0; i < C.procs; i++)
        if (!kids[i].eof) write_all(kids[i].wfd, line, (size_t)l);
      go_sent = true;
    }
    if (go_sent && !cpu_a_t && tn >= s_start) {
      if (C.server_pid) cpu_a = proc_cpu_ticks(C.server_pid);
      mach_a = machine_busy_ticks();
      steal_a = machine_steal_ticks();
      cpu_a_t = tn;
    }
    if (go_sent && !cpu_b_t && (tn >= s_end || all_done)) {
      if (C.server_pid) {
        cpu_b = proc_cpu_ticks(C.server_pid);
        rss_end = proc_rss_kb(C.server_pid);
      }
      mach_b = machine_busy_ticks();
      steal_b = machine_steal_ticks();
      cpu_b_t = tn;
    }
    if (all_done) break;
    uint64_t deadline = go_sent ? res_deadline : ready_deadline;
    if (tn >= deadline) {
      timed_out = true;
      for (long i = 0; i < C.procs; i++)
        if (!kids[i].done && !kids[i].eof) kill(kids[i].pid, SIGKILL);
      break;
    }
    uint64_t wake = deadline;
    if (go_sent && !cpu_a_t && s_start < wake) wake = s_start;
    if (go_sent && !cpu_b_t && s_end < wake) wake = s_end;
    int timeout = wake > tn ? (int)((wake - tn) / 1000000) + 1 : 0;
    if (timeout > 200) timeout = 200;
    nfds_t np = 0;
    for (long i = 0; i < C.procs; i++) {
      pfd[i].fd = kids[i].eof ? -1 : kids[i].rfd;
      pfd[i].events = POLLIN;
      pfd[i].revents = 0;
      np++;
    }
    if (poll(pfd, np, timeout) < 0 && errno != EINTR) die("poll: %s", strerror(errno));
    for (long i = 0; i < C.procs; i++) {
      if (!(pfd[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      struct child *k = &kids[i];
      char tmp[65536];
      ssize_t r = read(k->rfd, tmp, sizeof tmp);
      if (r <= 0) {
        k->eof = true;
        continue;
      }
      buf_add(&k->in, tmp, (size_t)r);
      for (;;) {
        char *nl = memchr(k->in.p, '\n', k->in.len);
        if (!nl) break;
        *nl = 0;
        size_t ll = (size_t)(nl - k->in.p) + 1;
        if (k->in.p[0] == 'R') {
          k->ready = true;
          k->ready_ts = strtoull(k->in.p + 2, NULL, 10);
        } else if (k->in.p[0] == 'X') {
          k->done = true;
          k->result = strdup(k->in.p + 2);
        }
        memmove(k->in.p, k->in.p + ll, k->in.len - ll);
        k->in.len -= ll;
      }
    }
  }
  free(pfd);
  int failed_workers = 0;
  for (long i = 0; i < C.procs; i++) {
    int st = 0;
    waitpid(kids[i].pid, &st, 0);
    if (!kids[i].done) failed_workers++;
    close(kids[i].rfd);
    close(kids[i].wfd);
  }

  /* merge */
  struct stats A;
  memset(&A, 0, sizeof A);
  double cpu_max = 0, cpu_sum = 0;
  uint64_t last_ready = t_begin;
  for (long i = 0; i < C.procs; i++) {
    const char *s = kids[i].result;
    if (kids[i].ready && kids[i].ready_ts > last_ready) last_ready = kids[i].ready_ts;
    if (!s) continue;
    A.sent += jnum_u(s, "sent");
    A.sent_all += jnum_u(s, "sent_all");
    A.expected += jnum_u(s, "expected");
    A.delivered += jnum_u(s, "delivered");
    A.delivered_all += jnum_u(s, "delivered_all");
    A.acks += jnum_u(s, "acks");
    A.send_errors += jnum_u(s, "send_errors");
    A.proto_errors += jnum_u(s, "proto_errors");
    A.order_errors += jnum_u(s, "order_errors");
    A.closed += jnum_u(s, "closed");
    A.connect_errors += jnum_u(s, "connect_errors");
    A.ready += jnum_u(s, "ready");
    A.lag += jnum_u(s, "lag");
    A.blocked += jnum_u(s, "blocked");
    int cc = (int)jnum_u(s, "close_code");
    if (cc) A.close_code = cc;
    double cpu = jnum_d(s, "cpu");
    cpu_sum += cpu;
    if (cpu > cpu_max) cpu_max = cpu;
    double ws = jnum_d(s, "win_s");
    if (ws > A.win_s) A.win_s = ws;
    if (!A.first_error[0]) jstr_copy(s, "err", A.first_error, sizeof A.first_error);
    jhist_merge(s, "lat", &A.lat);
    jhist_merge(s, "clat", &A.clat);
    jhist_merge(s, "alat", &A.alat);
    jhist_merge(s, "olat", &A.olat);
    A.acked += jnum_u(s, "acked");
    A.ops_sent += jnum_u(s, "ops_sent");
    A.op_acks += jnum_u(s, "op_acks");
    A.typing_events += jnum_u(s, "typing_events");
    A.other_events += jnum_u(s, "other_events");
    A.ack_untracked += jnum_u(s, "ack_untracked");
  }
  if (failed_workers && !A.first_error[0])
    snprintf(A.first_error, sizeof A.first_error, "%d worker(s) did not report%s", failed_workers,
             timed_out ? " (timed out, killed)" : "");
  double connect_s = (double)(last_ready - t_begin) / 1e9;
  double win = C.idle ? C.duration : (A.win_s > 0 ? A.win_s : C.duration);
  double ratio = A.expected ? (double)A.delivered / (double)A.expected : (C.idle ? 1.0 : 0.0);
  bool client_bound = cpu_max > CLIENT_BOUND;
  long clk = sysconf(_SC_CLK_TCK);
  double srv_cpu = -1;
  if (cpu_a >= 0 && cpu_b >= 0 && cpu_b_t > cpu_a_t)
    srv_cpu = 100.0 * ((double)(cpu_b - cpu_a) / (double)clk) / ((double)(cpu_b_t - cpu_a_t) / 1e9);
  /* CPU used on the machine by anything but the server and the generator: other load makes figures noisy */
  double other_cpu = -1;
  if (mach_a >= 0 && mach_b >= 0 && cpu_b_t > cpu_a_t) {
    double all = 100.0 * ((double)(mach_b - mach_a) / (double)clk) / ((double)(cpu_b_t - cpu_a_t) / 1e9);
    other_cpu = all - (srv_cpu > 0 ? srv_cpu : 0) - cpu_sum;
    if (other_cpu < 0) other_cpu = 0;
  }
  bool noisy = other_cpu > 15;
  /* time the hypervisor took the vCPUs away (included in other_cpu): frames in flight meanwhile are late */
  double steal = -1;
  if (steal_a >= 0 && steal_b >= 0 && cpu_b_t > cpu_a_t)
    steal = 100.0 * ((double)(steal_b - steal_a) / (double)clk) / ((double)(cpu_b_t - cpu_a_t) / 1e9);
  long rss_final = rss_end >= 0 ? rss_end : rss_connected;
  double rss_per_conn = (rss_final >= 0 && rss_before >= 0 && A.ready)
                            ? (double)(rss_final - rss_before) / (double)A.ready
                            : -1;
  double p50 = (double)hist_pct(&A.lat, 50), p90 = (double)hist_pct(&A.lat, 90),
         p99 = (double)hist_pct(&A.lat, 99), p999 = (double)hist_pct(&A.lat, 99.9), pmax = (double)A.lat.max;

  bool smoke_ok = true;
  char smoke_why[200] = "";
  if (C.smoke) {
    if (failed_workers)
      snprintf(smoke_why, sizeof smoke_why, "worker failed");
    else if (A.connect_errors || A.ready != (uint64_t)C.conns)
      snprintf(smoke_why, sizeof smoke_why, "%" PRIu64 " of %ld connections ready", A.ready, C.conns);
    else if (A.sent != (uint64_t)C.count)
      snprintf(smoke_why, sizeof smoke_why, "sent %" PRIu64 " of %ld messages", A.sent, C.count);
    else if (A.delivered != A.expected)
      snprintf(smoke_why, sizeof smoke_why, "delivered %" PRIu64 " of %" PRIu64, A.delivered, A.expected);
    else if (A.send_errors || A.proto_errors || A.order_errors || A.closed)
      snprintf(smoke_why, sizeof smoke_why,
               "errors: send %" PRIu64 " protocol %" PRIu64 " order %" PRIu64 " closed %" PRIu64,
               A.send_errors, A.proto_errors, A.order_errors, A.closed);
    else if (C.target == T_PARLEY && A.acks != A.sent_all)
      snprintf(smoke_why, sizeof smoke_why, "%" PRIu64 " acks for %" PRIu64 " sends", A.acks, A.sent_all);
    smoke_ok = !smoke_why[0];
  }

  if (C.json) {
    struct buf j = {0};
    buf_addf(
        &j,
        "{\"target\":\"%s\",\"codec\":\"%s\",\"conns\":%ld,\"room_size\":%ld,\"senders_per_room\":%ld,"
        "\"rate\":%.0f,\"duration\":%.3f,\"warmup\":%.3f,\"size\":%ld,\"procs\":%ld,\"idle\":%s,"
        "\"connected\":%" PRIu64 ",\"connect_errors\":%" PRIu64 ",\"connect_s\":%.3f,\"connect_rate\":%.0f,"
        "\"connect_p50_ms\":%.3f,\"connect_p99_ms\":%.3f,\"connect_max_ms\":%.3f,",
        target_names[C.target], C.codec == C_JSON ? "json" : "msgpack", C.conns, C.room_size, spr(), C.rate,
        C.duration, C.warmup, C.size, C.procs, C.idle ? "true" : "false", A.ready, A.connect_errors,
        connect_s, connect_s > 0 ? (double)A.ready / connect_s : 0, (double)hist_pct(&A.clat, 50) / 1e3,
        (double)hist_pct(&A.clat, 99) / 1e3, (double)A.clat.max / 1e3);
    buf_addf(
        &j,
        "\"sent\":%" PRIu64 ",\"send_rate\":%.1f,\"expected\":%" PRIu64 ",\"delivered\":%" PRIu64
        ",\"delivery_ratio\":%.6f,\"deliveries_per_s\":%.1f,\"p50_us\":%.0f,\"p90_us\":%.0f,\"p99_us\":%.0f,"
        "\"p999_us\":%.0f,\"max_us\":%.0f,\"acks\":%" PRIu64 ",\"send_errors\":%" PRIu64
        ",\"proto_errors\":%" PRIu64 ",\"order_errors\":%" PRIu64 ",\"closed\":%" PRIu64
        ",\"close_code\":%d,\"gen_lag\":%" PRIu64 ",\"send_blocked_ticks\":%" PRIu64
        ",\"gen_cpu_pct\":%.1f,\"gen_cpu_pct_sum\":%.1f,"
        "\"client_bound\":%s,\"server_cpu_pct\":%.1f,\"server_rss_kb_before\":%ld,\"server_rss_kb\":%ld,"
        "\"server_rss_per_conn_kb\":%.2f,\"server_settle_s\":%.1f,\"server_busy_at_start\":%s,\"other_cpu_"
        "pct\":%.1f,\"noisy\":%s,\"steal_pct\":%.1f,"
        "\"workers_failed\":%d,\"error\":",
        A.sent, C.idle ? 0 : (double)A.sent / win, A.expected, A.delivered, ratio,
        C.idle ? 0 : (double)A.delivered / win, p50, p90, p99, p999, pmax, A.acks, A.send_errors,
        A.proto_errors, A.order_errors, A.closed, A.close_code, A.lag, A.blocked, cpu_max, cpu_sum,
        client_bound ? "true" : "false", srv_cpu, rss_before, rss_final, rss_per_conn, settle_s,
        server_busy ? "true" : "false", other_cpu, noisy ? "true" : "false", steal, failed_workers);
    buf_add_jstr(&j, A.first_error);
    buf_addf(&j,
             ",\"acked\":%" PRIu64 ",\"acked_per_s\":%.1f,\"ack_p50_us\":%" PRIu64 ",\"ack_p90_us\":%" PRIu64
             ",\"ack_p99_us\":%" PRIu64 ",\"ack_p999_us\":%" PRIu64 ",\"ack_max_us\":%" PRIu64
             ",\"ack_untracked\":%" PRIu64 ",\"typing_rate\":%.0f,\"churn_rate\":%.0f,\"ops_sent\":%" PRIu64
             ",\"op_acks\":%" PRIu64 ",\"op_p50_us\":%" PRIu64 ",\"op_p99_us\":%" PRIu64
             ",\"typing_events\":%" PRIu64 ",\"other_events\":%" PRIu64 ",\"text\":%s"
             ",\"connect_settle_s\":%.2f,\"server_busy_after_connect\":%s",
             A.acked, C.idle ? 0 : (double)A.acked / win, hist_pct(&A.alat, 50), hist_pct(&A.alat, 90),
             hist_pct(&A.alat, 99), hist_pct(&A.alat, 99.9), A.alat.max, A.ack_untracked, C.typing_rate,
             C.churn_rate, A.ops_sent, A.op_acks, hist_pct(&A.olat, 50), hist_pct(&A.olat, 99),
             A.typing_events, A.other_events, C.text ? "true" : "false", connect_settle_s,
             busy_after_connect ? "true" : "false");
    if (C.smoke) buf_addf(&j, ",\"smoke\":%s", smoke_ok ? "true" : "false");
    buf_adds(&j, "}\n");
    fwrite(j.p, 1, j.len, stdout);
    buf_free(&j);
  } else {
    printf("loadgen %s/%s %s%s: %ld conns, rooms of %ld (%ld rooms), %ld sender(s)/room, %s%.0f msg/s, body "
           "%ld B, "
           "warmup %.1f s, window %.1f s, %ld proc(s)\n",
           target_names[C.target], C.codec == C_JSON ? "json" : "msgpack", C.url, C.path, C.conns,
           C.room_size, n_rooms(), spr(), C.idle ? "idle, " : "", C.idle ? 0 : C.rate, C.size, C.warmup,
           C.duration, C.procs);
    printf(
        "connect   %" PRIu64 "/%ld ready, %" PRIu64 " errors in %.3f s (%.0f conn/s); per conn p50 %.1f ms, "
        "p99 %.1f ms, max %.1f ms\n",
        A.ready, C.conns, A.connect_errors, connect_s, connect_s > 0 ? (double)A.ready / connect_s : 0,
        (double)hist_pct(&A.clat, 50) / 1e3, (double)hist_pct(&A.clat, 99) / 1e3, (double)A.clat.max / 1e3);
    if (!C.idle) {
      printf("messages  sent %" PRIu64 " (%.0f/s), expected deliveries %" PRIu64 ", delivered %" PRIu64
             " (ratio %.6f), %.0f deliveries/s\n",
             A.sent, (double)A.sent / win, A.expected, A.delivered, ratio, (double)A.delivered / win);
      printf("latency   p50 %.3f ms  p90 %.3f ms  p99 %.3f ms  p99.9 %.3f ms  max %.3f ms\n", p50 / 1e3,
             p90 / 1e3, p99 / 1e3, p999 / 1e3, pmax / 1e3);
      if (C.target == T_PARLEY)
        printf("acks      %" PRIu64
               " of window sends (%.0f/s); send->ack p50 %.3f ms  p90 %.3f ms  p99 %.3f ms  "
               "p99.9 %.3f ms  max %.3f ms\n",
               A.acked, (double)A.acked / win, (double)hist_pct(&A.alat, 50) / 1e3,
               (double)hist_pct(&A.alat, 90) / 1e3, (double)hist_pct(&A.alat, 99) / 1e3,
               (double)hist_pct(&A.alat, 99.9) / 1e3, (double)A.alat.max / 1e3);
      if (A.ops_sent)
        printf("requests  %s: %" PRIu64 " sent, %" PRIu64
               " replied ok; p50 %.3f ms p99 %.3f ms; events: typing %" PRIu64 ", other %" PRIu64 "\n",
               C.typing_rate > 0 ? "typing" : "join/leave", A.ops_sent, A.op_acks,
               (double)hist_pct(&A.olat, 50) / 1e3, (double)hist_pct(&A.olat, 99) / 1e3, A.typing_events,
               A.other_events);
      printf("checks    acks %" PRIu64 ", send errors %" PRIu64 ", protocol errors %" PRIu64
             ", order errors %" PRIu64 ", closed %" PRIu64 " (last close code %d), generator lag %" PRIu64
             " msgs\n",
             A.acks, A.send_errors, A.proto_errors, A.order_errors, A.closed, A.close_code, A.lag);
    }
    printf("cpu       generator %.1f%% (max of procs; sum %.1f%%)%s", cpu_max, cpu_sum,
           client_bound ? " CLIENT-BOUND" : "");
    if (srv_cpu >= 0) printf(", server %.1f%%", srv_cpu);
    if (C.server_pid && settle_s > 0.5) printf(" (waited %.1f s for the server to go idle first)", settle_s);
    if (connect_settle_s > 0.5)
      printf(" (waited %.1f s after connecting for the server to go idle%s)", connect_settle_s,
             busy_after_connect ? ", gave up" : "");
    if (server_busy) printf(" WARNING: the server was still busy when the run started");
    if (other_cpu >= 0)
      printf("; other processes %.1f%%%s", other_cpu, noisy ? " NOISY: the machine is not quiet" : "");
    if (steal >= 0) printf("; steal %.1f%% (hypervisor, both CPUs)", steal);
    printf("\n");
    if (C.server_pid)
      printf("memory    server RSS %.1f MB (before %.1f MB, connected %.1f MB), %.2f KB per connection\n",
             (double)rss_final / 1024, (double)rss_before / 1024, (double)rss_connected / 1024, rss_per_conn);
    if (A.first_error[0]) printf("first error: %s\n", A.first_error);
    if (failed_workers) printf("%d worker(s) failed%s\n", failed_workers, timed_out ? " (timed out)" : "");
    if (C.smoke) printf("smoke: %s%s%s\n", smoke_ok ? "PASS" : "FAIL", smoke_ok ? "" : ": ", smoke_why);
  }
  for (long i = 0; i < C.procs; i++) {
    free(kids[i].result);
    buf_free(&kids[i].in);
  }
  free(kids);
  if (C.smoke && !smoke_ok) return 1;
  if (failed_workers) return 3;
  return 0;
}
