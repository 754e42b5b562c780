#!/bin/bash
# Alternates two server commands (PORT is replaced by a free port), each started fresh per run, server
# on CPU 0 and loadgen on CPU 1, CONNS connections (default 50), depth 1; with IDLE=N, N more idle
# connections are held open beside them. A thin caller of `loadgen ab`, which prints every run and the
# median of the per-round B/A ratios with their range and a verdict.
# Usage: [CONNS=100] [IDLE=14900] bench/ab.sh "A-COMMAND --port PORT" "B-COMMAND --port PORT" [ROUNDS] [SIZE]
cd "$(dirname "$0")/.."
A="${1:?A command}"; B="${2:?B command}"; rounds=${3:-4}; size=${4:-64}
idle=()
[ "${IDLE:-0}" -gt 0 ] && idle=(--idle "$IDLE")
exec .build/release/loadgen ab --server A="${A//PORT/\{port\}}" --server B="${B//PORT/\{port\}}" \
  --rounds "$rounds" --size "$size" -c "${CONNS:-50}" --depth 1 --duration 5s --warmup 1s \
  --server-cpus 0 --client-cpus 1 "${idle[@]}"
