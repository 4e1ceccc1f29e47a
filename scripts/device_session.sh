#!/usr/bin/env bash
# One GPU session's work: configure + build, the GPU test tiers, then benchmarks; logs and JSON
# go to OUT. Usage: scripts/device_session.sh OUT [smoke|full|bench] [extra corun bench flags...]
#   smoke: build, every test tier, corun info, a short bench on small sizes (all policies)
#   full:  build, every test tier, corun info, the default bench suite
#   bench: build, then only the default bench suite
#   preload: build, the cpu and gpu tiers (interposer checks included), launch cost, the DDP matrix
#   ddp: build, the DDP matrix only
#   tune: build, corun tune --sweep on own GEMM and cuBLAS x allreduce/allgather/alltoall
#         (TUNE_COMPUTE=tiled64x64x64 or cublaslt takes half: the six do not fit one 10-minute call)
#   tests: build, the cpu, gpu and multigpu tiers (interposer GPU checks included), launch cost
#   procs: build, a short bench of every policy (one process), then mpirun and torchrun runs
#   check: build, the cpu, gpu and multigpu tiers (interposer, set-up failure, trace), the
#          copy-engine tests one by one under a time limit (CORUN_CE_DEBUG=1), a short bench of
#          the main policies in one process and under mpirun
#   ce: build, the copy-engine tests (threads, processes), ce_bench --quick, the bench's ce rows
#   ce4: build, ce_bench with every GPU as threads, p2p_probe, the zero-CTA check 5 times, every ce test,
#        the bench with one process per GPU (2 and all GPUs), the DDP example without
#        communication / stock / ce / ce traced
#   app: build, corun tune -- CMD on the DDP example (scored by its printed step time), then
#        corun -p tuned -- CMD
# Header-only dependencies that the GPU image lacks can be carried in .deps/root (extracted
# Debian packages); NCCL is found through NCCL_HOME, the CUDA toolkit, or python3's wheel.
set -uo pipefail
OUT=${1:?usage: device_session.sh OUT [smoke|full|bench] [bench flags...]}
MODE=${2:-smoke}
shift 2 || shift $#
mkdir -p "$OUT"
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD_DIR:-$ROOT/build-gpu}
NGPU=$(nvidia-smi -L 2>/dev/null | wc -l)
CARD=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1 | tr ' ' '_' | tr -cd 'A-Za-z0-9_-')
TAG="$(date -u +%Y-%m-%d)_${CARD:-gpu}_${NGPU}gpu"

{
  echo "# date: $(date -u +%FT%TZ)"
  nvidia-smi --query-gpu=index,name,driver_version,memory.total,clocks.max.sm,power.limit --format=csv
  nvidia-smi topo -m 2>/dev/null | head -12
  nvcc --version | tail -1
  cmake --version | head -1
  env | grep -E '^(NCCL|TORCH_SYMM|NVSHMEM|CUDA_)' | sort
} > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

PREFIX=""
[ -d "$ROOT/.deps/root/usr" ] && PREFIX="-DCMAKE_PREFIX_PATH=$ROOT/.deps/root/usr"
t0=$(date +%s)
if ! { cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release $PREFIX &&
       cmake --build "$BUILD" -j"$(nproc)"; } > "$OUT/build.log" 2>&1; then
  tail -40 "$OUT/build.log"
  echo "BUILD FAILED"
  exit 1
fi
echo "# build: $(( $(date +%s) - t0 )) s"
grep -E "Found NCCL|Found CUDAToolkit" "$OUT/build.log"
rm -f "$OUT/build.log"  # kept only when the build fails
CORUN="$BUILD/corun"
rc=0

