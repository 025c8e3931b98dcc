package policies

import (
	"testing"

	"github.com/telegate/telegate/config"
)

func TestRouteLimits(t *testing.T) {
	t.Parallel()
	own := config.RateLimit{Rate: 1, Burst: 2}
	cfg := &config.Config{
		RateLimits: config.RateLimits{PerClient: config.RateLimit{Rate: 5, Burst: 6}, PerSubject: config.RateLimit{Rate: 3, Burst: 4}},
		Routes:     []config.Route{{ID: "upload", RateLimit: &own}, {ID: "plain"}},
	}
	l := NewRouteLimits(cfg)
	own.Burst = 99 // the generation holds a copy
	cfg.RateLimits.PerClient.Burst = 99
	d := config.DefaultRateLimits()
	tests := []struct {
		name      string
		got, want config.RateLimit
	}{
		{"route's own limit per client", l.Client("upload"), config.RateLimit{Rate: 1, Burst: 2}},
		{"route's own limit per subject", l.Subject("upload"), config.RateLimit{Rate: 1, Burst: 2}},
		{"route without a limit: rate_limits.per_client", l.Client("plain"), config.RateLimit{Rate: 5, Burst: 6}},
		{"route without a limit: rate_limits.per_subject", l.Subject("plain"), config.RateLimit{Rate: 3, Burst: 4}},
		{"own endpoints: rate_limits", l.Client(".telegate"), config.RateLimit{Rate: 5, Burst: 6}},
		{"unknown route: rate_limits", l.Subject("gone"), config.RateLimit{Rate: 3, Burst: 4}},
		{"configuration without defaults applied", NewRouteLimits(&config.Config{}).Client("r"), d.PerClient},
		{"no configuration", NewRouteLimits(nil).Subject("r"), d.PerSubject},
		{"nil", (*RouteLimits)(nil).Client("r"), d.PerClient},
	}
	for _, tc := range tests {
		if tc.got != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.name, tc.got, tc.want)
		}
	}
	if d.PerClient != (config.RateLimit{Rate: config.DefaultPerClientRate, Burst: config.DefaultPerClientBurst}) ||
		d.PerSubject != (config.RateLimit{Rate: config.DefaultPerSubjectRate, Burst: config.DefaultPerSubjectBurst}) {
		t.Errorf("DefaultRateLimits %+v does not hold the config defaults", d)
	}
}
