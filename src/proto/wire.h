/* wire: the frames of the send path (the `message` event, the send ack, error replies) written straight
 * into their encoded form, without building a json_t tree and encoding it. The bytes are exactly those
 * codec_frame() makes of the equivalent tree (tests/unit/test_wire.c checks it), so docs/protocol.md's
 * shapes and key order hold for both codecs. */
#ifndef PARLEY_PROTO_WIRE_H
#define PARLEY_PROTO_WIRE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/codec.h"
#include "proto/format.h" /* struct wire_body, struct wire_msg */

/* Append the body's encoding in codec c to out. Returns 0, -ENOMEM or -EINVAL (no usable form). */
int wire_body_encode(const struct wire_body *b, codec_t c, buf_t *out);

/* {"ev":"message","room",..,"seq",..,"mid",..,"ts",..,"from":{"id","name"},"body",..,"cmid"} as a frame
 * (refs = 1, flags), NULL when out of memory or the body has no usable form. */
frame_t *wire_message_frame(codec_t c, const struct wire_msg *m, uint32_t flags);
/* Free the calling thread's scratch buffer of the frame writers; as codec_thread_release. */
void wire_thread_release(void);

/* The ok reply of a send: {"re":id,"ok":{"room","seq","mid","ts"[,"duplicate":true]}}; id NULL: null. */
frame_t *wire_ack_frame(codec_t c, const json_t *id, const char *room, uint64_t seq, const char *mid,
                        uint64_t ts, bool duplicate);

/* An error reply: {"re":id,"err":{"code":code,"msg":msg}}; id NULL: null. */
frame_t *wire_err_frame(codec_t c, const json_t *id, const char *code, const char *msg);

#endif
