//go:build telegate_pgoprofile

package main

// This file is only in the profiling build that scripts/pgo makes to
// record cmd/telegate/default.pgo (go build -tags telegate_pgoprofile): it
// serves net/http/pprof on the loopback address in TELEGATE_PPROF_ADDR
// (for example 127.0.0.1:6060) while the node runs under the benchmark.
// Release builds never contain it.

import (
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"time"
)

func init() {
	addr := os.Getenv("TELEGATE_PPROF_ADDR")
	if addr == "" {
		return
	}
	host, _, err := net.SplitHostPort(addr)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
		fmt.Fprintf(os.Stderr, "telegate: TELEGATE_PPROF_ADDR %q: must be a loopback address and port\n", addr)
		os.Exit(exitUsage)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.ListenAndServe() }()
}
