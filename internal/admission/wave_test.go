package admission

import (
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// wave dials, in order, n connections from each address of srcs (n[i]
// from srcs[i]), keyed by source in the returned map, oldest first.
func (s *server) wave(srcs []string, n []int) map[string][]net.Conn {
	out := map[string][]net.Conn{}
	for i, src := range srcs {
		for range n[i] {
			out[src] = append(out[src], s.dial(src))
		}
	}
	return out
}

// admittedUntil counts, by source address, the admitted connections up
// to the first from src.
func (s *server) admittedUntil(src string) map[string]int {
	got := map[string]int{}
	for got[src] == 0 {
		got[s.next().RemoteAddr().(*net.TCPAddr).IP.String()]++
	}
	return got
}

// TestFloodWaveInAcceptQueue: a wave of connections that
// waits in the kernel's accept queue, from one or more flooding sources
// and with a newcomer among them, is admitted as if accepted one by one:
// each flooding source keeps its newest connections up to its pending
// cap (its older ones are closed, oldest first), the newcomer is
// admitted wherever it stands in the wave, and the listener's pool is
// made room in as before.
func TestFloodWaveInAcceptQueue(t *testing.T) {
	t.Parallel()
	lim := testLimits()
	lim.MaxPendingPerSource = 3 // MaxPending 8
	cases := []struct {
		name string
		lim  Limits
		srcs []string
		n    []int
		// keep is how many of each source's newest connections stay open.
		keep map[string]int
	}{
		{"newcomer in the middle of one source's wave", lim,
			[]string{"127.0.0.50", "127.0.0.60", "127.0.0.50"}, []int{10, 1, 10},
			map[string]int{"127.0.0.50": 3, "127.0.0.60": 1}},
		{"newcomer first", lim,
			[]string{"127.0.0.60", "127.0.0.50"}, []int{1, 20},
			map[string]int{"127.0.0.50": 3, "127.0.0.60": 1}},
		{"newcomer last", lim,
			[]string{"127.0.0.50", "127.0.0.60"}, []int{20, 1},
			map[string]int{"127.0.0.50": 3, "127.0.0.60": 1}},
		{"two flooding sources", lim,
			[]string{"127.0.0.50", "127.0.0.51", "127.0.0.50", "127.0.0.51", "127.0.0.60"}, []int{6, 6, 6, 6, 1},
			map[string]int{"127.0.0.50": 3, "127.0.0.51": 3, "127.0.0.60": 1}},
		{"within the cap nothing is closed", lim,
			[]string{"127.0.0.50", "127.0.0.60"}, []int{3, 3},
			map[string]int{"127.0.0.50": 3, "127.0.0.60": 3}},
		{"the wave fills the pool: the flood makes room", Limits{
			MaxPending: 4, MaxPendingPerSource: 4, MaxConns: 16, MaxConnsPerSource: 4,
			FirstByteTimeout: 10 * time.Second, HandshakeTimeout: 20 * time.Second},
			[]string{"127.0.0.50", "127.0.0.60"}, []int{10, 1},
			map[string]int{"127.0.0.50": 3, "127.0.0.60": 1}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var conns map[string][]net.Conn
			s := newQueuedServer(t, tc.lim, "127.0.0.1:0", func(s *server) { conns = s.wave(tc.srcs, tc.n) })
			want, total := 0, 0
			for _, k := range tc.keep {
				want += k
			}
			for _, n := range tc.n {
				total += n
			}
			// The newcomer is admitted; of the rest, what the wave kept
			// stays open, the older ones are closed.
			s.admittedUntil("127.0.0.60")
			for src, cs := range conns {
				keep := tc.keep[src]
				for i, c := range cs {
					older := i < len(cs)-keep
					if got := closedByServer(c, map[bool]time.Duration{true: time.Second, false: 50 * time.Millisecond}[older]); got != older {
						t.Errorf("%s's connection %d of %d: closed %v, want %v", src, i+1, len(cs), got, older)
					}
				}
			}
			// The closed ones may have been admitted before they were
			// evicted; the newest of each source are what is left.
			s.settle(Stats{Pending: want, Sources: len(tc.keep)})
			s.waitEvents(total - want)
			s.mu.Lock()
			defer s.mu.Unlock()
			if len(s.events) != total-want {
				t.Errorf("%d events, want %d (%+v)", len(s.events), total-want, s.events)
			}
			for _, e := range s.events {
				if e.Refused || e.Reason != SourcePending && e.Reason != PendingFull {
					t.Errorf("event %+v, want older pending connections closed", e)
				}
			}
		})
	}
	t.Run("IPv6 /64 wave", func(t *testing.T) {
		t.Parallel()
		var conns []net.Conn
		s := newQueuedServer(t, lim, "[::1]:0", func(s *server) { conns = s.wave([]string{"::1"}, []int{8})["::1"] })
		if s == nil {
			t.Skip("no IPv6 loopback")
		}
		s.admittedUntil("::1")
		for i, c := range conns {
			older := i < 5
			if got := closedByServer(c, map[bool]time.Duration{true: time.Second, false: 50 * time.Millisecond}[older]); got != older {
				t.Errorf("connection %d: closed %v, want %v", i+1, got, older)
			}
		}
		s.settle(Stats{Pending: 3, Sources: 1})
	})
}

