#!/usr/bin/env bash
# 2 GPUs: corun trace --no-api (no launch-call records) against the default trace and untraced
# runs of the DDP example: is the traced step faithful, and where does ce's step lose time
# against stock and against no communication (records kept for scripts).
set -u
O=$OUT; B=/root/b; t0=$(date +%s)
late(){ [ $(( $(date +%s)-t0 )) -gt ${1:-500} ]; }
log(){ echo "[$(( $(date +%s)-t0 ))s] $*" | tee -a $O/session.log; }
{ date -u; nvidia-smi --query-gpu=index,name,driver_version --format=csv; nvidia-smi topo -m | head -4; python3 -c 'import torch;print(torch.__version__, torch.cuda.nccl.version())'; env | grep -E '^(NCCL|CUDA_|TORCH_SYMM|NVSHMEM)'; } > $O/env.txt 2>&1
cmake -S . -B $B -G Ninja -DCMAKE_BUILD_TYPE=Release > $O/build.log 2>&1 && cmake --build $B -j32 >> $O/build.log 2>&1 || { log BUILD FAILED; tail -30 $O/build.log; exit 1; }
log built
(cd $B && timeout 100 ctest -R "trace_gpu_two_streams" --output-on-failure) > $O/trace_test.log 2>&1; log "trace gpu test rc=$?"; grep -E "ok:|FAIL|tests passed" $O/trace_test.log | tee -a $O/session.log
DDP2="torchrun --standalone --nproc_per_node=2 examples/ddp_gpt.py --steps 30 --warmup 10"
TR="--steps kernel:DistributionRandomKernel --skip 10"
run(){ n=$1; shift; late 480 && return; "$@" > $O/$n.log 2>&1; log "$n rc=$?"; grep -E "step median|^  r[01] |largest loss" $O/$n.log | tee -a $O/session.log; }
run ce_plain timeout 80 $B/corun -p ce -- $DDP2
run ce_noapi timeout 100 $B/corun trace -p ce --no-api -o $O/tr_ce_noapi $TR -- $DDP2
run ce_api timeout 100 $B/corun trace -p ce -o $O/tr_ce_api $TR -- $DDP2
run stock_noapi timeout 100 $B/corun trace --no-api -o $O/tr_stock_noapi $TR -- $DDP2
run floor_noapi timeout 100 $B/corun trace --no-api -o $O/tr_floor_noapi $TR -- $DDP2 --mode noop_hook
run stock_plain timeout 80 $DDP2
cd $O && rm -f tr_*/trace.*.json && tar cJf records.tar.xz tr_*/corun_trace.r0.*.jsonl && rm -f tr_*/corun_trace.*.jsonl
tar czf all.tgz --exclude=session.log --exclude=all.tgz --exclude=build.log --exclude=records.tar.xz * ; find . -mindepth 1 ! -name session.log ! -name all.tgz ! -name records.tar.xz -delete
ls -la $O
log done
