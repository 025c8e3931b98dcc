// Package edgetls supplies certificates for telegate's public listener with
// certmagic: ACME (RFC 8555), operator files, or a local CA.
package edgetls

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log/slog"
	"net/http"

	"github.com/telegate/telegate/config"
)

// Options configures New.
type Options struct {
	Config     *config.Config
	Logger     *slog.Logger
	HTTPClient *http.Client
}

// Manager owns the public listener's certificates.
type Manager struct{}

// New sets up certificate management.
func New(ctx context.Context, o Options) (*Manager, error) {
	return nil, errors.New("edgetls: not implemented")
}

// TLSConfig for the HTTPS listener.
func (m *Manager) TLSConfig() *tls.Config { return &tls.Config{MinVersion: tls.VersionTLS12} }

// HTTPHandler answers ACME HTTP-01 and redirects to HTTPS.
func (m *Manager) HTTPHandler() http.Handler { return http.NotFoundHandler() }

// LocalRootPath is the local CA root certificate path, or "".
func (m *Manager) LocalRootPath() string { return "" }

// ClientCAs are the configured client CA pools by id.
func (m *Manager) ClientCAs() map[string]*x509.CertPool { return nil }

// Close stops certificate management.
func (m *Manager) Close() error { return nil }
