/* config: parleyd's configuration, read from the *.conf files of a conf directory (conf.d/).
 *
 * Every key is declared once, in the table in config.c, with its type, default, range, whether SIGHUP
 * can change it live, and a description; docs/configuration.md is generated from that table
 * (`parleyd --config-doc`) and a test checks the two agree. Files are read in sorted (strcmp) order and a
 * later assignment overrides an earlier one. Syntax, one assignment per line:
 *
 *   # comment
 *   server.port = 8080
 *   auth.jwt_secret = "a quoted string with \" and \\ escapes"
 *   limits.out_queue_bytes = 1MiB      # sizes: B, KiB, MiB, GiB (also k, m, g = powers of 1024)
 *   limits.idle_timeout = 60s          # durations: ms, s, m, h (a bare number means seconds)
 *
 * A '#' at the start of a value or after a blank begins a comment; bare values are trimmed; bools are
 * true/false/yes/no/on/off/1/0. Unknown keys and bad values are errors reported as "file:line: message",
 * and loading stops at the first one. Functions return 0 or a negative errno code: -EINVAL (syntax, unknown
 * key, bad value), -ERANGE (value outside the key's range), -ENOMEM, or the errno of a failed file call. */
#ifndef PARLEY_CONFIG_H
#define PARLEY_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Per-room-pattern settings: `rooms.<pattern>.<key> = value`. The pattern is a glob ("*" any run of
 * characters, "?" one) over room names. For each key, the last rule (in file order) that matches a
 * room and sets that key decides; rooms no rule covers get the defaults. */
struct room_rule {
  char *pattern;     /* owned */
  uint32_t set;      /* bit i: room_keys[i] was assigned in this rule */
  bool history;      /* rooms.P.history: store messages (default true) */
  int64_t max_age;   /* rooms.P.max_age: retention by age, ms (0: keep) */
  int64_t max_count; /* rooms.P.max_count: retention by count (0: keep) */
  int64_t access;    /* rooms.P.access: enum room_access (default ROOM_PUBLIC) */
};

/* rooms.P.access (docs/security.md): who may read, write and see presence without a token grant. */
enum room_access { ROOM_PUBLIC = 0, ROOM_READONLY, ROOM_MEMBERS, ROOM_PRIVATE };

/* A JWT verification (and, optionally, signing) key: `auth.keys.<kid>.<key> = value`, selected by the token
 * header's `kid` (src/auth/jwt.h checks that the fields fit the algorithm). */
struct auth_key {
  char *kid;         /* owned */
  uint32_t set;      /* bit i: auth_key_keys[i] was assigned */
  int64_t alg;       /* auth.keys.K.alg: enum config_jwt_alg */
  char *secret;      /* auth.keys.K.secret: HS* shared secret ("" = none) */
  char *public_key;  /* auth.keys.K.public_key: RS/ES PEM file ("" = none) */
  char *private_key; /* auth.keys.K.private_key: RS/ES PEM file, only for minting ("" = none) */
};
/* Same order as the choices of auth.keys.K.alg. */
enum config_jwt_alg {
  CJWT_HS256,
  CJWT_HS384,
  CJWT_HS512,
  CJWT_RS256,
  CJWT_RS384,
  CJWT_RS512,
  CJWT_ES256,
  CJWT_ES384
};

/* A rate limit (`20/s burst 40`): n events per per_ms milliseconds, at most burst at once; n = 0: off. */
struct config_rate {
  int64_t n;
  int64_t per_ms;
  int64_t burst;
};

/* A script or plugin section: `scripts.<name>.<key>` / `plugins.<name>.<key>`. path and priority are typed;
 * every other key is an option kept as raw text (with its file:line) for the script's typed getters or the
 * plugin's config_get. Options are checked by their reader, not here. */
struct ext_opt {
  char *key;   /* owned, e.g. "words" */
  char *value; /* owned, unquoted text */
  char *where; /* owned, "file:line" of the assignment */
};
struct ext_section {
  bool plugin;          /* plugins.* (else scripts.*) */
  char *name;           /* owned */
  char *path;           /* owned, as written ("" = unset); resolve with config_path */
  int64_t priority;     /* added to every handler's own priority */
  struct ext_opt *opts; /* owned, in order of first assignment */
  size_t nopts;
};

/* Strings are owned by the struct (config_free releases them). Durations are in milliseconds, sizes in
 * bytes. Relative paths are resolved against base_dir. */
struct config {
  char *base_dir; /* absolute parent of the conf dir; "" (the working directory) after config_defaults */

