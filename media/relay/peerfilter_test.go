package relay

import (
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/pion/turn/v5"

	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/media/relay/turnwire"
)

// deniedPeers has one address in every default deny range and every
// IPv6 form that embeds a denied IPv4 address. loopback marks those the
// test may also send data to.
var deniedPeers = []struct {
	addr     string
	loopback bool
}{
	{"0.1.2.3", false},
	{"10.0.0.1", false},
	{"100.64.0.1", false},
	{"127.0.0.1", true},
	{"127.0.0.2", true},
	{"169.254.169.254", false},
	{"172.16.0.1", false},
	{"192.0.0.1", false},
	{"192.0.2.1", false},
	{"192.88.99.1", false},
	{"192.168.1.1", false},
	{"198.18.0.1", false},
	{"198.51.100.1", false},
	{"203.0.113.1", false},
	{"224.0.0.1", false},
	{"240.0.0.1", false},
	{"255.255.255.255", false},
	{"::", false},
	{"::1", false},
	{"fc00::1", false},
	{"fd12:3456::1", false},
	{"fe80::1", false},
	{"ff02::1", false},
	{"100::1", false},
	{"2001:db8::1", false},
	// IPv4 embedded in IPv6.
	{"::ffff:127.0.0.1", true},
	{"::ffff:10.0.0.1", false},
	{"::ffff:169.254.169.254", false},
	{"::127.0.0.1", false},
	{"::10.0.0.1", false},
	{"64:ff9b::7f00:1", false},
	{"64:ff9b::a9fe:a9fe", false},
	{"64:ff9b:1:7f00:0:100::", false},
	{"2002:7f00:1::1", false},
	{"2002:a9fe:a9fe::1", false},
	{"2001:0:4136:e378:8000:63bf:80ff:fffe", false}, // Teredo, client 127.0.0.1
	{"2001:0:a00:1:8000:63bf:3fff:fdd2", false},     // Teredo, server 10.0.0.1
	{"2001:470:1:1:0:5efe:7f00:1", false},           // ISATAP, 127.0.0.1
}

func TestDenyListForms(t *testing.T) {
	t.Parallel()
	d := denyList(config.Relay{}.Defaults().DenyPeers)
	for _, tc := range deniedPeers {
		if !d.denied(netip.MustParseAddr(tc.addr)) {
			t.Errorf("%s not denied", tc.addr)
		}
	}
	for _, ok := range []string{"8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "2a00:1450:4001::1", "64:ff9b::808:808", "2002:808:808::1"} {
		if d.denied(netip.MustParseAddr(ok)) {
			t.Errorf("%s denied", ok)
		}
	}
	// A replaced list still denies loopback.
	custom := denyList(config.Relay{DenyPeers: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}.Defaults().DenyPeers)
	for _, a := range []string{"127.0.0.1", "::1", "::ffff:127.0.0.1", "0.0.0.0", "10.1.1.1"} {
		if !custom.denied(netip.MustParseAddr(a)) {
			t.Errorf("custom list: %s not denied", a)
		}
	}
}

