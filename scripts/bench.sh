#!/usr/bin/env bash
# The main job: build, then the default corun bench suite on every visible GPU, with the JSON,
# the table and the machine's facts kept in a new folder named as results/README.md says:
# results/<date>_<card>_<N>gpu_<what> (what: $CORUN_RESULTS_TAG, default "bench"; _2, _3 ... if it
# exists). Extra arguments go to corun bench.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD_DIR:-$ROOT/build}
"$ROOT/scripts/build.sh" >/dev/null
NGPU=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
# "NVIDIA H100 80GB HBM3" -> H100: the first word with a digit, up to a '-'.
CARD=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1 |
       awk '{for (i = 1; i <= NF; i++) if ($i ~ /[0-9]/) {split($i, a, "-"); print a[1]; exit}}' | tr -cd 'A-Za-z0-9')
BASE="$ROOT/results/$(date -u +%Y-%m-%d)_${CARD:-gpu}_${NGPU}gpu_${CORUN_RESULTS_TAG:-bench}"
DIR=$BASE
for n in $(seq 2 99); do [ -e "$DIR" ] || break; DIR="${BASE}_$n"; done
mkdir -p "$DIR"
{
  date -u +%Y-%m-%dT%H:%M:%SZ
  echo "commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "command: corun bench $*"
  nvidia-smi 2>/dev/null || echo "(no nvidia-smi)"
  nvidia-smi topo -m 2>/dev/null || true
  "$BUILD/corun" info 2>&1 || true
} > "$DIR/env.txt"
echo "corun bench: results in ${DIR#"$ROOT"/}" >&2
"$BUILD/corun" bench --json "$DIR/bench.json" "$@" | tee "$DIR/bench.log"
python3 "$ROOT/scripts/plot.py" "$DIR/bench.json" 2>/dev/null || echo "(plots skipped: scripts/plot.py needs matplotlib)"
