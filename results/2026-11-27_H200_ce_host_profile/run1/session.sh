#!/usr/bin/env bash
# One-chunk calls on the caller's stream: tests on 2 GPUs (and the multi-peer reduction kernel),
# the DDP step on 2 GPUs against stock and the lanes' path, the 4-GPU tests, DDP on 4 GPUs.
set -u
O=$OUT; B=/root/b; t0=$(date +%s)
late(){ [ $(( $(date +%s)-t0 )) -gt ${1:-500} ]; }
log(){ echo "[$(( $(date +%s)-t0 ))s] $*" | tee -a $O/session.log; }
{ date -u; nvidia-smi --query-gpu=index,name,driver_version --format=csv; nvidia-smi topo -m | head -6; python3 -c 'import torch;print(torch.__version__, torch.cuda.nccl.version())'; env | grep -E '^(NCCL|CUDA_|TORCH_SYMM|NVSHMEM)'; } > $O/env.txt 2>&1
cmake -S . -B $B -G Ninja -DCMAKE_BUILD_TYPE=Release > $O/build.log 2>&1 && cmake --build $B -j64 >> $O/build.log 2>&1 || { log BUILD FAILED; tail -30 $O/build.log; exit 1; }
log built
export CUDA_DEVICE_MAX_CONNECTIONS=32
V2="env CUDA_VISIBLE_DEVICES=0,1"
$V2 timeout 170 ctest --test-dir $B -L ce -E "ce_preload_torch|_4$" --timeout 90 --output-on-failure > $O/ce_tests_2gpu.log 2>&1; log "ce tests 2gpu rc=$?"
grep -E "Test +#|tests passed" $O/ce_tests_2gpu.log | tee -a $O/session.log
for m in one lanes; do a=--one-stream; [ $m = lanes ] && a=--no-one-stream
  $V2 timeout 40 $B/tests/ce_bench --gpus 2 --alone-only --sizes-mib 25,224 --reps 20 --warmup 3 $a --out $O/ce2_$m.json > $O/ce2_$m.log 2>&1; log "ce_bench 2gpu $m rc=$?"; grep -E "alone/" $O/ce2_$m.log | tee -a $O/session.log
done
DDP2="torchrun --standalone --nproc_per_node=2 examples/ddp_gpt.py --steps 30 --warmup 10"
ddp(){ n=$1; shift; late ${LATE:-330} && return; "$@" > $O/ddp2_$n.log 2>&1; log "ddp2 $n rc=$?"; grep -E "step median|copy engines|host" $O/ddp2_$n.log | tee -a $O/session.log; }
ce(){ n=$1; shift; ddp $n timeout 80 $B/corun -p ce --report $O/ddp2_${n}_%p.json -- $DDP2 --out $O/ddp2_$n.json "$@"; }
export CUDA_VISIBLE_DEVICES=0,1
ddp stock1 timeout 80 $DDP2 --out $O/ddp2_stock1.json
ce one1
CORUN_CE_ONE_STREAM=0 ce lanes1
ce one_hook110 --hook-delay-us 110
ddp stock2 timeout 80 $DDP2 --out $O/ddp2_stock2.json
ce one2
CORUN_CE_ONE_STREAM=0 ce lanes2
ddp floor timeout 80 $DDP2 --out $O/ddp2_floor.json --mode noop_hook
unset CUDA_VISIBLE_DEVICES
late 420 || { timeout 70 $B/tests/corun_gpu_ce_tests --gtest_filter='*EveryCollectiveDtypeAndSizeMatchesNccl:*StressedProtocolConfiguration:*OneChunkCalls*:CeReduceKernel*' > $O/ce_threads4.log 2>&1; log "ce 4 gpus as threads rc=$?"; grep -E "OK \]|FAILED" $O/ce_threads4.log | tee -a $O/session.log; }
late 440 || { timeout 100 ctest --test-dir $B -L ce -R "_4$" --timeout 60 --output-on-failure > $O/ce_tests_4gpu.log 2>&1; log "ce tests 4gpu rc=$?"; grep -E "Test +#|tests passed" $O/ce_tests_4gpu.log | tee -a $O/session.log; }
DDP4="torchrun --standalone --nproc_per_node=4 examples/ddp_gpt.py --steps 30 --warmup 10"
late 500 || { timeout 60 $DDP4 --out $O/ddp4_stock.json > $O/ddp4_stock.log 2>&1; log "ddp4 stock rc=$?"; grep "step median" $O/ddp4_stock.log | tee -a $O/session.log; }
late 530 || { CORUN_CE_MAX_RANKS=4 timeout 60 $B/corun -p ce --report $O/ddp4_ce_%p.json -- $DDP4 --out $O/ddp4_ce.json > $O/ddp4_ce.log 2>&1; log "ddp4 ce rc=$?"; grep -E "step median|copy engines" $O/ddp4_ce.log | tee -a $O/session.log; }
cd $O && tar czf all.tgz --exclude=session.log --exclude=all.tgz --exclude=build.log * ; find . -mindepth 1 ! -name session.log ! -name all.tgz -delete
log done
