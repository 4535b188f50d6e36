/* session: what a connection said hello as. A session outlives its connection by session.resume_ttl (it
 * is detached, and a hello with its resume token attaches it again); a user is online while it has a
 * session. The resume tokens are kept by a session store (struct session_ops: this process's table by
 * default, session.c); who is online and the grace of detached sessions are presence.h's business. */
#ifndef PARLEY_CORE_SESSION_H
#define PARLEY_CORE_SESSION_H

#include <stdbool.h>
#include <stdint.h>
#include <uthash.h>

struct core;
struct conn;
struct room;
struct identity;
struct session;

/* A user with at least one session on this server. */
struct user {
  char *id, *name; /* owned */
  uint32_t nsessions;
  bool guest;            /* a guest's identity: it ends with the user's last session (presence.c) */
  uint64_t online_since; /* wall-clock ms */
  struct session *sessions;
  UT_hash_handle hh;
};

struct session {
  uint64_t id;
  char token[40]; /* resume token: random, hex */
  struct user *user;
  struct conn *conn;      /* NULL while detached */
  uint64_t detached_mono; /* when it was detached */
  bool ending;            /* end (not detach) when the connection closes: kicked, logged out */
  struct room **rooms;    /* rooms the session is present in */
  uint32_t nrooms, caprooms;
  char client[65];
  uint64_t since;                /* wall-clock ms */
  struct session *unext, *uprev; /* the user's sessions */
  struct session *dnext, *dprev; /* detached sessions, oldest first (presence_local.c) */
  UT_hash_handle hh;             /* by token (session.c's table) */
};

/* The answer of a lookup by resume token: the session, or NULL when there is none. */
typedef void (*session_found_cb)(void *ud, struct session *s);

/* Where resume tokens are kept. All calls run on the loop thread. */
struct session_ops {
  const char *name;
  /* true: cb runs before resume returns; false: it may come later from the loop (ud must live till then). */
  bool sync;
  /* s is new: keep it under s->token (set by the core). Returns 0 or a negative errno. */
  int (*create)(void *ctx, struct session *s);
  /* cb(ud, the session with this token, or NULL) once. Whether it may be resumed is the core's call
   * (session.c). Returns 0, or a negative errno and cb is not called. */
  int (*resume)(void *ctx, const char *token, session_found_cb cb, void *ud);
  /* s ended: its token finds nothing any more. */
  void (*end)(void *ctx, struct session *s);
  /* Sessions kept (attached or detached), for the metrics. */
  size_t (*count)(void *ctx);
};

/* This process's table (ctx: the core). */
extern const struct session_ops session_local_ops;

struct session *session_open(struct core *core, struct conn *c, const char *client);
/* The session of a hello's resume token: cb(ud, session or NULL) once, before this returns when the
 * store is sync, else later. Returns 0, or a negative errno and cb is not called. */
int session_lookup(struct core *core, const char *token, session_found_cb cb, void *ud);
/* Reattach s (what session_lookup found; may be NULL) to c if it is detached and c's user's; NULL otherwise.
 */
struct session *session_resume(struct core *core, struct conn *c, struct session *s);
/* A guest has no token to prove who it was: the resume token of its detached session does. When s (what
 * session_lookup found; may be NULL) is such a session and who is a (new) guest, who takes that guest's id
 * and name and 1 is returned; 0: not a resumable guest session (who unchanged); -1: out of memory. */
int session_guest_identity(struct session *s, struct identity *who);
void session_detach(struct core *core, struct session *s);
void session_end(struct core *core, struct session *s);
/* Make the session present in r (join event to others if the user's first); -1 when out of memory. */
int session_enter(struct core *core, struct session *s, struct room *r);
void session_exit(struct core *core, struct session *s, struct room *r);
bool session_in(const struct session *s, const struct room *r);
/* End every detached session of user_id (kicked). */
void session_end_detached(struct core *core, const char *user_id);
/* The user with at least one session (attached or detached) here, or NULL. */
struct user *session_user_find(struct core *core, const char *id);

#endif
