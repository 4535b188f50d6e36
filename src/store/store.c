/* store: queues, threads and completions around a blocking backend (see store.h). */
#include "store/store.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"

struct worker {
  struct store *s;
  const char *name;
  pthread_t thread;
  bool started;
  void *ctx; /* backend connection, used only by this thread */
  pthread_mutex_t mu;
  pthread_cond_t cv;
  struct store_req *head, *tail; /* waiting requests */
  size_t len;
  bool stop;
  int ckpt_mark; /* writer: WAL size when it last asked for a checkpoint */
  void *(*main)(void *);
  struct log_sink *log; /* the opening thread's (the server's): this thread logs there too */
};

/* Requests submitted during one loop iteration, handed to a worker together (group commit). */
struct staged {
  struct store_req *head, *tail;
};

struct store {
  uv_loop_t *loop;
  uv_async_t async;
  uv_check_t handoff;                 /* after each iteration's I/O: staged requests go to the workers */
  struct staged to_writer, to_reader; /* loop thread only */
  const struct store_backend *be;
  const struct config *cfg;
  struct worker writer, reader;
  struct worker ckpt;   /* checkpoints, when the backend has them (SQLite) */
  int ckpt_want;        /* under ckpt.mu: 0 none, 1 passive, 2 hard */
  atomic_int ckpt_left; /* WAL frames the last background checkpoint could not copy (-1: none yet) */
  pthread_mutex_t done_mu;
  struct store_req *done_head, *done_tail;
  size_t pending_appends; /* loop thread only */
  atomic_bool degraded;
  _Atomic uint64_t commits, appended, checkpoints, wal_restarts, append_fails;
  _Atomic uint64_t grouped; /* small writes committed in a group of them (run_group) */
  bool closed;
};

static void on_handoff(uv_check_t *h);
static void ask_checkpoint(struct worker *w);

/* Which thread runs a request. The room list is read on the writer, behind the membership changes
 * submitted before it (join, leave with forget), so a client reads its own writes. */
static bool is_write(enum store_req_kind k) {
  return k == STORE_REQ_APPEND || k == STORE_REQ_LAST_SEEN_SET || k == STORE_REQ_RETAIN ||
         k == STORE_REQ_MEMBER_SET || k == STORE_REQ_READ_SET || k == STORE_REQ_ROOMS ||
         k == STORE_REQ_FORGET_USER;
}

static void complete(struct store *s, struct store_req *first, struct store_req *last) {
  last->next = NULL;
  pthread_mutex_lock(&s->done_mu);
  if (s->done_tail)
    s->done_tail->next = first;
  else
    s->done_head = first;
  s->done_tail = last;
  pthread_mutex_unlock(&s->done_mu);
  uv_async_send(&s->async);
}

static void set_err(struct store_req *r, int err, const char *msg) {
  r->err = err;
  snprintf(r->errmsg, sizeof r->errmsg, "%s", msg ? msg : "");
}

/* Run a run of consecutive appends as one backend batch (group commit). */
static void run_appends(struct worker *w, struct store_req *first, size_t n) {
  struct store_append stack[64];
  struct store_append *items = n <= 64 ? stack : malloc(n * sizeof *items);
  struct store_req *r = first;
  if (!items) {
    for (size_t i = 0; i < n; i++, r = r->next) set_err(r, STORE_ENOMEM, "out of memory");
    return;
  }
  for (size_t i = 0; i < n; i++, r = r->next) items[i] = r->u.append;
  char err[160] = "";
  int rc = w->s->be->append(w->ctx, items, n, err, sizeof err);
  atomic_fetch_add_explicit(&w->s->commits, 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&w->s->appended, n, memory_order_relaxed);
  if (rc) atomic_fetch_add_explicit(&w->s->append_fails, 1, memory_order_relaxed);
  if (rc == STORE_OK) {
    if (atomic_exchange(&w->s->degraded, false)) log_warn("store: writes succeed again");
  } else if (!atomic_exchange(&w->s->degraded, true)) {
    log_error("store: append of %zu messages failed: %s", n, err);
  }
  r = first;
  for (size_t i = 0; i < n; i++, r = r->next) {
    if (rc == STORE_OK) r->u.append = items[i];
    set_err(r, rc, rc ? err : NULL);
  }
  if (items != stack) free(items);
}

