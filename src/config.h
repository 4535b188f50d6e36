/* config: parleyd's configuration, read from conf.d/*.conf.
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
 * Unknown keys and bad values are errors reported as "file:line: message". */
#ifndef PARLEY_CONFIG_H
#define PARLEY_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Strings are owned by the struct (config_free releases them). Durations are in milliseconds, sizes in
 * bytes. Relative paths are resolved against base_dir. */
struct config {
  char *base_dir; /* directory relative paths are resolved against: the conf dir's parent */

  char *server_host;      /* server.host */
  int64_t server_port;    /* server.port */
  char *server_data_dir;  /* server.data_dir */
  char *server_web_root;  /* server.web_root ("" = no static files) */
  int64_t log_level;      /* log.level: enum log_level from util/log.h */
  bool auth_allow_anonymous; /* auth.allow_anonymous */
  char *auth_jwt_secret;  /* auth.jwt_secret (HS256) */
  int64_t limits_max_frame;          /* limits.max_frame (bytes) */
  int64_t limits_max_body;           /* limits.max_body (bytes) */
  int64_t limits_max_rooms_per_conn; /* limits.max_rooms_per_conn */
  int64_t limits_max_connections;    /* limits.max_connections */
  int64_t limits_idle_timeout;       /* limits.idle_timeout (ms) */
  int64_t limits_hello_timeout;      /* limits.hello_timeout (ms) */
  int64_t limits_out_queue_bytes;    /* limits.out_queue_bytes (bytes) */
};

/* Fill c with the built-in defaults (every string allocated). Returns 0 or -ENOMEM. */
int config_defaults(struct config *c);

/* Defaults, then every regular file matching *.conf in dir, in sorted order. An empty or missing
 * directory is an error only if dir does not exist. On error returns a negative errno-style code and
 * writes "file:line: message" (or "dir: message") into err. c is always left valid for config_free. */
int config_load_dir(struct config *c, const char *dir, char *err, size_t errlen);

/* Parse one file's text as if it were named `name` (used by config_load_dir and by tests). */
int config_load_text(struct config *c, const char *name, const char *text, char *err, size_t errlen);

/* Assign one key from its textual value, exactly as a conf line would. "where" prefixes errors. */
int config_set(struct config *c, const char *key, const char *value, const char *where, char *err,
               size_t errlen);

/* Copy every reloadable field of fresh into live; log (info) each changed key that needs a restart
 * and keep the live value for those. */
void config_apply_reload(struct config *live, const struct config *fresh);

/* Resolve a path from the config against base_dir; returns a malloc'd string (caller frees). */
char *config_path(const struct config *c, const char *path);

/* Write docs/configuration.md's content (Markdown) generated from the table. */
void config_write_doc(FILE *f);

/* Write the effective configuration as conf lines ("key = value"), one per key, in table order. */
void config_dump(const struct config *c, FILE *f);

void config_free(struct config *c);

#endif
