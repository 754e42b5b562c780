// handoff-go: the Go side of `handoff`, for the comparison in docs/measurements.md.
//
//	handoff-go pingpong N        two goroutines pass a turn over unbuffered channels: N round trips
//	handoff-go sleepers N DUR    N goroutines each sleep DUR; peak RSS per goroutine
//
// Prints the same lines as `handoff` (mode, handoffs, elapsed, average handoff).
package main

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

func pingpong(roundTrips int) {
	ping, pong := make(chan struct{}), make(chan struct{})
	go func() {
		for range ping {
			pong <- struct{}{}
		}
	}()
	start := time.Now()
	for i := 0; i < roundTrips; i++ {
		ping <- struct{}{}
		<-pong
	}
	elapsed := time.Since(start)
	close(ping)
	handoffs := 2 * roundTrips
	fmt.Printf("mode: pingpong\nhandoffs: %d\nelapsed: %.3f ms\naverage handoff: %.1f ns\n",
		handoffs, float64(elapsed.Nanoseconds())/1e6, float64(elapsed.Nanoseconds())/float64(handoffs))
}

// statusKiB reads a "Name:   123 kB" line of /proc/self/status.
func statusKiB(name string) int {
	file, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer file.Close()
	scanner := bufio.NewScanner(file)
	for scanner.Scan() {
		if fields := strings.Fields(scanner.Text()); len(fields) >= 2 && fields[0] == name+":" {
			value, _ := strconv.Atoi(fields[1])
			return value
		}
	}
	return 0
}

func sleepers(count int, sleep time.Duration) {
	before := statusKiB("VmRSS")
	var group sync.WaitGroup
	start := time.Now()
	for i := 0; i < count; i++ {
		group.Add(1)
		go func() {
			defer group.Done()
			time.Sleep(sleep)
		}()
	}
	time.Sleep(sleep / 2) // all alive: read the peak while they sleep
	peak := statusKiB("VmRSS")
	group.Wait()
	fmt.Printf("mode: sleepers\nunits: %d\nelapsed: %.3f ms\nRSS per unit: %.2f KiB\n",
		count, float64(time.Since(start).Nanoseconds())/1e6, float64(peak-before)/float64(count))
}

func main() {
	usage := func() {
		fmt.Fprintln(os.Stderr, "usage: handoff-go pingpong N | handoff-go sleepers N DURATION")
		os.Exit(2)
	}
	if len(os.Args) < 3 {
		usage()
	}
	n, err := strconv.Atoi(os.Args[2])
	if err != nil || n < 1 {
		usage()
	}
	switch os.Args[1] {
	case "pingpong":
		pingpong(n)
	case "sleepers":
		if len(os.Args) < 4 {
			usage()
		}
		sleep, err := time.ParseDuration(os.Args[3])
		if err != nil {
			usage()
		}
		sleepers(n, sleep)
	default:
		usage()
	}
}
