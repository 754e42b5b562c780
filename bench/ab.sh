#!/bin/bash
# Alternates two server commands (PORT is replaced), server on CPU 0, loadgen on CPU 1, 50 connections,
# depth 1; prints per round: A or B, msgs/s, server CPU µs per message, context switches per message.
# Usage: bench/ab.sh "A-COMMAND --port PORT" "B-COMMAND --port PORT" [ROUNDS] [SIZE]
cd "$(dirname "$0")/.."; R=.build/release
A="$1"; B="$2"; rounds=${3:-4}; size=${4:-64}; port=27000
for r in $(seq 1 $rounds); do for which in A B; do
  port=$((port+1)); c=${!which}; c=${c//PORT/$port}
  taskset -c 0 $c >/dev/null 2>&1 & pid=$!
  for i in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.05; done
  $R/loadgen run --target 127.0.0.1:$port -c 50 --size $size --depth 1 --duration 5s --warmup 1s --cpus 1 --server-pid $pid --json --no-progress 2>/dev/null | python3 -c "
import json,sys
d=json.load(sys.stdin); s=d.get('server') or {}
print('$r','$which',round(d['messagesPerSecond']),round(s.get('cpuMicrosecondsPerMessage',0),2),round(s.get('contextSwitchesPerMessage',0),3))"
  kill -TERM $pid; wait $pid 2>/dev/null
done; done
