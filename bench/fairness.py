#!/usr/bin/env python3
"""Pings beside a bulk stream: does one busy connection starve its loop-mates?

One connection streams 64 KiB writes as fast as the server echoes them (a writer and a reader
thread, 4 MiB socket buffers); a second sends a 1-byte ping every 10 ms and times each echo.
Prints one line: ping p50/p99/max in ms, pings answered, and the bulk stream's echoed MiB/s.
Bounded: DURATION seconds (default 4), then both connections close.

    bench/fairness.py PORT [DURATION]     (run the server pinned: taskset -c 0; this on CPU 1)
"""
import socket
import sys
import threading
import time

port = int(sys.argv[1])
duration = float(sys.argv[2]) if len(sys.argv) > 2 else 4.0
stop = threading.Event()
echoed = [0]


def bulk_writer(sock):
    chunk = b"x" * 65536
    while not stop.is_set():
        try:
            sock.sendall(chunk)
        except OSError:
            return


def bulk_reader(sock):
    while not stop.is_set():
        try:
            data = sock.recv(1 << 20)
        except OSError:
            return
        if not data:
            return
        echoed[0] += len(data)


bulk = socket.create_connection(("127.0.0.1", port))
for option in (socket.SO_SNDBUF, socket.SO_RCVBUF):
    bulk.setsockopt(socket.SOL_SOCKET, option, 4 << 20)
bulk.settimeout(1.0)
ping = socket.create_connection(("127.0.0.1", port))
ping.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
ping.settimeout(5.0)
threads = [threading.Thread(target=bulk_writer, args=(bulk,)), threading.Thread(target=bulk_reader, args=(bulk,))]
for thread in threads:
    thread.start()
time.sleep(0.5)  # the stream is flowing
samples = []
started = time.monotonic()
echoed_before = echoed[0]
while time.monotonic() - started < duration:
    sent = time.monotonic()
    ping.sendall(b"p")
    try:
        ping.recv(1)
    except socket.timeout:
        samples.append(5.0)
        break
    samples.append(time.monotonic() - sent)
    time.sleep(max(0.0, 0.010 - (time.monotonic() - sent)))
elapsed = time.monotonic() - started
mib_per_s = (echoed[0] - echoed_before) / elapsed / (1 << 20)
stop.set()
for thread in threads:
    thread.join(timeout=3)
bulk.close()
ping.close()
samples.sort()
def at(q):
    return samples[min(len(samples) - 1, int(q * len(samples)))] * 1000
print(f"ping_p50_ms {at(0.5):.2f} ping_p99_ms {at(0.99):.2f} ping_max_ms {samples[-1] * 1000:.2f} "
      f"pings {len(samples)} bulk_MiB_s {mib_per_s:.1f}")
