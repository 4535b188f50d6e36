/* parley.h — embedding Parley in a C program.
 *
 * All functions return 0 or a negative error code (see parley_strerror) unless stated otherwise.
 * Objects are opaque; a parley_server is used from one thread, the one running its loop. */
#ifndef PARLEY_PARLEY_H
#define PARLEY_PARLEY_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PARLEY_ABI_VERSION 1

typedef struct parley_server parley_server;

/* Create a server from a conf.d directory (NULL: built-in defaults only). On failure returns a
 * negative code and writes a "file:line: message" reason to err (errlen bytes). *out is owned by the
 * caller and released with parley_server_free. */
int parley_server_new(parley_server **out, const char *conf_dir, char *err, size_t errlen);

/* Run the server on its own libuv loop until it is stopped (parley_server_stop, SIGTERM or SIGINT
 * when handle_signals is nonzero; SIGHUP then reloads the configuration). Returns 0 after a clean
 * drain. */
int parley_server_run(parley_server *s, int handle_signals);

/* Ask a running server to stop: refuse new connections, close clients with 1001, drain, return from
 * parley_server_run. Safe to call from the loop thread only. */
void parley_server_stop(parley_server *s);

/* Re-read the conf.d directory and apply what can change live. */
int parley_server_reload(parley_server *s);

void parley_server_free(parley_server *s);

const char *parley_strerror(int code);
const char *parley_version(void);

#ifdef __cplusplus
}
#endif
#endif
