package relay

import (
	"errors"
	"fmt"
	"time"

	"golang.org/x/time/rate"

	"github.com/telegate/telegate/config"
)

// LimitFields are the relay settings (their YAML names under relay:) that
// Limits carries, the ones a configuration reload applies through
// SetLimits. Every other relay setting — listeners, ports, relay and
// external addresses, secrets, realm, allocation lifetime, table sizes,
// the peer deny list — is fixed when New runs.
var LimitFields = []string{
	"credential_ttl",
	"max_allocations_per_participant",
	"max_allocations_per_visit",
	"max_allocations",
	"allocation_rate",
	"unauthenticated_rate",
	"bandwidth_bits_per_second",
	"max_tls_conns",
	"tls_idle_timeout",
	"tls_allocate_timeout",
}

// Limits are the relay's quotas, rates, bandwidth cap, credential
// lifetime and TURN-over-TLS connection limits, checked by NewLimits. A
// Limits is never changed once made.
type Limits struct {
	credentialTTL  time.Duration
	perParticipant int
	perVisit       int
	total          int
	allocRate      config.RateLimit
	unauthRate     config.RateLimit
	bandwidth      rate.Limit // bytes per second, each direction
	burst          int
	maxTLSConns    int
	tlsIdleTimeout time.Duration
	tlsAllocate    time.Duration
}

// NewLimits checks the limit settings of cfg (LimitFields; zero fields
// take config.Relay's defaults) and returns them. It opens nothing, so a
// reload can check them before anything changes. Errors name the key at
// fault ("relay.allocation_rate: …").
func NewLimits(cfg config.Relay) (*Limits, error) {
	cfg = cfg.Defaults()
	var errs []error
	bad := func(key, format string, a ...any) {
		errs = append(errs, fmt.Errorf("relay.%s: %s", key, fmt.Sprintf(format, a...)))
	}
	if cfg.MaxAllocationsPerParticipant < 0 || cfg.MaxAllocationsPerVisit < 0 || cfg.MaxAllocations < 0 {
		bad("max_allocations", "caps must be positive")
	}
	if cfg.BandwidthBitsPerSecond < 8*1600 {
		bad("bandwidth_bits_per_second", "%d is below one packet per second", cfg.BandwidthBitsPerSecond)
	}
	if cfg.UnauthenticatedRate.Rate <= 0 || cfg.UnauthenticatedRate.Burst <= 0 {
		bad("unauthenticated_rate", "rate and burst must be positive")
	}
	if cfg.AllocationRate.Rate <= 0 || cfg.AllocationRate.Burst <= 0 {
		bad("allocation_rate", "rate and burst must be positive")
	}
	if cfg.CredentialTTL < 0 {
		bad("credential_ttl", "must be positive")
	}
	if cfg.MaxTLSConns < 0 {
		bad("max_tls_conns", "must be positive")
	}
	if cfg.TLSIdleTimeout < 0 {
		bad("tls_idle_timeout", "must be positive")
	}
	if cfg.TLSAllocateTimeout < 0 {
		bad("tls_allocate_timeout", "must be positive")
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return &Limits{
		credentialTTL:  cfg.CredentialTTL,
		perParticipant: cfg.MaxAllocationsPerParticipant,
		perVisit:       cfg.MaxAllocationsPerVisit,
		total:          cfg.MaxAllocations,
		allocRate:      cfg.AllocationRate,
		unauthRate:     cfg.UnauthenticatedRate,
		bandwidth:      rate.Limit(float64(cfg.BandwidthBitsPerSecond) / 8),
		burst:          max(int(cfg.BandwidthBitsPerSecond/8/4), 16*1024),
		maxTLSConns:    cfg.MaxTLSConns,
		tlsIdleTimeout: cfg.TLSIdleTimeout,
		tlsAllocate:    cfg.TLSAllocateTimeout,
	}, nil
}

// SetLimits makes l the relay's limits (l from NewLimits; nil is
// ignored). From its return on, new credentials carry l's lifetime
// (credentials already handed out keep theirs), each new allocation is
// counted against l's quotas and rate, the per-participant and
// per-source rate limiters take l's rates, every allocation — live ones
// too — is capped at l's bandwidth, and new TURN-over-TLS connections are
// counted against l's cap, idle timeout and allocate deadline.
// Allocations over a lowered quota are not closed; they count until they
// end.
func (s *Server) SetLimits(l *Limits) {
	if l == nil {
		return
	}
	s.mu.Lock()
	s.lim.Store(l) // under mu: an allocation being added checks again (AllocatePacketConn)
	live := make([]*allocation, 0, len(s.byTuple))
	for _, a := range s.byTuple {
		live = append(live, a)
	}
	s.mu.Unlock()
	for _, lim := range s.allocRate.Values() {
		lim.SetLimit(rate.Limit(l.allocRate.Rate))
		lim.SetBurst(l.allocRate.Burst)
	}
	s.unauth.setRate(l.unauthRate)
	for _, a := range live {
		if a.conn == nil {
			continue
		}
		for _, r := range []*rate.Limiter{a.conn.up, a.conn.down} {
			r.SetLimit(l.bandwidth)
			r.SetBurst(l.burst)
		}
	}
	s.log.Info("relay limits applied", "credential_ttl", l.credentialTTL,
		"max_allocations_per_participant", l.perParticipant, "max_allocations_per_visit", l.perVisit,
		"max_allocations", l.total, "bandwidth_bytes_per_second", float64(l.bandwidth))
}

// limits are the limits in force.
func (s *Server) limits() *Limits { return s.lim.Load() }
