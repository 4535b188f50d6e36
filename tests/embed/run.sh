#!/usr/bin/env bash
# tests/embed/run.sh [BUILD_DIR] [JUNIT_XML]: install Parley from BUILD_DIR (default build/, configured and
# built) into a temporary prefix, build every example in examples/ against that prefix — through
# find_package(parley) (shared and static), pkg-config in CMake, and a plain `cc $(pkg-config ...)` — then
# run each one and check its behaviour over real sockets (tests/embed/check.py). Exit 0 only if all passed.
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build=${1:-$root/build}
junit=${2:-}
PY=${PY:-/usr/bin/python3}
work=$(mktemp -d /tmp/parley-embed-test.XXXXXX)
trap 'rm -rf "$work"' EXIT
prefix=$work/prefix
bins=$work/bin
mkdir -p "$bins"
fail=0
results=()
record() { # record NAME STATUS(0|1) [MESSAGE]
  results+=("$1|$2|${3:-}")
  if [ "$2" = 0 ]; then echo "ok    $1"; else echo "FAIL  $1 ${3:-}"; fail=1; fi
}

log=$work/build.log
if cmake --install "$build" --prefix "$prefix" >"$log" 2>&1; then
  record install 0
else
  cat "$log"; record install 1 "cmake --install failed"
fi
export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
export CMAKE_PREFIX_PATH=$prefix
cflags="-Wall -Wextra -Werror -Wno-unused-parameter"

# An embedder compiles against parley/parley.h alone: --cflags is Parley's include dir and nothing else (no
# Lua, libmongoc, ... paths); the private libraries still come with --static --libs.
pc_cflags=$(pkg-config --cflags parley 2>&1)
read -r -a pc_words <<<"$pc_cflags"
if [ ${#pc_words[@]} = 1 ] && [ -f "${pc_words[0]#-I}/parley/parley.h" ]; then
  record "pkg-config --cflags parley is only Parley's include dir" 0
else
  record "pkg-config --cflags parley is only Parley's include dir" 1 "got: $pc_cflags"
fi
pc_static=$(pkg-config --static --libs parley 2>&1)
if [[ " $pc_static " == *" -lparley "* && " $pc_static " == *" -lwebsockets "* && " $pc_static " == *" -luv "* ]]; then
  record "pkg-config --static --libs parley lists the private libraries" 0
else
  record "pkg-config --static --libs parley lists the private libraries" 1 "got: $pc_static"
fi

# cmake_example NAME VARIANT [cmake args...]: configure and build examples/NAME, copy the binary to
# $bins/NAME-VARIANT.
cmake_example() {
  local name=$1 variant=$2; shift 2
  local b=$work/build-$name-$variant
  if cmake -S "$root/examples/$name" -B "$b" -DCMAKE_C_FLAGS="$cflags" "$@" >"$log" 2>&1 &&
    cmake --build "$b" >>"$log" 2>&1; then
    cp "$b/$name" "$bins/$name-$variant" 2>/dev/null || cp "$b"/*.so "$bins/" 2>/dev/null
    record "build $name ($variant)" 0
  else
    cat "$log"; record "build $name ($variant)" 1 "see log above"
  fi
}

for ex in embed-minimal embed-hooks embed-publisher; do
  cmake_example $ex find_package
  cmake_example $ex cmake_pkgconfig -DPARLEY_USE_PKGCONFIG=ON
  # The plain compiler line a Makefile user writes.
  if cc -std=gnu17 $cflags -o "$bins/$ex-cc_pkgconfig" "$root/examples/$ex/main.c" \
    $(pkg-config --cflags --libs parley) -Wl,-rpath,"$prefix/lib" >"$log" 2>&1; then
    record "build $ex (cc + pkg-config)" 0
  else
    cat "$log"; record "build $ex (cc + pkg-config)" 1 "see log above"
  fi
done
cmake_example embed-publisher static -DPARLEY_STATIC=ON
cmake_example client-bot cmake
cmake_example c-plugin find_package

# Do the binaries use the installed library (not the build tree's)?
# (ldd's output captured first: `ldd | grep -q` under pipefail fails when grep stops reading early)
linked=$(ldd "$bins/embed-minimal-find_package")
if grep -q "$prefix/lib/libparley.so" <<<"$linked"; then
  record "embed-minimal links the installed libparley.so" 0
else
  ldd "$bins/embed-minimal-find_package"; record "embed-minimal links the installed libparley.so" 1
fi

xml=$work/check.xml
"$PY" "$root/tests/embed/check.py" --root "$root" --prefix "$prefix" --bins "$bins" --junit "$xml" || fail=1

if [ -n "$junit" ]; then
  {
    echo "<testsuites><testsuite name=\"embed-build\">"
    for r in "${results[@]}"; do
      IFS='|' read -r n s m <<<"$r"
      n=${n//&/&amp;}; n=${n//</&lt;}; n=${n//\"/&quot;}
      if [ "$s" = 0 ]; then echo "<testcase classname=\"embed\" name=\"$n\"/>"
      else echo "<testcase classname=\"embed\" name=\"$n\"><failure message=\"failed\"/></testcase>"; fi
    done
    echo "</testsuite>"
    [ -f "$xml" ] && sed -e '1{/^<?xml/d}' "$xml"
    echo "</testsuites>"
  } >"$junit"
fi
[ $fail = 0 ] && echo "embed: all passed" || echo "embed: FAILED"
exit $fail
