/* config: the key table and everything driven by it (set, defaults, doc, dump, reload).
 *
 * Adding a key = one struct field in config.h + one row in `keys[]`; nothing else is per key. Defaults are
 * text and go through the same parser as conf files, so a default can never be something a user could not
 * write. */
#include "config.h"

#include "parley/plugin.h"
#include "util/log.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#define KIB  ((int64_t)1024)
#define MIB  (KIB * 1024)
#define GIB  (MIB * 1024)
#define SEC  ((int64_t)1000) /* durations are stored in ms */
#define MIN  (SEC * 60)
#define HOUR (MIN * 60)

enum ktype { KT_BOOL, KT_INT, KT_SIZE, KT_DURATION, KT_STRING, KT_ENUM, KT_RATE };

struct key {
  const char *name;
  enum ktype type;
  size_t off;                 /* offsetof(struct config, field) */
  const char *def;            /* default, as conf-file text (unquoted) */
  int64_t min, max;           /* inclusive, in stored units (bytes, ms); KT_INT/SIZE/DURATION; KT_RATE: n */
  const char *const *choices; /* KT_ENUM: NULL-terminated; the stored value is the index */
  bool reload;                /* SIGHUP applies it live; otherwise a change needs a restart */
  const char *desc;           /* one line for docs/configuration.md */
};

/* A parsed value, before it is stored into the struct. */
union value {
  bool b;
  int64_t i;
  char *s; /* owned */
  struct config_rate r;
};

/* offsetof that also fails to compile when the field's type does not match the key's type. */
#define FIELD(ctype, member)                                                                                 \
  (offsetof(struct config, member) + 0 * sizeof((ctype *){0} = &((struct config *)0)->member))

#define KEY_BOOL(n, m, d, r, doc)                                                                            \
  { n, KT_BOOL, FIELD(bool, m), d, 0, 1, NULL, r, doc }
#define KEY_INT(n, m, d, lo, hi, r, doc)                                                                     \
  { n, KT_INT, FIELD(int64_t, m), d, lo, hi, NULL, r, doc }
#define KEY_SIZE(n, m, d, lo, hi, r, doc)                                                                    \
  { n, KT_SIZE, FIELD(int64_t, m), d, lo, hi, NULL, r, doc }
#define KEY_DURATION(n, m, d, lo, hi, r, doc)                                                                \
  { n, KT_DURATION, FIELD(int64_t, m), d, lo, hi, NULL, r, doc }
#define KEY_STRING(n, m, d, r, doc)                                                                          \
  { n, KT_STRING, FIELD(char *, m), d, 0, 0, NULL, r, doc }
#define KEY_ENUM(n, m, d, ch, r, doc)                                                                        \
  { n, KT_ENUM, FIELD(int64_t, m), d, 0, 0, ch, r, doc }
#define KEY_RATE(n, m, d, r, doc)                                                                            \
  { n, KT_RATE, FIELD(struct config_rate, m), d, 0, RATE_MAX, NULL, r, doc }
#define RATE_MAX       1000000 /* events per period */
#define RATE_BURST_MAX 10000000

#define LIVE    true
#define RESTART false

/* Same order as enum log_level. */
static const char *const log_levels[] = {"error", "warn", "info", "debug", NULL};
_Static_assert(LOG_ERROR == 0 && LOG_WARN == 1 && LOG_INFO == 2 && LOG_DEBUG == 3,
               "log_levels[] must follow enum log_level");

/* Same order as the values of config.store_backend (store_backend_for in store/backend.c). */
static const char *const store_backends[] = {"sqlite", "mongo", "postgres", NULL};
static const char *const sqlite_sync[] = {"normal", "full", NULL};
/* Same order as enum room_access and enum config_jwt_alg. */
static const char *const room_access_names[] = {"public", "readonly", "members", "private", NULL};
static const char *const jwt_alg_names[] = {"HS256", "HS384", "HS512", "RS256", "RS384",
                                            "RS512", "ES256", "ES384", NULL};
static const char *const fail_policies[] = {"open", "closed", NULL};
_Static_assert(PARLEY_HOOK_OFFLINE == 7 && PARLEY_HOOK__COUNT == 8,
               "hooks.<point>.fail rows must follow enum parley_hook_point");

