#!/usr/bin/env bash
# check_exports.sh LIBPARLEY_SO PARLEY_H: fail unless the shared library's dynamic symbol table defines
# exactly the parley_* functions PARLEY_H declares (PARLEY_API) — nothing of the library's internals —
# and the library imports no function that changes signal dispositions (see "Signals" in parley.h).
set -euo pipefail
lib=$1
hdr=$2
fail=0

# Defined dynamic symbols, without version suffixes. Symbols some linkers add to every shared object's
# .dynsym are allowed by exact name; anything else that is not parley_* is a leak of an internal.
defined=$(nm -D --defined-only "$lib" | awk 'NF >= 3 { print $3 }' | sed 's/@.*//' | sort -u)
linker_added='^(_init|_fini|_edata|_end|__bss_start|_DYNAMIC|_GLOBAL_OFFSET_TABLE_)$'
extra=$(grep -vE '^parley_[a-z0-9_]+$' <<<"$defined" | grep -vE "$linker_added" || true)
if [ -n "$extra" ]; then
  echo "FAIL: $lib exports symbols other than parley_*:"
  sed 's/^/  /' <<<"$extra"
  fail=1
fi

# Every function the public header declares is exported (a missing PARLEY_API would hide it).
declared=$({ grep -oE '^PARLEY_API [^(]*\bparley_[a-z0-9_]+\(' "$hdr" || true; } | grep -oE 'parley_[a-z0-9_]+\($' |
  tr -d '(' | sort -u || true)
if [ -z "$declared" ]; then
  echo "FAIL: no PARLEY_API declaration found in $hdr"
  fail=1
fi
missing=$(comm -23 <(echo "$declared") <(grep -E '^parley_' <<<"$defined" || true))
if [ -n "$missing" ]; then
  echo "FAIL: declared in $hdr but not exported:"
  sed 's/^/  /' <<<"$missing"
  fail=1
fi
undeclared=$(comm -13 <(echo "$declared") <(grep -E '^parley_' <<<"$defined" || true))
if [ -n "$undeclared" ]; then
  echo "FAIL: exported but not declared PARLEY_API in $hdr:"
  sed 's/^/  /' <<<"$undeclared"
  fail=1
fi

# No signal disposition changed by the library itself (libuv's uv_signal_* for parley_server_run is fine).
sig=$(nm -D --undefined-only "$lib" | awk '{ print $NF }' | sed 's/@.*//' |
  grep -xE 'signal|sigaction|bsd_signal|sysv_signal|sigset|sigignore|__sysv_signal' || true)
if [ -n "$sig" ]; then
  echo "FAIL: $lib calls $(tr '\n' ' ' <<<"$sig")— the embedding program owns signal dispositions"
  fail=1
fi

[ $fail = 0 ] && echo "ok: $(wc -l <<<"$declared") parley_* functions exported, nothing else"
exit $fail
