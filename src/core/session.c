/* session: users and their sessions (open, resume, detach, end) and a session's presence in rooms. The
 * resume tokens go to the core's session store (session_ops; this process's table below by default);
 * online/offline and the grace of detached sessions to its presence backend (presence.h). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "core/internal.h"
#include "util/log.h"

/* ---- this process's session store: a table by token (ctx: the core) ---- */

static int session_local_create(void *ctx, struct session *s) {
  struct core *core = ctx;
  HASH_ADD(hh, core->sessions, token, strlen(s->token), s);
  return 0;
}

static int session_local_resume(void *ctx, const char *token, session_found_cb cb, void *ud) {
  struct core *core = ctx;
  struct session *s = NULL;
  HASH_FIND_STR(core->sessions, token, s);
  cb(ud, s);
  return 0;
}

static void session_local_end(void *ctx, struct session *s) {
  struct core *core = ctx;
  HASH_DEL(core->sessions, s);
}

static size_t session_local_count(void *ctx) { return HASH_COUNT(((struct core *)ctx)->sessions); }

const struct session_ops session_local_ops = {
    .name = "local",
    .sync = true,
    .create = session_local_create,
    .resume = session_local_resume,
    .end = session_local_end,
    .count = session_local_count,
};

/* ---- users and sessions ---- */

struct user *session_user_find(struct core *core, const char *id) {
  struct user *u = NULL;
  HASH_FIND_STR(core->users, id, u);
  return u;
}

static void user_unlink_session(struct core *core, struct session *s) {
  struct user *u = s->user;
  if (s->uprev)
    s->uprev->unext = s->unext;
  else
    u->sessions = s->unext;
  if (s->unext) s->unext->uprev = s->uprev;
  if (--u->nsessions == 0) {
    HASH_DEL(core->users, u);
    free(u->id);
    free(u->name);
    free(u);
  }
}

static void session_token_make(struct session *s) {
  uint8_t rnd[16];
  if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) /* practically never: mix in time and ids */
    for (size_t i = 0; i < sizeof rnd; i++)
      rnd[i] = (uint8_t)((core_mono_ms() >> (i % 8)) ^ (s->id * 131 + i));
  static const char hex[] = "0123456789abcdef";
  for (size_t i = 0; i < sizeof rnd; i++) {
    s->token[2 * i] = hex[rnd[i] >> 4];
    s->token[2 * i + 1] = hex[rnd[i] & 15];
  }
  s->token[2 * sizeof rnd] = 0;
}

struct session *session_open(struct core *core, struct conn *c, const char *client) {
  struct user *u = session_user_find(core, c->who.id);
  if (!u) {
    u = calloc(1, sizeof *u);
    if (!u || !(u->id = strdup(c->who.id)) || !(u->name = strdup(c->who.name))) {
      if (u) free(u->id);
      free(u);
      return NULL;
    }
    u->online_since = core_now_ms();
    u->guest = c->who.guest && !strncmp(c->who.id, "guest-", 6); /* not a name a hook gave the guest */
    HASH_ADD_KEYPTR(hh, core->users, u->id, strlen(u->id), u);
  }
  struct session *s = calloc(1, sizeof *s);
  if (!s) {
    if (!u->nsessions) {
      HASH_DEL(core->users, u);
      free(u->id);
      free(u->name);
      free(u);
    }
    return NULL;
  }
  s->id = ++core->next_session_id;
  session_token_make(s);
  s->user = u;
  s->conn = c;
  s->since = core_now_ms();
  snprintf(s->client, sizeof s->client, "%s", client ? client : "");
  s->unext = u->sessions;
  if (u->sessions) u->sessions->uprev = s;
  u->sessions = s;
  u->nsessions++;
  if (core->session_ops->create(core->session_ctx, s)) {
    user_unlink_session(core, s);
    free(s);
    return NULL;
  }
  c->sess = s;
  /* the user's first session: online (told to its watchers) */
  if (core->presence_ops->attach(core->presence_ctx, s, false, presence_went_online, core))
    log_warn("session %" PRIu64 " of %s: the presence backend refused it", s->id, u->id);
  return s;
}

