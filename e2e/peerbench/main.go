// Command peerbench measures telegate against its peers on this machine,
// everything on 127.0.0.1 and behind one loopback upstream: the public
// route against Caddy reverse_proxy, nginx proxy_pass (upstream keep-alive
// on) and a bare Go httputil.ReverseProxy, with 1 KiB and 64 KiB answers
// over HTTP/1.1 (wrk) and HTTP/2 (h2load); the signed-in route against
// oauth2-proxy (OIDC against the development provider, cookie session) and
// telegate's public route; the inspected route against stock Coraza
// (coraza/v3/http.WrapHandler with telegate's Core Rule Set directives),
// a GET with a query and an 8-field form POST; the TURN relay against
// coturn with e2e/relayload at 120 B and 1200 B; and resources: peak RSS
// and CPU per request per scenario, memory per idle keep-alive connection,
// per relay allocation and per idle session, and time to ready.
//
// Every scenario runs its peers in alternating order, round after round,
// and prints every round, medians, spreads ((max − min) / median) and the
// median of the per-round ratios telegate / peer, so that ratios come from
// the same run and the same minutes. It writes every round as a JSON line
// to -out. It stops by itself and kills every process group it started.
// scripts/bench installs the peers and runs it.
//
// Subcommands (started by the benchmark itself, each in its own process):
//
//	peerbench goproxy -listen 127.0.0.1:P -upstream 127.0.0.1:U -cert C -key K
//	peerbench coraza  -listen 127.0.0.1:P -upstream 127.0.0.1:U -cert C -key K
//
// Usage: peerbench [-quick] [-duration 10s] [-rounds 3] [-connections 64] [-oauth2-proxy BIN] [-out FILE]
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"regexp"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) > 1 && (os.Args[1] == "goproxy" || os.Args[1] == "coraza") {
		if err := serveProxy(os.Args[2:], os.Args[1] == "coraza"); err != nil {
			fmt.Fprintln(os.Stderr, "peerbench:", err)
			os.Exit(1)
		}
		return
	}
	var c benchConfig
	flag.BoolVar(&c.quick, "quick", false, "a few seconds per scenario, one round: shows that every peer starts, answers and stops")
	flag.DurationVar(&c.dur, "duration", 10*time.Second, "length of each load run (whole seconds)")
	flag.IntVar(&c.rounds, "rounds", 3, "alternating rounds per scenario")
	flag.IntVar(&c.conns, "connections", 64, "connections per load run")
	flag.IntVar(&c.threads, "threads", 2, "load generator threads")
	flag.IntVar(&c.streams, "streams", 1, "HTTP/2 concurrent streams per connection (h2load -m)")
	flag.IntVar(&c.idleConns, "idle-connections", 10000, "idle keep-alive connections opened to each HTTP peer")
	flag.IntVar(&c.idleSessions, "idle-sessions", 100000, "sessions for the idle-session memory measurement")
	flag.IntVar(&c.pairs, "relay-pairs", 50, "relay allocation pairs")
	flag.StringVar(&c.oauth2Proxy, "oauth2-proxy", "oauth2-proxy", "oauth2-proxy binary")
	flag.StringVar(&c.telegate, "telegate", "", "telegate binary (default: build ./cmd/telegate)")
	flag.StringVar(&c.out, "out", "/tmp/telegate-bench.jsonl", "every round as a JSON line")
	only := flag.String("only", "", "run only the HTTP scenarios whose name matches this regular expression")
	flag.BoolVar(&c.skipRelay, "no-relay", false, "skip the relay scenarios")
	flag.BoolVar(&c.skipResources, "no-resources", false, "skip the idle connection, relay and idle session measurements")
	flag.Parse()
	if *only != "" {
		c.only = regexp.MustCompile(*only)
	}
	if c.quick {
		c.dur, c.rounds, c.idleConns, c.idleSessions, c.pairs = 2*time.Second, 1, 500, 2000, 10
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sig
		killAll()
		os.Exit(130)
	}()
	err := run(&c)
	if err != nil {
		fmt.Fprintln(os.Stderr, "peerbench:", err)
	}
	killAll()
	// Children of a killed group leader (nginx's workers) are reaped by
	// init shortly after.
	left := leftRunning()
	for end := time.Now().Add(10 * time.Second); len(left) > 0 && time.Now().Before(end); left = leftRunning() {
		time.Sleep(100 * time.Millisecond)
	}
	if len(left) > 0 {
		fmt.Fprintf(os.Stderr, "peerbench: processes left running: %v\n", left)
		os.Exit(1)
	}
	fmt.Println("\nEvery peer stopped; no process of the benchmark is left running.")
	if err != nil {
		os.Exit(1)
	}
}
