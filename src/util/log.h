/* log: leveled logging to stderr. One global level, changeable at run time (SIGHUP reload). */
#ifndef PARLEY_UTIL_LOG_H
#define PARLEY_UTIL_LOG_H

enum log_level { LOG_ERROR = 0, LOG_WARN, LOG_INFO, LOG_DEBUG };

extern int log_level_current;

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
