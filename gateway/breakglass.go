package gateway

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/page"
	"github.com/telegate/telegate/policies"
	"github.com/telegate/telegate/scope"
)

// BreakGlassPath is the endpoint where an eligible clinician grants
// themselves emergency access to a route (policy.break_glass): POST with
// form fields route (the route id), reason (one of
// policies.BreakGlassReasons) and rd (the path to return to, on that
// route). Same-origin requests only.
const BreakGlassPath = OwnPrefix + "break-glass"

// breakGlassDecide re-decides a denied request with break-glass when the
// route has a break_glass section and a BreakGlass table is configured.
func (g *generation) breakGlassDecide(s *scope.Scope, d scope.Decision, method string) scope.Decision {
	if d.Allow || g.o.BreakGlass == nil || s.Route == nil || s.Route.Policy == nil || s.Route.Policy.BreakGlass == nil {
		return d
	}
	return g.o.BreakGlass.Decide(s.RouteID, s.Route.Policy, s.Identity, method)
}

// breakGlassPage is the 403 page that offers emergency access.
var breakGlassPage = page.Parse(`{{define "break-glass"}}{{template "head" .}}<h1>{{.Title}}</h1><p>Your role does not open this page.</p>
<h2>Emergency access</h2><p>In an emergency you may open it for {{.For}}. Your access and your reason are recorded and reviewed.</p>
<form method="post" action="{{.Action}}"><input type="hidden" name="route" value="{{.RouteID}}"><input type="hidden" name="rd" value="{{.ReturnTo}}">
<label for="reason">Reason</label> <select id="reason" name="reason" required>{{range .Reasons}}<option value="{{.Value}}">{{.Label}}</option>{{end}}</select>
<button type="submit">Break the glass</button></form>{{template "foot" .}}{{end}}`)

type breakGlassData struct {
	Title, For, Action, RouteID, ReturnTo, RequestID string
	Reasons                                          []breakGlassChoice
}

type breakGlassChoice struct{ Value, Label string }

// breakGlassOffer writes the 403 page with a break-glass form when the
// identity could break the glass on the denied route (eligible by the
// route's break_glass.allow and signed in with MFA), and reports whether
// it did.
func (g *generation) breakGlassOffer(w http.ResponseWriter, r *http.Request, s *scope.Scope) bool {
	if g.o.BreakGlass == nil || s.Route == nil || s.Route.Policy == nil || s.Route.Policy.BreakGlass == nil || s.Route.API {
		return false
	}
	if !s.Identity.HasMFA() || !policies.Evaluate(&config.Policy{Allow: s.Route.Policy.BreakGlass.Allow}, s.Identity, http.MethodGet).Allow {
		return false
	}
	if !strings.Contains(r.Header.Get("Accept"), "text/html") {
		return false
	}
	page.Render(w, r, http.StatusForbidden, breakGlassPage, "break-glass", breakGlassData{
		Title:     http.StatusText(http.StatusForbidden),
		For:       breakGlassGrantTTL(s.Route.Policy.BreakGlass).String(),
		Action:    BreakGlassPath,
		RouteID:   s.RouteID,
		ReturnTo:  s.Path,
		Reasons:   breakGlassChoices(),
		RequestID: s.RequestID,
	})
	return true
}

// breakGlassHandler serves BreakGlassPath: a same-origin POST by a signed-in
// identity grants emergency access to the named route (policies.BreakGlass
// checks eligibility, MFA and the reason, and audits the grant) and
// redirects to rd on that route (303, RFC 9110 §15.4.4).
func (g *generation) breakGlassHandler() http.Handler {
	csrf := http.NewCrossOriginProtection()
	return csrf.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", "POST")
			page.Error(w, r, http.StatusMethodNotAllowed, "Method not allowed.", "")
			return
		}
		s := scope.From(r.Context())
		if s == nil || s.Identity == nil {
			page.Error(w, r, http.StatusUnauthorized, "Sign-in is required.", "")
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, 4096)
		if err := r.ParseForm(); err != nil {
			page.Error(w, r, http.StatusBadRequest, "The form could not be read.", "")
			return
		}
		var route *config.Route
		for i, rt := range g.cfg.Routes {
			if rt.ID == r.PostForm.Get("route") {
				route = &g.cfg.Routes[i]
				break
			}
		}
		if route == nil || route.Policy == nil || route.Policy.BreakGlass == nil || g.o.BreakGlass == nil {
			page.Error(w, r, http.StatusForbidden, "Emergency access is not available for this page.", "")
			return
		}
		_, err := g.o.BreakGlass.Grant(r.Context(), route.ID, route.Policy.BreakGlass, s.Identity, r.PostForm.Get("reason"))
		switch {
		case errors.Is(err, policies.ErrBreakGlassReason):
			page.Error(w, r, http.StatusBadRequest, "Choose one of the listed reasons.", "")
			return
		case errors.Is(err, policies.ErrBreakGlassMFA):
			page.Error(w, r, http.StatusForbidden, "Sign in with a second factor first.", "")
			return
		case err != nil:
			page.Error(w, r, http.StatusForbidden, "Emergency access is not available to you on this page.", "")
			return
		}
		// Back to a canonical path on the same route, or its root: never
		// anywhere else (no open redirect).
		rd, _, _ := strings.Cut(r.PostForm.Get("rd"), "?")
		if c, _, err := CanonicalPath(rd); err != nil || c != rd || !prefixMatch(route.Path, rd) {
			rd = route.Path
		}
		w.Header().Set("Cache-Control", "no-store")
		http.Redirect(w, r, rd, http.StatusSeeOther)
	}))
}

// breakGlassChoices are policies.BreakGlassReasons with readable labels.
func breakGlassChoices() []breakGlassChoice {
	out := make([]breakGlassChoice, len(policies.BreakGlassReasons))
	for i, reason := range policies.BreakGlassReasons {
		out[i] = breakGlassChoice{Value: reason, Label: strings.ReplaceAll(reason, "-", " ")}
	}
	return out
}

// breakGlassGrantTTL is how long a grant on a route lasts.
func breakGlassGrantTTL(bg *config.BreakGlass) time.Duration {
	return min(bg.Duration, policies.MaxBreakGlassDuration)
}
