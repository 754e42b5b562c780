#!/bin/sh
# Builds the reference servers into OUTDIR (default .build-peers): the three C ones always, the Go one
# and handoff-go when `go` is installed. Run from anywhere; `make peers` calls it.
set -e
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-.build-peers}
mkdir -p "$out"
cc=${CC:-cc}
$cc -O2 -Wall -pthread -o "$out/c-threads-echo" "$here/c-threads-echo.c"
$cc -O2 -Wall -o "$out/c-epoll-echo" "$here/c-epoll-echo.c"
echo "peers: built $out/c-threads-echo and $out/c-epoll-echo"
# echo-uring's design in C; liburing-dev comes with `make deps`.
$cc -O2 -Wall -o "$out/c-uring-echo" "$here/c-uring-echo.c" -luring
echo "peers: built $out/c-uring-echo"
if command -v go >/dev/null 2>&1; then
    out_abs=$(cd "$out" && pwd)
    for program in go-echo handoff-go; do
        (cd "$here/$program" && GOFLAGS=-mod=mod GOCACHE="$out_abs/.gocache" go build -o "$out_abs/$program" .)
        echo "peers: built $out/$program"
    done
else
    echo "peers: go-echo and handoff-go skipped: Go is not installed (apt-get install -y golang-go)"
fi
