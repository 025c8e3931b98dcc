package config

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Relay configures the embedded TURN relay (RFC 8656) that carries the
// end-to-end encrypted media of visits. See media/relay.
//
// Zero values mean "use the default"; Defaults returns a copy with every
// default filled in. Defaults are the safe ones: loopback-free relaying,
// small per-participant quotas, a bandwidth cap and the full deny list.
type Relay struct {
	Enabled bool `yaml:"enabled"`

	// Realm is the long-term credential realm (RFC 8489 §9.2). Default
	// "telegate".
	Realm string `yaml:"realm"`

	// Listen is the UDP listener, "host:port". Default ":3478" (RFC 8656
	// §3.1 default port).
	Listen string `yaml:"listen"`
	// UDPSockets is the number of SO_REUSEPORT sockets bound to Listen, each
	// served by its own goroutine. Default: the number of CPUs.
	UDPSockets int `yaml:"udp_sockets"`
	// TLSListen is an optional dedicated TURN-over-TLS listener (RFC 8656
	// §3.1, default port 5349). "" (default) disables it: TURN over TLS is
	// then only reached through the HTTPS listener, told apart by SNI or the
	// STUN magic cookie.
	TLSListen string `yaml:"tls_listen"`
	// ServerNames are TLS server names (SNI) on the HTTPS listener whose
	// connections are handed to the relay as TURN over TLS, e.g.
	// "turn.hospital.example"; each must also be a name in tls.hosts.
	// Connections to the web's own names still reach the relay when their
	// first bytes are a STUN message (magic cookie 0x2112A442, RFC 8489
	// §5). Default none.
	ServerNames []string `yaml:"server_names"`
	// TLSPort is the port advertised in turns: URLs: the port browsers
	// reach TURN over TLS on. Default the port of TLSListen when set,
	// otherwise the port of server.listen (TURN over TLS shares the HTTPS
	// listener). Set it when a load balancer or NAT publishes that
	// listener on another port (e.g. 443 in front of :8443).
	TLSPort int `yaml:"tls_port"`
	// UDPPort is the port advertised in turn: URLs. Default the port of
	// Listen.
	UDPPort int `yaml:"udp_port"`

	// RelayAddresses are the local addresses relay sockets bind to, at most
	// one IPv4 and one IPv6. Required: the operator sets the public-facing
	// interface address(es); the demo uses 127.0.0.1.
	RelayAddresses []netip.Addr `yaml:"relay_addresses"`
	// ExternalAddresses, when the relay sits behind a 1:1 NAT, are the
	// addresses announced in XOR-RELAYED-ADDRESS, paired by position with
	// RelayAddresses. Default: announce RelayAddresses as they are.
	ExternalAddresses []netip.Addr `yaml:"external_addresses"`
	// PortMin and PortMax bound the relay port range (inclusive). Default
	// 49152–65535 (RFC 8656 §7.2 recommends the dynamic port range).
	PortMin uint16 `yaml:"port_min"`
	PortMax uint16 `yaml:"port_max"`

	// Secrets sign and verify relay credentials in the TURN REST form
	// (username "expiry:visit:participant", password
	// base64(HMAC-SHA1(secret, username)), as coturn's use-auth-secret).
	// The first signs, all verify (rotation). Each at least 16 bytes. From
	// ${ENV} or SecretsFile (one secret per line); never inline. When both
	// are empty a secret is generated once in DataDir/relay/secret.
	Secrets     []string `yaml:"secrets"`
	SecretsFile string   `yaml:"secrets_file"`
	// CredentialTTL is how long a credential admits new allocations.
	// Default 10m.
	CredentialTTL time.Duration `yaml:"credential_ttl"`
	// AllocationLifetime is the default allocation lifetime granted (RFC
	// 8656 §7.2, clients refresh before it ends). Default 10m.
	AllocationLifetime time.Duration `yaml:"allocation_lifetime"`

	// MaxAllocationsPerParticipant, MaxAllocationsPerVisit and
	// MaxAllocations cap live allocations; past a cap Allocate fails with
	// 486 Allocation Quota Reached. Defaults 12, 40, 1000: a call page
	// holds up to three allocations per other participant (UDP and TURN
	// over TLS), and twice that while an ICE restart replaces them, so a
	// visit of 3 needs 12 per participant.
	MaxAllocationsPerParticipant int `yaml:"max_allocations_per_participant"`
	MaxAllocationsPerVisit       int `yaml:"max_allocations_per_visit"`
	MaxAllocations               int `yaml:"max_allocations"`
	// AllocationRate limits Allocate requests per participant (token
	// bucket, per second), keyed on the visit and participant a credential
	// names: a freshly minted credential of the same participant shares the
	// bucket. Default rate 1, burst 12 (a page of a visit of 3 allocates 6
	// at once, and 6 more at an ICE restart).
	AllocationRate RateLimit `yaml:"allocation_rate"`
	// MaxCredentials caps the per-participant allocation-rate table (LRU
	// eviction). Default 10000.
	MaxCredentials int `yaml:"max_credentials"`
	// UnauthenticatedRate limits responses without MESSAGE-INTEGRITY
	// (challenges, errors, Binding answers) per source address, so the
	// relay is no reflection amplifier. Default rate 5, burst 20. Such an
	// answer is also never more than 4 times the size of the request it
	// answers (it is not sent otherwise): a challenge to an Allocate that
	// carries REQUESTED-TRANSPORT fits with a realm of up to 36 bytes.
	UnauthenticatedRate RateLimit `yaml:"unauthenticated_rate"`
	// MaxSources caps the per-source table of UnauthenticatedRate. A
	// source's bucket leaves the table only once it has refilled; while
	// the table is full of sources that still owe, a new source shares the
	// bucket of its /24 (IPv4) or /64 (IPv6), in a second table of the same
	// size, and past that one bucket for every other source, so churning
	// through sources never resets a limit. Default 10000.
	MaxSources int `yaml:"max_sources"`
	// BandwidthBitsPerSecond caps each allocation in each direction.
	// Default 4000000 (4 Mbit/s).
	BandwidthBitsPerSecond int64 `yaml:"bandwidth_bits_per_second"`

	// DenyPeers are peer prefixes no allocation may reach (403 Forbidden).
	// Default: loopback, private, CGNAT, link-local, documentation,
	// benchmarking, multicast, reserved ranges (see DefaultRelayDenyPeers).
	// When set it replaces the default, except that 0.0.0.0/8, 127.0.0.0/8,
	// ::/128 and ::1/128 are always denied. IPv6 forms embedding IPv4
	// (mapped, compatible, NAT64, 6to4, Teredo) are checked as the IPv4.
	DenyPeers []netip.Prefix `yaml:"deny_peers"`

	// MaxTLSConns caps concurrent TURN-over-TLS connections. Default 1000.
	MaxTLSConns int `yaml:"max_tls_conns"`
	// TLSIdleTimeout closes a TURN-over-TLS connection that sends nothing
	// for this long. Default 5m.
	TLSIdleTimeout time.Duration `yaml:"tls_idle_timeout"`
	// TLSAllocateTimeout closes a TURN-over-TLS connection that has not
	// made an authenticated allocation (a successful Allocate, RFC 8656
	// §7.2) this long after it was handed to the relay, whatever it sent
	// meanwhile. Default 5s.
	TLSAllocateTimeout time.Duration `yaml:"tls_allocate_timeout"`
}

