#!/usr/bin/env bash
# Configures and builds everything (host core, CUDA runtime, corun, tests) into build/.
# Extra arguments go to CMake (e.g. -DCMAKE_CUDA_ARCHITECTURES=80;90 or -DNCCL_HOME=/opt/nccl).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PREFIX=$("$ROOT/scripts/deps.sh")
BUILD=${BUILD_DIR:-$ROOT/build}
export PATH=/usr/local/cuda/bin:$PATH
# ccache, where installed, makes rebuilds of several checkouts cheap; it changes nothing else.
LAUNCH=()
if command -v ccache >/dev/null; then
  LAUNCH=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_CUDA_COMPILER_LAUNCHER=ccache)
fi
cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release ${PREFIX:+-DCMAKE_PREFIX_PATH=$PREFIX} ${LAUNCH[@]+"${LAUNCH[@]}"} "$@"
cmake --build "$BUILD" -j"$(nproc)"
