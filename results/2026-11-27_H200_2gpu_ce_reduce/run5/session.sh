#!/usr/bin/env bash
# 2 GPUs: is ce's DDP step bound by the host thread that issues backward? (a) ce's enqueue with
# fewer driver calls (new) against the last build (old: .wt/*_old.* in a second tree); (b) ce under
# a comm hook that busy-waits 0 / 110 us per bucket before its allreduce. Then the ce tests.
set -u
O=$OUT; B=/root/b; BO=/root/b_old; t0=$(date +%s)
late(){ [ $(( $(date +%s)-t0 )) -gt ${1:-500} ]; }
log(){ echo "[$(( $(date +%s)-t0 ))s] $*" | tee -a $O/session.log; }
{ date -u; nvidia-smi --query-gpu=index,name,driver_version --format=csv; nvidia-smi topo -m | head -4; python3 -c 'import torch;print(torch.__version__, torch.cuda.nccl.version())'; env | grep -E '^(NCCL|CUDA_|TORCH_SYMM|NVSHMEM)'; } > $O/env.txt 2>&1
cmake -S . -B $B -G Ninja -DCMAKE_BUILD_TYPE=Release > $O/build.log 2>&1 && cmake --build $B -j32 >> $O/build.log 2>&1 || { log BUILD FAILED; tail -30 $O/build.log; exit 1; }
log built
mkdir -p /root/src_old && tar cf - --exclude=./build --exclude=./.wt --exclude=./results . | tar xf - -C /root/src_old && cp .wt/ce_launch_old.cpp /root/src_old/src/runtime/ce_launch.cpp && cp .wt/ce_comm_old.cpp /root/src_old/src/runtime/ce_comm.cpp && cp .wt/ce_comm_old.h /root/src_old/src/runtime/ce_comm.h
cmake -S /root/src_old -B $BO -G Ninja -DCMAKE_BUILD_TYPE=Release > $O/build_old.log 2>&1 && cmake --build $BO -j32 --target corun corun_preload >> $O/build_old.log 2>&1 || { log OLD BUILD FAILED; tail -30 $O/build_old.log; exit 1; }
log built old
export CUDA_DEVICE_MAX_CONNECTIONS=32
DDP2="torchrun --standalone --nproc_per_node=2 examples/ddp_gpt.py --steps 30 --warmup 10"
ddp(){ n=$1; shift; late 330 && return; "$@" > $O/ddp2_$n.log 2>&1; log "ddp2 $n rc=$?"; grep -E "step median|copy engines" $O/ddp2_$n.log | tee -a $O/session.log; }
ce(){ n=$1; b=$2; shift 2; ddp $n timeout 80 $b/corun -p ce --report $O/ddp2_${n}_%p.json -- $DDP2 --out $O/ddp2_$n.json "$@"; }
ddp stock1 timeout 80 $DDP2 --out $O/ddp2_stock1.json
ce new1 $B
ce old1 $BO
ce new_hook0 $B --hook-delay-us 0
ce new_hook110 $B --hook-delay-us 110
ce new2 $B
ce old2 $BO
ddp stock2 timeout 80 $DDP2 --out $O/ddp2_stock2.json
late 360 || { (cd $B && timeout 90 ctest -L ce -E "_4$|mpirun_4|preload_torch" --timeout 60 --output-on-failure) > $O/ce_tests_2gpu.log 2>&1; log "ce tests 2gpu rc=$?"; grep -E "Test +#|tests passed" $O/ce_tests_2gpu.log | tee -a $O/session.log; }
cd $O && tar czf all.tgz --exclude=session.log --exclude=all.tgz --exclude=build.log * ; find . -mindepth 1 ! -name session.log ! -name all.tgz -delete
log done
