#!/bin/bash
# Alternates two server commands (PORT is replaced), server on CPU 0, loadgen on CPU 1, CONNS
# connections (default 50), depth 1; with IDLE=N, another loadgen holds N idle connections to the
# server first. Prints per round: A or B, msgs/s, server CPU µs per message, context switches per
# message; then the medians of the per-round B/A ratios.
# Usage: [CONNS=100] [IDLE=14900] bench/ab.sh "A-COMMAND --port PORT" "B-COMMAND --port PORT" [ROUNDS] [SIZE]
cd "$(dirname "$0")/.."; R=.build/release
A="$1"; B="$2"; rounds=${3:-4}; size=${4:-64}; port=27000
conns=${CONNS:-50}; idle=${IDLE:-0}
ulimit -n 20000 2>/dev/null
out=$(mktemp)
for r in $(seq 1 $rounds); do for which in A B; do
  port=$((port+1)); c=${!which}; c=${c//PORT/$port}
  taskset -c 0 $c >/dev/null 2>&1 & pid=$!
  for i in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.05; done
  idlepid=
  if [ "$idle" -gt 0 ]; then
    taskset -c 1 $R/loadgen idle --target 127.0.0.1:$port -c $idle --hold 1h --server-pid $pid --no-progress \
      --source-addresses 127.0.0.1-127.0.0.4 >/dev/null 2>&1 & idlepid=$!
    for i in $(seq 1 600); do [ "$(stat -c %s /proc/$pid/fd)" -ge "$idle" ] && break; sleep 0.1; done
  fi
  $R/loadgen run --target 127.0.0.1:$port -c $conns --size $size --depth 1 --duration 5s --warmup 1s --cpus 1 --server-pid $pid --json --no-progress 2>/dev/null | python3 -c "
import json,sys
d=json.load(sys.stdin); s=d.get('server') or {}
print('$r','$which',round(d['messagesPerSecond']),round(s.get('cpuMicrosecondsPerMessage',0),2),round(s.get('contextSwitchesPerMessage',0),3))" | tee -a $out
  [ -n "$idlepid" ] && { kill -TERM $idlepid; wait $idlepid 2>/dev/null; }
  kill -TERM $pid; wait $pid 2>/dev/null
done; done
python3 - $out <<'PY'
import sys, statistics
by={}
for line in open(sys.argv[1]):
    r, which, *values = line.split(); by.setdefault(r, {})[which] = [float(v) for v in values]
for i, name in enumerate(["msgs/s", "server us/msg", "server cs/msg"]):
    ratios = [p["B"][i] / p["A"][i] for p in by.values() if "A" in p and "B" in p and p["A"][i]]
    if ratios: print(f"{name}: B/A median {statistics.median(ratios):.3f} (rounds: {' '.join(f'{x:.2f}' for x in ratios)})")
PY
rm -f $out
