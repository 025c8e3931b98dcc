package media

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/stun/v4"

	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/media/relay/turnwire"
)

// iceURLsOf fetches the ICE configuration as user and returns its URLs.
func (h *harness) iceURLsOf(user, vid string) []string {
	h.t.Helper()
	st, m := h.do(user, "GET", "/.telegate/visits/"+vid+"/ice", nil)
	if st != http.StatusOK {
		h.t.Fatalf("ICE as %s: %d %v", user, st, m)
	}
	var urls []string
	for _, u := range m["iceServers"].([]any)[0].(map[string]any)["urls"].([]any) {
		urls = append(urls, u.(string))
	}
	return urls
}

// admittedWithin waits up to 1 s for h's relay to admit (vid, pid): an
// admission for another node's relay crosses the bus.
func (h *harness) admittedWithin(vid, pid string) bool {
	for end := time.Now().Add(time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if h.relay.isAdmitted(vid, pid) {
			return true
		}
	}
	return false
}

// rawAllocate sends an authenticated Allocate (RFC 8656 §7.1) to addr with
// the long-term credential (RFC 8489 §9.2) and returns the relay's answer.
func rawAllocate(t *testing.T, addr *net.UDPAddr, username, password string) (*stun.Message, stun.MessageIntegrity) {
	t.Helper()
	c, err := net.DialUDP("udp4", nil, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	exchange := func(setters ...stun.Setter) *stun.Message {
		req := stun.MustBuild(append([]stun.Setter{stun.TransactionID, stun.NewType(stun.MethodAllocate, stun.ClassRequest),
			stun.RawAttribute{Type: stun.AttrRequestedTransport, Value: []byte{17, 0, 0, 0}}}, setters...)...)
		if _, err := c.Write(req.Raw); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 1500)
		_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("no answer to Allocate: %v", err)
		}
		m := &stun.Message{Raw: buf[:n]}
		if err := m.Decode(); err != nil {
			t.Fatal(err)
		}
		return m
	}
	first := exchange()
	var realm stun.Realm
	var nonce stun.Nonce
	if err := realm.GetFrom(first); err != nil {
		t.Fatalf("first answer without REALM: %v", first)
	}
	if err := nonce.GetFrom(first); err != nil {
		t.Fatalf("first answer without NONCE: %v", first)
	}
	key := stun.NewLongTermIntegrity(username, realm.String(), password)
	return exchange(stun.NewUsername(username), realm, nonce, key, stun.Fingerprint), key
}

