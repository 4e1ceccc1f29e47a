#!/usr/bin/env bash
# 2 GPUs: the allreduce alone by pulls (default) and by bulk pushes; corun bench on 2 processes.
set -u
O=$OUT; B=/root/b; t0=$(date +%s)
log(){ echo "[$(( $(date +%s)-t0 ))s] $*" | tee -a $O/session.log; }
{ date -u; nvidia-smi --query-gpu=index,name,driver_version --format=csv; nvidia-smi topo -m; python3 -c 'import torch;print(torch.__version__, torch.cuda.nccl.version())'; env | grep -E '^(NCCL|CUDA_|TORCH_SYMM|NVSHMEM)'; } > $O/env.txt 2>&1
cmake -S . -B $B -G Ninja -DCMAKE_BUILD_TYPE=Release > $O/build.log 2>&1 && cmake --build $B -j64 --target corun ce_bench >> $O/build.log 2>&1 || { log BUILD FAILED; tail -30 $O/build.log; exit 1; }
log built
export CUDA_DEVICE_MAX_CONNECTIONS=32 CUDA_VISIBLE_DEVICES=0,1
for m in pull push pull push; do
  timeout 40 $B/tests/ce_bench --gpus 2 --alone-only --sizes-mib 25,224,896 --reps 10 --warmup 2 --$m --out $O/ce2_$m.json > $O/ce2_$m.log 2>&1; log "ce_bench 2 $m rc=$?"; grep -E "/ce |/nccl " $O/ce2_$m.log | head -6 | tee -a $O/session.log
done
procs(){ local n=$1 tag=$2 comp=$3 pol=$4
  for r in $(seq 0 $((n-1))); do RANK=$r WORLD_SIZE=$n LOCAL_RANK=$r MASTER_ADDR=127.0.0.1 MASTER_PORT=$((29600+n)) timeout 60 $B/corun bench -o allreduce -b 896M --compute $comp --gemm 8192x8192x8192 -p $pol -n 10 --sustain 0.5 --json $O/bench_${tag}_r$r.json > $O/bench_${tag}_r$r.log 2>&1 & done; wait
  log "bench $tag"; grep -E "^  |workload" $O/bench_${tag}_r0.log | tee -a $O/session.log; }
procs 2 p2 cublaslt,tiled64x64x64 sequential,overlap,priority,ce
CORUN_CE_PULL=0 procs 2 p2push cublaslt sequential,ce
cd $O && tar czf all.tgz --exclude=session.log --exclude=all.tgz --exclude=build.log * ; find . -mindepth 1 ! -name session.log ! -name all.tgz -delete
log done
