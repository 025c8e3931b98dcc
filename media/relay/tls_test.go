package relay

import (
	"crypto/tls"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pion/stun/v4"

	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/media/relay/turnwire"
)

// tlsFront is a TLS listener on 127.0.0.1 that hands every connection to
// the relay as the HTTPS listener does (ServeTLSConn). sndbuf, when set,
// is the send buffer of each accepted socket.
func (f *fixture) tlsFront(t testing.TB, sndbuf int) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	cfg := selfSigned(t)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if sndbuf > 0 {
				_ = c.(*net.TCPConn).SetWriteBuffer(sndbuf)
			}
			go func() {
				tc := tls.Server(c, cfg)
				_ = tc.SetDeadline(time.Now().Add(5 * time.Second))
				if tc.Handshake() != nil {
					_ = tc.Close()
					return
				}
				_ = tc.SetDeadline(time.Time{})
				f.s.ServeTLSConn(tc)
			}()
		}
	}()
	return ln.Addr().String()
}

// tlsDial connects to addr from source IP src (an address in
// 127.0.0.0/8); rcvbuf, when set, is the receive buffer of the socket,
// set before connecting so the window stays small.
func tlsDial(t testing.TB, addr, src string, rcvbuf int) *tls.Conn {
	t.Helper()
	c, err := dialTLSFrom(addr, src, rcvbuf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// dialTLSFrom is tlsDial without a test: for clients that run outside
// the test's goroutine.
func dialTLSFrom(addr, src string, rcvbuf int) (*tls.Conn, error) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	if rcvbuf > 0 {
		d.Control = func(_, _ string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, rcvbuf)
			})
			if err != nil {
				return err
			}
			return serr
		}
	}
	return tls.DialWithDialer(&d, "tcp", addr, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // test server
}

// tlsAllocate connects from src, admits (visit, part) and allocates over
// TLS.
func (f *fixture) tlsAllocate(t testing.TB, addr, src, visit, part string, rcvbuf int) (*turnwire.Client, netip.AddrPort, *tls.Conn) {
	t.Helper()
	f.s.Admit(visit, part)
	cred := f.s.Credential(visit, part)
	conn := tlsDial(t, addr, src, rcvbuf)
	c := turnwire.NewStream(conn, cred.Username, cred.Password)
	relayed, err := c.Allocate(turnwire.UDP)
	if err != nil {
		t.Fatalf("allocate %s/%s over TLS: %v", visit, part, err)
	}
	return c, relayed, conn
}

// closedWithin waits up to d for the server to close c (a read ends in
// EOF or a reset; anything c receives meanwhile is discarded).
func closedWithin(c net.Conn, d time.Duration) bool {
	_ = c.SetReadDeadline(time.Now().Add(d))
	buf := make([]byte, 2048)
	for {
		_, err := c.Read(buf)
		if err == nil {
			continue
		}
		var ne net.Error
		return !(errors.As(err, &ne) && ne.Timeout())
	}
}

func tlsClosedCount(t *testing.T, f *fixture, reason string) float64 {
	t.Helper()
	return counterValue(t, f.s.m.tls.WithLabelValues(reason))
}

