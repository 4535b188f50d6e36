/* errors: the one error domain at module boundaries.
 *
 * Every function called across modules (declared in a module's header, or in include/parley) returns 0 (or a
 * count / a pointer where its header says so) on success and a negative errno on failure: -EINVAL, -ENOMEM,
 * -EMSGSIZE, ... — the errno names, never literal numbers. A module that gives some of them a meaning of
 * its own names them as aliases of errno values in its header, with one table saying which is which
 * (enum store_err in src/store/backend.h; the auth_hello/auth_refresh results in src/auth/auth.h).
 * Detail a caller shows to a person (a reason, a docs/security.md subcode) travels next to the code in a
 * message buffer, not in the code.
 *
 * enum perr (src/proto/errors.h), the protocol's error codes, belongs to proto/ and to the core's reply
 * edge only: the core maps a module's negative errno to the perr it replies with (e.g. auth_perr in
 * src/core/core.c). Nothing below the protocol edge returns an enum perr.
 *
 * Left as they are: a static helper's private "-1: failed" (its caller cannot tell failures apart
 * anyway), libuv's own UV_E* (already negative errno on Unix), and lws callback return values. */
#ifndef PARLEY_UTIL_ERRORS_H
#define PARLEY_UTIL_ERRORS_H

#include <errno.h>

#endif