  char *server_host;                 /* server.host */
  int64_t server_port;               /* server.port */
  char *server_data_dir;             /* server.data_dir */
  char *server_web_root;             /* server.web_root ("" = no static files) */
  int64_t server_node_id;            /* server.node_id: part of every message id */
  int64_t log_level;                 /* log.level: enum log_level from util/log.h */
  bool auth_allow_anonymous;         /* auth.allow_anonymous */
  char *auth_jwt_secret;             /* auth.jwt_secret (HS256) */
  int64_t limits_max_frame;          /* limits.max_frame (bytes) */
  int64_t limits_max_body;           /* limits.max_body (bytes) */
  int64_t limits_max_rooms_per_conn; /* limits.max_rooms_per_conn */
  int64_t limits_max_connections;    /* limits.max_connections */
  int64_t limits_idle_timeout;       /* limits.idle_timeout (ms) */
  int64_t limits_hello_timeout;      /* limits.hello_timeout (ms) */
  int64_t limits_out_queue_bytes;    /* limits.out_queue_bytes (bytes) */

  /* storage (docs/storage.md) */
  int64_t store_backend;                 /* store.backend: 0 = sqlite, 1 = mongo, 2 = postgres */
  char *store_sqlite_path;               /* store.sqlite.path, relative to server.data_dir ("parley.db") */
  int64_t store_sqlite_synchronous;      /* store.sqlite.synchronous: 0 = normal, 1 = full */
  int64_t store_sqlite_checkpoint_pages; /* store.sqlite.checkpoint_pages: WAL growth between checkpoints */
  int64_t store_sqlite_wal_reset_pages;  /* store.sqlite.wal_reset_pages: WAL size the writer resets at */
  int64_t store_sqlite_inbox_rows;       /* store.sqlite.inbox_rows: inbox size that starts a merge */
  int64_t store_sqlite_merge_slice;      /* store.sqlite.merge_slice: rows per merge transaction (0: auto) */
  int64_t store_sqlite_cache_size;       /* store.sqlite.cache_size: bytes of page cache per connection */
  char *store_mongo_uri;                 /* store.mongo.uri */
  char *store_mongo_database;            /* store.mongo.database */
  char *store_postgres_uri;              /* store.postgres.uri */
  char *store_postgres_schema;           /* store.postgres.schema ("": the connection's search_path) */
  int64_t store_queue_max;               /* store.queue_max: appends waiting for the writer */
  int64_t store_batch_max;               /* store.batch_max: appends per transaction */
  int64_t history_ring_size;             /* history.ring_size: recent messages kept in memory per room */
  int64_t history_max_limit;             /* history.max_limit: messages per history reply */
  int64_t recovery_max_messages;         /* recovery.max_messages: replayed on join with since */
  int64_t history_retention_interval;    /* history.retention_interval: how often retention runs (ms) */

  /* sessions, presence, typing (docs/protocol.md) */
  int64_t session_resume_ttl;     /* session.resume_ttl: detached sessions and presence grace (ms) */
  int64_t typing_ttl;             /* typing.ttl: a typing state expires without refresh (ms) */
  int64_t typing_interval;        /* typing.interval: fan-out of typing changes is batched per room (ms) */
  int64_t presence_broadcast_max; /* presence.broadcast_max: rooms above it send no join/leave events */

  /* authentication, access, abuse limits, transport (docs/security.md) */
  int64_t auth_leeway;               /* auth.leeway: clock skew allowed for exp/nbf/iat (ms) */
  char *auth_audience;               /* auth.audience ("" = aud not checked) */
  char *auth_issuer;                 /* auth.issuer ("" = iss not checked) */
  char *auth_guest_rooms;            /* auth.guest_rooms: "pattern:rights,..." cap for guests */
  char *auth_default_kid;            /* auth.default_kid: key for tokens without kid ("" = auth.jwt_secret) */
  bool auth_dev_login;               /* auth.dev_login: development login endpoint */
  int64_t auth_token_ttl;            /* auth.token_ttl: lifetime of minted dev tokens (ms) */
  struct config_rate rate_send;      /* rate.send: per connection */
  struct config_rate rate_send_user; /* rate.send_user: per user, all connections */
  struct config_rate rate_send_ip;   /* rate.send_ip: per client IP */
  struct config_rate rate_join;      /* rate.join: per connection */
  struct config_rate rate_typing;    /* rate.typing: per connection */
  struct config_rate rate_read;      /* rate.read: per connection */
  struct config_rate rate_connect_ip; /* rate.connect_ip: WebSocket handshakes per client IP */
  int64_t rate_strikes;               /* rate.strikes: rejections within rate.strikes_window before close */
  int64_t rate_strikes_window;        /* rate.strikes_window (ms) */
  int64_t limits_max_connections_per_ip; /* limits.max_connections_per_ip (0 = no cap) */
  int64_t limits_handshake_timeout;      /* limits.handshake_timeout (ms) */
  int64_t server_write_coalesce;         /* server.write_coalesce (ms, 0 = off) */
  int64_t limits_max_header_size;        /* limits.max_header_size (bytes) */
  char *tls_cert;                        /* tls.cert: PEM certificate chain ("" = no TLS) */
  char *tls_key;                         /* tls.key: PEM private key */
  char *server_origins;                  /* server.origins: allowed Origin values, comma list ("" = any) */