// TestRelayChoiceAcrossNodes: two nodes on one redis-server, each with its
// relay registered. A visit is given one relay: /ice on either node hands
// out that relay's URLs and that relay admits both participants. When
// the relay's node drains, /ice on either node moves the visit to the
// other relay, which admits them, and the drained relay answers a new
// Allocate of the visit with 300 ALTERNATE-SERVER at the new relay, while
// another visit's participant is not redirected. When the serving relay's
// registration lapses, the visit moves to the only relay left.
func TestRelayChoiceAcrossNodes(t *testing.T) {
	t.Parallel()
	n1, n2 := twoNodes(t, config.Visits{ICEHost: "127.0.0.1"})
	nodes := map[string]*harness{n1.relay.addr.String(): n1, n2.relay.addr.String(): n2}
	relayOf := func(urls []string) *harness {
		t.Helper()
		a, ok := udpAddrOf(urls)
		if !ok || nodes[a.String()] == nil {
			t.Fatalf("ICE URLs %v name neither node's relay", urls)
		}
		return nodes[a.String()]
	}
	vid, host, pid := n1.admitted()
	dr, pat := n1.iceURLsOf("dr", vid), n2.iceURLsOf("pat", vid)
	if dr[0] != pat[0] {
		t.Fatalf("one visit, two relays: %v on node 1, %v on node 2", dr, pat)
	}
	first := relayOf(dr)
	if !first.admittedWithin(vid, host) || !first.admittedWithin(vid, pid) {
		t.Fatal("the visit's relay does not admit both participants")
	}
	other := n1
	if first == n1 {
		other = n2
	}

	if err := first.svc.Drain(); err != nil {
		t.Fatal(err)
	}
	dr, pat = n1.iceURLsOf("dr", vid), n2.iceURLsOf("pat", vid)
	if relayOf(dr) != other || relayOf(pat) != other {
		t.Fatalf("after the drain: %v on node 1, %v on node 2; want the other relay", dr, pat)
	}
	if !other.admittedWithin(vid, host) || !other.admittedWithin(vid, pid) {
		t.Fatal("the visit's new relay does not admit both participants")
	}

	// A new Allocate of the moved visit on the drained relay: 300 to the
	// new relay (the "moved" news crosses the bus to the drained node).
	user, pass := first.iceCred("pat", vid)
	var m *stun.Message
	var key stun.MessageIntegrity
	for end := time.Now().Add(time.Second); ; time.Sleep(20 * time.Millisecond) {
		m, key = rawAllocate(t, first.relay.addr, user, pass)
		var code stun.ErrorCodeAttribute
		if code.GetFrom(m) == nil && code.Code == stun.CodeTryAlternate || time.Now().After(end) {
			break
		}
	}
	var code stun.ErrorCodeAttribute
	var alt stun.AlternateServer
	if err := code.GetFrom(m); err != nil || code.Code != stun.CodeTryAlternate {
		t.Fatalf("Allocate of the moved visit on the drained relay: %v (%v), want 300", m, code)
	}
	if err := alt.GetFrom(m); err != nil {
		t.Fatalf("300 without ALTERNATE-SERVER: %v", err)
	}
	if got, _ := netip.AddrFromSlice(alt.IP.To4()); netip.AddrPortFrom(got, uint16(alt.Port)).String() != other.relay.addr.String() {
		t.Fatalf("ALTERNATE-SERVER %v, want %v", alt, other.relay.addr)
	}
	if err := key.Check(m); err != nil {
		t.Errorf("300 without a valid MESSAGE-INTEGRITY: %v", err)
	}

	// A visit that never moved is allocated on its relay as before: a new
	// visit is given the relay that is not draining.
	vid2, _, _ := other.admitted()
	if u := other.iceURLsOf("pat", vid2); relayOf(u) != other {
		t.Fatalf("a new visit was given the draining relay: %v", u)
	}
	user2, pass2 := other.iceCred("pat", vid2)
	if err := other.allocate(user2, pass2); err != nil {
		t.Fatalf("allocation on the serving relay: %v", err)
	}

	// The serving relay's registration lapses (its node is gone): the next
	// /ice moves the visit to the only relay left, though it drains.
	b := other.svc.bus
	if err := b.rdb.Del(context.Background(), b.relayKey(b.node)).Err(); err != nil {
		t.Fatal(err)
	}
	if u := n2.iceURLsOf("pat", vid); relayOf(u) != first {
		t.Fatalf("after the serving relay went: %v, want the draining relay", u)
	}
}

// allocateOn makes an allocation on h's relay for the participant whose
// credential /ice gave user, after admitting (vid, pid) there, and
// returns the client and its relayed address.
func (h *harness) allocateOn(user, vid, pid string) (*turnwire.Client, netip.AddrPort) {
	h.t.Helper()
	h.relay.Admit(vid, pid)
	name, pass := h.iceCred(user, vid)
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { pc.Close() })
	c := turnwire.NewUDP(pc, h.relay.addr, name, pass)
	ra, err := c.Allocate(turnwire.UDP)
	if err != nil {
		h.t.Fatalf("allocation on the relay for %s: %v", user, err)
	}
	return c, ra
}

// registration is h's relay registration as Redis holds it.
func (h *harness) registration() relayEntry {
	h.t.Helper()
	b := h.svc.bus
	v, err := b.rdb.Get(context.Background(), b.relayKey(b.node)).Result()
	if err != nil {
		h.t.Fatal(err)
	}
	plain, err := b.c.openWith([]byte(relayAD), []byte(v))
	if err != nil {
		h.t.Fatal(err)
	}
	var e relayEntry
	if err := json.Unmarshal(plain, &e); err != nil {
		h.t.Fatal(err)
	}
	return e
}

