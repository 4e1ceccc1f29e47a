#!/usr/bin/env bash
# Do local copies (the push form's unpack) slow the pushes beside them? 4 GPUs, 224 MiB per peer.
set -u
O=$OUT; B=/root/b; t0=$(date +%s)
log(){ echo "[$(( $(date +%s)-t0 ))s] $*" | tee -a $O/session.log; }
{ date -u; nvidia-smi --query-gpu=index,name,driver_version --format=csv; } > $O/env.txt 2>&1
cmake -S . -B $B -G Ninja -DCMAKE_BUILD_TYPE=Release > $O/build.log 2>&1 && cmake --build $B -j64 --target p2p_probe >> $O/build.log 2>&1 || { log BUILD FAILED; tail -30 $O/build.log; exit 1; }
log built
for c in 32 8; do
  timeout 60 $B/tests/p2p_probe --gpus 4 --mib 224 --chunk-mib $c --reps 6 > $O/probe4_224c$c.jsonl 2>&1; log "probe4 224 c$c rc=$?"; cut -c1-150 $O/probe4_224c$c.jsonl | grep -E "chunk|seq\"" | tee -a $O/session.log
done
log done
