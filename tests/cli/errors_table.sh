#!/usr/bin/env bash
# errors_table.sh CORUN DOC [--write]: runs every bad input of docs/ERRORS.md against CORUN and
# checks the rule (one line on stderr, exit 2, or 126/127 for the command itself, and the command
# never run), then compares the table it prints with the one in DOC (--write: replaces it).
set -uo pipefail
CORUN=$1 DOC=$2 MODE=${3:-check}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
printf 'echo hi\n' > "$TMP/notexec"; chmod 644 "$TMP/notexec"
RAN="$TMP/ran"
fails=0 rows=""
# c EXIT ARGS...: one case. A "CMD" argument stands for a command that leaves a mark if it runs.
# CASE_ENV="K=V" before a case sets the environment for it.
c() {
  local want=$1; shift
  local args=() shown=() a
  for a in "$@"; do
    if [ "$a" = CMD ]; then args+=(touch "$RAN"); shown+=(true); else args+=("$a"); shown+=("${a//$TMP/\$TMP}"); fi
  done
  rm -f "$RAN"
  local err rc
  err=$(env ${CASE_ENV:-} "$CORUN" "${args[@]}" 2>&1 >/dev/null </dev/null); rc=$?
  local what="corun${shown[*]:+ ${shown[*]}}"
  [ -n "${CASE_ENV:-}" ] && what="${CASE_ENV//$TMP/\$TMP} $what"
  local lines; lines=$(printf '%s\n' "$err" | grep -c .)
  local first; first=$(printf '%s\n' "$err" | head -1)
  if [ "$want" = usage ]; then
    want=2
    if ! grep -q -- "--policy" <<<"$err" || ! grep -q "Subcommands:" <<<"$err"; then
      echo "FAIL: $what: no usage on stderr"; fails=$((fails + 1))
    fi
    first="$first (then the whole corun --help)"
  elif [ "$lines" -ne 1 ]; then
    echo "FAIL: $what: $lines lines on stderr:"; printf '%s\n' "$err"; fails=$((fails + 1))
  fi
  case "$first" in corun*) ;; *) echo "FAIL: $what: message does not start with 'corun': $first"; fails=$((fails + 1)) ;; esac
  if [ "$rc" != "$want" ]; then echo "FAIL: $what: exit $rc, want $want"; fails=$((fails + 1)); fi
  if [ -e "$RAN" ]; then echo "FAIL: $what: the command ran"; fails=$((fails + 1)); fi
  local msg="${first//$TMP/\$TMP}"
  rows+="| \`${what//|/\\|}\` | \`${msg//|/\\|}\` | $rc |"$'\n'
  CASE_ENV=
}
CASE_ENV=
# The launcher: corun [options] -- CMD
c usage
c 2 -p priority
c 2 -p priority --
c 2 -p
c 2 --bogus -- CMD
c 2 frobnicate
c 2 -p shape:x -- CMD
c 2 -p fast -- CMD
c 2 -p sequential -- CMD
c 2 -p greenctx:16 -- CMD
c 2 -p smtarget:8+smtarget:16 -- CMD
c 2 -p shape:auto -- CMD
c 2 -p priority+nthreads:100 -- CMD
c 2 -p nthreads:256+proto:ll128 -- CMD
c 2 -p ce+nthreads:256 -- CMD
c 2 -p ncclzero -- CMD
CASE_ENV="CORUN_CE_LANES=9"; c 2 -p ce -- CMD
CASE_ENV="CORUN_CE_MAX_RANKS=1"; c 2 -p ce -- CMD
CASE_ENV="CORUN_CE_CHUNK=12Q"; c 2 -p ce -- CMD
c 2 --nccl-ctas -1 -- CMD
c 2 --lib /nonexistent.so -- CMD
c 2 -p tuned --cache "$TMP/none.json" -- CMD
CASE_ENV="CORUN_CACHE=$TMP/env.json"; c 2 -p tuned -- CMD
c 2 -p priority bench
c 127 -- no-such-cmd
c 126 -- "$TMP/notexec"
c 126 -- "$TMP"
# corun bench
c 2 bench -b 10
c 2 bench -b 1500
c 2 bench -b 12Q
c 2 bench -b 1M -e 64K
c 2 bench -b 1K -e 1M -f 1
c 2 bench -b 1K -e 1M -i 1000
c 2 bench -g -1
c 2 bench -n 0
c 2 bench -n abc
c 2 bench -w -1
c 2 bench --gemms 0
c 2 bench --sustain -1
c 2 bench --watchdog -1
c 2 bench --samples -1
c 2 bench --max-caps -1
c 2 bench -p shape:0
c 2 bench -p overlap,fast
c 2 bench -p sequential+priority
c 2 bench -p priority+proto:fast
c 2 bench -p ctas:8+ncclctas:8
c 2 bench -p ncclzero+priority
c 2 bench -p shape:2+ncclzero
c 2 bench --gemm 8192x8192
c 2 bench --gemm 100x64x64 --compute tiled64x64x64
c 2 bench -o broadcastx
c 2 bench --compute gemmx
c 2 bench -d fp8
c 2 bench --bogus
c 2 bench -- CMD
# corun tune
c 2 tune --budget 2
c 2 tune -g -1
c 2 tune --runs 8
c 2 tune --
c 2 tune --runs 2 -- CMD
c 2 tune --metric "[" -- CMD
c 2 tune --metric "time" -- CMD
c 2 tune -b 1M -- CMD
c 2 tune --run-timeout -1 -- CMD
c 2 tune --run-timeout 5
# corun trace
c 127 trace -o "$TMP/tr" -- no-such-cmd
c 126 trace -o "$TMP/tr" -- "$TMP/notexec"
c 2 trace -o /proc/corun-x -- CMD
c 2 trace -p shape:x -- CMD
c 2 trace --steps foo -- CMD
c 2 trace --skip -1 -- CMD
c 2 trace --bogus -- CMD
c 2 trace
c 2 trace --analyze "$TMP"
c 2 trace --no-api --analyze "$TMP"
# corun info
c 2 info --bogus
c 2 info -- CMD

table="| input | stderr (one line) | exit |"$'\n'"|---|---|---|"$'\n'"$rows"
begin='<!-- BEGIN errors_table.sh -->' end='<!-- END errors_table.sh -->'
if [ "$MODE" = --write ]; then
  python3 - "$DOC" "$begin" "$end" "$table" <<'PY'
import sys
doc, b, e, t = sys.argv[1:]
s = open(doc).read()
i, j = s.index(b) + len(b), s.index(e)
open(doc, "w").write(s[:i] + "\n" + t + s[j:])
PY
else
  doc_table=$(sed -n "/^$begin\$/,/^$end\$/p" "$DOC" | sed '1d;$d')
  if [ "$doc_table" != "$(printf '%s' "$table")" ]; then
    echo "FAIL: the table in $DOC differs from the behaviour (regenerate: $0 CORUN DOC --write):"
    diff <(printf '%s\n' "$doc_table") <(printf '%s' "$table")
    fails=$((fails + 1))
  fi
fi
n=$(printf '%s' "$rows" | grep -c .)
echo "$((n - fails < 0 ? 0 : n)) cases, $fails failures"
[ "$fails" -eq 0 ]
