package gateway

import (
	"github.com/telegate/telegate/config"

	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
)

func TestIsReservedHeader(t *testing.T) {
	t.Parallel()
	reserved := []string{
		"X-Telegate-Assertion", "x-telegate-assertion", "X_Telegate_Assertion", "X.Telegate.Assertion",
		"X-Telegate-Subject", "X_TELEGATE_ROLES", "X-Forwarded-For", "X_Forwarded_For", "x.forwarded.host",
		"X-Forwarded-Uri", "Forwarded", "X-Real-IP", "X_Real_Ip", "X-Original-URL", "X-Rewrite-URL",
		"X-Client-IP", "True-Client-IP", "True_Client_IP", "X-Remote-User", "Remote-User", "Remote_User",
		"X-Auth-Request-User", "X_Auth_Request_Email", "X-Request-Id", "X-App-Identity",
	}
	for _, h := range reserved {
		if !IsReservedHeader(h, "X-App-Identity") {
			t.Errorf("%q not reserved", h)
		}
	}
	for _, h := range []string{"Authorization", "Cookie", "X-Forwarded", "Accept", "X-Telegate", "Forwarded-For", "Content-Type"} {
		if IsReservedHeader(h, "X-App-Identity") {
			t.Errorf("%q reserved", h)
		}
	}
}

func TestSanitizeConnection(t *testing.T) {
	t.Parallel()
	cases := []struct{ in, want string }{
		{"keep-alive", "keep-alive"},
		{"Upgrade", "Upgrade"},
		{"close, X-Telegate-Assertion", "close"},
		{"Authorization, Cookie", ""},
		{"keep-alive, X-Forwarded-For, te", "keep-alive, te"},
	}
	for _, tc := range cases {
		h := http.Header{"Connection": {tc.in}}
		SanitizeConnection(h)
		if got := h.Get("Connection"); got != tc.want {
			t.Errorf("Connection %q → %q, want %q", tc.in, got, tc.want)
		}
	}
}

// FuzzStripReservedHeaders: after stripping, no name folds to a reserved
// one, and every other field is kept unchanged.
func FuzzStripReservedHeaders(f *testing.F) {
	f.Add("X_Forwarded_For", "Accept", "x.telegate.subject")
	f.Add("Forwarded", "Remote_User", "Cookie")
	f.Fuzz(func(t *testing.T, a, b, c string) {
		h := http.Header{}
		for i, k := range []string{a, b, c} {
			h[k] = []string{strings.Repeat("v", i+1)}
		}
		orig := h.Clone()
		StripReservedHeaders(h, config.DefaultAssertionHeader)
		for k, v := range orig {
			_, kept := h[k]
			if IsReservedHeader(k, config.DefaultAssertionHeader) == kept {
				t.Fatalf("%q: reserved=%v kept=%v", k, IsReservedHeader(k, config.DefaultAssertionHeader), kept)
			}
			if kept && h[k][0] != v[0] {
				t.Fatalf("%q changed", k)
			}
			f := FoldHeaderName(k)
			if kept && (strings.HasPrefix(f, "x-telegate-") || strings.HasPrefix(f, "x-forwarded-") || f == "forwarded") {
				t.Fatalf("%q kept", k)
			}
		}
	})
}

// TestRegression_TrustedHeadersNeverReachUpstream: identity, client
// address and method-override headers that upstreams commonly trust from
// a proxy — in every spelling frameworks fold together (case, "_", ".")
// — are removed from the client's request; the upstream sees only the
// method the route's policy admitted and telegate's own address headers,
// with inspection off and on.
func TestRegression_TrustedHeadersNeverReachUpstream(t *testing.T) {
	t.Parallel()
	for _, inspected := range []bool{false, true} {
		t.Run(map[bool]string{false: "inspection off", true: "inspection on"}[inspected], func(t *testing.T) {
			t.Parallel()
			testTrustedHeaders(t, inspected)
		})
	}
}

func testTrustedHeaders(t *testing.T, inspected bool) {
	tg := newTestGateway(t, func(cfg *config.Config, o *Options) {
		if inspected {
			inspectEveryRoute(t, cfg, o)
		}
	})
	names := []string{
		"X-User", "x_user", "X-Remote-User", "Remote.User", "X-Auth-Request-Email",
		"Client-IP", "True-Client-IP", "X-Client-IP", "X_Cluster_Client_IP", "CF-Connecting-IP", "fastly.client.ip",
		"X-HTTP-Method-Override", "x_http_method_override", "X-HTTP-Method", "X-Method-Override", "X.Method.Override",
	}
	hdr := map[string]string{}
	for _, n := range names {
		hdr[n] = "DELETE"
	}
	resp, _ := get(t, tg, "/public/chart", hdr)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	r, ok := tg.rec.last()
	if !ok {
		t.Fatal("upstream not reached")
	}
	if r.Method != http.MethodGet {
		t.Errorf("upstream method %s", r.Method)
	}
	for k, v := range r.Header {
		for _, n := range names {
			if FoldHeaderName(k) == FoldHeaderName(n) {
				t.Errorf("upstream saw %s: %q", k, v)
			}
		}
	}
}