static const struct key keys[] = {
    KEY_STRING("server.host", server_host, "127.0.0.1", RESTART,
               "Address the listener binds to: 127.0.0.1 accepts local clients only, 0.0.0.0 or :: every "
               "interface."),
    KEY_INT("server.port", server_port, "8080", 1, 65535, RESTART,
            "TCP port for WebSocket clients (`/ws`), `/healthz`, `/metrics` and static files."),
    KEY_STRING("server.data_dir", server_data_dir, "data", RESTART,
               "Directory for the message store and other server state; a relative path is resolved against "
               "the parent of the conf directory."),
    KEY_STRING("server.web_root", server_web_root, "", RESTART,
               "Directory served over HTTP at `/` (the built web client); empty serves no static files."),
    KEY_INT("server.node_id", server_node_id, "0", 0, 255, RESTART,
            "This server's number among the servers of one deployment, part of every message id "
            "(`mid`): give each server its own so that message ids stay unique across them."),
    KEY_ENUM("log.level", log_level, "info", log_levels, LIVE,
             "Least severe message written to stderr: `error`, `warn`, `info` or `debug`."),
    KEY_BOOL("auth.allow_anonymous", auth_allow_anonymous, "false", LIVE,
             "Accept a `hello` without a token as a guest (`guest-` and 16 random hex digits, never "
             "repeated); when false it is refused with "
             "`auth_required`."),
    KEY_STRING("auth.jwt_secret", auth_jwt_secret, "", LIVE,
               "HS256 secret that verifies `hello` tokens without a `kid` header (the default key, unless "
               "`auth.default_kid` is set); empty: no such key. Other keys: `auth.keys.<kid>.*` below."),
    KEY_STRING("auth.default_kid", auth_default_kid, "", LIVE,
               "The `auth.keys.<kid>` entry that verifies tokens without a `kid` header; empty: "
               "`auth.jwt_secret` does. Setting both is an error."),
    KEY_DURATION("auth.leeway", auth_leeway, "30s", 0, 10 * MIN, LIVE,
                 "Clock skew tolerated when checking a token's `exp`, `nbf` and `iat`."),
    KEY_STRING("auth.audience", auth_audience, "", LIVE,
               "When set, a token's `aud` (a string or an array of strings) must contain this value."),
    KEY_STRING("auth.issuer", auth_issuer, "", LIVE, "When set, a token's `iss` must equal this value."),
    KEY_STRING("auth.guest_rooms", auth_guest_rooms, "*:rw", LIVE,
               "Most a guest may do, as `pattern:rights` items separated by commas (rights: `r`, `w`); "
               "guests never get more than a room's access level gives everyone, and no `dm:` rooms."),
    KEY_BOOL("auth.dev_login", auth_dev_login, "false", LIVE,
             "DEVELOPMENT ONLY: an HTTP endpoint that hands out a token for any user name. Never enable "
             "it on a server others can reach."),
    KEY_DURATION(
        "auth.token_ttl", auth_token_ttl, "1h", 1 * SEC, 365 * 24 * HOUR, LIVE,
        "Lifetime of tokens minted by the development login and by `parleyd token` without `--ttl`."),
    KEY_SIZE("limits.max_frame", limits_max_frame, "64KiB", 256, 16 * MIB, RESTART,
             "Largest WebSocket frame a client may send; a larger one closes the connection with `1009`."),
    KEY_SIZE("limits.max_body", limits_max_body, "16KiB", 16, 16 * MIB, LIVE,
             "Largest encoded `send` body; a larger one is refused with `body_too_large` (connection stays "
             "open)."),
    KEY_INT("limits.max_rooms_per_conn", limits_max_rooms_per_conn, "100", 1, 100000, LIVE,
            "Rooms one connection may be in at once; one more `join` is refused with `too_many_rooms`."),
    KEY_INT("limits.max_connections", limits_max_connections, "10000", 1, 1000000, LIVE,
            "Concurrent WebSocket connections; at the limit new handshakes get HTTP 503."),
    KEY_DURATION("limits.idle_timeout", limits_idle_timeout, "60s", 1 * SEC, 1 * HOUR, RESTART,
                 "Idle connections are pinged this often; one that has not answered with a pong is closed."),
    KEY_DURATION(
        "limits.hello_timeout", limits_hello_timeout, "10s", 100, 10 * MIN, LIVE,
        "Time a new connection has to complete `hello`; after it the connection is closed with `4001`."),
    KEY_SIZE("limits.out_queue_bytes", limits_out_queue_bytes, "1MiB", 4 * KIB, 1 * GIB, LIVE,
             "Outbound bytes queued for one slow client; past it ephemeral events are dropped, then the "
             "connection is closed with `4008`."),
    KEY_INT("limits.max_connections_per_ip", limits_max_connections_per_ip, "200", 0, 1000000, LIVE,
            "Concurrent WebSocket connections from one client IP (`0`: no cap); further handshakes get "
            "HTTP 503."),
    KEY_DURATION("limits.handshake_timeout", limits_handshake_timeout, "10s", 100, 10 * MIN, RESTART,
                 "Time a new TCP connection has to complete its TLS and HTTP/WebSocket handshake."),
    KEY_DURATION("server.write_coalesce", server_write_coalesce, "4ms", 0, 100, RESTART,
                 "Longest a busy connection's outbound frames may wait so that several go out in one write, "
                 "used only while the server's event loop is busy (over half its time working; the wait "
                 "grows with the load up to this value). `0`: every frame is written in the loop iteration "
                 "that produced it."),
    KEY_SIZE("limits.max_header_size", limits_max_header_size, "4KiB", 1 * KIB, 64 * KIB, RESTART,
             "Largest HTTP request header block accepted; a larger one is refused."),
    KEY_STRING("tls.cert", tls_cert, "", RESTART,
               "PEM certificate chain for TLS (`wss://`, `https://`); empty: plain TCP. Needs `tls.key`."),
    KEY_STRING("tls.key", tls_key, "", RESTART, "PEM private key of `tls.cert`."),
    KEY_STRING("server.origins", server_origins, "", LIVE,
               "Allowed `Origin` header values of WebSocket handshakes, separated by commas (e.g. "
               "`https://chat.example.com`); `*` or empty: any. A handshake from another origin gets HTTP "
               "403; clients that send no `Origin` (non-browsers) are not affected."),
    KEY_ENUM("store.backend", store_backend, "sqlite", store_backends, RESTART,
             "Where messages are stored: `sqlite` (embedded file under `server.data_dir`), `mongo` "
             "(`store.mongo.uri`) or `postgres` (`store.postgres.uri`)."),
    KEY_STRING("store.sqlite.path", store_sqlite_path, "parley.db", RESTART,
               "SQLite database file; a relative path is inside `server.data_dir`."),
    KEY_ENUM("store.sqlite.synchronous", store_sqlite_synchronous, "normal", sqlite_sync, RESTART,
             "`normal`: an acknowledged message survives a crash or `kill -9` of parleyd; `full`: it also "
             "survives power loss (slower)."),
    KEY_INT(
        "store.sqlite.checkpoint_pages", store_sqlite_checkpoint_pages, "1000", 16, 1000000, RESTART,
        "Pages the write-ahead log grows by before it is copied into the database file. Checkpoints run on "
        "a thread of their own, so a commit (and an ack) never waits for their disk sync; a log that never "
        "empties under constant writes gets a blocking checkpoint at 8 times this size."),
    KEY_INT("store.sqlite.wal_reset_pages", store_sqlite_wal_reset_pages, "16000", 16, 10000000, RESTART,
            "Write-ahead log size (pages) from which the writer, between two batches, copies what the "
            "background checkpoints left and the log starts over from its beginning. That copy waits for two "
            "disk syncs (10-60 ms measured under heavy writes), so a smaller value means a smaller file and "
            "more such waits; a log that grows 8 checkpoint steps beyond it gets a blocking checkpoint."),
    KEY_INT("store.sqlite.inbox_rows", store_sqlite_inbox_rows, "8192", 2, 10000000, RESTART,
            "Sends kept in the inbox table before the oldest half moves to the messages table (in slices, "
            "between write batches). The inbox takes appends in a few pages whatever the number of rooms; "
            "larger values write fewer pages per message and make reads of the newest messages scan more."),
    KEY_INT("store.sqlite.merge_slice", store_sqlite_merge_slice, "0", 0, 10000000, RESTART,
            "Inbox rows one transaction of a merge moves to the messages table (whole rooms); 0: a 64th of "
            "`store.sqlite.inbox_rows`. A send that arrives during a slice waits for it: larger slices cost "
            "less per message (fewer commits) and make those waits longer."),
    KEY_SIZE("store.sqlite.cache_size", store_sqlite_cache_size, "8MiB", 64 * KIB, 1 * GIB, RESTART,
             "SQLite page cache of each of the store's connections (writer, reader, checkpoints)."),
    KEY_STRING("store.mongo.uri", store_mongo_uri, "mongodb://127.0.0.1:27017", RESTART,
               "MongoDB connection string (`store.backend = mongo`)."),
    KEY_STRING("store.mongo.database", store_mongo_database, "parley", RESTART, "MongoDB database name."),
    KEY_STRING(
        "store.postgres.uri", store_postgres_uri, "postgresql://parley@127.0.0.1:5432/parley", RESTART,
        "PostgreSQL connection string (`store.backend = postgres`), a URI or `key=value` pairs as libpq "
        "takes them; `connect_timeout` defaults to 2 s. parleyd creates and migrates its tables."),
    KEY_STRING("store.postgres.schema", store_postgres_schema, "", RESTART,
               "PostgreSQL schema of parleyd's tables, created if missing; empty: the first schema of the "
               "connection's `search_path` (usually `public`)."),
    KEY_INT("store.queue_max", store_queue_max, "20000", 16, 10000000, LIVE,
            "Sends waiting to be stored; past it `send` gets `overloaded`."),
    KEY_INT("store.batch_max", store_batch_max, "512", 1, 100000, RESTART,
            "Most requests the store writer commits in one transaction (group commit)."),
    KEY_INT("history.ring_size", history_ring_size, "256", 0, 100000, RESTART,
            "Recent messages kept in memory per room, for history and recovery without a store read."),
    KEY_INT("history.max_limit", history_max_limit, "200", 1, 10000, LIVE,
            "Most messages one `history` reply carries."),
    KEY_INT(
        "recovery.max_messages", recovery_max_messages, "1000", 1, 1000000, LIVE,
        "Most messages replayed by a `join` with `since`; beyond it the reply says recovery was partial."),
    KEY_DURATION("history.retention_interval", history_retention_interval, "1m", 1 * SEC, 24 * HOUR, LIVE,
                 "How often retention (`rooms.<pattern>.max_age` / `max_count`) deletes old messages."),
    KEY_DURATION("session.resume_ttl", session_resume_ttl, "15s", 0, 24 * HOUR, LIVE,
                 "How long a dropped connection's session waits to be resumed; the user stays online (no "
                 "leave/offline) meanwhile. `0`: no grace."),
    KEY_DURATION("typing.ttl", typing_ttl, "6s", 500, 5 * MIN, LIVE,
                 "A typing indicator expires this long after the client's last `typing` refresh."),
    KEY_DURATION("typing.interval", typing_interval, "250ms", 0, 10 * SEC, LIVE,
                 "Typing changes of a room are batched into at most one `typing` event per interval."),
    KEY_INT("presence.broadcast_max", presence_broadcast_max, "1000", 0, 10000000, LIVE,
            "Rooms with more members than this send no `join`/`leave` events (filling a room of n would cost "
            "n^2/2 of them); members use the `presence` op instead. `0`: always send."),
    KEY_RATE("rate.send", rate_send, "20/s burst 40", LIVE,
             "`send` per connection; over it: error `rate_limited` with `retry_after`."),
    KEY_RATE("rate.send_user", rate_send_user, "40/s burst 80", LIVE,
             "`send` per user, over all of the user's connections."),
    KEY_RATE("rate.send_ip", rate_send_ip, "100/s burst 200", LIVE, "`send` per client IP, over all users."),
    KEY_RATE("rate.join", rate_join, "10/s burst 100", LIVE,
             "`join` per connection (the burst lets a reconnecting client rejoin its rooms at once)."),
    KEY_RATE("rate.typing", rate_typing, "5/s burst 10", LIVE, "`typing` per connection."),
    KEY_RATE("rate.read", rate_read, "10/s burst 50", LIVE, "`read` (read marker) per connection."),
    KEY_RATE("rate.connect_ip", rate_connect_ip, "20/s burst 100", LIVE,
             "WebSocket handshakes per client IP; over it: HTTP 429."),
    KEY_INT("rate.strikes", rate_strikes, "20", 0, 1000000, LIVE,
            "Rejections (`rate_limited`) within `rate.strikes_window` after which the connection is closed "
            "with `4029` (`0`: never)."),
    KEY_DURATION("rate.strikes_window", rate_strikes_window, "10s", 1 * SEC, 1 * HOUR, LIVE,
                 "Window of `rate.strikes`."),
    KEY_ENUM("hooks.on_connect.fail", hooks_fail[0], "open", fail_policies, LIVE,
             "When an `on_connect` handler fails or overruns its budget: `open` skips it, `closed` refuses."),
    KEY_ENUM("hooks.on_auth.fail", hooks_fail[1], "closed", fail_policies, LIVE,
             "When an `on_auth` handler fails or overruns its budget: `closed` refuses the `hello`, `open` "
             "skips the handler."),
    KEY_ENUM("hooks.on_join.fail", hooks_fail[2], "open", fail_policies, LIVE,
             "When an `on_join` handler fails or overruns its budget: `open` skips it, `closed` refuses."),
    KEY_ENUM("hooks.on_message.fail", hooks_fail[3], "open", fail_policies, LIVE,
             "When an `on_message` handler fails or overruns its budget: `open` skips it, `closed` refuses "
             "the send."),
    KEY_ENUM("hooks.on_typing.fail", hooks_fail[4], "open", fail_policies, LIVE,
             "When an `on_typing` handler fails or overruns its budget: `open` skips it, `closed` drops the "
             "typing update."),
    KEY_ENUM(
        "hooks.on_leave.fail", hooks_fail[5], "open", fail_policies, LIVE,
        "`on_leave` is a notification: a failing handler is skipped either way (accepted for symmetry)."),
    KEY_ENUM("hooks.on_disconnect.fail", hooks_fail[6], "open", fail_policies, LIVE,
             "`on_disconnect` is a notification: a failing handler is skipped either way."),
    KEY_ENUM("hooks.on_offline.fail", hooks_fail[7], "open", fail_policies, LIVE,
             "`on_offline` is a notification: a failing handler is skipped either way."),
    KEY_INT("hooks.lua.instructions", hooks_lua_instructions, "1000000", 1000, 1000000000, LIVE,
            "Lua VM instructions one handler or timer call may run before it is stopped (a budget kill)."),
    KEY_DURATION("hooks.lua.time_limit", hooks_lua_time_limit, "200ms", 1, 10 * SEC, LIVE,
                 "Wall-clock time one Lua handler or timer call (or a script's load) may take before it is "
                 "stopped (a budget kill), whatever it runs; a backstop to `hooks.lua.instructions`."),
    KEY_SIZE("hooks.lua.memory", hooks_lua_memory, "16MiB", 256 * KIB, 1 * GIB, LIVE,
             "Memory cap of each Lua script's state; an allocation beyond it fails inside the script."),
    KEY_STRING("hooks.admin_key", hooks_admin_key, "", LIVE,
               "Bearer key for `POST /api/admin/reload` (reload scripts, plugins and config); empty disables "
               "the endpoint."),
};

