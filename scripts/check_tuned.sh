#!/usr/bin/env bash
# GPU check of `--policies tuned` across ranks: a short tune fills a cache; the cached policy then
# runs in one process and under mpirun; finally rank 1 gets an empty cache, and every rank must
# skip the tuned row (no hang, exit 0). Usage: scripts/check_tuned.sh CORUN OUT
set -uo pipefail
CORUN=${1:?usage: check_tuned.sh CORUN OUT}
OUT=${2:?usage: check_tuned.sh CORUN OUT}
W=(--compute tiled64x64x64 --gemm 4096x4096x4096 -b 256M --sustain 0.2 -n 4 -w 1 --watchdog 60)
rc=0
"$CORUN" tune "${W[@]}" --cache "$OUT/p.json" > "$OUT/tuned_check.log" 2>/dev/null || rc=1
{
  echo "## bench -p tuned,overlap (threads)"
  "$CORUN" bench "${W[@]}" -p tuned,overlap --cache "$OUT/p.json" 2>/dev/null; echo "## exit $?"
  echo "## mpirun -np 2 bench -p tuned"
  mpirun --allow-run-as-root -np 2 "$CORUN" bench "${W[@]}" -p tuned --cache "$OUT/p.json" 2>/dev/null; echo "## exit $?"
  echo "## mpirun: rank 1 without the profile"
  mpirun --allow-run-as-root -np 1 "$CORUN" bench "${W[@]}" -p tuned --cache "$OUT/p.json" : \
         -np 1 "$CORUN" bench "${W[@]}" -p tuned --cache "$OUT/empty.json" 2>/dev/null; echo "## exit $?"
} >> "$OUT/tuned_check.log" 2>&1
grep -E "^# tuned|^## |^  (tuned|overlap|shape|priority|ncclctas|greenctx)" "$OUT/tuned_check.log"
[ "$(grep -c '^## exit 0' "$OUT/tuned_check.log")" -eq 3 ] || rc=1
grep -q "applied nowhere" "$OUT/tuned_check.log" || rc=1
exit $rc
