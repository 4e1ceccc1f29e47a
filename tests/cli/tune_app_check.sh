#!/bin/sh
# corun tune -- CMD end to end without a GPU: a command whose score depends on the policy it runs
# under; the search must pick that policy, cache it, and `corun -p tuned` must apply it.
CORUN=$1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
script='case "$CORUN_POLICY" in priority) echo "score 1.5";; *) echo "score 5";; esac'
out=$("$CORUN" tune --runs 8 --metric 'score ([0-9.]+)' --cache "$dir/p.json" -- sh -c "$script" 2>"$dir/err") || {
  echo "FAIL: corun tune exited $?"; cat "$dir/err"; exit 1; }
echo "$out"
echo "$out" | grep -q "^# tuned: priority " || { echo "FAIL: did not choose priority"; exit 1; }
grep -q '"date": "20' "$dir/p.json" || { echo "FAIL: the profile entry has no date"; cat "$dir/p.json"; exit 1; }
dry=$(CORUN_CACHE="$dir/p.json" "$CORUN" -p tuned --dry-run -- sh -c "$script" 2>&1) || { echo "FAIL: -p tuned: $dry"; exit 1; }
echo "$dry" | grep -q "^CORUN_POLICY=priority$" || { echo "FAIL: -p tuned did not apply priority: $dry"; exit 1; }
# --cache PATH, as tune takes it, wins over $CORUN_CACHE.
dry=$(CORUN_CACHE="$dir/none.json" "$CORUN" -p tuned --cache "$dir/p.json" --dry-run -- sh -c "$script" 2>&1) || {
  echo "FAIL: -p tuned --cache: $dry"; exit 1; }
echo "$dry" | grep -q "^CORUN_POLICY=priority$" || { echo "FAIL: -p tuned --cache did not apply priority: $dry"; exit 1; }
# Another command has no profile: one-line error, non-zero exit.
if CORUN_CACHE="$dir/p.json" "$CORUN" -p tuned --dry-run -- sh -c "echo other" 2>/dev/null; then
  echo "FAIL: a command without a profile was accepted"; exit 1
fi
# A run that does not end is stopped at --run-timeout (with what it started) and counts as failed.
t0=$(date +%s)
if "$CORUN" tune --runs 4 --run-timeout 1 --cache "$dir/h.json" -- sh -c 'sleep 67 & sleep 67' 2>"$dir/herr"; then
  echo "FAIL: corun tune succeeded with a command that never ends"; exit 1
fi
t1=$(date +%s)
[ $((t1 - t0)) -lt 30 ] || { echo "FAIL: stopping hung runs took $((t1 - t0)) s"; cat "$dir/herr"; exit 1; }
grep -q "still running after 1 s: stopped (--run-timeout)" "$dir/herr" || { echo "FAIL: no stop message"; cat "$dir/herr"; exit 1; }
grep -q "no policy ran the command successfully" "$dir/herr" || { echo "FAIL: no final error"; cat "$dir/herr"; exit 1; }
pgrep -f "sleep 67" >/dev/null && { echo "FAIL: a stopped run's process survived"; pkill -f "sleep 67"; exit 1; }
echo "ok: tuned priority, cached, applied; hung runs stopped after --run-timeout"
