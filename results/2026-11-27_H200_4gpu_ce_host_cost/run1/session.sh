#!/usr/bin/env bash
# Verify the refactored ce call path (2 and 4 GPUs); DDP 2 GPUs: does fewer runtime calls per
# collective (bigger chunks, no phases) shorten the step? (host-bound backward hypothesis)
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
timeout 120 ctest --test-dir $B -L ce -R "peer_exit_4|ce_preload_torch|ce_procs_mpirun" --timeout 60 --output-on-failure > $O/ce_tests_4gpu.log 2>&1; log "ce tests 4gpu rc=$?"
grep -E "Test +#|tests passed" $O/ce_tests_4gpu.log | tee -a $O/session.log
timeout 40 $B/tests/corun_gpu_ce_tests --gtest_filter='*EveryCollectiveDtypeAndSizeMatchesNccl' > $O/ce_threads4.log 2>&1; log "ce 4 gpus as threads rc=$?"; grep -E "OK \]|FAILED" $O/ce_threads4.log | tee -a $O/session.log
DDP2="torchrun --standalone --nproc_per_node=2 examples/ddp_gpt.py --steps 30 --warmup 10"
$V2 timeout 80 $DDP2 > $O/ddp2_stock.log 2>&1; log "ddp2 stock rc=$?"; grep "step median" $O/ddp2_stock.log | tee -a $O/session.log
for v in "default:" "c128:CORUN_CE_CHUNK=128M" "c128np:CORUN_CE_CHUNK=128M CORUN_CE_PHASES=0" "c64:CORUN_CE_CHUNK=64M" "np:CORUN_CE_PHASES=0"; do
  late 520 && break
  n=${v%%:*}; e=${v#*:}
  $V2 env $e timeout 80 $B/corun -p ce --report $O/ddp2_ce_${n}_%p.json -- $DDP2 > $O/ddp2_ce_$n.log 2>&1; log "ddp2 ce $n ($e) rc=$?"; grep -E "step median|copy engines" $O/ddp2_ce_$n.log | tee -a $O/session.log
done
late 540 || { $V2 timeout 60 $DDP2 --mode noop_hook > $O/ddp2_floor.log 2>&1; log "ddp2 floor rc=$?"; grep "step median" $O/ddp2_floor.log | tee -a $O/session.log; }
cd $O && tar czf all.tgz --exclude=session.log --exclude=all.tgz --exclude=build.log * ; find . -mindepth 1 ! -name session.log ! -name all.tgz -delete; ls -la $O
log done
