// Package demoapp is the demo upstream application that `telegate demo`
// puts behind the gateway. It trusts nothing but the gateway's identity
// assertion: a JWT (RFC 7519) signed ES256 (RFC 7518 §3.4) with a key from
// the gateway's JWKS (RFC 7517 §5). It verifies the signature, iss, aud and
// exp itself — the upstream's own defence — and shows a small page of who
// the gateway says the caller is, or the same facts as JSON for tests.
package demoapp

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/telegate/telegate/scope"
)

// DefaultHeader is the request header that carries the assertion.
const DefaultHeader = "X-Telegate-Assertion"

// maxAssertionBytes bounds the assertion header; a longer one is refused.
const maxAssertionBytes = 16 << 10

// Options configures [New].
type Options struct {
	// JWKSURL is the gateway's key set, e.g.
	// https://localhost:8443/.telegate/jwks.json. Required.
	JWKSURL string
	// Issuer is the expected assertion issuer (iss), the gateway's public
	// URL. Required.
	Issuer string
	// Audiences are the route ids this app serves; the assertion's aud must
	// contain one of them. Required.
	Audiences []string
	// Header carrying the assertion. Default [DefaultHeader].
	Header string
	// HTTPClient fetches the JWKS (it trusts the gateway's local CA).
	// Default a client with a 10 s timeout.
	HTTPClient *http.Client
	// Logger for verification failures (never the assertion itself).
	// Default slog.Default().
	Logger *slog.Logger
	// Now is an optional clock for the exp check. Default time.Now.
	Now func() time.Time
}

// View is what the app saw: the JSON answer for "Accept: application/json"
// and the data of the HTML page.
type View struct {
	// Subject and Issuer of the assertion (sub, iss); "" without one.
	Subject string `json:"subject"`
	Issuer  string `json:"issuer"`
	// Name is the assertion's name claim, if the route copies it.
	Name string `json:"name,omitempty"`
	// Roles are the telegate roles of the assertion's roles claim.
	Roles []string `json:"roles"`
	// MFA is the assertion's mfa claim, or else derived from its amr
	// (RFC 8176) the way scope.Identity.HasMFA does.
	MFA bool `json:"mfa"`
	// Route is the route id (the aud value that matched); "" without an
	// assertion.
	Route string `json:"route"`
	// Path is the request path the upstream received.
	Path string `json:"path"`
	// Section is "/", "/clinic/", "/admin/" or "/public/" by path prefix.
	Section string `json:"section"`
	// Authenticated reports whether a verified assertion came with the
	// request.
	Authenticated bool `json:"authenticated"`
}

// assertionClaims are the claims read from a verified assertion.
type assertionClaims struct {
	Subject string   `json:"sub"`
	Issuer  string   `json:"iss"`
	Name    string   `json:"name"`
	Roles   []string `json:"roles"`
	AMR     []string `json:"amr"`
	MFA     *bool    `json:"mfa"`
}

type app struct {
	header    string
	audiences []string
	verifier  *oidc.IDTokenVerifier
	log       *slog.Logger
}

