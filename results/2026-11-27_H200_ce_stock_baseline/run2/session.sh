#!/usr/bin/env bash
# Tree bb554a6: reductions that claim tiles (CeConfig::reduce_claim). The kernel test (both kinds,
# bit for bit), the abort test of a stalled bulk call, the stressed protocol with claimed
# reductions (2 and 4 GPUs as threads), 2 and 4 processes; the reduce kernel alone; DDP on 2 GPUs
# stock / ce / ce + claim, three rounds alternating; DDP on 4 GPUs stock / ce / ce + claim.
set -u
O=$OUT; B=/root/b; t0=$(date +%s)
late(){ [ $(( $(date +%s)-t0 )) -gt ${1:-500} ]; }
log(){ echo "[$(( $(date +%s)-t0 ))s] $*" | tee -a $O/session.log; }
{ date -u; nvidia-smi --query-gpu=index,name,driver_version --format=csv; python3 -c 'import torch;print(torch.__version__, torch.cuda.nccl.version())'; env | grep -E '^(NCCL|CUDA_|TORCH_SYMM|NVSHMEM)'; } > $O/env.txt 2>&1
cmake -S . -B $B -G Ninja -DCMAKE_BUILD_TYPE=Release > $O/build.log 2>&1 && cmake --build $B -j64 --target corun corun_preload corun_gpu_ce_tests ce_procs_check ce_bench >> $O/build.log 2>&1 || { log BUILD FAILED; tail -30 $O/build.log; exit 1; }
log built
export CUDA_DEVICE_MAX_CONNECTIONS=32
timeout 60 $B/tests/corun_gpu_ce_tests --gtest_filter='CeReduceKernel*:*AbortEndsABulk*:*Stressed*' > $O/t4.log 2>&1; log "4 gpus as threads rc=$?"; grep -E "OK \]|FAILED  \]|rank .*:|Failure|Expected|Which is|differ|claim" $O/t4.log | head -16 | tee -a $O/session.log
(export CUDA_VISIBLE_DEVICES=0,1; timeout 60 $B/tests/corun_gpu_ce_tests --gtest_filter='*AbortEndsABulk*:*Stressed*' > $O/t2.log 2>&1; log "2 gpus as threads rc=$?"; grep -E "OK \]|FAILED  \]|rank .*:" $O/t2.log | head -10 | tee -a $O/session.log)
(cd $B && timeout 100 ctest -R "^ce_procs_mpirun" --output-on-failure --timeout 45) > $O/ce_procs.log 2>&1; log "ctest ce procs 2+4 rc=$?"; grep -E "Test +#|tests passed" $O/ce_procs.log | tail -4 | tee -a $O/session.log
(export CUDA_VISIBLE_DEVICES=0,1; timeout 40 $B/tests/ce_bench --gpus 2 --alone-only --sizes-mib 108 --reps 10 --warmup 2 --out $O/ce2_fixed.json > $O/ce2_fixed.log 2>&1; log "ce_bench 2 fixed rc=$?"; grep -E "reduce kernel|/ce |/nccl " $O/ce2_fixed.log | tee -a $O/session.log
 timeout 40 $B/tests/ce_bench --gpus 2 --alone-only --sizes-mib 108 --reps 10 --warmup 2 --reduce-claim --out $O/ce2_claim.json > $O/ce2_claim.log 2>&1; log "ce_bench 2 claim rc=$?"; grep -E "/ce |/nccl " $O/ce2_claim.log | tee -a $O/session.log)
DDP2="torchrun --standalone --nproc_per_node=2 examples/ddp_gpt.py --steps 30 --warmup 10"
d2(){ n=$1; shift; late ${LATE:-420} && return; "$@" > $O/ddp2_$n.log 2>&1; log "ddp2 $n rc=$?"; grep -E "step median|copy engines" $O/ddp2_$n.log | head -2 | tee -a $O/session.log; }
c2(){ n=$1; shift; d2 $n env "$@" timeout 50 $B/corun -p ce --report $O/ddp2_${n}_%p.json -- $DDP2 --out $O/ddp2_$n.json; }
for i in 1 2 3; do
  (export CUDA_VISIBLE_DEVICES=0,1
  d2 stock$i timeout 50 $DDP2 --out $O/ddp2_stock$i.json
  c2 ce$i
  c2 claim$i CORUN_CE_REDUCE_CLAIM=1)
done
DDP4="torchrun --standalone --nproc_per_node=4 examples/ddp_gpt.py --steps 30 --warmup 10"
d4(){ n=$1; shift; late ${LATE:-520} && return; "$@" > $O/ddp4_$n.log 2>&1; log "ddp4 $n rc=$?"; grep -E "step median|copy engines" $O/ddp4_$n.log | head -2 | tee -a $O/session.log; }
c4(){ n=$1; shift; d4 $n env CORUN_CE_MAX_RANKS=4 "$@" timeout 60 $B/corun -p ce --report $O/ddp4_${n}_%p.json -- $DDP4 --out $O/ddp4_$n.json; }
d4 stock timeout 60 $DDP4 --out $O/ddp4_stock.json
c4 ce
c4 claim CORUN_CE_REDUCE_CLAIM=1
cd $O && tar czf all.tgz --exclude=session.log --exclude=all.tgz --exclude=build.log * ; find . -mindepth 1 ! -name session.log ! -name all.tgz -delete
log done