if [ "$MODE" = tune ]; then
  COMPUTE=${TUNE_COMPUTE:-tiled64x64x64,cublaslt}
  SUFFIX=${COMPUTE//,/_}
  "$CORUN" tune --sweep --compute "$COMPUTE" --gemm 8192x8192x8192 -o allreduce,allgather,alltoall \
    --cache "$OUT/profiles_$SUFFIX.json" --watchdog 300 --json "$OUT/tune_${TAG}_$SUFFIX.json" "$@" \
    > "$OUT/tune_$SUFFIX.log" 2> "$OUT/tune_progress_$SUFFIX.log" || rc=1
  grep -E "^# (tuned|sweep|workload)|Out of bounds|error" "$OUT/tune_$SUFFIX.log"
  tail -3 "$OUT/tune_progress_$SUFFIX.log"
  # The cached policy is what `-p tuned` runs.
  "$CORUN" bench -p tuned,overlap --compute "${COMPUTE%%,*}" --gemm 8192x8192x8192 -o allreduce --sustain 0.5 \
    --cache "$OUT/profiles_$SUFFIX.json" 2>/dev/null | grep -v "^corun" | tail -4 || rc=1
  echo "# session done in $(( $(date +%s) - t0 )) s, rc=$rc"
  exit $rc
fi

if [ "$MODE" = app ]; then
  # An unmodified PyTorch program: the search runs it under candidate policies through the
  # interposer and reads its printed median step time.
  APP=(torchrun --standalone --nproc_per_node="$NGPU" "$ROOT/examples/ddp_gpt.py" --steps 30 --warmup 10)
  "$CORUN" tune --runs "${APP_RUNS:-10}" --metric 'step median ([0-9.]+) ms' --cache "$OUT/app_profiles.json" \
    -- "${APP[@]}" > "$OUT/app_tune.log" 2>&1 || rc=1
  cat "$OUT/app_tune.log" | grep -v "^\[W"
  CORUN_CACHE="$OUT/app_profiles.json" "$CORUN" -p tuned -- "${APP[@]}" > "$OUT/app_tuned_run.log" 2>&1 || rc=1
  grep -E "^\[|corun: pid" "$OUT/app_tuned_run.log" | head -4
  echo "# session done in $(( $(date +%s) - t0 )) s, rc=$rc"
  exit $rc
fi

if [ "$MODE" = check ]; then
  (cd "$BUILD" && ctest -L "cpu|gpu|multigpu" --output-on-failure --timeout 120 -V) > "$OUT/tests.log" 2>&1 || rc=1
  grep -E "tests passed|Failed|FAILED|\*\*\*|Test +#[0-9]+: (preload_gpu|setup_failure|trace_gpu)" "$OUT/tests.log" | head -40
  for t in StressedProtocolConfiguration EveryCollectiveDtypeAndSizeMatchesNccl AbortEndsACollectiveWhosePeerNeverCame; do
    echo "## ce $t" >> "$OUT/ce.log"
    CORUN_CE_DEBUG=1 CUDA_DEVICE_MAX_CONNECTIONS=32 timeout -k 5 45 "$BUILD/tests/corun_gpu_ce_tests" \
      --gtest_filter="*$t" >> "$OUT/ce.log" 2>&1
    echo "## ce $t rc=$?" | tee -a "$OUT/ce.log"
  done
  grep -E "stuck|Failure|rank [0-9]: init: usable|FAILED" "$OUT/ce.log" | head -12
  SMALL=(--compute tiled64x64x64,cublaslt --gemm 4096x4096x4096 -b 256M -p sequential,overlap,priority,shape:4+priority,smtarget:auto
         --sustain 0.2 -n 3 -w 1 --watchdog 120)
  "$CORUN" bench "${SMALL[@]}" --json "$OUT/bench_short_$TAG.json" > "$OUT/bench.log" 2>&1 || rc=1
  grep -vE "^corun: \[" "$OUT/bench.log" | grep -E "^  |wrong|error" | head -14
  if [ "$NGPU" -ge 2 ]; then
    mpirun --allow-run-as-root --oversubscribe -np "$NGPU" "$CORUN" bench "${SMALL[@]}" > "$OUT/mpirun.log" 2>&1
    echo "## mpirun exit $?" | tee -a "$OUT/mpirun.log"
  fi
  echo "# session done in $(( $(date +%s) - t0 )) s, rc=$rc"
  exit $rc
fi

if [ "$MODE" = ce ]; then
  # Copy-engine collectives: the tests (threads, then one process per GPU), the standalone
  # CE-vs-NCCL measurement, then the bench's ce rows beside the SM policies (threads, mpirun).
  export CORUN_CE_DEBUG=${CORUN_CE_DEBUG:-0}
  (cd "$BUILD" && ctest -L ce --output-on-failure --timeout 90) > "$OUT/ce_tests.log" 2>&1 || rc=1
  grep -E "tests passed|Failed|FAILED|\*\*\*" "$OUT/ce_tests.log" | head -12
  CUDA_DEVICE_MAX_CONNECTIONS=32 timeout -k 5 120 "$BUILD/tests/ce_bench" --quick --out "$OUT/ce_bench_quick_$TAG.json" \
    > "$OUT/ce_bench_quick.log" 2>&1; echo "## ce_bench --quick exit $?" | tee -a "$OUT/ce_bench_quick.log"
  grep -vE "^corun ce:" "$OUT/ce_bench_quick.log" | tail -14
  CEB=(-p sequential,overlap,priority,ce,ce+shape:2 -o allreduce --watchdog 90 -n 5 -w 2 --sustain 0.3)
  timeout -k 5 200 "$CORUN" bench "${CEB[@]}" --compute cublaslt,tiled64x64x64 --gemm 8192x8192x8192 -b 896M \
    --json "$OUT/bench_ce_$TAG.json" > "$OUT/bench_ce.log" 2>&1; echo "## bench ce exit $?" | tee -a "$OUT/bench_ce.log"
  grep -vE "^corun: \[" "$OUT/bench_ce.log" | grep -E "^  |^#|wrong|error|ce" | head -30
  timeout -k 5 120 "$CORUN" bench "${CEB[@]}" --compute cublaslt --gemm 1024x16384x4096 --gemms 32 -b 1000M \
    --json "$OUT/bench_ce_ddpmix_$TAG.json" > "$OUT/bench_ce_ddpmix.log" 2>&1; echo "## bench ddpmix exit $?" | tee -a "$OUT/bench_ce_ddpmix.log"
  grep -vE "^corun: \[" "$OUT/bench_ce_ddpmix.log" | grep -E "^  |^#|wrong|error|ce" | head -20
  if [ "$NGPU" -ge 2 ]; then
    timeout -k 5 150 mpirun --allow-run-as-root --oversubscribe -np "$NGPU" -x CUDA_DEVICE_MAX_CONNECTIONS=32 "$CORUN" bench "${CEB[@]}" \
      --compute cublaslt --gemm 8192x8192x8192 -b 896M --json "$OUT/bench_ce_mpirun_$TAG.json" > "$OUT/bench_ce_mpirun.log" 2>&1
    echo "## mpirun exit $?" | tee -a "$OUT/bench_ce_mpirun.log"
    grep -vE "^corun: \[" "$OUT/bench_ce_mpirun.log" | grep -E "^  |wrong|error" | head -12
  fi
  echo "# session done in $(( $(date +%s) - t0 )) s, rc=$rc"
  exit $rc
fi

if [ "$MODE" = ce4 ]; then
  # What a 4-GPU session checks on the copy-engine path: 4 ranks as threads (push form with copied
  # flags, ce_setup.cpp), the zero-CTA check with aligned holds (5 repetitions), every ce test on
  # all GPUs, and the DDP example stock / ce with a trace of the ce run.
  export CUDA_DEVICE_MAX_CONNECTIONS=32
  timeout -k 5 60 "$BUILD/tests/ce_bench" --gpus "$NGPU" --alone-only --sizes-mib 25,224,896 --reps 8 --warmup 2 \
    --out "$OUT/ce_bench_threads_$TAG.json" > "$OUT/ce_bench_threads.log" 2>&1; echo "## ce_bench threads exit $?" | tee -a "$OUT/ce_bench_threads.log"
  grep -E "alone/" "$OUT/ce_bench_threads.log"
  # What the links carry by issue pattern (streams held behind a gate while queued).
  timeout -k 5 60 "$BUILD/tests/p2p_probe" --gpus "$NGPU" --mib 224 --chunk-mib 32 --reps 6 > "$OUT/p2p_probe_$TAG.jsonl" 2>&1 || rc=1
  cat "$OUT/p2p_probe_$TAG.jsonl"
  CUDA_VISIBLE_DEVICES=0,1 timeout -k 5 120 "$BUILD/tests/corun_gpu_tests" --gtest_filter='NcclZeroMultiGpu.*' --gtest_repeat=5 \
    > "$OUT/nccl_zero_repeat.log" 2>&1 || rc=1
  grep -E "CTA policy|FAILED  \]" "$OUT/nccl_zero_repeat.log" | sort | uniq -c
  (cd "$BUILD" && ctest -L ce --output-on-failure --timeout 120) > "$OUT/ce_tests.log" 2>&1 || rc=1
  grep -E "Test +#|tests passed" "$OUT/ce_tests.log"
  # The bench with one process per GPU (RANK/WORLD_SIZE), 2 GPUs and all: cuBLASLt 8192^3 + 896 MiB.
  for n in 2 "$NGPU"; do
    for r in $(seq 0 $((n - 1))); do
      RANK=$r WORLD_SIZE=$n LOCAL_RANK=$r MASTER_ADDR=127.0.0.1 MASTER_PORT=$((29600 + n)) timeout -k 5 120 \
        "$CORUN" bench -o allreduce -b 896M --compute cublaslt --gemm 8192x8192x8192 -p sequential,overlap,ce -n 10 \
        --json "$OUT/bench_procs${n}_r$r.json" > "$OUT/bench_procs${n}_r$r.log" 2>&1 &
    done
    wait
    grep -E "^  " "$OUT/bench_procs${n}_r0.log"
  done
  DDP=(torchrun --standalone --nproc_per_node="$NGPU" "$ROOT/examples/ddp_gpt.py" --steps 30 --warmup 10)
  timeout -k 5 100 "${DDP[@]}" --mode noop_hook > "$OUT/ddp_floor.log" 2>&1 || rc=1
  timeout -k 5 100 "${DDP[@]}" > "$OUT/ddp_stock.log" 2>&1 || rc=1
  CORUN_CE_MAX_RANKS="$NGPU" timeout -k 5 100 "$CORUN" -p ce --report "$OUT/ddp_ce_%p.json" -- "${DDP[@]}" > "$OUT/ddp_ce.log" 2>&1 || rc=1
  CORUN_CE_MAX_RANKS="$NGPU" timeout -k 5 150 "$CORUN" trace -p ce -o "$OUT/trace_ddp_ce" --steps kernel:DistributionRandomKernel --skip 10 \
    -- "${DDP[@]}" > "$OUT/ddp_ce_traced.log" 2>&1 || rc=1
  rm -f "$OUT"/trace_ddp_ce/trace.*.json
  # The step's parts on rank 0 (body, compute-stream idle and the part of it before a launch
  # call returned, tail, optimizer).
  python3 "$ROOT/scripts/trace_step_parts.py" "$OUT"/trace_ddp_ce/corun_trace.r0.*.jsonl > "$OUT/ddp_ce_step_parts.txt" 2>&1 || rc=1
  cat "$OUT/ddp_ce_step_parts.txt"
  grep -h "step median" "$OUT/ddp_floor.log" "$OUT/ddp_stock.log" "$OUT/ddp_ce.log" "$OUT/ddp_ce_traced.log"
  echo "# session done in $(( $(date +%s) - t0 )) s, rc=$rc"
  exit $rc
fi

if [ "$MODE" = tests ]; then
  (cd "$BUILD" && ctest -L "cpu|gpu|multigpu" --output-on-failure --timeout 300) > "$OUT/tests.log" 2>&1 || rc=1
  grep -E "tests passed|Failed|FAILED|\*\*\*" "$OUT/tests.log" | head -20
  {
    echo "{\"plain\": $("$BUILD/tests/launch_cost"),"
    echo " \"priority\": $("$CORUN" -p priority -- "$BUILD/tests/launch_cost" 2>/dev/null),"
    echo " \"shape:2+priority\": $("$CORUN" -p shape:2+priority -- "$BUILD/tests/launch_cost" 2>/dev/null)}"
  } > "$OUT/launch_cost.json"
  cat "$OUT/launch_cost.json"
  echo "# session done in $(( $(date +%s) - t0 )) s, rc=$rc"
  exit $rc
fi

if [ "$MODE" = preload ] || [ "$MODE" = ddp ]; then
  [ "$MODE" = ddp ] || (cd "$BUILD" && ctest -L "cpu|gpu" --output-on-failure --timeout 300 -V) > "$OUT/tests.log" 2>&1 || rc=1
  [ "$MODE" = ddp ] || grep -E "tests passed|Failed|FAILED|^[0-9]+: (ok|FAIL) |corun: pid" "$OUT/tests.log" | head -40
  [ "$MODE" = ddp ] || {
    echo "{\"plain\": $("$BUILD/tests/launch_cost"),"
    echo " \"priority\": $("$CORUN" -p priority -- "$BUILD/tests/launch_cost" 2>/dev/null),"
    echo " \"shape:2+priority\": $("$CORUN" -p shape:2+priority -- "$BUILD/tests/launch_cost" 2>/dev/null),"
    echo " \"hook_only_plain\": $("$BUILD/tests/hook_cost"),"
    echo " \"hook_only_priority\": $(CORUN_QUIET=1 "$CORUN" -p priority -- "$BUILD/tests/hook_cost"),"
    echo " \"hook_only_shape:2+priority\": $(CORUN_QUIET=1 "$CORUN" -p shape:2+priority -- "$BUILD/tests/hook_cost")}"
  } > "$OUT/launch_cost.json"
  [ "$MODE" = ddp ] || cat "$OUT/launch_cost.json"
  export PYTHONUNBUFFERED=1
  bash "$ROOT/examples/run_ddp_matrix.sh" "$OUT/ddp" "$CORUN" "$@" 2>&1 | tee "$OUT/ddp.log" || rc=1
  tar czf "$OUT/ddp_runs.tgz" -C "$OUT" ddp && rm -rf "$OUT/ddp"
  echo "# session done in $(( $(date +%s) - t0 )) s, rc=$rc"
  exit $rc
fi

if [ "$MODE" = smoke ] || [ "$MODE" = full ]; then
  (cd "$BUILD" &&
   ctest -L cpu --output-on-failure -E OccupancyFixture &&
   CORUN_FIXTURE_OUT="$OUT/occupancy_sm$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d .).json" \
     ctest -L gpu --output-on-failure --timeout 300 &&
   ctest -L multigpu --output-on-failure --timeout 300 -V) > "$OUT/tests.log" 2>&1 || rc=1
  grep -E "tests passed|Failed|FAILED|\[ info \]" "$OUT/tests.log"
  "$CORUN" info --json > "$OUT/info.json" 2>&1 || rc=1
  "$CORUN" info
fi

case "$MODE" in
  smoke)
    "$CORUN" bench --gemm 2048x2048x2048,4096x8192x2048 -b 64M --sustain 0.3 -n 5 -w 1 --watchdog 120 \
      --json "$OUT/bench_smoke_$TAG.json" "$@" 2>&1 | tee "$OUT/bench.log" || rc=1
    ;;
  procs)
    "$CORUN" bench --compute tiled64x64x64,cublaslt --gemm 4096x4096x4096 -b 256M --sustain 0.2 -n 3 -w 1 --watchdog 120 \
      --json "$OUT/bench_short_$TAG.json" "$@" > "$OUT/bench.log" 2>&1 || rc=1
    grep -vE "^corun: \[" "$OUT/bench.log" | tail -45
    ;;
  full|bench)
    "$CORUN" bench --watchdog 300 --json "$OUT/bench_$TAG.json" "$@" 2>&1 | tee "$OUT/bench.log" || rc=1
    ;;
