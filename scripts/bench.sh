#!/usr/bin/env bash
# The main job: build, then the default corun bench suite on every visible GPU, with the JSON
# and the table kept under results/<date>_<card>_<N>gpu/. Extra arguments go to corun bench.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD_DIR:-$ROOT/build}
"$ROOT/scripts/build.sh" >/dev/null
NGPU=$(nvidia-smi -L 2>/dev/null | wc -l || echo 0)
CARD=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1 | tr ' ' '_' | tr -cd 'A-Za-z0-9_-')
DIR="$ROOT/results/$(date -u +%Y-%m-%d)_${CARD:-gpu}_${NGPU}gpu"
mkdir -p "$DIR"
"$BUILD/corun" bench --json "$DIR/bench.json" "$@" | tee "$DIR/bench.log"
python3 "$ROOT/scripts/plot.py" "$DIR/bench.json" 2>/dev/null || echo "(plots skipped: scripts/plot.py needs matplotlib)"