// TestRegression_TLSSlotHolding: TURN-over-TLS connections that never make
// an authenticated allocation — whatever they send, from several source
// addresses, filling every slot — are closed at relay.tls_allocate_timeout,
// and meanwhile an admitted participant connects and allocates at once.
func TestRegression_TLSSlotHolding(t *testing.T) {
	t.Parallel()
	const allocDeadline = 3 * time.Second
	f := newFixture(t, func(c *config.Relay) {
		c.MaxTLSConns = 9 // one per holder below
		c.TLSAllocateTimeout = allocDeadline
	})
	addr := f.tlsFront(t, 0)
	binding := func(t *testing.T, c *tls.Conn) {
		if _, err := c.Write(stun.MustBuild(stun.TransactionID, stun.BindingRequest).Raw); err != nil {
			t.Error(err)
		}
	}
	allocate := func(user, pass string) func(t *testing.T, c *tls.Conn) {
		return func(t *testing.T, c *tls.Conn) {
			_, err := turnwire.NewStream(c, user, pass).Allocate(turnwire.UDP)
			if turnwire.Code(err) != 401 {
				t.Errorf("Allocate as %q: %v, want 401", user, err)
			}
		}
	}
	cred := f.s.Credential("v", "stranger")
	holders := []struct {
		name string
		hold func(t *testing.T, c *tls.Conn)
	}{
		{"sends one Binding and idles", binding},
		{"sends nothing", func(*testing.T, *tls.Conn) {}},
		{"sends half a STUN header", func(t *testing.T, c *tls.Conn) {
			if _, err := c.Write([]byte{0x00, 0x01}); err != nil {
				t.Error(err)
			}
		}},
		{"sends a ChannelData header and idles", func(t *testing.T, c *tls.Conn) {
			if _, err := c.Write([]byte{0x40, 0x00, 0x00, 0x40}); err != nil {
				t.Error(err)
			}
		}},
		{"trickles a long STUN message a byte at a time", func(t *testing.T, c *tls.Conn) {
			msg := stun.MustBuild(stun.TransactionID, stun.BindingRequest).Raw
			msg[2], msg[3] = 0x04, 0x00 // announces 1 KiB of attributes
			go func() {
				for _, b := range append(msg, make([]byte, 60)...) {
					if _, err := c.Write([]byte{b}); err != nil {
						return
					}
					time.Sleep(60 * time.Millisecond)
				}
			}()
		}},
		{"sends a Binding a byte per TLS record", func(t *testing.T, c *tls.Conn) {
			for _, b := range stun.MustBuild(stun.TransactionID, stun.BindingRequest).Raw {
				if _, err := c.Write([]byte{b}); err != nil {
					t.Error(err)
					return
				}
			}
		}},
		{"is challenged and idles", func(t *testing.T, c *tls.Conn) {
			if _, err := c.Write(stun.MustBuild(stun.TransactionID, stun.NewType(stun.MethodAllocate, stun.ClassRequest), turnwire.UDP).Raw); err != nil {
				t.Error(err)
			}
		}},
		{"has a wrong password", allocate(cred.Username, "not the password")},
		{"keeps sending Bindings", func(t *testing.T, c *tls.Conn) {
			go func() {
				for range 40 {
					if _, err := c.Write(stun.MustBuild(stun.TransactionID, stun.BindingRequest).Raw); err != nil {
						return
					}
					time.Sleep(100 * time.Millisecond)
				}
			}()
		}},
	}
	conns := make([]*tls.Conn, len(holders))
	start := time.Now()
	for i, h := range holders {
		conns[i] = tlsDial(t, addr, netip.AddrFrom4([4]byte{127, 0, 1, byte(10 + i)}).String(), 0)
		h.hold(t, conns[i])
	}
	// Every slot is held now. The participant still gets one at once.
	time.Sleep(100 * time.Millisecond)
	f.s.Admit("v", "alice")
	alice := f.s.Credential("v", "alice")
	p := turnwire.NewStream(tlsDial(t, addr, "127.0.0.2", 0), alice.Username, alice.Password)
	t0 := time.Now()
	if _, err := p.Allocate(turnwire.UDP); err != nil {
		t.Fatalf("participant's Allocate with every slot held: %v", err)
	}
	if took, since := time.Since(t0), time.Since(start); took > 500*time.Millisecond || since > allocDeadline {
		t.Fatalf("participant's Allocate took %v with every slot held, %v after the holders came (allocate deadline %v)", took, since, allocDeadline)
	}
	var wg sync.WaitGroup
	for i, h := range holders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if !closedWithin(conns[i], time.Until(start.Add(allocDeadline+2*time.Second))) {
				t.Errorf("a connection that %s is still open %v after it came (allocate deadline %v)", h.name, time.Since(start), allocDeadline)
			}
		}()
	}
	wg.Wait()
	if err := p.Refresh(5 * time.Minute); err != nil {
		t.Fatalf("the participant's connection after the allocate deadline: %v", err)
	}
	if n := tlsClosedCount(t, f, "allocate_timeout") + tlsClosedCount(t, f, "evicted"); n != float64(len(holders)) {
		t.Errorf("allocate_timeout + evicted = %v, want %d", n, len(holders))
	}
}

