/* presence: who is online, the grace of detached sessions, and last-seen. The core drives a presence
 * backend (struct presence_ops: this process's, presence_local.c, by default) at each change of a session
 * and asks it for users' status; it sends the resulting events itself (presence.c). Online/offline is per
 * user and told once per change (docs/protocol.md). All calls run on the loop thread. */
#ifndef PARLEY_CORE_PRESENCE_H
#define PARLEY_CORE_PRESENCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct core;
struct conn;
struct session;
struct request;

/* A change of s: went = the user went online (attach) / offline (end) with it, at wall-clock ms ts. */
typedef void (*presence_change_cb)(void *ud, struct session *s, bool went, uint64_t ts);
/* A detached session whose grace has run out: the callee ends it (session_end). */
typedef void (*presence_sweep_cb)(void *ud, struct session *s);

/* One user's status. name NULL: not known here (the id stands for it); last_seen 0: unknown or online. */
struct presence_status {
  const char *user_id, *name;
  bool online;
  uint64_t last_seen;
};
typedef void (*presence_status_cb)(void *ud, size_t i, const struct presence_status *st);
typedef void (*presence_done_cb)(void *ud);

struct presence_ops {
  const char *name;
  /* attach's and end's cb always run before they return (the core frees s after end); a backend whose
   * answers come later (a user who went offline through another node's sweep) needs an entry into the
   * core by user id, which is not there yet. sync true: query answers before it returns too; false: its
   * callbacks may come later from the loop, and ud must live till then. */
  bool sync;
  /* s (just opened, or resumed when resumed) has a connection here again. Returns 0 or a negative errno
   * (cb not called). */
  int (*attach)(void *ctx, struct session *s, bool resumed, presence_change_cb cb, void *ud);
  /* s lost its connection: the user stays online through s until session.resume_ttl after now_mono. */
  void (*detach)(void *ctx, struct session *s, uint64_t now_mono);
  /* s ends (grace over, kicked, logged out); cb before s is gone. */
  void (*end)(void *ctx, struct session *s, presence_change_cb cb, void *ud);
  /* cb for every detached session whose grace has run out by now_mono, oldest first. */
  void (*sweep)(void *ctx, uint64_t now_mono, presence_sweep_cb cb, void *ud);
  /* The status of n users: cb once per index (in any order, maybe later), then done once. Returns 0, or a
   * negative errno and nothing is called. */
  int (*query)(void *ctx, const char *const *ids, size_t n, presence_status_cb cb, presence_done_cb done,
               void *ud);
};

/* This process's presence (ctx: the core): detached sessions in a list by age, last-seen cached in
 * memory and kept in the store. */
extern const struct presence_ops presence_local_ops;

/* presence.c: what the core does on a change (ud: the core). */
void presence_went_online(void *ud, struct session *s, bool went, uint64_t ts);
void presence_went_offline(void *ud, struct session *s, bool went, uint64_t ts);
void presence_tick(struct core *core, uint64_t now_mono);
void presence_conn_closed(struct core *core, struct conn *c);
void op_presence(struct core *core, struct conn *c, struct request *req);
void presence_free_all(struct core *core);
/* Delete the stored state of every guest (at start: they were the previous run's). */
void presence_guests_forget_all(struct core *core);
/* presence_local.c: free the last-seen cache. */
void presence_local_free(struct core *core);

#endif
