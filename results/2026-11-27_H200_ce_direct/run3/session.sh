#!/usr/bin/env bash
# Bulk allreduces with one stream each way, peers in step order: tests, the allreduce alone, DDP
# on 4 and 2 GPUs against stock (2 GPUs: pull form against push + bulk), corun bench, PyTorch.
set -u
O=$OUT; B=/root/b; t0=$(date +%s)
late(){ [ $(( $(date +%s)-t0 )) -gt ${1:-500} ]; }
log(){ echo "[$(( $(date +%s)-t0 ))s] $*" | tee -a $O/session.log; }
{ date -u; nvidia-smi --query-gpu=index,name,driver_version --format=csv; nvidia-smi topo -m; python3 -c 'import torch;print(torch.__version__, torch.cuda.nccl.version())'; env | grep -E '^(NCCL|CUDA_|TORCH_SYMM|NVSHMEM)'; } > $O/env.txt 2>&1
cmake -S . -B $B -G Ninja -DCMAKE_BUILD_TYPE=Release > $O/build.log 2>&1 && cmake --build $B -j64 --target corun corun_preload corun_gpu_ce_tests ce_procs_check ce_bench >> $O/build.log 2>&1 || { log BUILD FAILED; tail -30 $O/build.log; exit 1; }
log built
export CUDA_DEVICE_MAX_CONNECTIONS=32
timeout 100 $B/tests/corun_gpu_ce_tests --gtest_filter='*EveryCollective*:*Stressed*' > $O/ce_tests_4gpu.log 2>&1; log "ce tests 4gpu rc=$?"; grep -E "OK \]|FAILED|rank .*:" $O/ce_tests_4gpu.log | head -20 | tee -a $O/session.log
for m in a b; do
  timeout 40 $B/tests/ce_bench --gpus 4 --alone-only --sizes-mib 25,224,896 --reps 10 --warmup 2 --out $O/ce4_$m.json > $O/ce4_$m.log 2>&1; log "ce_bench 4 $m rc=$?"; grep -E "/ce |/nccl " $O/ce4_$m.log | head -6 | tee -a $O/session.log
done
DDP4="torchrun --standalone --nproc_per_node=4 examples/ddp_gpt.py --steps 30 --warmup 10"
d4(){ n=$1; shift; late ${LATE:-300} && return; "$@" > $O/ddp4_$n.log 2>&1; log "ddp4 $n rc=$?"; grep -E "step median|copy engines" $O/ddp4_$n.log | head -2 | tee -a $O/session.log; }
c4(){ n=$1; shift; d4 $n env CORUN_CE_MAX_RANKS=4 timeout 60 $B/corun -p ce --report $O/ddp4_${n}_%p.json -- $DDP4 --out $O/ddp4_$n.json; }
d4 stock1 timeout 60 $DDP4 --out $O/ddp4_stock1.json
c4 bulk1
c4 bulk2
procs(){ local n=$1 tag=$2 comp=$3 pol=$4
  for r in $(seq 0 $((n-1))); do RANK=$r WORLD_SIZE=$n LOCAL_RANK=$r MASTER_ADDR=127.0.0.1 MASTER_PORT=$((29600+n)) timeout 90 $B/corun bench -o allreduce -b 896M --compute $comp --gemm 8192x8192x8192 -p $pol -n 10 --sustain 0.5 --json $O/bench_${tag}_r$r.json > $O/bench_${tag}_r$r.log 2>&1 & done; wait
  log "bench $tag"; grep -E "^  |workload" $O/bench_${tag}_r0.log | tee -a $O/session.log; }
late 330 || procs 4 p4 cublaslt sequential,overlap,priority,ce
late 350 || { CORUN_CE_MAX_RANKS=4 timeout 80 sh tests/gpu/ce_preload_torch.sh $B/corun $O/torch4 > $O/torch4.log 2>&1; log "torch 4 rc=$?"; grep -E "ce_preload_torch" $O/torch4.log | tail -5 | tee -a $O/session.log; }
export CUDA_VISIBLE_DEVICES=0,1
DDP2="torchrun --standalone --nproc_per_node=2 examples/ddp_gpt.py --steps 30 --warmup 10"
d2(){ n=$1; shift; late ${LATE:-500} && return; "$@" > $O/ddp2_$n.log 2>&1; log "ddp2 $n rc=$?"; grep -E "step median|copy engines" $O/ddp2_$n.log | head -2 | tee -a $O/session.log; }
c2(){ n=$1; shift; d2 $n timeout 50 $B/corun -p ce --report $O/ddp2_${n}_%p.json -- $DDP2 --out $O/ddp2_$n.json; }
d2 stock1 timeout 50 $DDP2 --out $O/ddp2_stock1.json
c2 pull1
CORUN_CE_PULL=0 c2 pushbulk1
c2 pull2
CORUN_CE_PULL=0 c2 pushbulk2
d2 stock2 timeout 50 $DDP2 --out $O/ddp2_stock2.json
CORUN_CE_PULL=0 c2 pushbulk3
cd $O && tar czf all.tgz --exclude=session.log --exclude=all.tgz --exclude=build.log * ; find . -mindepth 1 ! -name session.log ! -name all.tgz -delete
log done
