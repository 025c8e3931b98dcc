package config

// Visits configures video visits. See media.
type Visits struct {
	Enabled bool `yaml:"enabled"`
}
