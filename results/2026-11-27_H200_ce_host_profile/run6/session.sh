#!/usr/bin/env bash
# The final tree: the stressed ce test and the DDP example under ce with CORUN_CE_PROFILE=1.
set -u
O=$OUT; B=/root/b; t0=$(date +%s)
log(){ echo "[$(( $(date +%s)-t0 ))s] $*" | tee -a $O/session.log; }
{ date -u; nvidia-smi --query-gpu=index,name,driver_version --format=csv; python3 -c 'import torch;print(torch.__version__, torch.cuda.nccl.version())'; } > $O/env.txt 2>&1
cmake -S . -B $B -G Ninja -DCMAKE_BUILD_TYPE=Release > $O/build.log 2>&1 && cmake --build $B -j32 --target corun corun_preload corun_gpu_ce_tests >> $O/build.log 2>&1 || { log BUILD FAILED; tail -30 $O/build.log; exit 1; }
log built
export CUDA_DEVICE_MAX_CONNECTIONS=32
timeout 40 $B/tests/corun_gpu_ce_tests --gtest_filter='*StressedProtocolConfiguration:*PushFormMatchesNccl' > $O/ce_tests_2gpu.log 2>&1; log "ce tests rc=$?"; grep -E "OK \]|FAILED" $O/ce_tests_2gpu.log | tee -a $O/session.log
CORUN_CE_PROFILE=1 timeout 60 $B/corun -p ce --report $O/ddp2_prof_%p.json -- torchrun --standalone --nproc_per_node=2 examples/ddp_gpt.py --steps 30 --warmup 10 --out $O/ddp2_prof.json > $O/ddp2_prof.log 2>&1; log "ddp2 prof rc=$?"; grep -E "step median|copy engines|host time per call over 500" $O/ddp2_prof.log | tee -a $O/session.log
cd $O && tar czf all.tgz --exclude=session.log --exclude=all.tgz --exclude=build.log * ; find . -mindepth 1 ! -name session.log ! -name all.tgz -delete
log done
