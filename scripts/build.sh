#!/usr/bin/env bash
# Configures and builds everything (host core, CUDA runtime, corun, tests) into build/.
# Extra arguments go to CMake (e.g. -DCMAKE_CUDA_ARCHITECTURES=80;90 or -DNCCL_HOME=/opt/nccl).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PREFIX=$("$ROOT/scripts/deps.sh")
BUILD=${BUILD_DIR:-$ROOT/build}
export PATH=/usr/local/cuda/bin:$PATH
cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release ${PREFIX:+-DCMAKE_PREFIX_PATH=$PREFIX} "$@"
cmake --build "$BUILD" -j"$(nproc)"
