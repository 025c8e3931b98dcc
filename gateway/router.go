package gateway

import (
	"fmt"
	"net/http"
	"sort"
	"strings"

	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/internal/pathtext"
	"github.com/telegate/telegate/scope"
)

// OwnPrefix is the path prefix of telegate's own endpoints on every host.
const OwnPrefix = "/.telegate/"

// router maps (canonical host, canonical path) to one route.
type router struct {
	hosts map[string][]routeEntry // sorted by len(folded), longest first
	// normalises is set when a route normalises Unicode paths
	// (Route.NormalizeUnicodePaths): canonicalise then normalises a path
	// that is refused only for not being in NFKC.
	normalises bool
}

// routeEntry is a route with its path prefix in canonical form (as
// CanonicalPath writes request paths: non-ASCII percent-encoded) and that
// prefix case-folded (pathtext.Fold), both computed once per generation.
type routeEntry struct {
	route          *config.Route
	prefix, folded string
}

// newRouter indexes routes by host. A route without Hosts serves every name
// of tls.hosts; when there are none it is a configuration error (an unknown
// host never falls through to a permissive default). Two routes of a host
// whose paths differ only in letter case are refused: a path in any case
// names at most one route. A refusal is a config.FieldError at the field
// it refuses ("routes[2].path", "routes[2].hosts[0]", "routes[2].hosts"),
// so that it is reported at that field's line, once.
func newRouter(cfg *config.Config) (*router, error) {
	rt := &router{hosts: map[string][]routeEntry{}}
	var tlsNames []string
	for _, h := range cfg.TLS.Hosts {
		tlsNames = append(tlsNames, h.Names...)
	}
	type servedBy struct {
		path  string // the route's path as configured
		route int    // its index in cfg.Routes
	}
	seen := map[string]servedBy{} // canonical host + " " + folded prefix
	for i := range cfg.Routes {
		route := &cfg.Routes[i]
		hosts, own := route.Hosts, true
		if len(hosts) == 0 {
			hosts, own = tlsNames, false
		}
		if len(hosts) == 0 {
			return nil, routeProblem(i, "hosts", "route %q has no hosts, and tls.hosts names none: list the route's hosts", route.ID)
		}
		prefix := route.Path
		if prefix != "" {
			c, _, err := CanonicalPath(prefix)
			if err != nil {
				return nil, routeProblem(i, "path", "%q: %v", route.Path, err)
			}
			prefix = c
		}
		e := routeEntry{route: route, prefix: prefix, folded: pathtext.Fold(prefix)}
		rt.normalises = rt.normalises || route.NormalizeUnicodePaths
		for j, h := range hosts {
			ch, err := CanonicalHost(h)
			if err != nil {
				if !own {
					return nil, routeProblem(i, "hosts", "route %q has no hosts and serves those of tls.hosts, whose %q the router cannot serve (%v): list the route's hosts", route.ID, h, err)
				}
				return nil, routeProblem(i, fmt.Sprintf("hosts[%d]", j), "%q: %v", h, err)
			}
			key := ch + " " + e.folded
			if prev, ok := seen[key]; ok {
				switch {
				case prev.route == i && !own:
					// tls.hosts names ch twice (refused there): the
					// route serves it once.
					continue
				case prev.route == i:
					return nil, routeProblem(i, fmt.Sprintf("hosts[%d]", j), "%q names host %q a second time", h, ch)
				case prev.path == route.Path:
					return nil, routeProblem(i, "path", "host %q path %q is already served by routes[%d]", ch, route.Path, prev.route)
				}
				return nil, routeProblem(i, "path", "host %q path %q differs only in letter case from %q of routes[%d]", ch, route.Path, prev.path, prev.route)
			}
			seen[key] = servedBy{path: route.Path, route: i}
			rt.hosts[ch] = append(rt.hosts[ch], e)
		}
	}
	for _, rs := range rt.hosts {
		sort.SliceStable(rs, func(i, j int) bool { return len(rs[i].folded) > len(rs[j].folded) })
	}
	return rt, nil
}

