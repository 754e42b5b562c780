// go-echo: the article's goroutine-per-connection echo server.
//
//	usage: go-echo PORT      (listens on 127.0.0.1)
//
// Code that reads like the blocking version; Go's runtime parks the goroutine on its socket's
// pollDesc when a read or write would block, and its netpoller (epoll) makes it runnable again.
// GOMAXPROCS follows the CPUs the process may use, so `taskset -c 0` means one P.
package main

import (
	"fmt"
	"net"
	"os"
)

func serve(conn net.Conn) {
	defer conn.Close()
	buffer := make([]byte, 4096)
	for {
		n, err := conn.Read(buffer)
		if n > 0 {
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
	if len(os.Args) < 2 {
		fmt.Fprintf(os.Stderr, "usage: %s PORT\n", os.Args[0])
		os.Exit(2)
	}
	listener, err := net.Listen("tcp4", "127.0.0.1:"+os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "go-echo:", err)
		os.Exit(1)
	}
	for {
		conn, err := listener.Accept()
		if err != nil {
			continue // e.g. out of descriptors: the runtime already backs off
		}
		go serve(conn) // net.Conn sets TCP_NODELAY by default
	}
}
