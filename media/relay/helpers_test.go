package relay

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/telegate/telegate/audit"
	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/media/relay/turnwire"
)

// clock is a settable test clock.
type clock struct{ off atomic.Int64 }

func (c *clock) now() time.Time        { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *clock) shift(d time.Duration) { c.off.Add(int64(d)) }

// auditLog records audit events.
type auditLog struct {
	mu sync.Mutex
	ev []audit.Event
}

func (a *auditLog) Record(_ context.Context, e audit.Event) {
	a.mu.Lock()
	a.ev = append(a.ev, e)
	a.mu.Unlock()
}

func (a *auditLog) find(event, reason string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, e := range a.ev {
		if e.Attrs["event"] == event && (reason == "" || e.Reason == reason) {
			return true
		}
	}
	return false
}

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type fixture struct {
	s     *Server
	addr  *net.UDPAddr
	clock *clock
	audit *auditLog
	logs  *syncBuffer
	reg   *prometheus.Registry
}

// newFixture starts a relay on 127.0.0.1 with test-friendly limits; mod
// adjusts the configuration first.
func newFixture(t testing.TB, mod func(*config.Relay), opts ...func(*Server)) *fixture {
	t.Helper()
	cfg := config.Relay{
		Enabled:             true,
		Listen:              "127.0.0.1:0",
		UDPSockets:          1,
		RelayAddresses:      []netip.Addr{netip.MustParseAddr("127.0.0.1")},
		PortMin:             20000,
		PortMax:             29999,
		Secrets:             []string{"0123456789abcdef-test-secret"},
		AllocationRate:      config.RateLimit{Rate: 1000, Burst: 1000},
		UnauthenticatedRate: config.RateLimit{Rate: 1000, Burst: 1000},
	}
	if mod != nil {
		mod(&cfg)
	}
	f := &fixture{clock: &clock{}, audit: &auditLog{}, logs: &syncBuffer{}, reg: prometheus.NewRegistry()}
	s, err := New(Options{
		Config:   cfg,
		Audit:    f.audit,
		Logger:   slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Registry: f.reg,
		Now:      f.clock.now,
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range opts {
		o(s)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	f.s = s
	f.addr = s.LocalAddr().(*net.UDPAddr)
	f.addr = &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: f.addr.Port}
	return f
}

// client returns a turnwire client on a fresh loopback socket with the
// credential of (visit, participant).
func (f *fixture) client(t testing.TB, visit, part string) *turnwire.Client {
	t.Helper()
	cred := f.s.Credential(visit, part)
	return f.clientWith(t, cred.Username, cred.Password)
}

func (f *fixture) clientWith(t testing.TB, user, pass string) *turnwire.Client {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	c := turnwire.NewUDP(pc, f.addr, user, pass)
	c.Timeout = time.Second
	return c
}

// allocate admits (visit, part) and returns a client with an allocation.
func (f *fixture) allocate(t testing.TB, visit, part string) (*turnwire.Client, netip.AddrPort) {
	t.Helper()
	f.s.Admit(visit, part)
	c := f.client(t, visit, part)
	relayed, err := c.Allocate(turnwire.UDP)
	if err != nil {
		t.Fatalf("allocate %s/%s: %v", visit, part, err)
	}
	return c, relayed
}

// echo is a UDP echo server on 127.0.0.1 that counts datagrams.
type echo struct {
	pc net.PacketConn
	n  atomic.Int64
}

func newEcho(t *testing.T, ip string) *echo {
	t.Helper()
	pc, err := net.ListenPacket("udp4", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	e := &echo{pc: pc}
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			e.n.Add(1)
			_, _ = pc.WriteTo(buf[:n], from)
		}
	}()
	t.Cleanup(func() { _ = pc.Close() })
	return e
}

func (e *echo) addr() netip.AddrPort {
	return e.pc.LocalAddr().(*net.UDPAddr).AddrPort()
}

// readData reads ChannelData or Data indications arriving on c until
// deadline and returns their payloads.
func readData(c *turnwire.Client, d time.Duration) [][]byte {
	var out [][]byte
	buf := make([]byte, 2048)
	deadline := time.Now().Add(d)
	for {
		n, err := c.Read(buf, deadline)
		if err != nil {
			return out
		}
		if _, p, ok := turnwire.ParseChannelData(buf[:n]); ok {
			out = append(out, append([]byte(nil), p...))
		} else if _, p, ok := turnwire.ParseData(buf[:n]); ok {
			out = append(out, append([]byte(nil), p...))
		}
	}
}
