#include "core/room.h"

#include <stdlib.h>
#include <string.h>

struct room *room_get(struct room_set *set, const char *name, bool create, uint32_t ring_cap) {
  struct room *r = NULL;
  HASH_FIND_STR(set->by_name, name, r);
  if (r || !create) return r;
  r = calloc(1, sizeof *r);
  if (!r) return NULL;
  r->name = strdup(name);
  if (!r->name || ring_init(&r->ring, ring_cap)) {
    free(r->name);
    free(r);
    return NULL;
  }
  HASH_ADD_KEYPTR(hh, set->by_name, r->name, strlen(r->name), r);
  return r;
}

struct member *room_add(struct room *r, struct conn *c) {
  if (r->nmembers == r->cap) {
    uint32_t cap = r->cap ? r->cap * 2 : 4;
    struct member **m = realloc(r->members, cap * sizeof *m);
    if (!m) return NULL;
    r->members = m;
    r->cap = cap;
  }
  struct member *m = malloc(sizeof *m);
  if (!m) return NULL;
  m->conn = c;
  m->room = r;
  m->room_idx = r->nmembers;
  r->members[r->nmembers++] = m;
  return m;
}

void room_remove(struct room *r, struct member *m) {
  uint32_t i = m->room_idx;
  struct member *moved = r->members[--r->nmembers];
  r->members[i] = moved;
  moved->room_idx = i;
  free(m);
}

int room_presence_add(struct room *r, const char *user_id, uint64_t now_ms, bool *first) {
  struct room_user *u = NULL;
  HASH_FIND_STR(r->users, user_id, u);
  if (!u) {
    u = calloc(1, sizeof *u);
    if (!u || !(u->user_id = strdup(user_id))) {
      free(u);
      return -1;
    }
    u->since = now_ms;
    HASH_ADD_KEYPTR(hh, r->users, u->user_id, strlen(u->user_id), u);
  }
  *first = u->sessions++ == 0;
  return 0;
}

void room_presence_remove(struct room *r, const char *user_id, bool *last) {
  struct room_user *u = NULL;
  *last = false;
  HASH_FIND_STR(r->users, user_id, u);
  if (u && --u->sessions == 0) {
    HASH_DEL(r->users, u);
    free(u->user_id);
    free(u);
    *last = true;
  }
}

static void room_free(struct room *r) {
  struct room_user *u, *tmp;
  HASH_ITER(hh, r->users, u, tmp) {
    HASH_DEL(r->users, u);
    free(u->user_id);
    free(u);
  }
  for (uint32_t i = 0; i < r->nmembers; i++) free(r->members[i]);
  free(r->members);
  for (uint32_t i = 0; i < r->ntypists; i++) {
    free(r->typists[i].user_id);
    free(r->typists[i].user_name);
  }
  free(r->typists);
  for (uint32_t i = 0; i < r->ntyping_sent; i++) free(r->typing_sent_ids[i]);
  free(r->typing_sent_ids);
  ring_free(&r->ring);
  json_decref(r->loading_live);
  free(r->name);
  free(r);
}

void room_release_if_unused(struct room_set *set, struct room *r) {
  if (r->nmembers || r->users || r->pins || r->waiting || r->in_typing_list || (!r->durable && r->seq))
    return;
  HASH_DEL(set->by_name, r);
  room_free(r);
}

size_t room_set_count(const struct room_set *set) { return HASH_COUNT(set->by_name); }

void room_set_free(struct room_set *set) {
  struct room *r, *tmp;
  HASH_ITER(hh, set->by_name, r, tmp) {
    HASH_DEL(set->by_name, r);
    room_free(r);
  }
}
