package auth

import (
	"crypto/x509"
	"net/http"

	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/scope"
)

// deviceIdentity returns the device identity of r's client certificate when
// it chains (RFC 5280 §6) to one of the CA pools the route names, with the
// clientAuth extended key usage (RFC 5280 §4.2.1.12), at the service's
// clock; nil otherwise. The subject is the first URI SAN, else the first DNS
// SAN, else the subject common name.
func (s *View) deviceIdentity(r *http.Request, route *config.Route) *scope.Identity {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return nil
	}
	leaf := r.TLS.PeerCertificates[0]
	inter := x509.NewCertPool()
	for _, c := range r.TLS.PeerCertificates[1:] {
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
