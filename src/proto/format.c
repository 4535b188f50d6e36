#include "proto/format.h"

#include <pthread.h>
#include <string.h>

#include "proto/codec.h"

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct format *_Atomic table[FORMAT_MAX];

int format_register(struct format *f) {
  pthread_mutex_lock(&reg_lock);
  int id = -1;
  if (f->registered) {
    id = f->id;
  } else {
    for (int i = 0; i < FORMAT_MAX; i++)
      if (!table[i]) {
        f->id = id = i;
        f->registered = true;
        table[i] = f; /* published last: a reader that sees it sees its id */
        break;
      }
  }
  pthread_mutex_unlock(&reg_lock);
  return id;
}

const struct format *format_find(const char *name) {
  for (int i = 0; i < FORMAT_MAX; i++) {
    const struct format *f = table[i];
    if (f && !strcmp(f->name, name)) return f;
  }
  return NULL;
}

void decoder_done(struct decoder *d, struct request *req) {
  json_decref(req->id);
  req->id = NULL;
  json_decref(d->doc);
  d->doc = NULL;
}

void decoder_free(struct decoder *d) {
  json_decref(d->doc);
  d->doc = NULL;
  buf_free(&d->body);
  buf_free(&d->tmp);
}

int body_json_encode(const json_t *v, buf_t *b) { return codec_encode(CODEC_JSON, v, b); }
size_t body_json_size(const json_t *v) { return codec_json_size(v); }
