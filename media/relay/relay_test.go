package relay

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"log/slog"
	"math/big"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/stun/v4"

	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/media/relay/turnwire"
)

// TestRelayBetweenParticipants: two admitted participants of one visit
// relay data both ways, by Send indication and by channel.
func TestRelayBetweenParticipants(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	a, ra := f.allocate(t, "visit1", "alice")
	b, rb := f.allocate(t, "visit1", "bob")
	if err := a.CreatePermission(rb); err != nil {
		t.Fatalf("alice → bob permission: %v", err)
	}
	if err := b.CreatePermission(ra); err != nil {
		t.Fatalf("bob → alice permission: %v", err)
	}
	if err := a.Send(rb, []byte("hello bob")); err != nil {
		t.Fatal(err)
	}
	got := readData(b, 300*time.Millisecond)
	if len(got) != 1 || string(got[0]) != "hello bob" {
		t.Fatalf("bob got %q, want one \"hello bob\"", got)
	}
	if err := b.ChannelBind(0x4001, ra); err != nil {
		t.Fatalf("bob channel bind: %v", err)
	}
	if err := b.Write(turnwire.ChannelData(nil, 0x4001, []byte("hi alice"))); err != nil {
		t.Fatal(err)
	}
	got = readData(a, 300*time.Millisecond)
	if len(got) != 1 || string(got[0]) != "hi alice" {
		t.Fatalf("alice got %q, want one \"hi alice\"", got)
	}
	if !f.audit.find("created", "") {
		t.Error("no relay.allocation created audit event")
	}
}

func TestTCPAllocationRefused(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	f.s.Admit("v", "p")
	c := f.client(t, "v", "p")
	_, err := c.Allocate(turnwire.TCP)
	if turnwire.Code(err) != 442 {
		t.Fatalf("TCP allocation: got %v, want 442 Unsupported Transport Protocol", err)
	}
	var e *turnwire.ErrorResponse
	if !errorsAs(err, &e) || !e.Authenticated {
		t.Error("442 answer lacks a valid MESSAGE-INTEGRITY")
	}
	if !f.audit.find("denied", "unsupported-transport") {
		t.Error("no denied audit event")
	}
}

func TestOAuthAccessTokenRefused(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	f.s.Admit("v", "p")
	c := f.client(t, "v", "p")
	_, err := c.Allocate(turnwire.UDP, stun.RawAttribute{Type: 0x001B, Value: []byte("token-bytes")})
	if turnwire.Code(err) != 401 {
		t.Fatalf("Allocate with ACCESS-TOKEN: got %v, want 401", err)
	}
}

func TestQuotas(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		mod    func(*config.Relay)
		parts  []string // participant of each allocation, in order
		wantOK int
	}{
		{"per participant", nil, []string{"a", "a", "a", "a"}, 3},
		{"per visit", func(c *config.Relay) { c.MaxAllocationsPerVisit = 4 }, []string{"a", "a", "b", "b", "c"}, 4},
		{"total", func(c *config.Relay) { c.MaxAllocations = 2 }, []string{"a", "b", "c"}, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, tc.mod)
			ok := 0
			for i, p := range tc.parts {
				f.s.Admit("v", p)
				_, err := f.client(t, "v", p).Allocate(turnwire.UDP)
				switch {
				case err == nil:
					ok++
				case turnwire.Code(err) == 486:
					if i < tc.wantOK {
						t.Fatalf("allocation %d refused early: %v", i, err)
					}
				default:
					t.Fatalf("allocation %d: %v", i, err)
				}
			}
			if ok != tc.wantOK {
				t.Fatalf("%d allocations succeeded, want %d", ok, tc.wantOK)
			}
		})
	}
}

