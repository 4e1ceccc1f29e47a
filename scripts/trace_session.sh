#!/usr/bin/env bash
# One GPU session for corun trace: build, the trace GPU test, corun bench with and without the
# trace (agreement with the bench's event timings, overhead), and the DDP example traced on every
# GPU. Usage: scripts/trace_session.sh OUT   (logs and JSON under OUT, small files only)
set -uo pipefail
FINAL=${1:?usage: trace_session.sh OUT}
OUT="$FINAL/w"   # everything lands here, then one tarball (the device returns few files)
ROOT=$(cd "$(dirname "$0")/.." && pwd)
B=${BUILD_DIR:-$ROOT/build}
mkdir -p "$OUT"
LOG="$OUT/session.log"
exec > >(tee -a "$LOG") 2>&1
echo "# $(date -u +%FT%TZ) $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | head -1), $(nvidia-smi -L | wc -l) GPUs"
python3 -c "import nvidia, os; print('# nvidia wheels:', sorted(os.listdir(list(nvidia.__path__)[0])))" 2>/dev/null
"$ROOT/scripts/build.sh" > "$OUT/build.log" 2>&1 || { tail -30 "$OUT/build.log"; exit 1; }
grep -E "CUPTI|NCCL" "$OUT/build.log" | head -3
C="$B/corun"
ctest --test-dir "$B" -R "trace" --output-on-failure --timeout 120 2>&1 | tail -25
BENCH=(bench -g 2 -p overlap,priority --compute tiled64x64x64 --gemm 4096x4096x4096 -b 256M --sustain 0.5 -n 5 --no-probe)
t0=$(date +%s.%N); "$C" "${BENCH[@]}" --json "$OUT/bench_plain.json" > "$OUT/bench_plain.txt" 2>&1; t1=$(date +%s.%N)
"$C" trace -o "$OUT/bench_trace" -- "$C" "${BENCH[@]}" --json "$OUT/bench_traced.json" > "$OUT/bench_traced.txt" 2>&1; t2=$(date +%s.%N)
"$C" "${BENCH[@]}" --json "$OUT/bench_plain2.json" > "$OUT/bench_plain2.txt" 2>&1
echo "# wall: plain $(echo "$t1 - $t0" | bc) s, traced $(echo "$t2 - $t1" | bc) s"
cat "$OUT/bench_traced.txt"
grep -E "^  (overlap|priority)" "$OUT/bench_plain.txt" "$OUT/bench_plain2.txt"
python3 "$ROOT/scripts/trace_vs_bench.py" "$OUT/bench_trace" "$OUT/bench_traced.json" | tee "$OUT/trace_vs_bench.txt"
python3 "$ROOT/scripts/trace_plot.py" "$OUT/bench_trace" --steps 3 -o "$OUT/bench_timeline.png" 2>&1 | tail -1
# The DDP example: plain, then traced (steps cut at the torch.randint that opens each step).
N=$(nvidia-smi -L | wc -l)
DDP=(--standalone --nproc_per_node="$N" "$ROOT/examples/ddp_gpt.py" --steps ${DDP_STEPS:-30} --warmup 10)
timeout 200 torchrun "${DDP[@]}" --out "$OUT/ddp_plain.json" > "$OUT/ddp_plain.txt" 2>&1; tail -2 "$OUT/ddp_plain.txt"
timeout 200 "$C" trace -o "$OUT/ddp_trace" --steps kernel:DistributionRandomKernel --skip 10 -- torchrun "${DDP[@]}" --out "$OUT/ddp_traced.json" > "$OUT/ddp_traced.txt" 2>&1
cat "$OUT/ddp_traced.txt" | grep -v "^W\|warn" | tail -40
python3 "$ROOT/scripts/trace_plot.py" "$OUT/ddp_trace" --steps 2 -o "$OUT/ddp_timeline.png" 2>&1 | tail -1
cp "$OUT"/*.png "$FINAL/" 2>/dev/null
tar czf "$FINAL/trace_session.tgz" --exclude '*.png' -C "$FINAL" w
du -sh "$FINAL"/*
