#!/usr/bin/env bash
# Push form by default on 2 ranks: every ce test on 2 GPUs, 4-rank process tests, 4 GPUs as threads
# (also the review fixes, not yet run on a GPU); DDP on 4 and 2 GPUs against stock and the
# no-communication floor (noop_hook), ce beside a cuBLAS SM target with the reduction sized to the
# SMs left; the allreduce alone on 4 GPUs by round shape.
set -u
O=$OUT; B=/root/b; t0=$(date +%s)
late(){ [ $(( $(date +%s)-t0 )) -gt ${1:-500} ]; }
log(){ echo "[$(( $(date +%s)-t0 ))s] $*" | tee -a $O/session.log; }
{ date -u; git log -1 --format='%H %s' 2>/dev/null; nvidia-smi --query-gpu=index,name,driver_version --format=csv; nvidia-smi topo -m; python3 -c 'import torch;print(torch.__version__, torch.cuda.nccl.version())'; env | grep -E '^(NCCL|CUDA_|TORCH_SYMM|NVSHMEM)'; } > $O/env.txt 2>&1
cmake -S . -B $B -G Ninja -DCMAKE_BUILD_TYPE=Release > $O/build.log 2>&1 && cmake --build $B -j64 >> $O/build.log 2>&1 || { log BUILD FAILED; tail -30 $O/build.log; exit 1; }
log built
export CUDA_DEVICE_MAX_CONNECTIONS=32
(export CUDA_VISIBLE_DEVICES=0,1; cd $B && timeout 200 ctest -L ce -E "_4$" --output-on-failure --timeout 120) > $O/ce_tests_2gpu.log 2>&1; log "ctest ce 2gpu rc=$?"; grep -E "Test +#|tests passed" $O/ce_tests_2gpu.log | tee -a $O/session.log
(cd $B && timeout 120 ctest -R "ce_procs_mpirun_4|ce_procs_peer_exit_4" --output-on-failure --timeout 60) > $O/ce_tests_4gpu.log 2>&1; log "ctest ce 4 procs rc=$?"; grep -E "Test +#|tests passed" $O/ce_tests_4gpu.log | tee -a $O/session.log
timeout 60 $B/tests/corun_gpu_ce_tests --gtest_filter='*EveryCollective*:*Stressed*:*PushForm*' > $O/ce_threads4.log 2>&1; log "ce 4 gpus as threads rc=$?"; grep -E "OK \]|FAILED  \]" $O/ce_threads4.log | tee -a $O/session.log
DDP4="torchrun --standalone --nproc_per_node=4 examples/ddp_gpt.py --steps 30 --warmup 10"
d4(){ n=$1; shift; late ${LATE:-330} && return; "$@" > $O/ddp4_$n.log 2>&1; log "ddp4 $n rc=$?"; grep -E "step median|copy engines" $O/ddp4_$n.log | head -2 | tee -a $O/session.log; }
c4(){ n=$1; p=$2; shift 2; d4 $n env CORUN_CE_MAX_RANKS=4 "$@" timeout 60 $B/corun -p $p --report $O/ddp4_${n}_%p.json -- $DDP4 --out $O/ddp4_$n.json; }
d4 stock timeout 60 $DDP4 --out $O/ddp4_stock.json
d4 noop timeout 60 $DDP4 --mode noop_hook --out $O/ddp4_noop.json
c4 ce ce
c4 sm124 ce+smtarget:124 CORUN_CE_REDUCE_SMS=8
c4 sm124r2 ce+smtarget:124 CORUN_CE_REDUCE_SMS=8 CORUN_CE_BULK_ROUND=2 CORUN_CE_PHASES=0
c4 sm116 ce+smtarget:116 CORUN_CE_REDUCE_SMS=16
export CUDA_VISIBLE_DEVICES=0,1
DDP2="torchrun --standalone --nproc_per_node=2 examples/ddp_gpt.py --steps 30 --warmup 10"
d2(){ n=$1; shift; late ${LATE:-470} && return; "$@" > $O/ddp2_$n.log 2>&1; log "ddp2 $n rc=$?"; grep -E "step median|copy engines" $O/ddp2_$n.log | head -2 | tee -a $O/session.log; }
c2(){ n=$1; p=$2; shift 2; d2 $n env "$@" timeout 50 $B/corun -p $p --report $O/ddp2_${n}_%p.json -- $DDP2 --out $O/ddp2_$n.json; }
d2 stock timeout 50 $DDP2 --out $O/ddp2_stock.json
d2 noop timeout 50 $DDP2 --mode noop_hook --out $O/ddp2_noop.json
c2 ce ce
c2 pull ce CORUN_CE_PULL=1
c2 sm124 ce+smtarget:124 CORUN_CE_REDUCE_SMS=8
unset CUDA_VISIBLE_DEVICES
for m in def r4np; do late 540 && break
  a=""; [ $m = r4np ] && a="--bulk-round 4 --no-phases"
  timeout 40 $B/tests/ce_bench --gpus 4 --alone-only --sizes-mib 25,108,224,896 --reps 10 --warmup 2 $a --out $O/ce4_$m.json > $O/ce4_$m.log 2>&1; log "ce_bench 4 $m rc=$?"; grep -E "/ce |/nccl " $O/ce4_$m.log | head -8 | tee -a $O/session.log
done
cd $O && tar czf all.tgz --exclude=session.log --exclude=all.tgz --exclude=build.log * ; find . -mindepth 1 ! -name session.log ! -name all.tgz -delete
log done
