package webhook

import (
	"fmt"
	"strings"

	"github.com/telegate/telegate/config"
)

// FromConfig returns the Sender of c (url, timeout, secret_file,
// ca_file) with o's schedule, transport and registry, or nil when c has
// no URL. Its errors name the field ("url: …", "secret_file: …").
func FromConfig(c config.Webhook, o Options) (*Sender, error) {
	if c.URL == "" {
		return nil, nil
	}
	if err := config.CheckHTTPSURL(c.URL, false); err != nil {
		return nil, fmt.Errorf("url: %w", err)
	}
	o.URL, o.Timeout = c.URL, c.Timeout
	if c.SecretFile != "" {
		s, err := config.ReadSecretFile(c.SecretFile)
		if err != nil {
			return nil, fmt.Errorf("secret_file: %w", err)
		}
		o.Secret = []byte(strings.TrimSpace(s))
	}
	if c.CAFile != "" {
		pool, err := config.ReadCertPool(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("ca_file: %w", err)
		}
		o.RootCAs = pool
	}
	return New(o)
}
