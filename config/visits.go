package config

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// Visits configures video visits: the waiting room, admission, signaling
// and the built-in web client (package media). A zero field takes the
// default written next to it; the defaults are applied by media.New.
type Visits struct {
	Enabled bool `yaml:"enabled"`

	// InviteTTL is how long a patient invite link stays valid after it is
	// issued. Default 24h.
	InviteTTL time.Duration `yaml:"invite_ttl"`
	// MaxDuration ends a visit this long after its first admission. A visit
	// nobody was admitted to lapses MaxDuration after its invite expires.
	// Default 2h.
	MaxDuration time.Duration `yaml:"max_duration"`
	// DefaultParticipants is the participant cap of a visit created
	// without one: how many people may be in its call at once, the
	// clinician who hosts it, the patient and every guest counted. Every
	// participant connects to every other through the relay (a mesh).
	// Default 4.
	DefaultParticipants int `yaml:"default_participants"`
	// MaxParticipants is the largest cap a visit may ask for. Default 6.
	MaxParticipants int `yaml:"max_participants"`
	// MaxWaiting bounds the waiting room of one visit. Default 10.
	MaxWaiting int `yaml:"max_waiting"`
	// WaitingGrace drops a waiting participant from the clinician's list
	// once their waiting-room page has gone unheard this long (tab
	// closed, device gone); a few seconds after it goes quiet they are
	// shown as away. Opening the invite link again puts them back.
	// Default 2m; at least 10s.
	WaitingGrace time.Duration `yaml:"waiting_grace"`
	// AllowAnyClinician lets every clinician admit, decline, remove and end
	// in any visit; by default only the clinician who created it may.
	AllowAnyClinician bool `yaml:"allow_any_clinician"`

	// GuestLinkTTL is how long a guest link (an interpreter, a family
	// member, a second clinician, invited by the host into one visit)
	// stays valid after it is issued; a link is used up by the first
	// person who joins with it. Default 30m; between 1m and 24h.
	GuestLinkTTL time.Duration `yaml:"guest_link_ttl"`
	// MaxGuestLinks caps the guest links of one visit that are issued and
	// neither used nor expired. Default 4; at most 32.
	MaxGuestLinks int `yaml:"max_guest_links"`
	// GuestsWithoutAccount lets a guest join with a guest link without
	// signing in: they type a name and wait in the waiting room, and once
	// admitted take part in that one visit. Their session (a cookie
	// telegate issues) is good for that visit's pages, relay credentials
	// and signaling only, nothing else on the gateway. Default off: a
	// guest signs in first (on in demo mode).
	GuestsWithoutAccount bool `yaml:"guests_without_account"`
	// GuestProvider is the provider id (from providers:) that the guest
	// page's "Sign in" goes to, e.g. an identity provider for people from
	// outside the clinic. Default none: the sign-in chooser.
	GuestProvider string `yaml:"guest_provider"`

	// MaxVisits caps the visits that are not yet ended. Default 10000.
	MaxVisits int `yaml:"max_visits"`
	// MaxVisitsPerOwner caps the open visits of one clinician. Default 50.
	MaxVisitsPerOwner int `yaml:"max_visits_per_owner"`
	// Retention keeps an ended visit (for its status page) this long before
	// it is deleted. Default 24h.
	Retention time.Duration `yaml:"retention"`

	// MaxPeers caps the signaling WebSockets across all visits. Default 2000.
	MaxPeers int `yaml:"max_peers"`
	// MaxMessageBytes caps one signaling message. Default 65536.
	MaxMessageBytes int64 `yaml:"max_message_bytes"`
	// MessageRate (per second) and MessageBurst are a participant's
	// signaling allowance, shared by its successive sockets; a participant
	// past it has its socket closed (1008). Each socket's send queue is
	// sized for the burst (docs/visits.md, "Signaling"). Defaults 20 and
	// 200; the burst at most 1000.
	MessageRate  float64 `yaml:"message_rate"`
	MessageBurst int     `yaml:"message_burst"`

	// ICEHost is the host name put into TURN URLs. Default the host the
	// request came in on. With visits on Redis, a node with `ice_host`
	// registers its relay for relay choice across nodes
	// (docs/deployment.md, "Several nodes").
	ICEHost string `yaml:"ice_host"`
	// Bearer lists bearer issuer ids (from bearer:) whose JWT access tokens
	// may call the visits API (RFC 6750 §2.1), e.g. a hospital's scheduling
	// app whose tokens map to role "service". Default none: the API then
	// takes sign-in sessions only.
	Bearer []string `yaml:"bearer"`
}

// ApplyDefaults implements SectionDefaulter: it fills v's zero fields with
// their defaults. It is idempotent.
func (v *Visits) ApplyDefaults(*Config) { *v = v.Defaults() }