#define NKEYS (sizeof keys / sizeof keys[0])

/* Per-room-pattern keys: `rooms.<pattern>.<name>`; offsets into struct room_rule. */
#define RFIELD(ctype, member)                                                                                \
  (offsetof(struct room_rule, member) + 0 * sizeof((ctype *){0} = &((struct room_rule *)0)->member))
static const struct key room_keys[] = {
    {"history", KT_BOOL, RFIELD(bool, history), "true", 0, 1, NULL, LIVE,
     "`off`: an ephemeral room — live fan-out only, seq and recovery from memory while the server runs, "
     "nothing stored; acks mean \"accepted\"."},
    {"max_age", KT_DURATION, RFIELD(int64_t, max_age), "0", 0, 100000LL * 24 * HOUR, NULL, LIVE,
     "Retention: delete messages older than this (`0`: keep). Unlike other room keys, every rule that sets "
     "it applies to the rooms it matches (overlaps: the strictest wins). A room's newest message is always "
     "kept."},
    {"max_count", KT_INT, RFIELD(int64_t, max_count), "0", 0, INT64_MAX, NULL, LIVE,
     "Retention: keep at most this many newest messages per room (`0`: keep all); every rule that sets it "
     "applies, as for `max_age`."},
    {"access", KT_ENUM, RFIELD(int64_t, access), "public", 0, 0, room_access_names, LIVE,
     "Who may read, write and see presence, with the token's `rooms` grants: `public`, `readonly`, "
     "`members` or `private` (docs/security.md). `dm:<a>:<b>` rooms ignore it."},
};
#define NROOMKEYS (sizeof room_keys / sizeof room_keys[0])

/* Signing keys: `auth.keys.<kid>.<name>`; offsets into struct auth_key. */
#define AFIELD(ctype, member)                                                                                \
  (offsetof(struct auth_key, member) + 0 * sizeof((ctype *){0} = &((struct auth_key *)0)->member))
static const struct key auth_key_keys[] = {
    {"alg", KT_ENUM, AFIELD(int64_t, alg), "HS256", 0, 0, jwt_alg_names, LIVE,
     "The only algorithm accepted with this key: `HS256`, `HS384`, `HS512` (`secret`), `RS256`, `RS384`, "
     "`RS512`, `ES256`, `ES384` (`public_key`)."},
    {"secret", KT_STRING, AFIELD(char *, secret), "", 0, 0, NULL, LIVE,
     "Shared secret of an `HS*` key (at least 32 random bytes recommended)."},
    {"public_key", KT_STRING, AFIELD(char *, public_key), "", 0, 0, NULL, LIVE,
     "PEM public key file of an `RS*`/`ES*` key; it verifies tokens."},
    {"private_key", KT_STRING, AFIELD(char *, private_key), "", 0, 0, NULL, LIVE,
     "PEM private key file of an `RS*`/`ES*` key, only needed to mint tokens (`parleyd token`)."},
};
#define NAUTHKEYKEYS (sizeof auth_key_keys / sizeof auth_key_keys[0])

/* ---- small helpers ---- */

static void *field(const struct config *c, const struct key *k) { return (char *)c + k->off; }

/* "where: " (when given) + formatted message into err. */
__attribute__((format(printf, 4, 5))) static void seterr(char *err, size_t errlen, const char *where,
                                                         const char *fmt, ...) {
  if (!err || !errlen) return;
  size_t n = 0;
  if (where && *where) {
    int w = snprintf(err, errlen, "%s: ", where);
    if (w < 0) w = 0;
    n = (size_t)w < errlen ? (size_t)w : errlen - 1;
  }
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err + n, errlen - n, fmt, ap);
  va_end(ap);
}

