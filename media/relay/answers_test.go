package relay

import (
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/pion/stun/v4"

	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/media/relay/turnwire"
)

// requestedFamily is REQUESTED-ADDRESS-FAMILY (RFC 8656 §18.11).
type requestedFamily byte

func (f requestedFamily) AddTo(m *stun.Message) error {
	m.Add(stun.AttrRequestedAddressFamily, []byte{byte(f), 0, 0, 0})
	return nil
}

// exchange sends every request from a fresh UDP socket on src (an
// address in 127.0.0.0/8 or ::1) to server and returns the answers.
func exchange(t *testing.T, src string, server net.Addr, reqs ...[]byte) [][]byte {
	t.Helper()
	return exchangeAll(t, []string{src}, server, reqs...)[0]
}

// exchangeAll sends reqs from a fresh UDP socket on each of srcs, waits
// 300 ms, then collects what each socket has received.
func exchangeAll(t *testing.T, srcs []string, server net.Addr, reqs ...[]byte) [][][]byte {
	t.Helper()
	return exchangeAllWait(t, srcs, server, 300*time.Millisecond, reqs...)
}

// exchangeAllWait is exchangeAll waiting wait before it collects.
func exchangeAllWait(t *testing.T, srcs []string, server net.Addr, wait time.Duration, reqs ...[]byte) [][][]byte {
	t.Helper()
	pcs := make([]net.PacketConn, len(srcs))
	for i, src := range srcs {
		pc, err := net.ListenPacket("udp", net.JoinHostPort(src, "0"))
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		pcs[i] = pc
		for _, r := range reqs {
			if _, err := pc.WriteTo(r, server); err != nil {
				t.Fatal(err)
			}
		}
	}
	time.Sleep(wait)
	out := make([][][]byte, len(srcs))
	buf := make([]byte, 2048)
	for i, pc := range pcs {
		_ = pc.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		for {
			n, _, err := pc.ReadFrom(buf)
			if err != nil {
				break
			}
			out[i] = append(out[i], append([]byte(nil), buf[:n]...))
		}
	}
	return out
}

// sources are n addresses of 127.0.x.0/24, from .1 up.
func sources(x byte, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = netip.AddrFrom4([4]byte{127, 0, x, byte(1 + i)}).String()
	}
	return out
}

func bindings(n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = stun.MustBuild(stun.TransactionID, stun.BindingRequest).Raw
	}
	return out
}

