package admission

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"testing"
	"time"
)

// testLimits are small caps for the tests; each test changes what it
// exercises.
func testLimits() Limits {
	return Limits{
		MaxPending: 8, MaxPendingPerSource: 8, MaxConns: 16, MaxConnsPerSource: 4,
		FirstByteTimeout: 10 * time.Second, HandshakeTimeout: 20 * time.Second,
	}
}

// server runs a Controller over a loopback listener; every admitted
// connection is kept on accepted.
type server struct {
	t        *testing.T
	ctl      *Controller
	ln       *Listener
	accepted chan *Conn
	mu       sync.Mutex
	events   []Event
}

func newServer(t *testing.T, lim Limits) *server {
	t.Helper()
	return newServerOn(t, lim, "127.0.0.1:0")
}

// newServerOn is newServer on addr; nil when addr cannot be bound.
func newServerOn(t *testing.T, lim Limits, addr string) *server {
	t.Helper()
	return newQueuedServer(t, lim, addr, func(*server) {})
}

// newQueuedServer is newServer on addr that starts accepting only once
// queue has dialed: what queue dials waits in the kernel's accept queue.
// Nil when addr cannot be bound.
func newQueuedServer(t *testing.T, lim Limits, addr string, queue func(s *server)) *server {
	t.Helper()
	s := &server{t: t, accepted: make(chan *Conn, 1024)}
	ctl, err := New(Options{Limits: lim, OnEvent: func(e Event) {
		s.mu.Lock()
		s.events = append(s.events, e)
		s.mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	inner, err := net.Listen("tcp", addr)
	if err != nil {
		return nil
	}
	s.ctl, s.ln = ctl, ctl.Listen(inner)
	queue(s)
	s.serve()
	return s
}

// serve accepts on s.ln until it is closed, keeping every admitted
// connection on s.accepted.
func (s *server) serve() {
	t := s.t
	go func() {
		for {
			c, err := s.ln.Accept()
			if err != nil {
				return
			}
			s.accepted <- c.(*Conn)
		}
	}()
	t.Cleanup(func() {
		s.ln.Close()
		for {
			select {
			case c := <-s.accepted:
				c.Close()
			default:
				return
			}
		}
	})
}

// dial opens a connection from the loopback address src.
func (s *server) dial(src string) net.Conn {
	s.t.Helper()
	d := net.Dialer{Timeout: 2 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	c, err := d.Dial("tcp", s.ln.Addr().String())
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() { c.Close() })
	return c
}

// next is the next admitted connection on the server side.
func (s *server) next() *Conn {
	s.t.Helper()
	select {
	case c := <-s.accepted:
		return c
	case <-time.After(3 * time.Second):
		s.t.Fatal("no connection admitted")
		return nil
	}
}

// closedByServer reports whether the server closed c within wait.
func closedByServer(c net.Conn, wait time.Duration) bool {
	_ = c.SetReadDeadline(time.Now().Add(wait))
	_, err := c.Read(make([]byte, 1))
	var ne net.Error
	return err != nil && !(errors.As(err, &ne) && ne.Timeout())
}

// waitEvents waits until n events were reported.
func (s *server) waitEvents(n int) {
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		s.mu.Lock()
		got := len(s.events)
		s.mu.Unlock()
		if got >= n {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// settle waits until the controller's counts match want.
func (s *server) settle(want Stats) {
	s.t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		got := s.ctl.Stats()
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("stats %+v, want %+v", got, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestRegression_PreHandshakeSlotExhaustion: connections that never
// finish a handshake, all from one address, cannot keep a client from
// another address out — whether they fill the source's own pending cap or
// the listener's pool — and neither can idle or established connections
// of one address; stale connections are closed by the first-byte and the
// handshake deadlines.
func TestRegression_PreHandshakeSlotExhaustion(t *testing.T) {
	t.Parallel()
	t.Run("source pending cap evicts the source's oldest", func(t *testing.T) {
		t.Parallel()
		lim := testLimits()
		lim.MaxPendingPerSource = 3
		s := newServer(t, lim)
		var first []net.Conn
		for range 3 {
			first = append(first, s.dial("127.0.0.50"))
			s.next()
		}
		s.dial("127.0.0.50")
		s.next()
		if !closedByServer(first[0], time.Second) {
			t.Error("the source's oldest pending connection is still open")
		}
		if closedByServer(first[1], 100*time.Millisecond) {
			t.Error("the second oldest was closed too")
		}
		s.settle(Stats{Pending: 3, Sources: 1})
	})
	t.Run("full pool evicts the heaviest source, not the newcomer", func(t *testing.T) {
		t.Parallel()
		s := newServer(t, testLimits()) // MaxPending 8, per source 8
		var flood []net.Conn
		for range 8 {
			flood = append(flood, s.dial("127.0.0.50"))
			s.next()
		}
		legit := s.dial("127.0.0.60")
		lc := s.next()
		// The flood goes on: each newcomer of the flooding source evicts
		// that source's own oldest, never the other source's pending one.
		for range 20 {
			flood = append(flood, s.dial("127.0.0.50"))
			s.next()
		}
		if closedByServer(legit, 100*time.Millisecond) {
			t.Fatal("the other source's pending connection was evicted")
		}
		if !HandshakeDone(lc) {
			t.Fatal("the other source's connection was refused at its handshake")
		}
		for i, c := range flood[:20] {
			if !closedByServer(c, time.Second) {
				t.Errorf("flood connection %d is still open", i)
			}
		}
		// 7 of the flood's stay pending: the newcomer took the eighth slot.
		s.settle(Stats{Pending: 7, Active: 1, Sources: 2})
	})
	t.Run("first byte deadline", func(t *testing.T) {
		t.Parallel()
		lim := testLimits()
		lim.FirstByteTimeout, lim.HandshakeTimeout = 200*time.Millisecond, 2*time.Second
		s := newServer(t, lim)
		silent := s.dial("127.0.0.50")
		s.next()
		talker := s.dial("127.0.0.50")
		tc := s.next()
		go func() { _, _ = io.Copy(io.Discard, tc) }()
		if _, err := talker.Write([]byte{0x16}); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if !closedByServer(silent, time.Second) {
			t.Fatal("a connection that sent nothing outlived the first-byte deadline")
		}
		if el := time.Since(start); el > 600*time.Millisecond {
			t.Errorf("closed after %v, want about 200ms", el)
		}
		if closedByServer(talker, 300*time.Millisecond) {
			t.Fatal("a connection that sent its first byte was closed at the first-byte deadline")
		}
		if !closedByServer(talker, 2*time.Second) {
			t.Fatal("a connection that never finished its handshake outlived the handshake deadline")
		}
		s.waitEvents(2)
		s.mu.Lock()
		defer s.mu.Unlock()
		if len(s.events) != 2 || s.events[0].Reason != FirstByte || s.events[1].Reason != Handshake {
			t.Errorf("events %+v, want first_byte_timeout then handshake_timeout", s.events)
		}
	})
	t.Run("established cap closes the source's idle first", func(t *testing.T) {
		t.Parallel()
		s := newServer(t, testLimits()) // MaxConnsPerSource 4
		var conns []net.Conn
		var srv []*Conn
		for range 4 {
			conns = append(conns, s.dial("127.0.0.50"))
			c := s.next()
			if !HandshakeDone(c) {
				t.Fatal("refused under the cap")
			}
			srv = append(srv, c)
		}
		Idle(srv[1])
		Idle(srv[2])
		conns = append(conns, s.dial("127.0.0.50"))
		if !closedByServer(conns[1], time.Second) {
			t.Error("the oldest idle connection of the source is still open")
		}
		if closedByServer(conns[0], 50*time.Millisecond) || closedByServer(conns[2], 50*time.Millisecond) {
			t.Error("an active or a younger idle connection was closed")
		}
		Active(srv[2])
		if !HandshakeDone(s.next()) {
			t.Fatal("the newcomer was refused though an idle connection made room")
		}
		// Every established connection is active: a newcomer is refused.
		if !closedByServer(s.dial("127.0.0.50"), time.Second) {
			t.Error("a connection past the cap with none idle was admitted")
		}
		s.settle(Stats{Active: 4, Sources: 1})
		// Another source is not concerned.
		s.dial("127.0.0.60")
		if !HandshakeDone(s.next()) {
			t.Error("another source was refused")
		}
	})
	t.Run("full listener closes an idle connection for a new source", func(t *testing.T) {
		t.Parallel()
		lim := testLimits()
		lim.MaxConns, lim.MaxConnsPerSource, lim.MaxPending, lim.MaxPendingPerSource = 4, 4, 4, 4
		s := newServer(t, lim)
		var conns []net.Conn
		for i := range 4 {
			conns = append(conns, s.dial("127.0.0.50"))
			c := s.next()
			HandshakeDone(c)
			if i >= 2 {
				Idle(c)
			}
		}
		s.dial("127.0.0.60")
		if !HandshakeDone(s.next()) {
			t.Fatal("the new source was refused")
		}
		if !closedByServer(conns[2], time.Second) {
			t.Error("the oldest idle connection is still open")
		}
		for _, i := range []int{0, 1, 3} {
			if closedByServer(conns[i], 50*time.Millisecond) {
				t.Errorf("connection %d was closed", i)
			}
		}
		s.settle(Stats{Active: 3, Idle: 1, Sources: 2})
	})
	t.Run("IPv6 sources count per /64", func(t *testing.T) {
		t.Parallel()
		lim := testLimits()
		lim.MaxPendingPerSource = 2
		s := newServerOn(t, lim, "[::1]:0")
		if s == nil {
			t.Skip("no IPv6 loopback")
		}
		first := s.dial("::1")
		s.next()
		s.dial("::1")
		s.next()
		s.dial("::1")
		s.next()
		if !closedByServer(first, time.Second) {
			t.Error("the /64's oldest pending connection is still open past its cap")
		}
		s.settle(Stats{Pending: 2, Sources: 1})
	})
	t.Run("closing releases the slot", func(t *testing.T) {
		t.Parallel()
		s := newServer(t, testLimits())
		for range 3 {
			c := s.dial("127.0.0.50")
			sc := s.next()
			HandshakeDone(sc)
			Idle(sc)
			c.Close()
			_ = sc.Close()
		}
		s.settle(Stats{})
	})
}

func TestSourceOf(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ addr, want string }{
		{"127.0.0.50:443", "127.0.0.50/32"},
		{"[::ffff:192.0.2.7]:1", "192.0.2.7/32"},
		{"[2001:db8:1:2:aaaa::1]:443", "2001:db8:1:2::/64"},
		{"[2001:db8:1:2:bbbb::9]:443", "2001:db8:1:2::/64"},
		{"[fe80::1%eth0]:443", "fe80::/64"},
		{"[::1]:443", "::/64"},
	} {
		ap := netip.MustParseAddrPort(tc.addr)
		if got := SourceOf(net.TCPAddrFromAddrPort(ap)); got.String() != tc.want {
			t.Errorf("SourceOf(%s) = %s, want %s", tc.addr, got, tc.want)
		}
	}
}

func TestLimitsCheck(t *testing.T) {
	t.Parallel()
	if err := testLimits().Check(); err != nil {
		t.Fatal(err)
	}
	for _, f := range []func(*Limits){
		func(l *Limits) { l.MaxPending = 0 },
		func(l *Limits) { l.MaxPendingPerSource = l.MaxPending + 1 },
		func(l *Limits) { l.MaxConnsPerSource = l.MaxConns + 1 },
		func(l *Limits) { l.MaxPending = l.MaxConns + 1; l.MaxPendingPerSource = 1 },
		func(l *Limits) { l.FirstByteTimeout = l.HandshakeTimeout + 1 },
		func(l *Limits) { l.HandshakeTimeout = 0 },
	} {
		l := testLimits()
		f(&l)
		if l.Check() == nil {
			t.Errorf("%+v accepted", l)
		}
	}
}

// TestIdleOrderAfterReuse: a keep-alive connection that serves another
// request and goes idle again becomes the newest idle one, so the
// source's oldest idle connection is the one closed for a newcomer; the
// connection that just served stays open.
func TestIdleOrderAfterReuse(t *testing.T) {
	lim := testLimits()
	lim.MaxConnsPerSource = 3
	s := newServer(t, lim)
	hook := ConnState(nil)
	var clients []net.Conn
	var conns []*Conn
	for range 3 {
		clients = append(clients, s.dial("127.0.0.1"))
		c := s.next()
		hook(c, http.StateActive)
		hook(c, http.StateIdle)
		conns = append(conns, c)
	}
	// conns[0] serves again (several requests): conns[1] is now the oldest idle.
	for range 3 {
		hook(conns[0], http.StateActive)
		hook(conns[0], http.StateIdle)
	}
	s.settle(Stats{Idle: 3, Sources: 1})
	s.dial("127.0.0.1")
	hook(s.next(), http.StateActive)
	if !closedByServer(clients[1], time.Second) {
		t.Fatal("the oldest idle connection was not closed for the newcomer")
	}
	for _, i := range []int{0, 2} {
		if closedByServer(clients[i], 100*time.Millisecond) {
			t.Fatalf("connection %d was closed; only the oldest idle one should be", i)
		}
	}
	s.settle(Stats{Active: 1, Idle: 2, Sources: 1})
}