// New returns the demo app's handler. It fails when JWKSURL, Issuer or
// Audiences are missing or JWKSURL is not an http(s) URL. Keys are fetched
// on first use and again when an unknown key id appears (go-oidc
// RemoteKeySet).
func New(o Options) (http.Handler, error) {
	if o.Issuer == "" || len(o.Audiences) == 0 {
		return nil, errors.New("demoapp: Issuer and Audiences are required")
	}
	u, err := url.Parse(o.JWKSURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, errors.New("demoapp: JWKSURL must be an http(s) URL")
	}
	if o.Header == "" {
		o.Header = DefaultHeader
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	keys := oidc.NewRemoteKeySet(oidc.ClientContext(context.Background(), o.HTTPClient), o.JWKSURL)
	v := oidc.NewVerifier(o.Issuer, keys, &oidc.Config{
		// aud is checked against every route id below.
		SkipClientIDCheck:    true,
		SupportedSigningAlgs: []string{oidc.ES256},
		Now:                  o.Now,
	})
	return &app{header: http.CanonicalHeaderKey(o.Header), audiences: slices.Clone(o.Audiences), verifier: v, log: o.Logger}, nil
}

// SlowPath answers like any other path, after a delay: ?ms= milliseconds
// (default 300, at most 5000). It stands for a slow upstream, to watch the
// gateway drain requests in flight when it shuts down.
const SlowPath = "/public/slow"

const (
	defaultSlow = 300 * time.Millisecond
	maxSlow     = 5 * time.Second
)

// slowDelay is the delay asked of SlowPath.
func slowDelay(r *http.Request) time.Duration {
	ms, err := strconv.Atoi(r.URL.Query().Get("ms"))
	if err != nil || ms < 0 {
		return defaultSlow
	}
	return min(time.Duration(ms)*time.Millisecond, maxSlow)
}

// errNotVerified is the one answer to every bad assertion.
var errNotVerified = errors.New("the gateway's assertion did not verify")

// verify checks the request's assertion. It returns (nil, nil) when there is
// none.
func (a *app) verify(r *http.Request) (*assertionClaims, string, error) {
	values := r.Header.Values(a.header)
	if len(values) == 0 {
		return nil, "", nil
	}
	if len(values) > 1 || len(values[0]) > maxAssertionBytes || values[0] == "" {
		return nil, "", errNotVerified
	}
	tok, err := a.verifier.Verify(r.Context(), strings.TrimSpace(values[0]))
	if err != nil {
		a.log.Warn("demo app: assertion refused", "reason", err.Error())
		return nil, "", errNotVerified
	}
	route := ""
	for _, aud := range tok.Audience {
		if slices.Contains(a.audiences, aud) {
			route = aud
			break
		}
	}
	if route == "" || tok.Subject == "" {
		a.log.Warn("demo app: assertion refused", "reason", "audience or subject")
		return nil, "", errNotVerified
	}
	var c assertionClaims
	if err := tok.Claims(&c); err != nil {
		return nil, "", errNotVerified
	}
	return &c, route, nil
}

// section maps a path to the demo's sections.
func section(p string) string {
	for _, s := range []string{"/clinic/", "/admin/", "/public/"} {
		if strings.HasPrefix(p, s) || p == strings.TrimSuffix(s, "/") {
			return s
		}
	}
	return "/"
}

// wantsJSON reports whether the first of application/json and text/html
// named in Accept is JSON.
func wantsJSON(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
		mt, _, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		switch mt {
		case "application/json":
			return true
		case "text/html":
			return false
		}
	}
	return false
}

// ServeHTTP answers every path with the view of the request: 200 with or
// without a verified assertion, 401 when an assertion is present and does
// not verify. SlowPath answers so after its delay.
func (a *app) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Vary", "Accept")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	if r.URL.Path == SlowPath {
		select {
		case <-time.After(slowDelay(r)):
		case <-r.Context().Done():
			return
		}
	}
	c, route, err := a.verify(r)
	if err != nil {
		a.fail(w, r)
		return
	}
	v := View{Path: r.URL.Path, Section: section(r.URL.Path), Roles: []string{}}
	if c != nil {
		v.Authenticated = true
		v.Subject = c.Subject
		v.Issuer = c.Issuer
		v.Name = c.Name
		if c.Roles != nil {
			v.Roles = c.Roles
		}
		v.Route = route
		if c.MFA != nil {
			v.MFA = *c.MFA
		} else {
			id := scope.Identity{Kind: "session", AMR: c.AMR}
			v.MFA = id.HasMFA()
		}
	}
	if wantsJSON(r) {
		h.Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(v)
		return
	}
	setHTMLHeaders(w)
	if err := pageTmpl.ExecuteTemplate(w, "page", pageData{View: v, Links: links}); err != nil {
		a.log.Error("demo app: render page", "error", err)
	}
}

func (a *app) fail(w http.ResponseWriter, r *http.Request) {
	if wantsJSON(r) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": errNotVerified.Error()})
		return
	}
	setHTMLHeaders(w)
	w.WriteHeader(http.StatusUnauthorized)
	if err := pageTmpl.ExecuteTemplate(w, "denied", nil); err != nil {
		a.log.Error("demo app: render page", "error", err)
	}
}

// HasRole reports whether the asserted roles include role (the page links
// clinicians to the visit lobby and tells patients how to join).
func (v View) HasRole(role string) bool { return slices.Contains(v.Roles, role) }
