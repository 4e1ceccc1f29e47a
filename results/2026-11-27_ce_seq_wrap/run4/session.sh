#!/usr/bin/env bash
# Does one call of many chunks (64 KiB chunks, 2 slots, 3 lanes) stop without the wrap (first_seq 0)?
# Then the wrap tests as committed (the 100 MiB case only with chunks of 1 MiB or more), 2 and 4 GPUs.
. scripts/session_lib.sh
build corun_gpu_ce_tests
T=$B/tests/corun_gpu_ce_tests
for v in "100 0" "10 0" "100 1" "10 1"; do
  set -- $v
  ( export CUDA_VISIBLE_DEVICES=0,1 MANY_MIB=$1; [ $2 = 1 ] && export MANY_BULK=1
    timeout 20 stdbuf -oL -eL $T --gtest_also_run_disabled_tests --gtest_filter='*ManyChunksInOneCall' > $O/many_${1}_$2.log 2>&1 ); log "2 GPUs, ${1} MiB, bulk $2: rc=$?"
  grep -E "OK \]|FAILED  \]|rank .*:" $O/many_${1}_$2.log | head -4 | tee -a $O/session.log
done
CUDA_VISIBLE_DEVICES=0,1 timeout 60 stdbuf -oL -eL $T --gtest_filter='*FlagWrap*' > $O/wrap2.log 2>&1; log "wrap tests, 2 GPUs rc=$?"
grep -E "OK \]|FAILED  \]|rank .*:" $O/wrap2.log | head -8 | tee -a $O/session.log
timeout 60 stdbuf -oL -eL $T --gtest_filter='*FlagWrap*' > $O/wrap4.log 2>&1; log "wrap tests, 4 GPUs rc=$?"
grep -E "OK \]|FAILED  \]|rank .*:" $O/wrap4.log | head -8 | tee -a $O/session.log
finish
