#!/usr/bin/env bash
# Reductions sized for fewer SMs (CORUN_CE_REDUCE_SMS): the kernel alone per SM count, the stressed
# test (3 SMs), the DDP step on 2 GPUs against the default and stock.
set -u
O=$OUT; B=/root/b; t0=$(date +%s)
late(){ [ $(( $(date +%s)-t0 )) -gt ${1:-500} ]; }
log(){ echo "[$(( $(date +%s)-t0 ))s] $*" | tee -a $O/session.log; }
{ date -u; nvidia-smi --query-gpu=index,name,driver_version --format=csv; python3 -c 'import torch;print(torch.__version__, torch.cuda.nccl.version())'; env | grep -E '^(NCCL|CUDA_|TORCH_SYMM|NVSHMEM)'; } > $O/env.txt 2>&1
cmake -S . -B $B -G Ninja -DCMAKE_BUILD_TYPE=Release > $O/build.log 2>&1 && cmake --build $B -j32 --target corun corun_preload ce_bench corun_gpu_ce_tests >> $O/build.log 2>&1 || { log BUILD FAILED; tail -30 $O/build.log; exit 1; }
log built
export CUDA_DEVICE_MAX_CONNECTIONS=32
timeout 60 $B/tests/corun_gpu_ce_tests --gtest_filter='*StressedProtocolConfiguration' > $O/ce_tests_2gpu.log 2>&1; log "stressed test rc=$?"; grep -E "OK \]|FAILED" $O/ce_tests_2gpu.log | tee -a $O/session.log
for n in 0 66 32 16 8; do timeout 30 $B/tests/ce_bench --gpus 2 --alone-only --sizes-mib 25 --reps 20 --warmup 3 --reduce-sms $n --out $O/ce2_sms$n.json > $O/ce2_sms$n.log 2>&1; grep "reduce kernel" $O/ce2_sms$n.log | tee -a $O/session.log; done
DDP2="torchrun --standalone --nproc_per_node=2 examples/ddp_gpt.py --steps 30 --warmup 10"
ddp(){ n=$1; shift; late ${LATE:-300} && return; "$@" > $O/ddp2_$n.log 2>&1; log "ddp2 $n rc=$?"; grep -E "step median|copy engines" $O/ddp2_$n.log | tee -a $O/session.log; }
ce(){ n=$1; shift; ddp $n timeout 80 $B/corun -p ce --report $O/ddp2_${n}_%p.json -- $DDP2 --out $O/ddp2_$n.json "$@"; }
ce def1
CORUN_CE_REDUCE_SMS=32 ce sms32
CORUN_CE_REDUCE_SMS=16 ce sms16
ddp stock1 timeout 80 $DDP2 --out $O/ddp2_stock1.json
CORUN_CE_REDUCE_SMS=66 ce sms66
ce def2
CORUN_CE_REDUCE_SMS=32 ce sms32b
cd $O && tar czf all.tgz --exclude=session.log --exclude=all.tgz --exclude=build.log * ; find . -mindepth 1 ! -name session.log ! -name all.tgz -delete
log done
