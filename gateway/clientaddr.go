package gateway

import (
	"net/http"
	"net/netip"
	"strings"
)

// clientAddr computes the client address once, at the front.
//
// The TCP peer is the client unless it lies in trusted (Server.
// TrustedProxies, default none). From a trusted peer, X-Forwarded-For is
// walked right to left and the first address that is not itself a trusted
// proxy is the client (the usual rightmost-untrusted rule; the left part of
// the list is client-controlled). Forwarded (RFC 7239 §4) "for=" is used
// when X-Forwarded-For is absent. X-Forwarded-Proto is honoured only from a
// trusted peer. It returns the client, the X-Forwarded-For chain to extend
// when forwarding ("" when none is honoured) and the protocol.
func clientAddr(r *http.Request, trusted []netip.Prefix, proto string) (netip.Addr, string, string) {
	peer := peerAddr(r.RemoteAddr)
	if !peer.IsValid() || !inPrefixes(peer, trusted) {
		return peer, "", proto
	}
	chain := strings.Join(r.Header.Values("X-Forwarded-For"), ",")
	var hops []string
	if chain != "" {
		hops = strings.Split(chain, ",")
	} else {
		for _, v := range r.Header.Values("Forwarded") {
			for _, elem := range strings.Split(v, ",") {
				for _, pair := range strings.Split(elem, ";") {
					k, val, ok := strings.Cut(strings.TrimSpace(pair), "=")
					if ok && strings.EqualFold(k, "for") {
						val = strings.Trim(val, `"`)
						val = strings.TrimPrefix(val, "[")
						if i := strings.LastIndex(val, "]"); i >= 0 {
							val = val[:i]
						} else if strings.Count(val, ":") == 1 {
							val, _, _ = strings.Cut(val, ":")
						}
						hops = append(hops, val)
					}
				}
			}
		}
	}
	client := peer
	valid := make([]string, 0, len(hops))
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break // a malformed hop ends the trusted walk
		}
		a = a.Unmap()
		valid = append(valid, a.String())
		client = a
		if !inPrefixes(a, trusted) {
			break
		}
	}
	for i, j := 0, len(valid)-1; i < j; i, j = i+1, j-1 {
		valid[i], valid[j] = valid[j], valid[i]
	}
	if p := strings.ToLower(strings.TrimSpace(r.Header.Get("X-Forwarded-Proto"))); p == "https" || p == "http" {
		proto = p
	}
	return client, strings.Join(valid, ", "), proto
}

// peerAddr parses http.Request.RemoteAddr ("ip:port"), unmapping
// IPv4-mapped IPv6 addresses.
func peerAddr(remote string) netip.Addr {
	ap, err := netip.ParseAddrPort(remote)
	if err != nil {
		a, err := netip.ParseAddr(remote)
		if err != nil {
			return netip.Addr{}
		}
		return a.Unmap()
	}
	return ap.Addr().Unmap()
}

func inPrefixes(a netip.Addr, ps []netip.Prefix) bool {
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
