#!/usr/bin/env bash
# One end event for every call, created at Init (the per-stream events of a6323ca were created by
# the enqueue thread on its first call, and the enqueue-thread tests hung in the last call, on the
# tree before this change too). The enqueue-thread, two-stream and abort tests on 2 and 4 GPUs as
# threads, 2 and 4 processes; DDP on 2 GPUs stock / ce / ce least, two rounds; 4 GPUs stock / ce /
# ce least.
. scripts/session_lib.sh
build corun corun_preload corun_gpu_ce_tests ce_procs_check
T=$B/tests/corun_gpu_ce_tests
F='*EnqueueThread*:*TwoStreams*:*AbortEndsABulk*:*Stressed*'
(export CUDA_VISIBLE_DEVICES=0,1; timeout 60 $T --gtest_filter="$F" > $O/t2.log 2>&1; log "2 gpus as threads rc=$?"; grep -E "OK \]|FAILED  \]|rank .*:" $O/t2.log | head -10 | tee -a $O/session.log)
NG=$(nvidia-smi -L | wc -l)
[ $NG -ge 4 ] && timeout 70 $T --gtest_filter="$F" > $O/t4.log 2>&1; log "4 gpus as threads rc=$?"; grep -E "OK \]|FAILED  \]|rank .*:" $O/t4.log | head -10 | tee -a $O/session.log
procs(){ (export CUDA_VISIBLE_DEVICES=$([ $2 = 2 ] && echo 0,1 || echo 0,1,2,3); timeout 60 sh tests/gpu/ce_procs_check.sh $B/tests/ce_procs_check match $2 > $O/$1.log 2>&1; log "$1 rc=$?"; grep -E "matched|FAIL|fail" $O/$1.log | head -6 | tee -a $O/session.log); }
procs procs2 2
[ $NG -ge 4 ] && procs procs4 4
export LATE=380; for i in 1 2; do s2 stock$i; c2 ce$i; c2 least$i CORUN_CE_REDUCE_PRIORITY=least; done
[ $NG -ge 4 ] && { export LATE=470; s4 stock4; LATE=470 c4 ce4; LATE=470 c4 least4 CORUN_CE_REDUCE_PRIORITY=least; }
finish
