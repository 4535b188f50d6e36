#!/bin/sh
# check_config_doc.sh PARLEYD [DOC]: fail when DOC (default: docs/configuration.md next to this script's
# repository) differs from `PARLEYD --config-doc`, i.e. when the key table in src/config.c changed and the
# committed doc was not regenerated. Regenerate with: PARLEYD --config-doc > docs/configuration.md
set -eu

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
  echo "usage: $0 PARLEYD [DOC]" >&2
  exit 2
fi
parleyd=$1
doc=${2:-$(cd "$(dirname "$0")/../.." && pwd)/docs/configuration.md}

if [ ! -f "$doc" ]; then
  echo "$0: $doc: No such file" >&2
  exit 1
fi

generated=$(mktemp)
trap 'rm -f "$generated"' EXIT INT TERM
"$parleyd" --config-doc > "$generated"

if ! diff -u "$doc" "$generated"; then
  echo "$0: $doc is stale; regenerate it: $parleyd --config-doc > $doc" >&2
  exit 1
fi
echo "$doc matches $parleyd --config-doc"