// TestPeerFilter: CreatePermission, ChannelBind and Send toward anything
// but a sibling's relayed address are refused (403) and nothing reaches a
// loopback echo.
func TestPeerFilter(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	a, ra := f.allocate(t, "v", "alice")
	b, rb := f.allocate(t, "v", "bob")
	_, rc := f.allocate(t, "other", "carol")
	echo1 := newEcho(t, "127.0.0.1")
	echo2 := newEcho(t, "127.0.0.2")
	_ = ra
	_ = b

	for i, tc := range deniedPeers {
		t.Run(tc.addr, func(t *testing.T) {
			ip := netip.MustParseAddr(tc.addr)
			port := uint16(9)
			if tc.loopback {
				e := echo1
				if ip.Unmap() == netip.MustParseAddr("127.0.0.2") {
					e = echo2
				}
				port = e.addr().Port()
			}
			peer := netip.AddrPortFrom(ip, port)
			if err := a.CreatePermission(peer); turnwire.Code(err) != 403 {
				t.Errorf("CreatePermission %v: %v, want 403", peer, err)
			}
			if err := a.ChannelBind(uint16(0x4100+i), peer); turnwire.Code(err) != 403 {
				t.Errorf("ChannelBind %v: %v, want 403", peer, err)
			}
			if tc.loopback {
				_ = a.Send(peer, []byte("must not leave"))
				_ = a.Write(turnwire.ChannelData(nil, uint16(0x4100+i), []byte("must not leave")))
			}
		})
	}
	t.Run("sibling IP, other port", func(t *testing.T) {
		if err := a.CreatePermission(rb); err != nil {
			t.Fatalf("permission toward a sibling: %v", err)
		}
		// Permissions are per IP; the sibling shares 127.0.0.1 with the
		// echo (and with the admin listener in a demo). Only the exact
		// relayed address may be reached.
		if err := a.ChannelBind(0x4fff, echo1.addr()); turnwire.Code(err) != 403 {
			t.Errorf("ChannelBind to the sibling's IP at another port: %v, want 403", err)
		}
		_ = a.Send(echo1.addr(), []byte("must not leave"))
	})
	t.Run("participant of another visit", func(t *testing.T) {
		if err := a.CreatePermission(rc); turnwire.Code(err) != 403 {
			t.Errorf("CreatePermission toward another visit: %v, want 403", err)
		}
		if err := a.ChannelBind(0x4ffe, rc); turnwire.Code(err) != 403 {
			t.Errorf("ChannelBind toward another visit: %v, want 403", err)
		}
	})
	t.Run("routable address outside the visit", func(t *testing.T) {
		// Permission only: nothing is ever sent off loopback.
		if err := a.CreatePermission(netip.MustParseAddrPort("8.8.8.8:53")); turnwire.Code(err) != 403 {
			t.Errorf("CreatePermission 8.8.8.8: %v, want 403", err)
		}
		if err := a.ChannelBind(0x4ffd, netip.MustParseAddrPort("8.8.8.8:53")); turnwire.Code(err) != 403 {
			t.Errorf("ChannelBind 8.8.8.8: %v, want 403", err)
		}
	})
	time.Sleep(150 * time.Millisecond)
	if n := echo1.n.Load() + echo2.n.Load(); n != 0 {
		t.Fatalf("loopback echo received %d datagrams through the relay", n)
	}
}

// TestPeerFilterWithPionClient drives the filter with pion's own TURN
// client: permissions toward loopback are refused and relayed writes never
// reach a loopback echo, while the sibling's relayed address works.
func TestPeerFilterWithPionClient(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	_, rb := f.allocate(t, "v", "bob")
	f.s.Admit("v", "alice")
	cred := f.s.Credential("v", "alice")
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c, err := turn.NewClient(&turn.ClientConfig{
		TURNServerAddr: f.addr.String(), STUNServerAddr: f.addr.String(),
		Username: cred.Username, Password: cred.Password, Realm: "telegate", Conn: conn,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Listen(); err != nil {
		t.Fatal(err)
	}
	relayConn, err := c.Allocate()
	if err != nil {
		t.Fatalf("pion client allocate: %v", err)
	}
	defer relayConn.Close()
	echo := newEcho(t, "127.0.0.1")
	for _, p := range []netip.AddrPort{echo.addr(), netip.MustParseAddrPort("10.0.0.1:9"), netip.MustParseAddrPort("[::ffff:127.0.0.1]:9")} {
		if err := c.CreatePermission(net.UDPAddrFromAddrPort(p)); err == nil {
			t.Errorf("pion client CreatePermission %v succeeded", p)
		}
	}
	_, _ = relayConn.WriteTo([]byte("must not leave"), net.UDPAddrFromAddrPort(echo.addr()))
	if err := c.CreatePermission(net.UDPAddrFromAddrPort(rb)); err != nil {
		t.Fatalf("pion client permission toward the sibling: %v", err)
	}
	time.Sleep(150 * time.Millisecond)
	if n := echo.n.Load(); n != 0 {
		t.Fatalf("echo received %d datagrams", n)
	}
}

func TestEmbeddedIPv4(t *testing.T) {
	t.Parallel()
	tests := map[string][]string{
		"::ffff:1.2.3.4":                {"1.2.3.4"},
		"::1.2.3.4":                     {"1.2.3.4"},
		"64:ff9b::102:304":              {"1.2.3.4"},
		"64:ff9b:1:102:3:400::":         {"1.2.3.4"},
		"2002:102:304::":                {"1.2.3.4"},
		"2001:0:102:304:0:0:fefd:fcfb":  {"1.2.3.4", "1.2.3.4"},
		"2001:db8:1:2:200:5efe:102:304": {"1.2.3.4"},
		"2606:4700::1":                  nil,
		"1.2.3.4":                       {"1.2.3.4"},
	}
	for in, want := range tests {
		got := embeddedIPv4(netip.MustParseAddr(in))
		if fmt.Sprint(got) != fmt.Sprint(addrs(want)) {
			t.Errorf("embeddedIPv4(%s) = %v, want %v", in, got, want)
		}
	}
}

func addrs(s []string) []netip.Addr {
	var out []netip.Addr
	for _, a := range s {
		out = append(out, netip.MustParseAddr(a))
	}
	return out
}
