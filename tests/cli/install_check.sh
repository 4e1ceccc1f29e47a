#!/usr/bin/env bash
# install_check.sh BUILD_DIR [prefix|venv|all]: the two install routes, each checked from where it
# installs (not from the build tree):
#   prefix: `cmake --install` into a temporary prefix; corun --version and a dry run from there (the
#           library found beside it, in ../lib); a small CMake project built with find_package(corun).
#   venv:   `pip install .` into a fresh venv; corun --version and a dry run from the venv's bin.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=$(cd "$1" && pwd)
WHAT=${2:-prefix}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

# corun from an install: its version, and a dry run that finds the installed library (never the
# build tree's: the environment cannot point at it).
check_corun() {  # check_corun BIN_DIR LIB_DIR
  local corun=$1/corun lib
  [ -x "$corun" ] || fail "$corun not installed"
  "$corun" --version | grep -qx "corun [0-9.]*" || fail "$corun --version"
  out=$(env -u CORUN_PRELOAD_LIB "$corun" -p priority --dry-run -- true) || fail "$corun dry run"
  lib=$(printf '%s\n' "$out" | sed -n 's/^LD_PRELOAD=//p')
  [ "$lib" = "$(cd "$2" && pwd -P)/libcorun_preload.so" ] || fail "$corun found '$lib', not the one in $2"
  printf '%s\n' "$out" | grep -qx "CORUN_POLICY=priority" || fail "dry run: no CORUN_POLICY=priority"
  echo "ok: $corun --version: $("$corun" --version); dry run preloads $lib"
}

if [ "$WHAT" = prefix ] || [ "$WHAT" = all ]; then
  cmake --install "$BUILD" --prefix "$TMP/prefix" >/dev/null
  check_corun "$TMP/prefix/bin" "$TMP/prefix/lib"
  [ -f "$TMP/prefix/include/corun/policy.h" ] || fail "headers not installed"
  prefixes="$TMP/prefix"
  [ -d "$ROOT/.deps/root/usr" ] && prefixes="$prefixes;$ROOT/.deps/root/usr"
  cmake -S "$ROOT/tests/cli/consumer" -B "$TMP/consumer" -DCMAKE_PREFIX_PATH="$prefixes" >/dev/null \
    || fail "find_package(corun) against $TMP/prefix"
  cmake --build "$TMP/consumer" >/dev/null || fail "building against corun::core"
  [ "$("$TMP/consumer/consumer")" = "shape:2+priority" ] || fail "the consumer's output"
  echo "ok: find_package(corun) -> corun::core: a project built and ran against the installed prefix"
fi

if [ "$WHAT" = venv ] || [ "$WHAT" = all ]; then
  python3 -m venv "$TMP/venv" || fail "python3 -m venv (Debian: apt-get install python3-venv)"
  # Same compiler cache and prefixes as the build tree, when it has them.
  args=$(sed -n 's/^CMAKE_\(CXX_COMPILER_LAUNCHER\|CUDA_COMPILER_LAUNCHER\|PREFIX_PATH\|CUDA_ARCHITECTURES\):[A-Z]*=\(.*\)$/-DCMAKE_\1=\2/p' \
         "$BUILD/CMakeCache.txt" | tr '\n' ' ')
  CMAKE_ARGS="$args" "$TMP/venv/bin/pip" install -q "$ROOT" > "$TMP/pip.log" 2>&1 || { tail -40 "$TMP/pip.log"; fail "pip install ."; }
  check_corun "$TMP/venv/bin" "$TMP/venv/lib"
fi
