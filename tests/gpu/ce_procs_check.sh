#!/bin/sh
# ce_procs_check.sh PROGRAM [match NP]: the copy-engine collectives with one process per GPU (IPC
# handles), NP (2 or 4, default 2) ranks under Open MPI's mpirun. Exit 77 (skipped) without NP GPUs
# or without mpirun.
# ce_procs_check.sh PROGRAM exit NP: NP ranks, rank NP/2 (1 of 2, 2 of 4) leaves right after
# queueing the first of 8 allreduces of 256 MiB. Passes only if that rank exits 0 as planned,
# every other rank exits non-zero within 30 s of it with the reason naming it, and no process is
# left (leftovers are killed, and fail the test). Exit 77 without NP GPUs or without mpirun.
prog="$1"; mode="${2:-match}"; np="${3:-2}"
case "$mode" in
  match|exit) case "$np" in 2|4) ;; *) echo "ce_procs_check.sh: bad rank count '$np' (2 or 4)" >&2; exit 2 ;; esac ;;
  *) echo "ce_procs_check.sh: bad mode '$mode' (match or exit)" >&2; exit 2 ;;
esac
ngpu=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU')
# nvidia-smi lists every GPU of the machine; CUDA_VISIBLE_DEVICES may show the ranks fewer.
if [ -n "${CUDA_VISIBLE_DEVICES+x}" ]; then
  vis=$(printf '%s' "$CUDA_VISIBLE_DEVICES" | tr ',' '\n' | grep -c .)
  [ "$vis" -lt "${ngpu:-0}" ] && ngpu=$vis
fi
[ "${ngpu:-0}" -ge "$np" ] || { echo "skip: needs $np GPUs (found ${ngpu:-0})"; exit 77; }
command -v mpirun >/dev/null || { echo "skip: no mpirun"; exit 77; }
root=""; [ "$(id -u)" = 0 ] && root="--allow-run-as-root"
# Enough hardware queues that a stream wait never blocks an unrelated stream (ce_comm.h).
export CUDA_DEVICE_MAX_CONNECTIONS=32
export CORUN_BOOTSTRAP_PORT="${CORUN_BOOTSTRAP_PORT:-29531}"
if [ "$mode" = match ]; then
  # A stuck call ends itself (bounded waits); the timeout is the last resort against a hang in NCCL.
  timeout 300 mpirun $root --oversubscribe -np "$np" -x CUDA_DEVICE_MAX_CONNECTIONS -x CORUN_BOOTSTRAP_PORT "$prog"
  rc=$?
  [ $rc -eq 0 ] || echo "FAIL: exit status $rc"
  exit $rc
fi

lost=$((np / 2)); bound=30
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
# Each rank runs in the background of a small shell that records its pid, exit status and end
# time, then exits 0: mpirun must not end the other ranks itself when one leaves.
timeout 180 mpirun $root --oversubscribe -np "$np" -x CUDA_DEVICE_MAX_CONNECTIONS -x CORUN_BOOTSTRAP_PORT sh -c \
  "r=\$OMPI_COMM_WORLD_RANK; \"$prog\" --exit-rank $lost --calls 8 --mib 256 >\"$tmp/out.\$r\" 2>\"$tmp/err.\$r\" & \
   echo \$! >\"$tmp/pid.\$r\"; wait \$!; echo \$? >\"$tmp/rc.\$r\"; date +%s >\"$tmp/end.\$r\""
mrc=$?
fail=0
[ $mrc -eq 0 ] || { echo "FAIL: mpirun exit status $mrc (124: the 180 s time-out)"; fail=1; }
# Leftovers: a rank still alive now has hung; it is killed, and the test fails.
for r in $(seq 0 $((np - 1))); do
  pid=$(cat "$tmp/pid.$r" 2>/dev/null) || continue
  state=$(ps -o stat= -p "$pid" 2>/dev/null)
  case "$state" in
    ""|Z*) ;;
    *) echo "FAIL: rank $r (pid $pid) still running after mpirun returned; killed"; kill -9 "$pid"; fail=1 ;;
  esac
done
lost_end=$(cat "$tmp/end.$lost" 2>/dev/null)
for r in $(seq 0 $((np - 1))); do
  rc=$(cat "$tmp/rc.$r" 2>/dev/null || echo missing)
  echo "rank $r: exit $rc; stderr:"; sed 's/^/  /' "$tmp/err.$r" 2>/dev/null
  if [ "$r" -eq "$lost" ]; then
    [ "$rc" = 0 ] || { echo "FAIL: rank $r (the one leaving) exit status $rc (want 0)"; fail=1; }
    grep -q "rank $r: exiting on purpose with call 1 of 8 queued" "$tmp/err.$r" ||
      { echo "FAIL: rank $r did not leave as planned"; fail=1; }
    continue
  fi
  if [ "$rc" = missing ] || [ "$rc" = 0 ]; then
    echo "FAIL: rank $r exit status $rc (want non-zero)"; fail=1
  fi
  grep -q "rank $r: peer lost: .*rank $lost (pid [0-9]*) exited" "$tmp/err.$r" ||
    { echo "FAIL: rank $r does not name rank $lost as lost"; fail=1; }
  end=$(cat "$tmp/end.$r" 2>/dev/null)
  if [ -n "$end" ] && [ -n "$lost_end" ]; then
    took=$((end - lost_end))
    echo "rank $r ended ${took} s after rank $lost"
    [ "$took" -le "$bound" ] || { echo "FAIL: rank $r took ${took} s (limit ${bound} s)"; fail=1; }
  else
    echo "FAIL: no end time for rank $r or rank $lost"; fail=1
  fi
done
[ $fail -eq 0 ] && echo "PASS: rank $lost of $np left; every other rank ended with the reason within ${bound} s"
exit $fail
