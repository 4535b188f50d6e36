/* fuzz_ws: the WebSocket request path (the v1 formats' decode, src/core/core.c core_conn_request and what
 * follows) through a fake transport, as src/net/ws.c drives it: complete messages in, frames out (framed
 * here with net/ws.h as net/outq.c does).
 *
 * Each input is a fresh core (no store: every room is ephemeral; no hooks) with three connections (slots
 * 0 and 1 JSON, slot 2 MessagePack) and a sequence of records separated by the byte 0xC1 (never valid in
 * either codec: not in UTF-8, "never used" in MessagePack). A record is a control byte and a payload:
 *   slot = (ctl & 3) % 3, kind = ctl >> 2 & 15:
 *   0-7, 15  the payload is a message on the slot's connection (text for JSON, binary for MessagePack)
 *   8        the same with the other frame type
 *   9        the transport closes the connection (the client leaving, a 1000, if ctl & 0x40); a new one opens
 *   10       the outbound queue drained (core_conn_drained)
 *   11       time passes: payload[0] * 250 ms, then core_tick
 *   12       core_publish: payload "ROOM JSON" (the room up to the first space)
 *   13       core_kick of the user id in the payload
 *   14       core_close_all (shutdown: 1001)
 * The transport checks what the core hands it: every frame is one final unmasked frame of the connection's
 * type whose payload decodes (same codec) to a map with "re" or "ev"; nothing is sent after a close or a
 * refused frame; close codes are documented ones with reasons that fit a close frame (UTF-8, <= 123 bytes).
 * The queue takes at most QUEUE_CAP bytes before refusing (as an overflowing queue does). Connections the
 * core closed are reported closed (core_conn_closed) after the record and replaced, as the loop would. The
 * run must end with every connection, session and room freed (LeakSanitizer). */
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"
#include "config.h"
#include "core/core.h"
#include "net/ws.h"
#include "proto/codec.h"
#include "proto/v1.h"
#include "util/log.h"

#define CHECK(cond, ...)                                                                                     \
  do {                                                                                                       \
    if (!(cond)) {                                                                                           \
      fprintf(stderr, "fuzz_ws: check failed: %s: ", #cond);                                                 \
      fprintf(stderr, __VA_ARGS__);                                                                          \
      fputc('\n', stderr);                                                                                   \
      abort();                                                                                               \
    }                                                                                                        \
  } while (0)

#define SEP       0xC1
#define NSLOTS    3
#define QUEUE_CAP (256 * 1024)

static struct config cfg;
static struct auth *auth;

/* The transport side of one connection. */
struct fconn {
  struct conn *c; /* owned by the core until core_conn_closed */
  codec_t codec;
  const struct format *fmt;
  bool closing; /* the core asked to close, or a frame was refused */
  size_t queued;
};

static int tx_send(void *ctx, frame_t *f) {
  struct fconn *fc = ctx;
  CHECK(!fc->closing, "a frame was sent after the connection was closed or refused a frame");
  CHECK(f && f->len >= 1, "empty frame");
  CHECK(!(f->flags & FRAME_BINARY) == (fc->codec == CODEC_JSON), "frame type flag on a %s connection",
        codec_subprotocol(fc->codec));
  ws_frame(f);
  const uint8_t *data = ws_bytes(f);
  size_t flen = ws_len(f);
  CHECK(data[0] == (fc->codec == CODEC_JSON ? 0x81 : 0x82), "frame header %02x on a %s connection", data[0],
        codec_subprotocol(fc->codec));
  CHECK(!(data[1] & 0x80), "masked frame");
  size_t hl = 2, pl = data[1] & 0x7f;
  if (pl == 126) {
    CHECK(flen >= 4, "short header");
    hl = 4, pl = (size_t)data[2] << 8 | data[3];
  } else if (pl == 127) {
    CHECK(flen >= 10, "short header");
    hl = 10, pl = 0;
    for (int i = 0; i < 8; i++) pl = pl << 8 | data[2 + i];
  }
  CHECK(hl + pl == flen, "frame of %zu bytes says %zu + %zu", flen, hl, pl);
  json_t *doc = NULL;
  char err[160] = "";
  int rc = codec_decode(fc->codec, data + hl, pl, &doc, err, sizeof err);
  CHECK(rc == 0, "the core sent a frame that does not decode (%s): %.*s", err, (int)pl,
        (const char *)data + hl);
  CHECK(json_is_object(doc) && (json_object_get(doc, "re") || json_object_get(doc, "ev")),
        "a frame that is neither a reply nor an event: %.*s", (int)pl, (const char *)data + hl);
  json_t *e = json_object_get(doc, "err");
  if (e)
    CHECK(json_is_string(json_object_get(e, "code")) && json_is_string(json_object_get(e, "msg")), "err");
  json_decref(doc);
  if (fc->queued + flen > QUEUE_CAP) {
    fc->closing = true;
    return -1;
  }
  fc->queued += flen;
  return 0;
}

static void tx_close(void *ctx, enum conn_close_why why, const char *reason) {
  struct fconn *fc = ctx;
  CHECK(!fc->closing, "closed twice");
  int code = ws_close_code(why);
  static const int codes[] = {WS_CLOSE_GOING_AWAY,    WS_CLOSE_POLICY,        WS_CLOSE_INTERNAL,
                              WS_CLOSE_HELLO_TIMEOUT, WS_CLOSE_TOKEN_EXPIRED, WS_CLOSE_KICKED,
                              WS_CLOSE_RATE_LIMITED};
  bool known = false;
  for (size_t i = 0; i < sizeof codes / sizeof *codes; i++) known |= codes[i] == code;
  CHECK(known, "close code %d", code);
  CHECK(reason && strlen(reason) <= 123, "close reason '%s'", reason ? reason : "(null)");
  json_t *r = json_string(reason); /* a close frame's reason is UTF-8 */
  CHECK(r != NULL, "close reason is not UTF-8: %s", reason);
  json_decref(r);
  fc->closing = true;
}

static size_t tx_queued(void *ctx) { return ((struct fconn *)ctx)->queued; }

static const struct conn_tx fake_tx = {.send = tx_send, .close = tx_close, .queued = tx_queued};

static const char conf[] = "auth.allow_anonymous = true\n"
                           "auth.jwt_secret = \"fuzz-ws-secret\"\n"
                           "rate.send = off\nrate.send_user = off\nrate.send_ip = off\nrate.join = off\n"
                           "rate.typing = off\nrate.connect_ip = off\n"
                           "limits.max_rooms_per_conn = 8\n"
                           "history.ring_size = 16\n"
                           "rooms.ro-*.access = readonly\n"
                           "rooms.members-*.access = members\n"
                           "rooms.private-*.access = private\n";

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  char err[256];
  log_set_level(LOG_ERROR);
  CHECK(config_defaults(&cfg) == 0, "config_defaults");
  formats_v1_register();
  CHECK(config_load_text(&cfg, "fuzz_ws.conf", conf, err, sizeof err) == 0, "%s", err);
  CHECK(auth_new(&cfg, &auth, err, sizeof err) == 0, "%s", err);
  return 0;
}

