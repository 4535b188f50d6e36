/* client-bot: a Parley client in C on libwebsockets, speaking protocol v1 in JSON (docs/protocol.md).
 * It says hello (as a guest, or with the token in $PARLEY_TOKEN), joins a room, answers every message that
 * mentions "@NAME", and when the connection drops it reconnects (1 s, 2 s, ... 10 s) and joins again with
 * `since` = the last seq it saw, so the server replays what it missed (missed mentions are not answered
 * twice: replayed messages at or below the last seq answered are skipped).
 *
 * Usage: client-bot [HOST [PORT [ROOM [NAME]]]]   (defaults 127.0.0.1 8080 lobby bot) */
#include <libwebsockets.h>

#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_OUT 16

struct bot {
  const char *host, *room, *name;
  int port;
  struct lws_context *ctx;
  struct lws *wsi;
  lws_sorted_usec_list_t sul; /* reconnect timer */
  int backoff_s;
  char mention[80];
  char user_id[160]; /* who the server says we are */
  uint64_t last_seq, answered_seq;
  int next_id;
  char *out[MAX_OUT]; /* queued frames, sent one per WRITEABLE */
  int nout;
  char rx[65536];
  size_t rxlen;
};

static volatile int interrupted;

static void enqueue(struct bot *b, json_t *frame) {
  json_object_set_new(frame, "id", json_integer(++b->next_id));
  char *text = json_dumps(frame, JSON_COMPACT);
  json_decref(frame);
  if (!text || b->nout == MAX_OUT) {
    free(text);
    return;
  }
  b->out[b->nout++] = text;
  if (b->wsi) lws_callback_on_writable(b->wsi);
}

static void on_frame(struct bot *b, json_t *f) {
  const char *ev = json_string_value(json_object_get(f, "ev"));
  json_t *ok = json_object_get(f, "ok");
  if (ok && json_object_get(ok, "user")) { /* hello reply */
    const char *id = json_string_value(json_object_get(json_object_get(ok, "user"), "id"));
    snprintf(b->user_id, sizeof b->user_id, "%s", id ? id : "");
    json_t *join = json_pack("{s:s,s:s}", "op", "join", "room", b->room);
    if (b->last_seq) json_object_set_new(join, "since", json_integer((json_int_t)b->last_seq));
    printf("hello ok as %s; joining %s (since %llu)\n", b->user_id, b->room, (unsigned long long)b->last_seq);
    enqueue(b, join);
  } else if (ok && json_object_get(ok, "room") && !json_object_get(ok, "mid")) { /* join reply */
    printf("joined %s at seq %lld\n", b->room, (long long)json_integer_value(json_object_get(ok, "seq")));
  } else if (json_object_get(f, "err")) {
    printf("error reply: %s\n", json_string_value(json_object_get(json_object_get(f, "err"), "msg")));
  } else if (ev && !strcmp(ev, "message")) {
    uint64_t seq = (uint64_t)json_integer_value(json_object_get(f, "seq"));
    if (seq > b->last_seq) b->last_seq = seq;
    json_t *from = json_object_get(f, "from");
    const char *from_id = json_string_value(json_object_get(from, "id"));
    const char *from_name = json_string_value(json_object_get(from, "name"));
    const char *text = json_string_value(json_object_get(f, "body"));
    if (!text || !from_id || !strcmp(from_id, b->user_id) || seq <= b->answered_seq) return;
    if (!strstr(text, b->mention)) return;
    b->answered_seq = seq;
    char reply[512];
    snprintf(reply, sizeof reply, "hi %s, you said: %.400s", from_name ? from_name : from_id, text);
    printf("answering seq %llu from %s\n", (unsigned long long)seq, from_id);
    char cmid[64]; /* derived from the seq answered: a resend after a reconnect is stored once */
    snprintf(cmid, sizeof cmid, "bot-%s-%llu", b->room, (unsigned long long)seq);
    enqueue(b, json_pack("{s:s,s:s,s:s,s:s}", "op", "send", "room", b->room, "body", reply, "cmid", cmid));
  }
  fflush(stdout);
}

static void connect_now(lws_sorted_usec_list_t *sul);

