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
	"CF-Connecting-IP", "Fastly-Client-IP", "X-Remote-Addr",
	// Identities.
	"X-User", "X-Remote-User", "Remote-User", "X-Auth-Request-*",
	// The original request, as rewriting proxies pass it on.
	"X-Original-URL", "X-Original-URI", "X-Rewrite-URL", "X-Original-Host",
	// Method overrides: an upstream that honours one would run another
	// method than the one the route's methods rule admitted.
	"X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override",
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
