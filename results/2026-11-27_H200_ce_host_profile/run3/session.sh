#!/usr/bin/env bash
# The pull form's output by a local copy (CORUN_CE_OUT_COPY=1): tests, the reduction alone, the
# allreduce alone, DDP on 2 GPUs against the default and stock.
set -u
O=$OUT; B=/root/b; t0=$(date +%s)
late(){ [ $(( $(date +%s)-t0 )) -gt ${1:-500} ]; }
log(){ echo "[$(( $(date +%s)-t0 ))s] $*" | tee -a $O/session.log; }
{ date -u; nvidia-smi --query-gpu=index,name,driver_version --format=csv; python3 -c 'import torch;print(torch.__version__, torch.cuda.nccl.version())'; env | grep -E '^(NCCL|CUDA_|TORCH_SYMM|NVSHMEM)'; } > $O/env.txt 2>&1
cmake -S . -B $B -G Ninja -DCMAKE_BUILD_TYPE=Release > $O/build.log 2>&1 && cmake --build $B -j64 >> $O/build.log 2>&1 || { log BUILD FAILED; tail -30 $O/build.log; exit 1; }
log built
export CUDA_DEVICE_MAX_CONNECTIONS=32
export CUDA_VISIBLE_DEVICES=0,1
timeout 90 $B/tests/corun_gpu_ce_tests --gtest_filter='*StressedProtocolConfiguration:*OneChunkCalls*' > $O/ce_tests_2gpu.log 2>&1; log "ce tests 2gpu rc=$?"; grep -E "OK \]|FAILED" $O/ce_tests_2gpu.log | tee -a $O/session.log
for m in def outcopy def outcopy; do a=--no-out-copy; [ $m = outcopy ] && a=--out-copy
  timeout 60 $B/tests/ce_bench --gpus 2 --sizes-mib 224 --reps 10 --warmup 2 $a --out $O/ce2_$m.json > $O/ce2_$m.log 2>&1; log "ce_bench 2gpu $m rc=$?"; grep -E "/ce |reduce" $O/ce2_$m.log | head -12 | tee -a $O/session.log
done
DDP2="torchrun --standalone --nproc_per_node=2 examples/ddp_gpt.py --steps 30 --warmup 10"
ddp(){ n=$1; shift; late ${LATE:-450} && return; "$@" > $O/ddp2_$n.log 2>&1; log "ddp2 $n rc=$?"; grep -E "step median|copy engines" $O/ddp2_$n.log | tee -a $O/session.log; }
ce(){ n=$1; shift; ddp $n timeout 80 $B/corun -p ce --report $O/ddp2_${n}_%p.json -- $DDP2 --out $O/ddp2_$n.json "$@"; }
ddp stock1 timeout 80 $DDP2 --out $O/ddp2_stock1.json
CORUN_CE_OUT_COPY=1 ce outcopy1
ce def1
CORUN_CE_OUT_COPY=1 ce outcopy2
ce def2
CORUN_CE_OUT_COPY=1 ce outcopy3
ce def3
ddp stock2 timeout 80 $DDP2 --out $O/ddp2_stock2.json
cd $O && tar czf all.tgz --exclude=session.log --exclude=all.tgz --exclude=build.log * ; find . -mindepth 1 ! -name session.log ! -name all.tgz -delete
log done
