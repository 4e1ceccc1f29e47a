#!/usr/bin/env bash
# Installs what corun builds with, from Debian/Ubuntu packages, when it is missing:
# CMake, Ninja, GoogleTest, nlohmann-json, CLI11, fmt. The CUDA toolkit and NCCL are expected
# to be there already (NCCL: NCCL_HOME, the toolkit, or the pip wheel nvidia-nccl-cu*).
# Prints the CMake prefix to use (empty, or the folder of unpacked packages in .deps/root/usr).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
pkgs=(cmake ninja-build g++ libgtest-dev nlohmann-json3-dev libcli11-dev libfmt-dev python3)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
# A tool that is on PATH (e.g. a newer cmake from pip) counts as present.
filtered=()
for p in "${missing[@]}"; do
  case "$p" in
    cmake) command -v cmake >/dev/null || filtered+=("$p") ;;
    ninja-build) command -v ninja >/dev/null || filtered+=("$p") ;;
    g++) command -v g++ >/dev/null || filtered+=("$p") ;;
    python3) command -v python3 >/dev/null || filtered+=("$p") ;;
    libgtest-dev) [ -f /usr/include/gtest/gtest.h ] || filtered+=("$p") ;;
    *) filtered+=("$p") ;;
  esac
done
if [ ${#filtered[@]} -gt 0 ]; then
  if [ -d "$ROOT/.deps/root/usr" ]; then
    echo "deps.sh: using unpacked packages in .deps/root for: ${filtered[*]}" >&2
  elif command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    echo "deps.sh: installing ${filtered[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >&2
    apt-get install -y -q --no-install-recommends "${filtered[@]}" >&2
  else
    echo "deps.sh: missing packages: ${filtered[*]} (install them, or run as root with apt-get)" >&2
    exit 1
  fi
fi
[ -d "$ROOT/.deps/root/usr" ] && echo "$ROOT/.deps/root/usr" || true