static void run_one(struct worker *w, struct store_req *r) {
  const struct store_backend *be = w->s->be;
  int rc = STORE_EINVAL;
  switch (r->kind) {
  case STORE_REQ_LAST_SEEN_SET:
    rc = be->set_last_seen(w->ctx, r->u.last_seen.user_id, r->u.last_seen.ts);
    break;
  case STORE_REQ_LAST_SEEN_GET:
    rc = be->get_last_seen(w->ctx, r->u.last_seen.user_id, &r->u.last_seen.ts);
    break;
  case STORE_REQ_RETAIN:
    rc = be->retain(w->ctx, r->u.retain.pattern, r->u.retain.ts_before, r->u.retain.keep_count,
                    &r->u.retain.deleted);
    break;
  case STORE_REQ_READ:
    rc = be->read(w->ctx, r->u.read.room, r->u.read.after, r->u.read.before, r->u.read.limit,
                  r->u.read.newest, &r->u.read.out);
    break;
  case STORE_REQ_HEAD:
    rc = be->head(w->ctx, r->u.head.room, &r->u.head.seq);
    break;
  case STORE_REQ_MEMBER_SET:
    rc = be->member_set(w->ctx, r->u.member.user_id, r->u.member.room, r->u.member.member);
    break;
  case STORE_REQ_READ_SET:
    rc = be->read_set(w->ctx, r->u.marker.user_id, r->u.marker.room, r->u.marker.seq, &r->u.marker.read);
    break;
  case STORE_REQ_ROOMS:
    rc = be->rooms_of(w->ctx, r->u.rooms.user_id, &r->u.rooms.out);
    break;
  case STORE_REQ_FORGET_USER:
    rc = be->forget_user(w->ctx, r->u.forget.user_id, r->u.forget.prefix);
    break;
  case STORE_REQ_APPEND:
    break; /* batched in run_appends */
  }
  set_err(r, rc, rc ? "storage operation failed" : NULL);
}

static bool is_append(enum store_req_kind k) { return k == STORE_REQ_APPEND; }

/* Small writes: a few rows each, grouped into one transaction when several wait together (run_group). */
static bool is_small_write(enum store_req_kind k) {
  return k == STORE_REQ_MEMBER_SET || k == STORE_REQ_READ_SET || k == STORE_REQ_LAST_SEEN_SET ||
         k == STORE_REQ_FORGET_USER;
}

/* How many requests from r on are of a kind `same` accepts; *after: the first one that is not. */
static size_t run_of(struct store_req *r, bool (*same)(enum store_req_kind), struct store_req **after) {
  size_t n = 0;
  for (; r && same(r->kind); r = r->next) n++;
  *after = r;
  return n;
}

/* n (>= 2) consecutive small writes in one transaction of the backend's (be->group). Each keeps its own
 * result; if the transaction cannot start or commit, every write of the run reports the error. */
static void run_group(struct worker *w, struct store_req *first, size_t n) {
  const struct store_backend *be = w->s->be;
  int rc = be->group(w->ctx, true);
  struct store_req *r = first;
  for (size_t i = 0; i < n; i++, r = r->next) {
    if (rc)
      set_err(r, rc, "storage operation failed");
    else
      run_one(w, r);
  }
  if (rc) return;
  rc = be->group(w->ctx, false);
  if (!rc) atomic_fetch_add_explicit(&w->s->grouped, n, memory_order_relaxed);
  r = first;
  for (size_t i = 0; i < n; i++, r = r->next)
    if (rc && !r->err) set_err(r, rc, "storage operation failed");
}

static void *worker_main(void *arg) {
  struct worker *w = arg;
  size_t batch_max = (size_t)w->s->cfg->store_batch_max;
  bool more = false; /* the backend has work between batches left (after_batch returned 1) */
  for (;;) {
    pthread_mutex_lock(&w->mu);
    while (!w->head && !w->stop) {
      if (more) { /* idle: carry on with it, looking at the queue after each step */
        pthread_mutex_unlock(&w->mu);
        more = w->s->be->after_batch(w->ctx) > 0;
        pthread_mutex_lock(&w->mu);
        continue;
      }
      pthread_cond_wait(&w->cv, &w->mu);
    }
    if (!w->head) { /* stop, and nothing left */
      pthread_mutex_unlock(&w->mu);
      return NULL;
    }
    /* Take up to batch_max requests in order. */
    struct store_req *first = w->head, *last = first;
    size_t n = 1;
    while (last->next && n < batch_max) {
      last = last->next;
      n++;
    }
    w->head = last->next;
    if (!w->head) w->tail = NULL;
    w->len -= n;
    pthread_mutex_unlock(&w->mu);
    last->next = NULL;

    for (struct store_req *r = first, *after; r;) {
      size_t k;
      if ((k = run_of(r, is_append, &after))) {
        run_appends(w, r, k);
        r = after;
      } else if (w->s->be->group && (k = run_of(r, is_small_write, &after)) >= 2) {
        run_group(w, r, k);
        r = after;
      } else {
        run_one(w, r);
        r = r->next;
      }
    }
    /* run_appends may not relink, so the list from first to last is intact. */
    complete(w->s, first, last);
    if (w == &w->s->writer) {
      if (w->s->be->after_batch) more = w->s->be->after_batch(w->ctx) > 0;
      ask_checkpoint(w);
    }
  }
}

