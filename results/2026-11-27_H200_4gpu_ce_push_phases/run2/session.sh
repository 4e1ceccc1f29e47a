#!/usr/bin/env bash
# Final: the 4-rank push form with and without phases, push vs pull on 4 processes, DDP 2 GPUs
# stock / ce / floor with the final build.
set -u
O=$OUT; B=/root/b; t0=$(date +%s)
late(){ [ $(( $(date +%s)-t0 )) -gt ${1:-500} ]; }
log(){ echo "[$(( $(date +%s)-t0 ))s] $*" | tee -a $O/session.log; }
{ date -u; nvidia-smi --query-gpu=index,name,driver_version --format=csv; python3 -c 'import torch;print(torch.__version__, torch.cuda.nccl.version())'; env | grep -E '^(NCCL|CUDA_|TORCH_SYMM|NVSHMEM)'; } > $O/env.txt 2>&1
cmake -S . -B $B -G Ninja -DCMAKE_BUILD_TYPE=Release > $O/build.log 2>&1 && cmake --build $B -j64 --target corun corun_preload ce_bench >> $O/build.log 2>&1 || { log BUILD FAILED; tail -30 $O/build.log; exit 1; }
log built
export CUDA_DEVICE_MAX_CONNECTIONS=32
for v in "ph:--phases" "noph:--no-phases"; do n=${v%%:*}; a=${v#*:}
  timeout 60 $B/tests/ce_bench --gpus 4 --alone-only --sizes-mib 224,896 --reps 6 --warmup 2 $a --out $O/ce4_$n.json > $O/ce4_$n.log 2>&1; log "ce4 $n rc=$?"; grep -E "alone/.*/ce " $O/ce4_$n.log | tee -a $O/session.log
done
for f in push pull; do
  late 200 && break
  pv=$([ $f = pull ] && echo 1 || echo 0)
  for r in 0 1 2 3; do
    CORUN_CE_PULL=$pv RANK=$r WORLD_SIZE=4 LOCAL_RANK=$r MASTER_ADDR=127.0.0.1 MASTER_PORT=2961$pv timeout -k 5 100 \
      $B/corun bench -o allreduce -b 896M --compute cublaslt --gemm 8192x8192x8192 -p sequential,ce -n 8 \
      --json $O/bench_p4_${f}_r$r.json > $O/bench_p4_${f}_r$r.log 2>&1 &
  done; wait; log "bench p4 $f"; grep -E "^  " $O/bench_p4_${f}_r0.log | tee -a $O/session.log
done
V2="env CUDA_VISIBLE_DEVICES=0,1"
DDP2="torchrun --standalone --nproc_per_node=2 examples/ddp_gpt.py --steps 30 --warmup 10"
late 420 || { $V2 timeout 60 $DDP2 > $O/ddp2_stock.log 2>&1; log "ddp2 stock rc=$?"; grep "step median" $O/ddp2_stock.log | tee -a $O/session.log; }
late 450 || { $V2 timeout 70 $B/corun -p ce --report $O/ddp2_ce_%p.json -- $DDP2 > $O/ddp2_ce.log 2>&1; log "ddp2 ce rc=$?"; grep -E "step median|copy engines" $O/ddp2_ce.log | tee -a $O/session.log; }
late 480 || { $V2 timeout 60 $DDP2 --mode noop_hook > $O/ddp2_floor.log 2>&1; log "ddp2 floor rc=$?"; grep "step median" $O/ddp2_floor.log | tee -a $O/session.log; }
cd $O && tar czf all.tgz --exclude=session.log --exclude=all.tgz --exclude=build.log * ; find . -mindepth 1 ! -name session.log ! -name all.tgz -delete
log done
