#!/usr/bin/env bash
# The committed tree (fd211a8) on a GPU: every copy-engine test on 4 GPUs (threads over 4 GPUs,
# 4 processes, a peer that exits, PyTorch), then on 2 GPUs; DDP stock / ce rows with what is left.
. scripts/session_lib.sh
build corun corun_preload corun_gpu_ce_tests ce_procs_check
(cd $B && timeout 260 ctest -L ce --timeout 100 --output-on-failure) > $O/ctest_ce4.log 2>&1; log "ctest -L ce, 4 GPUs rc=$?"
grep -E "Test +#|tests passed|rank .*:" $O/ctest_ce4.log | tail -24 | tee -a $O/session.log
(export CUDA_VISIBLE_DEVICES=0,1; cd $B && timeout 160 ctest -L ce --timeout 100 --output-on-failure) > $O/ctest_ce2.log 2>&1; log "ctest -L ce, 2 GPUs rc=$?"
grep -E "Test +#|tests passed|rank .*:" $O/ctest_ce2.log | tail -24 | tee -a $O/session.log
LATE=470 s4 stock4; LATE=520 c4 ce4
LATE=540 s2 stock2; LATE=540 c2 ce2
finish