// routeProblem is a refusal of routes[i]'s field (relative to the route,
// such as "path"), formatted like fmt.Sprintf.
func routeProblem(i int, field, format string, args ...any) config.FieldError {
	return config.FieldError{Field: fmt.Sprintf("routes[%d].%s", i, field), Message: fmt.Sprintf(format, args...)}
}

// pick returns the route for a canonical host and path. Hosts compare
// exactly (both are canonical: lower case, no trailing dot, no port). The
// longest matching prefix wins; a prefix matches at a segment boundary:
// "/clinic/" matches "/clinic/x" and "/clinic", "/api" matches "/api" and
// "/api/x" but not "/apix".
//
// Paths are case-sensitive, except under a route whose upstream is
// case-insensitive (Route.UpstreamCaseInsensitive), whose prefix matches
// in any case. The route a path falls under with letter case folded
// (pathtext.Fold; the longest folded prefix) must be the one it names: a
// path that would fall under another route is refused with reason
// scope.ReasonPathCase (and a nil route): "/CLINIC/x" when "/clinic/" and
// "/" are routes. normalised says canonicalise normalised the path to
// NFKC; the route must then be one that allows it
// (Route.NormalizeUnicodePaths), else the reason is
// scope.ReasonPathUnicodeForm. A path that a Windows server reads as
// under a route's prefix through 8.3 short names ("/ADMINI~1/x" for
// "/administration/", shortNameFor) is refused with reason
// scope.ReasonPathShortName. No route and no refusal: nil, "".
//
// Entries are ordered by folded prefix, longest first, and a prefix that
// matches exactly also matches folded (folding goes character by
// character), so the first entry that matches folded decides: its route
// when it also matches exactly or its upstream folds case, a refusal
// otherwise. An ASCII path is folded as it is compared, without
// allocating; a path with non-ASCII text is folded once.
func (rt *router) pick(host, path string, normalised bool) (*config.Route, scope.Reason) {
	entries := rt.hosts[host]
	folded, ascii := "", true
	if pathtext.HasEncodedNonASCII(path) {
		folded, ascii = pathtext.Fold(path), false
	}
	if strings.IndexByte(path, '~') >= 0 {
		f := folded
		if ascii {
			f = pathtext.Fold(path)
		}
		for i := range entries {
			if shortNameFor(entries[i].folded, f) {
				return nil, scope.ReasonPathShortName
			}
		}
	}
	for i := range entries {
		e := &entries[i]
		if ascii && !prefixMatchFold(e.folded, path) || !ascii && !prefixMatch(e.folded, folded) {
			continue
		}
		if e.route.UpstreamCaseInsensitive || prefixMatch(e.prefix, path) {
			return rt.allowed(e.route, normalised)
		}
		return nil, scope.ReasonPathCase
	}
	return nil, ""
}

// shortNameFor reports whether folded, a folded path, names the folded
// prefix through Windows 8.3 short names (IIS and NTFS resolve them): its
// segments are the prefix's, but at least one is the short form of the
// prefix's segment there ("admini~1" for "administration", shortName),
// the path possibly ending there.
func shortNameFor(prefix, folded string) bool {
	ps := strings.Split(strings.Trim(prefix, "/"), "/")
	fs := strings.Split(strings.TrimPrefix(folded, "/"), "/")
	if len(ps) == 1 && ps[0] == "" {
		return false
	}
	short := false
	for j, seg := range ps {
		switch {
		case j >= len(fs):
			return false
		case fs[j] == seg:
		case shortName(fs[j], seg):
			short = true
		default:
			return false
		}
	}
	return short
}