// DefaultRelayDenyPeers is the default peer deny list: special-purpose
// address blocks (RFC 6890 registries) a relay must never reach.
var DefaultRelayDenyPeers = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("127.0.0.0/8"),
	netip.MustParsePrefix("169.254.0.0/16"),
	netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("192.0.2.0/24"),
	netip.MustParsePrefix("192.88.99.0/24"),
	netip.MustParsePrefix("192.168.0.0/16"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("198.51.100.0/24"),
	netip.MustParsePrefix("203.0.113.0/24"),
	netip.MustParsePrefix("224.0.0.0/4"),
	netip.MustParsePrefix("240.0.0.0/4"),
	netip.MustParsePrefix("::/128"),
	netip.MustParsePrefix("::1/128"),
	netip.MustParsePrefix("fc00::/7"),
	netip.MustParsePrefix("fe80::/10"),
	netip.MustParsePrefix("ff00::/8"),
	netip.MustParsePrefix("100::/64"),
	netip.MustParsePrefix("2001:db8::/32"),
}

// relayAlwaysDenied are denied whatever DenyPeers says.
var relayAlwaysDenied = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("127.0.0.0/8"),
	netip.MustParsePrefix("::/128"),
	netip.MustParsePrefix("::1/128"),
}

// ApplyDefaults implements SectionDefaulter: it fills r's zero fields with
// their defaults. It is idempotent.
func (r *Relay) ApplyDefaults(c *Config) {
	*r = r.Defaults()
	r.TLSPort = r.AdvertisedTLSPort(c.Server.Listen)
}

// AdvertisedTLSPort is the port turns: URLs name (RFC 7065): TLSPort when
// set, else the port telegate serves TURN over TLS on — that of TLSListen
// when set, else that of the HTTPS listener httpsListen (server.listen,
// "host:port"), else 443.
func (r Relay) AdvertisedTLSPort(httpsListen string) int {
	if r.TLSPort > 0 {
		return r.TLSPort
	}
	listen := httpsListen
	if r.TLSListen != "" {
		listen = r.TLSListen
	}
	if _, p, err := net.SplitHostPort(listen); err == nil {
		if n, err := strconv.Atoi(p); err == nil && n > 0 {
			return n
		}
	}
	return 443
}

