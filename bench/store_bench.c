/* store_bench: the storage backend alone, as the store writer drives it — batches of appends spread over
 * rooms, one transaction each — with the CPU time and the write system calls it costs per message. It
 * isolates the backend from the network and the loop (bench/run's D workload measures the whole path).
 * A benchmark, not a test: it prints figures.
 *
 *   store_bench [--messages N] [--batch B] [--rooms R] [--body BYTES] [--conf DIR] [--set KEY=VALUE]...
 *               [--json]
 *
 * Built by the root CMake project (build/bench/store_bench). It writes a fresh SQLite database in a
 * temporary directory (removed afterwards) with the configuration's store settings (--conf: a conf.d to
 * load first, e.g. one that sets store.sqlite.synchronous or store.backend = mongo; --set: one key on top,
 * e.g.
 * --set store.sqlite.merge_slice=4096). --json prints the figures as one line of JSON instead (bench/run's W
 * workload reads it). Checkpoints run as
 * in parleyd: the writer never checkpoints; a checkpoint is counted in the figures when the WAL has grown
 * by store.sqlite.checkpoint_pages. */
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "store/backend.h"

static double cpu_seconds(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
         (double)ru.ru_stime.tv_usec / 1e6;
}

static double wall_seconds(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* write system calls of this process so far (syscw in /proc/self/io), -1 if unknown */
static long long write_calls(void) {
  FILE *f = fopen("/proc/self/io", "r");
  if (!f) return -1;
  char line[128];
  long long v = -1;
  while (fgets(line, sizeof line, f))
    if (sscanf(line, "syscw: %lld", &v) == 1) break;
  fclose(f);
  return v;
}

static void usage(void) {
  fprintf(stderr, "usage: store_bench [--messages N] [--batch B] [--rooms R] [--body BYTES] [--conf DIR]\n"
                  "                   [--set KEY=VALUE]... [--json]\n");
  exit(2);
}

int main(int argc, char **argv) {
  long messages = 200000, batch = 32, rooms = 100, body_len = 64;
  const char *conf = NULL, *sets[16];
  int nsets = 0;
  bool json = false;
  static const struct option opts[] = {
      {"messages", required_argument, NULL, 'n'}, {"batch", required_argument, NULL, 'b'},
      {"rooms", required_argument, NULL, 'r'},    {"body", required_argument, NULL, 'l'},
      {"conf", required_argument, NULL, 'c'},     {"set", required_argument, NULL, 's'},
      {"json", no_argument, NULL, 'j'},           {NULL, 0, NULL, 0}};
  for (int o; (o = getopt_long(argc, argv, "", opts, NULL)) != -1;) {
    switch (o) {
    case 'n':
      messages = atol(optarg);
      break;
    case 'b':
      batch = atol(optarg);
      break;
    case 'r':
      rooms = atol(optarg);
      break;
    case 'l':
      body_len = atol(optarg);
      break;
    case 'c':
      conf = optarg;
      break;
    case 's':
      if (nsets == (int)(sizeof sets / sizeof sets[0]) || !strchr(optarg, '=')) usage();
      sets[nsets++] = optarg;
      break;
    case 'j':
      json = true;
      break;
    default:
      usage();
    }
  }
  if (messages < 1 || batch < 1 || rooms < 1 || body_len < 0 || body_len > 60000) usage();

  char dir[] = "/tmp/store_bench.XXXXXX";
  if (!mkdtemp(dir)) {
    perror("mkdtemp");
    return 1;
  }
  struct config cfg;
  char err[256];
  if ((conf ? config_load_dir(&cfg, conf, err, sizeof err) : config_defaults(&cfg)) ||
      config_set(&cfg, "server.data_dir", dir, NULL, err, sizeof err)) {
    fprintf(stderr, "store_bench: %s\n", err);
    return 1;
  }
  for (int i = 0; i < nsets; i++) {
    char key[128];
    const char *eq = strchr(sets[i], '=');
    snprintf(key, sizeof key, "%.*s", (int)(eq - sets[i]), sets[i]);
    if (config_set(&cfg, key, eq + 1, NULL, err, sizeof err)) {
      fprintf(stderr, "store_bench: --set %s: %s\n", sets[i], err);
      return 1;
    }
  }
  const struct store_backend *be = store_backend_for(&cfg);
  void *writer = NULL, *ckpt = NULL;
  if (be->open(&cfg, &writer, err, sizeof err) ||
      (be->checkpoint && be->open(&cfg, &ckpt, err, sizeof err))) {
    fprintf(stderr, "store_bench: %s\n", err);
    return 1;
  }

  /* the body: {"t":"xxx…"} of body_len bytes of text */
  char *body = malloc((size_t)body_len + 16);
  memcpy(body, "{\"t\":\"", 6);
  memset(body + 6, 'x', (size_t)body_len);
  memcpy(body + 6 + body_len, "\"}", 3);
  struct store_append *items = calloc((size_t)batch, sizeof *items);
  char(*names)[3][40] = calloc((size_t)batch, sizeof *names); /* room, user, cmid of each item */
  char mid[40];
  long next = 0, checkpoints = 0, commits = 0, slices = 0;
  long long frames_append = 0, frames_between = 0; /* WAL frames written by appends / by the work between */
  double slice_total = 0, slice_max = 0;
  int step = (int)cfg.store_sqlite_checkpoint_pages, mark = 0;
  double cpu0 = cpu_seconds(), wall0 = wall_seconds();
  long long w0 = write_calls();
  while (next < messages) {
    long n = messages - next < batch ? messages - next : batch;
    for (long i = 0; i < n; i++, next++) {
      long r = next % rooms;
      snprintf(names[i][0], sizeof names[i][0], "bench-room-%ld", r);
      snprintf(names[i][1], sizeof names[i][1], "user-%ld", r);
      snprintf(names[i][2], sizeof names[i][2], "c%ld", next);
      snprintf(mid, sizeof mid, "m%012ld", next);
      items[i] = (struct store_append){.msg = {.room = strdup(names[i][0]),
                                               .mid = strdup(mid),
                                               .ts = 1700000000000ull + (uint64_t)next,
                                               .user_id = strdup(names[i][1]),
                                               .user_name = strdup("Bench"),
                                               .cmid = strdup(names[i][2]),
                                               .body = strdup(body)}};
    }
    int wal0 = be->wal_pages ? be->wal_pages(writer) : 0;
    if (be->append(writer, items, (size_t)n, err, sizeof err)) {
      fprintf(stderr, "store_bench: append: %s\n", err);
      return 1;
    }
    for (long i = 0; i < n; i++) store_msg_clear(&items[i].msg);
    int wal1 = be->wal_pages ? be->wal_pages(writer) : 0;
    double t0 = wall_seconds();
    if (be->after_batch) be->after_batch(writer); /* the work between batches (SQLite: one merge slice) */
    double took = wall_seconds() - t0;
    int wal2 = be->wal_pages ? be->wal_pages(writer) : 0;
    if (wal1 >= wal0) frames_append += wal1 - wal0, commits++; /* else a checkpoint restarted the WAL */
    if (wal2 > wal1) {
      frames_between += wal2 - wal1;
      slices++;
      slice_total += took;
      if (took > slice_max) slice_max = took;
    }
    if (be->checkpoint) { /* what the store's checkpoint thread would do, counted here */
      int pages = be->wal_pages(writer), left;
      if (pages < mark) mark = 0;
      if (pages >= mark + step) {
        mark = pages;
        be->checkpoint(ckpt, pages >= 8 * step, &left);
        checkpoints++;
      }
    }
  }
  double cpu = cpu_seconds() - cpu0, wall = wall_seconds() - wall0;
  long long w1 = write_calls();
  double us = cpu / messages * 1e6, calls = w0 >= 0 && w1 >= 0 ? (double)(w1 - w0) / messages : -1;
  double per_batch = commits ? (double)frames_append / commits : 0;
  double per_msg = (double)(frames_append + frames_between) / messages;
  double slice_avg = slices ? slice_total / slices * 1e3 : 0;
  if (json) {
    printf("{\"backend\":\"%s\",\"messages\":%ld,\"batch\":%ld,\"rooms\":%ld,\"body\":%ld,"
           "\"cpu_us_per_msg\":%.3f,\"msgs_per_cpu_s\":%.0f,\"wall_msgs_per_s\":%.0f,"
           "\"write_calls_per_msg\":%.3f,\"checkpoints\":%ld,\"wal_frames_per_batch\":%.2f,"
           "\"wal_frames_per_msg\":%.3f,\"slices\":%ld,\"slice_avg_ms\":%.2f,\"slice_max_ms\":%.2f}\n",
           be->name, messages, batch, rooms, body_len, us, messages / cpu, messages / wall, calls,
           checkpoints, per_batch, per_msg, slices, slice_avg, slice_max * 1e3);
  } else {
    printf("store_bench %s: %ld messages in batches of %ld over %ld rooms, %ld-byte bodies\n", be->name,
           messages, batch, rooms, body_len);
    printf("  %.2f us CPU per message (%.0f messages per CPU second), %.0f messages/s wall\n", us,
           messages / cpu, messages / wall);
    if (calls >= 0) printf("  %.2f write calls per message, %ld checkpoints\n", calls, checkpoints);
    if (commits) printf("  WAL frames: %.1f per append batch, %.2f per message in all\n", per_batch, per_msg);
    if (slices)
      printf("  between batches: %ld steps that wrote (merge slices), %.1f ms each on average, %.1f ms at "
             "most\n",
             slices, slice_avg, slice_max * 1e3);
  }
  be->close(writer);
  if (ckpt) be->close(ckpt);
  free(items);
  free(names);
  free(body);
  config_free(&cfg);
  char cmd[64];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  return system(cmd) ? 1 : 0;
}