// shortName reports whether seg has the form of an 8.3 short name
// ("admini~1", "report~12.pdf": up to six characters, "~", digits, an
// extension of up to three) that Windows may give long, a segment that is
// not a valid 8.3 name itself and starts, without the characters short
// names drop, with those six.
func shortName(seg, long string) bool {
	name, ext, _ := strings.Cut(seg, ".")
	base, num, ok := strings.Cut(name, "~")
	if !ok || base == "" || len(base) > 6 || num == "" || len(ext) > 3 || strings.Trim(num, "0123456789") != "" {
		return false
	}
	lname, lext := long, ""
	if i := strings.LastIndexByte(long, '.'); i >= 0 {
		lname, lext = long[:i], long[i+1:]
	}
	if len(lname) <= 8 && len(lext) <= 3 && strings.Count(long, ".") <= 1 {
		return false // long is an 8.3 name: it has no other short name
	}
	stripped := strings.Map(func(r rune) rune {
		if strings.ContainsRune(". +,;=[]", r) {
			return -1
		}
		return r
	}, lname)
	return strings.HasPrefix(stripped, base)
}

// allowed refuses a normalised path on a route that does not normalise.
func (rt *router) allowed(route *config.Route, normalised bool) (*config.Route, scope.Reason) {
	if normalised && !route.NormalizeUnicodePaths {
		return nil, scope.ReasonPathUnicodeForm
	}
	return route, ""
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

// prefixMatchFold is prefixMatch(folded, pathtext.Fold(path)) for a
// path without non-ASCII text, without allocating.
func prefixMatchFold(folded, path string) bool {
	if folded == "" || folded == "/" {
		return true
	}
	if strings.HasSuffix(folded, "/") {
		return pathtext.EqualFoldPrefix(path, folded) || pathtext.EqualFold(path, folded[:len(folded)-1])
	}
	return pathtext.EqualFold(path, folded) ||
		len(path) > len(folded) && path[len(folded)] == '/' && pathtext.EqualFoldPrefix(path, folded)
}

// route is the third stage. Requests under /.telegate/ go to own (telegate's
// endpoints, on every host); everything else to the route the router picks,
// whose id and config go into the scope once. No route → 404; a TLS server
// name that differs from the canonical Host → 421 Misdirected Request
// (RFC 9110 §15.5.20); the refusals of resolve → 400.
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
		route, isOwn, reason := g.resolve(s.Host, s.Path, rs.semicolon, rs.normalised)
		if route != nil {
			s.RouteID, s.Route = route.ID, route
		}
		switch {
		case reason != "":
			refuse(w, r, http.StatusBadRequest, reason)
		case isOwn:
			rs.own = true
			own.ServeHTTP(w, r)
		case route == nil:
			refuse(w, r, http.StatusNotFound, scope.ReasonNoRoute)
		default:
			routed.ServeHTTP(w, r)
		}
	})
}

// resolve is what a canonical host and path (CanonicalPath's output;
// semicolon and normalised as canonicalise found them) name: telegate's
// own endpoints (isOwn, under OwnPrefix), a route, or nothing (nil, "").
// It is the one reading of a path's destination, for requests and for
// every path telegate sends a browser back to. Refused, with the reason:
// a path that names telegate's endpoints in other case ("/.Telegate/…",
// scope.ReasonPathCase); under OwnPrefix, a ';' or a normalised path; the
// refusals of router.pick; a ';' on a route without AllowSemicolon
// (scope.ReasonPathSemicolon, with the route it names).
func (g *generation) resolve(host, path string, semicolon, normalised bool) (route *config.Route, isOwn bool, reason scope.Reason) {
	if strings.HasPrefix(path, OwnPrefix) {
		switch {
		case semicolon:
			return nil, false, scope.ReasonPathSemicolon
		case normalised:
			// telegate's endpoints take no normalised path.
			return nil, false, scope.ReasonPathUnicodeForm
		}
		return nil, true, ""
	}
	if pathtext.EqualFoldPrefix(path, OwnPrefix) {
		// "/.Telegate/…" names telegate's endpoints to a server that
		// folds case.
		return nil, false, scope.ReasonPathCase
	}
	route, reason = g.router.pick(host, path, normalised)
	if reason == "" && route != nil && semicolon && !route.AllowSemicolon {
		return route, false, scope.ReasonPathSemicolon
	}
	return route, false, reason
}
