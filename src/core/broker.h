/* broker: where a numbered message leaves the send path (publish) and where it comes back to be delivered
 * to this node's members of its room (broker_deliver). The core holds one broker (ops + ctx) chosen at
 * core_new; the in-process one (broker_local.c) is the default and the only one today. The interface lets
 * a broker answer later (a network bus): every answer comes through a callback, and `sync` says whether a
 * broker may call it after the call that took it has returned. All calls run on the loop thread. */
#ifndef PARLEY_CORE_BROKER_H
#define PARLEY_CORE_BROKER_H

#include <stdbool.h>
#include <stdint.h>

#include "proto/format.h" /* struct wire_msg */

struct core;
struct room;

/* The outcome of a publish: err 0 and m with its seq, or a negative errno (m was not delivered anywhere). */
typedef void (*broker_publish_cb)(void *ud, int err, const struct wire_msg *m);
/* The outcome of a subscribe: err 0 once the subscription holds, or a negative errno. */
typedef void (*broker_done_cb)(void *ud, int err);

struct broker_ops {
  const char *name;
  /* true: every callback runs before the call it was given to returns (ud may be the caller's stack);
   * false: callbacks come later from the loop, and ud must stay valid until its callback has run. */
  bool sync;
  /* Publish m to every node serving its room m->room. r is this node's room object (NULL: none here).
   * m->seq == 0: a message of an ephemeral room, which the broker numbers (it sets m->seq); otherwise the
   * store's number. cb (NULL: nobody waits) is called once with the outcome, before m is delivered here, so
   * an ack goes out before its event. Every node serving the room then hands m to broker_deliver in seq
   * order. Returns 0, or a negative errno and cb is not called. m and its strings stay the caller's: a
   * broker that answers later copies what it keeps. */
  int (*publish)(void *ctx, struct room *r, struct wire_msg *m, broker_publish_cb cb, void *ud);
  /* This node has members in r from now on (first one joined) / no more (last one left); the core counts.
   * cb (may be NULL) is told when the subscription holds. Returns 0 or a negative errno (cb not called). */
  int (*subscribe)(void *ctx, struct room *r, broker_done_cb cb, void *ud);
  void (*unsubscribe)(void *ctx, struct room *r);
  /* Free ctx (at core_free; NULL: nothing to free). */
  void (*destroy)(void *ctx);
};

/* The in-process broker; its ctx is the core itself. publish numbers ephemeral messages from the room's
 * head, calls cb, then delivers through broker_deliver: a direct call path, nothing allocated or copied. */
extern const struct broker_ops broker_local_ops;

/* Deliver the numbered message m to this node's members of its room (r, or found by m->room when NULL;
 * nobody here: nothing to do): ring it and fan it out, or keep it for after the load of a room still
 * loading. Brokers call this in seq order per room (messages.c). */
void broker_deliver(struct core *core, struct room *r, const struct wire_msg *m);

#endif