// Defaults returns r with every zero field set to its default. It is
// idempotent.
func (r Relay) Defaults() Relay {
	if r.Realm == "" {
		r.Realm = "telegate"
	}
	if r.Listen == "" {
		r.Listen = ":3478"
	}
	if r.PortMin == 0 {
		r.PortMin = 49152
	}
	if r.PortMax == 0 {
		r.PortMax = 65535
	}
	if r.CredentialTTL == 0 {
		r.CredentialTTL = 10 * time.Minute
	}
	if r.AllocationLifetime == 0 {
		r.AllocationLifetime = 10 * time.Minute
	}
	if r.MaxAllocationsPerParticipant == 0 {
		r.MaxAllocationsPerParticipant = 12
	}
	if r.MaxAllocationsPerVisit == 0 {
		r.MaxAllocationsPerVisit = 40
	}
	if r.MaxAllocations == 0 {
		r.MaxAllocations = 1000
	}
	if r.AllocationRate == (RateLimit{}) {
		r.AllocationRate = RateLimit{Rate: 1, Burst: 12}
	}
	if r.MaxCredentials == 0 {
		r.MaxCredentials = 10000
	}
	if r.UnauthenticatedRate == (RateLimit{}) {
		r.UnauthenticatedRate = RateLimit{Rate: 5, Burst: 20}
	}
	if r.MaxSources == 0 {
		r.MaxSources = 10000
	}
	if r.BandwidthBitsPerSecond == 0 {
		r.BandwidthBitsPerSecond = 4_000_000
	}
	if r.DenyPeers == nil {
		r.DenyPeers = append([]netip.Prefix(nil), DefaultRelayDenyPeers...)
	} else {
		deny := append([]netip.Prefix(nil), r.DenyPeers...)
		for _, p := range relayAlwaysDenied {
			if !slices.Contains(deny, p) {
				deny = append(deny, p)
			}
		}
		r.DenyPeers = deny
	}
	if r.MaxTLSConns == 0 {
		r.MaxTLSConns = 1000
	}
	if r.TLSIdleTimeout == 0 {
		r.TLSIdleTimeout = 5 * time.Minute
	}
	if r.TLSAllocateTimeout == 0 {
		r.TLSAllocateTimeout = 5 * time.Second
	}
	return r
}

// Validate implements Validator: with the relay enabled, its listeners
// parse, it has relay addresses (at most one IPv4 and one IPv6), external
// addresses pair with them, the port range is ordered, secrets are long
// enough, and every server name is one the gateway has a certificate for.
func (r *Relay) Validate(c *Config, rep *Report) {
	if !r.Enabled {
		return
	}
	if err := CheckListenAddr(r.Listen); err != nil {
		rep.Errorf("listen", "%v", err)
	}
	if r.TLSListen != "" {
		if err := CheckListenAddr(r.TLSListen); err != nil {
			rep.Errorf("tls_listen", "%v", err)
		}
	}
	if len(r.RelayAddresses) == 0 {
		rep.Errorf("relay_addresses", "is required with the relay enabled: the address(es) relay sockets bind to, e.g. [203.0.113.10]")
	}
	var v4, v6 int
	for _, a := range r.RelayAddresses {
		if a.Unmap().Is4() {
			v4++
		} else {
			v6++
		}
		if a.IsUnspecified() || a.IsMulticast() {
			rep.Errorf("relay_addresses", "%s is not a unicast address", a)
		}
	}
	if v4 > 1 || v6 > 1 {
		rep.Errorf("relay_addresses", "at most one IPv4 and one IPv6 address")
	}
	if len(r.ExternalAddresses) > 0 && len(r.ExternalAddresses) != len(r.RelayAddresses) {
		rep.Errorf("external_addresses", "must pair with relay_addresses by position (%d vs %d)", len(r.ExternalAddresses), len(r.RelayAddresses))
	}
	if r.PortMin > r.PortMax {
		rep.Errorf("port_min", "must not be above port_max")
	}
	CheckRateLimit(rep.Sub("allocation_rate"), r.AllocationRate)
	CheckRateLimit(rep.Sub("unauthenticated_rate"), r.UnauthenticatedRate)
	for i, s := range r.Secrets {
		if err := CheckRelaySecret(s); err != nil {
			rep.Errorf(fmt.Sprintf("secrets[%d]", i), "%v", err)
		}
	}
	if r.SecretsFile != "" {
		if len(r.Secrets) > 0 {
			rep.Errorf("secrets_file", "set either secrets or secrets_file, not both")
		} else if _, err := ReadRelaySecretsFile(r.SecretsFile); err != nil {
			rep.Errorf("secrets_file", "%v", err)
		}
	}
	for i, name := range r.ServerNames {
		if !tlsNamed(c, name) {
			rep.Errorf(fmt.Sprintf("server_names[%d]", i), "%q is not a name in tls.hosts: the gateway has no certificate for it", name)
		}
	}
}

// tlsNamed reports whether name is one of the tls.hosts names (case-insensitively).
func tlsNamed(c *Config, name string) bool {
	for _, h := range c.TLS.Hosts {
		for _, n := range h.Names {
			if strings.EqualFold(strings.TrimSuffix(n, "."), strings.TrimSuffix(name, ".")) {
				return true
			}
		}
	}
	return false
}