esac
# Process models: one process per GPU under mpirun and under torchrun (short, checked runs).
if { [ "$MODE" = full ] || [ "$MODE" = procs ]; } && [ "$NGPU" -ge 2 ]; then
  SMALL=(--compute tiled64x64x64,cublaslt --gemm 4096x4096x4096 -b 256M -p sequential,overlap,priority,shape:2+priority,ncclctas:8
         --sustain 0.2 -n 3 -w 1 --watchdog 120)
  {
    echo "## mpirun -np $NGPU"
    mpirun --allow-run-as-root --oversubscribe -np "$NGPU" "$CORUN" bench "${SMALL[@]}" --json "$OUT/mpirun_$TAG.json"
    echo "## exit $?"
    echo "## torchrun --nproc_per_node=$NGPU"
    torchrun --standalone --nproc_per_node="$NGPU" --no-python "$CORUN" bench "${SMALL[@]}"
    echo "## exit $?"
  } > "$OUT/procs.log" 2>&1 || rc=1
  grep -E "^## |Out of bounds|process|error" "$OUT/procs.log" | head -20
  grep -q "## exit 0" "$OUT/procs.log" || rc=1
  [ "$(grep -c '## exit 0' "$OUT/procs.log")" -eq 2 ] || rc=1
fi
echo "# session done in $(( $(date +%s) - t0 )) s, rc=$rc"
exit $rc
