#!/bin/sh
# setup_failure.sh CORUN MODE STEP: a set-up failure injected on rank 1 of a 2-rank `corun bench`
# (CORUN_TEST_FAIL_SETUP=1:STEP, a test-only knob) must end every rank within 30 s, each with a
# non-zero exit status, the reason on stderr. MODE: threads (one process, a thread per GPU) or
# mpirun (one process per rank, Open MPI). Exit 77 (skipped) without 2 GPUs or without mpirun.
corun="$1"; mode="$2"; step="$3"
ngpu=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU')
[ "${ngpu:-0}" -ge 2 ] || { echo "skip: needs 2 GPUs (found ${ngpu:-0})"; exit 77; }
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
# A small workload: the set-up steps run at once; -p names a policy that runs every step.
case "$step" in
  cublaslt|smtarget) args="--compute cublaslt -p smtarget:100" ;;
  greenctx) args="--compute cublaslt -p greenctx:16" ;;
  shape) args="--compute tiled64x64x64 -p shape:2" ;;
  *) args="--compute cublaslt -p ncclctas:4" ;;
esac
common="--gemm 1024x1024x1024 -b 1M -n 2 -w 1 --sustain 0 --samples 16 --watchdog 600 --cache $tmp/cache.json"
export CORUN_TEST_FAIL_SETUP="1:$step"
start=$(date +%s)
if [ "$mode" = threads ]; then
  # shellcheck disable=SC2086
  timeout 60 "$corun" bench -g 2 $args $common >"$tmp/out.0" 2>"$tmp/err.0"
  echo $? >"$tmp/rc.0"
  cp "$tmp/err.0" "$tmp/err.1"; cp "$tmp/rc.0" "$tmp/rc.1"  # both ranks are this process
else
  command -v mpirun >/dev/null || { echo "skip: no mpirun"; exit 77; }
  root=""; [ "$(id -u)" = 0 ] && root="--allow-run-as-root"
  # Each rank records its own status; the wrapper itself exits 0 so mpirun does not end the
  # other rank for us.
  # shellcheck disable=SC2086
  timeout 60 mpirun $root --oversubscribe -np 2 -x CORUN_TEST_FAIL_SETUP sh -c \
    "\"$corun\" bench $args $common >\"$tmp/out.\$OMPI_COMM_WORLD_RANK\" 2>\"$tmp/err.\$OMPI_COMM_WORLD_RANK\"; \
     echo \$? >\"$tmp/rc.\$OMPI_COMM_WORLD_RANK\""
fi
elapsed=$(( $(date +%s) - start ))
fail=0
for r in 0 1; do
  rc=$(cat "$tmp/rc.$r" 2>/dev/null || echo missing)
  echo "rank $r: exit $rc; stderr:"; sed 's/^/  /' "$tmp/err.$r" 2>/dev/null
  if [ "$rc" = missing ] || [ "$rc" = 0 ] || [ "$rc" = 124 ] || [ "$rc" = 3 ]; then
    echo "FAIL: rank $r exit status $rc (want non-zero, not the timeout or the watchdog)"; fail=1
  fi
done
grep -q "injected failure (CORUN_TEST_FAIL_SETUP=1:$step)" "$tmp/err.1" || { echo "FAIL: rank 1 does not say why"; fail=1; }
grep -q "failed on rank 1" "$tmp/err.0" || { echo "FAIL: rank 0 does not name the failing rank"; fail=1; }
[ "$elapsed" -le 30 ] || { echo "FAIL: took ${elapsed} s (limit 30 s)"; fail=1; }
echo "elapsed ${elapsed} s"
exit $fail
