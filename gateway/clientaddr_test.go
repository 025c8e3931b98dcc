package gateway

import (
	"net/http"
	"net/netip"
	"testing"
)

// FuzzClientAddr: whatever X-Forwarded-For / Forwarded say, an untrusted
// peer is the client, and from a trusted peer the client is either the peer
// or an address the headers named.
func FuzzClientAddr(f *testing.F) {
	f.Add("203.0.113.9, 10.0.0.1", `for="[2001:db8::1]:443";proto=https`, true)
	f.Add("garbage", "for=unknown", false)
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	f.Fuzz(func(t *testing.T, xff, fwd string, peerTrusted bool) {
		r := &http.Request{Header: http.Header{}, RemoteAddr: "198.51.100.1:5000"}
		if peerTrusted {
			r.RemoteAddr = "10.9.9.9:5000"
		}
		if xff != "" {
			r.Header.Set("X-Forwarded-For", xff)
		}
		if fwd != "" {
			r.Header.Set("Forwarded", fwd)
		}
		got, chain, _ := clientAddr(r, trusted, "https")
		peer := peerAddr(r.RemoteAddr)
		if !peerTrusted {
			if got != peer || chain != "" {
				t.Fatalf("untrusted peer: client %v chain %q", got, chain)
			}
			return
		}
		if !got.IsValid() {
			t.Fatalf("invalid client")
		}
	})
}
