/* broker_local: the in-process broker. One node: publishing is delivering, in the order of the calls. */
#include <errno.h>

#include "core/broker.h"
#include "core/internal.h"

static int broker_local_publish(void *ctx, struct room *r, struct wire_msg *m, broker_publish_cb cb,
                                void *ud) {
  struct core *core = ctx;
  if (!m->seq) {            /* ephemeral: the room's next number, here */
    if (!r) return -EINVAL; /* the caller makes an ephemeral room before it publishes into it */
    m->seq = r->seq + 1;    /* broker_deliver makes it the head */
  }
  if (cb) cb(ud, 0, m);
  broker_deliver(core, r, m);
  return 0;
}

/* Every message is delivered here already: nothing to subscribe to. */
static int broker_local_subscribe(void *ctx, struct room *r, broker_done_cb cb, void *ud) {
  (void)ctx;
  (void)r;
  if (cb) cb(ud, 0);
  return 0;
}

static void broker_local_unsubscribe(void *ctx, struct room *r) {
  (void)ctx;
  (void)r;
}

const struct broker_ops broker_local_ops = {
    .name = "local",
    .sync = true,
    .publish = broker_local_publish,
    .subscribe = broker_local_subscribe,
    .unsubscribe = broker_local_unsubscribe,
    .destroy = NULL,
};
