#!/usr/bin/env bash
# 64-bit chunk numbers with 32-bit flag words (the wrap fix): the new wrap test on 4 and 2 GPUs,
# every copy-engine test on 4 GPUs, then DDP stock / ce rounds on 2 and 4 GPUs and one profiled ce row.
. scripts/session_lib.sh
build corun corun_preload corun_gpu_ce_tests ce_procs_check
T=$B/tests/corun_gpu_ce_tests
timeout 100 $T --gtest_filter='*FlagWrap*' > $O/wrap4.log 2>&1; log "wrap test, 4 GPUs as threads rc=$?"
grep -E "OK \]|FAILED  \]|rank .*:" $O/wrap4.log | head -10 | tee -a $O/session.log
(export CUDA_VISIBLE_DEVICES=0,1; timeout 100 $T --gtest_filter='*FlagWrap*:*Stressed*' > $O/wrap2.log 2>&1); log "wrap + stressed, 2 GPUs rc=$?"
grep -E "OK \]|FAILED  \]|rank .*:" $O/wrap2.log | head -10 | tee -a $O/session.log
(cd $B && timeout 200 ctest -L ce --timeout 100 --output-on-failure) > $O/ctest_ce4.log 2>&1; log "ctest -L ce, 4 GPUs rc=$?"
grep -E "Test +#|tests passed|rank .*:" $O/ctest_ce4.log | tail -24 | tee -a $O/session.log
for i in 1 2; do LATE=480 s2 stock2_$i; LATE=490 c2 ce2_$i; done
LATE=500 s4 stock4; LATE=530 c4 ce4
LATE=550 c2 prof CORUN_CE_PROFILE=1
grep -E "corun ce: rank" $O/ddp2_prof.log | tail -2 | tee -a $O/session.log
finish
