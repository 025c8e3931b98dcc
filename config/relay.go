package config

// Relay configures the embedded TURN relay (RFC 8656). See media/relay.
type Relay struct {
	Enabled bool `yaml:"enabled"`
}