// Defaults returns v with every zero field set to its default (see the
// field comments). It is idempotent.
func (v Visits) Defaults() Visits {
	if v.InviteTTL <= 0 {
		v.InviteTTL = 24 * time.Hour
	}
	if v.MaxDuration <= 0 {
		v.MaxDuration = 2 * time.Hour
	}
	if v.DefaultParticipants <= 0 {
		v.DefaultParticipants = 4
	}
	if v.MaxParticipants <= 0 {
		v.MaxParticipants = 6
		if v.DefaultParticipants > v.MaxParticipants {
			v.MaxParticipants = v.DefaultParticipants
		}
	}
	if v.MaxWaiting <= 0 {
		v.MaxWaiting = 10
	}
	if v.GuestLinkTTL <= 0 {
		v.GuestLinkTTL = 30 * time.Minute
	}
	if v.MaxGuestLinks <= 0 {
		v.MaxGuestLinks = 4
	}
	if v.MaxVisits <= 0 {
		v.MaxVisits = 10000
	}
	if v.MaxVisitsPerOwner <= 0 {
		v.MaxVisitsPerOwner = 50
	}
	if v.WaitingGrace <= 0 {
		v.WaitingGrace = 2 * time.Minute
	}
	if v.Retention <= 0 {
		v.Retention = 24 * time.Hour
	}
	if v.MaxPeers <= 0 {
		v.MaxPeers = 2000
	}
	if v.MaxMessageBytes <= 0 {
		v.MaxMessageBytes = 64 << 10
	}
	if v.MessageRate <= 0 {
		v.MessageRate = 20
	}
	if v.MessageBurst <= 0 {
		v.MessageBurst = 200
	}
	return v
}

// Validate implements Validator for the visits section (defaults applied).
func (v *Visits) Validate(c *Config, r *Report) {
	if v.InviteTTL < time.Minute || v.InviteTTL > 30*24*time.Hour {
		r.Errorf("invite_ttl", "must be between 1m and 720h")
	}
	if v.MaxDuration < time.Minute || v.MaxDuration > 24*time.Hour {
		r.Errorf("max_duration", "must be between 1m and 24h")
	}
	if v.MaxParticipants < 2 || v.MaxParticipants > 16 {
		r.Errorf("max_participants", "must be between 2 and 16 (every participant connects to every other)")
	}
	if v.DefaultParticipants < 2 || v.DefaultParticipants > v.MaxParticipants {
		r.Errorf("default_participants", "must be between 2 and max_participants")
	}
	if v.MaxMessageBytes < 4096 || v.MaxMessageBytes > 1<<20 {
		r.Errorf("max_message_bytes", "must be between 4096 and 1048576")
	}
	if v.MessageBurst > 1000 {
		r.Errorf("message_burst", "must be at most 1000 (every signaling socket's send queue holds a burst)")
	}
	if v.MaxWaiting > 1000 {
		r.Errorf("max_waiting", "must be at most 1000")
	}
	if v.WaitingGrace != 0 && v.WaitingGrace < 10*time.Second {
		r.Errorf("waiting_grace", "must be at least 10s (a waiting page is away after 6s without a poll)")
	}
	if v.GuestLinkTTL < time.Minute || v.GuestLinkTTL > 24*time.Hour {
		r.Errorf("guest_link_ttl", "must be between 1m and 24h")
	}
	if v.MaxGuestLinks > 32 {
		r.Errorf("max_guest_links", "must be at most 32")
	}
	if v.GuestProvider != "" && !slices.ContainsFunc(c.Providers, func(p Provider) bool { return p.ID == v.GuestProvider }) {
		r.Errorf("guest_provider", "no provider has id %q", v.GuestProvider)
	}
	if strings.ContainsAny(v.ICEHost, ":/ ?#@[]") {
		r.Errorf("ice_host", "must be a host name without scheme, port or path")
	}
	for i, id := range v.Bearer {
		if !slices.ContainsFunc(c.Bearer, func(b Bearer) bool { return b.ID == id }) {
			r.Errorf(fmt.Sprintf("bearer[%d]", i), "no bearer issuer has id %q", id)
		}
	}
}

// DemoDefaults implements DemoDefaulter: visits on, and TURN URLs naming the
// relay's loopback address literally, so that browsers do not have to pick
// between the addresses "localhost" resolves to.
func (v *Visits) DemoDefaults(c *Config, _ DemoOptions) {
	v.Enabled = true
	// Loopback only: a third window can try a guest without an account.
	v.GuestsWithoutAccount = true
	if v.ICEHost != "" {
		return
	}
	if host, _, err := net.SplitHostPort(c.Relay.Listen); err == nil {
		if a, err := netip.ParseAddr(host); err == nil && a.Is4() {
			v.ICEHost = a.String()
		}
	}
}
