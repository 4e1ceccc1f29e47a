#!/bin/sh
# bad_policy_once.sh LIB DIR: a bad CORUN_POLICY under the preload is one line on stderr for a
# whole process tree (a shell and three children here), printed when the library loads, and the
# report of every process that exits normally (not the shell: dash leaves by _exit) says the
# preload was disabled and why, as valid JSON.
lib="$1"; dir="$2"
rm -rf "$dir" && mkdir -p "$dir" || exit 1
err=$(LD_PRELOAD="$lib" CORUN_POLICY='shape:"x' CORUN_REPORT="$dir/r.%p.json" \
      sh -c 'env true; env true; env true 2>&-' 2>&1 >/dev/null)
lines=$(printf '%s\n' "$err" | grep -c .)
if [ "$lines" -ne 1 ]; then echo "FAIL: $lines lines on stderr, want 1:"; printf '%s\n' "$err"; exit 1; fi
case "$err" in
  *"corun: preload disabled"*"shape:\"x"*) ;;
  *) echo "FAIL: unexpected line: $err"; exit 1 ;;
esac
n=$(ls "$dir" | grep -c 'json$')
if [ "$n" -lt 3 ]; then echo "FAIL: $n reports, want one per child (3)"; exit 1; fi
python3 - "$dir" <<'PY' || exit 1
import glob, json, sys
for p in glob.glob(sys.argv[1] + "/*.json"):
    r = json.load(open(p))
    assert r["enabled"] is False and r["policy"] == "disabled" and 'shape:"x' in r["error"], (p, r)
PY
echo "ok: $err"
