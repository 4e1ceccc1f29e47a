#!/usr/bin/env bash
# 2 GPUs: the reduction kernel with four vectors in flight per thread (new) against the one-vector
# loop (old: .wt/ce_reduce_old.cu built into a second tree), alone (ce_bench's kernel rate, the
# collective alone and beside GEMMs) and in the DDP example, in the pull form and the push form.
set -u
O=$OUT; B=/root/b; BO=/root/b_old; t0=$(date +%s)
late(){ [ $(( $(date +%s)-t0 )) -gt ${1:-500} ]; }
log(){ echo "[$(( $(date +%s)-t0 ))s] $*" | tee -a $O/session.log; }
{ date -u; nvidia-smi --query-gpu=index,name,driver_version --format=csv; nvidia-smi topo -m | head -4; python3 -c 'import torch;print(torch.__version__, torch.cuda.nccl.version())'; env | grep -E '^(NCCL|CUDA_|TORCH_SYMM|NVSHMEM)'; } > $O/env.txt 2>&1
cmake -S . -B $B -G Ninja -DCMAKE_BUILD_TYPE=Release > $O/build.log 2>&1 && cmake --build $B -j32 >> $O/build.log 2>&1 || { log BUILD FAILED; tail -30 $O/build.log; exit 1; }
log built
mkdir -p /root/src_old && tar cf - --exclude=./build --exclude=./.wt --exclude=./results . | tar xf - -C /root/src_old && cp .wt/ce_reduce_old.cu /root/src_old/src/runtime/ce_reduce.cu
cmake -S /root/src_old -B $BO -G Ninja -DCMAKE_BUILD_TYPE=Release > $O/build_old.log 2>&1 && cmake --build $BO -j32 --target corun corun_preload ce_bench >> $O/build_old.log 2>&1 || { log OLD BUILD FAILED; tail -30 $O/build_old.log; exit 1; }
log built old
export CUDA_DEVICE_MAX_CONNECTIONS=32
for v in "new:$B:" "old:$BO:" "new_push:$B:--push"; do n=$(echo $v | cut -d: -f1); b=$(echo $v | cut -d: -f2); fl=$(echo $v | cut -d: -f3)
  timeout -k 5 80 $b/tests/ce_bench $fl --reps 10 --out $O/ce_bench_$n.json > $O/ce_bench_$n.log 2>&1; log "ce_bench $n rc=$?"
  grep -E "reduce kernel|alone/.*/ce|ce  " $O/ce_bench_$n.log | tee -a $O/session.log
done
DDP2="torchrun --standalone --nproc_per_node=2 examples/ddp_gpt.py --steps 30 --warmup 10"
ddp(){ n=$1; shift; late 500 && return; "$@" > $O/ddp2_$n.log 2>&1; log "ddp2 $n rc=$?"; grep -E "step median|copy engines" $O/ddp2_$n.log | tee -a $O/session.log; }
ce(){ n=$1; b=$2; shift 2; ddp $n env "$@" timeout 80 $b/corun -p ce --report $O/ddp2_${n}_%p.json -- $DDP2 --out $O/ddp2_$n.json; }
ddp stock1 timeout 80 $DDP2 --out $O/ddp2_stock1.json
ce new_pull1 $B CORUN_CE_PULL=1
ce new_push1 $B CORUN_CE_PULL=0
ce old_pull1 $BO CORUN_CE_PULL=1
ddp floor timeout 80 $DDP2 --mode noop_hook --out $O/ddp2_floor.json
ce new_pull2 $B CORUN_CE_PULL=1
ce new_push2 $B CORUN_CE_PULL=0
ce old_pull2 $BO CORUN_CE_PULL=1
ddp stock2 timeout 80 $DDP2 --out $O/ddp2_stock2.json
late 480 || { (cd $B && timeout 100 ctest -L ce -E "_4$|mpirun_4|preload_torch" --timeout 60 --output-on-failure) > $O/ce_tests_2gpu.log 2>&1; log "ce tests 2gpu rc=$?"; grep -E "Test +#|tests passed" $O/ce_tests_2gpu.log | tee -a $O/session.log; }
cd $O && tar czf all.tgz --exclude=session.log --exclude=all.tgz --exclude=build.log * ; find . -mindepth 1 ! -name session.log ! -name all.tgz -delete
log done
