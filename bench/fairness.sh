#!/bin/bash
# Pings beside a bulk stream (bench/fairness.py) against several servers, alternating, ROUNDS rounds:
# server pinned to CPU 0, client to CPU 1. Each server is NAME='COMMAND' with PORT replaced.
# Usage: bench/fairness.sh ROUNDS DURATION 'tasks=.build/release/echo-tasks --loops 1 --port PORT' 'libev=…' …
cd "$(dirname "$0")/.."
rounds=$1; duration=$2; shift 2; port=29000
for r in $(seq 1 "$rounds"); do
  for spec in "$@"; do
    name=${spec%%=*}; command=${spec#*=}; port=$((port+1)); command=${command//PORT/$port}
    taskset -c 0 $command >/dev/null 2>&1 & pid=$!
    for i in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.05; done
    echo "$r $name $(taskset -c 1 timeout 30 python3 bench/fairness.py $port $duration)"
    kill -TERM $pid; wait $pid 2>/dev/null
  done
done
