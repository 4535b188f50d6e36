/* log: leveled logging, per server. A server owns a struct log_sink (its log.level and where lines go:
 * stderr, or the embedder's callback); a thread logs to the sink bound to it. parley_server_start binds
 * the server's sink to the loop thread until its stop completes, and the store binds it to its worker
 * threads, so two servers on two threads log independently. A thread with no sink bound logs to stderr
 * at its own level (info by default). */
#ifndef PARLEY_UTIL_LOG_H
#define PARLEY_UTIL_LOG_H

#include <stdatomic.h>

enum log_level { LOG_ERROR = 0, LOG_WARN, LOG_INFO, LOG_DEBUG };

/* A line's destination: msg is the message without timestamp or newline, valid during the call. */
typedef void (*log_fn)(void *ud, int level, const char *msg);

struct log_sink {
  atomic_int level; /* lines above it are dropped; changed by reload while store threads read it */
  log_fn fn;        /* NULL: timestamped lines on stderr. Set while no thread uses the sink */
  void *ud;
};

void log_sink_init(struct log_sink *k, int level);
/* Bind k to the calling thread (NULL: the thread's default sink); returns what was bound (NULL: the
 * default). k must stay valid while bound. */
struct log_sink *log_bind(struct log_sink *k);
/* The sink bound to the calling thread (NULL: none). */
struct log_sink *log_bound(void);

/* The calling thread's level (of its bound sink). log_level_current is kept as its spelling. */
int log_level(void);
#define log_level_current (log_level())
/* Set the level of the calling thread's sink. */
void log_set_level(int level);
/* Parse "error|warn|info|debug"; returns the level or -1. */
int log_level_parse(const char *s);
const char *log_level_name(int level);
void log_write(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) log_write(LOG_ERROR, __VA_ARGS__)
#define log_warn(...)  log_write(LOG_WARN, __VA_ARGS__)
#define log_info(...)                                                                                        \
  do {                                                                                                       \
    if (log_level_current >= LOG_INFO) log_write(LOG_INFO, __VA_ARGS__);                                     \
  } while (0)
#define log_debug(...)                                                                                       \
  do {                                                                                                       \
    if (log_level_current >= LOG_DEBUG) log_write(LOG_DEBUG, __VA_ARGS__);                                   \
  } while (0)

#endif