// TestRegression_RelayLoadCountsTraffic: relay choice weighs what a relay
// carries, not only how many allocations it holds. Node 1's relay carries
// a call's traffic (two allocations sending to each other at their
// bandwidth cap) while node 2's holds three quiet allocations: a new
// visit is given node 2's relay, and the registrations tell the parts of
// each load (allocations, bits/s).
func TestRegression_RelayLoadCountsTraffic(t *testing.T) {
	t.Parallel()
	n1, n2 := twoNodes(t, config.Visits{ICEHost: "127.0.0.1"})
	ctx := context.Background()
	busy, bh, bp := n1.admitted()
	a, ra := n1.allocateOn("dr", busy, bh)
	b, rb := n1.allocateOn("pat", busy, bp)
	for _, p := range [][2]any{{a, rb}, {b, ra}} {
		if err := p[0].(*turnwire.Client).CreatePermission(p[1].(netip.AddrPort)); err != nil {
			t.Fatal(err)
		}
	}
	quiet, qh, qp := n2.admitted()
	n2.allocateOn("dr", quiet, qh)
	n2.allocateOn("dr", quiet, qh)
	n2.allocateOn("pat", quiet, qp)
	if err := n1.svc.bus.registerRelay(ctx); err != nil { // the traffic's average starts here
		t.Fatal(err)
	}
	payload := make([]byte, 1000)
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(time.Millisecond) {
		for range 2 {
			_ = a.Send(rb, payload)
			_ = b.Send(ra, payload)
		}
	}
	for _, h := range []*harness{n2, n1} {
		if err := h.svc.bus.registerRelay(ctx); err != nil {
			t.Fatal(err)
		}
	}
	r1, r2 := n1.registration(), n2.registration()
	t.Logf("node 1: load %d (%d allocations, %d bit/s); node 2: load %d (%d allocations, %d bit/s)",
		r1.Load, r1.Allocations, r1.BitsPerSecond, r2.Load, r2.Allocations, r2.BitsPerSecond)
	if r1.Allocations != 2 || r2.Allocations != 3 {
		t.Fatalf("allocations registered: node 1 %d, node 2 %d; want 2 and 3", r1.Allocations, r2.Allocations)
	}
	if r1.BitsPerSecond < 1_000_000 || r2.BitsPerSecond != 0 {
		t.Errorf("traffic registered: node 1 %d bit/s, node 2 %d bit/s", r1.BitsPerSecond, r2.BitsPerSecond)
	}
	nodes := map[string]*harness{n1.relay.addr.String(): n1, n2.relay.addr.String(): n2}
	for _, h := range []*harness{n1, n2} {
		vid, _, _ := h.admitted()
		urls := h.iceURLsOf("pat", vid)
		ua, _ := udpAddrOf(urls)
		if nodes[ua.String()] != n2 {
			t.Errorf("a new visit through node %v was given the relay carrying the traffic (%v)", h == n1, urls)
		}
	}
}

// TestRelayChoiceOneRoundTrip: the relay part of /ice (Service.iceRelay)
// costs one Redis round trip — the first, which gives the visit its
// relay and admits the participant on another node's relay, and a later
// one — counted by a hook on the node's Redis client; the admission
// still reaches the relay's node.
func TestRelayChoiceOneRoundTrip(t *testing.T) {
	t.Parallel()
	n1, n2 := twoNodes(t, config.Visits{ICEHost: "127.0.0.1"})
	ctx := context.Background()
	var trips atomic.Int64
	n2.svc.bus.rdb.AddHook(tripCounter{&trips})
	for i := range 3 {
		vid, _, pid := n1.admitted()
		for _, what := range []string{"first", "later"} {
			before := trips.Load()
			node, _, err := n2.svc.bus.relayOf(ctx, vid, pid)
			if err != nil {
				t.Fatal(err)
			}
			if n := trips.Load() - before; n != 1 {
				t.Errorf("visit %d, %s /ice: %d Redis round trips, want 1", i, what, n)
			}
			if what == "first" && node == n1.svc.bus.node && !n1.admittedWithin(vid, pid) {
				t.Errorf("visit %d: node 1's relay was not told to admit the participant", i)
			}
		}
	}
}
