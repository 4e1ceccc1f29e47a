#!/usr/bin/env bash
# Phases in the push form, pushes by default on more than 2 ranks: tests (2 and 4 GPUs), 4-rank
# bandwidth alone, the bench on 4 processes, DDP on 4 GPUs.
set -u
O=$OUT; B=/root/b; t0=$(date +%s)
late(){ [ $(( $(date +%s)-t0 )) -gt ${1:-500} ]; }
log(){ echo "[$(( $(date +%s)-t0 ))s] $*" | tee -a $O/session.log; }
{ date -u; nvidia-smi --query-gpu=index,name,driver_version --format=csv; python3 -c 'import torch;print(torch.__version__, torch.cuda.nccl.version())'; env | grep -E '^(NCCL|CUDA_|TORCH_SYMM|NVSHMEM)'; } > $O/env.txt 2>&1
cmake -S . -B $B -G Ninja -DCMAKE_BUILD_TYPE=Release > $O/build.log 2>&1 && cmake --build $B -j64 >> $O/build.log 2>&1 || { log BUILD FAILED; tail -30 $O/build.log; exit 1; }
log built
export CUDA_DEVICE_MAX_CONNECTIONS=32
V2="env CUDA_VISIBLE_DEVICES=0,1"
$V2 timeout 150 ctest --test-dir $B -L ce -E "ce_preload_torch" --timeout 60 --output-on-failure > $O/ce_tests_2gpu.log 2>&1; log "ce tests 2gpu rc=$?"
grep -E "Test +#|tests passed" $O/ce_tests_2gpu.log | tee -a $O/session.log
timeout 60 $B/tests/corun_gpu_ce_tests --gtest_filter='*EveryCollectiveDtypeAndSizeMatchesNccl:*StressedProtocolConfiguration' > $O/ce_threads4.log 2>&1; log "ce 4 gpus as threads rc=$?"; grep -E "OK \]|FAILED" $O/ce_threads4.log | tee -a $O/session.log
timeout 120 ctest --test-dir $B -L ce -R "peer_exit_4|ce_preload_torch|ce_procs_mpirun" --timeout 60 --output-on-failure > $O/ce_tests_4gpu.log 2>&1; log "ce tests 4gpu rc=$?"
grep -E "Test +#|tests passed" $O/ce_tests_4gpu.log | tee -a $O/session.log
for v in "def:" "c128s4:--chunk-mib 128 --slots 4" "c64s8:--chunk-mib 64 --slots 8"; do n=${v%%:*}; a=${v#*:}
  late 300 && break
  timeout 60 $B/tests/ce_bench --gpus 4 --alone-only --sizes-mib 224,896 --reps 6 --warmup 2 $a --out $O/ce4_$n.json > $O/ce4_$n.log 2>&1; log "ce4 $n rc=$?"; grep -E "alone/" $O/ce4_$n.log | tee -a $O/session.log
done
for r in 0 1 2 3; do
  RANK=$r WORLD_SIZE=4 LOCAL_RANK=$r MASTER_ADDR=127.0.0.1 MASTER_PORT=29604 timeout -k 5 120 \
    $B/corun bench -o allreduce -b 896M --compute cublaslt --gemm 8192x8192x8192 -p sequential,overlap,ce -n 10 \
    --json $O/bench_p4_r$r.json > $O/bench_p4_r$r.log 2>&1 &
done; wait; log "bench p4"; grep -E "^  |workload" $O/bench_p4_r0.log | tee -a $O/session.log
DDP4="torchrun --standalone --nproc_per_node=4 examples/ddp_gpt.py --steps 30 --warmup 10"
late 470 || { timeout 60 $DDP4 > $O/ddp4_stock.log 2>&1; log "ddp4 stock rc=$?"; grep "step median" $O/ddp4_stock.log | tee -a $O/session.log; }
late 500 || { CORUN_CE_MAX_RANKS=4 timeout 70 $B/corun -p ce --report $O/ddp4_ce_%p.json -- $DDP4 > $O/ddp4_ce.log 2>&1; log "ddp4 ce rc=$?"; grep -E "step median|copy engines" $O/ddp4_ce.log | tee -a $O/session.log; }
late 530 || { CORUN_CE_MAX_RANKS=4 CORUN_CE_CHUNK=128M CORUN_CE_SLOTS=4 timeout 60 $B/corun -p ce --report $O/ddp4_ce128_%p.json -- $DDP4 > $O/ddp4_ce128.log 2>&1; log "ddp4 ce c128 s4 rc=$?"; grep -E "step median|copy engines" $O/ddp4_ce128.log | tee -a $O/session.log; }
cd $O && tar czf all.tgz --exclude=session.log --exclude=all.tgz --exclude=build.log * ; find . -mindepth 1 ! -name session.log ! -name all.tgz -delete
log done