static bool is_space(char ch) { return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\f' || ch == '\v'; }
static bool is_digit(char ch) { return ch >= '0' && ch <= '9'; }

/* Unsigned decimal digits at *p, at least one; -ERANGE past INT64_MAX. Advances *p. */
static int parse_digits(const char **p, int64_t *out) {
  const char *s = *p;
  if (!is_digit(*s)) return -EINVAL;
  int64_t v = 0;
  for (; is_digit(*s); s++) {
    int d = *s - '0';
    if (v > (INT64_MAX - d) / 10) return -ERANGE;
    v = v * 10 + d;
  }
  *p = s;
  *out = v;
  return 0;
}

struct unit {
  const char *suffix;
  int64_t mult;
};

static const struct unit size_units[] = {
    {"", 1},     {"b", 1},     {"k", KIB}, {"kb", KIB}, {"kib", KIB}, {"m", MIB},
    {"mb", MIB}, {"mib", MIB}, {"g", GIB}, {"gb", GIB}, {"gib", GIB}, {NULL, 0},
};
static const struct unit duration_units[] = {
    {"", SEC}, {"ms", 1}, {"s", SEC}, {"m", MIN}, {"h", HOUR}, {NULL, 0},
};

/* digits, optional blanks, optional case-insensitive unit. */
static int parse_scaled(const char *s, const struct unit *units, int64_t *out) {
  int64_t n;
  int rc = parse_digits(&s, &n);
  if (rc) return rc;
  while (is_space(*s)) s++;
  for (const struct unit *u = units; u->suffix; u++) {
    if (strcasecmp(s, u->suffix)) continue;
    if (n > INT64_MAX / u->mult) return -ERANGE;
    *out = n * u->mult;
    return 0;
  }
  return -EINVAL;
}

static int parse_int(const char *s, int64_t *out) {
  bool neg = *s == '-';
  if (*s == '-' || *s == '+') s++;
  int64_t v;
  int rc = parse_digits(&s, &v);
  if (rc) return rc;
  if (*s) return -EINVAL;
  *out = neg ? -v : v;
  return 0;
}

/* Canonical text of a number in the key's units: the largest unit that divides it exactly ("64KiB", "10m",
 * "100ms"), so it reads well and parses back to the same value. */
static void format_number(const struct key *k, int64_t v, char *buf, size_t len) {
  static const struct unit size_fmt[] = {{"GiB", GIB}, {"MiB", MIB}, {"KiB", KIB}, {"B", 1}, {NULL, 0}};
  static const struct unit dur_fmt[] = {{"h", HOUR}, {"m", MIN}, {"s", SEC}, {"ms", 1}, {NULL, 0}};
  const struct unit *u = k->type == KT_SIZE ? size_fmt : k->type == KT_DURATION ? dur_fmt : NULL;
  if (!u || v == 0) {
    snprintf(buf, len, "%" PRId64 "%s", v, !u ? "" : k->type == KT_SIZE ? "B" : "s");
    return;
  }
  while (v % u->mult) u++;
  snprintf(buf, len, "%" PRId64 "%s", v / u->mult, u->suffix);
}

static const char *type_name(const struct key *k) {
  switch (k->type) {
  case KT_BOOL:
    return "bool";
  case KT_INT:
    return "integer";
  case KT_SIZE:
    return "size";
  case KT_DURATION:
    return "duration";
  case KT_STRING:
    return "string";
  case KT_ENUM:
    return "enum";
  case KT_RATE:
    return "rate";
  }
  return "?";
}

/* A rate: "off" | N "/" ("s" | "m" | "h") [ "burst" B ]; without burst B = N. */
static int parse_rate(const char *s, const struct key *k, struct config_rate *out) {
  static const struct unit per[] = {{"s", SEC}, {"m", MIN}, {"h", HOUR}, {NULL, 0}};
  if (!strcasecmp(s, "off") || !strcmp(s, "0")) {
    *out = (struct config_rate){0, SEC, 0};
    return 0;
  }
  int64_t n, burst;
  int rc = parse_digits(&s, &n);
  if (rc) return rc;
  while (is_space(*s)) s++;
  if (*s++ != '/') return -EINVAL;
  while (is_space(*s)) s++;
  size_t ul = 0;
  while (s[ul] && !is_space(s[ul])) ul++;
  const struct unit *u = per;
  while (u->suffix && (strlen(u->suffix) != ul || strncasecmp(s, u->suffix, ul))) u++;
  if (!u->suffix) return -EINVAL;
  s += ul;
  while (is_space(*s)) s++;
  burst = n;
  if (*s) {
    if (strncasecmp(s, "burst", 5) || !is_space(s[5])) return -EINVAL;
    s += 5;
    while (is_space(*s)) s++;
    if ((rc = parse_digits(&s, &burst))) return rc;
    if (*s) return -EINVAL;
  }
  if (n == 0) burst = 0;
  if (n < k->min || n > k->max || (n && (burst < 1 || burst > RATE_BURST_MAX))) return -ERANGE;
  *out = (struct config_rate){n, u->mult, burst};
  return 0;
}

/* Parse `text` (already unquoted) for key k. On error writes "NAME: message" after `where`; name is the key
 * as written (e.g. "rooms.lobby.history"), NULL for k->name. */
static int parse_value(const struct key *k, const char *name, const char *text, union value *out,
                       const char *where, char *err, size_t errlen) {
  if (!name) name = k->name;
  int rc = 0;
  switch (k->type) {
  case KT_STRING:
    out->s = strdup(text);
    if (!out->s) {
      seterr(err, errlen, where, "%s: out of memory", name);
      return -ENOMEM;
    }
    return 0;
  case KT_BOOL: {
    static const char *const yes[] = {"true", "yes", "on", "1"}, *const no[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < 4; i++) {
      if (!strcasecmp(text, yes[i]) || !strcasecmp(text, no[i])) {
        out->b = !strcasecmp(text, yes[i]);
        return 0;
      }
    }
    seterr(err, errlen, where, "%s: '%s' is not a bool (use true, false, yes, no, on, off, 1 or 0)", name,
           text);
    return -EINVAL;
  }
  case KT_ENUM:
    for (int64_t i = 0; k->choices[i]; i++) {
      if (!strcasecmp(text, k->choices[i])) {
        out->i = i;
        return 0;
      }
    }
    {
      char list[256] = "";
      for (size_t i = 0; k->choices[i]; i++) {
        size_t n = strlen(list);
        snprintf(list + n, sizeof list - n, "%s%s", i ? ", " : "", k->choices[i]);
      }
      seterr(err, errlen, where, "%s: '%s' is not one of %s", name, text, list);
    }
    return -EINVAL;
  case KT_INT:
    rc = parse_int(text, &out->i);
    break;
  case KT_SIZE:
    rc = parse_scaled(text, size_units, &out->i);
    break;
  case KT_DURATION:
    rc = parse_scaled(text, duration_units, &out->i);
    break;
  case KT_RATE:
    rc = parse_rate(text, k, &out->r);
    if (rc == -EINVAL)
      seterr(err, errlen, where, "%s: '%s' is not a rate (use e.g. 20/s, 600/m burst 20 or off)", name, text);
    else if (rc)
      seterr(err, errlen, where, "%s: '%s' is out of range (rate 0..%d per period, burst 1..%d)", name, text,
             RATE_MAX, RATE_BURST_MAX);
    return rc;
  }
  if (rc == -EINVAL) {
    const char *hint = k->type == KT_INT    ? "a whole number, e.g. 100"
                       : k->type == KT_SIZE ? "e.g. 64KiB"
                                            : "e.g. 30s or 500ms";
    seterr(err, errlen, where, "%s: '%s' is not %s (use %s)", name, text,
           k->type == KT_INT    ? "an integer"
           : k->type == KT_SIZE ? "a size"
                                : "a duration",
           hint);
    return rc;
  }
  if (rc == 0 && out->i >= k->min && out->i <= k->max) return 0;
  char lo[32], hi[32];
  format_number(k, k->min, lo, sizeof lo);
  format_number(k, k->max, hi, sizeof hi);
  seterr(err, errlen, where, "%s: '%s' is out of range (%s..%s)", name, text, lo, hi);
  return -ERANGE;
}

/* Move a parsed value into the field at p (takes ownership of v->s). */
static void store_at(void *p, const struct key *k, union value *v) {
  switch (k->type) {
  case KT_BOOL:
    *(bool *)p = v->b;
    break;
  case KT_STRING:
    free(*(char **)p);
    *(char **)p = v->s;
    v->s = NULL;
    break;
  case KT_RATE:
    *(struct config_rate *)p = v->r;
    break;
  default:
    *(int64_t *)p = v->i;
    break;
  }
}

static void store(struct config *c, const struct key *k, union value *v) { store_at(field(c, k), k, v); }

static const struct key *lookup(const char *name) {
  for (size_t i = 0; i < NKEYS; i++)
    if (!strcmp(keys[i].name, name)) return &keys[i];
  return NULL;
}

/* Levenshtein distance, capped: names are short, so the O(n*m) table is fine. */
static size_t edit_distance(const char *a, const char *b) {
  size_t la = strlen(a), lb = strlen(b);
  if (la > 63 || lb > 63) return SIZE_MAX;
  size_t row[64];
  for (size_t j = 0; j <= lb; j++) row[j] = j;
  for (size_t i = 1; i <= la; i++) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= lb; j++) {
      size_t up = row[j];
      size_t best = diag + (a[i - 1] != b[j - 1]);
      if (up + 1 < best) best = up + 1;
      if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
      row[j] = best;
      diag = up;
    }
  }
  return row[lb];
}

/* A key the user probably meant: within two edits, or the same name without its section ("port"). */
static const char *suggest(const char *name) {
  const char *best = NULL;
  size_t best_d = 3;
  for (size_t i = 0; i < NKEYS; i++) {
    const char *dot = strchr(keys[i].name, '.');
    if (dot && !strcmp(dot + 1, name)) return keys[i].name;
    size_t d = edit_distance(name, keys[i].name);
    if (d < best_d && d < strlen(name)) best = keys[i].name, best_d = d;
  }
  return best;
}

static int unknown_key(const char *name, const char *where, char *err, size_t errlen) {
  const char *s = suggest(name);
  if (s)
    seterr(err, errlen, where, "unknown key '%s' (did you mean '%s'?)", name, s);
  else
    seterr(err, errlen, where, "unknown key '%s'", name);
  return -EINVAL;
}

static int set_key(struct config *c, const struct key *k, const char *value, const char *where, char *err,
                   size_t errlen) {
  union value v;
  int rc = parse_value(k, NULL, value, &v, where, err, errlen);
  if (rc) return rc;
  store(c, k, &v);
  return 0;
}

/* ---- public API ---- */

