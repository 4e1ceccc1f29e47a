#!/usr/bin/env bash
# Direct all-gather copies (CeConfig::direct): tests on 2 and 4 GPUs, the allreduce alone, DDP on
# 2 and 4 GPUs against stock and the staging path.
set -u
O=$OUT; B=/root/b; t0=$(date +%s)
late(){ [ $(( $(date +%s)-t0 )) -gt ${1:-500} ]; }
log(){ echo "[$(( $(date +%s)-t0 ))s] $*" | tee -a $O/session.log; }
{ date -u; nvidia-smi --query-gpu=index,name,driver_version --format=csv; nvidia-smi topo -m; python3 -c 'import torch;print(torch.__version__, torch.cuda.nccl.version())'; env | grep -E '^(NCCL|CUDA_|TORCH_SYMM|NVSHMEM)'; } > $O/env.txt 2>&1
cmake -S . -B $B -G Ninja -DCMAKE_BUILD_TYPE=Release > $O/build.log 2>&1 && cmake --build $B -j64 --target corun corun_preload corun_gpu_ce_tests ce_procs_check ce_bench >> $O/build.log 2>&1 || { log BUILD FAILED; tail -30 $O/build.log; exit 1; }
log built
export CUDA_DEVICE_MAX_CONNECTIONS=32
NG=$(nvidia-smi -L | grep -c ^GPU)
# 2 GPUs: the ce tests (threads), processes, PyTorch under the interposer.
CUDA_VISIBLE_DEVICES=0,1 timeout 150 $B/tests/corun_gpu_ce_tests --gtest_filter='CeColl*' > $O/ce_tests_2gpu.log 2>&1; log "ce tests 2gpu rc=$?"; grep -E "OK \]|FAILED|rank .*:" $O/ce_tests_2gpu.log | head -20 | tee -a $O/session.log
CUDA_VISIBLE_DEVICES=0,1 timeout 100 sh tests/gpu/ce_procs_check.sh $B/tests/ce_procs_check match 2 > $O/procs2.log 2>&1; log "procs 2 rc=$?"; grep -E "direct|FAIL|matched" $O/procs2.log | head -12 | tee -a $O/session.log
CUDA_VISIBLE_DEVICES=0,1 timeout 120 sh tests/gpu/ce_preload_torch.sh $B/corun $O/torch2 > $O/torch2.log 2>&1; log "torch 2 rc=$?"; grep -E "ce_preload_torch" $O/torch2.log | tail -4 | tee -a $O/session.log
# The allreduce alone, 2 GPUs: direct against the staging.
for m in direct no-direct direct no-direct; do
  CUDA_VISIBLE_DEVICES=0,1 timeout 60 $B/tests/ce_bench --gpus 2 --alone-only --sizes-mib 25,224,896 --reps 10 --warmup 2 --$m --out $O/ce2_$m.json > $O/ce2_$m.log 2>&1; log "ce_bench 2gpu $m rc=$?"; grep -E "/ce |nccl" $O/ce2_$m.log | head -8 | tee -a $O/session.log
done
DDP2="torchrun --standalone --nproc_per_node=2 examples/ddp_gpt.py --steps 30 --warmup 10"
ddp(){ n=$1; shift; late ${LATE:-430} && return; "$@" > $O/ddp2_$n.log 2>&1; log "ddp2 $n rc=$?"; grep -E "step median|copy engines" $O/ddp2_$n.log | tee -a $O/session.log; }
ce(){ n=$1; shift; ddp $n timeout 80 $B/corun -p ce --report $O/ddp2_${n}_%p.json -- $DDP2 --out $O/ddp2_$n.json "$@"; }
export CUDA_VISIBLE_DEVICES=0,1
ddp stock1 timeout 80 $DDP2 --out $O/ddp2_stock1.json
ce direct1
CORUN_CE_DIRECT=0 ce staging1
ce direct2
CORUN_CE_DIRECT=0 ce staging2
ddp stock2 timeout 80 $DDP2 --out $O/ddp2_stock2.json
ce direct3
unset CUDA_VISIBLE_DEVICES
[ "$NG" -ge 4 ] || { log "only $NG GPUs"; }
if [ "$NG" -ge 4 ]; then
  late 470 || { timeout 40 $B/tests/ce_bench --gpus 4 --alone-only --sizes-mib 224,896 --reps 10 --warmup 2 --direct --out $O/ce4_direct.json > $O/ce4_direct.log 2>&1; log "ce_bench 4 direct rc=$?"; grep -E "/ce |nccl" $O/ce4_direct.log | head -6 | tee -a $O/session.log; }
  late 480 || { timeout 40 $B/tests/ce_bench --gpus 4 --alone-only --sizes-mib 224,896 --reps 10 --warmup 2 --no-direct --out $O/ce4_nodirect.json > $O/ce4_nodirect.log 2>&1; log "ce_bench 4 no-direct rc=$?"; grep -E "/ce |nccl" $O/ce4_nodirect.log | head -6 | tee -a $O/session.log; }
  DDP4="torchrun --standalone --nproc_per_node=4 examples/ddp_gpt.py --steps 30 --warmup 10"
  late 500 || { timeout 50 $DDP4 --out $O/ddp4_stock.json > $O/ddp4_stock.log 2>&1; log "ddp4 stock rc=$?"; grep "step median" $O/ddp4_stock.log | tee -a $O/session.log; }
  late 530 || { CORUN_CE_MAX_RANKS=4 timeout 50 $B/corun -p ce --report $O/ddp4_direct_%p.json -- $DDP4 --out $O/ddp4_direct.json > $O/ddp4_direct.log 2>&1; log "ddp4 ce direct rc=$?"; grep -E "step median|copy engines" $O/ddp4_direct.log | tee -a $O/session.log; }
fi
cd $O && tar czf all.tgz --exclude=session.log --exclude=all.tgz --exclude=build.log * ; find . -mindepth 1 ! -name session.log ! -name all.tgz -delete
log done
