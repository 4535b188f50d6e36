/* query: see query.h. */
#include "core/query.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"

int core_presence_query(struct core *core, const char *room, core_presence_fn fn, void *ud) {
  struct room *r = room_get(&core->rooms, room, false, 0);
  if (!r) return 0;
  int n = 0;
  struct room_user *ru, *tmp;
  HASH_ITER(hh, r->users, ru, tmp) {
    struct user *u = NULL;
    HASH_FIND_STR(core->users, ru->user_id, u);
    struct core_presence p = {.user_id = ru->user_id,
                              .user_name = u ? u->name : ru->user_id,
                              .since = ru->since,
                              .sessions = ru->sessions};
    if (fn) fn(ud, &p);
    n++;
  }
  return n;
}

bool core_room_durable(const struct core *core, const char *room) { return room_is_durable(core, room); }

static char *json_str_dup(json_t *o, const char *key) {
  const char *v = json_string_value(json_object_get(o, key));
  return strdup(v ? v : "");
}

int core_recent_messages(struct core *core, const char *room, uint64_t before, size_t limit,
                         struct store_msg_list *out) {
  struct room *r = room_get(&core->rooms, room, false, 0);
  if (!r) return 0;
  uint64_t first = ring_first(&r->ring), last = ring_last(&r->ring);
  if (!first || !limit) return 0;
  if (before && before - 1 < last) last = before - 1;
  if (last < first) return 0;
  uint64_t from = last - first + 1 > limit ? last - limit + 1 : first;
  for (uint64_t q = from; q <= last; q++) {
    struct ring_entry *en = ring_get(&r->ring, q);
    if (!en) continue;
    json_t *ev = ring_event(en);
    if (!ev) return -ENOMEM;
    json_t *from_o = json_object_get(ev, "from");
    struct store_msg m = {.seq = q, .ts = (uint64_t)json_integer_value(json_object_get(ev, "ts"))};
    m.room = json_str_dup(ev, "room");
    m.mid = json_str_dup(ev, "mid");
    m.cmid = json_str_dup(ev, "cmid");
    m.user_id = json_str_dup(from_o, "id");
    m.user_name = json_str_dup(from_o, "name");
    m.body = json_dumps(json_object_get(ev, "body"), JSON_COMPACT | JSON_ENCODE_ANY);
    if (!m.room || !m.mid || !m.cmid || !m.user_id || !m.user_name || !m.body) {
      store_msg_clear(&m);
      return -ENOMEM;
    }
    if (store_msg_list_push(out, &m)) return -ENOMEM; /* m is freed by it either way */
  }
  return 0;
}

int core_kick_or_defer(struct core *core, const char *user_id, const char *reason) {
  if (core->depth) return core_host_kick(core, user_id, reason); /* after the request: 0 */
  return core_kick(core, user_id, reason);
}
