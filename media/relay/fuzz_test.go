package relay

import (
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/pion/stun/v4"

	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/media/relay/turnwire"
)

func FuzzParseUsername(f *testing.F) {
	for _, s := range []string{
		"1700000000:visit-1:p_2", "0:a:b", "1700000000:a:b:c", "01:a:b", "+1:a:b", "-1:a:b",
		"1700000000::b", "1700000000:a:", ":a:b", "1700000000:" + strings.Repeat("a", 65) + ":b",
		"1700000000:a b:c", "999999999999:a:b", "9999999999999:a:b", "1700000000:é:b",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := ParseUsername(s)
		if err != nil {
			return
		}
		if !ValidID(u.Visit) || !ValidID(u.Participant) {
			t.Fatalf("%q parsed to invalid ids %+v", s, u)
		}
		if strings.Count(s, ":") != 2 {
			t.Fatalf("%q parsed with %d colons", s, strings.Count(s, ":"))
		}
		if back := FormatUsername(u.Expires, u.Visit, u.Participant); back != s {
			t.Fatalf("%q round-trips to %q", s, back)
		}
	})
}

func FuzzDenyList(f *testing.F) {
	for _, p := range deniedPeers {
		a := netip.MustParseAddr(p.addr).As16()
		f.Add(a[:])
	}
	f.Add(netip.MustParseAddr("8.8.8.8").AsSlice())
	d := denyList(config.Relay{}.Defaults().DenyPeers)
	loop := netip.MustParsePrefix("127.0.0.0/8")
	f.Fuzz(func(t *testing.T, b []byte) {
		ip, ok := netip.AddrFromSlice(b)
		if !ok {
			return
		}
		denied := d.denied(ip)
		for _, v4 := range embeddedIPv4(ip) {
			if !v4.Is4() {
				t.Fatalf("embeddedIPv4(%v) returned %v", ip, v4)
			}
			if loop.Contains(v4) && !denied {
				t.Fatalf("%v embeds loopback %v but is not denied", ip, v4)
			}
		}
		if ip.Is4In6() && d.denied(ip.Unmap()) != denied {
			t.Fatalf("%v and its IPv4 form disagree", ip)
		}
	})
}

func FuzzFrameLen(f *testing.F) {
	f.Add([]byte{0x00, 0x01, 0x00, 0x08})
	f.Add([]byte{0x40, 0x00, 0x00, 0x05})
	f.Add([]byte{0x80, 0x00, 0xff, 0xff})
	f.Add([]byte{0x00, 0x01, 0x00, 0x07})
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) < 4 {
			return
		}
		n, err := frameLen([4]byte(b[:4]))
		if err != nil {
			return
		}
		if n < 4 || n > maxFrame || n%4 != 0 {
			t.Fatalf("frame length %d for %x", n, b[:4])
		}
	})
}

// FuzzResign: whatever the request, the message handed to pion carries no
// attribute from after the client's MESSAGE-INTEGRITY, ends with a
// MESSAGE-INTEGRITY valid for the key, and keeps the type and transaction.
func FuzzResign(f *testing.F) {
	key := stun.NewLongTermIntegrity("1700000000:v:p", "telegate", "pw")
	m := stun.MustBuild(stun.TransactionID, stun.NewType(stun.MethodCreatePermission, stun.ClassRequest),
		turnwire.PeerAddress(netip.MustParseAddrPort("127.0.0.1:5000")), stun.NewUsername("1700000000:v:p"),
		stun.NewRealm("telegate"), stun.NewNonce("n"), key, stun.Fingerprint)
	f.Add(m.Raw)
	f.Add(stun.MustBuild(stun.TransactionID, stun.BindingRequest).Raw)
	f.Fuzz(func(t *testing.T, b []byte) {
		in := &stun.Message{Raw: append([]byte(nil), b...)}
		if in.Decode() != nil {
			return
		}
		out := &stun.Message{Raw: resign(in, "pion-nonce", key)}
		if err := out.Decode(); err != nil {
			t.Fatalf("re-signed message does not decode: %v", err)
		}
		if out.Type != in.Type || out.TransactionID != in.TransactionID {
			t.Fatal("type or transaction changed")
		}
		if err := key.Check(out); err != nil {
			t.Fatalf("re-signed message fails its integrity: %v", err)
		}
		if last := out.Attributes[len(out.Attributes)-1]; last.Type != stun.AttrMessageIntegrity {
			t.Fatalf("last attribute %v", last.Type)
		}
		afterMI := false
		var tail []stun.RawAttribute
		for _, a := range in.Attributes {
			if afterMI {
				tail = append(tail, a)
			}
			if a.Type == stun.AttrMessageIntegrity {
				afterMI = true
			}
		}
		kept := 0
		for _, a := range out.Attributes {
			if a.Type != stun.AttrNonce && a.Type != stun.AttrMessageIntegrity {
				kept++
			}
		}
		before := 0
		for _, a := range in.Attributes {
			if a.Type == stun.AttrMessageIntegrity {
				break
			}
			switch a.Type {
			case stun.AttrNonce, stun.AttrFingerprint, stun.AttrMessageIntegritySHA256:
			default:
				before++
			}
		}
		if kept != before {
			t.Fatalf("kept %d attributes, %d preceded MESSAGE-INTEGRITY (tail %d)", kept, before, len(tail))
		}
	})
}

// FuzzGuard feeds arbitrary datagrams to a running relay's guard: no
// panic, and nothing is ever relayed to a loopback echo.
func FuzzGuard(f *testing.F) {
	fx := newFixture(f, nil)
	fx.s.Admit("v", "p")
	cred := fx.s.Credential("v", "p")
	key := stun.NewLongTermIntegrity(cred.Username, "telegate", cred.Password)
	nonce := fx.s.nonces.issue(time.Now())
	for _, m := range []*stun.Message{
		stun.MustBuild(stun.TransactionID, stun.NewType(stun.MethodAllocate, stun.ClassRequest), turnwire.UDP,
			stun.NewUsername(cred.Username), stun.NewRealm("telegate"), stun.NewNonce(nonce), key),
		stun.MustBuild(stun.TransactionID, stun.NewType(stun.MethodCreatePermission, stun.ClassRequest),
			turnwire.PeerAddress(netip.MustParseAddrPort("[::ffff:127.0.0.1]:9")),
			stun.NewUsername(cred.Username), stun.NewRealm("telegate"), stun.NewNonce(nonce), key),
		stun.MustBuild(stun.TransactionID, stun.BindingRequest),
	} {
		f.Add(m.Raw)
	}
	f.Add([]byte{0x40, 0x00, 0x00, 0x04, 1, 2, 3, 4})
	// A guard of its own: the served ones belong to pion's read loops.
	sink, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	defer sink.Close()
	g := &guardConn{PacketConn: sink, s: fx.s, id: 99, transport: "udp"}
	from := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}
	f.Fuzz(func(t *testing.T, b []byte) {
		out, ok := g.inspect(b, from)
		if ok && len(out) == 0 {
			t.Fatal("empty packet passed")
		}
		g.held = nil
	})
}
