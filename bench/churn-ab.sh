#!/bin/bash
# Churn, alternating: each round starts every server fresh (server on CPU 0), runs `loadgen churn`
# against it (client on CPU 1, 64 lives in flight, 16-byte messages, 32 source addresses), and stops
# it; rounds alternate the order (A B, B A, ...). Prints each run's lives/s and server CPU µs per
# connection, then per server the median of its per-round ratios to the first server, with the range.
# Usage: bench/churn-ab.sh ROUNDS NAME='COMMAND --port PORT' NAME='COMMAND PORT' ...   (PORT: a free port)
cd "$(dirname "$0")/.."
rounds=${1:?rounds}; shift
names=(); commands=()
for spec in "$@"; do names+=("${spec%%=*}"); commands+=("${spec#*=}"); done
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
out=$(mktemp -d)
for ((round = 1; round <= rounds; round++)); do
  order=("${!names[@]}")
  ((round % 2 == 0)) && order=($(printf '%s\n' "${order[@]}" | tac))
  for i in "${order[@]}"; do
    log="$out/server.log"
    # A free port for servers that print no readiness line (the C peers); ours announce theirs.
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    taskset -c 0 ${commands[$i]//PORT/$port} >"$log" 2>&1 &
    pid=$!
    for _ in $(seq 100); do
      grep -q '^listening' "$log" 2>/dev/null && break
      (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && ! grep -q . "$log" && break
      sleep 0.05
    done
    target=$(sed -n 's/^listening \([^ ]*\) .*/\1/p' "$log"); target=${target:-127.0.0.1:$port}
    stats=$(sed -n 's/.* stats=\([^ ]*\) .*/\1/p' "$log")
    stats_option=(--server-pid "$pid"); [ -n "$stats" ] && stats_option=(--server-stats "$stats")
    .build/release/loadgen churn --target "$target" "${stats_option[@]}" --concurrency 64 --size 16 \
      --duration 5s --warmup 1s --source-addresses 127.0.0.1-127.0.0.32 --cpus 1 --json \
      >"$out/$round-${names[$i]}.json" 2>/dev/null
    kill "$pid"; wait "$pid" 2>/dev/null
  done
done
python3 - "$out" "$rounds" "${names[@]}" <<'PY'
import json, statistics, sys
out, rounds, names = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
def figures(round, name):
    r = json.load(open(f"{out}/{round}-{name}.json"))
    return r["livesPerSecond"], r["server"]["cpuMicrosecondsPerMessage"]
for round in range(1, rounds + 1):
    print(f"round {round}: " + "  ".join(
        f"{n} {figures(round, n)[0]:,.0f} lives/s {figures(round, n)[1]:.1f} µs/conn" for n in names))
for n in names[1:]:
    for k, what in ((0, "lives/s"), (1, "server µs/conn")):
        ratios = [figures(r, n)[k] / figures(r, names[0])[k] for r in range(1, rounds + 1)]
        print(f"{n}/{names[0]} {what}: median {statistics.median(ratios):.2f}x (range {min(ratios):.2f}-{max(ratios):.2f})")
PY
rm -rf "$out"
