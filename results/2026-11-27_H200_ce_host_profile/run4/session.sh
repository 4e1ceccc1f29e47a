#!/usr/bin/env bash
# The final tree: every ce test on 2 GPUs, then the DDP example against stock with CORUN_CE_PROFILE.
set -u
O=$OUT; B=/root/b; t0=$(date +%s)
late(){ [ $(( $(date +%s)-t0 )) -gt ${1:-500} ]; }
log(){ echo "[$(( $(date +%s)-t0 ))s] $*" | tee -a $O/session.log; }
{ date -u; nvidia-smi --query-gpu=index,name,driver_version --format=csv; nvidia-smi topo -m | head -3; python3 -c 'import torch;print(torch.__version__, torch.cuda.nccl.version())'; env | grep -E '^(NCCL|CUDA_|TORCH_SYMM|NVSHMEM)'; } > $O/env.txt 2>&1
cmake -S . -B $B -G Ninja -DCMAKE_BUILD_TYPE=Release > $O/build.log 2>&1 && cmake --build $B -j32 >> $O/build.log 2>&1 || { log BUILD FAILED; tail -30 $O/build.log; exit 1; }
log built
export CUDA_DEVICE_MAX_CONNECTIONS=32
timeout 240 ctest --test-dir $B -L ce -E "_4$" --timeout 120 --output-on-failure > $O/ce_tests_2gpu.log 2>&1; log "ce tests 2gpu rc=$?"
grep -E "Test +#|tests passed" $O/ce_tests_2gpu.log | tee -a $O/session.log
DDP2="torchrun --standalone --nproc_per_node=2 examples/ddp_gpt.py --steps 30 --warmup 10"
ddp(){ n=$1; shift; late ${LATE:-480} && return; "$@" > $O/ddp2_$n.log 2>&1; log "ddp2 $n rc=$?"; grep -E "step median|copy engines|host time per call over 500" $O/ddp2_$n.log | tee -a $O/session.log; }
ce(){ n=$1; shift; ddp $n timeout 80 $B/corun -p ce --report $O/ddp2_${n}_%p.json -- $DDP2 --out $O/ddp2_$n.json "$@"; }
ddp stock1 timeout 80 $DDP2 --out $O/ddp2_stock1.json
CORUN_CE_PROFILE=1 ce prof1
ce ce1
ddp stock2 timeout 80 $DDP2 --out $O/ddp2_stock2.json
CORUN_CE_PROFILE=1 ce prof2
ce ce2
cd $O && tar czf all.tgz --exclude=session.log --exclude=all.tgz --exclude=build.log * ; find . -mindepth 1 ! -name session.log ! -name all.tgz -delete
log done
