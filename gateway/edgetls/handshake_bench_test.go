package edgetls

import (
	"crypto/tls"
	"net"
	"testing"
	"time"

	"github.com/telegate/telegate/config"
)

// BenchmarkHandshake is one full TLS 1.3 handshake with a device
// certificate over an in-memory pipe: "generation" takes the config of
// the selection in force per ClientHello (TLSConfig, as served), "static"
// the same settings fixed at start (GetConfigForClient unset), as before
// device CAs reloaded. Compare the two as a ratio from one run.
func BenchmarkHandshake(b *testing.B) {
	ca := newTestCA(b, "Carts")
	dir := b.TempDir()
	cfg := baseConfig(b, config.TLSHost{Names: []string{"localhost"}, Mode: ModeLocal})
	cfg.ClientCAs = []config.ClientCA{{ID: "carts", CAFile: writeFile(b, dir, "ca.pem", ca.certPEM())}}
	m, err := New(b.Context(), Options{Config: cfg})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	roots := rootPool(b, m.LocalRootPath())
	c, k := ca.issue(b, 2, true, time.Now().Add(time.Hour), "cart-1")
	dev, err := tls.X509KeyPair(c, k)
	if err != nil {
		b.Fatal(err)
	}
	client := &tls.Config{RootCAs: roots, ServerName: "localhost", Certificates: []tls.Certificate{dev}, NextProtos: []string{"h2"},
		SessionTicketsDisabled: true}
	served := m.TLSConfig("h2", "http/1.1")
	static := served.Clone()
	static.GetConfigForClient = nil
	for _, tc := range []struct {
		name string
		cfg  *tls.Config
	}{{"generation", served}, {"static", static}, {"generation", served}, {"static", static}} {
		b.Run(tc.name, func(b *testing.B) {
			for b.Loop() {
				sc, cc := net.Pipe()
				done := make(chan error, 1)
				go func() { done <- tls.Server(sc, tc.cfg).Handshake() }()
				if err := tls.Client(cc, client).Handshake(); err != nil {
					b.Fatal(err)
				}
				if err := <-done; err != nil {
					b.Fatal(err)
				}
				sc.Close()
				cc.Close()
			}
		})
	}
}
