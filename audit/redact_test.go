package audit

import (
	"net/netip"
	"strings"
	"testing"
)

func TestRedactAddrs(t *testing.T) {
	t.Parallel()
	h := func(a netip.Addr) string { return "H" }
	tests := map[string]string{
		"Failed to send ChannelData from allocation 127.0.0.1:5000 10.1.2.3:9":  "Failed to send ChannelData from allocation H H",
		"permission denied for client [2001:db8::1]:443 to peer ::ffff:1.2.3.4": "permission denied for client H to peer H",
		"no permission for 192.168.1.1:":                                        "no permission for H:",
		"http: panic serving 203.0.113.7:51234: boom":                           "http: panic serving H: boom",
		"Relay socket deadbeef received 12 bytes":                               "Relay socket deadbeef received 12 bytes",
		"version 1.2 of 3.4":                                                    "version 1.2 of 3.4",
	}
	for in, want := range tests {
		if got := RedactAddrs(in, h); got != want {
			t.Errorf("RedactAddrs(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzRedactAddrs(f *testing.F) {
	f.Add([]byte{127, 0, 0, 1}, uint16(5000), "from ", " to")
	f.Add(netip.MustParseAddr("2001:db8::1").AsSlice(), uint16(0), "[", "]")
	f.Fuzz(func(t *testing.T, ip []byte, port uint16, pre, post string) {
		a, ok := netip.AddrFromSlice(ip)
		if !ok || strings.ContainsAny(pre+post, "0123456789abcdefABCDEF:.[]%") {
			return
		}
		msg := pre + a.String() + post
		if port != 0 {
			msg = pre + netip.AddrPortFrom(a, port).String() + post
		}
		out := RedactAddrs(msg, func(netip.Addr) string { return "<h>" })
		if strings.Contains(out, a.String()) {
			t.Fatalf("%q still names %v: %q", msg, a, out)
		}
	})
}

func TestRedactLibraryLine(t *testing.T) {
	t.Parallel()
	h := func(a netip.Addr) string { return "P(" + a.String() + ")" }
	for in, want := range map[string]string{
		`http2: server: error reading preface from client 127.0.0.77:4711: bogus greeting "GET /zq7marker HTTP/1.1\r\nHost: x\"y"`: `http2: server: error reading preface from client P(127.0.0.77): bogus greeting "[redacted]"`,
		"turn: bad\x00\x1b[31mzq7marker\xff": "turn: bad??[31mzq7marker?",
		"http: TLS handshake error from [::1]:443: tls: first record does not look like a TLS handshake": "http: TLS handshake error from P(::1): tls: first record does not look like a TLS handshake",
	} {
		if got := RedactLibraryLine(in, h); got != want {
			t.Errorf("RedactLibraryLine(%q)\n = %q\nwant %q", in, got, want)
		}
	}
	long := RedactLibraryLine(strings.Repeat("a", 2000), h)
	if len(long) > maxLibraryLine+len("…") {
		t.Errorf("a 2000-byte line kept %d bytes", len(long))
	}
}
