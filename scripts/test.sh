#!/usr/bin/env bash
# Builds everything and runs the CPU test tier (no GPU needed). With a GPU: --gpu adds the
# gpu and multigpu tiers.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD_DIR:-$ROOT/build}
labels="cpu"
[ "${1:-}" = "--gpu" ] && labels="cpu|gpu|multigpu"
"$ROOT/scripts/build.sh"
ctest --test-dir "$BUILD" -L "$labels" --output-on-failure --timeout 600