  struct auth_key *auth_keys; /* owned, in order of first assignment */
  size_t nauth_keys;

  /* hooks (docs/hooks.md) */
  int64_t hooks_fail[8];          /* hooks.<point>.fail: 0 open, 1 closed; enum parley_hook_point order */
  int64_t hooks_lua_instructions; /* hooks.lua.instructions: budget per handler call */
  int64_t hooks_lua_memory;       /* hooks.lua.memory: per script (bytes) */
  int64_t hooks_lua_time_limit;   /* hooks.lua.time_limit: wall time per handler call (ms) */
  char *hooks_admin_key;          /* hooks.admin_key: bearer key of POST /api/admin/reload ("" = off) */
  struct ext_section *exts;       /* owned: scripts.* and plugins.* sections, in order of first mention */
  size_t nexts;

  struct room_rule *rooms; /* owned, in order of first assignment */
  size_t nrooms;
};

/* Fill c with the built-in defaults (every string allocated). c is treated as uninitialized: its previous
 * contents are overwritten, not freed. Returns 0 or -ENOMEM; c is then valid for config_free. */
int config_defaults(struct config *c);

/* config_defaults, then every regular file in dir whose name ends in ".conf" (hidden files skipped), in
 * strcmp order; errors name files as dir + "/" + name. An empty dir is fine, a missing one is an error
 * ("dir: No such file or directory"). Sets base_dir. On error returns a negative code and writes
 * "file:line: message" (or "path: message") into err. c is treated as uninitialized on entry and always
 * left valid for config_free, also on error. */
int config_load_dir(struct config *c, const char *dir, char *err, size_t errlen);

/* Parse one file's text as if it were named `name`, on top of c (which holds defaults or earlier files);
 * used by config_load_dir and by tests. */
int config_load_text(struct config *c, const char *name, const char *text, char *err, size_t errlen);

/* Assign one key from its value text, as a conf line would once quotes are removed: value is the decoded
 * string (no quoting, no comment). "where" (e.g. "file:3", or NULL) prefixes errors. On error c is
 * unchanged. */
int config_set(struct config *c, const char *key, const char *value, const char *where, char *err,
               size_t errlen);

/* Copy every reloadable field of fresh into live (strings duplicated; fresh is left untouched); log
 * (info) "config: KEY changed; restart to apply" for each changed key that needs a restart and keep the
 * live value for those. The caller applies side effects, e.g. log_set_level(live->log_level). */
void config_apply_reload(struct config *live, const struct config *fresh);

/* The rule deciding `key` ("history", "max_age", "max_count") for room name, or NULL (defaults). */
const struct room_rule *config_room_rule(const struct config *c, const char *room, const char *key);
/* Effective per-room values. */
bool config_room_history(const struct config *c, const char *room);
int64_t config_room_max_age(const struct config *c, const char *room);
int64_t config_room_max_count(const struct config *c, const char *room);
/* rooms.P.access for room name (enum room_access). */
int64_t config_room_access(const struct config *c, const char *room);
/* The auth.keys entry with this kid, or NULL. */
const struct auth_key *config_auth_key(const struct config *c, const char *kid);
/* Glob match ("*" any run, "?" one byte). */
bool config_glob_match(const char *pattern, const char *s);

/* The section named `name` (plugin or script), or NULL; and one of its options' raw text, or NULL. */
const struct ext_section *config_ext(const struct config *c, bool plugin, const char *name);
const struct ext_opt *config_ext_opt(const struct ext_section *e, const char *key);

/* Resolve a path from the config against base_dir (absolute paths and "" are returned as they are);
 * returns a malloc'd string (caller frees), NULL on allocation failure. */
char *config_path(const struct config *c, const char *path);

/* Write docs/configuration.md's content (Markdown) generated from the table. */
void config_write_doc(FILE *f);

/* Write the effective configuration as conf lines ("key = value"), one per key, in table order, each value
 * in canonical form (strings quoted, sizes/durations in their largest exact unit) that loads back to the
 * same value. Secrets are included. */
void config_dump(const struct config *c, FILE *f);

/* Free every string and zero c; a zeroed c is fine. */
void config_free(struct config *c);

#endif
