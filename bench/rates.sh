#!/usr/bin/env bash
# Side-by-side echo rates: every server started fresh per run and pinned to CPU 0, loadgen pinned to
# CPU 1, 50 connections, depth 1, SIZE bytes, DURATION, rounds alternating the order. A thin caller of
# `loadgen ab`: the first server is the baseline every other is compared with (median of per-round
# ratios, range, verdict). UNPINNED=1 pins nothing (for the two-loop variants: tasks-2, libev-2).
# Usage: [SERVERS="tasks go libev"] [UNPINNED=1] bench/rates.sh ROUNDS SIZE DURATION [--json]
# Needs release builds (swift build -c release) and the peers (make peers; go-echo needs Go).
set -u
cd "$(dirname "$0")/.."
R=.build/release; P=.build-peers
rounds=${1:-3}; size=${2:-64}; dur=${3:-5s}
declare -A cmd=(
  [c-epoll]="$P/c-epoll-echo {port}"
  [libev]="$R/echo-libev --port {port}"
  [c-threads]="$P/c-threads-echo {port}"
  [threads]="$R/echo-threads --port {port}"
  [go]="$P/go-echo {port}"
  [tasks]="$R/echo-tasks --port {port}"
  [tasks-2]="$R/echo-tasks --port {port} --loops 2"
  [libev-2]="$R/echo-libev --port {port} --loops 2"
  [tasks-eagain]="$R/echo-tasks --port {port} --read-until-eagain"
  [tasks-nio]="$R/echo-tasks --port {port} --io nio --executor eventloop"
  [tasks-global]="$R/echo-tasks --port {port} --io nio --executor global"
)
read -r -a order <<< "${SERVERS:-c-epoll libev c-threads threads go tasks tasks-nio tasks-global}"
servers=()
for s in "${order[@]}"; do
  [ -n "${cmd[$s]:-}" ] || { echo "rates.sh: unknown server $s" >&2; exit 64; }
  servers+=(--server "$s=${cmd[$s]}")
done
if [ "${UNPINNED:-0}" = 1 ]; then pin=(--no-pin); else pin=(--server-cpus 0 --client-cpus 1); fi
exec $R/loadgen ab "${servers[@]}" --rounds "$rounds" --size "$size" --duration "$dur" --warmup 1s \
  -c 50 --depth 1 "${pin[@]}" "${@:4}"