// TestQuotaUnderConcurrentBurst: many goroutines allocate at once with one
// credential; exactly the cap succeeds, the rest get 486.
func TestQuotaUnderConcurrentBurst(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(c *config.Relay) { c.UDPSockets = 2 })
	f.s.Admit("v", "p")
	const n = 24
	clients := make([]*turnwire.Client, n)
	for i := range clients {
		clients[i] = f.client(t, "v", "p")
		clients[i].Timeout = 3 * time.Second
	}
	var (
		wg        sync.WaitGroup
		mu        sync.Mutex
		ok, quota int
		other     []error
	)
	start := make(chan struct{})
	for _, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, err := c.Allocate(turnwire.UDP)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				ok++
			case turnwire.Code(err) == 486:
				quota++
			default:
				other = append(other, err)
			}
		}()
	}
	close(start)
	wg.Wait()
	if ok != 3 || quota != n-3 || len(other) > 0 {
		t.Fatalf("burst: %d created, %d quota, other %v; want 3 and %d", ok, quota, other, n-3)
	}
}

func TestAllocationRatePerParticipant(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(c *config.Relay) {
		c.AllocationRate = config.RateLimit{Rate: 0.001, Burst: 2}
		c.MaxAllocationsPerParticipant = 10
	})
	f.s.Admit("v", "p")
	cred := f.s.Credential("v", "p")
	var codes []int
	for range 3 {
		_, err := f.clientWith(t, cred.Username, cred.Password).Allocate(turnwire.UDP)
		codes = append(codes, turnwire.Code(err))
	}
	if codes[0] != 0 || codes[1] != 0 || codes[2] != 486 {
		t.Fatalf("codes %v, want [0 0 486]", codes)
	}
}

func TestExpiredCredential(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	f.s.Admit("v", "p")
	cred := f.s.Credential("v", "p")
	// An allocation made before expiry outlives the credential.
	early := f.clientWith(t, cred.Username, cred.Password)
	if _, err := early.Allocate(turnwire.UDP); err != nil {
		t.Fatal(err)
	}
	f.clock.shift(11 * time.Minute)
	_, err := f.clientWith(t, cred.Username, cred.Password).Allocate(turnwire.UDP)
	if turnwire.Code(err) != 401 {
		t.Fatalf("Allocate with an expired credential: %v, want 401", err)
	}
	if !f.audit.find("denied", "expired") {
		t.Error("no denied/expired audit event")
	}
	if err := early.Refresh(5 * time.Minute); err != nil {
		t.Fatalf("refresh of a live allocation after credential expiry: %v", err)
	}
}

func TestNotAdmittedRefused(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	_, err := f.client(t, "v", "stranger").Allocate(turnwire.UDP)
	if turnwire.Code(err) != 403 {
		t.Fatalf("not admitted: %v, want 403", err)
	}
	f.s.Admit("v", "p")
	_, err = f.clientWith(t, "4102444800:v:p", "not-the-password").Allocate(turnwire.UDP)
	if turnwire.Code(err) != 401 {
		t.Fatalf("wrong password: %v, want 401", err)
	}
}

