# echo-lab: `make test` and `make demo` work on a fresh Debian machine with Swift installed.
SWIFT ?= swift
RESULTS ?= results
# Run apt-get directly as root, through sudo otherwise.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all deps build release test demo peers compare clean

all: build

# The system libraries: Debian's libev-dev (headers + libev.so) and liburing-dev (echo-uring's
# io_uring helpers). linux-libc-dev gives the taskstats headers; python3 runs the forking server
# the process-tree tests measure.
deps:
	@dpkg -s libev-dev liburing-dev linux-libc-dev >/dev/null 2>&1 && command -v python3 >/dev/null || { \
	  echo "make: installing libev-dev liburing-dev linux-libc-dev python3"; \
	  $(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libev-dev liburing-dev linux-libc-dev python3; }

build: deps
	$(SWIFT) build

release: deps
	$(SWIFT) build -c release

# The whole suite: EchoProtocol units, the conformance suite against every server, loadgen, handoff.
# Servers raise their own open-files limit; the test process opens hundreds of sockets too.
test: deps
	ulimit -n $$(ulimit -Hn) 2>/dev/null; $(SWIFT) build --build-tests && $(SWIFT) test --skip-build

# A sweep of the four servers (idle, loaded and churn phases) in about 7 minutes on 2 cores; charts land in $(RESULTS)/.
demo: release
	ulimit -n $$(ulimit -Hn) 2>/dev/null; .build/release/loadgen sweep \
	  --servers threads,libev,tasks,uring --connections 100,1000,5000,10000,19000 \
	  --duration 5s --warmup 1s --out $(RESULTS)
	@echo "charts: $(RESULTS)/index.html (and $(RESULTS)/*.svg, results.csv, results.json)"

# The article's reference servers (bench/peers: C threads, C epoll, C io_uring, Go), for side-by-side
# benchmarks; deps first, for liburing-dev.
# The Go one only when `go` is installed (apt-get install -y golang-go).
peers: deps
	bench/peers/build.sh .build-peers

# A pinned sweep of the four servers and every peer that built, 3 rounds alternating (medians with
# ranges), into results-compare/, then the failure scenarios with go-echo beside them, into
# results-compare/scenarios/ (~32 minutes).
compare: release peers
	bench/compare.sh results-compare
	@echo "charts: results-compare/index.html"

clean:
	rm -rf .build .build-peers $(RESULTS) results-compare
