package policies

import (
	"slices"

	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/scope"
)

// Bound reports whether id was vouched for by one of the sources route rt
// accepts, the precondition of every criterion of its policy (Authorise)
// and of break-glass on it:
//   - a session (Kind "session") by one of rt.Providers (any provider when
//     the list is empty), and never on a route that names client CAs
//     (rt.ClientCert: devices only);
//   - a bearer token (Kind "bearer") by one of rt.Bearer;
//   - a device (Kind "device") by one of rt.ClientCert, its issuer being
//     "device:<ca id>".
//
// Ids compare exactly. An identity without a provider, or of another
// kind, is bound to no route.
func Bound(rt *config.Route, id *scope.Identity) bool {
	if rt == nil || id == nil || id.Provider == "" || id.Issuer == "" {
		return false
	}
	switch id.Kind {
	case "session":
		return len(rt.ClientCert) == 0 && (len(rt.Providers) == 0 || slices.Contains(rt.Providers, id.Provider))
	case "bearer":
		return slices.Contains(rt.Bearer, id.Provider)
	case "device":
		return slices.Contains(rt.ClientCert, id.Provider) && id.Issuer == "device:"+id.Provider
	}
	return false
}

// Authorise decides whether id may pass route rt: Evaluate of rt's policy,
// with the route's binding (Bound) checked once the request is known to
// carry an identity, before the method and every allow rule. An identity
// the route is not bound to is denied with scope.ReasonRouteProvider
// whatever its roles, groups, claims, subject or second factor, and
// break-glass never reconsiders that (BreakGlass.Reconsider). A nil rt is
// denied "no-policy". Public routes admit everyone as Evaluate says: a
// signed-in caller is not refused where an anonymous one passes.
func Authorise(rt *config.Route, id *scope.Identity, method string) scope.Decision {
	if rt == nil {
		return deny(scope.ReasonNoPolicy)
	}
	return evaluate(rt.Policy, rt, id, method)
}