// TestRemoveClosesAllocations: Remove and EndVisit close allocations within
// a second and refuse new ones (401: the credential is stale).
func TestRemoveClosesAllocations(t *testing.T) {
	t.Parallel()
	for _, end := range []bool{false, true} {
		f := newFixture(t, nil)
		a, ra := f.allocate(t, "v", "alice")
		b, rb := f.allocate(t, "v", "bob")
		if err := a.CreatePermission(rb); err != nil {
			t.Fatal(err)
		}
		if err := b.CreatePermission(ra); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if end {
			f.s.EndVisit("v")
		} else {
			f.s.Remove("v", "bob")
		}
		deadline := start.Add(time.Second)
		for {
			err := b.Refresh(5 * time.Minute)
			if turnwire.Code(err) == 437 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("end=%v: bob's allocation still alive after 1s: %v", end, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
		if err := a.Send(rb, []byte("after removal")); err != nil {
			t.Fatal(err)
		}
		if got := readData(b, 200*time.Millisecond); len(got) != 0 {
			t.Fatalf("end=%v: data reached a removed participant: %q", end, got)
		}
		_, err := f.client(t, "v", "bob").Allocate(turnwire.UDP)
		if turnwire.Code(err) != 401 {
			t.Fatalf("end=%v: new allocation after revocation: %v, want 401", end, err)
		}
		if !f.audit.find("closed", "") {
			t.Errorf("end=%v: no closed audit event", end)
		}
	}
}

// TestHijackFromAnotherFiveTuple: requests on someone else's allocation
// from another 5-tuple get 437; another username on the 5-tuple gets 441;
// ChannelData from another 5-tuple is not relayed.
func TestHijackFromAnotherFiveTuple(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	a, ra := f.allocate(t, "v", "alice")
	b, rb := f.allocate(t, "v", "bob")
	if err := b.CreatePermission(ra); err != nil {
		t.Fatal(err)
	}
	if err := a.ChannelBind(0x4002, rb); err != nil {
		t.Fatal(err)
	}
	credA := f.s.Credential("v", "alice")
	thief := f.clientWith(t, credA.Username, credA.Password)
	if err := thief.Refresh(10 * time.Minute); turnwire.Code(err) != 437 {
		t.Errorf("Refresh from another 5-tuple: %v, want 437", err)
	}
	if err := thief.CreatePermission(rb); turnwire.Code(err) != 437 {
		t.Errorf("CreatePermission from another 5-tuple: %v, want 437", err)
	}
	if err := thief.ChannelBind(0x4003, rb); turnwire.Code(err) != 437 {
		t.Errorf("ChannelBind from another 5-tuple: %v, want 437", err)
	}
	_ = thief.Write(turnwire.ChannelData(nil, 0x4002, []byte("forged")))
	if got := readData(b, 200*time.Millisecond); len(got) != 0 {
		t.Errorf("ChannelData from another 5-tuple was relayed: %q", got)
	}
	// Bob's credential on Alice's 5-tuple.
	credB := f.s.Credential("v", "bob")
	a.Username, a.Password = credB.Username, credB.Password
	if err := a.Refresh(10 * time.Minute); turnwire.Code(err) != 441 {
		t.Errorf("Refresh with another username: %v, want 441", err)
	}
	if err := a.CreatePermission(rb); turnwire.Code(err) != 441 {
		t.Errorf("CreatePermission with another username: %v, want 441", err)
	}
}

// TestRelayPortsReturnToPool: ports go back to the pool when allocations
// end, by Refresh 0, by revocation and by shutdown.
func TestRelayPortsReturnToPool(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	start := f.s.relay4.pool.len()
	a, _ := f.allocate(t, "v", "a")
	f.allocate(t, "v", "b")
	f.allocate(t, "v", "b")
	if got := f.s.relay4.pool.len(); got != start-3 {
		t.Fatalf("free ports %d, want %d", got, start-3)
	}
	if err := a.Refresh(0); err != nil {
		t.Fatal(err)
	}
	f.s.Remove("v", "b")
	deadline := time.Now().Add(time.Second)
	for f.s.relay4.pool.len() != start && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := f.s.relay4.pool.len(); got != start {
		t.Fatalf("free ports %d after allocations ended, want %d", got, start)
	}
	f.s.mu.Lock()
	total := f.s.total
	f.s.mu.Unlock()
	if total != 0 {
		t.Fatalf("quota count %d after allocations ended, want 0", total)
	}
}

// TestNoncesNeverRepeat: 10 000 challenges carry 10 000 distinct nonces,
// and no answer carries SOFTWARE.
func TestNoncesNeverRepeat(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(c *config.Relay) { c.UnauthenticatedRate = config.RateLimit{Rate: 1e6, Burst: 1e6} })
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	seen := make(map[string]bool, 10000)
	buf := make([]byte, 2048)
	const total, batch = 10000, 50
	for sent := 0; sent < total; sent += batch {
		for range batch {
			m := stun.MustBuild(stun.TransactionID, stun.NewType(stun.MethodAllocate, stun.ClassRequest), turnwire.UDP)
			if _, err := pc.WriteTo(m.Raw, f.addr); err != nil {
				t.Fatal(err)
			}
		}
		for got := 0; got < batch; got++ {
			_ = pc.SetReadDeadline(time.Now().Add(2 * time.Second))
			n, _, err := pc.ReadFrom(buf)
			if err != nil {
				t.Fatalf("after %d challenges: %v", len(seen), err)
			}
			m := &stun.Message{Raw: append([]byte(nil), buf[:n]...)}
			if err := m.Decode(); err != nil {
				t.Fatal(err)
			}
			if m.Contains(stun.AttrSoftware) {
				t.Fatal("answer carries SOFTWARE")
			}
			var nonce stun.Nonce
			if err := nonce.GetFrom(m); err != nil {
				t.Fatal("challenge without NONCE")
			}
			if seen[nonce.String()] {
				t.Fatalf("nonce repeated after %d challenges", len(seen))
			}
			seen[nonce.String()] = true
		}
	}
	if len(seen) != total {
		t.Fatalf("%d nonces, want %d", len(seen), total)
	}
}

// TestUnauthenticatedAnswersRateLimited: one source gets at most the burst
// of answers without MESSAGE-INTEGRITY (no reflection amplifier).
func TestUnauthenticatedAnswersRateLimited(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(c *config.Relay) { c.UnauthenticatedRate = config.RateLimit{Rate: 1, Burst: 5} })
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	for i := range 60 {
		var m *stun.Message
		if i%2 == 0 {
			m = stun.MustBuild(stun.TransactionID, stun.BindingRequest)
		} else {
			m = stun.MustBuild(stun.TransactionID, stun.NewType(stun.MethodAllocate, stun.ClassRequest), turnwire.UDP)
		}
		_, _ = pc.WriteTo(m.Raw, f.addr)
	}
	got := 0
	buf := make([]byte, 2048)
	for {
		_ = pc.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		if _, _, err := pc.ReadFrom(buf); err != nil {
			break
		}
		got++
	}
	if got < 1 || got > 7 {
		t.Fatalf("%d answers to 60 unauthenticated requests, want 1..7", got)
	}
}

