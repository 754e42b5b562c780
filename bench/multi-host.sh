#!/bin/bash
# Several client machines against one server, simulated on this one: N network namespaces, each a
# "client host" with its own address on a veth pair to the server's namespace, one `loadgen run --json`
# in each, started together, then `loadgen merge` of their results (see the README, "Past one machine").
#
#   sudo bench/multi-host.sh N [loadgen run options ...]      e.g. bench/multi-host.sh 4 -c 250 --duration 10s
#
# Addresses come from 198.18.0.0/15, the range set aside for benchmarking (RFC 2544): client i is
# 198.18.i.2, its side of the server 198.18.i.1. They exist only inside the namespaces this script
# creates, all of which it deletes when done (on any exit). Needs root and iproute2 (ip netns).
# Environment: BIN (the folder of loadgen and the servers; default .build/release), SERVER (the server
# command, listening on every address; default "$BIN/echo-libev --host 0.0.0.0 --port 7007"), PORT
# (default 7007), OUT (where the per-host JSON and the merge go; default a temporary folder, removed),
# SERVER_CPU / CLIENT_CPU (pin the server and the clients with taskset; default none), MERGE (options for
# loadgen merge, e.g. --json).
set -u
cd "$(dirname "$0")/.."
n=${1:?usage: bench/multi-host.sh N [loadgen run options ...]}; shift
[[ "$n" =~ ^[0-9]+$ ]] && [ "$n" -ge 1 ] && [ "$n" -le 200 ] || { echo "multi-host: N must be 1...200, got $n" >&2; exit 64; }
BIN=${BIN:-.build/release}; PORT=${PORT:-7007}
SERVER=${SERVER:-$BIN/echo-libev --host 0.0.0.0 --port $PORT}
[ -x "$BIN/loadgen" ] || { echo "multi-host: $BIN/loadgen missing (swift build -c release)" >&2; exit 1; }
command -v ip >/dev/null || { echo "multi-host: needs iproute2 (apt-get install iproute2)" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "multi-host: creating network namespaces needs root" >&2; exit 1; }

tag="el$$"; server_ns="$tag-srv"
out=${OUT:-}; own_out=0
if [ -z "$out" ]; then out=$(mktemp -d); own_out=1; fi
mkdir -p "$out"
server_pid=""; clients=()
cleanup() {
  for pid in "${clients[@]}"; do kill -TERM "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; done
  if [ -n "$server_pid" ]; then kill -TERM "$server_pid" 2>/dev/null; wait "$server_pid" 2>/dev/null; fi
  for i in $(seq 1 "$n"); do ip netns del "$tag-c$i" 2>/dev/null; done  # also removes each veth pair
  ip netns del "$server_ns" 2>/dev/null
  [ "$own_out" = 1 ] && rm -rf "$out"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

pin() { if [ -n "${1:-}" ]; then echo "taskset -c $1"; fi; }

ip netns add "$server_ns" || exit 1
ip -n "$server_ns" link set lo up
for i in $(seq 1 "$n"); do
  ns="$tag-c$i"
  ip netns add "$ns" || exit 1
  ip -n "$ns" link set lo up
  ip link add "$tag-h$i" netns "$ns" type veth peer name "$tag-s$i" netns "$server_ns" || exit 1
  ip -n "$ns" addr add "198.18.$i.2/24" dev "$tag-h$i"
  ip -n "$server_ns" addr add "198.18.$i.1/24" dev "$tag-s$i"
  ip -n "$ns" link set "$tag-h$i" up
  ip -n "$server_ns" link set "$tag-s$i" up
done

# The server, in its namespace; its figures are read from /proc (the PID namespace is shared).
ip netns exec "$server_ns" $(pin "${SERVER_CPU:-}") $SERVER > "$out/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 100); do
  ip netns exec "$server_ns" bash -c "exec 3<>/dev/tcp/198.18.1.1/$PORT" 2>/dev/null && break
  sleep 0.05
done
# `ip netns exec` ends by exec'ing the server (taskset too), so $server_pid is the server's PID.

for i in $(seq 1 "$n"); do
  ip netns exec "$tag-c$i" $(pin "${CLIENT_CPU:-}") "$BIN/loadgen" run --target "198.18.$i.1:$PORT" \
    --server-pid "$server_pid" --json --no-progress "$@" > "$out/host$i.json" 2> "$out/host$i.err" &
  clients+=($!)
done
status=0
for pid in "${clients[@]}"; do wait "$pid" || status=1; done
clients=()
for i in $(seq 1 "$n"); do
  [ -s "$out/host$i.json" ] || { echo "multi-host: host $i wrote no result: $(head -c 300 "$out/host$i.err")" >&2; exit 1; }
done
files=(); for i in $(seq 1 "$n"); do files+=("$out/host$i.json"); done
if [ "$n" -ge 2 ]; then
  "$BIN/loadgen" merge "${files[@]}" ${MERGE:-} | tee "$out/merged.txt" || status=1
else
  cat "$out/host1.json"
fi
exit $status
