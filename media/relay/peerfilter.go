package relay

import (
	"net/netip"
)

// embeddedIPv4 returns the IPv4 addresses an IPv6 address carries, per the
// forms a relay peer filter must see through:
//   - IPv4-mapped ::ffff:a.b.c.d and IPv4-compatible ::a.b.c.d (RFC 4291
//     §2.5.5),
//   - NAT64 64:ff9b::/96 (RFC 6052 §2.1) and the local-use 64:ff9b:1::/48
//     (RFC 8215, RFC 6052 §2.2 layout),
//   - 6to4 2002::/16 (RFC 3056 §2),
//   - Teredo 2001::/32 (RFC 4380 §4): the server address and the client
//     address, which is the bitwise NOT of the last 32 bits,
//   - ISATAP interface identifiers ::0:5efe:a.b.c.d and ::200:5efe:a.b.c.d
//     (RFC 5214 §6.1).
//
// An IPv4 address yields itself.
func embeddedIPv4(ip netip.Addr) []netip.Addr {
	if ip.Is4() {
		return []netip.Addr{ip}
	}
	if !ip.Is6() {
		return nil
	}
	b := ip.As16()
	v4 := func(p []byte) netip.Addr { return netip.AddrFrom4([4]byte{p[0], p[1], p[2], p[3]}) }
	var out []netip.Addr
	zero := func(p []byte) bool {
		for _, c := range p {
			if c != 0 {
				return false
			}
		}
		return true
	}
	switch {
	case zero(b[:10]) && b[10] == 0xff && b[11] == 0xff: // ::ffff:a.b.c.d
		out = append(out, v4(b[12:]))
	case zero(b[:12]): // ::a.b.c.d (and ::, ::1)
		out = append(out, v4(b[12:]))
	case b[0] == 0x00 && b[1] == 0x64 && b[2] == 0xff && b[3] == 0x9b && zero(b[4:12]): // 64:ff9b::/96
		out = append(out, v4(b[12:]))
	case b[0] == 0x00 && b[1] == 0x64 && b[2] == 0xff && b[3] == 0x9b && b[4] == 0x00 && b[5] == 0x01: // 64:ff9b:1::/48
		out = append(out, netip.AddrFrom4([4]byte{b[6], b[7], b[9], b[10]}))
	case b[0] == 0x20 && b[1] == 0x02: // 2002::/16
		out = append(out, v4(b[2:6]))
	case b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x00 && b[3] == 0x00: // 2001::/32
		out = append(out, v4(b[4:8]), netip.AddrFrom4([4]byte{^b[12], ^b[13], ^b[14], ^b[15]}))
	}
	// ISATAP interface identifier, whatever the prefix.
	if (b[8]|0x02) == 0x02 && b[9] == 0x00 && b[10] == 0x5e && b[11] == 0xfe {
		out = append(out, v4(b[12:]))
	}
	return out
}

// denyList is a set of peer prefixes checked against an address and every
// IPv4 address it embeds.
type denyList []netip.Prefix

// denied reports whether ip, or any IPv4 address embedded in it, falls in
// the list. Zones are ignored. An invalid address is denied.
func (d denyList) denied(ip netip.Addr) bool {
	if !ip.IsValid() {
		return true
	}
	ip = ip.WithZone("")
	cands := []netip.Addr{ip}
	if ip.Is4In6() {
		cands = append(cands, ip.Unmap())
	}
	cands = append(cands, embeddedIPv4(ip)...)
	for _, c := range cands {
		for _, p := range d {
			if p.Contains(c) {
				return true
			}
		}
	}
	return false
}
