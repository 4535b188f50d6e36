/* typing: per-(room, user) typing state with a TTL, aggregated per room into at most one `typing`
 * event per typing.interval; never stored, never replayed, never echoed to the typist. */
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"

static void list_add(struct core *core, struct room *r) {
  if (r->in_typing_list) return;
  r->in_typing_list = true;
  r->typing_prev = NULL;
  r->typing_next = core->typing_rooms;
  if (core->typing_rooms) core->typing_rooms->typing_prev = r;
  core->typing_rooms = r;
}

static void list_remove(struct core *core, struct room *r) {
  if (!r->in_typing_list) return;
  if (r->typing_prev)
    r->typing_prev->typing_next = r->typing_next;
  else
    core->typing_rooms = r->typing_next;
  if (r->typing_next) r->typing_next->typing_prev = r->typing_prev;
  r->typing_prev = r->typing_next = NULL;
  r->in_typing_list = false;
}

static int typist_find(const struct room *r, const char *user_id) {
  for (uint32_t i = 0; i < r->ntypists; i++)
    if (!strcmp(r->typists[i].user_id, user_id)) return (int)i;
  return -1;
}

static void typist_remove_at(struct room *r, uint32_t i) {
  free(r->typists[i].user_id);
  free(r->typists[i].user_name);
  r->typists[i] = r->typists[--r->ntypists];
  r->typing_dirty = true;
}

void typing_clear(struct core *core, struct room *r, const char *user_id) {
  int i = typist_find(r, user_id);
  if (i < 0) return;
  typist_remove_at(r, (uint32_t)i);
  list_add(core, r);
}

void op_typing(struct core *core, struct conn *c, struct request *req) {
  if (!access_check(core, c, req->id, req->room, ACCESS_WRITE)) return;
  struct member *m = conn_find_room(c, req->room, NULL);
  if (!m) {
    reply_err(core, c, req->id, PERR_NOT_JOINED, "join the room before typing in it");
    return;
  }
  if (!rate_check(core, c, req->id, &c->rl_typing, &core->cfg->rate_typing, false)) return;
  struct room *r = m->room;
  if (core->hooks && hooks_has(core->hooks, PARLEY_HOOK_TYPING)) {
    struct hook_result res = HOOK_RESULT_INIT;
    enum parley_decision d =
        hook_run(core, PARLEY_HOOK_TYPING, c, c->who.id, c->who.name, r->name, NULL, 0, req->active, &res);
    hook_result_clear(&res);
    if (d == PARLEY_REJECT) { /* dropped silently */
      reply_ok(core, c, req->id, NULL);
      return;
    }
  }
  int i = typist_find(r, c->who.id);
  if (req->active) {
    uint64_t expires = core_mono_ms() + (uint64_t)core->cfg->typing_ttl;
    if (i >= 0) {
      r->typists[i].expires = expires;
    } else {
      struct typist *ts = realloc(r->typists, (r->ntypists + 1) * sizeof *ts);
      if (!ts) {
        reply_err(core, c, req->id, PERR_INTERNAL, "out of memory");
        return;
      }
      r->typists = ts;
      struct typist *t = &ts[r->ntypists];
      t->user_id = strdup(c->who.id);
      t->user_name = strdup(c->who.name);
      t->expires = expires;
      if (!t->user_id || !t->user_name) {
        free(t->user_id);
        free(t->user_name);
        reply_err(core, c, req->id, PERR_INTERNAL, "out of memory");
        return;
      }
      r->ntypists++;
      r->typing_dirty = true;
      list_add(core, r);
    }
  } else if (i >= 0) {
    typist_remove_at(r, (uint32_t)i);
    list_add(core, r);
  }
  reply_ok(core, c, req->id, NULL);
}

/* The typing list without `skip` (NULL: everyone). */
static json_t *typing_event(const struct room *r, const char *skip) {
  json_t *users = json_array();
  for (uint32_t i = 0; i < r->ntypists; i++)
    if (!skip || strcmp(r->typists[i].user_id, skip))
      json_array_append_new(
          users, json_pack("{s:s,s:s}", "id", r->typists[i].user_id, "name", r->typists[i].user_name));
  return json_pack("{s:s,s:s,s:o}", "ev", "typing", "room", r->name, "users", users);
}

static bool in_ids(char **ids, uint32_t n, const char *id) {
  for (uint32_t i = 0; i < n; i++)
    if (!strcmp(ids[i], id)) return true;
  return false;
}

/* Whether the list a member of user `uid` sees (everyone but uid) differs from the last one sent:
 * a change of uid's own state alone is not news to uid. */
static bool news_for(const struct room *r, const char *uid) {
  for (uint32_t i = 0; i < r->ntypists; i++)
    if (strcmp(r->typists[i].user_id, uid) &&
        !in_ids(r->typing_sent_ids, r->ntyping_sent, r->typists[i].user_id))
      return true;
  for (uint32_t i = 0; i < r->ntyping_sent; i++)
    if (strcmp(r->typing_sent_ids[i], uid) && typist_find(r, r->typing_sent_ids[i]) < 0) return true;
  return false;
}

static void remember_sent(struct room *r) {
  for (uint32_t i = 0; i < r->ntyping_sent; i++) free(r->typing_sent_ids[i]);
  r->ntyping_sent = 0;
  char **ids = r->ntypists ? realloc(r->typing_sent_ids, r->ntypists * sizeof *ids) : r->typing_sent_ids;
  if (r->ntypists && !ids) return; /* out of memory: every member gets the next event */
  r->typing_sent_ids = ids;
  for (uint32_t i = 0; i < r->ntypists; i++)
    if ((ids[r->ntyping_sent] = strdup(r->typists[i].user_id))) r->ntyping_sent++;
}

static void typing_send(struct core *core, struct room *r) {
  struct outev all = {.flags = FRAME_EPHEMERAL};
  all.doc = typing_event(r, NULL);
  /* Typists get the list without themselves: one variant per typist (typists are few). */
  struct outev *own = r->ntypists ? calloc(r->ntypists, sizeof *own) : NULL;
  for (uint32_t k = 0; k < r->nmembers; k++) {
    struct conn *c = r->members[k]->conn;
    if (!news_for(r, c->who.id)) continue;
    int t = own ? typist_find(r, c->who.id) : -1;
    struct outev *e = &all;
    if (t >= 0) {
      e = &own[t];
      if (!e->doc) {
        e->flags = FRAME_EPHEMERAL;
        e->doc = typing_event(r, c->who.id);
      }
    }
    conn_send_frame(core, c, outev_frame(e, c->fmt));
  }
  for (uint32_t i = 0; own && i < r->ntypists; i++) outev_done(&own[i]);
  free(own);
  outev_done(&all);
  remember_sent(r);
}

void typing_tick(struct core *core, uint64_t now) {
  uint64_t interval = (uint64_t)core->cfg->typing_interval;
  for (struct room *r = core->typing_rooms, *next; r; r = next) {
    next = r->typing_next;
    for (uint32_t i = 0; i < r->ntypists;) {
      if (r->typists[i].expires <= now)
        typist_remove_at(r, i);
      else
        i++;
    }
    if (r->typing_dirty && now - r->typing_sent >= interval) {
      r->typing_dirty = false;
      r->typing_sent = now;
      typing_send(core, r);
    }
    if (!r->ntypists && !r->typing_dirty) {
      list_remove(core, r);
      room_release_if_unused(&core->rooms, r);
    }
  }
}
