#!/bin/sh
# `make compare`: a sweep of the four servers and every reference server that built, side by
# side, pinned (server CPU 0, loadgen CPU 1 on a 2-CPU machine), into OUT (default results-compare/).
# Three rounds, the servers alternating at each count, every figure the median of its rounds with
# their range: one pass on a noisy machine reads noise as a result (issue 21).
# About 27 minutes on 2 cores: 8 servers x 3 connection counts x ROUNDS (default 3), an idle, a
# loaded and a churn phase each.
set -e
cd "$(dirname "$0")/.."
out=${1:-results-compare}
P=.build-peers
set -- --server c-epoll="$P/c-epoll-echo {port}" --server c-threads="$P/c-threads-echo {port}" \
    --server c-uring="$P/c-uring-echo {port}"
if [ -x "$P/go-echo" ]; then set -- "$@" --server go="$P/go-echo {port}"; fi
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
exec .build/release/loadgen sweep --servers threads,libev,tasks,uring "$@" \
    --connections 1000,5000,15000 --duration 3s --warmup 1s --rounds "${ROUNDS:-3}" --out "$out"
