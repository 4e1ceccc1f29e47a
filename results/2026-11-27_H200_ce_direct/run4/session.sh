#!/usr/bin/env bash
# The committed tree: every ce test on 2 GPUs, the 4-rank process tests, 4 GPUs as threads; then
# DDP on 4 GPUs by bulk round shape, corun bench on 4 processes.
set -u
O=$OUT; B=/root/b; t0=$(date +%s)
late(){ [ $(( $(date +%s)-t0 )) -gt ${1:-500} ]; }
log(){ echo "[$(( $(date +%s)-t0 ))s] $*" | tee -a $O/session.log; }
{ date -u; nvidia-smi --query-gpu=index,name,driver_version --format=csv; nvidia-smi topo -m; python3 -c 'import torch;print(torch.__version__, torch.cuda.nccl.version())'; env | grep -E '^(NCCL|CUDA_|TORCH_SYMM|NVSHMEM)'; } > $O/env.txt 2>&1
cmake -S . -B $B -G Ninja -DCMAKE_BUILD_TYPE=Release > $O/build.log 2>&1 && cmake --build $B -j64 >> $O/build.log 2>&1 || { log BUILD FAILED; tail -30 $O/build.log; exit 1; }
log built
export CUDA_DEVICE_MAX_CONNECTIONS=32
(export CUDA_VISIBLE_DEVICES=0,1; cd $B && timeout 200 ctest -L ce -E "_4$" --output-on-failure --timeout 120) > $O/ce_tests_2gpu.log 2>&1; log "ctest ce 2gpu rc=$?"; grep -E "Test +#|tests passed" $O/ce_tests_2gpu.log | tee -a $O/session.log
(cd $B && timeout 120 ctest -R "ce_procs_mpirun_4|ce_procs_peer_exit_4" --output-on-failure --timeout 60) > $O/ce_tests_4gpu.log 2>&1; log "ctest ce 4 procs rc=$?"; grep -E "Test +#|tests passed" $O/ce_tests_4gpu.log | tee -a $O/session.log
timeout 60 $B/tests/corun_gpu_ce_tests --gtest_filter='*EveryCollective*:*Stressed*:*PushForm*' > $O/ce_threads4.log 2>&1; log "ce 4 gpus as threads rc=$?"; grep -E "OK \]|FAILED  \]" $O/ce_threads4.log | tee -a $O/session.log
DDP4="torchrun --standalone --nproc_per_node=4 examples/ddp_gpt.py --steps 30 --warmup 10"
d4(){ n=$1; shift; late ${LATE:-470} && return; "$@" > $O/ddp4_$n.log 2>&1; log "ddp4 $n rc=$?"; grep -E "step median|copy engines" $O/ddp4_$n.log | head -2 | tee -a $O/session.log; }
c4(){ n=$1; shift; d4 $n env CORUN_CE_MAX_RANKS=4 "$@" timeout 60 $B/corun -p ce --report $O/ddp4_${n}_%p.json -- $DDP4 --out $O/ddp4_$n.json; }
d4 stock1 timeout 60 $DDP4 --out $O/ddp4_stock1.json
c4 bulk1
c4 r2np CORUN_CE_BULK_ROUND=2 CORUN_CE_PHASES=0
c4 r2 CORUN_CE_BULK_ROUND=2
c4 r1np CORUN_CE_BULK_ROUND=1 CORUN_CE_PHASES=0
c4 c64r1np CORUN_CE_CHUNK=64M CORUN_CE_BULK_ROUND=1 CORUN_CE_PHASES=0
c4 r2np_b CORUN_CE_BULK_ROUND=2 CORUN_CE_PHASES=0
c4 bulk2
procs(){ local n=$1 tag=$2 comp=$3 pol=$4
  for r in $(seq 0 $((n-1))); do RANK=$r WORLD_SIZE=$n LOCAL_RANK=$r MASTER_ADDR=127.0.0.1 MASTER_PORT=$((29600+n)) timeout 60 $B/corun bench -o allreduce -b 896M --compute $comp --gemm 8192x8192x8192 -p $pol -n 10 --sustain 0.5 --json $O/bench_${tag}_r$r.json > $O/bench_${tag}_r$r.log 2>&1 & done; wait
  log "bench $tag"; grep -E "^  |workload" $O/bench_${tag}_r0.log | tee -a $O/session.log; }
late 500 || procs 4 p4 cublaslt,tiled64x64x64 sequential,overlap,priority,ce
cd $O && tar czf all.tgz --exclude=session.log --exclude=all.tgz --exclude=build.log * ; find . -mindepth 1 ! -name session.log ! -name all.tgz -delete
log done
