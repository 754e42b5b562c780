#!/bin/sh
# `make compare`: a sweep of the four servers and every reference server that built, side by
# side, pinned (server CPU 0, loadgen CPU 1 on a 2-CPU machine), into OUT (default results-compare/).
# Three rounds, the servers alternating at each count, every figure the median of its rounds with
# their range: one pass on a noisy machine reads noise as a result (issue 21).
# Then the failure scenarios (docs/measurements.md, "Where each model breaks") with go-echo beside our servers,
# into OUT/scenarios, the same rounds.
# About 32 minutes on 2 cores: 8 servers x 3 connection counts x ROUNDS (default 3), an idle, a
# loaded and a churn phase each; then 5 servers x 3 scenarios x ROUNDS at 1,000 connections.
set -e
cd "$(dirname "$0")/.."
out=${1:-results-compare}
P=.build-peers
set -- --server c-epoll="$P/c-epoll-echo {port}" --server c-threads="$P/c-threads-echo {port}" \
    --server c-uring="$P/c-uring-echo {port}"
go=  # one word, --server=NAME=COMMAND, so that it can be left out when go-echo did not build
if [ -x "$P/go-echo" ]; then go="--server=go=$P/go-echo {port}"; set -- "$@" "$go"; fi
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
.build/release/loadgen sweep --servers threads,libev,tasks,uring "$@" \
    --connections 1000,5000,15000 --duration 3s --warmup 1s --rounds "${ROUNDS:-3}" --out "$out"
# Each scenario's options are appended to every server's command; go-echo takes them after its
# port (Go's runtime hands a P stuck in syscall.Nanosleep to another thread; see its main.go).
# The C peers have no such switches, so they sit this one out.
exec .build/release/loadgen sweep --servers threads,libev,tasks,uring ${go:+"$go"} \
    --connections 1000 --active 100 --duration 3s --warmup 1s --no-churn --rounds "${ROUNDS:-3}" \
    --scenario base= --scenario block='--block 5ms --block-every 1000' \
    --scenario block-short='--block 500us --block-every 100' --out "$out/scenarios"