// TestAwaitFirstByte: AwaitFirstByte returns once a byte can be read,
// whether it came before the wait or during it, and the byte is still
// there to read; at the peer's end of stream; and with an error when the
// controller closes the connection or the read deadline passes.
func TestAwaitFirstByte(t *testing.T) {
	t.Parallel()
	lim := testLimits()
	lim.FirstByteTimeout, lim.HandshakeTimeout = 300*time.Millisecond, time.Second
	s := newServer(t, lim)
	await := func(c net.Conn) chan error {
		done := make(chan error, 1)
		go func() { done <- AwaitFirstByte(c) }()
		return done
	}
	readsByte := func(c net.Conn, want byte) {
		t.Helper()
		b := make([]byte, 1)
		if _, err := io.ReadFull(c, b); err != nil || b[0] != want {
			t.Errorf("read %q, %v; want %q", b, err, want)
		}
	}
	for _, before := range []bool{true, false} {
		t.Run(map[bool]string{true: "byte sent before the wait", false: "byte sent during the wait"}[before], func(t *testing.T) {
			c := s.dial("127.0.0.50")
			sc := s.next()
			var done chan error
			if !before {
				done = await(sc)
			}
			time.Sleep(20 * time.Millisecond) // the wait starts, or the byte is in
			if _, err := c.Write([]byte{'a'}); err != nil {
				t.Fatal(err)
			}
			if before {
				time.Sleep(20 * time.Millisecond)
				done = await(sc)
			}
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			readsByte(sc, 'a')
		})
	}
	t.Run("peer closes", func(t *testing.T) {
		c := s.dial("127.0.0.50")
		sc := s.next()
		done := await(sc)
		c.Close()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if _, err := sc.Read(make([]byte, 1)); err != io.EOF {
			t.Errorf("read after the peer closed: %v, want EOF", err)
		}
	})
	t.Run("first-byte deadline closes it", func(t *testing.T) {
		s.dial("127.0.0.50")
		sc := s.next()
		if err := <-await(sc); !errors.Is(err, net.ErrClosed) {
			t.Errorf("err %v, want net.ErrClosed", err)
		}
	})
	t.Run("read deadline", func(t *testing.T) {
		s.dial("127.0.0.50")
		sc := s.next()
		_ = sc.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		if err := <-await(sc); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("err %v, want os.ErrDeadlineExceeded", err)
		}
	})
}

// TestRegression_SharedDeadlineTimer: with one timer for every pending
// connection's deadlines, each connection is still closed at its own:
// a silent newcomer at its first-byte deadline while an older one that
// has spoken waits for its handshake deadline, a silent one admitted
// before a speaking one, and the speaking one at its handshake deadline
// but not at its first-byte deadline.
func TestRegression_SharedDeadlineTimer(t *testing.T) {
	t.Parallel()
	lim := testLimits()
	lim.FirstByteTimeout, lim.HandshakeTimeout = 200*time.Millisecond, 3*time.Second
	s := newServer(t, lim)
	talker := s.dial("127.0.0.50")
	tc := s.next()
	go func() { _, _ = io.Copy(io.Discard, tc) }()
	if _, err := talker.Write([]byte{0x16}); err != nil {
		t.Fatal(err)
	}
	silentBefore := s.dial("127.0.0.51")
	s.next()
	// Past the talker's first-byte deadline: the timer now waits for its
	// handshake deadline, 3 s after its accept.
	time.Sleep(300 * time.Millisecond)
	silentAfter := s.dial("127.0.0.52")
	s.next()
	for _, c := range []struct {
		conn   net.Conn
		wait   time.Duration
		closed bool
		what   string
	}{
		{silentBefore, 100 * time.Millisecond, true, "a silent connection outlived its first-byte deadline"},
		{silentAfter, time.Second, true, "a silent connection admitted after a speaking one waited for that one's handshake deadline"},
		{talker, 100 * time.Millisecond, false, "the connection that spoke was closed before its handshake deadline"},
		{talker, 4 * time.Second, true, "the connection that spoke outlived its handshake deadline"},
	} {
		if closedByServer(c.conn, c.wait) != c.closed {
			t.Error(c.what)
		}
	}
	s.waitEvents(3)
	s.mu.Lock()
	defer s.mu.Unlock()
	want := []Reason{FirstByte, FirstByte, Handshake}
	if len(s.events) != 3 {
		t.Fatalf("events %+v, want %v", s.events, want)
	}
	for i, e := range s.events {
		if e.Reason != want[i] {
			t.Errorf("event %d: %+v, want %s", i, e, want[i])
		}
	}
	s.settle(Stats{})
}
