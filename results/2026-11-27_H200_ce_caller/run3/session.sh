#!/usr/bin/env bash
# The committed tree (bulk allreduces on the caller's stream, push form on 2 ranks): corun bench
# 896 MiB + 8192^3 on 4 and 2 processes; the allreduce alone in processes by size (corun bench,
# sequential vs ce); DDP on 4 and 2 GPUs, stock and ce alternately; corun trace of the DDP step.
set -u
O=$OUT; B=/root/b; t0=$(date +%s)
late(){ [ $(( $(date +%s)-t0 )) -gt ${1:-500} ]; }
log(){ echo "[$(( $(date +%s)-t0 ))s] $*" | tee -a $O/session.log; }
{ date -u; nvidia-smi --query-gpu=index,name,driver_version --format=csv; nvidia-smi topo -m; python3 -c 'import torch;print(torch.__version__, torch.cuda.nccl.version())'; env | grep -E '^(NCCL|CUDA_|TORCH_SYMM|NVSHMEM)'; } > $O/env.txt 2>&1
cmake -S . -B $B -G Ninja -DCMAKE_BUILD_TYPE=Release > $O/build.log 2>&1 && cmake --build $B -j64 --target corun corun_preload corun_trace ce_bench >> $O/build.log 2>&1 || { log BUILD FAILED; tail -30 $O/build.log; exit 1; }
log built
export CUDA_DEVICE_MAX_CONNECTIONS=32
procs(){ local n=$1 tag=$2 port=$3; shift 3
  for r in $(seq 0 $((n-1))); do RANK=$r WORLD_SIZE=$n LOCAL_RANK=$r MASTER_ADDR=127.0.0.1 MASTER_PORT=$port timeout 90 $B/corun bench "$@" -n 10 --sustain 0.5 --json $O/bench_${tag}_r$r.json > $O/bench_${tag}_r$r.log 2>&1 & done; wait
  log "bench $tag"; grep -E "^  |workload" $O/bench_${tag}_r0.log | tee -a $O/session.log; }
procs 4 p4 29611 -o allreduce -b 896M --compute cublaslt,tiled64x64x64 --gemm 8192x8192x8192 -p sequential,overlap,priority,ce
procs 4 sweep4 29612 -o allreduce -b 112M -e 896M --compute cublaslt --gemm 8192x8192x8192 -p sequential,ce
(export CUDA_VISIBLE_DEVICES=0,1; procs 2 p2 29613 -o allreduce -b 896M --compute cublaslt,tiled64x64x64 --gemm 8192x8192x8192 -p sequential,overlap,priority,ce)
DDP4="torchrun --standalone --nproc_per_node=4 examples/ddp_gpt.py --steps 30 --warmup 10"
d4(){ n=$1; shift; late ${LATE:-330} && return; "$@" > $O/ddp4_$n.log 2>&1; log "ddp4 $n rc=$?"; grep -E "step median|copy engines" $O/ddp4_$n.log | head -2 | tee -a $O/session.log; }
c4(){ n=$1; shift; d4 $n env CORUN_CE_MAX_RANKS=4 "$@" timeout 60 $B/corun -p ce --report $O/ddp4_${n}_%p.json -- $DDP4 --out $O/ddp4_$n.json; }
d4 stock1 timeout 60 $DDP4 --out $O/ddp4_stock1.json
c4 ce1
d4 stock2 timeout 60 $DDP4 --out $O/ddp4_stock2.json
c4 ce2
(export CUDA_VISIBLE_DEVICES=0,1
DDP2="torchrun --standalone --nproc_per_node=2 examples/ddp_gpt.py --steps 30 --warmup 10"
d2(){ n=$1; shift; late ${LATE:-430} && return; "$@" > $O/ddp2_$n.log 2>&1; log "ddp2 $n rc=$?"; grep -E "step median|copy engines" $O/ddp2_$n.log | head -2 | tee -a $O/session.log; }
c2(){ n=$1; shift; d2 $n env "$@" timeout 50 $B/corun -p ce --report $O/ddp2_${n}_%p.json -- $DDP2 --out $O/ddp2_$n.json; }
d2 stock1 timeout 50 $DDP2 --out $O/ddp2_stock1.json
c2 ce1
d2 stock2 timeout 50 $DDP2 --out $O/ddp2_stock2.json
c2 ce2
d2 noop timeout 50 $DDP2 --mode noop_hook --out $O/ddp2_noop.json)
late 440 || { CORUN_CE_MAX_RANKS=4 timeout 70 $B/corun trace -p ce -o $O/tr4 --steps kernel:DistributionRandomKernel --skip 10 -- torchrun --standalone --nproc_per_node=4 examples/ddp_gpt.py --steps 20 --warmup 10 > $O/tr4.log 2>&1; log "trace ddp4 ce rc=$?"; grep -E "^#|^  r" $O/tr4.log | head -24 | tee -a $O/session.log; }
late 500 || { timeout 40 $B/tests/ce_bench --gpus 4 --alone-only --sizes-mib 25,108,224,896 --reps 10 --warmup 2 --out $O/ce4.json > $O/ce4.log 2>&1; log "ce_bench 4 rc=$?"; grep -E "/ce |/nccl " $O/ce4.log | head -8 | tee -a $O/session.log; }
cd $O && rm -f tr4/corun_trace.p*.jsonl tr4/trace.p*.json; tar czf all.tgz --exclude=session.log --exclude=all.tgz --exclude=build.log * ; find . -mindepth 1 ! -name session.log ! -name all.tgz -delete
log done
