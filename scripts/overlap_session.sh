#!/usr/bin/env bash
# One GPU session for docs/OVERLAP.md: examples/ddp_gpt.py on every visible GPU in the variants
# that take DDP's gradient communication apart (stock, no_sync, noop_hook) and under corun
# policies, each plain (CUDA-event step times) and under `corun trace`; then
# scripts/overlap_report.py. Usage: scripts/overlap_session.sh OUT
#
# Comes back in OUT (at most 7 files): overlap_session.tgz (every log, JSON, record file and trace
# summary), session.log, overlap_report.md, overlap_report.json and up to three timelines (PNG).
# Environment:
#   BUILD_DIR          corun is taken from there as it is (built with scripts/build.sh only if absent)
#   OVERLAP_POLICIES   corun policies to run besides stock (default "priority ce")
#   OVERLAP_REPS       plain runs per variant (default 2; traced runs: one)
#   OVERLAP_STEPS      steps per run (default 30, the first 10 are warm-up)
#   OVERLAP_TIMEOUT    seconds per run before it is stopped (default 60)
#   NGPU, TORCHRUN     GPUs to use (default: all that nvidia-smi lists) and the torchrun command
#   OVERLAP_WORK       the work folder (default OUT_work/w; its last component is the tarball's root)
set -uo pipefail
FINAL=${1:?usage: overlap_session.sh OUT}
# Everything lands in a work folder beside OUT, then one tarball in OUT (the device returns few files).
OUT=${OVERLAP_WORK:-${FINAL%/}_work/w}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
B=${BUILD_DIR:-$ROOT/build}
C="$B/corun"
POLICIES=${OVERLAP_POLICIES-priority ce}
REPS=${OVERLAP_REPS:-2}
STEPS=${OVERLAP_STEPS:-30}
WARMUP=10
TMO=${OVERLAP_TIMEOUT:-60}
TORCHRUN=${TORCHRUN:-torchrun}
# Steps are cut at the torch.randint that opens each step in every mode (the per-step 1-float
# allreduces run in NCCL's generic kernel, whose name marks nothing).
MARK=kernel:DistributionRandomKernel
mkdir -p "$OUT" "$FINAL"
exec > >(tee -a "$FINAL/session.log") 2>&1
N=${NGPU:-$(nvidia-smi -L 2>/dev/null | wc -l)}
[ "$N" -ge 1 ] 2>/dev/null || { echo "overlap_session.sh: no GPU visible (nvidia-smi -L lists none; set NGPU)"; exit 2; }
echo "# $(date -u +%FT%TZ) $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -1), $N GPUs"
python3 -c "import torch; print('# torch', torch.__version__, 'CUDA', torch.version.cuda, 'NCCL', '.'.join(map(str, torch.cuda.nccl.version())))" 2>/dev/null
env | grep -E "^(NCCL_|TORCH_NCCL|CUDA_DEVICE_MAX|TORCH_SYMM|NVSHMEM_)" | sort | sed 's/^/# env /'
if [ ! -x "$C" ]; then
  echo "# building corun into $B"
  "$ROOT/scripts/build.sh" > "$OUT/build.log" 2>&1 || { tail -30 "$OUT/build.log"; exit 1; }
fi
"$C" --version

# The variants: slug, name, mode, policy (the report reads this table).
printf '%s\t%s\t%s\t%s\n' stock stock stock "" no_sync no_sync no_sync "" noop_hook noop_hook noop_hook "" > "$OUT/variants.tsv"
for p in $POLICIES; do printf '%s\t%s\t%s\t%s\n' "${p//[^A-Za-z0-9_-]/_}" "$p" stock "$p" >> "$OUT/variants.tsv"; done

DDP=(--standalone --nproc_per_node="$N" "$ROOT/examples/ddp_gpt.py" --steps "$STEPS" --warmup "$WARMUP")
smi_start() {  # power, SM clock and throttle reasons every 200 ms during a run
  SMI=""
  command -v nvidia-smi >/dev/null || return 0
  nvidia-smi --query-gpu=timestamp,index,power.draw,clocks.sm,clocks_throttle_reasons.active \
    --format=csv,noheader,nounits -lms 200 > "$1" 2>/dev/null &
  SMI=$!
}
smi_stop() { [ -n "$SMI" ] && kill "$SMI" 2>/dev/null; wait "$SMI" 2>/dev/null; SMI=""; }
plain() {  # slug mode policy rep
  local slug=$1 mode=$2 pol=$3 rep=$4 pre=() t0 st
  [ -n "$pol" ] && pre=("$C" -p "$pol" --)
  t0=$(date +%s)
  smi_start "$OUT/smi_${slug}.r$rep.csv"
  timeout -k 10 "$TMO" "${pre[@]}" $TORCHRUN "${DDP[@]}" --mode "$mode" --variant "${pol:-$slug}" \
    --out "$OUT/plain_${slug}.r$rep.json" > "$OUT/plain_${slug}.r$rep.txt" 2>&1
  st=$?
  smi_stop
  echo "## plain $slug r$rep: exit $st, $(( $(date +%s) - t0 )) s: $(grep -E '^\[|^corun' "$OUT/plain_${slug}.r$rep.txt" | tail -1)"
}
traced() {  # slug mode policy
  local slug=$1 mode=$2 pol=$3 pa=() t0 st
  [ -n "$pol" ] && pa=(-p "$pol")
  t0=$(date +%s)
  timeout -k 15 "$TMO" "$C" trace "${pa[@]}" -o "$OUT/trace_$slug" --steps "$MARK" --skip "$WARMUP" -- \
    $TORCHRUN "${DDP[@]}" --mode "$mode" --variant "${pol:-$slug}" --out "$OUT/traced_$slug.json" \
    > "$OUT/traced_$slug.txt" 2>&1
  st=$?
  echo "## traced $slug: exit $st, $(( $(date +%s) - t0 )) s: $(grep -E '^\[|^corun' "$OUT/traced_$slug.txt" | tail -1)"
  grep -E "^  r[0-9]|^# r0:" "$OUT/traced_$slug.txt" | head -3
}
while IFS=$'\t' read -r slug name mode pol; do plain "$slug" "$mode" "$pol" 1; done < "$OUT/variants.tsv"
while IFS=$'\t' read -r slug name mode pol; do traced "$slug" "$mode" "$pol"; done < "$OUT/variants.tsv"
for ((r = 2; r <= REPS; r++)); do
  while IFS=$'\t' read -r slug name mode pol; do plain "$slug" "$mode" "$pol" "$r"; done < "$OUT/variants.tsv"
done

python3 "$ROOT/scripts/overlap_report.py" "$OUT" --md "$FINAL/overlap_report.md" --json "$FINAL/overlap_report.json"
for v in stock noop_hook no_sync; do
  [ -f "$OUT/trace_$v/summary.json" ] &&
    python3 "$ROOT/scripts/trace_plot.py" "$OUT/trace_$v" --steps 2 -o "$FINAL/timeline_$v.png" 2>&1 | tail -1
done
# The Perfetto files are left out (corun trace --analyze DIR remakes them from the records).
tar czf "$FINAL/overlap_session.tgz" --exclude 'trace.*.json' -C "$(dirname "$OUT")" "$(basename "$OUT")"
du -sh "$FINAL"/*
