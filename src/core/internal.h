/* internal: the core's private structures, shared by the core/ sources only. */
#ifndef PARLEY_CORE_INTERNAL_H
#define PARLEY_CORE_INTERNAL_H

#include <jansson.h>
#include <uthash.h>

#include "auth/access.h"
#include "auth/auth.h"
#include "auth/ratelimit.h"
#include "core/core.h"
#include "core/presence.h"
#include "core/room.h"
#include "core/session.h"
#include "hooks/hooks.h"
#include "proto/format.h"
#include "proto/request.h"
#include "store/store.h"

/* Connections watching a user's presence (presence op with users). */
struct watch {
  char *user_id;
  uint64_t *conns; /* connection ids */
  uint32_t n, cap;
  UT_hash_handle hh;
};

struct last_seen {
  char *user_id;
  uint64_t ts;
  UT_hash_handle hh;
};

struct conn {
  uint64_t id;
  const struct format *fmt; /* the connection's wire format (registered: outlives the conn) */
  struct identity who;
  const struct conn_tx *tx;
  void *tx_ctx;
  struct member **rooms; /* memberships (owned by their rooms) */
  uint32_t nrooms, caprooms;
  uint32_t njoining; /* joins waiting for the store or for the queue to drain */
  bool authed;
  bool closing;                /* the transport refused a frame or we asked it to close: send nothing more */
  struct pending_join *replay; /* a replay waiting for the outbound queue to drain (owned) */
  struct session *sess;
  char **watching; /* user ids this connection watches (owned) */
  uint32_t nwatching;
  uint32_t mark;                                         /* fan-out dedupe (core->mark) */
  int64_t deadline;                                      /* wall ms when the token expires (0: never) */
  struct rl_bucket rl_send, rl_join, rl_typing, rl_read; /* per-connection rate limits */
  struct rl_strikes strikes;                             /* rate-limit rejections, for the graded response */
  bool ip_counted;                                       /* holds a slot of limits.max_connections_per_ip */
  uint64_t opened_mono;
  struct conn *pend_prev, *pend_next; /* awaiting hello, oldest first */
  UT_hash_handle hh;
  char peer[48];
};

struct core {
  const struct config *cfg;
  struct store *store;     /* NULL: no persistence, every room is ephemeral */
  const struct auth *auth; /* token verification (borrowed; server.c swaps it on reload) */
  struct rl_table *rl_send_user, *rl_send_ip, *rl_connect_ip; /* shared rate limits (owned) */
  struct rl_conns *ip_conns;                                  /* connections per IP (owned) */
  uint64_t expiry_last;                                       /* monotonic ms of the last expiry scan */
  struct hooks *hooks;                                        /* borrowed: scripts and plugins (NULL: none) */
  int depth; /* > 0 while a request or hook runs: hook actions wait in `deferred` */
  struct deferred *deferred, *deferred_tail;
  struct conn *conns; /* uthash by id */
  struct conn *pend_head, *pend_tail;
  struct room_set rooms;
  struct metrics metrics;
  uint64_t next_conn_id;
  uint32_t mid_counter;            /* the last message id's counter (message_mid_format) */
  const struct broker_ops *broker; /* fan-out across nodes (broker.h); the local one by default */
  void *broker_ctx;
  uint64_t retention_last;               /* monotonic ms of the last retention pass */
  struct user *users;                    /* uthash by id */
  const struct session_ops *session_ops; /* where resume tokens are kept (session.h); local by default */
  void *session_ctx;
  const struct presence_ops
      *presence_ops; /* who is online, grace, last-seen (presence.h); local by default */
  void *presence_ctx;
  struct session *sessions;            /* session_local_ops: uthash by token */
  struct session *det_head, *det_tail; /* presence_local_ops: detached sessions, oldest first */
  struct watch *watches;               /* uthash by user id */
  struct last_seen *seen;    /* presence_local_ops: uthash by user id, last-seen of users gone offline */
  struct room *typing_rooms; /* rooms with typists or a pending typing event */
  uint64_t next_session_id;
  uint32_t mark;
  buf_t send_json; /* op_send's: the body of the send being handled (messages.c) */
};

/* A publish or kick asked for by a hook while the core was busy; done when the current work ends. */
struct deferred {
  struct deferred *next;
  bool kick;
  char *target; /* room (publish) or user id (kick), owned */
  char *text;   /* body JSON (publish) or reason (kick), owned */
};

/* An event on its way to many connections: encoded at most once per wire format in use, on first need. */
struct outev {
  json_t *doc;                /* the event as a tree (owned), or NULL with msg */
  const struct wire_msg *msg; /* a `message` event by its fields (borrowed) */
  frame_t *enc[FORMAT_MAX];   /* by format id (owned) */
  uint32_t flags;
};

/* A join that waits for the store (room load or recovery read). Owned by the room's waiting list or
 * by its in-flight store request; freed by join_free. */
struct pending_join {
  struct store_req req;
  struct core *core;
  uint64_t conn_id;
  json_t *req_id; /* reference */
  char *room;
  uint64_t since;
  bool has_since;
  bool partial;
  uint64_t from, next; /* replay window: from..head; next = first seq not yet sent */
  uint32_t replayed;
  struct pending_join *next_waiting;
};

