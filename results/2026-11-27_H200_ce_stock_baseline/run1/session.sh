#!/usr/bin/env bash
# GPU check of the review fixes and the re-read (never run on a GPU), the new abort test of a bulk
# call on one stream (and queued by the thread); DDP on 2 GPUs stock / ce / ce + enqueue thread, three
# rounds alternating; corun trace of the 2-GPU ce step.
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
timeout 90 $B/tests/corun_gpu_ce_tests --gtest_filter='*EveryCollective*:*Stressed*:*EnqueueThread*:*AbortEndsABulk*' > $O/ce_threads4.log 2>&1; log "ce 4 gpus as threads rc=$?"; grep -E "OK \]|FAILED  \]|rank .*:" $O/ce_threads4.log | head -12 | tee -a $O/session.log
export CUDA_VISIBLE_DEVICES=0,1
DDP2="torchrun --standalone --nproc_per_node=2 examples/ddp_gpt.py --steps 30 --warmup 10"
d2(){ n=$1; shift; late ${LATE:-470} && return; "$@" > $O/ddp2_$n.log 2>&1; log "ddp2 $n rc=$?"; grep -E "step median|copy engines" $O/ddp2_$n.log | head -2 | tee -a $O/session.log; }
c2(){ n=$1; shift; d2 $n env "$@" timeout 50 $B/corun -p ce --report $O/ddp2_${n}_%p.json -- $DDP2 --out $O/ddp2_$n.json; }
for i in 1 2 3; do
  d2 stock$i timeout 50 $DDP2 --out $O/ddp2_stock$i.json
  c2 ce$i
  c2 thread$i CORUN_CE_THREAD=1
done
late 520 || { timeout 60 $B/corun trace -p ce -o $O/tr2 --steps kernel:DistributionRandomKernel --skip 10 -- $DDP2 --steps 20 > $O/tr2.log 2>&1; log "trace ddp2 ce rc=$?"; grep -E "^#|^  r" $O/tr2.log | head -24 | tee -a $O/session.log; }
cd $O && (cd tr2 2>/dev/null && tar cJf ../records_ddp2.tar.xz corun_trace.*.jsonl 2>/dev/null; rm -f corun_trace.p*.jsonl trace.p*.json); tar czf all.tgz --exclude=session.log --exclude=all.tgz --exclude=build.log * ; find . -mindepth 1 ! -name session.log ! -name all.tgz -delete
log done
