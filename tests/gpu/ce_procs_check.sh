#!/bin/sh
# ce_procs_check.sh PROGRAM: the copy-engine collectives with one process per GPU (IPC handles),
# 2 ranks under Open MPI's mpirun. Exit 77 (skipped) without 2 GPUs or without mpirun.
prog="$1"
ngpu=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU')
[ "${ngpu:-0}" -ge 2 ] || { echo "skip: needs 2 GPUs (found ${ngpu:-0})"; exit 77; }
command -v mpirun >/dev/null || { echo "skip: no mpirun"; exit 77; }
root=""; [ "$(id -u)" = 0 ] && root="--allow-run-as-root"
# Enough hardware queues that a stream wait never blocks an unrelated stream (ce_comm.h).
export CUDA_DEVICE_MAX_CONNECTIONS=32
export CORUN_BOOTSTRAP_PORT="${CORUN_BOOTSTRAP_PORT:-29531}"
# A stuck call ends itself (bounded waits); the timeout is the last resort against a hang in NCCL.
timeout 300 mpirun $root --oversubscribe -np 2 -x CUDA_DEVICE_MAX_CONNECTIONS -x CORUN_BOOTSTRAP_PORT "$prog"
rc=$?
[ $rc -eq 0 ] || echo "FAIL: exit status $rc"
exit $rc
