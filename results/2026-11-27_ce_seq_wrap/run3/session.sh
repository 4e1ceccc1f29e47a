#!/usr/bin/env bash
# The wrap tests one configuration at a time (the last call's ran together and stopped at the time
# limit with no output on 4 GPUs): 4 GPUs with CORUN_CE_DEBUG=1 (last lines kept), then 2 GPUs.
. scripts/session_lib.sh
build corun_gpu_ce_tests
T=$B/tests/corun_gpu_ce_tests
for t in Defaults PullThroughStaging SmallChunks BulkRounds; do
  CORUN_CE_DEBUG=1 timeout 40 stdbuf -oL -eL $T --gtest_filter="*FlagWrap$t" > $O/full.log 2>&1; log "4 GPUs $t rc=$?"
  grep -E "OK \]|FAILED  \]|rank .*:" $O/full.log | head -6 | tee -a $O/session.log
  grep -vE "^corun ce: rank" $O/full.log | head -60 > $O/wrap4_$t.log; echo "--- last debug lines" >> $O/wrap4_$t.log
  tail -120 $O/full.log >> $O/wrap4_$t.log; rm -f $O/full.log
done
for t in Defaults PullThroughStaging SmallChunks BulkRounds; do
  CUDA_VISIBLE_DEVICES=0,1 timeout 40 stdbuf -oL -eL $T --gtest_filter="*FlagWrap$t" > $O/wrap2_$t.log 2>&1; log "2 GPUs $t rc=$?"
  grep -E "OK \]|FAILED  \]|rank .*:" $O/wrap2_$t.log | head -6 | tee -a $O/session.log
done
finish