/* After a batch: when the WAL has grown by store.sqlite.checkpoint_pages since the last request, wake the
 * checkpoint thread, which copies the WAL into the database beside the writer. SQLite starts the WAL over
 * only when a checkpoint has copied all of it before the next write; under constant writes the background
 * one never quite gets there, so once the WAL has reached store.sqlite.wal_reset_pages and a background
 * checkpoint has left little behind, the writer copies the rest itself between two batches and the WAL
 * starts over. That copy is short, but it syncs the WAL and the database file, and under heavy writes those
 * syncs took 10-60 ms (the appends wait meanwhile): done after every checkpoint, as it was before
 * wal_reset_pages, it put the ack p99 of 10k durable sends/s on one core at 27-31 ms (15-18 ms with the
 * default). A WAL that still grows 8 steps beyond that gets a hard checkpoint (the writer waits for all of
 * it). */
static void ask_checkpoint(struct worker *w) {
  struct store *s = w->s;
  if (!s->ckpt.started) return;
  int step = (int)s->cfg->store_sqlite_checkpoint_pages, reset = (int)s->cfg->store_sqlite_wal_reset_pages;
  int left = atomic_exchange(&s->ckpt_left, -1), pages = s->be->wal_pages(w->ctx);
  if (pages >= reset && left >= 0 && left <= step / 4) {
    s->be->checkpoint(w->ctx, false, &left);
    pages = s->be->wal_pages(w->ctx);
    atomic_fetch_add_explicit(&s->wal_restarts, 1, memory_order_relaxed);
  }
  if (pages < w->ckpt_mark) w->ckpt_mark = 0; /* the WAL started over */
  if (pages < w->ckpt_mark + step) return;
  w->ckpt_mark = pages;
  pthread_mutex_lock(&s->ckpt.mu);
  int hard = (reset > step ? reset : step) + 8 * step;
  int want = pages >= hard ? 2 : 1;
  if (want > s->ckpt_want) s->ckpt_want = want;
  pthread_cond_signal(&s->ckpt.cv);
  pthread_mutex_unlock(&s->ckpt.mu);
}

static void *checkpoint_main(void *arg) {
  struct worker *w = arg;
  struct store *s = w->s;
  pthread_mutex_lock(&w->mu);
  for (;;) {
    while (!s->ckpt_want && !w->stop) pthread_cond_wait(&w->cv, &w->mu);
    if (w->stop) break;
    int want = s->ckpt_want;
    s->ckpt_want = 0;
    pthread_mutex_unlock(&w->mu);
    int left = 0;
    s->be->checkpoint(w->ctx, want == 2, &left);
    atomic_store(&s->ckpt_left, left);
    atomic_fetch_add_explicit(&s->checkpoints, 1, memory_order_relaxed);
    pthread_mutex_lock(&w->mu);
  }
  pthread_mutex_unlock(&w->mu);
  return NULL;
}

static void on_async(uv_async_t *h) {
  struct store *s = h->data;
  pthread_mutex_lock(&s->done_mu);
  struct store_req *r = s->done_head;
  s->done_head = s->done_tail = NULL;
  pthread_mutex_unlock(&s->done_mu);
  while (r) {
    struct store_req *next = r->next;
    if (r->kind == STORE_REQ_APPEND) s->pending_appends--;
    r->done(r);
    r = next;
  }
}

static void *worker_entry(void *arg) {
  struct worker *w = arg;
  log_bind(w->log);
  return w->main(w);
}

static int worker_start(struct store *s, struct worker *w, const char *name, void *(*fn)(void *), char *err,
                        size_t errlen) {
  w->s = s;
  w->name = name;
  w->main = fn;
  w->log = log_bound();
  pthread_mutex_init(&w->mu, NULL);
  pthread_cond_init(&w->cv, NULL);
  if (s->be->open(s->cfg, &w->ctx, err, errlen)) return -1;
  if (pthread_create(&w->thread, NULL, worker_entry, w)) {
    snprintf(err, errlen, "cannot start the store %s thread", name);
    s->be->close(w->ctx);
    w->ctx = NULL;
    return -1;
  }
  char tname[16];
  snprintf(tname, sizeof tname, "store-%s", name);
  pthread_setname_np(w->thread, tname);
  w->started = true;
  return 0;
}

