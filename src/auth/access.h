/* access: what an identity may do in a room (docs/security.md, "Access rules"). Pure and cheap (a few glob
 * matches); the core asks at join, send, typing, history and presence, and again for a connection's rooms
 * after a refresh or a config reload. The on_join hook may refuse on top of it, never grant more. */
#ifndef PARLEY_AUTH_ACCESS_H
#define PARLEY_AUTH_ACCESS_H

#include "auth/auth.h"
#include "config.h"

#define ACCESS_READ     GRANT_READ  /* join, history, message events */
#define ACCESS_WRITE    GRANT_WRITE /* send, typing */
#define ACCESS_PRESENCE 4u          /* presence of the room (member list) and its join/leave events */

/* The rights of who in room: rooms.<pattern>.access combined with who's grants (the token's `rooms`
 * claim; for guests, capped by auth.guest_rooms). `dm:<a>:<b>` rooms (a, b non-empty, without ':')
 * give everything to users a and b and nothing to anyone else, guests included; any other name starting
 * with "dm:" gives nothing. A result without ACCESS_READ means the core must not reveal anything about
 * the room (same `forbidden` error whatever the room's state). */
unsigned access_rights(const struct config *cfg, const struct identity *who, const char *room);

/* true when room starts with "dm:"; then a and b (each at most 128 bytes + NUL) receive the two user ids,
 * or are set to "" when the name is malformed. */
bool access_dm_parse(const char *room, char a[129], char b[129]);

#endif
