// Package freeport hands tests loopback ports to give to a process they
// start (telegate, redis-server, a peer), which binds them itself.
//
// A port found free and closed again can be taken by anyone before the
// process it was meant for binds it. Every listener asking for port 0, in
// any process (the demo's development provider, a peer, another package's
// test), and every outgoing connection take their port from the kernel's
// ephemeral range (net.ipv4.ip_local_port_range), so the ports handed out
// here come from below that range, where only an explicit choice lands;
// and a port is handed out at most once per test binary.
package freeport

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"testing"
)

// span is how many ports below the ephemeral range are drawn from.
const span = 12000

var handedOut = struct {
	sync.Mutex
	ports map[string]bool
}{ports: map[string]bool{}}

// ephemeralLow is the first port of the kernel's ephemeral range, or
// 32768 (the Linux default) when it cannot be read.
var ephemeralLow = sync.OnceValue(func() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	var lo, hi int
	if _, err := fmt.Sscan(string(b), &lo, &hi); err != nil || lo <= span+1024 {
		return 32768
	}
	return lo
})

// pick returns a port below the ephemeral range that bind opened (and
// then closed) a moment ago and that no earlier call handed out. bind
// opens the port, returning how to close it, or fails. The test fails
// when 1000 draws found none.
func pick(t testing.TB, network string, bind func(port int) (func(), error)) int {
	t.Helper()
	handedOut.Lock()
	defer handedOut.Unlock()
	hi := ephemeralLow()
	lo := hi - span
	for range 1000 {
		port := lo + rand.IntN(span)
		key := fmt.Sprintf("%s/%d", network, port)
		if handedOut.ports[key] {
			continue
		}
		closeIt, err := bind(port)
		if err != nil {
			continue
		}
		closeIt()
		handedOut.ports[key] = true
		return port
	}
	t.Fatalf("freeport: no unused %s port in [%d, %d)", network, lo, hi)
	return 0
}

// TCP returns a TCP port free on 127.0.0.1 a moment ago.
func TCP(t testing.TB) int {
	t.Helper()
	return TCPOn(t, "127.0.0.1")
}

// TCPOn returns a TCP port free on every one of ips (loopback addresses)
// a moment ago.
func TCPOn(t testing.TB, ips ...string) int {
	t.Helper()
	return pick(t, "tcp", func(port int) (func(), error) {
		var lns []net.Listener
		closeAll := func() {
			for _, ln := range lns {
				ln.Close()
			}
		}
		for _, ip := range ips {
			ln, err := net.Listen("tcp", net.JoinHostPort(ip, fmt.Sprint(port)))
			if err != nil {
				closeAll()
				return nil, err
			}
			lns = append(lns, ln)
		}
		return closeAll, nil
	})
}

// UDP returns a UDP port free on 127.0.0.1 a moment ago.
func UDP(t testing.TB) int {
	t.Helper()
	return pick(t, "udp", func(port int) (func(), error) {
		c, err := net.ListenPacket("udp4", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			return nil, err
		}
		return func() { c.Close() }, nil
	})
}
