# Helpers a device session script sources (results/*/session.sh): the environment record, the
# build, timed logging, the DDP example's rows and the packing of $OUT. Usage, from the repo root:
#   . scripts/session_lib.sh; build corun corun_preload ...; c2 ce1; d2 stock1 timeout 50 $DDP2 ...; finish
# Every row's log and JSON go to $OUT; session.log gets one line per step with the elapsed time.
set -u
O=${OUT:?OUT is not set}
B=${B:-/root/b}
t0=$(date +%s)
# late [S]: true once the session has run more than S seconds (500 by default): skip what follows.
late() { [ $(($(date +%s) - t0)) -gt "${1:-500}" ]; }
log() { echo "[$(($(date +%s) - t0))s] $*" | tee -a "$O/session.log"; }
{
  date -u
  nvidia-smi --query-gpu=index,name,driver_version --format=csv
  python3 -c 'import torch; print(torch.__version__, torch.cuda.nccl.version())'
  env | grep -E '^(NCCL|CUDA_|TORCH_SYMM|NVSHMEM)'
} > "$O/env.txt" 2>&1
# build TARGET...: configure and build into $B; a failure ends the session with the log's tail.
build() {
  if ! { cmake -S . -B "$B" -G Ninja -DCMAKE_BUILD_TYPE=Release && cmake --build "$B" -j"$(nproc)" --target "$@"; } \
      > "$O/build.log" 2>&1; then
    log BUILD FAILED
    tail -30 "$O/build.log"
    exit 1
  fi
  log built
}
# The DDP example: d2/d4 NAME CMD... run a row (skipped once late: LATE, 420 / 520 by default);
# c2/c4 NAME [VAR=VALUE...] run it under `corun -p ce` (4 GPUs: CORUN_CE_MAX_RANKS=4).
DDP2="torchrun --standalone --nproc_per_node=2 examples/ddp_gpt.py --steps 30 --warmup 10"
DDP4="torchrun --standalone --nproc_per_node=4 examples/ddp_gpt.py --steps 30 --warmup 10"
ddp_row() {
  local g=$1 n=$2 limit=$3
  shift 3
  if late "$limit"; then log "ddp$g $n skipped: past ${limit} s"; return; fi
  "$@" > "$O/ddp${g}_$n.log" 2>&1
  log "ddp$g $n rc=$?"
  grep -E "step median|copy engines" "$O/ddp${g}_$n.log" | head -2 | tee -a "$O/session.log"
}
d2() { local n=$1; shift; CUDA_VISIBLE_DEVICES=0,1 ddp_row 2 "$n" "${LATE:-420}" "$@"; }
d4() { local n=$1; shift; ddp_row 4 "$n" "${LATE:-520}" "$@"; }
c2() {
  local n=$1
  shift
  d2 "$n" env "$@" timeout 50 "$B/corun" -p ce --report "$O/ddp2_${n}_%p.json" -- \
    $DDP2 --variant "$n" --out "$O/ddp2_$n.json"
}
c4() {
  local n=$1
  shift
  d4 "$n" env CORUN_CE_MAX_RANKS=4 "$@" timeout 60 "$B/corun" -p ce --report "$O/ddp4_${n}_%p.json" -- \
    $DDP4 --variant "$n" --out "$O/ddp4_$n.json"
}
s2() { d2 "$1" timeout 50 $DDP2 --variant "$1" --out "$O/ddp2_$1.json"; }
s4() { d4 "$1" timeout 60 $DDP4 --variant "$1" --out "$O/ddp4_$1.json"; }
# Packs everything but session.log and build.log into all.tgz (what comes back) and removes the rest.
finish() {
  (cd "$O" && tar czf all.tgz --exclude=session.log --exclude=all.tgz --exclude=build.log ./* &&
    find . -mindepth 1 ! -name session.log ! -name all.tgz -delete)
  log done
}
