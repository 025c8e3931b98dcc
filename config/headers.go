package config

import (
	"fmt"
	"strings"
)

// ReservedRequestHeaders are the request header fields that telegate
// removes from every client request before it is routed on, because only
// telegate may state them toward an upstream (it sets some itself) or
// because upstreams and their frameworks commonly trust them from a proxy
// in front of them: identities, client addresses, the original URL, the
// method. A field is removed when its name folds to an entry: ASCII case
// ignored, and "_" and "." read as "-" (CGI and many frameworks turn
// X_Forwarded_For and X-Forwarded-For into one variable). An entry ending
// in "*" is a prefix. The assertion header (assertion.header) is removed
// the same way, and routes[].strip_request_headers adds entries per
// route. X-Forwarded-* and Forwarded from server.trusted_proxies are read
// before the removal. docs/config.md lists these (TestConfigDocs).
var ReservedRequestHeaders = []string{
	// telegate's own, and what it sets toward the upstream.
	"X-Telegate-*", "X-Forwarded-*", "Forwarded", "X-Request-Id",
	// Client addresses.
	"X-Real-IP", "X-Client-IP", "Client-IP", "True-Client-IP", "X-Cluster-Client-IP",
	"CF-Connecting-IP", "Fastly-Client-IP", "X-Remote-Addr", "X-Remote-IP",
	"X-Originating-IP", "X-Original-Forwarded-For", "X-ProxyUser-IP", "X-Real-Port",
	// Identities, as authenticating proxies (oauth2-proxy, Kubernetes'
	// front proxy, Grafana's auth proxy, Google IAP, AWS ALB, Azure App
	// Service, Cloudflare Access, Pomerium, Kong) state them.
	"X-User", "X-Remote-User", "Remote-User", "X-Auth-Request-*",
	"X-Remote-Group", "X-Remote-Extra-*", "Impersonate-*", "X-WebAuth-*",
	"X-Auth-User", "X-Auth-Email", "X-Authenticated-*", "X-Remote-Email", "X-Email",
	"Proxy-User", "X-Proxy-User", "X-Credential-Username", "X-Consumer-*", "X-Userinfo",
	"X-Goog-Authenticated-User-*", "X-Goog-IAP-JWT-Assertion", "X-Amzn-OIDC-*",
	"X-MS-Client-Principal*", "X-MS-Token-*", "Cf-Access-*", "X-Pomerium-*",
	// Client certificates, as TLS-terminating proxies pass them on
	// (RFC 9440, nginx, HAProxy, IIS ARR): an upstream that trusts one
	// takes the client for the device it names.
	"Client-Cert", "Client-Cert-Chain", "SSL-Client-*", "X-SSL-*", "X-Client-Cert*",
	"X-Client-Verify", "X-ARR-ClientCert",
	// The original request, as rewriting proxies pass it on.
	"X-Original-URL", "X-Original-URI", "X-Rewrite-URL", "X-Original-Host", "X-Host",
	"X-Envoy-*",
	// Method overrides: an upstream that honours one would run another
	// method than the one the route's methods rule admitted.
	"X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override", "X-Original-Method",
}

// ReadRequestHeaders are request header fields that telegate reads
// itself to frame, route, authenticate or scan a request. A client field
// whose name folds to one of these (see ReservedRequestHeaders) but is
// spelled with "_" or "." ("Content_Length", "Transfer.Encoding",
// "Authorization_") is removed: telegate did not read it, and an upstream
// that folds "_" to "-" would take it for the field telegate decided on.
var ReadRequestHeaders = []string{
	"Content-Length", "Transfer-Encoding", "Host", "Content-Type", "Content-Encoding",
	"Authorization", "Cookie", "Connection", "Upgrade", "TE", "Trailer", "Expect",
	"Origin", "Sec-WebSocket-Key", "Sec-WebSocket-Protocol", "Sec-WebSocket-Version",
}

// CheckHeaderPattern is the rule for an entry of
// routes[].strip_request_headers: a header field name (RFC 9110 §5.1, a
// token without "*"), or a name prefix followed by "*" (such as
// "X-Auth-Request-*"). A lone "*" is refused: it would remove every
// field.
func CheckHeaderPattern(p string) error {
	name, _ := strings.CutSuffix(p, "*")
	switch {
	case p == "*":
		return fmt.Errorf("%q would remove every header; name the fields or a prefix such as X-Internal-*", p)
	case !tokenPattern.MatchString(name) || strings.Contains(name, "*"):
		return fmt.Errorf("%q is neither a header name nor a prefix ending in *", p)
	}
	return nil
}
