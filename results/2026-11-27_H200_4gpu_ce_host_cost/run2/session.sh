#!/usr/bin/env bash
# DDP 2 GPUs: how much host time per bucket does the step absorb (stock through a comm hook that
# busy-waits), does the connection count slow stock, and ce with fewer streams / single-op signals.
set -u
O=$OUT; B=/root/b; t0=$(date +%s)
late(){ [ $(( $(date +%s)-t0 )) -gt ${1:-500} ]; }
log(){ echo "[$(( $(date +%s)-t0 ))s] $*" | tee -a $O/session.log; }
{ date -u; nvidia-smi --query-gpu=index,name,driver_version --format=csv; python3 -c 'import torch;print(torch.__version__, torch.cuda.nccl.version())'; env | grep -E '^(NCCL|CUDA_|TORCH_SYMM|NVSHMEM)'; } > $O/env.txt 2>&1
cmake -S . -B $B -G Ninja -DCMAKE_BUILD_TYPE=Release > $O/build.log 2>&1 && cmake --build $B -j64 --target corun corun_preload >> $O/build.log 2>&1 || { log BUILD FAILED; tail -30 $O/build.log; exit 1; }
log built
V2="env CUDA_VISIBLE_DEVICES=0,1"
DDP2="torchrun --standalone --nproc_per_node=2 examples/ddp_gpt.py --steps 30 --warmup 10"
run(){ n=$1; shift; late 540 && return; "$@" > $O/$n.log 2>&1; log "$n rc=$?"; grep -E "step median|copy engines" $O/$n.log | tee -a $O/session.log; }
run stock_c8 $V2 timeout 80 $DDP2
export CUDA_DEVICE_MAX_CONNECTIONS=32
run stock $V2 timeout 80 $DDP2
run hook0 $V2 timeout 80 $DDP2 --hook-delay-us 0
run hook110 $V2 timeout 80 $DDP2 --hook-delay-us 110
run ce $V2 timeout 80 $B/corun -p ce --report $O/ce_%p.json -- $DDP2
run ce_l1w $V2 CORUN_CE_LANES=1 CORUN_CE_SIGNAL=write timeout 80 $B/corun -p ce --report $O/ce_l1w_%p.json -- $DDP2
run hook220 $V2 timeout 80 $DDP2 --hook-delay-us 220
run stock2 $V2 timeout 80 $DDP2
run ce2 $V2 timeout 80 $B/corun -p ce --report $O/ce2_%p.json -- $DDP2
cd $O && tar czf all.tgz --exclude=session.log --exclude=all.tgz --exclude=build.log * ; find . -mindepth 1 ! -name session.log ! -name all.tgz -delete; ls -la $O
log done
