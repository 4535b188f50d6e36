#!/bin/sh
# check_core_direction.sh SRC: fail when a file of SRC/core includes anything of net/, a wire format's own
# headers (proto/codec.h, proto/wire.h, proto/v1.h) or libwebsockets: the core sees wire formats only through
# proto/format.h and transports only through struct conn_tx (src/core/core.h).
set -eu
if [ $# -ne 1 ]; then
  echo "usage: $0 SRC" >&2
  exit 2
fi
bad=$(grep -nE '^[[:space:]]*#[[:space:]]*include[[:space:]]*[<"](net/|proto/(codec|wire|v1)\.h|libwebsockets)' \
  "$1"/core/*.c "$1"/core/*.h || true)
if [ -n "$bad" ]; then
  echo "src/core includes what it must not know:" >&2
  echo "$bad" >&2
  exit 1
fi
