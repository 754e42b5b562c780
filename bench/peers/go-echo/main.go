// go-echo: the article's goroutine-per-connection echo server.
//
//	usage: go-echo [OPTIONS] PORT [OPTIONS]      (listens on 127.0.0.1)
//
//	-work D          spin D on every message (CPU-bound work; the goroutine stays runnable)
//	-block D         a blocking call, syscall.Nanosleep(D), every -block-every messages
//	-block-every N   (default 1)
//
// Code that reads like the blocking version; Go's runtime parks the goroutine on its socket's
// pollDesc when a read or write would block, and its netpoller (epoll) makes it runnable again.
// GOMAXPROCS follows the CPUs the process may use, so `taskset -c 0` means one P.
//
// The options are our servers' --work, --block and --block-every (EchoProtocol's MessageCost), so
// `loadgen sweep --scenario NAME='--block 5ms --block-every 1000'` measures Go under the same
// switches: applied after a read, before its echo; a message is one read; the count that picks the
// blocked message is one for the whole server, never per connection (connections in a closed loop
// move in step, and per-connection counts would make them all block at once). Options may follow
// the port, because the sweep appends them to the command.
package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"time"
)

// messageCost is what a server does to each message beyond echoing it.
type messageCost struct {
	work       time.Duration
	block      time.Duration
	blockEvery uint64
	messages   atomic.Uint64 // the server's one count for -block-every
}

// apply runs after a read, before its echo.
func (cost *messageCost) apply() {
	if cost.work > 0 {
		// A spin on the monotonic clock, as MessageCost.work spins on CLOCK_MONOTONIC.
		start := time.Now()
		for time.Since(start) < cost.work {
		}
	}
	if cost.block > 0 && cost.messages.Add(1)%cost.blockEvery == 0 {
		blockingCall(cost.block)
	}
}

// blockingCall sleeps in the kernel through syscall.Syscall, so the runtime sees a goroutine in a
// system call (entersyscall) and its sysmon may hand the P to another thread (retake, handoffp),
// as it would for any blocking call. time.Sleep would only park the goroutine, which is not the
// point.
func blockingCall(duration time.Duration) {
	request := syscall.NsecToTimespec(duration.Nanoseconds())
	var remaining syscall.Timespec
	for syscall.Nanosleep(&request, &remaining) == syscall.EINTR {
		request = remaining
	}
}

func serve(conn net.Conn, cost *messageCost) {
	defer conn.Close()
	buffer := make([]byte, 4096)
	for {
		n, err := conn.Read(buffer)
		if n > 0 {
			cost.apply()
			if _, werr := conn.Write(buffer[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return // io.EOF or a reset
		}
	}
}

func main() {
	cost := &messageCost{}
	flag.DurationVar(&cost.work, "work", 0, "CPU-bound `duration` of spinning per message, after its read and before its echo")
	flag.DurationVar(&cost.block, "block", 0, "a blocking call (nanosleep) of this `duration` every -block-every messages")
	blockEvery := flag.Uint64("block-every", 1, "how often -block happens: every `N`th message, counted for the whole server")
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: %s [OPTIONS] PORT [OPTIONS]\n", os.Args[0])
		flag.PrintDefaults()
	}
	// The flag package stops at the first argument that is not an option: parse again after the port.
	flag.Parse()
	if flag.NArg() < 1 {
		flag.Usage()
		os.Exit(2)
	}
	port := flag.Arg(0)
	flag.CommandLine.Parse(flag.Args()[1:])
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "go-echo: unexpected argument %q\n", flag.Arg(0))
		os.Exit(2)
	}
	// The same bounds as ServerOptions.validate.
	switch {
	case cost.work < 0 || cost.work > time.Second:
		fmt.Fprintf(os.Stderr, "go-echo: -work must be above 0 and at most 1s, got %v\n", cost.work)
		os.Exit(2)
	case cost.block < 0 || cost.block > 10*time.Second:
		fmt.Fprintf(os.Stderr, "go-echo: -block must be above 0 and at most 10s, got %v\n", cost.block)
		os.Exit(2)
	case *blockEvery < 1:
		fmt.Fprintln(os.Stderr, "go-echo: -block-every must be at least 1")
		os.Exit(2)
	}
	flag.Visit(func(f *flag.Flag) {
		if f.Name == "block-every" && cost.block == 0 {
			fmt.Fprintln(os.Stderr, "go-echo: -block-every needs -block")
			os.Exit(2)
		}
	})
	cost.blockEvery = *blockEvery

	listener, err := net.Listen("tcp4", "127.0.0.1:"+port)
	if err != nil {
		fmt.Fprintln(os.Stderr, "go-echo:", err)
		os.Exit(1)
	}
	for {
		conn, err := listener.Accept()
		if err != nil {
			continue // e.g. out of descriptors: the runtime already backs off
		}
		go serve(conn, cost) // net.Conn sets TCP_NODELAY by default
	}
}
