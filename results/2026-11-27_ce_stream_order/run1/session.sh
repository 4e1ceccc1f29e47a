#!/usr/bin/env bash
# Calls on two streams in issue order (OrderAfterLastCall) and the reductions' priority
# (CORUN_CE_REDUCE_PRIORITY=least): the new test and the abort tests on 2 and 4 GPUs as threads,
# 4 processes; DDP on 2 GPUs stock / ce / ce least, three rounds; 4 GPUs stock / ce / ce least;
# the new test built without the ordering (expected to fail).
. scripts/session_lib.sh
build corun corun_preload corun_gpu_ce_tests ce_procs_check ce_bench
T=$B/tests/corun_gpu_ce_tests
(export CUDA_VISIBLE_DEVICES=0,1; timeout 120 $T --gtest_filter='*TwoStreams*:*Abort*:*EveryCollective*:*PushForm*' > $O/t2.log 2>&1; log "2 gpus as threads rc=$?"; grep -E "OK \]|FAILED  \]|rank .*:" $O/t2.log | head -12 | tee -a $O/session.log)
NG=$(nvidia-smi -L | wc -l); log "$NG GPUs"
[ $NG -ge 4 ] && timeout 90 $T --gtest_filter='*TwoStreams*:*AbortEndsABulk*:*Stressed*:*EnqueueThread*' > $O/t4.log 2>&1; log "4 gpus as threads rc=$?" && grep -E "OK \]|FAILED  \]|rank .*:" $O/t4.log | head -12 | tee -a $O/session.log
(cd $B && timeout 100 ctest -R "^ce_procs_mpirun$" --output-on-failure --timeout 45) > $O/ce_procs.log 2>&1; log "ctest ce procs rc=$?"; grep -E "Test +#|tests passed" $O/ce_procs.log | tail -4 | tee -a $O/session.log
for i in 1 2 3; do s2 stock$i; c2 ce$i; c2 least$i CORUN_CE_REDUCE_PRIORITY=least; done
[ $NG -ge 4 ] && { LATE=470 s4 stock4; LATE=470 c4 ce4; LATE=470 c4 least4 CORUN_CE_REDUCE_PRIORITY=least; }
if ! late 500; then
  rm -rf /tmp/old && cp -r . /tmp/old
  sed -i '/CORUN_CHECK(OrderAfterLastCall(s));/d' /tmp/old/src/runtime/ce_launch.cpp
  grep -c OrderAfterLastCall /tmp/old/src/runtime/ce_launch.cpp | sed 's/^/calls left in the unordered copy: /' | tee -a $O/session.log
  (cd /tmp/old && cmake -S . -B /root/b_old -G Ninja -DCMAKE_BUILD_TYPE=Release > $O/build_old.log 2>&1 && cmake --build /root/b_old -j64 --target corun_gpu_ce_tests >> $O/build_old.log 2>&1); log "unordered build rc=$?"
  (export CUDA_VISIBLE_DEVICES=0,1; timeout 60 /root/b_old/tests/corun_gpu_ce_tests --gtest_filter='*TwoStreams*' > $O/t2_unordered.log 2>&1; log "unordered two-stream test rc=$? (expected non-zero)"; grep -E "OK \]|FAILED  \]|rank .*:" $O/t2_unordered.log | head -8 | tee -a $O/session.log)
fi
finish
