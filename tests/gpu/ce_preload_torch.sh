#!/bin/sh
# ce_preload_torch.py under `corun -p ce -- torchrun` on every visible GPU (2 at least): exact
# results, and every rank's report shows collectives served by the copy engines.
# Usage: ce_preload_torch.sh CORUN OUTDIR. Exit 77 without PyTorch or with fewer than 2 GPUs.
set -u
CORUN=$1
OUT=$2
HERE=$(cd "$(dirname "$0")" && pwd)
python3 -c "import torch, torch.distributed" 2>/dev/null || { echo "ce_preload_torch: no PyTorch: skipped"; exit 77; }
# The GPUs this process may use (CUDA_VISIBLE_DEVICES counts), not every GPU of the machine.
N=$(python3 -c "import torch; print(torch.cuda.device_count())" 2>/dev/null || echo 0)
[ "$N" -ge 2 ] || { echo "ce_preload_torch: $N GPUs, needs 2: skipped"; exit 77; }
rm -rf "$OUT" && mkdir -p "$OUT"
# Every rank count the GPUs allow is served (the interposer's default stops at 2 ranks).
export CORUN_CE_MAX_RANKS="${CORUN_CE_MAX_RANKS:-$N}"
timeout 280 "$CORUN" -p ce -v --report "$OUT/report_%p.json" -- \
  torchrun --standalone --nproc_per_node="$N" "$HERE/ce_preload_torch.py" || { echo "ce_preload_torch: FAIL: the run failed"; exit 1; }
python3 - "$OUT" "$N" <<'PY'
import glob, json, sys
out, n = sys.argv[1], int(sys.argv[2])
ranks = []
for path in glob.glob(f"{out}/report_*.json"):
    r = json.load(open(path))
    if r.get("ce_comms"):
        ranks.append(r)
        print(f"ce_preload_torch: pid {r['pid']}: served {r['ce_served']} ({r.get('ce_served_direct')} allreduces "
              f"by direct copies), to NCCL {r['ce_fallback']}, comms {r['ce_comms']}")
bad = [r["pid"] for r in ranks if r["ce_served"] == 0]
if len(ranks) != n or bad:
    print(f"ce_preload_torch: FAIL: {len(ranks)} of {n} ranks have a copy-engine communicator; none served on {bad}")
    sys.exit(1)
# PyTorch's caching allocator hands out cudaMalloc memory: allreduces go straight between the
# outputs (IPC-shared once per allocation) unless the ranks' calls are far apart in time.
nodirect = [r["pid"] for r in ranks if not r.get("ce_served_direct")]
if nodirect:
    print(f"ce_preload_torch: FAIL: no allreduce took the direct copies on {nodirect}")
    sys.exit(1)
print(f"ce_preload_torch: {n} ranks, every one served collectives by the copy engines")
PY
