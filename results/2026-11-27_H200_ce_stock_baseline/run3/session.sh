#!/usr/bin/env bash
# The tree to be committed (930361f + the abort test of a stalled bulk call + caller_stream_calls):
# its tests on 2 GPUs; DDP stock as it comes (no CUDA_DEVICE_MAX_CONNECTIONS) against stock with
# CUDA_DEVICE_MAX_CONNECTIONS=32 (what earlier runs exported for every row) and corun -p ce, three
# rounds alternating on 2 GPUs, one on 4; the 2-GPU floor.
set -u
O=$OUT; B=/root/b; t0=$(date +%s)
late(){ [ $(( $(date +%s)-t0 )) -gt ${1:-500} ]; }
log(){ echo "[$(( $(date +%s)-t0 ))s] $*" | tee -a $O/session.log; }
unset CUDA_DEVICE_MAX_CONNECTIONS
{ date -u; nvidia-smi --query-gpu=index,name,driver_version --format=csv; python3 -c 'import torch;print(torch.__version__, torch.cuda.nccl.version())'; env | grep -E '^(NCCL|CUDA_|TORCH_SYMM|NVSHMEM)'; git log --oneline -1 2>/dev/null; } > $O/env.txt 2>&1
cmake -S . -B $B -G Ninja -DCMAKE_BUILD_TYPE=Release > $O/build.log 2>&1 && cmake --build $B -j64 --target corun corun_preload corun_gpu_ce_tests >> $O/build.log 2>&1 || { log BUILD FAILED; tail -30 $O/build.log; exit 1; }
log built
(export CUDA_VISIBLE_DEVICES=0,1 CUDA_DEVICE_MAX_CONNECTIONS=32; timeout 60 $B/tests/corun_gpu_ce_tests --gtest_filter='*AbortEndsABulk*:*EveryCollective*:*PushForm*' > $O/t2.log 2>&1; log "2 gpus as threads rc=$?"; grep -E "OK \]|FAILED  \]|rank .*:" $O/t2.log | head -10 | tee -a $O/session.log)
DDP2="torchrun --standalone --nproc_per_node=2 examples/ddp_gpt.py --steps 30 --warmup 10"
d2(){ n=$1; shift; late ${LATE:-430} && return; "$@" > $O/ddp2_$n.log 2>&1; log "ddp2 $n rc=$?"; grep -E "step median|copy engines" $O/ddp2_$n.log | head -2 | tee -a $O/session.log; }
for i in 1 2 3; do
  (export CUDA_VISIBLE_DEVICES=0,1
  d2 stock$i timeout 50 $DDP2 --out $O/ddp2_stock$i.json
  d2 stock32_$i env CUDA_DEVICE_MAX_CONNECTIONS=32 timeout 50 $DDP2 --variant stock32 --out $O/ddp2_stock32_$i.json
  d2 ce$i timeout 50 $B/corun -p ce --report $O/ddp2_ce${i}_%p.json -- $DDP2 --out $O/ddp2_ce$i.json)
done
(export CUDA_VISIBLE_DEVICES=0,1; d2 noop timeout 50 $DDP2 --mode noop_hook --out $O/ddp2_noop.json)
DDP4="torchrun --standalone --nproc_per_node=4 examples/ddp_gpt.py --steps 30 --warmup 10"
d4(){ n=$1; shift; late ${LATE:-540} && return; "$@" > $O/ddp4_$n.log 2>&1; log "ddp4 $n rc=$?"; grep -E "step median|copy engines" $O/ddp4_$n.log | head -2 | tee -a $O/session.log; }
d4 stock timeout 60 $DDP4 --out $O/ddp4_stock.json
d4 stock32 env CUDA_DEVICE_MAX_CONNECTIONS=32 timeout 60 $DDP4 --variant stock32 --out $O/ddp4_stock32.json
d4 ce env CORUN_CE_MAX_RANKS=4 timeout 60 $B/corun -p ce --report $O/ddp4_ce_%p.json -- $DDP4 --out $O/ddp4_ce.json
cd $O && tar czf all.tgz --exclude=session.log --exclude=all.tgz --exclude=build.log * ; find . -mindepth 1 ! -name session.log ! -name all.tgz -delete
log done
