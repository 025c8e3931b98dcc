package relay

import (
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"golang.org/x/time/rate"
)

// counterValue reads a counter.
func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// newTestRelayConn is a relayConn with an inbox of n datagrams and no
// bandwidth cap.
func newTestRelayConn(t *testing.T, n int) *relayConn {
	t.Helper()
	m, err := newMetrics(nil)
	if err != nil {
		t.Fatal(err)
	}
	a := &allocation{s: &Server{m: m}, transport: "udp"}
	c := &relayConn{
		a:     a,
		up:    rate.NewLimiter(rate.Inf, 0),
		down:  rate.NewLimiter(rate.Inf, 0),
		inbox: make(chan inPacket, n),
		done:  make(chan struct{}),
	}
	a.conn = c
	return c
}

// TestHandOverFullInbox: a datagram for an allocation whose inbox is full
// waits for its reader for a bounded time instead of being dropped at
// once (under overload the listening socket's buffer then takes the
// excess, where dropping costs nothing); a reader that never comes makes
// it drop after handOverWait, counted as queue_full; a closed allocation
// releases the wait at once. The inbox never holds more than its length.
func TestHandOverFullInbox(t *testing.T) {
	t.Parallel()
	from := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9}
	for _, tc := range []struct {
		name      string
		act       func(c *relayConn) // while deliver waits
		delivered bool
		minWait   time.Duration
		maxWait   time.Duration
	}{
		{"reader drains", func(c *relayConn) {
			time.Sleep(handOverWait / 4)
			<-c.inbox
		}, true, 0, time.Second},
		{"no reader", func(*relayConn) {}, false, handOverWait, time.Second},
		{"allocation closed", func(c *relayConn) {
			time.Sleep(handOverWait / 4)
			close(c.done)
		}, false, 0, time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// On a busy machine the draining goroutine may not run
			// within handOverWait; a few attempts keep the test stable.
			attempts := 1
			if tc.delivered {
				attempts = 5
			}
			var last string
			for range attempts {
				c := newTestRelayConn(t, 2)
				c.deliver([]byte("one"), from)
				c.deliver([]byte("two"), from)
				go tc.act(c)
				start := time.Now()
				c.deliver([]byte("three"), from)
				took := time.Since(start)
				if took < tc.minWait || took > tc.maxWait {
					t.Errorf("deliver took %v, want %v..%v", took, tc.minWait, tc.maxWait)
				}
				if len(c.inbox) > cap(c.inbox) {
					t.Fatalf("inbox holds %d, cap %d", len(c.inbox), cap(c.inbox))
				}
				packets := counterValue(t, c.a.s.m.packets)
				full := counterValue(t, c.a.s.m.denials.WithLabelValues("queue_full"))
				if !tc.delivered {
					if packets != 2 {
						t.Fatalf("packets %v, want 2", packets)
					}
					if tc.name == "no reader" && full != 1 {
						t.Fatalf("queue_full %v, want 1", full)
					}
					return
				}
				if packets != 3 || full != 0 {
					last = fmt.Sprintf("packets %v, queue_full %v; want 3, 0", packets, full)
					time.Sleep(handOverWait)
					continue
				}
				// The third datagram is in the inbox, after "two".
				<-c.inbox
				if pk := <-c.inbox; string((*pk.buf)[:pk.n]) != "three" {
					t.Fatalf("inbox holds %q, want three", (*pk.buf)[:pk.n])
				}
				return
			}
			t.Fatal(last)
		})
	}
}

// TestHandOverNeverWaitsForStalledReader is the regression test for
// head-of-line blocking: a listening socket's read loop, shared by many
// clients, waits at most handOverWait for the reader of an allocation
// with a full inbox, and not again for a reader that let a wait run out
// and has taken nothing since, whatever the client's transport (a TLS
// client's reader writes into a send queue that never waits for the
// client, so it is held up only as a UDP client's is). Past the first
// wait the datagram is dropped at once and counted queue_full.
func TestHandOverNeverWaitsForStalledReader(t *testing.T) {
	t.Parallel()
	from := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9}
	runOut := func(t *testing.T, c *relayConn) {
		start := time.Now()
		c.deliver([]byte("runs out"), from)
		if time.Since(start) < handOverWait {
			t.Fatal("first hand-over to a full inbox did not wait")
		}
	}
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, c *relayConn)
	}{
		{"udp allocation", runOut},
		{"tls allocation", func(t *testing.T, c *relayConn) {
			c.a.transport = "tls"
			runOut(t, c)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := newTestRelayConn(t, 1)
			c.deliver([]byte("one"), from)
			tc.setup(t, c)
			before := counterValue(t, c.a.s.m.denials.WithLabelValues("queue_full"))
			start := time.Now()
			for range 100 {
				c.deliver([]byte("more"), from)
			}
			// Waiting for each would take 100 × handOverWait; half of that
			// leaves room for a loaded machine (-race, shared cores).
			if took := time.Since(start); took >= 50*handOverWait {
				t.Fatalf("100 hand-overs took %v, as if they waited (%v each); each must drop at once", took, handOverWait)
			}
			if got := counterValue(t, c.a.s.m.denials.WithLabelValues("queue_full")) - before; got != 100 {
				t.Fatalf("queue_full +%v, want +100", got)
			}
			// A reader that takes a datagram is waited for again.
			<-c.inbox
			var buf [16]byte
			c.inbox <- inPacket{buf: packetPool.Get().(*[]byte), n: 1}
			if _, _, err := c.ReadFrom(buf[:]); err != nil {
				t.Fatal(err)
			}
			if c.stalled.Load() {
				t.Fatal("still stalled after its reader took a datagram")
			}
		})
	}
}