static int set_room_key(struct config *c, const char *key, const char *value, const char *where, char *err,
                        size_t errlen) {
  const char *pat = key + strlen("rooms.");
  const char *dot = strrchr(pat, '.');
  if (!dot || dot == pat || !dot[1]) {
    seterr(err, errlen, where, "'%s': room settings are written rooms.<pattern>.<key>", key);
    return -EINVAL;
  }
  const struct key *k = NULL;
  size_t ki = 0;
  for (; ki < NROOMKEYS; ki++)
    if (!strcmp(room_keys[ki].name, dot + 1)) {
      k = &room_keys[ki];
      break;
    }
  if (!k) {
    seterr(err, errlen, where, "unknown room key '%s' (one of: history, max_age, max_count, access)",
           dot + 1);
    return -EINVAL;
  }
  union value v;
  int rc = parse_value(k, key, value, &v, where, err, errlen);
  if (rc) return rc;
  size_t plen = (size_t)(dot - pat);
  struct room_rule *r = NULL;
  for (size_t i = 0; i < c->nrooms; i++)
    if (strlen(c->rooms[i].pattern) == plen && !strncmp(c->rooms[i].pattern, pat, plen)) r = &c->rooms[i];
  if (!r) {
    struct room_rule *rs = realloc(c->rooms, (c->nrooms + 1) * sizeof *rs);
    if (!rs) return -ENOMEM;
    c->rooms = rs;
    r = &rs[c->nrooms];
    memset(r, 0, sizeof *r);
    if (!(r->pattern = strndup(pat, plen))) return -ENOMEM;
    for (size_t i = 0; i < NROOMKEYS; i++) { /* defaults for the unset fields */
      union value d;
      if (parse_value(&room_keys[i], NULL, room_keys[i].def, &d, NULL, NULL, 0) == 0)
        store_at((char *)r + room_keys[i].off, &room_keys[i], &d);
    }
    c->nrooms++;
  }
  store_at((char *)r + k->off, k, &v);
  r->set |= 1u << ki;
  return 0;
}

static void free_rooms(struct config *c) {
  for (size_t i = 0; i < c->nrooms; i++) free(c->rooms[i].pattern);
  free(c->rooms);
  c->rooms = NULL;
  c->nrooms = 0;
}

/* ---- auth.keys.<kid>.<name> ---- */

static void free_auth_key(struct auth_key *a) {
  free(a->kid);
  for (size_t i = 0; i < NAUTHKEYKEYS; i++)
    if (auth_key_keys[i].type == KT_STRING) free(*(char **)((char *)a + auth_key_keys[i].off));
}

static void free_auth_keys(struct config *c) {
  for (size_t i = 0; i < c->nauth_keys; i++) free_auth_key(&c->auth_keys[i]);
  free(c->auth_keys);
  c->auth_keys = NULL;
  c->nauth_keys = 0;
}

/* Like set_room_key; the kid is everything between the prefix and the last '.'. */
static int set_auth_key(struct config *c, const char *key, const char *value, const char *where, char *err,
                        size_t errlen) {
  const char *kid = key + strlen("auth.keys.");
  const char *dot = strrchr(kid, '.');
  if (!dot || dot == kid || !dot[1]) {
    seterr(err, errlen, where, "'%s': keys are written auth.keys.<kid>.<name>", key);
    return -EINVAL;
  }
  size_t ki = 0;
  while (ki < NAUTHKEYKEYS && strcmp(auth_key_keys[ki].name, dot + 1)) ki++;
  if (ki == NAUTHKEYKEYS) {
    seterr(err, errlen, where, "unknown key setting '%s' (one of: alg, secret, public_key, private_key)",
           dot + 1);
    return -EINVAL;
  }
  const struct key *k = &auth_key_keys[ki];
  union value v;
  int rc = parse_value(k, key, value, &v, where, err, errlen);
  if (rc) return rc;
  size_t klen = (size_t)(dot - kid);
  struct auth_key *a = NULL;
  for (size_t i = 0; i < c->nauth_keys; i++)
    if (strlen(c->auth_keys[i].kid) == klen && !strncmp(c->auth_keys[i].kid, kid, klen)) a = &c->auth_keys[i];
  if (!a) {
    struct auth_key *as = realloc(c->auth_keys, (c->nauth_keys + 1) * sizeof *as);
    if (!as) goto nomem;
    c->auth_keys = as;
    a = &as[c->nauth_keys];
    memset(a, 0, sizeof *a);
    if (!(a->kid = strndup(kid, klen))) goto nomem;
    for (size_t i = 0; i < NAUTHKEYKEYS; i++) { /* defaults for the unset fields; only strdup can fail */
      union value d;
      if (parse_value(&auth_key_keys[i], NULL, auth_key_keys[i].def, &d, NULL, NULL, 0)) goto nomem;
      store_at((char *)a + auth_key_keys[i].off, &auth_key_keys[i], &d);
    }
    c->nauth_keys++;
  }
  store_at((char *)a + k->off, k, &v);
  a->set |= 1u << ki;
  return 0;
nomem:
  if (a) {
    free_auth_key(a);
    memset(a, 0, sizeof *a);
  }
  if (k->type == KT_STRING) free(v.s);
  seterr(err, errlen, where, "out of memory");
  return -ENOMEM;
}

static int copy_auth_keys(struct config *dst, const struct config *src) {
  struct auth_key *as = src->nauth_keys ? calloc(src->nauth_keys, sizeof *as) : NULL;
  if (src->nauth_keys && !as) return -ENOMEM;
  bool ok = true;
  for (size_t i = 0; i < src->nauth_keys; i++) {
    as[i] = src->auth_keys[i];
    ok = (as[i].kid = strdup(src->auth_keys[i].kid)) && ok;
    for (size_t j = 0; j < NAUTHKEYKEYS; j++) {
      if (auth_key_keys[j].type != KT_STRING) continue;
      char **f = (char **)((char *)&as[i] + auth_key_keys[j].off);
      ok = (*f = strdup(*f ? *f : "")) && ok;
    }
  }
  if (!ok) {
    for (size_t i = 0; i < src->nauth_keys; i++) free_auth_key(&as[i]);
    free(as);
    return -ENOMEM;
  }
  free_auth_keys(dst);
  dst->auth_keys = as;
  dst->nauth_keys = src->nauth_keys;
  return 0;
}

const struct auth_key *config_auth_key(const struct config *c, const char *kid) {
  for (size_t i = 0; i < c->nauth_keys; i++)
    if (!strcmp(c->auth_keys[i].kid, kid)) return &c->auth_keys[i];
  return NULL;
}

/* ---- scripts.<name>.<key> and plugins.<name>.<key> ---- */

static bool is_ext_key(const char *key) {
  return !strncmp(key, "scripts.", 8) || !strncmp(key, "plugins.", 8);
}

static void free_ext(struct ext_section *e) {
  free(e->name);
  free(e->path);
  for (size_t i = 0; i < e->nopts; i++) {
    free(e->opts[i].key);
    free(e->opts[i].value);
    free(e->opts[i].where);
  }
  free(e->opts);
}

static void free_exts(struct config *c) {
  for (size_t i = 0; i < c->nexts; i++) free_ext(&c->exts[i]);
  free(c->exts);
  c->exts = NULL;
  c->nexts = 0;
}

const struct ext_section *config_ext(const struct config *c, bool plugin, const char *name) {
  for (size_t i = 0; i < c->nexts; i++)
    if (c->exts[i].plugin == plugin && !strcmp(c->exts[i].name, name)) return &c->exts[i];
  return NULL;
}

const struct ext_opt *config_ext_opt(const struct ext_section *e, const char *key) {
  for (size_t i = 0; e && i < e->nopts; i++)
    if (!strcmp(e->opts[i].key, key)) return &e->opts[i];
  return NULL;
}

static int set_ext_key(struct config *c, const char *key, const char *value, const char *where, char *err,
                       size_t errlen) {
  bool plugin = key[0] == 'p';
  const char *name = key + 8, *dot = strchr(name, '.');
  if (!dot || dot == name || !dot[1]) {
    seterr(err, errlen, where, "'%s': write %s.<name>.<key>", key, plugin ? "plugins" : "scripts");
    return -EINVAL;
  }
  for (const char *p = name; p < dot; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_' ||
          *p == '-')) {
      seterr(err, errlen, where, "'%s': a %s name is letters, digits, '_' and '-'", key,
             plugin ? "plugin" : "script");
      return -EINVAL;
    }
  const char *sub = dot + 1;
  int64_t prio = 0;
  if (!strcmp(sub, "priority")) {
    if (parse_int(value, &prio) || prio < -1000000 || prio > 1000000) {
      seterr(err, errlen, where, "%s: '%s' is not an integer in -1000000..1000000", key, value);
      return -ERANGE;
    }
  }
  size_t nlen = (size_t)(dot - name);
  struct ext_section *e = NULL;
  for (size_t i = 0; i < c->nexts; i++)
    if (c->exts[i].plugin == plugin && strlen(c->exts[i].name) == nlen &&
        !strncmp(c->exts[i].name, name, nlen))
      e = &c->exts[i];
  if (!e) {
    struct ext_section *es = realloc(c->exts, (c->nexts + 1) * sizeof *es);
    if (!es) return -ENOMEM;
    c->exts = es;
    e = &es[c->nexts];
    memset(e, 0, sizeof *e);
    e->plugin = plugin;
    if (!(e->name = strndup(name, nlen)) || !(e->path = strdup(""))) {
      free(e->name);
      return -ENOMEM;
    }
    c->nexts++;
  }
  if (!strcmp(sub, "priority")) {
    e->priority = prio;
    return 0;
  }
  char *v = strdup(value);
  if (!v) return -ENOMEM;
  if (!strcmp(sub, "path")) {
    free(e->path);
    e->path = v;
    return 0;
  }
  struct ext_opt *o = (struct ext_opt *)config_ext_opt(e, sub);
  char *w = strdup(where ? where : "");
  if (!w) {
    free(v);
    return -ENOMEM;
  }
  if (!o) {
    char *k = strdup(sub);
    struct ext_opt *os = k ? realloc(e->opts, (e->nopts + 1) * sizeof *os) : NULL;
    if (!os) {
      free(k);
      free(v);
      free(w);
      return -ENOMEM;
    }
    e->opts = os;
    o = &os[e->nopts++];
    o->key = k;
  } else {
    free(o->value);
    free(o->where);
  }
  o->value = v;
  o->where = w;
  return 0;
}

