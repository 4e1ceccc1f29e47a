#!/usr/bin/env bash
# The process tests run directly (the last call's ctest of them stopped at 100 s with no output),
# against the tree before the ordering (d48ea5d) where the current one fails; the new test and the
# abort tests on 4 GPUs as threads; DDP on 2 GPUs stock / ce / ce least, two rounds; 4 GPUs
# stock / ce / ce least; one 2-GPU ce row with CORUN_CE_DEBUG=1 counting stream switches.
. scripts/session_lib.sh
build corun corun_preload corun_gpu_ce_tests ce_procs_check
T=$B/tests/corun_gpu_ce_tests
procs(){ # procs NAME BINARY NP
  (export CUDA_VISIBLE_DEVICES=$([ $3 = 2 ] && echo 0,1 || echo 0,1,2,3); timeout 90 sh tests/gpu/ce_procs_check.sh $2 match $3 > $O/$1.log 2>&1; log "$1 rc=$?"; grep -E "rank .*(configuration|matched|FAIL|fail)|FAIL" $O/$1.log | head -8 | tee -a $O/session.log)
}
procs procs2 $B/tests/ce_procs_check 2
procs procs4 $B/tests/ce_procs_check 4
if grep -qE "procs[24] rc=[^0]" $O/session.log; then
  mkdir -p /tmp/base && tar xf .wt/base.tar -C /tmp/base
  (cd /tmp/base && cmake -S . -B /root/b_base -G Ninja -DCMAKE_BUILD_TYPE=Release > $O/build_base.log 2>&1 && cmake --build /root/b_base -j64 --target ce_procs_check >> $O/build_base.log 2>&1); log "base build rc=$?"
  procs procs2_base /root/b_base/tests/ce_procs_check 2
  procs procs4_base /root/b_base/tests/ce_procs_check 4
fi
timeout 90 $T --gtest_filter='*TwoStreams*:*AbortEndsABulk*:*Stressed*:*EnqueueThread*' > $O/t4.log 2>&1; log "4 gpus as threads rc=$?"; grep -E "OK \]|FAILED  \]|rank .*:" $O/t4.log | head -12 | tee -a $O/session.log
for i in 1 2; do s2 stock$i; c2 ce$i; c2 least$i CORUN_CE_REDUCE_PRIORITY=least; done
LATE=450 s4 stock4; LATE=450 c4 ce4; LATE=450 c4 least4 CORUN_CE_REDUCE_PRIORITY=least
if ! late 520; then
  CUDA_VISIBLE_DEVICES=0,1 CORUN_CE_DEBUG=1 timeout 50 $B/corun -p ce -- $DDP2 --variant debug > $O/dbg.log 2>&1; log "debug row rc=$?"
  echo "stream switches: $(grep -c 'another stream' $O/dbg.log); calls: $(grep -c 'bulk call:' $O/dbg.log)" | tee -a $O/session.log
  grep -E "step median" $O/dbg.log | tee -a $O/session.log; rm -f $O/dbg.log
fi
finish