int session_lookup(struct core *core, const char *token, session_found_cb cb, void *ud) {
  return core->session_ops->resume(core->session_ctx, token, cb, ud);
}

struct session *session_resume(struct core *core, struct conn *c, struct session *s) {
  if (!s || s->conn || s->ending || strcmp(s->user->id, c->who.id)) return NULL;
  if (core->presence_ops->attach(core->presence_ctx, s, true, presence_went_online, core)) return NULL;
  s->conn = c;
  c->sess = s;
  return s;
}

int session_guest_identity(struct session *s, struct identity *who) {
  if (!s || s->conn || s->ending || !s->user->guest || !who->guest) return 0;
  char *id = strdup(s->user->id), *name = strdup(s->user->name);
  if (!id || !name) {
    free(id);
    free(name);
    return -1;
  }
  free(who->id);
  free(who->name);
  who->id = id;
  who->name = name;
  return 1;
}

bool session_in(const struct session *s, const struct room *r) {
  for (uint32_t i = 0; i < s->nrooms; i++)
    if (s->rooms[i] == r) return true;
  return false;
}

/* Whether another attached session of the user is present in r (so typing may go on). */
static bool user_attached_in(const struct user *u, const struct room *r, const struct session *except) {
  for (const struct session *o = u->sessions; o; o = o->unext)
    if (o != except && o->conn && session_in(o, r)) return true;
  return false;
}

int session_enter(struct core *core, struct session *s, struct room *r) {
  if (session_in(s, r)) return 0;
  if (s->nrooms == s->caprooms) {
    uint32_t cap = s->caprooms ? s->caprooms * 2 : 4;
    struct room **rs = realloc(s->rooms, cap * sizeof *rs);
    if (!rs) return -1;
    s->rooms = rs;
    s->caprooms = cap;
  }
  bool first = false;
  if (room_presence_add(r, s->user->id, core_now_ms(), &first)) return -1;
  s->rooms[s->nrooms++] = r;
  if (first) {
    struct identity who = {.id = s->user->id, .name = s->user->name};
    room_notify(core, r, "join", &who);
  }
  return 0;
}

static void session_exit_at(struct core *core, struct session *s, uint32_t i) {
  struct room *r = s->rooms[i];
  s->rooms[i] = s->rooms[--s->nrooms];
  bool last = false;
  room_presence_remove(r, s->user->id, &last);
  if (!user_attached_in(s->user, r, s)) typing_clear(core, r, s->user->id);
  if (last) {
    struct identity who = {.id = s->user->id, .name = s->user->name};
    room_notify(core, r, "leave", &who);
    hook_notify(core, PARLEY_HOOK_LEAVE, s->conn, s->user->id, s->user->name, r->name);
  }
  room_release_if_unused(&core->rooms, r);
}

void session_exit(struct core *core, struct session *s, struct room *r) {
  for (uint32_t i = 0; i < s->nrooms; i++)
    if (s->rooms[i] == r) {
      session_exit_at(core, s, i);
      return;
    }
}

void session_detach(struct core *core, struct session *s) {
  if (s->ending || core->cfg->session_resume_ttl == 0) {
    session_end(core, s);
    return;
  }
  s->conn = NULL;
  core->presence_ops->detach(core->presence_ctx, s, core_mono_ms());
  /* Typing stays while the session may come back: the TTL or the session's end clears it. */
}

void session_end(struct core *core, struct session *s) {
  if (s->conn) s->conn->sess = NULL;
  /* the user's last session: offline, told to its rooms and watchers once */
  core->presence_ops->end(core->presence_ctx, s, presence_went_offline, core);
  while (s->nrooms) session_exit_at(core, s, s->nrooms - 1);
  free(s->rooms);
  core->session_ops->end(core->session_ctx, s);
  user_unlink_session(core, s);
  free(s);
}

void session_end_detached(struct core *core, const char *user_id) {
  struct user *u = session_user_find(core, user_id);
  /* u goes with its last session, which is then the last of the list: next is read before each end */
  for (struct session *s = u ? u->sessions : NULL, *next; s; s = next) {
    next = s->unext;
    if (!s->conn) session_end(core, s);
  }
}
