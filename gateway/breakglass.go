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

// breakGlassReturn is where a break-glass grant sends the browser: rd
// when it is a canonical path on the route (query dropped), else the
// route's own path — never anywhere else (no open redirect).
func breakGlassReturn(rt *config.Route, rd string) string {
	rd, _, _ = strings.Cut(rd, "?")
	if c, _, err := CanonicalPath(rd); err != nil || c != rd || !prefixMatch(rt.Path, rd) {
		return rt.Path
	}
	return rd
}
