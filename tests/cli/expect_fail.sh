#!/bin/sh
# expect_fail.sh REGEX CMD [ARGS...]: passes when CMD exits non-zero, prints exactly one line on
# stderr, and that line matches REGEX (bad input must give a one-line error).
regex="$1"; shift
err=$("$@" 2>&1 >/dev/null); rc=$?
if [ "$rc" -eq 0 ]; then echo "FAIL: '$*' exited 0"; exit 1; fi
lines=$(printf '%s\n' "$err" | grep -c .)
if [ "$lines" -ne 1 ]; then echo "FAIL: '$*' printed $lines lines on stderr:"; printf '%s\n' "$err"; exit 1; fi
if ! printf '%s\n' "$err" | grep -Eq -- "$regex"; then echo "FAIL: stderr '$err' does not match '$regex'"; exit 1; fi
echo "ok: exit $rc: $err"