static void schedule_reconnect(struct bot *b) {
  b->wsi = NULL;
  for (int i = 0; i < b->nout; i++) free(b->out[i]);
  b->nout = 0;
  if (interrupted) return;
  b->backoff_s = b->backoff_s ? (b->backoff_s * 2 > 10 ? 10 : b->backoff_s * 2) : 1;
  printf("disconnected; reconnecting in %d s\n", b->backoff_s);
  fflush(stdout);
  lws_sul_schedule(b->ctx, 0, &b->sul, connect_now, (lws_usec_t)b->backoff_s * LWS_US_PER_SEC);
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len) {
  struct bot *b = lws_context_user(lws_get_context(wsi));
  switch (reason) {
  case LWS_CALLBACK_CLIENT_ESTABLISHED:
    b->backoff_s = 0;
    b->rxlen = 0;
    printf("connected to %s:%d\n", b->host, b->port);
    json_t *hello = json_pack("{s:s,s:s}", "op", "hello", "client", "client-bot/1.0");
    if (getenv("PARLEY_TOKEN")) json_object_set_new(hello, "token", json_string(getenv("PARLEY_TOKEN")));
    enqueue(b, hello);
    break;
  case LWS_CALLBACK_CLIENT_RECEIVE:
    if (b->rxlen + len >= sizeof b->rx) { /* larger than we care for: drop it */
      b->rxlen = 0;
      break;
    }
    memcpy(b->rx + b->rxlen, in, len);
    b->rxlen += len;
    if (lws_is_final_fragment(wsi)) {
      json_t *f = json_loadb(b->rx, b->rxlen, 0, NULL);
      b->rxlen = 0;
      if (f) on_frame(b, f);
      json_decref(f);
    }
    break;
  case LWS_CALLBACK_CLIENT_WRITEABLE:
    if (b->nout) { /* one lws_write per WRITEABLE (README.coding.md) */
      char *text = b->out[0];
      size_t n = strlen(text);
      unsigned char *buf = malloc(LWS_PRE + n);
      if (!buf) return -1;
      memcpy(buf + LWS_PRE, text, n);
      int w = lws_write(wsi, buf + LWS_PRE, n, LWS_WRITE_TEXT);
      free(buf);
      free(text);
      memmove(b->out, b->out + 1, (size_t)--b->nout * sizeof *b->out);
      if (w < (int)n) return -1;
      if (b->nout) lws_callback_on_writable(wsi);
    }
    break;
  case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
    printf("connect failed: %s\n", in ? (const char *)in : "?");
    schedule_reconnect(b);
    break;
  case LWS_CALLBACK_CLIENT_CLOSED:
    schedule_reconnect(b);
    break;
  default:
    break;
  }
  return 0;
}

static const struct lws_protocols protocols[] = {{"parley.v1.json", callback, 0, 65536, 0, NULL, 0},
                                                 {NULL, NULL, 0, 0, 0, NULL, 0}};

static void connect_now(lws_sorted_usec_list_t *sul) {
  struct bot *b = lws_container_of(sul, struct bot, sul);
  struct lws_client_connect_info ci;
  memset(&ci, 0, sizeof ci);
  ci.context = b->ctx;
  ci.address = b->host;
  ci.port = b->port;
  ci.path = "/ws";
  ci.host = b->host;
  ci.origin = b->host;
  ci.protocol = protocols[0].name; /* the subprotocol selects the JSON codec */
  ci.pwsi = &b->wsi;
  if (!lws_client_connect_via_info(&ci)) schedule_reconnect(b);
}

static void on_sigint(int sig) { interrupted = 1; }

int main(int argc, char **argv) {
  struct bot b = {.host = argc > 1 ? argv[1] : "127.0.0.1",
                  .port = argc > 2 ? atoi(argv[2]) : 8080,
                  .room = argc > 3 ? argv[3] : "lobby",
                  .name = argc > 4 ? argv[4] : "bot"};
  snprintf(b.mention, sizeof b.mention, "@%s", b.name);
  signal(SIGINT, on_sigint);
  signal(SIGTERM, on_sigint);
  lws_set_log_level(LLL_ERR, NULL);
  struct lws_context_creation_info info;
  memset(&info, 0, sizeof info);
  info.port = CONTEXT_PORT_NO_LISTEN;
  info.protocols = protocols;
  info.user = &b;
  if (!(b.ctx = lws_create_context(&info))) return 1;
  printf("client-bot: answering \"%s\" in %s on %s:%d\n", b.mention, b.room, b.host, b.port);
  fflush(stdout);
  lws_sul_schedule(b.ctx, 0, &b.sul, connect_now, 1);
  while (!interrupted && lws_service(b.ctx, 0) >= 0) {
  }
  lws_context_destroy(b.ctx);
  for (int i = 0; i < b.nout; i++) free(b.out[i]);
  return 0;
}
