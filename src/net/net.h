/* net: the WebSocket and HTTP front end, libwebsockets on Parley's libuv loop.
 *
 * Write discipline: every recipient's frames (a wire format's encoding, shared; net/ws.h writes the
 * WebSocket header once into its headroom) are queued by reference during a loop iteration and the
 * connection is marked dirty; a uv_check callback, after the iteration's I/O, writes each dirty
 * connection's queue in one write (lws_write(LWS_WRITE_RAW) with TLS, sendmsg() on plain TCP) unless lws
 * still holds part of an earlier write, and asks for WRITEABLE only then. Used "by the book" (one
 * lws_write per WRITEABLE callback, lws_callback_on_writable per delivery) lws spends epoll_ctl calls
 * per delivery toggling POLLOUT: that held about 20k deliveries/s within a p99 of 50 ms on one core,
 * where one batched write per connection and iteration reached several hundred thousand.
 * Queues are bounded by limits.out_queue_bytes. */
#ifndef PARLEY_NET_NET_H
#define PARLEY_NET_NET_H

#include <stddef.h>
#include <uv.h>

#include "config.h"
#include "core/core.h"

struct net;

/* Create the listener on cfg's host:port on loop. cfg and core are borrowed. NULL on failure, with
 * the reason in err. */
struct net *net_new(uv_loop_t *loop, struct core *core, const struct config *cfg, char *err, size_t errlen);
struct auth;
/* The token verifier/minter for the development login (borrowed; swapped on reload). */
void net_set_auth(struct net *net, const struct auth *auth);
/* POST /api/admin/reload (hooks.admin_key as bearer token) calls fn(ud): 0 = reloaded. */
void net_set_reload(struct net *net, int (*fn)(void *ud), void *ud);
/* Refuse new handshakes (503) from now on. */
void net_stop_accepting(struct net *net);
/* Tear the front end down from inside the running loop; the loop then runs until lws is done. Call
 * net_free after uv_run returns. */
void net_destroy_in_loop(struct net *net);
void net_free(struct net *net);

#endif
