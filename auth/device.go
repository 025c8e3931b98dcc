package auth

import (
	"crypto/x509"
	"net/http"

	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/scope"
)

// deviceIdentity is DeviceIdentity of r's client certificate chain.
func (s *View) deviceIdentity(r *http.Request, route *config.Route) *scope.Identity {
	if r.TLS == nil {
		return nil
	}
	return s.DeviceIdentity(r.TLS.PeerCertificates, route)
}

// DeviceIdentity returns the device identity of a client certificate
// chain (leaf first, as the TLS handshake presented it) when it chains
// (RFC 5280 §6) to one of the CA pools of this View that route names, with
// the clientAuth extended key usage (RFC 5280 §4.2.1.12), at the service's
// clock; nil otherwise. The pools are the generation's (node.Generation
// ClientTrust), the same the TLS listeners verify with. The subject is
// the first URI SAN, else the first DNS SAN, else the subject common name.
// It implements gateway.DeviceChecker: the gateway asks it again, on every
// swap, for each proxied WebSocket a device holds open.
func (s *View) DeviceIdentity(chain []*x509.Certificate, route *config.Route) *scope.Identity {
	if len(chain) == 0 || route == nil {
		return nil
	}
	leaf := chain[0]
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	for _, caID := range route.ClientCert {
		pool := s.clientCAs[caID]
		if pool == nil {
			continue
		}
		_, err := leaf.Verify(x509.VerifyOptions{
			Roots:         pool,
			Intermediates: inter,
			CurrentTime:   s.now(),
			KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		})
		if err != nil {
			continue
		}
		sub := ""
		switch {
		case len(leaf.URIs) > 0:
			sub = leaf.URIs[0].String()
		case len(leaf.DNSNames) > 0:
			sub = leaf.DNSNames[0]
		default:
			sub = leaf.Subject.CommonName
		}
		if sub == "" {
			return nil
		}
		return &scope.Identity{
			Kind:     "device",
			Provider: caID,
			Issuer:   "device:" + caID,
			Subject:  sub,
			Roles:    []string{"device"},
			NotAfter: leaf.NotAfter,
		}
	}
	return nil
}