static void worker_stop(struct worker *w) {
  if (!w->started) return;
  pthread_mutex_lock(&w->mu);
  w->stop = true;
  pthread_cond_signal(&w->cv);
  pthread_mutex_unlock(&w->mu);
  pthread_join(w->thread, NULL);
  w->started = false;
  w->s->be->close(w->ctx);
  w->ctx = NULL;
}

static void free_on_close(uv_handle_t *h) {
  struct store *s = h->data;
  pthread_mutex_destroy(&s->done_mu);
  free(s);
}

struct store *store_open(uv_loop_t *loop, const struct config *cfg, char *err, size_t errlen) {
  struct store *s = calloc(1, sizeof *s);
  if (!s) {
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  s->loop = loop;
  s->cfg = cfg;
  s->be = store_backend_for(cfg);
  atomic_init(&s->ckpt_left, -1);
  pthread_mutex_init(&s->done_mu, NULL);
  if (uv_async_init(loop, &s->async, on_async)) {
    snprintf(err, errlen, "uv_async_init failed");
    free(s);
    return NULL;
  }
  s->async.data = s;
  if (worker_start(s, &s->writer, "writer", worker_main, err, errlen) ||
      worker_start(s, &s->reader, "reader", worker_main, err, errlen) ||
      (s->be->checkpoint && worker_start(s, &s->ckpt, "ckpt", checkpoint_main, err, errlen))) {
    worker_stop(&s->writer);
    worker_stop(&s->reader);
    s->closed = true;
    uv_close((uv_handle_t *)&s->async, free_on_close); /* freed when the loop runs next */
    return NULL;
  }
  uv_check_init(loop, &s->handoff);
  s->handoff.data = s;
  uv_check_start(&s->handoff, on_handoff);
  log_info("store: %s backend open", s->be->name);
  return s;
}

/* Give a worker everything staged for it, with one lock and one wake-up: the sends of one loop iteration
 * reach the writer together and commit in one transaction. */
static void handoff(struct worker *w, struct staged *st) {
  if (!st->head) return;
  pthread_mutex_lock(&w->mu);
  if (w->tail)
    w->tail->next = st->head;
  else
    w->head = st->head;
  w->tail = st->tail;
  for (struct store_req *r = st->head; r; r = r->next) w->len++;
  pthread_cond_signal(&w->cv);
  pthread_mutex_unlock(&w->mu);
  st->head = st->tail = NULL;
}

static void on_handoff(uv_check_t *h) {
  struct store *s = h->data;
  handoff(&s->writer, &s->to_writer);
  handoff(&s->reader, &s->to_reader);
}

int store_submit(struct store *s, struct store_req *req) {
  if (s->closed) return STORE_ECLOSED;
  if (req->kind == STORE_REQ_APPEND) {
    if (s->pending_appends >= (size_t)s->cfg->store_queue_max) return STORE_EOVERLOADED;
    s->pending_appends++;
  }
  struct staged *st = is_write(req->kind) ? &s->to_writer : &s->to_reader;
  req->next = NULL;
  req->err = 0;
  req->errmsg[0] = 0;
  /* Submitted outside an I/O callback (a timer, the embedding application), the loop could sleep in poll
   * before the hand-off runs: make sure it wakes. One eventfd write per iteration at most. */
  if (!s->to_writer.head && !s->to_reader.head) uv_async_send(&s->async);
  if (st->tail)
    st->tail->next = req;
  else
    st->head = req;
  st->tail = req;
  return 0;
}

size_t store_pending_appends(const struct store *s) { return s->pending_appends; }

void store_stats(const struct store *s, struct store_stats *out) {
  struct store *m = (struct store *)s; /* atomic loads take non-const pointers */
  out->commits = atomic_load_explicit(&m->commits, memory_order_relaxed);
  out->appended = atomic_load_explicit(&m->appended, memory_order_relaxed);
  out->checkpoints = atomic_load_explicit(&m->checkpoints, memory_order_relaxed);
  out->wal_restarts = atomic_load_explicit(&m->wal_restarts, memory_order_relaxed);
  out->append_fails = atomic_load_explicit(&m->append_fails, memory_order_relaxed);
  out->grouped = atomic_load_explicit(&m->grouped, memory_order_relaxed);
}

void store_close(struct store *s) {
  if (!s || s->closed) return;
  s->closed = true;
  on_handoff(&s->handoff); /* what was submitted in this iteration is committed too */
  worker_stop(&s->writer);
  worker_stop(&s->reader);
  worker_stop(&s->ckpt);
  on_async(&s->async); /* deliver what finished after the last wake-up */
  uv_close((uv_handle_t *)&s->async, NULL);
  uv_close((uv_handle_t *)&s->handoff, NULL);
}

void store_free(struct store *s) {
  if (!s) return;
  pthread_mutex_destroy(&s->done_mu);
  free(s);
}