// TestRegression_RelayAnswers: the relay's STUN/TURN answers, one fault
// per row: stale credentials get 401 with a fresh nonce (not 403), a
// family the relay does not have gets 440, the allocation rate is per
// participant, the per-source limit on unauthenticated answers survives
// source churn, and no unauthenticated answer amplifies.
func TestRegression_RelayAnswers(t *testing.T) {
	t.Parallel()
	v6only := func(c *config.Relay) { c.RelayAddresses = []netip.Addr{netip.MustParseAddr("::1")} }
	for _, tc := range []struct {
		name string
		mod  func(*config.Relay)
		run  func(t *testing.T, f *fixture)
	}{
		{"credential of an ended visit gets 401 with a fresh nonce", nil, func(t *testing.T, f *fixture) {
			f.s.Admit("v", "p")
			cred := f.s.Credential("v", "p")
			f.s.EndVisit("v")
			staleCredential(t, f, cred)
		}},
		{"credential of a removed participant gets 401 with a fresh nonce, until admitted again", nil, func(t *testing.T, f *fixture) {
			f.s.Admit("v", "p")
			f.s.Admit("v", "q")
			cred := f.s.Credential("v", "p")
			f.s.Remove("v", "p")
			staleCredential(t, f, cred)
			f.s.Admit("v", "p")
			if _, err := f.clientWith(t, cred.Username, cred.Password).Allocate(turnwire.UDP); err != nil {
				t.Fatalf("Allocate once admitted again: %v", err)
			}
		}},
		{"credential of a participant never admitted still gets 403", nil, func(t *testing.T, f *fixture) {
			if _, err := f.client(t, "v", "stranger").Allocate(turnwire.UDP); turnwire.Code(err) != 403 {
				t.Fatalf("never admitted: %v, want 403", err)
			}
		}},
		{"IPv6 asked of an IPv4-only relay gets 440", nil, func(t *testing.T, f *fixture) {
			wrongFamily(t, f, requestedFamily(familyIPv6))
		}},
		{"an unknown family gets 440", nil, func(t *testing.T, f *fixture) {
			wrongFamily(t, f, requestedFamily(0x03))
		}},
		{"IPv4 asked of an IPv6-only relay gets 440, explicitly or by default", v6only, func(t *testing.T, f *fixture) {
			wrongFamily(t, f, requestedFamily(familyIPv4))
			wrongFamily(t, f)
			f.s.Admit("v", "p")
			if _, err := f.client(t, "v", "p").Allocate(turnwire.UDP, requestedFamily(familyIPv6)); err != nil {
				t.Fatalf("IPv6 of an IPv6 relay: %v", err)
			}
		}},
		{"a fresh credential does not reset the allocation rate", func(c *config.Relay) {
			c.AllocationRate = config.RateLimit{Rate: 0.001, Burst: 2}
			c.MaxAllocationsPerParticipant = 10
		}, func(t *testing.T, f *fixture) {
			f.s.Admit("v", "p")
			var codes []int
			for range 4 {
				cred := f.s.Credential("v", "p")
				_, err := f.clientWith(t, cred.Username, cred.Password).Allocate(turnwire.UDP)
				codes = append(codes, turnwire.Code(err))
				f.clock.shift(time.Second) // the next credential is another username
			}
			if codes[0] != 0 || codes[1] != 0 || codes[2] != 486 || codes[3] != 486 {
				t.Fatalf("codes %v, want [0 0 486 486]", codes)
			}
			f.s.Admit("v", "other")
			if _, err := f.client(t, "v", "other").Allocate(turnwire.UDP); err != nil {
				t.Fatalf("another participant of the visit: %v", err)
			}
		}},
		{"churning through more sources than the table holds does not reset a source's limit", func(c *config.Relay) {
			c.UnauthenticatedRate = config.RateLimit{Rate: 0.001, Burst: 3}
			c.MaxSources = 8
		}, func(t *testing.T, f *fixture) {
			pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer pc.Close()
			victim := func() int {
				for _, b := range bindings(10) {
					_, _ = pc.WriteTo(b, f.addr)
				}
				n := 0
				buf := make([]byte, 2048)
				for {
					_ = pc.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
					if _, _, err := pc.ReadFrom(buf); err != nil {
						return n
					}
					n++
				}
			}
			if n := victim(); n != 3 {
				t.Fatalf("first round: %d answers, want the burst 3", n)
			}
			exchangeAll(t, append(sources(2, 20), sources(3, 20)...), f.addr, bindings(1)...)
			if n := victim(); n != 0 {
				t.Fatalf("after 40 other sources: %d answers, want 0 (the limit was reset)", n)
			}
		}},
		{"new sources beyond a full table share their /24's bucket", func(c *config.Relay) {
			c.UnauthenticatedRate = config.RateLimit{Rate: 0.001, Burst: 3}
			c.MaxSources = 4
		}, func(t *testing.T, f *fixture) {
			exchangeAll(t, sources(4, 4), f.addr, bindings(2)...) // fill the table with sources that owe
			got := 0
			for _, a := range exchangeAll(t, sources(5, 30), f.addr, bindings(2)...) {
				got += len(a)
			}
			if want := aggregateShare * 3; got != want {
				t.Fatalf("30 new sources of one /24 got %d answers, want its bucket's burst %d", got, want)
			}
			// Another /24 has a bucket of its own.
			if n := len(exchange(t, "127.0.6.1", f.addr, bindings(2)...)); n != 2 {
				t.Fatalf("a source of another /24 got %d answers, want 2", n)
			}
		}},
		{"no unauthenticated answer is more than 4 times its request", nil, func(t *testing.T, f *fixture) {
			noAmplification(t, "127.0.0.1", f.addr)
		}},
		{"no unauthenticated answer is more than 4 times its request, over IPv6", func(c *config.Relay) { c.Listen = "[::1]:0" }, func(t *testing.T, f *fixture) {
			noAmplification(t, "::1", f.s.LocalAddr())
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(t, newFixture(t, tc.mod))
		})
	}
}

