package config

import "time"

// Visits configures video visits: the waiting room, admission, signaling
// and the built-in web client (package media). A zero field takes the
// default written next to it; the defaults are applied by media.New.
type Visits struct {
	Enabled bool `yaml:"enabled"`

	// InviteTTL is how long a patient invite link stays valid after it is
	// issued. Default 24h.
	InviteTTL time.Duration `yaml:"invite_ttl"`
	// MaxDuration ends a visit this long after its first admission. A visit
	// nobody was admitted to lapses when its invite expires. Default 2h.
	MaxDuration time.Duration `yaml:"max_duration"`
	// DefaultParticipants is the participant cap (the owner included) of a
	// visit created without one. Default 2.
	DefaultParticipants int `yaml:"default_participants"`
	// MaxParticipants is the largest cap a visit may ask for. Default 6.
	MaxParticipants int `yaml:"max_participants"`
	// MaxWaiting bounds the waiting room of one visit. Default 10.
	MaxWaiting int `yaml:"max_waiting"`
	// AllowAnyClinician lets every clinician admit, decline, remove and end
	// in any visit; by default only the clinician who created it may.
	AllowAnyClinician bool `yaml:"allow_any_clinician"`

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
	// MessageRate (per second) and MessageBurst bound the signaling
	// messages of one WebSocket; a socket past them is closed. Defaults 20
	// and 200.
	MessageRate  float64 `yaml:"message_rate"`
	MessageBurst int     `yaml:"message_burst"`

	// ICEHost is the host name put into TURN URLs. Default the host the
	// request came in on.
	ICEHost string `yaml:"ice_host"`
}