// TestRegressionForgedIntegrityNotResigned: a request with a valid nonce
// but a MESSAGE-INTEGRITY made with the wrong key must be refused, never
// re-signed and passed on.
func TestRegressionForgedIntegrityNotResigned(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	f.s.Admit("v", "p")
	cred := f.s.Credential("v", "p")
	c := f.clientWith(t, cred.Username, "wrong password")
	_, err := c.Allocate(turnwire.UDP)
	if turnwire.Code(err) != 401 {
		t.Fatalf("forged integrity: %v, want 401", err)
	}
	if f.s.turn.AllocationCount() != 0 {
		t.Fatal("an allocation was made with a forged MESSAGE-INTEGRITY")
	}
}

// TestRegressionAttributesAfterIntegrityIgnored: an XOR-PEER-ADDRESS
// appended after MESSAGE-INTEGRITY is not authenticated and must not
// become a permission.
func TestRegressionAttributesAfterIntegrityIgnored(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	a, _ := f.allocate(t, "v", "alice")
	_, rb := f.allocate(t, "v", "bob")
	e := newEcho(t, "127.0.0.1")
	m := stun.MustBuild(stun.TransactionID, stun.NewType(stun.MethodCreatePermission, stun.ClassRequest),
		turnwire.PeerAddress(rb), stun.NewUsername(a.Username), stun.NewRealm(a.Realm), stun.NewNonce(a.Nonce), a.Key())
	m.Add(stun.AttrXORPeerAddress, xorPeer(m, e.addr()))
	m.WriteLength()
	if err := a.Write(m.Raw); err != nil {
		t.Fatal(err)
	}
	readData(a, 200*time.Millisecond)
	_ = a.Send(e.addr(), []byte("smuggled"))
	time.Sleep(100 * time.Millisecond)
	if n := e.n.Load(); n != 0 {
		t.Fatalf("echo received %d datagrams", n)
	}
}

func xorPeer(m *stun.Message, ap netip.AddrPort) []byte {
	tmp := &stun.Message{TransactionID: m.TransactionID}
	tmp.WriteHeader()
	_ = turnwire.PeerAddress(ap).AddTo(tmp)
	v, _ := tmp.Get(stun.AttrXORPeerAddress)
	return v
}

