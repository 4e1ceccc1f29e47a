#!/usr/bin/env bash
# Copy-engine bandwidth by issue pattern on 4 and 2 GPUs (p2p_probe), next to the ce allreduce alone.
set -u
O=$OUT; B=/root/b; t0=$(date +%s)
log(){ echo "[$(( $(date +%s)-t0 ))s] $*" | tee -a $O/session.log; }
{ date -u; nvidia-smi --query-gpu=index,name,driver_version --format=csv; nvidia-smi topo -m | head -6; } > $O/env.txt 2>&1
cmake -S . -B $B -G Ninja -DCMAKE_BUILD_TYPE=Release > $O/build.log 2>&1 && cmake --build $B -j64 --target p2p_probe ce_bench >> $O/build.log 2>&1 || { log BUILD FAILED; tail -30 $O/build.log; exit 1; }
log built
timeout 60 $B/tests/p2p_probe --gpus 4 --mib 64 --chunk-mib 8 --reps 10 > $O/probe4_64.jsonl 2>&1; log "probe4 64 rc=$?"; cat $O/probe4_64.jsonl | tee -a $O/session.log
timeout 60 $B/tests/p2p_probe --gpus 4 --mib 224 --chunk-mib 32 --reps 6 > $O/probe4_224.jsonl 2>&1; log "probe4 224 rc=$?"; cat $O/probe4_224.jsonl | tee -a $O/session.log
CUDA_VISIBLE_DEVICES=0,1 timeout 60 $B/tests/p2p_probe --gpus 2 --mib 224 --chunk-mib 32 --reps 6 > $O/probe2_224.jsonl 2>&1; log "probe2 224 rc=$?"; cat $O/probe2_224.jsonl | tee -a $O/session.log
CUDA_DEVICE_MAX_CONNECTIONS=32 timeout 60 $B/tests/ce_bench --gpus 4 --alone-only --sizes-mib 224 --reps 6 --warmup 2 --out $O/ce_bench4.json > $O/ce_bench4.log 2>&1; log "ce_bench4 rc=$?"; grep -E "alone/" $O/ce_bench4.log | tee -a $O/session.log
cd $O && tar czf all.tgz --exclude=session.log --exclude=all.tgz --exclude=build.log * ; find . -mindepth 1 ! -name session.log ! -name all.tgz -delete
log done
