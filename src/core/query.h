/* query: read-only answers about the core's state for code outside it (embed/), in neutral structures,
 * so that nothing outside core/ walks its tables or decodes its rings. Loop thread only. */
#ifndef PARLEY_CORE_QUERY_H
#define PARLEY_CORE_QUERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct core;
struct store_msg_list;

/* One user present in a room (with at least one session in it, attached or detached). Strings are
 * borrowed from the core: valid during the callback only. */
struct core_presence {
  const char *user_id;
  const char *user_name;
  uint64_t since;    /* wall-clock ms when the user's first session entered the room */
  uint32_t sessions; /* the user's sessions in the room */
};
typedef void (*core_presence_fn)(void *ud, const struct core_presence *p);

/* fn(ud, p) (fn may be NULL) for every user present in room; returns their number (0 when the room is
 * not in memory). The core must not be changed from fn. */
int core_presence_query(struct core *core, const char *room, core_presence_fn fn, void *ud);

/* Whether room's messages are stored (history on and a store configured); else only the recent messages
 * kept in memory (history.ring_size) exist. */
bool core_room_durable(const struct core *core, const char *room);

/* Append to out copies of room's messages kept in memory with seq < before (0: no bound), the newest
 * `limit` of them, in ascending seq (nothing when the room is not in memory). Each store_msg is complete
 * (the event's room, mid, cmid, from and compact body). 0, or -ENOMEM (out keeps what was appended; the
 * caller frees it either way: store_msg_list_free). */
int core_recent_messages(struct core *core, const char *room, uint64_t before, size_t limit,
                         struct store_msg_list *out);

/* Kick from outside the core: at once, or after the current request when called from inside one (a hook
 * handler). Returns the connections closed (0 when deferred), like core_kick. */
int core_kick_or_defer(struct core *core, const char *user_id, const char *reason);

#endif
