/* errors: the protocol's stable error codes (docs/protocol.md "Errors"), declared once. */
#ifndef PARLEY_PROTO_ERRORS_H
#define PARLEY_PROTO_ERRORS_H

#define PERR_MAP(X)                                                                                          \
  X(BAD_FRAME, "bad_frame")                                                                                  \
  X(BAD_REQUEST, "bad_request")                                                                              \
  X(UNKNOWN_OP, "unknown_op")                                                                                \
  X(NOT_AUTHENTICATED, "not_authenticated")                                                                  \
  X(ALREADY_AUTHENTICATED, "already_authenticated")                                                          \
  X(AUTH_REQUIRED, "auth_required")                                                                          \
  X(AUTH_FAILED, "auth_failed")                                                                              \
  X(REJECTED, "rejected")                                                                                    \
  X(FORBIDDEN, "forbidden")                                                                                  \
  X(RATE_LIMITED, "rate_limited")                                                                            \
  X(BAD_ROOM, "bad_room")                                                                                    \
  X(NOT_JOINED, "not_joined")                                                                                \
  X(TOO_MANY_ROOMS, "too_many_rooms")                                                                        \
  X(BODY_TOO_LARGE, "body_too_large")                                                                        \
  X(OVERLOADED, "overloaded")                                                                                \
  X(STORE_UNAVAILABLE, "store_unavailable")                                                                  \
  X(INTERNAL, "internal")

enum perr {
  PERR_OK = 0,
#define X(name, str) PERR_##name,
  PERR_MAP(X)
#undef X
      PERR__COUNT
};

/* The wire name of an error code ("bad_frame" …); "ok" for PERR_OK. */
const char *perr_name(enum perr e);

#endif