// TestRegression_UpstreamCannotSetTelegatesCookies: an upstream's
// Set-Cookie that a browser would store or send back as one of telegate's
// cookies is dropped in every form browsers parse — the exact name, other
// letter case, surrounding whitespace, a nameless cookie whose value
// starts with the name, the __Secure- or no prefix, and the sign-in
// companion — while the app's own cookies pass.
func TestRegression_UpstreamCannotSetTelegatesCookies(t *testing.T) {
	t.Parallel()
	forged := []string{
		"__Host-telegate=fixated; Path=/; Secure",
		"__HOST-TELEGATE=fixated; Path=/; Secure",
		" __Host-telegate =fixated; Path=/",
		"=__Host-telegate=fixated; Path=/; Secure",
		"= __Host-telegate=fixated",
		"__Secure-telegate=fixated; Secure",
		"telegate=fixated",
		"__Host-telegate-login=fixated; Path=/; Secure",
		"__Host-telegate; Path=/; Secure", // no "=": browsers send it back as "__Host-telegate"
		"\t__Host-telegate=fixated; Path=/",
		"__Secure-__Host-telegate=fixated; Secure",
		"__hOsT-tElEgAtE=fixated; Domain=app.example.test; Path=/",
		"TELEGATE-LOGIN=fixated; Path=/.telegate/",
	}
	kept := []string{"app=1; Path=/", "theme=dark", "__Host-app=2; Path=/; Secure"}
	for _, v := range append(append([]string{}, forged...), kept...) {
		name := setCookieName(v)
		drop := strings.HasPrefix(cookieStem(name), cookieStem("__Host-telegate"))
		want := !slices.Contains(kept, v)
		if drop != want {
			t.Errorf("%q (name %q): dropped %v, want %v", v, name, drop, want)
		}
	}
	// Through the gateway: an upstream sets them all; only the app's
	// reach the browser.
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, v := range append(append([]string{}, forged...), kept...) {
			w.Header().Add("Set-Cookie", v)
		}
	}))
	t.Cleanup(up.Close)
	tg := newTestGateway(t, func(c *config.Config, _ *Options) {
		for i := range c.Routes {
			c.Routes[i].Upstream = up.URL
		}
	})
	resp, _ := get(t, tg, "/public/x", nil)
	if sc := resp.Header.Values("Set-Cookie"); !slices.Equal(sc, kept) {
		t.Errorf("Set-Cookie through the gateway: %q, want %q", sc, kept)
	}
}

// spellings are the forms of name that frameworks fold together: as
// written, lower and upper case, and with "_" or "." for "-".
func spellings(name string) []string {
	return []string{
		name, strings.ToLower(name), strings.ToUpper(name),
		strings.ReplaceAll(name, "-", "_"), strings.ReplaceAll(strings.ToLower(name), "-", "."),
	}
}

// TestRegression_ReservedRequestHeaders: every entry of
// config.ReservedRequestHeaders (a prefix entry with a suffix) in every
// folded spelling, and a route's own strip_request_headers (a name and a
// prefix, folded the same way), are removed from the client's request:
// the upstream receives none of them, while a route without the extra
// entries still receives those fields, and ordinary fields pass.
func TestRegression_ReservedRequestHeaders(t *testing.T) {
	t.Parallel()
	tg := newTestGateway(t, func(c *config.Config, _ *Options) {
		for i := range c.Routes {
			if c.Routes[i].ID == "matrix" {
				c.Routes[i].StripRequestHeaders = []string{"X-Internal-*", "X-Debug-User"}
			}
		}
	})
	var reserved []string
	for _, h := range config.ReservedRequestHeaders {
		if p, ok := strings.CutSuffix(h, "*"); ok {
			h = p + "Anything"
		}
		reserved = append(reserved, spellings(h)...)
	}
	extra := append(spellings("X-Internal-Token"), spellings("X-Debug-User")...)
	send := func(path string, names []string) seenRequest {
		t.Helper()
		req, err := http.NewRequest("GET", "https://"+appHost+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range names {
			req.Header[n] = []string{"forged"}
		}
		req.Header["X-App-Ordinary"] = []string{"kept"}
		resp, err := tg.client(tg.ts.Listener.Addr().String()).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: status %d", path, resp.StatusCode)
		}
		r, ok := tg.rec.last()
		if !ok || !strings.HasPrefix(r.RequestURI, path) {
			t.Fatalf("%s: upstream not reached", path)
		}
		if r.Header.Get("X-App-Ordinary") != "kept" {
			t.Errorf("%s: an ordinary field was removed", path)
		}
		return r
	}
	saw := func(r seenRequest, n string) bool {
		for k, v := range r.Header {
			if FoldHeaderName(k) == FoldHeaderName(n) && slices.Contains(v, "forged") {
				return true
			}
		}
		return false
	}
	// The route with its own entries: nothing the client forged arrives.
	r := send("/matrix/a", append(append([]string{}, reserved...), extra...))
	for _, n := range append(append([]string{}, reserved...), extra...) {
		if saw(r, n) {
			t.Errorf("/matrix/: upstream received %s", n)
		}
	}
	// A route without them: the reserved ones go, the route's extras pass.
	r = send("/public/a", append(append([]string{}, reserved...), extra...))
	for _, n := range reserved {
		if saw(r, n) {
			t.Errorf("/public/: upstream received %s", n)
		}
	}
	for _, n := range []string{"X-Internal-Token", "X-Debug-User"} {
		if !saw(r, n) {
			t.Errorf("/public/: %s removed though only /matrix/ strips it", n)
		}
	}
	// Look-alikes of the fields telegate reads itself, which it did not
	// decide on: an upstream folding "_" to "-" would frame, type or
	// authenticate the request by them.
	lookalikes := []string{"Content_Length", "Transfer_Encoding", "Transfer.Encoding", "Content_Type",
		"Content.Encoding", "Sec_WebSocket_Key", "SEC_WEBSOCKET_VERSION"}
	r = send("/public/a", lookalikes)
	for _, n := range lookalikes {
		for k, v := range r.Header {
			if k == n || slices.Contains(v, "forged") {
				t.Errorf("/public/: upstream received %s: %q", k, v)
			}
		}
	}
}
