/* room: membership and sequence of one room. A room holds its members in a dense array so fan-out is a
 * linear walk; each membership (struct member) is owned by the room and referenced by the connection. */
#ifndef PARLEY_CORE_ROOM_H
#define PARLEY_CORE_ROOM_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uthash.h>

#include "core/ring.h"

struct conn;
struct room;

struct member {
  struct conn *conn;
  struct room *room;
  uint32_t room_idx; /* position in room->members, kept current by swap-removal */
};

struct room_user {
  char *user_id;     /* owned */
  uint32_t sessions; /* sessions of this user present in the room (attached or detached) */
  uint64_t since;    /* wall-clock ms when the user's first session entered */
  UT_hash_handle hh;
};

struct typist {
  char *user_id, *user_name; /* owned */
  uint64_t expires;          /* monotonic ms */
};

struct pending_join;

enum room_state {
  ROOM_READY,   /* head and ring are current */
  ROOM_LOADING, /* durable room just created: head and recent messages are being read from the store */
};

struct room {
  char *name;   /* owned */
  uint64_t seq; /* head: seq of the last message delivered (0: none). Durable rooms take seqs from
                   the store's sequencer (store/backend.h append); ephemeral rooms number here */
  enum room_state state;
  bool durable;                 /* history on and a store configured */
  struct ring ring;             /* recent messages */
  json_t *loading_live;         /* ROOM_LOADING: message events committed meanwhile (array, owned) */
  struct pending_join *waiting; /* ROOM_LOADING: joins to resume when the load completes */
  uint32_t pins;                /* in-flight operations that need the room to stay */
  struct member **members;
  uint32_t nmembers, cap;
  struct room_user *users; /* uthash by user_id: presence, one entry per user with sessions in the room */
  struct typist *typists;  /* who is typing (small array) */
  uint32_t ntypists;
  bool typing_dirty;      /* the typist list changed since the last typing event */
  char **typing_sent_ids; /* user ids in the last typing event (owned) */
  uint32_t ntyping_sent;
  uint64_t typing_sent;                   /* monotonic ms of the last typing event */
  struct room *typing_next, *typing_prev; /* in the core's list of rooms with typing activity */
  bool in_typing_list;
  UT_hash_handle hh;
};

struct room_set {
  struct room *by_name; /* uthash */
};

/* Find a room; with create, make it when missing (ring of ring_cap entries, state READY, not durable).
 * NULL when missing (or out of memory). */
struct room *room_get(struct room_set *set, const char *name, bool create, uint32_t ring_cap);
/* Add connection c to the room's fan-out. Returns the membership (owned by the room) or NULL when out
 * of memory. */
struct member *room_add(struct room *r, struct conn *c);
/* Remove and free m. */
void room_remove(struct room *r, struct member *m);
/* Presence: one more / one less session of user_id in the room. *first / *last tell whether the user
 * just entered / left. room_presence_add returns -1 when out of memory. */
int room_presence_add(struct room *r, const char *user_id, uint64_t now_ms, bool *first);
void room_presence_remove(struct room *r, const char *user_id, bool *last);
/* Free the room when nothing needs it any more: no members, nobody present, no pins, nothing waiting, and
 * either durable (the store keeps its numbering) or without messages. */
void room_release_if_unused(struct room_set *set, struct room *r);
size_t room_set_count(const struct room_set *set);
void room_set_free(struct room_set *set);

#endif
