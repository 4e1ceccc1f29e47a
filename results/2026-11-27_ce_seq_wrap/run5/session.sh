#!/usr/bin/env bash
# The committed tree: every copy-engine test on 4 GPUs (the wrap tests included), then DDP rows.
. scripts/session_lib.sh
build corun corun_preload corun_gpu_ce_tests ce_procs_check
(cd $B && timeout 200 ctest -L ce --timeout 100 --output-on-failure) > $O/ctest_ce4.log 2>&1; log "ctest -L ce, 4 GPUs rc=$?"
grep -E "Test +#|tests passed|rank .*:" $O/ctest_ce4.log | tail -24 | tee -a $O/session.log
LATE=250 s2 stock2; LATE=280 c2 ce2; LATE=300 s4 stock4; LATE=320 c4 ce4
finish
