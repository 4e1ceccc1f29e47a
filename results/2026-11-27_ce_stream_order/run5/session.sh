#!/usr/bin/env bash
# Every copy-engine test on 2 GPUs as ctest runs them (CUDA_DEVICE_MAX_CONNECTIONS=32 from the
# test properties): threads, 2 processes, a peer that exits, PyTorch under the interposer.
. scripts/session_lib.sh; build corun corun_preload corun_gpu_ce_tests ce_procs_check; (cd $B && timeout 200 ctest -L ce --timeout 100 --output-on-failure) > $O/ctest_ce.log 2>&1; log "ctest -L ce rc=$?"; grep -E "Test +#|tests passed|Failed" $O/ctest_ce.log | tail -20 | tee -a $O/session.log; finish
