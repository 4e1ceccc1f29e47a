#!/usr/bin/env bash
# The 2-GPU thread tests again with CUDA_DEVICE_MAX_CONNECTIONS=32 as ctest sets it (the last call
# ran the binary without it, and the stressed configuration stopped at the time limit).
. scripts/session_lib.sh
build corun_gpu_ce_tests
export CUDA_DEVICE_MAX_CONNECTIONS=32 CUDA_VISIBLE_DEVICES=0,1
timeout 120 $B/tests/corun_gpu_ce_tests --gtest_filter='*Stressed*:*EnqueueThread*:*TwoStreams*:*AbortEndsABulk*' > $O/t2.log 2>&1; log "2 gpus as threads rc=$?"; grep -E "OK \]|FAILED  \]|rank .*:" $O/t2.log | head -10 | tee -a $O/session.log
finish
