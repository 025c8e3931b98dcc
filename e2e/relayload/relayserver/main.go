// Command relayserver runs telegate's TURN relay (media/relay) on its own
// for benchmarks: it admits the visits relayload uses (PREFIX0000… with
// participants "a" and "b") and serves until SIGINT or SIGTERM.
//
//	relayserver -listen 127.0.0.1:3478 -secret S -visits 100
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/media/relay"
)

func main() {
	var (
		listen    = flag.String("listen", "127.0.0.1:3478", "UDP listen address")
		relayIP   = flag.String("relay-ip", "127.0.0.1", "relay address")
		secret    = flag.String("secret", "", "shared secret; or $RELAYLOAD_SECRET")
		visits    = flag.Int("visits", 100, "visits to admit")
		prefix    = flag.String("visit-prefix", "load", "visit id prefix")
		sockets   = flag.Int("sockets", 0, "UDP sockets (SO_REUSEPORT); 0 = CPUs")
		bandwidth = flag.Int64("bandwidth", 0, "per-allocation cap, bit/s each way; 0 = the default (4 Mbit/s)")
		maxAllocs = flag.Int("max-allocations", 0, "total allocation cap; 0 = the default")
		cpuProf   = flag.String("cpuprofile", "", "write a CPU profile to this file")
		counters  = flag.Bool("counters", false, "print the relay's packet and drop counters to stderr on exit")
	)
	flag.Parse()
	if *cpuProf != "" {
		f, err := os.Create(*cpuProf)
		if err != nil {
			log.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			log.Fatal(err)
		}
		defer pprof.StopCPUProfile()
	}
	if *secret == "" {
		*secret = os.Getenv("RELAYLOAD_SECRET")
	}
	cfg := config.Relay{
		Enabled:                true,
		Listen:                 *listen,
		UDPSockets:             *sockets,
		RelayAddresses:         []netip.Addr{netip.MustParseAddr(*relayIP)},
		Secrets:                []string{*secret},
		BandwidthBitsPerSecond: *bandwidth,
		MaxAllocations:         *maxAllocs,
		AllocationRate:         config.RateLimit{Rate: 100, Burst: 100},
		UnauthenticatedRate:    config.RateLimit{Rate: 1000, Burst: 1000},
	}
	reg := prometheus.NewRegistry()
	s, err := relay.New(relay.Options{
		Config:   cfg,
		Registry: reg,
		Logger:   slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		log.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := s.Start(ctx); err != nil {
		log.Fatal(err)
	}
	for i := range *visits {
		v := fmt.Sprintf("%s%04d", *prefix, i)
		s.Admit(v, "a")
		s.Admit(v, "b")
	}
	fmt.Fprintf(os.Stderr, "relayserver: listening on %s, %d visits admitted\n", s.LocalAddr(), *visits)
	<-ctx.Done()
	_ = s.Close()
	if *counters {
		printCounters(reg)
	}
}

// printCounters writes every relay counter with a non-zero value, one
// "name{labels} value" line each.
func printCounters(g prometheus.Gatherer) {
	mfs, err := g.Gather()
	if err != nil {
		return
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			v := m.GetCounter().GetValue()
			if v == 0 {
				continue
			}
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			fmt.Fprintf(os.Stderr, "%s{%s} %.0f\n", mf.GetName(), strings.Join(labels, ","), v)
		}
	}
}