// TestRegression_TLSStalledReader: a participant that stops reading its
// TURN-over-TLS connection while relayed data fills its socket, and keeps
// provoking answers in one of several ways, loses its own packets and then
// its connection; the other participants' relayed media over TLS never
// pauses for it (no inter-arrival gap over 200 ms beyond the sender's
// own). It runs alone (not parallel): it measures timing.
func TestRegression_TLSStalledReader(t *testing.T) {
	for _, tc := range append(slices.Clone(turnwire.Provocations),
		turnwire.Provocation{Name: "CreatePermission toward a denied peer", Build: func(s *turnwire.Client, _ netip.AddrPort) []byte {
			return s.Request(stun.MethodCreatePermission, turnwire.PeerAddress(netip.MustParseAddrPort("10.0.0.1:9")))
		}},
		turnwire.Provocation{Name: "nothing"},
	) {
		t.Run(tc.Name, func(t *testing.T) {
			worst, raw := stalledReader(t, tc.Build)
			if worst > maxMediaPause {
				// A loaded machine stalls a process now and then; a relay
				// that waits for the stuck reader pauses every time.
				t.Logf("bob's media paused %v: measuring again on a fresh relay", worst)
				worst, raw = stalledReader(t, tc.Build)
			}
			if worst > maxMediaPause {
				t.Errorf("bob's media paused %v (inter-arrival gap %v) while another participant did not read, twice", worst, raw)
			}
		})
	}
}

// maxMediaPause is the longest pause of one participant's relayed media
// that another participant's stalled reading may cause.
const maxMediaPause = 200 * time.Millisecond

// stalledReader runs bob's media beside a participant that stops
// reading, checks what happens to the stuck one, and returns the worst
// pause of bob's media (less alice's own lateness) and the raw
// inter-arrival gap.
func stalledReader(t *testing.T, provoke func(*turnwire.Client, netip.AddrPort) []byte) (worst, worstRaw time.Duration) {
	f := newFixture(t, func(c *config.Relay) { c.BandwidthBitsPerSecond = 400_000_000 })
	addr := f.tlsFront(t, 16<<10)
	a, ra, _ := f.tlsAllocate(t, addr, "127.0.0.2", "v", "alice", 0)
	b, rb, _ := f.tlsAllocate(t, addr, "127.0.0.3", "v", "bob", 0)
	s, rs, sconn := f.tlsAllocate(t, addr, "127.0.0.4", "v", "stuck", 4<<10)
	c, rc := f.allocate(t, "v", "carol") // UDP
	for _, p := range []struct {
		c     *turnwire.Client
		peers []netip.AddrPort
	}{{a, []netip.AddrPort{rb}}, {b, []netip.AddrPort{ra}}, {s, []netip.AddrPort{rc}}, {c, []netip.AddrPort{rs}}} {
		if err := p.c.CreatePermission(p.peers...); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.ChannelBind(0x4000, rb); err != nil {
		t.Fatal(err)
	}
	if err := c.ChannelBind(0x4001, rs); err != nil {
		t.Fatal(err)
	}
	// From here on the stuck participant reads nothing.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	run := func(every time.Duration, do func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tk := time.NewTicker(every)
			defer tk.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tk.C:
				}
				if do() != nil {
					return
				}
			}
		}()
	}
	big := make([]byte, 1200)
	run(time.Millisecond, func() error { // carol floods the stuck one
		return c.Write(turnwire.ChannelData(nil, 0x4001, big))
	})
	if provoke != nil {
		run(5*time.Millisecond, func() error { return s.Write(provoke(s, rc)) })
	}
	// Alice's audio to bob: a packet every 10 ms stamped with its send
	// time.
	var wrote atomic.Int64 // what alice got out: a machine this loaded may not run her ticker on time
	run(10*time.Millisecond, func() error {
		p := make([]byte, 160)
		binary.BigEndian.PutUint64(p, uint64(time.Now().UnixNano()))
		err := a.Write(turnwire.ChannelData(nil, 0x4000, p))
		if err == nil {
			wrote.Add(1)
		}
		return err
	})

	const window = 4 * time.Second
	var recv, sent []time.Time
	buf := make([]byte, 2048)
	end := time.Now().Add(window)
	for time.Now().Before(end) {
		n, err := b.Read(buf, end)
		if err != nil {
			break
		}
		if _, p, ok := turnwire.ParseData(buf[:n]); ok && len(p) == 160 { // bob has no channel: Data indications
			recv = append(recv, time.Now())
			sent = append(sent, time.Unix(0, int64(binary.BigEndian.Uint64(p))))
		}
	}
	close(stop)
	wg.Wait()
	if n := wrote.Load(); len(recv) < int(n)/2 {
		t.Fatalf("bob received %d packets in %v of the %d alice sent", len(recv), window, n)
	}
	// The inter-arrival gap at bob, less what alice's own sending gap
	// already was (a machine this loaded may not run her ticker on time):
	// a pause of the relay shows whole, a late sender does not.
	for i := 1; i < len(recv); i++ {
		gap := recv[i].Sub(recv[i-1])
		worstRaw = max(worstRaw, gap)
		worst = max(worst, gap-sent[i].Sub(sent[i-1])+10*time.Millisecond)
	}
	if d := counterValue(t, f.s.m.drops.WithLabelValues("tls_send_queue")); d == 0 {
		t.Error("no tls_send_queue drops for the participant that did not read")
	}
	if tlsClosedCount(t, f, "write_stalled") != 1 || !closedWithin(sconn, time.Second) {
		t.Error("the connection that did not read was not closed (write_stalled)")
	}
	t.Logf("%d packets, worst pause %v (inter-arrival %v), %v dropped for the stuck one", len(recv), worst, worstRaw, counterValue(t, f.s.m.drops.WithLabelValues("tls_send_queue")))
	return worst, worstRaw
}

