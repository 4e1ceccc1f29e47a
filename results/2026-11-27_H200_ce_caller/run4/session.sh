#!/usr/bin/env bash
# The enqueue thread (CeConfig::enqueue_thread, CORUN_CE_THREAD=1): its GPU tests (threads on 2
# and 4 GPUs, 2 and 4 processes), then DDP on 4 and 2 GPUs with and without it.
set -u
O=$OUT; B=/root/b; t0=$(date +%s)
late(){ [ $(( $(date +%s)-t0 )) -gt ${1:-300} ]; }
log(){ echo "[$(( $(date +%s)-t0 ))s] $*" | tee -a $O/session.log; }
{ date -u; nvidia-smi --query-gpu=index,name,driver_version --format=csv; python3 -c 'import torch;print(torch.__version__, torch.cuda.nccl.version())'; env | grep -E '^(NCCL|CUDA_|TORCH_SYMM|NVSHMEM)'; } > $O/env.txt 2>&1
cmake -S . -B $B -G Ninja -DCMAKE_BUILD_TYPE=Release > $O/build.log 2>&1 && cmake --build $B -j64 --target corun corun_preload corun_gpu_ce_tests ce_procs_check >> $O/build.log 2>&1 || { log BUILD FAILED; tail -30 $O/build.log; exit 1; }
log built
export CUDA_DEVICE_MAX_CONNECTIONS=32
timeout 40 $B/tests/corun_gpu_ce_tests --gtest_filter='*EnqueueThread*' > $O/enq_threads4.log 2>&1; log "enqueue thread, 4 GPUs as threads rc=$?"; grep -E "OK \]|FAILED  \]|rank .*:" $O/enq_threads4.log | head -8 | tee -a $O/session.log
(export CUDA_VISIBLE_DEVICES=0,1; timeout 40 $B/tests/corun_gpu_ce_tests --gtest_filter='*EnqueueThread*' > $O/enq_threads2.log 2>&1; log "enqueue thread, 2 GPUs as threads rc=$?"; grep -E "OK \]|FAILED  \]|rank .*:" $O/enq_threads2.log | head -8 | tee -a $O/session.log)
(cd $B && timeout 100 ctest -R "^ce_procs_mpirun" --output-on-failure --timeout 45) > $O/ce_procs.log 2>&1; log "ctest ce procs 2+4 rc=$?"; grep -E "Test +#|tests passed|configuration" $O/ce_procs.log | tail -16 | tee -a $O/session.log
DDP4="torchrun --standalone --nproc_per_node=4 examples/ddp_gpt.py --steps 30 --warmup 10"
d4(){ n=$1; shift; late ${LATE:-250} && return; "$@" > $O/ddp4_$n.log 2>&1; log "ddp4 $n rc=$?"; grep -E "step median|copy engines" $O/ddp4_$n.log | head -2 | tee -a $O/session.log; }
c4(){ n=$1; shift; d4 $n env CORUN_CE_MAX_RANKS=4 "$@" timeout 60 $B/corun -p ce --report $O/ddp4_${n}_%p.json -- $DDP4 --out $O/ddp4_$n.json; }
d4 stock timeout 60 $DDP4 --out $O/ddp4_stock.json
c4 thread1 CORUN_CE_THREAD=1
c4 ce
c4 thread2 CORUN_CE_THREAD=1
export CUDA_VISIBLE_DEVICES=0,1
DDP2="torchrun --standalone --nproc_per_node=2 examples/ddp_gpt.py --steps 30 --warmup 10"
d2(){ n=$1; shift; late ${LATE:-330} && return; "$@" > $O/ddp2_$n.log 2>&1; log "ddp2 $n rc=$?"; grep -E "step median|copy engines" $O/ddp2_$n.log | head -2 | tee -a $O/session.log; }
c2(){ n=$1; shift; d2 $n env "$@" timeout 50 $B/corun -p ce --report $O/ddp2_${n}_%p.json -- $DDP2 --out $O/ddp2_$n.json; }
d2 stock timeout 50 $DDP2 --out $O/ddp2_stock.json
c2 thread CORUN_CE_THREAD=1
c2 ce
cd $O && tar czf all.tgz --exclude=session.log --exclude=all.tgz --exclude=build.log * ; find . -mindepth 1 ! -name session.log ! -name all.tgz -delete
log done
