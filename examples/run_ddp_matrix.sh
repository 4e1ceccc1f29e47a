#!/usr/bin/env bash
# Runs examples/ddp_gpt.py unmodified under each variant (stock PyTorch, its own high-priority
# NCCL stream, corun policies) on every visible GPU, one JSON per variant in OUT, then the
# comparison table. Usage: examples/run_ddp_matrix.sh OUT [corun binary] [extra ddp_gpt.py args]
set -uo pipefail
OUT=${1:?usage: run_ddp_matrix.sh OUT [corun] [ddp args...]}
CORUN=${2:-$(dirname "$0")/../build/corun}
shift 2 || shift $#
mkdir -p "$OUT"
N=$(nvidia-smi -L | wc -l)
HERE=$(cd "$(dirname "$0")" && pwd)
run() {  # name, then the command prefix
  local name=$1; shift
  echo "## $name" >&2
  "$@" torchrun --standalone --nproc_per_node="$N" "$HERE/ddp_gpt.py" --variant "$name" \
      --out "$OUT/ddp_${N}gpu_${name//[:+]/_}.json" "${EXTRA[@]}" > "$OUT/log_${N}gpu_${name//[:+]/_}.txt" 2>&1
  local st=$?
  grep -E "^\[[a-z]|corun: pid" "$OUT/log_${N}gpu_${name//[:+]/_}.txt" | head -4
  [ $st -eq 0 ] || { grep -E "Error|error" "$OUT/log_${N}gpu_${name//[:+]/_}.txt" | tail -3; return 1; }
}
EXTRA=("$@")
rc=0
run stock env || rc=1
run torch_high_priority env TORCH_NCCL_HIGH_PRIORITY=1 || rc=1
for p in ${CORUN_POLICIES:-priority shape:2+priority shape:4+priority smtarget:auto smtarget:auto+priority ncclctas:16+priority}; do
  run "$p" "$CORUN" -p "$p" --report "$OUT/report_${N}gpu_${p//[:+]/_}_%p.json" -- || rc=1
done
python3 "$HERE/compare_ddp.py" "$OUT"/ddp_${N}gpu_*.json || rc=1
exit $rc