// TestRegression_TLSSlotAfterRelease: a TURN-over-TLS connection whose
// allocation has ended is again a connection without one. Ended by the
// client (a Refresh with LIFETIME 0, RFC 8656 §7.3) or by expiry, it is
// closed at relay.tls_allocate_timeout after the end and gives its slot to
// a newcomer meanwhile; revoked (the visit ended, the participant
// removed) it is closed at once.
func TestRegression_TLSSlotAfterRelease(t *testing.T) {
	t.Parallel()
	const allocDeadline = 2 * time.Second
	for _, tc := range []struct {
		name string
		// release ends the allocation of c (visit "v", participant
		// "alice") and returns when it has ended, at the latest.
		release func(t *testing.T, f *fixture, c *turnwire.Client) time.Time
		// within: how long after the release the connection must be
		// closed, and why (telegate_media_relay_tls_connections_closed_total).
		within time.Duration
		reason string
		// newcomer: another connection comes when every slot is taken
		// and must get the released connection's slot.
		newcomer bool
	}{
		{"Refresh with LIFETIME 0", refreshTo(0), allocDeadline + time.Second, "allocate_timeout", false},
		{"Refresh with LIFETIME 0, every slot wanted", refreshTo(0), time.Second, "evicted", true},
		{"allocation expired", refreshTo(time.Second), allocDeadline + time.Second, "allocate_timeout", false},
		{"visit ended", func(_ *testing.T, f *fixture, _ *turnwire.Client) time.Time {
			f.s.EndVisit("v")
			return time.Now()
		}, time.Second, "revoked", false},
		{"participant removed", func(_ *testing.T, f *fixture, _ *turnwire.Client) time.Time {
			f.s.Remove("v", "alice")
			return time.Now()
		}, time.Second, "revoked", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, func(c *config.Relay) {
				c.MaxTLSConns = 2
				c.TLSAllocateTimeout = allocDeadline
			})
			addr := f.tlsFront(t, 0)
			a, _, aconn := f.tlsAllocate(t, addr, "127.0.2.1", "v", "alice", 0)
			// A second participant holds the other slot with an allocation.
			b, _, _ := f.tlsAllocate(t, addr, "127.0.2.2", "w", "bob", 0)
			released := tc.release(t, f, a)
			var newcomer *turnwire.Client
			if tc.newcomer {
				f.s.Admit("w", "carol")
				cred := f.s.Credential("w", "carol")
				newcomer = turnwire.NewStream(tlsDial(t, addr, "127.0.2.3", 0), cred.Username, cred.Password)
				if _, err := newcomer.Allocate(turnwire.UDP); err != nil {
					t.Fatalf("a newcomer with every slot taken, one by a connection whose allocation ended: %v", err)
				}
			}
			if !closedWithin(aconn, time.Until(released.Add(tc.within))) {
				t.Fatalf("the connection is still open %v after its allocation ended (allocate deadline %v)", time.Since(released), allocDeadline)
			}
			if n := tlsClosedCount(t, f, tc.reason); n != 1 {
				t.Errorf("connections closed as %s: %v, want 1", tc.reason, n)
			}
			// Nobody else lost anything.
			for _, c := range []*turnwire.Client{b, newcomer} {
				if c != nil {
					if err := c.Refresh(5 * time.Minute); err != nil {
						t.Errorf("another participant's connection after the release: %v", err)
					}
				}
			}
		})
	}
}

// refreshTo releases the allocation by a Refresh with lifetime d (0
// deletes it; a short one lets it expire) and returns when it has ended.
func refreshTo(d time.Duration) func(t *testing.T, f *fixture, c *turnwire.Client) time.Time {
	return func(t *testing.T, f *fixture, c *turnwire.Client) time.Time {
		t.Helper()
		if err := c.Refresh(d); err != nil {
			t.Fatalf("Refresh(%v): %v", d, err)
		}
		return time.Now().Add(d)
	}
}
