#!/bin/bash
# Does reading a server through /proc (--server-pid) change what is measured? One echo-threads server
# (CPU 0) holds IDLE idle connections (another loadgen, CPU 1); then `loadgen run -c 100` (loops on
# CPU 1) reads it alternately through its stats endpoint and through --server-pid, ROUNDS pairs.
# Prints each run, then the medians of the per-pair ratios (pid / stats) of msgs/s, server context
# switches per message, client CPU per message and server CPU per message. Each run line ends with
# the longer server read (wall ms, loadgen CPU ms) and how the switches were counted.
# Usage: bench/probe-ab.sh [ROUNDS] [IDLE] [SERVER-BINARY]   (defaults 4, 4900, echo-threads)
cd "$(dirname "$0")/.."; R=.build/release
rounds=${1:-4}; idle=${2:-4900}; server=${3:-$R/echo-threads}; port=27300; stats=27301
ulimit -n 20000
taskset -c 0 $server --port $port --stats-port $stats >/dev/null 2>&1 & spid=$!
idlepid=
trap 'kill -TERM $idlepid $spid 2>/dev/null; wait 2>/dev/null' EXIT
for i in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.05; done
taskset -c 1 $R/loadgen idle --target 127.0.0.1:$port -c $idle --hold 1h --server-pid $spid --no-progress \
  >/dev/null 2>&1 & idlepid=$!
for i in $(seq 1 300); do
  [ "$(ls /proc/$spid/fd | wc -l)" -ge "$idle" ] && break; sleep 0.1
done
echo "server pid $spid: $(grep Threads /proc/$spid/status), $(ls /proc/$spid/fd | wc -l) fds"
out=$(mktemp)
for r in $(seq 1 $rounds); do for probe in stats pid; do
  if [ $probe = stats ]; then o="--server-stats 127.0.0.1:$stats"; else o="--server-pid $spid"; fi
  $R/loadgen run --target 127.0.0.1:$port -c 100 --duration 3s --cpus 1 $o --json --no-progress 2>/dev/null |
    python3 -c "
import json,sys
d=json.load(sys.stdin); s=d['server']; c=d['client']
print($r, '$probe', round(d['messagesPerSecond']), round(s['contextSwitchesPerMessage'],3),
      round(c['cpuMicrosecondsPerMessage'],2), round(s['cpuMicrosecondsPerMessage'],2),
      round(s.get('readMilliseconds',0),1), round(s.get('readCPUMilliseconds',0),1), s.get('contextSwitchesFrom'))" | tee -a $out
done; done
python3 - $out <<'PY'
import sys, statistics
rows=[l.split() for l in open(sys.argv[1])]
by={}
for r in rows: by.setdefault(r[0],{})[r[1]]=[float(x) for x in r[2:6]]
names=["msgs/s","server cs/msg","client us/msg","server us/msg"]
for i,n in enumerate(names):
    ratios=[p["pid"][i]/p["stats"][i] for p in by.values() if "pid" in p and "stats" in p and p["stats"][i]]
    print(f"{n}: pid/stats median {statistics.median(ratios):.3f}  (pairs: {' '.join(f'{x:.2f}' for x in ratios)})")
PY
rm -f $out
