/* presence_local: this process's presence backend (ctx: the core). A user is online while it has a
 * session here; detached sessions wait in a list by age (the grace is session.resume_ttl, the same for
 * all, so the oldest is always due first); last-seen is cached in memory (bounded) and kept in the store. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "util/log.h"

#define SEEN_MAX 100000

/* ---- last seen ---- */

static void seen_set(struct core *core, const char *user_id, uint64_t ts) {
  struct last_seen *ls = NULL;
  HASH_FIND_STR(core->seen, user_id, ls);
  if (!ls) {
    if (HASH_COUNT(core->seen) >= SEEN_MAX) { /* bounded: drop the oldest entry (insertion order) */
      struct last_seen *old = core->seen;
      HASH_DEL(core->seen, old);
      free(old->user_id);
      free(old);
    }
    ls = calloc(1, sizeof *ls);
    if (!ls || !(ls->user_id = strdup(user_id))) {
      free(ls);
      return;
    }
    HASH_ADD_KEYPTR(hh, core->seen, ls->user_id, strlen(ls->user_id), ls);
  }
  ls->ts = ts;
}

static uint64_t seen_get(struct core *core, const char *user_id) {
  struct last_seen *ls = NULL;
  HASH_FIND_STR(core->seen, user_id, ls);
  return ls ? ls->ts : 0;
}

struct pending_seen_write {
  struct store_req req;
  char *user_id;
};

static void seen_write_done(struct store_req *req) {
  struct pending_seen_write *p = (struct pending_seen_write *)req;
  if (req->err) log_warn("storing last-seen of %s failed: %s", p->user_id, req->errmsg);
  free(p->user_id);
  free(p);
}

static void seen_store(struct core *core, const char *user_id, uint64_t ts) {
  seen_set(core, user_id, ts);
  if (!core->store) return;
  struct pending_seen_write *p = calloc(1, sizeof *p);
  if (!p || !(p->user_id = strdup(user_id))) {
    free(p);
    return;
  }
  p->req.kind = STORE_REQ_LAST_SEEN_SET;
  p->req.done = seen_write_done;
  p->req.u.last_seen.user_id = p->user_id;
  p->req.u.last_seen.ts = ts;
  if (store_submit(core->store, &p->req)) seen_write_done(&p->req);
}

void presence_local_free(struct core *core) {
  struct last_seen *ls, *lt;
  HASH_ITER(hh, core->seen, ls, lt) {
    HASH_DEL(core->seen, ls);
    free(ls->user_id);
    free(ls);
  }
}

/* ---- sessions coming and going ---- */

static void detached_unlink(struct core *core, struct session *s) {
  if (s->dprev)
    s->dprev->dnext = s->dnext;
  else if (core->det_head == s)
    core->det_head = s->dnext;
  if (s->dnext)
    s->dnext->dprev = s->dprev;
  else if (core->det_tail == s)
    core->det_tail = s->dprev;
  s->dprev = s->dnext = NULL;
}

static int presence_local_attach(void *ctx, struct session *s, bool resumed, presence_change_cb cb,
                                 void *ud) {
  struct core *core = ctx;
  if (resumed) detached_unlink(core, s);
  /* the core links a new session into its user first: the only one means the user was offline */
  cb(ud, s, !resumed && s->user->nsessions == 1, core_now_ms());
  return 0;
}

static void presence_local_detach(void *ctx, struct session *s, uint64_t now_mono) {
  struct core *core = ctx;
  s->detached_mono = now_mono;
  s->dprev = core->det_tail;
  s->dnext = NULL;
  if (core->det_tail)
    core->det_tail->dnext = s;
  else
    core->det_head = s;
  core->det_tail = s;
}

static void presence_local_end(void *ctx, struct session *s, presence_change_cb cb, void *ud) {
  struct core *core = ctx;
  if (!s->conn) detached_unlink(core, s);
  bool last = s->user->nsessions == 1;
  uint64_t now = core_now_ms();
  if (last && !s->user->guest) seen_store(core, s->user->id, now); /* a guest's identity ends: none */
  cb(ud, s, last, now);
}

static void presence_local_sweep(void *ctx, uint64_t now_mono, presence_sweep_cb cb, void *ud) {
  struct core *core = ctx;
  uint64_t ttl = (uint64_t)core->cfg->session_resume_ttl;
  /* cb ends the session, which takes it off the list */
  while (core->det_head && now_mono - core->det_head->detached_mono >= ttl) cb(ud, core->det_head);
}

/* ---- status queries ---- */

struct local_query;
struct seen_read {
  struct store_req req; /* first: the store hands it back */
  struct local_query *q;
  size_t slot;
  char *user_id; /* owned */
};

/* A query that waits for last-seen reads; freed by the last one. */
struct local_query {
  struct core *core;
  presence_status_cb cb;
  presence_done_cb done;
  void *ud;
  uint32_t waiting, nreads;
  struct seen_read reads[]; /* one per user whose last-seen must come from the store */
};

static void local_query_finish(struct local_query *q) {
  if (q->waiting) return;
  q->done(q->ud);
  for (uint32_t i = 0; i < q->nreads; i++) free(q->reads[i].user_id);
  free(q);
}

static void local_seen_done(struct store_req *req) {
  struct seen_read *sr = (struct seen_read *)req;
  struct local_query *q = sr->q;
  if (!req->err && req->u.last_seen.ts) {
    seen_set(q->core, sr->user_id, req->u.last_seen.ts);
    struct presence_status st = {.user_id = sr->user_id, .last_seen = req->u.last_seen.ts};
    q->cb(q->ud, sr->slot, &st);
  }
  q->waiting--;
  local_query_finish(q);
}

static int presence_local_query(void *ctx, const char *const *ids, size_t n, presence_status_cb cb,
                                presence_done_cb done, void *ud) {
  struct core *core = ctx;
  struct local_query *q = calloc(1, sizeof *q + n * sizeof(struct seen_read));
  if (!q) return -ENOMEM;
  *q = (struct local_query){.core = core, .cb = cb, .done = done, .ud = ud};
  for (size_t i = 0; i < n; i++) {
    struct user *u = session_user_find(core, ids[i]);
    struct presence_status st = {.user_id = ids[i], .name = u ? u->name : NULL, .online = u != NULL};
    if (!u) st.last_seen = seen_get(core, ids[i]);
    cb(ud, i, &st); /* what is known now; a store read may add last_seen */
    if (u || st.last_seen || !core->store) continue;
    struct seen_read *sr = &q->reads[q->nreads];
    if (!(sr->user_id = strdup(ids[i]))) continue; /* out of memory: last_seen stays unknown */
    sr->q = q;
    sr->slot = i;
    sr->req.kind = STORE_REQ_LAST_SEEN_GET;
    sr->req.done = local_seen_done;
    sr->req.u.last_seen.user_id = sr->user_id;
    q->nreads++;
  }
  uint32_t submitted = 0;
  for (uint32_t k = 0; k < q->nreads; k++)
    if (store_submit(core->store, &q->reads[k].req) == 0) submitted++;
  q->waiting = submitted; /* a read the store refused just leaves last_seen unknown */
  local_query_finish(q);
  return 0;
}

const struct presence_ops presence_local_ops = {
    .name = "local",
    .sync = true,
    .attach = presence_local_attach,
    .detach = presence_local_detach,
    .end = presence_local_end,
    .sweep = presence_local_sweep,
    .query = presence_local_query,
};
