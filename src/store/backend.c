/* backend: helpers shared by the storage backends (backend.h). */
#include "store/backend.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void store_msg_clear(struct store_msg *m) {
  if (!m) return;
  free(m->room);
  free(m->mid);
  free(m->user_id);
  free(m->user_name);
  free(m->cmid);
  free(m->body);
  memset(m, 0, sizeof *m);
}

/* strdup that keeps NULL as NULL; *ok cleared on allocation failure. */
static char *dup_or_null(const char *s, bool *ok) {
  if (!s) return NULL;
  char *d = strdup(s);
  if (!d) *ok = false;
  return d;
}

int store_msg_copy(struct store_msg *dst, const struct store_msg *src) {
  bool ok = true;
  struct store_msg m = {
      .room = dup_or_null(src->room, &ok),
      .seq = src->seq,
      .mid = dup_or_null(src->mid, &ok),
      .ts = src->ts,
      .user_id = dup_or_null(src->user_id, &ok),
      .user_name = dup_or_null(src->user_name, &ok),
      .cmid = dup_or_null(src->cmid, &ok),
      .body = dup_or_null(src->body, &ok),
  };
  if (!ok) {
    store_msg_clear(&m);
    return STORE_ENOMEM;
  }
  *dst = m;
  return STORE_OK;
}

int store_msg_list_push(struct store_msg_list *l, struct store_msg *m) {
  if (l->n == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 16;
    struct store_msg *v = realloc(l->v, cap * sizeof *v);
    if (!v) { /* ownership was handed over either way */
      store_msg_clear(m);
      return STORE_ENOMEM;
    }
    l->v = v;
    l->cap = cap;
  }
  l->v[l->n++] = *m;
  memset(m, 0, sizeof *m);
  return STORE_OK;
}

void store_msg_list_free(struct store_msg_list *l) {
  if (!l) return;
  for (size_t i = 0; i < l->n; i++) store_msg_clear(&l->v[i]);
  free(l->v);
  l->v = NULL;
  l->n = l->cap = 0;
}

int store_room_list_push(struct store_room_list *l, struct store_room *r) {
  if (l->n == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 16;
    struct store_room *v = realloc(l->v, cap * sizeof *v);
    if (!v) { /* ownership was handed over either way */
      free(r->room);
      memset(r, 0, sizeof *r);
      return STORE_ENOMEM;
    }
    l->v = v;
    l->cap = cap;
  }
  l->v[l->n++] = *r;
  memset(r, 0, sizeof *r);
  return STORE_OK;
}

void store_room_list_free(struct store_room_list *l) {
  if (!l) return;
  for (size_t i = 0; i < l->n; i++) free(l->v[i].room);
  free(l->v);
  l->v = NULL;
  l->n = l->cap = 0;
}

void store_append_settle(struct store_append *it, bool dup, uint64_t seq, char **room, char **mid,
                         uint64_t ts) {
  struct store_msg *m = &it->msg;
  it->dup = dup;
  m->seq = seq;
  if (!dup) return;
  free(m->room);
  free(m->mid);
  m->room = *room;
  m->mid = *mid;
  m->ts = ts;
  *room = *mid = NULL;
}

const struct store_backend *store_backend_for(const struct config *cfg) {
  switch (cfg->store_backend) {
  case 1:
    return &store_backend_mongo;
  case 2:
    return &store_backend_postgres;
  default:
    return &store_backend_sqlite;
  }
}

void store_seterr(char *err, size_t errlen, const char *fmt, ...) {
  if (!err || !errlen) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

int store_prefix_end(const char *prefix, char **end) {
  size_t len = strlen(prefix);
  if (!len || (unsigned char)prefix[len - 1] == 0xFF) return STORE_EINVAL;
  if (!(*end = strdup(prefix))) return STORE_ENOMEM;
  (*end)[len - 1] = (char)((unsigned char)(*end)[len - 1] + 1);
  return STORE_OK;
}
