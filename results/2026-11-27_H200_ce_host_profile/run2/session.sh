#!/usr/bin/env bash
# Where a ce call's host time goes (CORUN_CE_PROFILE=1), one-stream against lanes, 2 and 4 GPUs;
# the 25 MiB call alone both ways; more DDP samples.
set -u
O=$OUT; B=/root/b; t0=$(date +%s)
late(){ [ $(( $(date +%s)-t0 )) -gt ${1:-500} ]; }
log(){ echo "[$(( $(date +%s)-t0 ))s] $*" | tee -a $O/session.log; }
{ date -u; nvidia-smi --query-gpu=index,name,driver_version --format=csv; python3 -c 'import torch;print(torch.__version__, torch.cuda.nccl.version())'; env | grep -E '^(NCCL|CUDA_|TORCH_SYMM|NVSHMEM)'; } > $O/env.txt 2>&1
cmake -S . -B $B -G Ninja -DCMAKE_BUILD_TYPE=Release > $O/build.log 2>&1 && cmake --build $B -j64 >> $O/build.log 2>&1 || { log BUILD FAILED; tail -30 $O/build.log; exit 1; }
log built
export CUDA_DEVICE_MAX_CONNECTIONS=32
export CUDA_VISIBLE_DEVICES=0,1
for m in one lanes one lanes; do a=--one-stream; [ $m = lanes ] && a=--no-one-stream
  timeout 40 $B/tests/ce_bench --gpus 2 --alone-only --sizes-mib 8,25 --reps 40 --warmup 5 $a --out $O/ce2_$m.json > $O/ce2_$m.log 2>&1; log "ce_bench 2gpu $m rc=$?"; grep -E "alone/.*/ce " $O/ce2_$m.log | tee -a $O/session.log
done
DDP2="torchrun --standalone --nproc_per_node=2 examples/ddp_gpt.py --steps 30 --warmup 10"
ddp(){ n=$1; shift; late ${LATE:-330} && return; "$@" > $O/ddp2_$n.log 2>&1; log "ddp2 $n rc=$?"; grep -E "step median|copy engines|host time per call over 500" $O/ddp2_$n.log | tee -a $O/session.log; }
ce(){ n=$1; shift; ddp $n timeout 80 $B/corun -p ce --report $O/ddp2_${n}_%p.json -- $DDP2 --out $O/ddp2_$n.json "$@"; }
CORUN_CE_PROFILE=1 ce one_prof
CORUN_CE_PROFILE=1 CORUN_CE_ONE_STREAM=0 ce lanes_prof
ddp stock1 timeout 80 $DDP2 --out $O/ddp2_stock1.json
ce one1
CORUN_CE_ONE_STREAM=0 ce lanes1
ce one2
CORUN_CE_ONE_STREAM=0 ce lanes2
unset CUDA_VISIBLE_DEVICES
DDP4="torchrun --standalone --nproc_per_node=4 examples/ddp_gpt.py --steps 30 --warmup 10"
late 450 || { CORUN_CE_PROFILE=1 CORUN_CE_MAX_RANKS=4 timeout 60 $B/corun -p ce --report $O/ddp4_ce_%p.json -- $DDP4 --out $O/ddp4_ce.json > $O/ddp4_ce.log 2>&1; log "ddp4 ce rc=$?"; grep -E "step median|copy engines|host time per call over 500" $O/ddp4_ce.log | tee -a $O/session.log; }
cd $O && tar czf all.tgz --exclude=session.log --exclude=all.tgz --exclude=build.log * ; find . -mindepth 1 ! -name session.log ! -name all.tgz -delete
log done