// TestTURNOverTLS: a TLS connection handed to ServeTLSConn allocates and
// relays; closing it closes the allocation.
func TestTURNOverTLS(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", selfSigned(t))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go f.s.ServeTLSConn(c)
		}
	}()
	conn, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // test server
	if err != nil {
		t.Fatal(err)
	}
	f.s.Admit("v", "alice")
	cred := f.s.Credential("v", "alice")
	a := turnwire.NewStream(conn, cred.Username, cred.Password)
	ra, err := a.Allocate(turnwire.UDP)
	if err != nil {
		t.Fatalf("allocate over TLS: %v", err)
	}
	b, rb := f.allocate(t, "v", "bob")
	if err := a.CreatePermission(rb); err != nil {
		t.Fatal(err)
	}
	if err := b.CreatePermission(ra); err != nil {
		t.Fatal(err)
	}
	if err := a.ChannelBind(0x4000, rb); err != nil {
		t.Fatal(err)
	}
	if err := a.Write(turnwire.ChannelData(nil, 0x4000, []byte("odd length!"))); err != nil {
		t.Fatal(err)
	}
	if got := readData(b, 300*time.Millisecond); len(got) != 1 || string(got[0]) != "odd length!" {
		t.Fatalf("bob got %q", got)
	}
	if err := b.Send(ra, []byte("back over tls")); err != nil {
		t.Fatal(err)
	}
	if got := readData(a, 300*time.Millisecond); len(got) != 1 || string(got[0]) != "back over tls" {
		t.Fatalf("alice got %q", got)
	}
	_ = conn.Close()
	deadline := time.Now().Add(time.Second)
	for f.s.turn.AllocationCount() != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("%d allocations after the TLS connection closed, want 1", f.s.turn.AllocationCount())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func selfSigned(t testing.TB) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "relay.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, MinVersion: tls.VersionTLS12}
}

// TestLogsCarryNoAddresses: nothing the relay logs names a client or peer
// IP address.
func TestLogsCarryNoAddresses(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	a, _ := f.allocate(t, "v", "alice")
	_ = a.CreatePermission(netip.MustParseAddrPort("127.0.0.1:9"))
	_, _ = f.client(t, "v", "nobody").Allocate(turnwire.UDP)
	f.s.Remove("v", "alice")
	time.Sleep(50 * time.Millisecond)
	for _, line := range strings.Split(f.logs.String(), "\n") {
		if strings.Contains(line, `msg="relay listening"`) {
			continue // the relay's own listening address
		}
		if strings.Contains(line, "127.0.0.1") {
			t.Fatalf("log line names an address: %s", line)
		}
	}
}

func TestMetricsExposed(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	a, ra := f.allocate(t, "v", "alice")
	b, rb := f.allocate(t, "v", "bob")
	_ = a.CreatePermission(rb)
	_ = b.CreatePermission(ra)
	_ = a.Send(rb, []byte("x"))
	readData(b, 100*time.Millisecond)
	_ = a.CreatePermission(netip.MustParseAddrPort("10.0.0.1:9"))
	mfs, err := f.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{
		"telegate_media_relay_allocations_active":       false,
		"telegate_media_relay_allocations_total":        false,
		"telegate_media_relay_permission_denials_total": false,
		"telegate_media_relay_packets_total":            false,
		"telegate_media_relay_bytes_total":              false,
	}
	for _, mf := range mfs {
		if _, ok := want[mf.GetName()]; ok {
			want[mf.GetName()] = true
		}
		if mf.GetName() == "telegate_media_relay_allocations_active" && mf.GetMetric()[0].GetGauge().GetValue() != 2 {
			t.Errorf("allocations_active %v, want 2", mf.GetMetric()[0].GetGauge().GetValue())
		}
	}
	for k, ok := range want {
		if !ok {
			t.Errorf("metric %s missing", k)
		}
	}
}

