package gateway

import (
	"net/http"

	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/page"
	"github.com/telegate/telegate/policies"
	"github.com/telegate/telegate/scope"
)

// authoriseRoute decides a route for an identity: policies.Authorise (the
// route's binding to its providers, then its policy; deny by default,
// docs/architecture.md principle 2).
var authoriseRoute func(rt *config.Route, id *scope.Identity, method string) scope.Decision = policies.Authorise

// authenticate runs the Authenticator (session cookie, bearer token or
// client certificate), which attaches scope.Identity. Without an
// Authenticator (tests of public routes) every request is anonymous.
func (g *generation) authenticate(next http.Handler) http.Handler {
	if g.Auth == nil {
		return next
	}
	return g.Auth.Authenticate(next)
}

// authorise evaluates the route's policy for the identity and method, once,
// against the route id the router chose (docs/architecture.md "Router decides, policy
// follows"). The decision goes into the scope. An anonymous request that
// needs an identity is challenged (sign-in redirect, or 401 on API routes,
// RFC 6750 §3); every other deny is 403, and an identity from a provider
// the route does not name (scope.ReasonRouteProvider) is told so.
func (g *generation) authorise(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := scope.From(r.Context())
		d := g.o.BreakGlass.Reconsider(r.Context(), s, authoriseRoute(s.Route, s.Identity, r.Method))
		if d.Allow && d.Reason == "" {
			d = scope.Decision{Allow: false, Reason: scope.ReasonError} // fail closed
		}
		s.Decision = d
		if d.Allow {
			next.ServeHTTP(w, r)
			return
		}
		if s.Identity == nil && d.Reason == scope.ReasonUnauthenticated && g.Auth != nil {
			g.Auth.Challenge(w, r)
			return
		}
		if s.Identity == nil && d.Reason == scope.ReasonUnauthenticated {
			page.Error(w, r, http.StatusUnauthorized, "Sign-in is required.", "")
			return
		}
		if d.Reason == scope.ReasonRouteProvider {
			page.Write(w, r, page.Problem{Status: http.StatusForbidden, Reason: string(d.Reason),
				Message: "This page does not accept the account you signed in with.",
				Next:    "Sign out, then sign in with an account this page accepts."})
			return
		}
		if g.o.BreakGlass.Offer(w, r, s) {
			return
		}
		page.Error(w, r, http.StatusForbidden, "You are not allowed to open this page.", "")
	})
}
