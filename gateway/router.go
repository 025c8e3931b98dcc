package gateway

import (
	"fmt"
	"net/http"
	"sort"
	"strings"

	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/scope"
)

// OwnPrefix is the path prefix of telegate's own endpoints on every host.
const OwnPrefix = "/.telegate/"

// router maps (canonical host, canonical path) to one route.
type router struct {
	hosts map[string][]*config.Route // sorted by len(Path), longest first
}

// newRouter indexes routes by host. A route without Hosts serves every name
// of tls.hosts; when there are none it is a configuration error (an unknown
// host never falls through to a permissive default).
func newRouter(cfg *config.Config) (*router, error) {
	rt := &router{hosts: map[string][]*config.Route{}}
	var tlsNames []string
	for _, h := range cfg.TLS.Hosts {
		tlsNames = append(tlsNames, h.Names...)
	}
	seen := map[string]bool{}
	for i := range cfg.Routes {
		route := &cfg.Routes[i]
		hosts := route.Hosts
		if len(hosts) == 0 {
			hosts = tlsNames
		}
		if len(hosts) == 0 {
			return nil, fmt.Errorf("route %q: no hosts, and tls.hosts names none: list the route's hosts", route.ID)
		}
		for _, h := range hosts {
			ch, err := CanonicalHost(h)
			if err != nil {
				return nil, fmt.Errorf("route %q: host %q: %w", route.ID, h, err)
			}
			key := ch + " " + route.Path
			if seen[key] {
				return nil, fmt.Errorf("route %q: host %q path %q is already served by another route", route.ID, ch, route.Path)
			}
			seen[key] = true
			rt.hosts[ch] = append(rt.hosts[ch], route)
		}
	}
	for _, rs := range rt.hosts {
		sort.SliceStable(rs, func(i, j int) bool { return len(rs[i].Path) > len(rs[j].Path) })
	}
	return rt, nil
}

// match returns the route for a canonical host and path, or nil. Hosts
// compare exactly (both are canonical: lower case, no trailing dot, no
// port). The longest matching prefix wins; a prefix matches at a segment
// boundary: "/clinic/" matches "/clinic/x" and "/clinic", "/api" matches
// "/api" and "/api/x" but not "/apix". Paths are case-sensitive.
func (rt *router) match(host, path string) *config.Route {
	for _, route := range rt.hosts[host] {
		if prefixMatch(route.Path, path) {
			return route
		}
	}
	return nil
}

func prefixMatch(prefix, path string) bool {
	if prefix == "" || prefix == "/" {
		return true
	}
	if strings.HasSuffix(prefix, "/") {
		return strings.HasPrefix(path, prefix) || path == prefix[:len(prefix)-1]
	}
	return path == prefix || strings.HasPrefix(path, prefix+"/")
}

// route is the third stage. Requests under /.telegate/ go to own (telegate's
// endpoints, on every host); everything else to the route the router picks,
// whose id and config go into the scope once. No route → 404; a TLS server
// name that differs from the canonical Host → 421 Misdirected Request
// (RFC 9110 §15.5.20); ';' in the path of a route without AllowSemicolon →
// 400.
func (g *generation) route(own, routed http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := scope.From(r.Context())
		rs := stateFrom(r.Context())
		if r.TLS != nil && r.TLS.ServerName != "" {
			sni, err := CanonicalHost(r.TLS.ServerName)
			if err != nil || sni != s.Host {
				refuse(w, r, http.StatusMisdirectedRequest, scope.ReasonHostSNIMismatch)
				return
			}
		}
		if strings.HasPrefix(s.Path, OwnPrefix) {
			if rs.semicolon {
				refuse(w, r, http.StatusBadRequest, scope.ReasonPathSemicolon)
				return
			}
			rs.own = true
			own.ServeHTTP(w, r)
			return
		}
		route := g.router.match(s.Host, s.Path)
		if route == nil {
			refuse(w, r, http.StatusNotFound, scope.ReasonNoRoute)
			return
		}
		s.RouteID, s.Route = route.ID, route
		if rs.semicolon && !route.AllowSemicolon {
			refuse(w, r, http.StatusBadRequest, scope.ReasonPathSemicolon)
			return
		}
		routed.ServeHTTP(w, r)
	})
}
