#!/usr/bin/env bash
# On the machine of run5, still warm (its build folder kept): ce_bench by pulls on 2 GPUs five
# times (the first pull run of run5 ended by its time-out). p5 did not come back (file count).
export CUDA_DEVICE_MAX_CONNECTIONS=32 CUDA_VISIBLE_DEVICES=0,1; for i in 1 2 3 4 5; do timeout 25 /root/b/tests/ce_bench --gpus 2 --alone-only --sizes-mib 25,224,896 --reps 10 --warmup 2 --pull --out $OUT/p$i.json > $OUT/p$i.log 2>&1; echo "run $i rc=$?"; grep -E "/ce " $OUT/p$i.log | head -3; done; tail -5 $OUT/p1.log
