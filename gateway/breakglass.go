package gateway

import (
	"strings"

	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/policies"
)

// BreakGlassPath is policies.BreakGlassPath, under OwnPrefix.
const BreakGlassPath = policies.BreakGlassPath

// BreakGlassUsesPath is policies.BreakGlassUsesPath: the review page of
// break-glass uses, for identities holding break_glass.reviewer_roles.
const BreakGlassUsesPath = policies.BreakGlassUsesPath

// routeByID is the generation's route with id, or nil.
func (g *generation) routeByID(id string) *config.Route {
	for i := range g.cfg.Routes {
		if g.cfg.Routes[i].ID == id {
			return &g.cfg.Routes[i]
		}
	}
	return nil
}

// breakGlassReturn is where a break-glass grant on rt sends the browser
// of a request to host (canonical): rd (query dropped) when it is a
// canonical path (CanonicalPath returns it unchanged) that the request
// chain itself would give to rt — resolve, the router's one reading, with
// letter case, Unicode normalisation and ';' as for a request — else the
// route's own canonical prefix; never anywhere else (no open redirect,
// no other route, not telegate's endpoints).
func (g *generation) breakGlassReturn(host string, rt *config.Route, rd string) string {
	home, _, err := CanonicalPath(rt.Path) // checked when the router was built
	if err != nil || home == "" {
		home = "/"
	}
	rd, _, _ = strings.Cut(rd, "?")
	c, flags, err := canonicalPath(rd)
	if err != nil || c != rd {
		return home
	}
	if route, isOwn, reason := g.resolve(host, c, flags&pathSemicolon != 0, false); reason != "" || isOwn || route == nil || route.ID != rt.ID {
		return home
	}
	return c
}
