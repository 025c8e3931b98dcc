package policies

import (
	"net/netip"
	"testing"

	"github.com/telegate/telegate/config"
)

func TestRouteLimiter(t *testing.T) {
	t.Parallel()
	clk := newClock()
	routes := []config.Route{
		{ID: "upload", RateLimit: &config.RateLimit{Rate: 1, Burst: 2}},
		{ID: "open", RateLimit: &config.RateLimit{}},
		{ID: "plain"},
	}
	r := NewRouteLimiter(config.RateLimits{PerClient: config.RateLimit{Rate: 1, Burst: 5}, PerSubject: config.RateLimit{Rate: 1, Burst: 4}}, routes, clk.now)
	a := netip.MustParseAddr("198.51.100.7")
	tests := []struct {
		name    string
		f       func() bool
		want    int
		subject bool
	}{
		{"route limit per client", func() bool { return r.AllowClient("upload", a) }, 2, false},
		{"route limit per subject", func() bool { return r.AllowSubject("upload", "iss\x00alice") }, 2, true},
		{"route without limit takes the defaults", func() bool { return r.AllowClient("plain", a) }, 5, false},
		{"defaults per subject", func() bool { return r.AllowSubject("plain", "iss\x00alice") }, 4, true},
		{"route rate 0 unlimited", func() bool { return r.AllowClient("open", a) }, 50, false},
		{"own endpoints take the defaults", func() bool { return r.AllowClient(".telegate", a) }, 5, false},
	}
	for _, tt := range tests {
		if got := allowed(50, tt.f); got != tt.want {
			t.Errorf("%s: passed %d of 50, want %d", tt.name, got, tt.want)
		}
	}
	r.SetRoutes([]config.Route{{ID: "plain", RateLimit: &config.RateLimit{Rate: 1, Burst: 10}}})
	// The bucket keeps its tokens (capped at the old burst of 5) and
	// refills to the new burst of 10.
	clk.add(10e9)
	if got := allowed(50, func() bool { return r.AllowClient("plain", a) }); got != 5 {
		t.Errorf("after SetRoutes: passed %d, want 5", got)
	}
	clk.add(10e9)
	if got := allowed(50, func() bool { return r.AllowClient("plain", a) }); got != 10 {
		t.Errorf("after SetRoutes and 10s: passed %d, want 10", got)
	}
}
