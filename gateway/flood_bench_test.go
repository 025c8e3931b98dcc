package gateway

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/telegate/telegate/e2e/abuse"
)

// floodAttackerEnv, when set in the environment of this test binary,
// makes it the idle-TCP attacker of BenchmarkIdleTCPFlood instead of
// running tests: "target,workers,connections".
const floodAttackerEnv = "TELEGATE_FLOOD_ATTACKER"

func TestMain(m *testing.M) {
	if spec := os.Getenv(floodAttackerEnv); spec != "" {
		os.Exit(runFloodAttacker(spec))
	}
	os.Exit(m.Run())
}

// runFloodAttacker opens idle TCP connections from 127.0.0.50 with the
// spec's workers until it has opened the spec's number of connections,
// closes them and prints how many it opened.
func runFloodAttacker(spec string) int {
	f := strings.Split(spec, ",")
	if len(f) != 3 {
		return 2
	}
	workers, _ := strconv.Atoi(f[1])
	n, _ := strconv.ParseInt(f[2], 10, 64)
	st := &abuse.Stats{}
	stop := abuse.Start(context.Background(), abuse.IdleTCP, abuse.Options{
		Target: f[0], Source: net.IPv4(127, 0, 0, 50), Workers: workers, Pause: time.Second, Stats: st,
	})
	for st.Opened.Load() < n {
		time.Sleep(2 * time.Millisecond)
	}
	fmt.Println(stop().Opened.Load())
	return 0
}

// processCPU is the CPU time (user and system) this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkIdleTCPFlood is what one connection of an idle-TCP flood costs
// telegate: 1100 workers from one loopback source (127.0.0.50, in a
// process of its own) open TCP connections to the real Serve path (the
// public listener's admission with the default connections settings, the
// TLS multiplexer) that never send a byte, each replaced 1 s after the
// server closes it, as scripts/bench-abuse's idle-TCP attacker: they come
// in waves, and nearly every one is evicted as its source's oldest
// pending connection. cpu-µs/conn is this process's CPU time (user and
// system, getrusage) per attacker connection, from the first accept
// until every connection is gone: the server side alone, and far less a
// matter of how busy the machine is than wall time (not free of it: a
// loaded machine's caches and scheduling add to it; compare trees in
// alternating runs). ns/op is wall time per connection.
func BenchmarkIdleTCPFlood(b *testing.B) {
	s := serveTestGateway(b, nil)
	n := max(b.N, 2000)
	before := runtime.NumGoroutine()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s,%d,%d", floodAttackerEnv, s.addr, 1100, n))
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, os.Stderr
	cpu0 := processCPU()
	b.ResetTimer()
	if err := cmd.Run(); err != nil {
		b.Fatalf("attacker: %v", err)
	}
	// Every connection the attacker held is closed by now; wait for the
	// server to be done with them.
	for deadline := time.Now().Add(5 * time.Second); runtime.NumGoroutine() > before+2 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	b.StopTimer()
	cpu := processCPU() - cpu0
	opened, err := strconv.Atoi(strings.TrimSpace(out.String()))
	if err != nil || opened < n {
		b.Fatalf("attacker opened %q connections, want %d", out.String(), n)
	}
	b.ReportMetric(float64(cpu.Microseconds())/float64(opened), "cpu-µs/conn")
	b.ReportMetric(float64(opened), "conns")
}
