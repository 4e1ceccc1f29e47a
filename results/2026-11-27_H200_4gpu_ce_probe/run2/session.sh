#!/usr/bin/env bash
set -u
O=$OUT; B=/root/b; t0=$(date +%s)
log(){ echo "[$(( $(date +%s)-t0 ))s] $*" | tee -a $O/session.log; }
{ date -u; nvidia-smi --query-gpu=index,name,driver_version --format=csv; } > $O/env.txt 2>&1
cmake -S . -B $B -G Ninja -DCMAKE_BUILD_TYPE=Release > $O/build.log 2>&1 && cmake --build $B -j64 --target p2p_probe ce_bench >> $O/build.log 2>&1 || { log BUILD FAILED; tail -30 $O/build.log; exit 1; }
log built
timeout 60 $B/tests/p2p_probe --gpus 4 --mib 224 --chunk-mib 32 --reps 6 > $O/probe4_224.jsonl 2>&1; log "probe4 224 rc=$?"; cut -c1-200 $O/probe4_224.jsonl | tee -a $O/session.log
timeout 60 $B/tests/p2p_probe --gpus 4 --mib 224 --chunk-mib 8 --reps 6 > $O/probe4_224c8.jsonl 2>&1; log "probe4 224 c8 rc=$?"; grep -E "chunk" $O/probe4_224c8.jsonl | tee -a $O/session.log
export CUDA_DEVICE_MAX_CONNECTIONS=32
for v in "c128:--chunk-mib 128" "l1:--lanes 1" "c128l1:--chunk-mib 128 --lanes 1"; do n=${v%%:*}; a=${v#*:}
  timeout 60 $B/tests/ce_bench --gpus 4 --alone-only --sizes-mib 224 --reps 6 --warmup 2 $a --out $O/ce4_$n.json > $O/ce4_$n.log 2>&1; log "ce4 $n rc=$?"; grep -E "alone/.*/ce " $O/ce4_$n.log | tee -a $O/session.log
done
cd $O && tar czf all.tgz --exclude=session.log --exclude=all.tgz --exclude=build.log * ; find . -mindepth 1 ! -name session.log ! -name all.tgz -delete
log done
