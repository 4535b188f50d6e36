#include "proto/errors.h"

static const char *const names[PERR__COUNT] = {"ok",
#define X(name, str) str,
                                               PERR_MAP(X)
#undef X
};

const char *perr_name(enum perr e) { return (e >= 0 && e < PERR__COUNT) ? names[e] : "internal"; }
