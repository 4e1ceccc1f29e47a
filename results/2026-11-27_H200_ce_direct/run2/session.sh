#!/usr/bin/env bash
# Bulk direct allreduces (CeConfig::bulk): tests on 4 and 2 GPUs, the allreduce alone, DDP on 4
# and 2 GPUs against stock, corun bench on 4 processes.
set -u
O=$OUT; B=/root/b; t0=$(date +%s)
late(){ [ $(( $(date +%s)-t0 )) -gt ${1:-500} ]; }
log(){ echo "[$(( $(date +%s)-t0 ))s] $*" | tee -a $O/session.log; }
{ date -u; nvidia-smi --query-gpu=index,name,driver_version --format=csv; nvidia-smi topo -m; python3 -c 'import torch;print(torch.__version__, torch.cuda.nccl.version())'; env | grep -E '^(NCCL|CUDA_|TORCH_SYMM|NVSHMEM)'; } > $O/env.txt 2>&1
cmake -S . -B $B -G Ninja -DCMAKE_BUILD_TYPE=Release > $O/build.log 2>&1 && cmake --build $B -j64 --target corun corun_preload corun_gpu_ce_tests ce_procs_check ce_bench >> $O/build.log 2>&1 || { log BUILD FAILED; tail -30 $O/build.log; exit 1; }
log built
export CUDA_DEVICE_MAX_CONNECTIONS=32
timeout 120 $B/tests/corun_gpu_ce_tests --gtest_filter='*EveryCollective*:*PushForm*:*Stressed*' > $O/ce_tests_4gpu.log 2>&1; log "ce tests 4gpu rc=$?"; grep -E "OK \]|FAILED|rank .*:" $O/ce_tests_4gpu.log | head -20 | tee -a $O/session.log
for m in bulk no-bulk bulk; do
  timeout 40 $B/tests/ce_bench --gpus 4 --alone-only --sizes-mib 25,224,896 --reps 10 --warmup 2 --$m --out $O/ce4_$m.json > $O/ce4_$m.log 2>&1; log "ce_bench 4 $m rc=$?"; grep -E "/ce |/nccl " $O/ce4_$m.log | head -6 | tee -a $O/session.log
done
DDP4="torchrun --standalone --nproc_per_node=4 examples/ddp_gpt.py --steps 30 --warmup 10"
d4(){ n=$1; shift; late ${LATE:-420} && return; "$@" > $O/ddp4_$n.log 2>&1; log "ddp4 $n rc=$?"; grep -E "step median|copy engines" $O/ddp4_$n.log | head -2 | tee -a $O/session.log; }
c4(){ n=$1; shift; d4 $n env CORUN_CE_MAX_RANKS=4 timeout 60 $B/corun -p ce --report $O/ddp4_${n}_%p.json -- $DDP4 --out $O/ddp4_$n.json; }
d4 stock1 timeout 60 $DDP4 --out $O/ddp4_stock1.json
c4 bulk1
CORUN_CE_BULK=0 c4 chunked1
c4 bulk2
d4 stock2 timeout 60 $DDP4 --out $O/ddp4_stock2.json
late 440 || { timeout 100 sh tests/gpu/ce_procs_check.sh $B/tests/ce_procs_check match 4 > $O/procs4.log 2>&1; log "procs 4 rc=$?"; grep -E "direct|FAIL|matched" $O/procs4.log | head -12 | tee -a $O/session.log; }
procs(){ local n=$1 tag=$2 comp=$3 pol=$4
  for r in $(seq 0 $((n-1))); do RANK=$r WORLD_SIZE=$n LOCAL_RANK=$r MASTER_ADDR=127.0.0.1 MASTER_PORT=$((29600+n)) timeout 90 $B/corun bench -o allreduce -b 896M --compute $comp --gemm 8192x8192x8192 -p $pol -n 10 --sustain 0.5 --json $O/bench_${tag}_r$r.json > $O/bench_${tag}_r$r.log 2>&1 & done; wait
  log "bench $tag"; grep -E "^  |workload" $O/bench_${tag}_r0.log | tee -a $O/session.log; }
late 470 || procs 4 p4 cublaslt sequential,overlap,priority,ce
export CUDA_VISIBLE_DEVICES=0,1
late 510 || { timeout 60 $B/tests/corun_gpu_ce_tests --gtest_filter='*PushForm*:*DirectCopies*' > $O/ce_tests_2gpu.log 2>&1; log "ce tests 2gpu rc=$?"; grep -E "OK \]|FAILED|rank .*:" $O/ce_tests_2gpu.log | head -10 | tee -a $O/session.log; }
DDP2="torchrun --standalone --nproc_per_node=2 examples/ddp_gpt.py --steps 30 --warmup 10"
late 540 || { CORUN_CE_PULL=0 timeout 50 $B/corun -p ce --report $O/ddp2_pushbulk_%p.json -- $DDP2 --out $O/ddp2_pushbulk.json > $O/ddp2_pushbulk.log 2>&1; log "ddp2 push bulk rc=$?"; grep -E "step median|copy engines" $O/ddp2_pushbulk.log | head -2 | tee -a $O/session.log; }
cd $O && tar czf all.tgz --exclude=session.log --exclude=all.tgz --exclude=build.log * ; find . -mindepth 1 ! -name session.log ! -name all.tgz -delete
log done
