package policies

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/page"
	"github.com/telegate/telegate/scope"
)

// BreakGlassPath is the endpoint where an eligible clinician grants
// themselves emergency access to a route (policy.break_glass): POST with
// form fields route (the route id), reason (one of BreakGlassReasons) and
// rd (the path to return to, on that route). Same-origin requests only.
const BreakGlassPath = "/.telegate/break-glass"

// Reconsider re-decides d, the route's decision for the request
// (Authorise), with break-glass when the route has a break_glass section:
// an active grant of the identity on the route lifts a deny by the allow
// rules (Decide); a deny for anything else (provider:route, method,
// mfa-required, …) stands. Allowed decisions, and a nil BreakGlass, are
// returned as they are.
func (b *BreakGlass) Reconsider(ctx context.Context, s *scope.Scope, d scope.Decision) scope.Decision {
	if d.Allow || b == nil || s.Route == nil || s.Route.Policy == nil || s.Route.Policy.BreakGlass == nil {
		return d
	}
	return b.decide(ctx, s.RouteID, s.Route.Policy, s.Identity, d)
}

// breakGlassPage is the 403 page that offers emergency access.
var breakGlassPage = page.ParseEnglish(`{{define "break-glass"}}<p>Your role does not open this page.</p>
<h2>Emergency access</h2><p>In an emergency you may open it for {{.For}}. Your access and your reason are recorded and reviewed.</p>
<form method="post" action="{{.Action}}"><input type="hidden" name="route" value="{{.RouteID}}"><input type="hidden" name="rd" value="{{.ReturnTo}}">
<label for="reason">Reason</label> <select id="reason" name="reason" required>{{range .Reasons}}<option value="{{.Value}}">{{.Label}}</option>{{end}}</select>
<button type="submit">Break the glass</button></form>{{end}}`)

type breakGlassData struct {
	For, Action, RouteID, ReturnTo string
	Reasons                        []breakGlassChoice
}

type breakGlassChoice struct{ Value, Label string }

// Offer writes the 403 page with a break-glass form when the identity
// could break the glass on the denied route (bound to the route, eligible
// by its break_glass.allow and signed in with MFA; HTML requests on non-API
// routes only), and reports whether it did. A nil BreakGlass offers
// nothing.
func (b *BreakGlass) Offer(w http.ResponseWriter, r *http.Request, s *scope.Scope) bool {
	if b == nil || s.Route == nil || s.Route.Policy == nil || s.Route.Policy.BreakGlass == nil || s.Route.API {
		return false
	}
	if !s.Identity.HasMFA() || !eligible(s.Route, s.Identity) {
		return false
	}
	if !strings.Contains(r.Header.Get("Accept"), "text/html") {
		return false
	}
	page.Render(w, r, page.Doc{Status: http.StatusForbidden, Title: "You cannot open this page"}, breakGlassPage, "break-glass", breakGlassData{
		For:      breakGlassGrantTTL(s.Route.Policy.BreakGlass).String(),
		Action:   BreakGlassPath,
		RouteID:  s.RouteID,
		ReturnTo: s.Path,
		Reasons:  breakGlassChoices(),
	})
	return true
}

// Handler serves BreakGlassPath: a same-origin POST by a signed-in
// identity grants emergency access to the named route (Grant checks
// eligibility, MFA and the reason, and audits the grant) and redirects
// (303, RFC 9110 §15.4.4) to returnTo(host, route, rd), host the
// request's canonical host (scope.Scope.Host): a canonical path that the
// router gives to that route, never anywhere else. route finds a route of
// the request's generation by id (nil when there is none). A nil
// BreakGlass refuses every grant.
func (b *BreakGlass) Handler(route func(id string) *config.Route, returnTo func(host string, rt *config.Route, rd string) string) http.Handler {
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
		rt := route(r.PostForm.Get("route"))
		if rt == nil || rt.Policy == nil || rt.Policy.BreakGlass == nil || b == nil {
			page.Error(w, r, http.StatusForbidden, "Emergency access is not available for this page.", "")
			return
		}
		_, err := b.Grant(r.Context(), rt, s.Identity, r.PostForm.Get("reason"))
		switch {
		case errors.Is(err, ErrBreakGlassReason):
			page.Error(w, r, http.StatusBadRequest, "Choose one of the listed reasons.", "")
			return
		case errors.Is(err, ErrBreakGlassMFA):
			page.Error(w, r, http.StatusForbidden, "Sign in with a second factor first.", "")
			return
		case errors.Is(err, ErrBreakGlassLimit):
			page.Error(w, r, http.StatusTooManyRequests, "You hold the most emergency grants allowed at once.", "Wait for one to end.")
			return
		case errors.Is(err, ErrBreakGlassUnavailable):
			page.Error(w, r, http.StatusServiceUnavailable, "Emergency access cannot be recorded right now, so it is not granted.", "Contact the service desk.")
			return
		case err != nil:
			page.Error(w, r, http.StatusForbidden, "Emergency access is not available to you on this page.", "")
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		http.Redirect(w, r, returnTo(s.Host, rt, r.PostForm.Get("rd")), http.StatusSeeOther)
	}))
}

// breakGlassChoices are BreakGlassReasons with readable labels.
func breakGlassChoices() []breakGlassChoice {
	out := make([]breakGlassChoice, len(BreakGlassReasons))
	for i, reason := range BreakGlassReasons {
		out[i] = breakGlassChoice{Value: reason, Label: strings.ReplaceAll(reason, "-", " ")}
	}
	return out
}

// breakGlassGrantTTL is how long a grant on a route lasts.
func breakGlassGrantTTL(bg *config.BreakGlass) time.Duration {
	return min(bg.Duration, MaxBreakGlassDuration)
}
