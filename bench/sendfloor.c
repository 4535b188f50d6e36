/* sendfloor: what one core's kernel charges for small frames over loopback TCP, with no server at all.
 *
 * A writer process (the "server") accepts N connections from a reader process (the "clients") and writes
 * fixed-size frames to them round-robin, `--per-write` frames per send() call, either as fast as it can or
 * at `--rate` frames/s. The reader epoll-reads every connection and checks each frame's timestamp. It
 * prints writes/s, frames/s delivered, the writer's CPU per write (user and system), the reader's CPU and
 * the latency percentiles of the frames.
 *
 * This is the floor under workloads B and C of bench/run: there every connection receives a few messages
 * per second, so each delivery is a write of its own, whatever the server does in user space.
 *
 *   taskset -c 0 build/bench/sendfloor --conns 10000 --per-write 1 --duration 3 --reader-cpu 1
 */
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_PER_WRITE 64
#define HIST_BUCKETS  4096 /* 25 µs buckets up to ~100 ms; above lands in the last one */
#define HIST_US       25

static long conns = 1000, per_write = 1, size = 64, reader_cpu = -1;
static int json; /* --json: one line of JSON instead of the text */
static double rate = 0, duration = 3;

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static double cpu_s(int who, int sys) {
  struct rusage ru;
  getrusage(who, &ru);
  struct timeval tv = sys ? ru.ru_stime : ru.ru_utime;
  return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

static void die(const char *what) {
  perror(what);
  exit(1);
}

/* reader: connect all, tell the parent through `ready`, read until the parent closes, print its part */
static void reader(int port, int ready_fd, int result_fd) {
  if (reader_cpu >= 0) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET((int)reader_cpu, &set);
    sched_setaffinity(0, sizeof set, &set);
  }
  uint64_t c0 = now_ns();
  double cu0 = cpu_s(RUSAGE_SELF, 0) + cpu_s(RUSAGE_SELF, 1);
  int ep = epoll_create1(0);
  /* per connection: bytes of the frame in progress and its first 8 bytes (the timestamp) */
  uint32_t *have = calloc((size_t)conns, sizeof *have);
  uint64_t *stamp = calloc((size_t)conns, sizeof *stamp);
  uint64_t *hist = calloc(HIST_BUCKETS, sizeof *hist);
  if (ep < 0 || !have || !stamp || !hist) die("reader setup");
  for (long i = 0; i < conns; i++) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(0x7f000001);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) < 0) die("connect");
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = (uint64_t)i << 32 | (uint32_t)fd};
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
  }
  double connect_s = (double)(now_ns() - c0) / 1e9;
  double connect_cpu = cpu_s(RUSAGE_SELF, 0) + cpu_s(RUSAGE_SELF, 1) - cu0;
  if (write(ready_fd, "r", 1) != 1) die("ready");
  uint64_t frames = 0, open = (uint64_t)conns;
  double u0 = cpu_s(RUSAGE_SELF, 0), s0 = cpu_s(RUSAGE_SELF, 1);
  char buf[65536];
  struct epoll_event evs[256];
  while (open) {
    int n = epoll_wait(ep, evs, 256, 10000);
    if (n <= 0) break;
    uint64_t t = now_ns();
    for (int k = 0; k < n; k++) {
      long i = (long)(evs[k].data.u64 >> 32);
      int fd = (int)(uint32_t)evs[k].data.u64;
      ssize_t r = read(fd, buf, sizeof buf);
      if (r <= 0) {
        close(fd);
        open--;
        continue;
      }
      for (ssize_t off = 0; off < r;) {
        /* the first 8 bytes of each frame are the writer's clock when it wrote the frame */
        if (have[i] < 8) {
          size_t take = (size_t)(8 - have[i]) < (size_t)(r - off) ? (size_t)(8 - have[i]) : (size_t)(r - off);
          memcpy((char *)&stamp[i] + have[i], buf + off, take);
          have[i] += (uint32_t)take, off += (ssize_t)take;
          continue;
        }
        size_t rest = (size_t)size - have[i];
        size_t take = rest < (size_t)(r - off) ? rest : (size_t)(r - off);
        have[i] += (uint32_t)take, off += (ssize_t)take;
        if (have[i] == (uint32_t)size) {
          uint64_t us = t > stamp[i] ? (t - stamp[i]) / 1000 : 0;
          uint64_t b = us / HIST_US;
          hist[b < HIST_BUCKETS ? b : HIST_BUCKETS - 1]++;
          frames++, have[i] = 0;
        }
      }
    }
  }
  double cpu = cpu_s(RUSAGE_SELF, 0) - u0 + cpu_s(RUSAGE_SELF, 1) - s0;
  double pct[4] = {0.50, 0.99, 0.999, 1.0}, out[4] = {0};
  uint64_t seen = 0;
  int p = 0;
  for (int b = 0; b < HIST_BUCKETS && p < 4; b++) {
    seen += hist[b];
    while (p < 4 && frames && (double)seen >= pct[p] * (double)frames)
      out[p++] = (double)(b + 1) * HIST_US / 1000.0;
  }
  dprintf(result_fd, "%llu %.3f %.2f %.2f %.2f %.2f %.4f %.4f\n", (unsigned long long)frames, cpu, out[0],
          out[1], out[2], out[3], connect_s, connect_cpu);
  exit(0);
}

