package relay

import (
	"strings"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/media/relay/turnwire"
)

func mustLimits(t *testing.T, c config.Relay) *Limits {
	t.Helper()
	l, err := NewLimits(c)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestSetLimitsQuotaTakesEffectForNextAllocation: a raised per-participant
// quota admits the next allocation; a lowered one refuses the next while
// the allocations already made stay.
func TestSetLimitsQuotaTakesEffectForNextAllocation(t *testing.T) {
	t.Parallel()
	base := func(c *config.Relay) { c.MaxAllocationsPerParticipant = 1 }
	f := newFixture(t, base)
	f.s.Admit("v", "a")
	first := f.client(t, "v", "a")
	if _, err := first.Allocate(turnwire.UDP); err != nil {
		t.Fatal(err)
	}
	if _, err := f.client(t, "v", "a").Allocate(turnwire.UDP); turnwire.Code(err) != 486 {
		t.Fatalf("second allocation under a quota of 1: %v, want 486", err)
	}
	f.s.SetLimits(mustLimits(t, config.Relay{MaxAllocationsPerParticipant: 2, AllocationRate: config.RateLimit{Rate: 1000, Burst: 1000}}))
	if _, err := f.client(t, "v", "a").Allocate(turnwire.UDP); err != nil {
		t.Fatalf("second allocation after the quota was raised to 2: %v", err)
	}
	f.s.SetLimits(mustLimits(t, config.Relay{MaxAllocationsPerParticipant: 1, AllocationRate: config.RateLimit{Rate: 1000, Burst: 1000}}))
	if _, err := f.client(t, "v", "a").Allocate(turnwire.UDP); turnwire.Code(err) != 486 {
		t.Fatalf("allocation after the quota was lowered to 1: %v, want 486", err)
	}
	if err := first.Refresh(time.Minute); err != nil {
		t.Fatalf("an allocation made before the quota was lowered was closed: %v", err)
	}
}

// TestSetLimitsRatesTTLAndBandwidth: the per-credential rate limiter
// already made takes the new rate, new credentials carry the new
// lifetime, and a live allocation is capped at the new bandwidth.
func TestSetLimitsRatesTTLAndBandwidth(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(c *config.Relay) {
		c.AllocationRate = config.RateLimit{Rate: 0.001, Burst: 1}
		c.MaxAllocationsPerParticipant = 10
	})
	f.s.Admit("v", "p")
	cred := f.s.Credential("v", "p")
	if _, err := f.clientWith(t, cred.Username, cred.Password).Allocate(turnwire.UDP); err != nil {
		t.Fatal(err)
	}
	if _, err := f.clientWith(t, cred.Username, cred.Password).Allocate(turnwire.UDP); turnwire.Code(err) != 486 {
		t.Fatalf("past the allocation rate: %v, want 486", err)
	}
	f.s.SetLimits(mustLimits(t, config.Relay{
		MaxAllocationsPerParticipant: 10,
		AllocationRate:               config.RateLimit{Rate: 1000, Burst: 5},
		CredentialTTL:                30 * time.Second,
		BandwidthBitsPerSecond:       1_000_000,
	}))
	time.Sleep(20 * time.Millisecond) // the bucket refills at the new rate
	if _, err := f.clientWith(t, cred.Username, cred.Password).Allocate(turnwire.UDP); err != nil {
		t.Fatalf("after the allocation rate was raised: %v", err)
	}
	if d := time.Until(f.s.Credential("v", "p").Expires); d > 31*time.Second || d < 28*time.Second {
		t.Errorf("new credential expires in %v, want about 30s", d)
	}
	f.s.mu.Lock()
	defer f.s.mu.Unlock()
	if len(f.s.byTuple) == 0 {
		t.Fatal("no live allocation")
	}
	for _, a := range f.s.byTuple {
		if got, want := a.conn.up.Limit(), rate.Limit(1_000_000/8); got != want {
			t.Errorf("live allocation capped at %v B/s, want %v", got, want)
		}
	}
}

func TestNewLimitsNamesField(t *testing.T) {
	t.Parallel()
	for want, c := range map[string]config.Relay{
		"relay.allocation_rate":           {AllocationRate: config.RateLimit{Rate: -1, Burst: 1}},
		"relay.unauthenticated_rate":      {UnauthenticatedRate: config.RateLimit{Rate: 1, Burst: -1}},
		"relay.bandwidth_bits_per_second": {BandwidthBitsPerSecond: 100},
		"relay.max_allocations":           {MaxAllocationsPerVisit: -1},
		"relay.credential_ttl":            {CredentialTTL: -time.Second},
	} {
		if _, err := NewLimits(c); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("NewLimits: %v, want an error naming %s", err, want)
		}
	}
	if _, err := NewLimits(config.Relay{}); err != nil {
		t.Errorf("NewLimits of the defaults: %v", err)
	}
}
