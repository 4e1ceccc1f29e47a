#!/usr/bin/env bash
# Fewer, larger copies on 4 processes: the bench (cuBLASLt 8192^3 + 896 MiB; its alone column
# gives the busbw) with 128 MiB chunks / 4 slots and 256 MiB / 2 slots, then DDP 4 GPUs.
set -u
O=$OUT; B=/root/b; t0=$(date +%s)
late(){ [ $(( $(date +%s)-t0 )) -gt ${1:-500} ]; }
log(){ echo "[$(( $(date +%s)-t0 ))s] $*" | tee -a $O/session.log; }
{ date -u; nvidia-smi --query-gpu=index,name,driver_version --format=csv; python3 -c 'import torch;print(torch.__version__, torch.cuda.nccl.version())'; } > $O/env.txt 2>&1
cmake -S . -B $B -G Ninja -DCMAKE_BUILD_TYPE=Release > $O/build.log 2>&1 && cmake --build $B -j64 --target corun corun_preload >> $O/build.log 2>&1 || { log BUILD FAILED; tail -30 $O/build.log; exit 1; }
log built
export CUDA_DEVICE_MAX_CONNECTIONS=32
for v in "c128s4:128M:4:29641" "c256s2:256M:2:29642"; do n=$(echo $v | cut -d: -f1); c=$(echo $v | cut -d: -f2); sl=$(echo $v | cut -d: -f3); port=$(echo $v | cut -d: -f4)
  late 90 && break
  for r in 0 1 2 3; do
    CORUN_CE_CHUNK=$c CORUN_CE_SLOTS=$sl RANK=$r WORLD_SIZE=4 LOCAL_RANK=$r MASTER_ADDR=127.0.0.1 MASTER_PORT=$port timeout -k 5 40 \
      $B/corun bench -o allreduce -b 896M --compute cublaslt --gemm 8192x8192x8192 -p sequential,ce -n 8 \
      --json $O/bench_p4_${n}_r$r.json > $O/bench_p4_${n}_r$r.log 2>&1 &
  done; wait; log "bench p4 $n"; grep -E "^  " $O/bench_p4_${n}_r0.log | tee -a $O/session.log
done
DDP4="torchrun --standalone --nproc_per_node=4 examples/ddp_gpt.py --steps 30 --warmup 10"
late 60 || { CORUN_CE_MAX_RANKS=4 CORUN_CE_CHUNK=256M CORUN_CE_SLOTS=2 timeout 60 $B/corun -p ce --report $O/ddp4_c256_%p.json -- $DDP4 > $O/ddp4_c256.log 2>&1; log "ddp4 ce c256 s2 rc=$?"; grep -E "step median|copy engines" $O/ddp4_c256.log | tee -a $O/session.log; }
late 20 || { timeout 50 $DDP4 > $O/ddp4_stock.log 2>&1; log "ddp4 stock rc=$?"; grep "step median" $O/ddp4_stock.log | tee -a $O/session.log; }
cd $O && tar czf all.tgz --exclude=session.log --exclude=all.tgz --exclude=build.log * ; find . -mindepth 1 ! -name session.log ! -name all.tgz -delete
log done