int main(int argc, char **argv) {
  static const struct option opts[] = {{"conns", required_argument, 0, 'c'},
                                       {"per-write", required_argument, 0, 'k'},
                                       {"size", required_argument, 0, 's'},
                                       {"rate", required_argument, 0, 'r'},
                                       {"duration", required_argument, 0, 'd'},
                                       {"reader-cpu", required_argument, 0, 'p'},
                                       {"json", no_argument, 0, 'j'},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
  for (int o; (o = getopt_long(argc, argv, "", opts, NULL)) != -1;) {
    switch (o) {
    case 'c':
      conns = atol(optarg);
      break;
    case 'k':
      per_write = atol(optarg);
      break;
    case 's':
      size = atol(optarg);
      break;
    case 'r':
      rate = atof(optarg);
      break;
    case 'd':
      duration = atof(optarg);
      break;
    case 'p':
      reader_cpu = atol(optarg);
      break;
    case 'j':
      json = 1;
      break;
    default:
      fprintf(stderr,
              "usage: sendfloor [--conns N] [--per-write K] [--size BYTES] [--rate FRAMES/S (0: as fast as "
              "possible)] [--duration S] [--reader-cpu CPU] [--json]\n");
      return o == 'h' ? 0 : 2;
    }
  }
  if (conns < 1 || conns > 18000 || per_write < 1 || per_write > MAX_PER_WRITE || size < 16 || size > 4096 ||
      duration <= 0) {
    fprintf(stderr,
            "sendfloor: --conns 1..18000 (under the fd limit), --per-write 1..%d, --size 16..4096, "
            "--duration > 0\n",
            MAX_PER_WRITE);
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  int ls = socket(AF_INET, SOCK_STREAM, 0), one = 1;
  setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET};
  a.sin_addr.s_addr = htonl(0x7f000001);
  socklen_t al = sizeof a;
  if (bind(ls, (struct sockaddr *)&a, sizeof a) < 0 || listen(ls, 4096) < 0 ||
      getsockname(ls, (struct sockaddr *)&a, &al) < 0)
    die("listen");
  int ready[2], result[2];
  if (pipe(ready) < 0 || pipe(result) < 0) die("pipe");
  pid_t child = fork();
  if (child < 0) die("fork");
  if (child == 0) {
    close(ls);
    reader(ntohs(a.sin_port), ready[1], result[1]);
  }
  int *fds = calloc((size_t)conns, sizeof *fds);
  if (!fds) die("calloc");
  double au0 = cpu_s(RUSAGE_SELF, 0) + cpu_s(RUSAGE_SELF, 1);
  for (long i = 0; i < conns; i++) {
    if ((fds[i] = accept(ls, NULL, NULL)) < 0) die("accept");
    setsockopt(fds[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  double accept_cpu = cpu_s(RUSAGE_SELF, 0) + cpu_s(RUSAGE_SELF, 1) - au0;
  char c;
  if (read(ready[0], &c, 1) != 1) die("reader failed");

  char frames[MAX_PER_WRITE * 4096];
  memset(frames, 'x', sizeof frames);
  uint64_t writes = 0, sent = 0, full = 0;
  double u0 = cpu_s(RUSAGE_SELF, 0), s0 = cpu_s(RUSAGE_SELF, 1);
  uint64_t t0 = now_ns(), end = t0 + (uint64_t)(duration * 1e9);
  long next = 0;
  for (uint64_t t = t0; t < end; t = now_ns()) {
    /* frames due so far at --rate; as many as a short burst allows without it */
    uint64_t due = rate > 0 ? (uint64_t)((double)(t - t0) / 1e9 * rate) : sent + 1024;
    if (sent + (uint64_t)per_write > due) { /* sleep until the next write is due */
      uint64_t at = t0 + (uint64_t)((double)(sent + (uint64_t)per_write) / rate * 1e9);
      struct timespec ts = {(time_t)(at / 1000000000u), (long)(at % 1000000000u)};
      clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
      continue;
    }
    while (sent + (uint64_t)per_write <= due) {
      uint64_t stamp = now_ns();
      for (long f = 0; f < per_write; f++) memcpy(frames + f * size, &stamp, 8);
      ssize_t w = send(fds[next], frames, (size_t)(per_write * size), MSG_DONTWAIT);
      if (w != (ssize_t)(per_write * size)) {
        if (w < 0 && errno != EAGAIN) die("send");
        full++; /* a full socket buffer: this write's frames are skipped; a short write: finished below */
        if (w > 0) {
          /* finish the frames it started so the stream stays framed (blocking: the write counts) */
          for (ssize_t o = w; o < per_write * size;) {
            ssize_t m = send(fds[next], frames + o, (size_t)(per_write * size - o), 0);
            if (m <= 0) die("send rest");
            o += m;
          }
        } else {
          sent += (uint64_t)per_write;
          if (++next == conns) next = 0;
          continue;
        }
      }
      writes++, sent += (uint64_t)per_write;
      if (++next == conns) next = 0;
    }
  }
  double el = (double)(now_ns() - t0) / 1e9;
  double us = cpu_s(RUSAGE_SELF, 0) - u0, sy = cpu_s(RUSAGE_SELF, 1) - s0;
  for (long i = 0; i < conns; i++) close(fds[i]);
  char line[256] = {0};
  ssize_t n = read(result[0], line, sizeof line - 1);
  int st;
  waitpid(child, &st, 0);
  unsigned long long got = 0;
  double rcpu = 0, p50 = 0, p99 = 0, p999 = 0, mx = 0, connect_s = 0, connect_cpu = 0;
  if (n <= 0 || sscanf(line, "%llu %lf %lf %lf %lf %lf %lf %lf", &got, &rcpu, &p50, &p99, &p999, &mx,
                       &connect_s, &connect_cpu) != 8) {
    fprintf(stderr, "sendfloor: no result from the reader\n");
    return 1;
  }
  if (json)
    printf(
        "{\"conns\": %ld, \"size\": %ld, \"per_write\": %ld, \"rate\": %.0f, \"writes_per_s\": %.0f, "
        "\"frames_per_s\": %.0f, \"skipped\": %llu, \"writer_cpu_pct\": %.1f, \"user_us_per_write\": %.3f, "
        "\"sys_us_per_write\": %.3f, \"received_per_s\": %.0f, \"reader_cpu_pct\": %.1f, \"p50_ms\": %.3f, "
        "\"p99_ms\": %.3f, \"p999_ms\": %.3f, \"max_ms\": %.3f, \"connect_s\": %.4f, "
        "\"connect_cpu_us_per_conn\": %.2f, \"accept_cpu_us_per_conn\": %.2f}\n",
        conns, size, per_write, rate, (double)writes / el, (double)sent / el, (unsigned long long)full,
        (us + sy) / el * 100, writes ? us / (double)writes * 1e6 : 0, writes ? sy / (double)writes * 1e6 : 0,
        (double)got / el, rcpu / el * 100, p50, p99, p999, mx, connect_s, connect_cpu / (double)conns * 1e6,
        accept_cpu / (double)conns * 1e6);
  else {
    printf("conns %ld, %ld-byte frames, %ld per write, %s\n", conns, size, per_write,
           rate > 0 ? "paced" : "as fast as possible");
    printf("writer    %.0f writes/s, %.0f frames/s offered, %llu skipped (socket full); CPU %.0f%% (user "
           "%.2f µs + "
           "system %.2f µs per write)\n",
           (double)writes / el, (double)sent / el, (unsigned long long)full, (us + sy) / el * 100,
           writes ? us / (double)writes * 1e6 : 0, writes ? sy / (double)writes * 1e6 : 0);
    printf(
        "connect   %ld serial connects in %.3f s: connecting side %.1f µs CPU each, accepting side %.1f µs\n",
        conns, connect_s, connect_cpu / (double)conns * 1e6, accept_cpu / (double)conns * 1e6);
    printf("reader    %.0f frames/s received, CPU %.0f%%\n", (double)got / el, rcpu / el * 100);
    printf("latency   p50 %.2f ms  p99 %.2f ms  p99.9 %.2f ms  max %.2f ms (25 µs buckets)\n", p50, p99, p999,
           mx);
  }
  if (got != writes * (uint64_t)per_write) { /* every frame written must arrive, whole */
    fprintf(stderr, "sendfloor: %llu frames written, %llu received\n",
            (unsigned long long)(writes * (uint64_t)per_write), got);
    return 1;
  }
  return 0;
}