static int copy_exts(struct config *dst, const struct config *src) {
  struct config tmp = {0};
  for (size_t i = 0; i < src->nexts; i++) {
    const struct ext_section *e = &src->exts[i];
    char key[512];
    const char *pre = e->plugin ? "plugins" : "scripts";
    snprintf(key, sizeof key, "%s.%s.path", pre, e->name);
    int rc = set_ext_key(&tmp, key, e->path, NULL, NULL, 0);
    if (!rc) tmp.exts[tmp.nexts - 1].priority = e->priority;
    for (size_t j = 0; !rc && j < e->nopts; j++) {
      snprintf(key, sizeof key, "%s.%s.%s", pre, e->name, e->opts[j].key);
      rc = set_ext_key(&tmp, key, e->opts[j].value, e->opts[j].where, NULL, 0);
    }
    if (rc) {
      free_exts(&tmp);
      return rc;
    }
  }
  free_exts(dst);
  dst->exts = tmp.exts;
  dst->nexts = tmp.nexts;
  return 0;
}

bool config_glob_match(const char *p, const char *s) {
  if (!p || !s) return false;
  const char *star = NULL, *ss = NULL;
  while (*s) {
    if (*p == '*') {
      star = p++;
      ss = s;
    } else if (*p == '?' || *p == *s) {
      p++;
      s++;
    } else if (star) {
      p = star + 1;
      s = ++ss;
    } else {
      return false;
    }
  }
  while (*p == '*') p++;
  return !*p;
}

const struct room_rule *config_room_rule(const struct config *c, const char *room, const char *key) {
  size_t ki = 0;
  while (ki < NROOMKEYS && strcmp(room_keys[ki].name, key)) ki++;
  if (ki == NROOMKEYS) return NULL;
  for (size_t i = c->nrooms; i-- > 0;)
    if ((c->rooms[i].set & (1u << ki)) && config_glob_match(c->rooms[i].pattern, room)) return &c->rooms[i];
  return NULL;
}

bool config_room_history(const struct config *c, const char *room) {
  const struct room_rule *r = config_room_rule(c, room, "history");
  return r ? r->history : true;
}

int64_t config_room_max_age(const struct config *c, const char *room) {
  const struct room_rule *r = config_room_rule(c, room, "max_age");
  return r ? r->max_age : 0;
}

int64_t config_room_max_count(const struct config *c, const char *room) {
  const struct room_rule *r = config_room_rule(c, room, "max_count");
  return r ? r->max_count : 0;
}

int64_t config_room_access(const struct config *c, const char *room) {
  const struct room_rule *r = config_room_rule(c, room, "access");
  return r ? r->access : ROOM_PUBLIC;
}

int config_set(struct config *c, const char *key, const char *value, const char *where, char *err,
               size_t errlen) {
  if (!strncmp(key, "rooms.", 6)) return set_room_key(c, key, value, where, err, errlen);
  if (!strncmp(key, "auth.keys.", 10)) return set_auth_key(c, key, value, where, err, errlen);
  if (is_ext_key(key)) return set_ext_key(c, key, value, where, err, errlen);
  const struct key *k = lookup(key);
  if (!k) return unknown_key(key, where, err, errlen);
  return set_key(c, k, value, where, err, errlen);
}

int config_defaults(struct config *c) {
  memset(c, 0, sizeof *c);
  c->base_dir = strdup("");
  if (!c->base_dir) return -ENOMEM;
  for (size_t i = 0; i < NKEYS; i++) {
    char err[256];
    int rc = set_key(c, &keys[i], keys[i].def, "config default", err, sizeof err);
    if (rc == -ENOMEM) return rc;
    if (rc) { /* a bad row in keys[]: a programming error that the unit tests catch */
      log_error("%s", err);
      return rc;
    }
  }
  return 0;
}

void config_free(struct config *c) {
  free(c->base_dir);
  free_rooms(c);
  free_exts(c);
  free_auth_keys(c);
  for (size_t i = 0; i < NKEYS; i++)
    if (keys[i].type == KT_STRING) free(*(char **)field(c, &keys[i]));
  memset(c, 0, sizeof *c);
}

/* Decode the double-quoted string starting at s (on the opening quote) in place. On success *end points
 * past the closing quote. */
static const char *unquote(char *s, char **end) {
  char *w = s;
  for (char *r = s + 1; *r; r++) {
    if (*r == '"') {
      *w = '\0';
      *end = r + 1;
      return NULL;
    }
    if (*r != '\\') {
      *w++ = *r;
      continue;
    }
    switch (*++r) {
    case '"':
      *w++ = '"';
      break;
    case '\\':
      *w++ = '\\';
      break;
    case 'n':
      *w++ = '\n';
      break;
    case 't':
      *w++ = '\t';
      break;
    case '\0':
      return "unterminated quote";
    default:
      return "unknown escape in string (use \\\" \\\\ \\n or \\t)";
    }
  }
  return "unterminated quote";
}

/* One line (NUL-terminated, no '\n', writable). */
static int parse_line(struct config *c, char *line, const char *where, char *err, size_t errlen) {
  while (is_space(*line)) line++;
  if (!*line || *line == '#') return 0;
  char *eq = strchr(line, '=');
  if (!eq) {
    seterr(err, errlen, where, "missing '=' (expected: key = value)");
    return -EINVAL;
  }
  char *kend = eq;
  while (kend > line && is_space(kend[-1])) kend--;
  *kend = '\0';
  if (!*line) {
    seterr(err, errlen, where, "empty key before '='");
    return -EINVAL;
  }
  bool room = !strncmp(line, "rooms.", 6) || is_ext_key(line) || !strncmp(line, "auth.keys.", 10);
  const struct key *k = room ? NULL : lookup(line);
  if (!k && !room) return unknown_key(line, where, err, errlen);
  const char *kname = line;

  char *v = eq + 1;
  while (is_space(*v)) v++;
  if (*v == '"') {
    char *rest;
    const char *msg = unquote(v, &rest);
    if (msg) {
      seterr(err, errlen, where, "%s: %s", kname, msg);
      return -EINVAL;
    }
    while (is_space(*rest)) rest++;
    if (*rest && *rest != '#') {
      seterr(err, errlen, where, "%s: unexpected text after the closing quote", kname);
      return -EINVAL;
    }
  } else {
    /* A bare value ends at a '#' that starts a word (so "a#b" keeps its '#'); trailing blanks dropped. */
    char *e = v;
    while (*e && !(*e == '#' && (e == v || is_space(e[-1])))) e++;
    while (e > v && is_space(e[-1])) e--;
    *e = '\0';
    if (!*v && (!k || k->type != KT_STRING)) {
      seterr(err, errlen, where, "%s: missing value", kname);
      return -EINVAL;
    }
  }
  return k ? set_key(c, k, v, where, err, errlen) : config_set(c, kname, v, where, err, errlen);
}

int config_load_text(struct config *c, const char *name, const char *text, char *err, size_t errlen) {
  char *copy = strdup(text);
  if (!copy) {
    seterr(err, errlen, name, "out of memory");
    return -ENOMEM;
  }
  char *p = copy;
  if (!strncmp(p, "\xEF\xBB\xBF", 3)) p += 3; /* UTF-8 BOM, as some editors write it */
  int rc = 0;
  for (unsigned lineno = 1; p; lineno++) {
    char *nl = strchr(p, '\n');
    if (nl) *nl = '\0';
    char where[PATH_MAX + 32];
    snprintf(where, sizeof where, "%s:%u", name, lineno);
    rc = parse_line(c, p, where, err, errlen);
    if (rc) break;
    p = nl ? nl + 1 : NULL;
  }
  free(copy);
  return rc;
}

