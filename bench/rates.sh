#!/usr/bin/env bash
# Side-by-side echo rates: every server pinned to CPU 0, loadgen pinned to CPU 1,
# 50 connections, depth 1, SIZE bytes, DURATION, rounds alternate across servers.
# UNPINNED=1 runs both unpinned (for the two-loop variants: tasks-2, libev-2).
# Usage: [SERVERS="tasks go libev"] [UNPINNED=1] bench/rates.sh ROUNDS SIZE DURATION > out.tsv
#        python3 bench/summarize.py out.tsv
# Needs release builds (swift build -c release) and the peers (make peers; go-echo needs Go).
set -u
cd "$(dirname "$0")/.."
R=.build/release; P=.build-peers
rounds=${1:-3}; size=${2:-64}; dur=${3:-5s}
declare -A cmd=(
  [c-epoll]="$P/c-epoll-echo PORT"
  [libev]="$R/echo-libev --port PORT"
  [c-threads]="$P/c-threads-echo PORT"
  [threads]="$R/echo-threads --port PORT"
  [go]="$P/go-echo PORT"
  [tasks]="$R/echo-tasks --port PORT"
  [tasks-2]="$R/echo-tasks --port PORT --loops 2"
  [libev-2]="$R/echo-libev --port PORT --loops 2"
  [tasks-eagain]="$R/echo-tasks --port PORT --read-until-eagain"
  [tasks-nio]="$R/echo-tasks --port PORT --io nio --executor eventloop"
  [tasks-global]="$R/echo-tasks --port PORT --io nio --executor global"
)
read -r -a order <<< "${SERVERS:-c-epoll libev c-threads threads go tasks tasks-nio tasks-global}"
port=21000
printf "round\tserver\tsize\tmsgs_per_s\tserver_cpu_us_per_msg\tserver_cs_per_msg\tclient_cpu_pct\terrors\n"
for r in $(seq 1 "$rounds"); do
  for s in "${order[@]}"; do
    port=$((port+1))
    c=${cmd[$s]//PORT/$port}
    if [ "${UNPINNED:-0}" = 1 ]; then pin=""; cpus=""; else pin="taskset -c 0"; cpus="--cpus 1"; fi
    $pin $c >/dev/null 2>&1 &
    pid=$!
    for i in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.05; done
    out=$($R/loadgen run --target 127.0.0.1:$port -c 50 --size "$size" --depth 1 --duration "$dur" --warmup 1s $cpus --server-pid $pid --json --no-progress 2>/dev/null)
    kill -TERM $pid; wait $pid 2>/dev/null
    echo "$out" | python3 -c "
import json,sys
d=json.load(sys.stdin); s=d.get('server') or {}
print('\t'.join(map(str,['$r','$s','$size',round(d['messagesPerSecond']),round(s.get('cpuMicrosecondsPerMessage',0),2),round(s.get('contextSwitchesPerMessage',0),4),round(d['client']['cpuPercent']),d['errors']['total']])))" 2>/dev/null || printf "%s\t%s\t%s\tFAILED\n" "$r" "$s" "$size"
  done
done
