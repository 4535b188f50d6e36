#include "util/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* Per thread, never shared: the bound sink and the sink of a thread with none bound. */
static _Thread_local struct log_sink *bound;
static _Thread_local struct log_sink thread_default = {.level = LOG_INFO};

static const char *const names[] = {"error", "warn", "info", "debug"};

static struct log_sink *sink(void) { return bound ? bound : &thread_default; }

void log_sink_init(struct log_sink *k, int level) {
  atomic_init(&k->level, level);
  k->fn = NULL;
  k->ud = NULL;
}

struct log_sink *log_bind(struct log_sink *k) {
  struct log_sink *prev = bound;
  bound = k;
  return prev;
}

struct log_sink *log_bound(void) {
  return bound;
}

int log_level(void) { return atomic_load_explicit(&sink()->level, memory_order_relaxed); }

void log_set_level(int level) { atomic_store_explicit(&sink()->level, level, memory_order_relaxed); }

int log_level_parse(const char *s) {
  for (int i = 0; i < 4; i++)
    if (!strcmp(s, names[i])) return i;
  return -1;
}

const char *log_level_name(int level) { return (level >= 0 && level < 4) ? names[level] : "?"; }

void log_write(int level, const char *fmt, ...) {
  struct log_sink *k = sink();
  if (level > atomic_load_explicit(&k->level, memory_order_relaxed)) return;
  if (level < LOG_ERROR) level = LOG_ERROR;
  if (level > LOG_DEBUG) level = LOG_DEBUG;
  char line[2048];
  int n = 0;
  if (!k->fn) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s ", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000,
                 names[level]);
  }
  va_list ap;
  va_start(ap, fmt);
  int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
  va_end(ap);
  size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
  if (len > sizeof line - 2) len = sizeof line - 2;
  if (k->fn) {
    line[len] = 0;
    k->fn(k->ud, level, line);
    return;
  }
  line[len++] = '\n';
  fwrite(line, 1, len, stderr);
}
