#!/usr/bin/env bash
# Cost of the interposer per launch, interleaved rounds (plain / priority / shape:2+priority):
#   hook_cost  — the hook alone, into the test driver (no GPU noise);
#   launch_cost — cudaLaunchKernel of an empty kernel on the real GPU, host time per launch.
# Usage: scripts/hook_cost.sh BUILD_DIR > cost.json
set -uo pipefail
B=${1:?usage: hook_cost.sh BUILD_DIR}
echo "{\"date\": \"$(date -u +%FT%TZ)\", \"gpu\": \"$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)\","
echo " \"cpu\": \"$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)\", \"rounds\": ["
for r in 1 2 3; do
  [ "$r" -gt 1 ] && echo ","
  echo "{\"hook_plain\": $("$B/tests/hook_cost"),"
  echo " \"hook_priority\": $(CORUN_QUIET=1 "$B/corun" -p priority -- "$B/tests/hook_cost"),"
  echo " \"hook_shape2_priority\": $(CORUN_QUIET=1 "$B/corun" -p shape:2+priority -- "$B/tests/hook_cost")"
  if nvidia-smi -L >/dev/null 2>&1; then
    echo ", \"gpu_plain\": $("$B/tests/launch_cost"),"
    echo " \"gpu_priority\": $(CORUN_QUIET=1 "$B/corun" -p priority -- "$B/tests/launch_cost"),"
    echo " \"gpu_shape2_priority\": $(CORUN_QUIET=1 "$B/corun" -p shape:2+priority -- "$B/tests/launch_cost")"
  fi
  echo "}"
done
echo "]}"
