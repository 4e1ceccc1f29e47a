#!/usr/bin/env bash
# 2 GPUs: reductions that claim tiles (new default) against a fixed share per block, alone and
# beside GEMMs (ce_bench) and in the DDP example; the host's queueing time per step; then the
# ce tests, the gated probe and the bench with 2 processes.
set -u
O=$OUT; B=/root/b; t0=$(date +%s)
late(){ [ $(( $(date +%s)-t0 )) -gt ${1:-500} ]; }
log(){ echo "[$(( $(date +%s)-t0 ))s] $*" | tee -a $O/session.log; }
{ date -u; nvidia-smi --query-gpu=index,name,driver_version --format=csv; nvidia-smi topo -m | head -4; python3 -c 'import torch;print(torch.__version__, torch.cuda.nccl.version())'; env | grep -E '^(NCCL|CUDA_|TORCH_SYMM|NVSHMEM)'; } > $O/env.txt 2>&1
cmake -S . -B $B -G Ninja -DCMAKE_BUILD_TYPE=Release > $O/build.log 2>&1 && cmake --build $B -j32 >> $O/build.log 2>&1 || { log BUILD FAILED; tail -30 $O/build.log; exit 1; }
log built
export CUDA_DEVICE_MAX_CONNECTIONS=32
for red in claim split; do
  timeout -k 5 80 $B/tests/ce_bench --reduce $red --reps 10 --out $O/ce_bench_$red.json > $O/ce_bench_$red.log 2>&1; log "ce_bench $red rc=$?"
  grep -vE "^\s*$" $O/ce_bench_$red.log | tail -12 | tee -a $O/session.log
done
DDP2="torchrun --standalone --nproc_per_node=2 examples/ddp_gpt.py --steps 30 --warmup 10"
ddp(){ n=$1; shift; late 470 && return; "$@" > $O/ddp2_$n.log 2>&1; log "ddp2 $n rc=$?"; grep -E "step median|copy engines" $O/ddp2_$n.log | tee -a $O/session.log; }
ddp stock1 timeout 80 $DDP2 --out $O/ddp2_stock1.json
ddp ce_claim1 env CORUN_CE_REDUCE=claim timeout 80 $B/corun -p ce --report $O/ddp2_ce_claim1_%p.json -- $DDP2 --out $O/ddp2_ce_claim1.json
ddp ce_split1 env CORUN_CE_REDUCE=split timeout 80 $B/corun -p ce --report $O/ddp2_ce_split1_%p.json -- $DDP2 --out $O/ddp2_ce_split1.json
ddp floor timeout 80 $DDP2 --mode noop_hook --out $O/ddp2_floor.json
ddp ce_claim2 env CORUN_CE_REDUCE=claim timeout 80 $B/corun -p ce --report $O/ddp2_ce_claim2_%p.json -- $DDP2 --out $O/ddp2_ce_claim2.json
ddp stock2 timeout 80 $DDP2 --out $O/ddp2_stock2.json
ddp ce_split2 env CORUN_CE_REDUCE=split timeout 80 $B/corun -p ce --report $O/ddp2_ce_split2_%p.json -- $DDP2 --out $O/ddp2_ce_split2.json
late 480 || { timeout 60 $B/tests/p2p_probe --gpus 2 --mib 224 --chunk-mib 32 --reps 6 > $O/p2p_probe_2gpu.jsonl 2>&1; log "probe rc=$?"; }
late 470 || { (cd $B && timeout 110 ctest -L ce -E "_4$|mpirun_4" --timeout 60 --output-on-failure) > $O/ce_tests_2gpu.log 2>&1; log "ce tests 2gpu rc=$?"; grep -E "Test +#|tests passed" $O/ce_tests_2gpu.log | tee -a $O/session.log; }
cd $O && tar czf all.tgz --exclude=session.log --exclude=all.tgz --exclude=build.log * ; find . -mindepth 1 ! -name session.log ! -name all.tgz -delete
log done