/* core.c */
struct conn *core_conn_by_id(struct core *core, uint64_t id);
void conn_send_frame(struct core *core, struct conn *c, frame_t *f);
void conn_close(struct conn *c, enum conn_close_why why, const char *reason);
/* Queue a frame made for c alone (NULL: out of memory, c is closed). Takes the reference. */
void conn_send_own(struct core *core, struct conn *c, frame_t *f);
/* The event ev as a frame for c alone (its format's encoding; NULL when out of memory). */
frame_t *conn_event_frame(struct conn *c, const json_t *ev);
void reply_ok(struct core *core, struct conn *c, json_t *id, json_t *ok);
void reply_err(struct core *core, struct conn *c, json_t *id, enum perr code, const char *msg);
/* Whether c may do `rights` (ACCESS_*) in room; replies `forbidden` when not. */
bool access_check(struct core *core, struct conn *c, json_t *id, const char *room, unsigned rights);
/* Take a token from b (and the shared tables for sends); replies `rate_limited` (closing with 4029 when
 * the client keeps at it) and returns false when the request must not go on. */
bool rate_check(struct core *core, struct conn *c, json_t *id, struct rl_bucket *b,
                const struct config_rate *r, bool is_send);
frame_t *outev_frame(struct outev *e, const struct format *fmt);
void outev_done(struct outev *e);
void room_broadcast(struct core *core, struct room *r, struct outev *e, const char *skip_user);
json_t *user_json(const struct identity *who);
/* Tell r's members (but the user's own connections) that who joined/left (ev = "join"/"leave"). */
void room_notify(struct core *core, struct room *r, const char *ev, const struct identity *who);
struct member *conn_find_room(struct conn *c, const char *name, uint32_t *idx);

/* rooms.c */
void op_join(struct core *core, struct conn *c, struct request *req);
void op_leave(struct core *core, struct conn *c, struct request *req);
void conn_leave_at(struct core *core, struct conn *c, uint32_t idx);
/* Forget a parked replay of a closing connection. */
void replay_drop(struct core *core, struct conn *c);
void op_rooms(struct core *core, struct conn *c, struct request *req);
/* Add room to (member) or remove it from the user's stored room list. */
void room_list_set(struct core *core, struct conn *c, const char *room, bool member);
void dm_list_peer(struct core *core, struct conn *c, const char *room);
void op_read(struct core *core, struct conn *c, struct request *req);
/* Whether messages of this room are stored (history on and a store configured). */
bool room_is_durable(const struct core *core, const char *name);
/* Leave the rooms c (and its session) may no longer read, with a `kicked` event to c when kicked_ev. */
void rights_recheck(struct core *core, struct conn *c, bool kicked_ev);

/* typing.c */
void op_typing(struct core *core, struct conn *c, struct request *req);
/* The user stopped typing in r (sent, left, went away). */
void typing_clear(struct core *core, struct room *r, const char *user_id);
void typing_tick(struct core *core, uint64_t now_mono);

/* hooks: dispatch point for c (NULL for server-side events), with the event's optional parts. Returns
 * the decision; res must be hook_result_clear'ed by the caller. Without handlers: PARLEY_PASS, no work. */
enum parley_decision hook_run(struct core *core, enum parley_hook_point point, struct conn *c,
                              const char *user_id, const char *user_name, const char *room, const char *body,
                              size_t body_len, int typing, struct hook_result *res);
/* Notification points: hook_run without a decision. */
void hook_notify(struct core *core, enum parley_hook_point point, struct conn *c, const char *user_id,
                 const char *user_name, const char *room);
/* Run deferred hook actions once the outermost piece of work is done. */
void core_enter(struct core *core);
void core_leave(struct core *core);
void hooks_deferred_free(struct core *core);

/* messages.c */
void op_send(struct core *core, struct conn *c, struct request *req);
void op_history(struct core *core, struct conn *c, struct request *req);
/* Publish body into room as `from` (a connection's user, or the server when c is NULL). cmid NULL: one
 * is made up. Replies to c/req_id when c is given. */
void message_publish(struct core *core, struct conn *c, json_t *req_id, struct room *r, const char *room,
                     const struct wire_body *body, const char *cmid, const struct identity *from);
/* A message of r was committed (or accepted, for ephemeral rooms): ring it and fan it out. Takes ev. */
void room_deliver(struct core *core, struct room *r, uint64_t seq, json_t *ev);
/* The same for a message given by its fields (m->seq): its frames are written without a tree. */
void room_deliver_msg(struct core *core, struct room *r, const struct wire_msg *m);
/* Message ids: at most 16 hex digits of ms, 2 of node id, 6 of counter and a NUL. */
#define MID_MAX 32
void message_mid_format(char out[MID_MAX], uint64_t ts, uint8_t node, uint32_t n);
/* The `message` event for a stored message (new reference; NULL when out of memory). */
json_t *message_event(const struct store_msg *m);
/* Submit one retention pass for every room rule with max_age / max_count. */
void core_retention_run(struct core *core);

#endif