/* Whole file into a NUL-terminated malloc'd string. */
static int read_file(const char *path, char **out, char *err, size_t errlen) {
  char *buf = NULL;
  size_t len = 0, cap = 0;
  int e;
  FILE *f = fopen(path, "rb");
  if (!f) {
    e = errno;
    goto fail;
  }
  for (;;) {
    if (cap - len < 2) {
      size_t ncap = cap ? cap * 2 : 4096;
      char *nb = realloc(buf, ncap);
      if (!nb) {
        e = ENOMEM;
        goto fail;
      }
      buf = nb;
      cap = ncap;
    }
    size_t got = fread(buf + len, 1, cap - 1 - len, f);
    if (!got) break;
    len += got;
  }
  if (ferror(f)) {
    e = EIO;
    goto fail;
  }
  fclose(f);
  buf[len] = '\0';
  if (strlen(buf) != len) {
    free(buf);
    seterr(err, errlen, path, "contains a NUL byte (not a text file?)");
    return -EINVAL;
  }
  *out = buf;
  return 0;
fail:
  if (f) fclose(f);
  free(buf);
  seterr(err, errlen, path, "%s", strerror(e));
  return -e;
}

static int conf_filter(const struct dirent *d) {
  size_t n = strlen(d->d_name);
  return d->d_name[0] != '.' && n > 5 && !strcmp(d->d_name + n - 5, ".conf");
}

/* strcmp, not alphasort's strcoll: the order must not depend on the locale. */
static int conf_compare(const struct dirent **a, const struct dirent **b) {
  return strcmp((*a)->d_name, (*b)->d_name);
}

int config_load_dir(struct config *c, const char *dir, char *err, size_t errlen) {
  int rc = config_defaults(c);
  if (rc) {
    seterr(err, errlen, dir, "out of memory");
    return rc;
  }
  /* "conf.d/" names its files "conf.d/x.conf", not "conf.d//x.conf". */
  size_t dlen = strlen(dir);
  while (dlen > 1 && dir[dlen - 1] == '/') dlen--;

  char *real = realpath(dir, NULL);
  if (!real) {
    rc = -errno;
    seterr(err, errlen, dir, "%s", strerror(errno));
    return rc;
  }
  char *slash = strrchr(real, '/');
  if (slash == real) slash++; /* the parent of "/x" (or of "/") is "/" */
  *slash = '\0';
  free(c->base_dir);
  c->base_dir = real;

  struct dirent **names;
  int n = scandir(dir, &names, conf_filter, conf_compare);
  if (n < 0) {
    rc = -errno;
    seterr(err, errlen, dir, "%s", strerror(errno));
    return rc;
  }
  for (int i = 0; i < n && !rc; i++) {
    char path[PATH_MAX];
    if ((size_t)snprintf(path, sizeof path, "%.*s/%s", (int)dlen, dir, names[i]->d_name) >= sizeof path) {
      seterr(err, errlen, dir, "%s: path too long", names[i]->d_name);
      rc = -ENAMETOOLONG;
      break;
    }
    struct stat st;
    if (stat(path, &st)) { /* e.g. a dangling symlink: report it rather than silently skip it */
      rc = -errno;
      seterr(err, errlen, path, "%s", strerror(errno));
      break;
    }
    if (!S_ISREG(st.st_mode)) continue; /* "x.conf/" directory, fifo, ... */
    char *text = NULL;
    rc = read_file(path, &text, err, errlen);
    if (rc) break;
    rc = config_load_text(c, path, text, err, errlen);
    free(text);
  }
  for (int i = 0; i < n; i++) free(names[i]);
  free(names);
  return rc;
}

static bool same_value(const struct key *k, const struct config *a, const struct config *b) {
  const void *pa = field(a, k), *pb = field(b, k);
  switch (k->type) {
  case KT_BOOL:
    return *(const bool *)pa == *(const bool *)pb;
  case KT_STRING: {
    const char *sa = *(char *const *)pa, *sb = *(char *const *)pb;
    return sa == sb || (sa && sb && !strcmp(sa, sb));
  }
  case KT_RATE:
    return !memcmp(pa, pb, sizeof(struct config_rate));
  default:
    return *(const int64_t *)pa == *(const int64_t *)pb;
  }
}

static int copy_rooms(struct config *dst, const struct config *src) {
  struct room_rule *rs = src->nrooms ? calloc(src->nrooms, sizeof *rs) : NULL;
  if (src->nrooms && !rs) return -ENOMEM;
  for (size_t i = 0; i < src->nrooms; i++) {
    rs[i] = src->rooms[i];
    if (!(rs[i].pattern = strdup(src->rooms[i].pattern))) {
      while (i--) free(rs[i].pattern);
      free(rs);
      return -ENOMEM;
    }
  }
  free_rooms(dst);
  dst->rooms = rs;
  dst->nrooms = src->nrooms;
  return 0;
}

void config_apply_reload(struct config *live, const struct config *fresh) {
  if (copy_rooms(live, fresh)) log_error("config: out of memory; keeping the old room rules");
  if (copy_auth_keys(live, fresh)) log_error("config: out of memory; keeping the old auth.keys");
  if (copy_exts(live, fresh)) log_error("config: out of memory; keeping the old scripts/plugins sections");
  for (size_t i = 0; i < NKEYS; i++) {
    const struct key *k = &keys[i];
    if (same_value(k, live, fresh)) continue;
    if (!k->reload) {
      log_info("config: %s changed; restart to apply", k->name);
      continue;
    }
    if (k->type == KT_STRING) {
      const char *src = *(char *const *)field(fresh, k);
      char *dup = strdup(src ? src : "");
      if (!dup) {
        log_error("config: %s: out of memory; keeping the old value", k->name);
        continue;
      }
      char **dst = field(live, k);
      free(*dst);
      *dst = dup;
    } else if (k->type == KT_BOOL) {
      *(bool *)field(live, k) = *(const bool *)field(fresh, k);
    } else if (k->type == KT_RATE) {
      *(struct config_rate *)field(live, k) = *(const struct config_rate *)field(fresh, k);
    } else {
      *(int64_t *)field(live, k) = *(const int64_t *)field(fresh, k);
    }
    log_debug("config: %s reloaded", k->name);
  }
}

char *config_path(const struct config *c, const char *path) {
  if (!path) return NULL;
  if (path[0] == '/' || !path[0] || !c->base_dir || !c->base_dir[0]) return strdup(path);
  size_t bl = strlen(c->base_dir);
  bool sep = c->base_dir[bl - 1] != '/';
  size_t len = bl + sep + strlen(path) + 1;
  char *out = malloc(len);
  if (out) snprintf(out, len, "%s%s%s", c->base_dir, sep ? "/" : "", path);
  return out;
}

/* A string as a conf file would spell it: quoted, with \" \\ \n \t escaped. */
static void write_quoted(FILE *f, const char *s) {
  fputc('"', f);
  for (; s && *s; s++) {
    switch (*s) {
    case '"':
      fputs("\\\"", f);
      break;
    case '\\':
      fputs("\\\\", f);
      break;
    case '\n':
      fputs("\\n", f);
      break;
    case '\t':
      fputs("\\t", f);
      break;
    default:
      fputc(*s, f);
    }
  }
  fputc('"', f);
}

/* Canonical conf-file spelling of the value at p (a field of struct config, or a parsed union value). */
static void write_value(FILE *f, const struct key *k, const void *p) {
  char num[32];
  switch (k->type) {
  case KT_BOOL:
    fputs(*(const bool *)p ? "true" : "false", f);
    break;
  case KT_STRING:
    write_quoted(f, *(char *const *)p);
    break;
  case KT_ENUM:
    fputs(k->choices[*(const int64_t *)p], f);
    break;
  case KT_RATE: {
    const struct config_rate *r = p;
    if (!r->n)
      fputs("off", f);
    else
      fprintf(f, "%" PRId64 "/%s burst %" PRId64, r->n,
              r->per_ms == HOUR  ? "h"
              : r->per_ms == MIN ? "m"
                                 : "s",
              r->burst);
    break;
  }
  default:
    format_number(k, *(const int64_t *)p, num, sizeof num);
    fputs(num, f);
  }
}

