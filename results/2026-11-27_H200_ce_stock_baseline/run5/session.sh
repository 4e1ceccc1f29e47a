#!/usr/bin/env bash
# Tree 3cdfaf8 (built by call46 on the same machine): DDP on 4 GPUs with the enqueue thread and
# bulk rounds on a stream each way, unphased, so that a round's copies pass the previous round's
# reduction while it waits for SMs.
set -u
O=$OUT; B=/root/b; t0=$(date +%s)
log(){ echo "[$(( $(date +%s)-t0 ))s] $*" | tee -a $O/session.log; }
DDP4="torchrun --standalone --nproc_per_node=4 examples/ddp_gpt.py --steps 30 --warmup 10"
d4(){ n=$1; shift; [ $(( $(date +%s)-t0 )) -gt 190 ] && return; env CORUN_CE_MAX_RANKS=4 "$@" timeout 60 $B/corun -p ce --report $O/ddp4_${n}_%p.json -- $DDP4 --out $O/ddp4_$n.json > $O/ddp4_$n.log 2>&1; log "ddp4 $n rc=$?"; grep -E "step median|copy engines" $O/ddp4_$n.log | head -2 | tee -a $O/session.log; }
d4 thread CORUN_CE_THREAD=1
d4 thread_split_r2 CORUN_CE_THREAD=1 CORUN_CE_BULK_CALLER=0 CORUN_CE_PHASES=0 CORUN_CE_BULK_ROUND=2
d4 split_r2 CORUN_CE_BULK_CALLER=0 CORUN_CE_PHASES=0 CORUN_CE_BULK_ROUND=2
d4 thread_split_r1 CORUN_CE_THREAD=1 CORUN_CE_BULK_CALLER=0 CORUN_CE_PHASES=0 CORUN_CE_BULK_ROUND=1
d4 ce
cd $O && tar czf all.tgz --exclude=session.log --exclude=all.tgz * ; find . -mindepth 1 ! -name session.log ! -name all.tgz -delete
log done