func TestCredentialAndICEURLs(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(c *config.Relay) { c.UDPPort = 3478 })
	c := f.s.Credential("visit-1", "p_2")
	u, err := ParseUsername(c.Username)
	if err != nil || u.Visit != "visit-1" || u.Participant != "p_2" || !u.Expires.Equal(c.Expires) {
		t.Fatalf("credential %+v parses to %+v, %v", c, u, err)
	}
	if d := time.Until(c.Expires); d < 9*time.Minute || d > 10*time.Minute+time.Second {
		t.Errorf("expires in %v, want about 10m", d)
	}
	if bad := f.s.Credential("a:b", "p"); bad != (Credential{}) {
		t.Errorf("credential for an invalid id: %+v", bad)
	}
	for host, want := range map[string][]string{
		"gw.example":     {"turn:gw.example:3478?transport=udp", "turns:gw.example:443?transport=tcp"},
		"gw.example:443": {"turn:gw.example:3478?transport=udp", "turns:gw.example:443?transport=tcp"},
		"2001:db8::1":    {"turn:[2001:db8::1]:3478?transport=udp", "turns:[2001:db8::1]:443?transport=tcp"},
	} {
		if got := f.s.ICEURLs(host); strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("ICEURLs(%q) = %v, want %v", host, got, want)
		}
	}
}

// TestPasswordMatchesTURNREST checks the password against a vector made
// with Python's hmac module: base64(HMAC-SHA1("secret", "1700000000:v:p")).
func TestPasswordMatchesTURNREST(t *testing.T) {
	t.Parallel()
	if got := Password([]byte("secret"), "1700000000:v:p"); got != passwordVector {
		t.Fatalf("Password = %q, want %q", got, passwordVector)
	}
}

func TestSecretRotation(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(c *config.Relay) { c.Secrets = []string{"new-secret-0123456789", "old-secret-0123456789"} })
	f.s.Admit("v", "p")
	u := FormatUsername(time.Now().Add(time.Minute), "v", "p")
	if _, err := f.clientWith(t, u, Password([]byte("old-secret-0123456789"), u)).Allocate(turnwire.UDP); err != nil {
		t.Fatalf("credential signed with the second secret: %v", err)
	}
	if c := f.s.Credential("v", "p"); c.Password != Password([]byte("new-secret-0123456789"), c.Username) {
		t.Fatal("Credential not signed with the first secret")
	}
}

func TestNewValidation(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  config.Relay
		want string
	}{
		{"no relay address", config.Relay{}, "relay_addresses"},
		{"short secret", config.Relay{RelayAddresses: []netip.Addr{netip.MustParseAddr("127.0.0.1")}, Secrets: []string{"short"}}, "secrets"},
		{"bad listen", config.Relay{Listen: "nope", RelayAddresses: []netip.Addr{netip.MustParseAddr("127.0.0.1")}}, "relay.listen"},
		{"tls without config", config.Relay{TLSListen: "127.0.0.1:0", RelayAddresses: []netip.Addr{netip.MustParseAddr("127.0.0.1")}}, "tls_listen"},
		{"external mismatch", config.Relay{RelayAddresses: []netip.Addr{netip.MustParseAddr("127.0.0.1")}, ExternalAddresses: []netip.Addr{netip.MustParseAddr("2001:db8::1")}}, "external_addresses"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := New(Options{Config: tc.cfg})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New: %v, want an error naming %s", err, tc.want)
			}
		})
	}
}

func errorsAs(err error, target **turnwire.ErrorResponse) bool {
	e, ok := err.(*turnwire.ErrorResponse)
	if ok {
		*target = e
	}
	return ok
}

const passwordVector = "gMY1ouTcOBArNA4nrTkbJmhVCnU="

// TestRegressionListenPortInUse: a relay whose UDP port another relay
// already holds refuses to start. With SO_REUSEPORT alone the second would
// join the port and the kernel would split clients between two relays
// with different secrets (allocations failing 401 at random).
func TestRegressionListenPortInUse(t *testing.T) {
	t.Parallel()
	first := newFixture(t, func(c *config.Relay) { c.UDPSockets = 2 })
	s, err := New(Options{Config: config.Relay{
		Enabled: true, Listen: first.s.LocalAddr().String(), UDPSockets: 2,
		RelayAddresses: []netip.Addr{netip.MustParseAddr("127.0.0.1")},
		Secrets:        []string{"another-relay-secret-0123456789"},
	}.Defaults(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Start(context.Background()); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second relay on %s: Start = %v, want an in-use error", first.s.LocalAddr(), err)
	}
}