// staleCredential checks that an Allocate with cred is challenged like a
// stale credential: 401 with REALM and a NONCE it has not used.
func staleCredential(t *testing.T, f *fixture, cred Credential) {
	t.Helper()
	c := f.clientWith(t, cred.Username, cred.Password)
	_, err := c.Allocate(turnwire.UDP)
	var e *turnwire.ErrorResponse
	if !errors.As(err, &e) || e.Code != 401 {
		t.Fatalf("Allocate with a stale credential: %v, want 401", err)
	}
	if e.Realm != "telegate" || e.Nonce == "" || e.Nonce == c.Nonce {
		t.Fatalf("401 with realm %q and nonce %q (the client used %q), want the realm and a fresh nonce", e.Realm, e.Nonce, c.Nonce)
	}
	if !f.audit.find("denied", "revoked") {
		t.Error("no denied/revoked audit event")
	}
}

// wrongFamily checks that an admitted participant's Allocate with attrs
// gets 440 Address Family not Supported.
func wrongFamily(t *testing.T, f *fixture, attrs ...stun.Setter) {
	t.Helper()
	f.s.Admit("v", "p")
	_, err := f.client(t, "v", "p").Allocate(turnwire.UDP, attrs...)
	if turnwire.Code(err) != 440 {
		t.Fatalf("Allocate %v: %v, want 440", attrs, err)
	}
}

// noAmplification sends every kind of request without credentials from
// src and checks each answer against the size of its request; a bare
// Allocate (20 bytes, whose challenge would be more than 4 times that)
// gets none.
func noAmplification(t *testing.T, src string, server net.Addr) {
	t.Helper()
	req := func(m stun.Method, attrs ...stun.Setter) []byte {
		return stun.MustBuild(append([]stun.Setter{stun.TransactionID, stun.NewType(m, stun.ClassRequest)}, attrs...)...).Raw
	}
	for _, r := range []struct {
		name     string
		raw      []byte
		answered bool
	}{
		{"Binding", req(stun.MethodBinding), true},
		{"Binding with FINGERPRINT", req(stun.MethodBinding, stun.Fingerprint), true},
		{"bare Allocate", req(stun.MethodAllocate), false},
		{"Allocate with REQUESTED-TRANSPORT", req(stun.MethodAllocate, turnwire.UDP), true},
		{"bare Refresh", req(stun.MethodRefresh), false},
		{"Refresh with LIFETIME", req(stun.MethodRefresh, turnwire.Lifetime(time.Minute)), true},
		{"CreatePermission", req(stun.MethodCreatePermission, turnwire.PeerAddress(netip.MustParseAddrPort("127.0.0.1:9"))), true},
		{"Allocate with a malformed USERNAME", req(stun.MethodAllocate, turnwire.UDP, stun.NewUsername("x"), stun.NewShortTermIntegrity("x")), true},
	} {
		got := exchange(t, src, server, r.raw)
		if r.answered && len(got) == 0 {
			// A loaded machine may answer later than the usual wait:
			// ask once more, waiting longer, before calling it unanswered.
			got = exchangeAllWait(t, []string{src}, server, 2*time.Second, r.raw)[0]
		}
		if len(got) > 1 || (len(got) == 1) != r.answered {
			t.Errorf("%s (%d bytes): %d answers, want answered=%v", r.name, len(r.raw), len(got), r.answered)
		}
		for _, a := range got {
			if len(a) > maxAnswerFactor*len(r.raw) {
				t.Errorf("%s: a %d-byte answer to a %d-byte request", r.name, len(a), len(r.raw))
			}
		}
	}
}
