#!/usr/bin/env bash
# Tree 3cdfaf8: corun trace of the 4-GPU DDP step under ce, with the enqueue thread and without,
# to see what the GPU waits for once the program's thread no longer waits in the agreement.
set -u
O=$OUT; B=/root/b; t0=$(date +%s)
log(){ echo "[$(( $(date +%s)-t0 ))s] $*" | tee -a $O/session.log; }
{ date -u; nvidia-smi --query-gpu=index,name,driver_version --format=csv; python3 -c 'import torch;print(torch.__version__, torch.cuda.nccl.version())'; } > $O/env.txt 2>&1
cmake -S . -B $B -G Ninja -DCMAKE_BUILD_TYPE=Release > $O/build.log 2>&1 && cmake --build $B -j64 --target corun corun_preload corun_trace >> $O/build.log 2>&1 || { log BUILD FAILED; tail -30 $O/build.log; exit 1; }
log built
DDP4="torchrun --standalone --nproc_per_node=4 examples/ddp_gpt.py --steps 20 --warmup 10"
tr(){ n=$1; shift; env CORUN_CE_MAX_RANKS=4 "$@" timeout 80 $B/corun trace -p ce -o $O/$n --steps kernel:DistributionRandomKernel --skip 10 -- $DDP4 > $O/$n.log 2>&1; log "trace $n rc=$?"; grep -E "^  r|largest" $O/$n.log | head -8 | tee -a $O/session.log
  (cd $O/$n && python3 /root/repo_scripts/trace_step_parts.py corun_trace.r*.jsonl 2>&1 | tail -5 | tee -a $O/session.log; tar cJf ../records_$n.tar.xz corun_trace.*.jsonl; rm -f corun_trace.*.jsonl trace.*.json); }
mkdir -p /root/repo_scripts && cp scripts/trace_step_parts.py scripts/trace_records.py /root/repo_scripts/
tr thread CORUN_CE_THREAD=1
tr caller
cd $O && tar czf all.tgz --exclude=session.log --exclude=all.tgz --exclude=build.log * ; find . -mindepth 1 ! -name session.log ! -name all.tgz -delete
log done
