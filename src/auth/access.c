/* access: room access levels, grants, guests and dm rooms. See access.h. */
#include "auth/access.h"

#include <string.h>

bool access_dm_parse(const char *room, char a[129], char b[129]) {
  a[0] = b[0] = '\0';
  if (strncmp(room, "dm:", 3)) return false;
  const char *p = room + 3, *c = strchr(p, ':');
  if (!c || strchr(c + 1, ':')) return true;
  size_t la = (size_t)(c - p), lb = strlen(c + 1);
  if (!la || !lb || la > 128 || lb > 128) return true;
  memcpy(a, p, la);
  a[la] = '\0';
  memcpy(b, c + 1, lb + 1);
  return true;
}

/* The rights auth.guest_rooms allows in room (union of matching items), read from the live config so a
 * reload applies to connected guests too. A malformed item gives nothing (auth_new refuses the config). */
static unsigned guest_cap(const struct config *cfg, const char *room) {
  unsigned r = 0;
  const char *p = cfg->auth_guest_rooms ? cfg->auth_guest_rooms : "";
  while (*p) {
    const char *e = strchr(p, ',');
    if (!e) e = p + strlen(p);
    const char *a = p, *b = e;
    while (a < b && (*a == ' ' || *a == '\t')) a++;
    while (b > a && (b[-1] == ' ' || b[-1] == '\t')) b--;
    p = *e ? e + 1 : e;
    const char *colon = NULL;
    for (const char *q = a; q < b; q++)
      if (*q == ':') colon = q;
    if (!colon || colon == a || colon - a > GRANT_MAX_PATTERN) continue;
    char pat[GRANT_MAX_PATTERN + 1];
    memcpy(pat, a, (size_t)(colon - a));
    pat[colon - a] = '\0';
    unsigned rights = 0;
    bool ok = true;
    for (const char *q = colon + 1; q < b; q++) {
      if (*q == 'r')
        rights |= GRANT_READ;
      else if (*q == 'w')
        rights |= GRANT_WRITE;
      else
        ok = false;
    }
    if (ok && config_glob_match(pat, room)) r |= rights;
  }
  return r;
}

unsigned access_rights(const struct config *cfg, const struct identity *who, const char *room) {
  if (!who || !who->id || !room) return 0;
  char a[129], b[129];
  if (access_dm_parse(room, a, b)) {
    if (who->guest || !a[0]) return 0; /* guest ids are reused after a restart: no dm history for them */
    return !strcmp(who->id, a) || !strcmp(who->id, b) ? ACCESS_READ | ACCESS_WRITE | ACCESS_PRESENCE : 0;
  }
  unsigned g = who->guest ? 0 : grants_rights(who->grants, who->ngrants, room);
  unsigned r = 0;
  switch (config_room_access(cfg, room)) {
  case ROOM_PUBLIC:
    r = ACCESS_READ | ACCESS_WRITE | ACCESS_PRESENCE;
    break;
  case ROOM_READONLY:
    r = ACCESS_READ | ACCESS_PRESENCE | (g & GRANT_WRITE);
    break;
  case ROOM_MEMBERS:
    r = (g & (GRANT_READ | GRANT_WRITE)) | ACCESS_PRESENCE;
    break;
  case ROOM_PRIVATE:
  default:
    r = g & (GRANT_READ | GRANT_WRITE);
    if (g & GRANT_READ) r |= ACCESS_PRESENCE;
    break;
  }
  if (who->guest) { /* guests: at most what everyone gets, capped by auth.guest_rooms; presence needs r */
    unsigned cap = guest_cap(cfg, room);
    r &= (cap & (GRANT_READ | GRANT_WRITE)) | (cap & GRANT_READ ? ACCESS_PRESENCE : 0);
  }
  return r;
}