void config_dump(const struct config *c, FILE *f) {
  for (size_t i = 0; i < NKEYS; i++) {
    fprintf(f, "%s = ", keys[i].name);
    write_value(f, &keys[i], field(c, &keys[i]));
    fputc('\n', f);
  }
  for (size_t r = 0; r < c->nrooms; r++)
    for (size_t i = 0; i < NROOMKEYS; i++)
      if (c->rooms[r].set & (1u << i)) {
        fprintf(f, "rooms.%s.%s = ", c->rooms[r].pattern, room_keys[i].name);
        write_value(f, &room_keys[i], (const char *)&c->rooms[r] + room_keys[i].off);
        fputc('\n', f);
      }
  for (size_t a = 0; a < c->nauth_keys; a++)
    for (size_t i = 0; i < NAUTHKEYKEYS; i++)
      if (c->auth_keys[a].set & (1u << i)) {
        fprintf(f, "auth.keys.%s.%s = ", c->auth_keys[a].kid, auth_key_keys[i].name);
        write_value(f, &auth_key_keys[i], (const char *)&c->auth_keys[a] + auth_key_keys[i].off);
        fputc('\n', f);
      }
  for (size_t i = 0; i < c->nexts; i++) {
    const struct ext_section *e = &c->exts[i];
    const char *pre = e->plugin ? "plugins" : "scripts";
    fprintf(f, "%s.%s.path = ", pre, e->name);
    write_quoted(f, e->path);
    fprintf(f, "\n%s.%s.priority = %" PRId64 "\n", pre, e->name, e->priority);
    for (size_t j = 0; j < e->nopts; j++) {
      fprintf(f, "%s.%s.%s = ", pre, e->name, e->opts[j].key);
      write_quoted(f, e->opts[j].value);
      fputc('\n', f);
    }
  }
}

/* Text for a Markdown table cell: '|' would end the cell. */
static void write_cell(FILE *f, const char *s) {
  for (; *s; s++) {
    if (*s == '|') fputc('\\', f);
    fputc(*s, f);
  }
}

static void doc_row(FILE *f, const struct key *k, const char *name) {
  fprintf(f, "| `%s` | %s | `", name, type_name(k));
  union value v;
  if (parse_value(k, NULL, k->def, &v, NULL, NULL, 0) == 0) {
    write_value(f, k, &v); /* every union member starts at offset 0, like the struct fields */
    if (k->type == KT_STRING) free(v.s);
  }
  fputs("` | ", f);
  char lo[32], hi[32];
  switch (k->type) {
  case KT_INT:
  case KT_SIZE:
  case KT_DURATION:
    format_number(k, k->min, lo, sizeof lo);
    format_number(k, k->max, hi, sizeof hi);
    fprintf(f, "%s..%s", lo, hi);
    break;
  case KT_ENUM:
    for (size_t j = 0; k->choices[j]; j++) fprintf(f, "%s`%s`", j ? ", " : "", k->choices[j]);
    break;
  default:
    break;
  }
  fprintf(f, " | %s | ", k->reload ? "live" : "restart");
  write_cell(f, k->desc);
  fputs(" |\n", f);
}

void config_write_doc(FILE *f) {
  /* clang-format off */
  fputs(
    "# Configuration\n"
    "\n"
    "<!-- Generated by `parleyd --config-doc` from the key table in src/config.c; do not edit. -->\n"
    "\n"
    "`parleyd` reads every regular file ending in `.conf` in its conf directory (`conf.d/`) in sorted\n"
    "(byte-wise) order, on top of the built-in defaults below; a later assignment of a key overrides an\n"
    "earlier one, so `00-defaults.conf` can be overridden by e.g. `50-local.conf`. Hidden files and other\n"
    "extensions are ignored. Each line is `key = value`, a blank line or a `#` comment (a `#` at the\n"
    "start of a value or after a blank begins a comment). Strings may be double-quoted, with `\\\"`, `\\\\`,\n"
    "`\\n` and `\\t` escapes. Sizes are bytes, or take a suffix `B`, `KiB`, `MiB`, `GiB` (`k`, `m`, `g` and\n"
    "`kb`, `mb`, `gb` also mean powers of 1024); durations take `ms`, `s`, `m` or `h` (a bare number\n"
    "means seconds); bools are `true`/`false`, `yes`/`no`, `on`/`off` or `1`/`0`; rates are `N/s`, `N/m`\n"
    "or `N/h`, optionally followed by `burst B` (at most B at once; default N), or `off`. Relative paths are\n"
    "resolved against the parent of the conf directory. An unknown key or a bad value is an error\n"
    "reported as `file:line: message`; `parleyd --check` validates the configuration and exits. On SIGHUP\n"
    "the configuration is read again: keys marked *live* take effect at once, the others keep their value\n"
    "until a restart (a log line names each one that changed); a configuration with an error is not\n"
    "applied at all. `parleyd --print-config` shows the effective values.\n"
    "\n"
    "A key can also be set on the command line, after the files: `parleyd --set KEY=VALUE` (repeatable,\n"
    "the last one wins; the value as in a file, without quotes: `--set auth.jwt_secret=s3cret`), and\n"
    "`-p PORT` is `--set server.port=PORT`. A bad one is reported as `--set KEY=VALUE: message`; a SIGHUP\n"
    "re-reads the files and applies these again on top.\n"
    "\n"
    "```\n"
    "# conf.d/50-local.conf\n"
    "server.host = 0.0.0.0\n"
    "auth.jwt_secret = \"change me\"\n"
    "limits.out_queue_bytes = 4MiB\n"
    "limits.hello_timeout = 5s\n"
    "```\n"
    "\n"
    "| key | type | default | range | reload | description |\n"
    "|-----|------|---------|-------|--------|-------------|\n",
    f);
  /* clang-format on */
  for (size_t i = 0; i < NKEYS; i++) doc_row(f, &keys[i], keys[i].name);
  fputs("\n## Room rules\n\n"
        "Settings per room-name pattern: `rooms.<pattern>.<key> = value`, where the pattern is a glob over\n"
        "room names (`*` any run of characters, `?` one). For each key the *last* rule, in file order, that\n"
        "matches a room and sets that key decides; rooms no rule covers get the defaults. All are live.\n\n"
        "```\n"
        "rooms.ticker-*.history = off        # ephemeral: nothing stored\n"
        "rooms.support-*.max_age = 720h      # keep 30 days\n"
        "rooms.*.max_count = 100000\n"
        "```\n\n"
        "| key | type | default | range | reload | description |\n"
        "|-----|------|---------|-------|--------|-------------|\n",
        f);
  for (size_t i = 0; i < NROOMKEYS; i++) {
    char name[64];
    snprintf(name, sizeof name, "rooms.<pattern>.%s", room_keys[i].name);
    doc_row(f, &room_keys[i], name);
  }
  fputs("\n## Token keys\n\n"
        "Keys that verify `hello`/`refresh` tokens, several at once for rotation: `auth.keys.<kid>.<name> =\n"
        "value`. A token is verified with the key named by its header's `kid`, and only with that key's\n"
        "`alg`; a token without `kid` uses `auth.default_kid` (or, when that is empty, `auth.jwt_secret`\n"
        "as HS256). Key files are read when the server starts and on SIGHUP. All are live.\n"
        "See docs/security.md.\n\n"
        "```\n"
        "auth.keys.2025-01.alg = RS256\n"
        "auth.keys.2025-01.public_key = keys/2025-01.pub.pem\n"
        "auth.keys.legacy.alg = HS512\n"
        "auth.keys.legacy.secret = \"...\"\n"
        "```\n\n"
        "| key | type | default | range | reload | description |\n"
        "|-----|------|---------|-------|--------|-------------|\n",
        f);
  for (size_t i = 0; i < NAUTHKEYKEYS; i++) {
    char name[64];
    snprintf(name, sizeof name, "auth.keys.<kid>.%s", auth_key_keys[i].name);
    doc_row(f, &auth_key_keys[i], name);
  }
  fputs("\n## Scripts and plugins\n\n"
        "Lua scripts and C plugins are declared by sections (docs/hooks.md); all are live: SIGHUP (or\n"
        "`POST /api/admin/reload`) loads new sections, reloads changed scripts and unloads removed ones. A\n"
        "script that fails to load keeps its previous version running.\n\n"
        "```\n"
        "scripts.profanity.path = scripts/moderation/profanity.lua\n"
        "scripts.profanity.priority = 10\n"
        "scripts.profanity.words = \"darn heck\"\n"
        "plugins.msgpolicy.path = build/plugins/msgpolicy/msgpolicy.so\n"
        "plugins.msgpolicy.max_bytes = 2KiB\n"
        "```\n\n"
        "| key | type | default | range | reload | description |\n"
        "|-----|------|---------|-------|--------|-------------|\n"
        "| `scripts.<name>.path` | string | | | live | Lua script file; relative to the parent of the conf "
        "directory. |\n"
        "| `scripts.<name>.priority` | integer | `0` | -1000000..1000000 | live | Added to the priority of "
        "each of the script's handlers (higher runs first). |\n"
        "| `scripts.<name>.<option>` | text | | | live | Read by the script with `parley.option_string`, "
        "`option_number` or `option_bool`; a bad value is logged and the default used. |\n"
        "| `plugins.<name>.path` | string | | | live | Shared object of a C plugin (`.so`). |\n"
        "| `plugins.<name>.priority` | integer | `0` | -1000000..1000000 | live | Added to the priority of "
        "each of the plugin's handlers. |\n"
        "| `plugins.<name>.<option>` | text | | | live | Read by the plugin with `config_get` / "
        "`config_int`. |\n",
        f);
}