static void slot_open(struct core *core, struct fconn *fc, codec_t codec) {
  memset(fc, 0, sizeof *fc);
  fc->codec = codec;
  fc->fmt = codec == CODEC_JSON ? &format_v1_json : &format_v1_msgpack;
  fc->c = core_conn_open(core, fc->fmt, &fake_tx, fc, "127.0.0.1");
  CHECK(fc->c != NULL, "core_conn_open");
}

/* What the loop does after the core asked to close: the transport reports the connection gone. */
static void slot_reap(struct core *core, struct fconn *fc, bool leaving) {
  core_conn_closed(core, fc->c, leaving);
  slot_open(core, fc, fc->codec);
}

/* One complete message, as net/ws.c's ws_message hands it over: decoded by the connection's format. */
static void slot_message(struct core *core, struct fconn *fc, const uint8_t *p, size_t n, bool binary) {
  static struct decoder dec;
  struct request req;
  char err[256];
  enum perr rc = fc->fmt->decode(&dec, p, n, binary, &req, err, sizeof err);
  if (rc == PERR_OK)
    core_conn_request(core, fc->c, &req);
  else
    core_conn_refused(core, fc->c, req.id, rc, err);
  decoder_done(&dec, &req);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
  struct core *core = core_new(&cfg, NULL);
  CHECK(core != NULL, "core_new");
  core_set_auth(core, auth);
  struct fconn slots[NSLOTS];
  for (int i = 0; i < NSLOTS; i++) slot_open(core, &slots[i], i == 2 ? CODEC_MSGPACK : CODEC_JSON);
  uint64_t mono0 = core_mono_ms(), elapsed = 0;

  const uint8_t *p = data, *end = data + n;
  while (p < end) {
    const uint8_t *q = memchr(p, SEP, (size_t)(end - p));
    if (!q) q = end;
    if (q > p) {
      uint8_t ctl = p[0];
      const uint8_t *pl = p + 1;
      size_t len = (size_t)(q - pl);
      struct fconn *fc = &slots[(ctl & 3) % NSLOTS];
      unsigned kind = ctl >> 2 & 15;
      bool binary = fc->codec == CODEC_MSGPACK;
      char text[512];
      size_t tl = len < sizeof text - 1 ? len : sizeof text - 1;
      memcpy(text, pl, tl);
      text[tl] = 0;
      switch (kind) {
      case 8:
        binary = !binary;
        /* fall through */
      default:
        if (len > (size_t)cfg.limits_max_frame) { /* net/ws.c closes with 1009 before the core sees it */
          slot_reap(core, fc, false);
          break;
        }
        if (!fc->closing) slot_message(core, fc, pl, len, binary);
        break;
      case 9:
        slot_reap(core, fc, ctl & 0x40);
        break;
      case 10:
        fc->queued = 0;
        if (!fc->closing) core_conn_drained(core, fc->c);
        break;
      case 11:
        elapsed += (len ? pl[0] : 1) * 250u;
        core_tick(core, mono0 + elapsed);
        break;
      case 12: {
        char *sp = strchr(text, ' ');
        if (sp) {
          *sp = 0;
          core_publish(core, text, sp + 1, strlen(sp + 1));
        }
        break;
      }
      case 13:
        core_kick(core, text, "fuzz");
        break;
      case 14:
        core_close_all(core, CONN_CLOSE_SHUTDOWN, "going away");
        break;
      }
      for (int i = 0; i < NSLOTS; i++)
        if (slots[i].closing) slot_reap(core, &slots[i], false);
    }
    p = q + 1;
  }
  core_free(core); /* reports every connection closed */
  return 0;
}
