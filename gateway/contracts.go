package gateway

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"

	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/policies"
	"github.com/telegate/telegate/scope"
)

// Authenticator is the control plane's "who is this" stage (package auth).
type Authenticator interface {
	// Authenticate attaches scope.Identity from a client certificate, a
	// bearer token (API routes) or the session cookie, and strips
	// telegate's own cookies from the request. It never denies on its own
	// except for a malformed or invalid bearer token (401).
	Authenticate(next http.Handler) http.Handler
	// Challenge answers a request that needs an identity and has none:
	// a redirect to sign in for browsers, 401 JSON with WWW-Authenticate
	// for API routes (RFC 6750 §3).
	Challenge(w http.ResponseWriter, r *http.Request)
	// Handler serves telegate's own auth endpoints under /.telegate/
	// (login, callback/{provider}, logout, backchannel-logout/{provider}).
	Handler() http.Handler
}

// DeviceChecker is implemented by an Authenticator that maps client
// certificates to device identities (auth.View). On every swap the
// gateway asks the new generation's, for each proxied WebSocket a device
// holds open, whether the certificate chain that admitted it still maps
// to the same identity on its route (the device CAs may have changed);
// one that does not is closed. An Authenticator without it closes every
// device's WebSocket on a swap (fail closed).
type DeviceChecker interface {
	// DeviceIdentity is the identity of chain (leaf first) on route, nil
	// when none of the route's client CAs vouches for it.
	DeviceIdentity(chain []*x509.Certificate, route *config.Route) *scope.Identity
}

// Inspector is the WAF stage (package policies).
type Inspector interface {
	Inspect(next http.Handler) http.Handler
}

// Certificates supplies TLS for the public listener (package gateway/edgetls).
type Certificates interface {
	// TLSConfig for a TLS listener offering protos by ALPN (none: h2,
	// http/1.1; acme-tls/1 added when challenges need it): certificates
	// by SNI, TLS 1.2+, client certificates verified if given. A reload
	// of the configuration reaches every handshake on it, with these
	// protos (the config's GetConfigForClient); a listener's additions to
	// a clone of it need not.
	TLSConfig(protos ...string) *tls.Config
	// HTTPHandler answers ACME HTTP-01 challenges and redirects everything
	// else to HTTPS.
	HTTPHandler() http.Handler
}

// Limiter holds the rate-limit buckets (package policies): the
// in-memory policies.Limiter or the policies.RedisLimiter. Bounded (cap +
// eviction) and safe for concurrent use.
type Limiter = policies.Buckets
