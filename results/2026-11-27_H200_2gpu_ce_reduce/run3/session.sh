#!/usr/bin/env bash
# 2 GPUs, final build: the bench with one process per GPU (cuBLASLt and the tiled GEMM, 8192^3 +
# 896 MiB), ce alone at 896 MiB in both forms (the pull form's spread), and the DDP example
# stock / ce / ce with one lane / ce with 16 MiB chunks / no communication.
set -u
O=$OUT; B=/root/b; t0=$(date +%s)
late(){ [ $(( $(date +%s)-t0 )) -gt ${1:-500} ]; }
log(){ echo "[$(( $(date +%s)-t0 ))s] $*" | tee -a $O/session.log; }
{ date -u; nvidia-smi --query-gpu=index,name,driver_version --format=csv; nvidia-smi topo -m | head -4; python3 -c 'import torch;print(torch.__version__, torch.cuda.nccl.version())'; env | grep -E '^(NCCL|CUDA_|TORCH_SYMM|NVSHMEM)'; } > $O/env.txt 2>&1
cmake -S . -B $B -G Ninja -DCMAKE_BUILD_TYPE=Release > $O/build.log 2>&1 && cmake --build $B -j32 >> $O/build.log 2>&1 || { log BUILD FAILED; tail -30 $O/build.log; exit 1; }
log built
export CUDA_DEVICE_MAX_CONNECTIONS=32
for f in pull push; do
  timeout -k 5 60 $B/tests/ce_bench --$f --alone-only --sizes-mib 224,896 --reps 20 --out $O/ce_bench_alone_$f.json > $O/ce_bench_alone_$f.log 2>&1; log "ce_bench alone $f rc=$?"
  grep -E "reduce kernel|alone/" $O/ce_bench_alone_$f.log | tee -a $O/session.log
done
for c in cublaslt tiled64x64x64; do
  for r in 0 1; do
    RANK=$r WORLD_SIZE=2 LOCAL_RANK=$r MASTER_ADDR=127.0.0.1 MASTER_PORT=29612 timeout -k 5 150 \
      $B/corun bench -o allreduce -b 896M --compute $c --gemm 8192x8192x8192 -p sequential,overlap,priority,ce -n 10 \
      --json $O/bench_procs2_${c}_r$r.json > $O/bench_procs2_${c}_r$r.log 2>&1 &
  done; wait; log "bench procs2 $c"; grep -E "^  " $O/bench_procs2_${c}_r0.log | tee -a $O/session.log
done
DDP2="torchrun --standalone --nproc_per_node=2 examples/ddp_gpt.py --steps 30 --warmup 10"
ddp(){ n=$1; shift; late 520 && return; "$@" > $O/ddp2_$n.log 2>&1; log "ddp2 $n rc=$?"; grep -E "step median|copy engines" $O/ddp2_$n.log | tee -a $O/session.log; }
ce(){ n=$1; shift; ddp $n env "$@" timeout 80 $B/corun -p ce --report $O/ddp2_${n}_%p.json -- $DDP2 --out $O/ddp2_$n.json; }
ddp stock1 timeout 80 $DDP2 --out $O/ddp2_stock1.json
ce ce1 CORUN_CE_DEBUG=0
ce lanes1_1 CORUN_CE_LANES=1
ce chunk16_1 CORUN_CE_CHUNK=16M
ddp floor timeout 80 $DDP2 --mode noop_hook --out $O/ddp2_floor.json
ddp stock2 timeout 80 $DDP2 --out $O/ddp2_stock2.json
ce ce2 CORUN_CE_DEBUG=0
ce lanes1_2 CORUN_CE_LANES=1
ddp stock3 timeout 80 $DDP2 --out $O/ddp2_stock3.json
ce ce3 CORUN_CE_DEBUG=0
cd $O && tar czf all.tgz --exclude=session.log --exclude=all.tgz --exclude=build.log * ; find . -mindepth 1 ! -name session.log ! -name all.tgz -delete
log done
