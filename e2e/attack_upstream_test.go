package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// upstreamAttackConfig is the `telegate run` configuration of the tests
// that check what an upstream received (see runWithDevOP for %[1]…%[7]):
// %[8]s is the recording upstream. /open/ is public, /chart/ needs a
// sign-in and admits only GET, /forms/ needs a sign-in and admits GET and
// POST, /styles/ needs a sign-in and keeps the upstream's Cache-Control;
// /open/ and /chart/ take WebSocket upgrades from the page's own origin.
var upstreamAttackConfig = runConfig{
	Routes: `  - id: open
    path: /open/
    upstream: %[8]s
    websocket: true
    policy:
      public: true
  - id: chart
    path: /chart/
    upstream: %[8]s
    websocket: true
    policy:
      allow:
        - authenticated: true
      methods: [GET]
  - id: forms
    path: /forms/
    upstream: %[8]s
    policy:
      allow:
        - authenticated: true
      methods: [GET, POST]
  - id: styles
    path: /styles/
    upstream: %[8]s
    cacheable: true
    policy:
      allow:
        - authenticated: true
`,
}.String()

// upstreamCache is the Cache-Control the recording upstream answers
// with: what a shared cache would keep for an hour.
const upstreamCache = "public, max-age=3600"

// forgedCookies are Set-Cookie values a browser would store or send back
// as telegate's own cookies; keptCookies are the app's own.
var (
	forgedCookies = []string{
		"__Host-telegate=fixated; Path=/; Secure",
		"__HOST-TELEGATE=fixated; Path=/; Secure",
		"=__Host-telegate=fixated; Path=/; Secure",
		"= __Host-telegate=fixated",
		" __Host-telegate =fixated; Path=/",
		"\t__Host-telegate=fixated; Path=/",
		"__Host-telegate; Path=/; Secure",
		"__Secure-telegate=fixated; Secure",
		"__Secure-__Host-telegate=fixated; Secure",
		"telegate=fixated",
		"__hOsT-tElEgAtE=fixated; Path=/",
		"__Host-telegate-login=fixated; Path=/; Secure",
	}
	keptCookies = []string{"app=1; Path=/", "__Host-app=2; Path=/; Secure"}
)

// recorded is one request as the upstream received it.
type recorded struct {
	method, path string
	header       http.Header
	body         string
}

// recordingUpstream is an upstream that keeps every request it receives.
// It answers 200 with upstreamCache; under a path ending in /cookies it
// also sets forgedCookies and keptCookies; an upgrade it accepts as a
// WebSocket (the gateway checked the Origin) and closes.
type recordingUpstream struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []recorded
}

func startRecordingUpstream(t *testing.T) *recordingUpstream {
	t.Helper()
	u := &recordingUpstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 64<<10))
		u.mu.Lock()
		u.reqs = append(u.reqs, recorded{method: r.Method, path: r.URL.Path, header: r.Header.Clone(), body: string(body)})
		u.mu.Unlock()
		if r.Header.Get("Upgrade") != "" {
			c, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
			if err == nil {
				_ = c.Close(websocket.StatusNormalClosure, "")
			}
			return
		}
		w.Header().Set("Cache-Control", upstreamCache)
		if strings.HasSuffix(r.URL.Path, "/cookies") {
			for _, v := range append(slices.Clone(forgedCookies), keptCookies...) {
				w.Header().Add("Set-Cookie", v)
			}
		}
		_, _ = io.WriteString(w, "upstream")
	}))
	t.Cleanup(u.Close)
	return u
}

// count is how many requests the upstream received so far.
func (u *recordingUpstream) count() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.reqs)
}

// since returns the requests received after the first n.
func (u *recordingUpstream) since(n int) []recorded {
	u.mu.Lock()
	defer u.mu.Unlock()
	return slices.Clone(u.reqs[n:])
}

// upstreamNode is a `telegate run` node in front of a recording upstream,
// with a patient signed in.
type upstreamNode struct {
	*demo
	up      *recordingUpstream
	patient *browser
}

func startUpstreamNode(t *testing.T) *upstreamNode {
	t.Helper()
	up := startRecordingUpstream(t)
	d := runWithDevOP(t, upstreamAttackConfig, up.URL)
	b := newBrowser(t, d)
	if resp, body := b.signIn(d.Base(), "/chart/", "patient@demo.test", "demo"); resp.StatusCode != http.StatusOK {
		t.Fatalf("sign-in: %d %.300s", resp.StatusCode, body)
	}
	return &upstreamNode{demo: d, up: up, patient: b}
}

// send makes one request as b (nil: a browser that is not signed in)
// without following redirects, and returns the answer and the requests
// the upstream received meanwhile.
func (n *upstreamNode) send(t *testing.T, b *browser, req *http.Request) (*http.Response, []byte, []recorded) {
	t.Helper()
	if b == nil {
		b = newBrowser(t, n.demo)
	}
	before := n.up.count()
	resp, body := b.do(b.noRedirect(), req)
	return resp, body, n.up.since(before)
}

// request is a request to the node's path with the header fields hdr
// set as written (names not canonicalised).
func (n *upstreamNode) request(t *testing.T, method, path, body string, hdr [][2]string) *http.Request {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, n.Base()+path, r)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/html")
	for _, h := range hdr {
		req.Header[h[0]] = append(req.Header[h[0]], h[1])
	}
	return req
}

// foldName is a header name as the most lenient upstream reads it: case
// ignored, "_" and "." read as "-".
func foldName(name string) string {
	return strings.NewReplacer("_", "-", ".", "-").Replace(strings.ToLower(name))
}

// onPublicAndSignedIn sends a GET with the fields hdr for /open/<page>,
// not signed in, and /chart/<page>, signed in as the patient, each in a
// subtest; each must be served (200) and reach the upstream once, and
// check then looks at the answer and what the upstream received.
func (n *upstreamNode) onPublicAndSignedIn(t *testing.T, page string, hdr [][2]string, check func(*testing.T, *http.Response, recorded)) {
	t.Helper()
	for _, tc := range []struct {
		name, path string
		b          *browser
	}{
		{"public route, not signed in", "/open/" + page, nil},
		{"signed-in route", "/chart/" + page, n.patient},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body, seen := n.send(t, tc.b, n.request(t, http.MethodGet, tc.path, "", hdr))
			if resp.StatusCode != http.StatusOK || len(seen) != 1 {
				t.Fatalf("%d, %d upstream requests: %.200s", resp.StatusCode, len(seen), body)
			}
			check(t, resp, seen[0])
		})
	}
}

// noneReached fails t for every field of got whose name folds (foldName)
// to one of names.
func noneReached(t *testing.T, got http.Header, names []string) {
	t.Helper()
	for k, v := range got {
		for _, name := range names {
			if foldName(k) == foldName(name) {
				t.Errorf("the upstream received %s: %q", k, v)
			}
		}
	}
}

// refusedUnseen fails t unless the answer is want, carries its request
// id, and the upstream received nothing.
func refusedUnseen(t *testing.T, what string, resp *http.Response, body []byte, seen []recorded, want int) {
	t.Helper()
	if resp.StatusCode != want {
		t.Errorf("%s: %d, want %d: %.200s", what, resp.StatusCode, want, body)
	}
	if rid := resp.Header.Get("X-Request-Id"); rid == "" || !strings.Contains(string(body), rid) {
		t.Errorf("%s: the refusal does not show its request id %q", what, rid)
	}
	for _, r := range seen {
		t.Errorf("%s: the upstream received %s %s", what, r.method, r.path)
	}
}

// TestRegression_TrustedIdentityHeaders: identity and client-address
// fields that upstreams commonly take from a proxy, sent by the client in
// several spellings (case, "_" and "." for "-"), never reach the upstream
// through the listener — on a public route without a sign-in and on a
// signed-in route — while the request itself is served and an ordinary
// field passes.
func TestRegression_TrustedIdentityHeaders(t *testing.T) {
	n := startUpstreamNode(t)
	names := []string{
		"X-User", "x-user", "X_User", "X-Remote-User", "x.remote.user", "Remote-User", "REMOTE_USER",
		"X-Auth-Request-User", "X-Auth-Request-Email", "x_auth_request_email", "X.Auth.Request.User",
		"Client-IP", "client_ip", "True-Client-IP", "TRUE.CLIENT.IP", "X-Client-IP", "x_client_ip",
		"X-Cluster-Client-IP", "X_Cluster_Client_IP", "CF-Connecting-IP", "cf_connecting_ip",
		"Fastly-Client-IP", "fastly.client.ip", "X-Real-IP", "x_real_ip",
	}
	hdr := [][2]string{{"X-App-Note", "kept"}}
	for _, name := range names {
		hdr = append(hdr, [2]string{name, "admin@demo.test"})
	}
	n.onPublicAndSignedIn(t, "page", hdr, func(t *testing.T, _ *http.Response, got recorded) {
		if got.header.Get("X-App-Note") != "kept" {
			t.Errorf("an ordinary field did not pass: %v", got.header)
		}
		noneReached(t, got.header, names)
	})
}

// TestRegression_MethodOverrideThroughTheListener: the fields and form
// members frameworks read as "run another method" never reach the
// upstream and never carry a request past a route's methods rule: the
// fields are removed (the upstream runs the method the route admitted),
// a method the route does not admit is refused whatever override it
// names, and a form naming _method is refused before the upstream.
func TestRegression_MethodOverrideThroughTheListener(t *testing.T) {
	n := startUpstreamNode(t)
	overrides := []string{
		"X-HTTP-Method-Override", "x_http_method_override", "X.HTTP.Method.Override",
		"X-HTTP-Method", "x-http-method", "X-Method-Override", "X_Method_Override",
	}
	t.Run("fields removed", func(t *testing.T) {
		var hdr [][2]string
		for _, name := range overrides {
			hdr = append(hdr, [2]string{name, "DELETE"})
		}
		resp, body, seen := n.send(t, n.patient, n.request(t, http.MethodGet, "/chart/note", "", hdr))
		if resp.StatusCode != http.StatusOK || len(seen) != 1 {
			t.Fatalf("%d, %d upstream requests: %.200s", resp.StatusCode, len(seen), body)
		}
		if seen[0].method != http.MethodGet {
			t.Errorf("the upstream ran %s", seen[0].method)
		}
		noneReached(t, seen[0].header, overrides)
	})
	t.Run("methods rule", func(t *testing.T) {
		for _, tc := range []struct {
			method, name, value string
		}{
			{http.MethodPost, "X-HTTP-Method-Override", "GET"},
			{http.MethodDelete, "X-HTTP-Method", "GET"},
			{http.MethodPut, "X-Method-Override", "GET"},
			{http.MethodPatch, "x_http_method_override", "GET"},
		} {
			what := tc.method + " with " + tc.name + ": " + tc.value
			req := n.request(t, tc.method, "/chart/note", "a=1", [][2]string{{tc.name, tc.value}, {"Origin", n.Base()}})
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			resp, body, seen := n.send(t, n.patient, req)
			refusedUnseen(t, what, resp, body, seen, http.StatusForbidden)
		}
	})
	t.Run("_method in a form", func(t *testing.T) {
		for _, tc := range []struct{ path, body string }{
			{"/forms/note", "_method=DELETE"},
			{"/forms/note", "a=1&_method=PUT"},
			{"/forms/note", "_METHOD=DELETE"},
			{"/forms/note", "%5Fmethod=DELETE"},
			{"/forms/note", ".method=DELETE"},
			{"/forms/note", "_method[]=DELETE"},
			{"/chart/note?_method=GET", "a=1"},
			{"/forms/note?_method=DELETE", ""},
		} {
			method := http.MethodPost
			if tc.body == "" {
				method = http.MethodGet
			}
			req := n.request(t, method, tc.path, tc.body, [][2]string{{"Origin", n.Base()}})
			if tc.body != "" {
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			}
			resp, body, seen := n.send(t, n.patient, req)
			if resp.StatusCode != http.StatusBadRequest && resp.StatusCode != http.StatusForbidden {
				t.Errorf("%s %s %q: %d, want a refusal", method, tc.path, tc.body, resp.StatusCode)
			}
			refusedUnseen(t, method+" "+tc.path+" "+tc.body, resp, body, seen, resp.StatusCode)
		}
		// A form without _method reaches the upstream as the POST it is.
		req := n.request(t, http.MethodPost, "/forms/note", "a=1&method=DELETE", [][2]string{{"Origin", n.Base()}})
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, body, seen := n.send(t, n.patient, req)
		if resp.StatusCode != http.StatusOK || len(seen) != 1 || seen[0].method != http.MethodPost || seen[0].body != "a=1&method=DELETE" {
			t.Errorf("an ordinary form: %d %.200s, upstream %v", resp.StatusCode, body, seen)
		}
	})
}

// TestRegression_UpstreamCookiesThroughTheListener: an upstream that
// sets cookies a browser would store or send back as telegate's own (the
// session cookie in other letter case, with whitespace, nameless, without
// "=", with the __Secure- or no prefix, the sign-in companion) gets none
// of them to the browser, on a public and a signed-in route, while the
// app's own cookies pass; the browser stays signed in as itself.
func TestRegression_UpstreamCookiesThroughTheListener(t *testing.T) {
	n := startUpstreamNode(t)
	session := n.patient.cookie(n.Base(), sessionCookie).Value
	n.onPublicAndSignedIn(t, "cookies", nil, func(t *testing.T, resp *http.Response, _ recorded) {
		if got := resp.Header.Values("Set-Cookie"); !slices.Equal(got, keptCookies) {
			t.Errorf("the browser received Set-Cookie %q, want only %q", got, keptCookies)
		}
	})
	if got := n.patient.cookie(n.Base(), sessionCookie); got == nil || got.Value != session {
		t.Errorf("the browser's session cookie changed: %v", got)
	}
	_, _, seen := n.send(t, n.patient, n.request(t, http.MethodGet, "/chart/again", "", nil))
	if len(seen) != 1 || !strings.Contains(seen[0].header.Get("Cookie"), "app=1") {
		t.Errorf("the next request did not reach the upstream with the app's cookie: %v", seen)
	}
	for _, r := range seen {
		if strings.Contains(strings.ToLower(r.header.Get("Cookie")), "fixated") {
			t.Errorf("a forged cookie came back: %q", r.header.Get("Cookie"))
		}
	}
}

// TestRegression_PatientPagesAreNotCachedThroughTheListener: what a
// signed-in route answers, and telegate's own pages, carry
// Cache-Control: no-store whatever the upstream said (it says
// "public, max-age=3600"); a public route and a cacheable one keep the
// upstream's.
func TestRegression_PatientPagesAreNotCachedThroughTheListener(t *testing.T) {
	n := startUpstreamNode(t)
	for _, tc := range []struct {
		name, path string
		b          *browser
		status     int
		cache      string
	}{
		{"signed-in route", "/chart/visit-notes", n.patient, 200, "no-store"},
		{"signed-in form route", "/forms/intake", n.patient, 200, "no-store"},
		{"signed-in route, not signed in", "/chart/visit-notes", nil, 302, "no-store"},
		{"a method the route refuses", "/chart/visit-notes", n.patient, 403, "no-store"},
		{"sign-in, on its way to the provider", "/.telegate/login?rd=%2Fchart%2F", nil, 302, "no-store"},
		{"signed-out page", "/.telegate/signed-out", nil, 200, "no-store"},
		{"sign-out page", "/.telegate/logout", n.patient, 200, "no-store"},
		{"unknown own page", "/.telegate/nothing-here", n.patient, 404, "no-store"},
		{"unknown path", "/nothing-here", n.patient, 404, "no-store"},
		{"public route", "/open/leaflet", nil, 200, upstreamCache},
		{"cacheable route", "/styles/site.css", n.patient, 200, upstreamCache},
	} {
		method := http.MethodGet
		if tc.name == "a method the route refuses" {
			method = http.MethodDelete
		}
		resp, body, _ := n.send(t, tc.b, n.request(t, method, tc.path, "", [][2]string{{"Origin", n.Base()}}))
		if resp.StatusCode != tc.status {
			t.Errorf("%s: %d, want %d: %.200s", tc.name, resp.StatusCode, tc.status, body)
		}
		if cc := resp.Header.Get("Cache-Control"); cc != tc.cache {
			t.Errorf("%s (%s %s, %d): Cache-Control %q, want %q", tc.name, method, tc.path, resp.StatusCode, cc, tc.cache)
		}
		if tc.cache == "no-store" && resp.Header.Get("Expires") != "" {
			t.Errorf("%s: Expires %q beside no-store", tc.name, resp.Header.Get("Expires"))
		}
	}
}

// TestRegression_PlainHTTPOnTheHTTPSPortThroughTheListener: plain HTTP
// sent to the HTTPS port is answered with a short 400 that says to use
// https and carries a request id, whatever the method, not an empty
// reply; the upstream receives nothing.
func TestRegression_PlainHTTPOnTheHTTPSPortThroughTheListener(t *testing.T) {
	n := startUpstreamNode(t)
	for _, raw := range []string{
		"GET /chart/ HTTP/1.1\r\nHost: localhost\r\n\r\n",
		"POST /forms/intake HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 3\r\n\r\na=1",
		"HEAD / HTTP/1.0\r\n\r\n",
		"OPTIONS * HTTP/1.1\r\nHost: localhost\r\n\r\n",
	} {
		before := n.up.count()
		resp, body := plainExchange(t, n.demo, raw)
		what := strings.SplitN(raw, "\r\n", 2)[0]
		if resp == nil {
			t.Errorf("%s: an empty reply", what)
			continue
		}
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: %d, want 400", what, resp.StatusCode)
		}
		if !strings.HasPrefix(what, "HEAD") && (!strings.Contains(strings.ToLower(body), "https") || len(body) > 2048) {
			t.Errorf("%s: the answer does not say to use https, shortly: %q", what, body)
		}
		if rid := resp.Header.Get("X-Request-Id"); rid == "" || (!strings.HasPrefix(what, "HEAD") && !strings.Contains(body, rid)) {
			t.Errorf("%s: the answer does not show its request id %q: %q", what, rid, body)
		}
		if got := n.up.count() - before; got != 0 {
			t.Errorf("%s: the upstream received %d requests", what, got)
		}
	}
}

// plainExchange writes raw on a plain TCP connection to d's HTTPS port
// and returns the answer (nil if none came) with its body.
func plainExchange(t *testing.T, d *demo, raw string) (*http.Response, string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", d.port), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		return nil, ""
	}
	method := strings.SplitN(raw, " ", 2)[0]
	resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: method})
	if err != nil {
		return nil, ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return resp, string(b)
}

// upgrade sends a WebSocket upgrade for path with the Origin fields
// origins (none when empty) and cookie (if set) over TLS to d's listener,
// and returns the status of the answer (0 if none came).
func upgrade(t *testing.T, d *demo, path, cookie string, origins ...string) int {
	t.Helper()
	c := dialTLS(t, d, "localhost", "http/1.1")
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	raw := "GET " + path + " HTTP/1.1\r\nHost: " + strings.TrimPrefix(d.Base(), "https://") +
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
	for _, o := range origins {
		raw += "Origin: " + o + "\r\n"
	}
	if cookie != "" {
		raw += "Cookie: " + sessionCookie + "=" + cookie + "\r\n"
	}
	if _, err := io.WriteString(c, raw+"\r\n"); err != nil {
		return 0
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	c.Close()
	return resp.StatusCode
}

// TestRegression_WebSocketOriginThroughTheListener: an upgrade to a
// proxied WebSocket route whose Origin differs from the public origin
// only in scheme, host or port — or is null, absent or given twice — is
// refused through the listener and the upstream sees no upgrade; the
// exact origin is accepted and reaches it. On a public route and on a
// signed-in one.
func TestRegression_WebSocketOriginThroughTheListener(t *testing.T) {
	n := startUpstreamNode(t)
	public := n.Base() // https://localhost:PORT
	u, err := url.Parse(public)
	if err != nil {
		t.Fatal(err)
	}
	port := u.Port()
	other := fmt.Sprintf("%d", n.port+1)
	refused := [][]string{
		{"http://localhost:" + port},
		{"wss://localhost:" + port},
		{"https://127.0.0.1:" + port},
		{"https://localhost.:" + port},
		{"https://evil.example:" + port},
		{"https://localhost.evil.example:" + port},
		{"https://localhost:" + other},
		{"https://localhost"},
		{"https://localhost:443"},
		{"null"},
		{},
		{public, "https://evil.example"},
	}
	session := n.patient.cookie(n.Base(), sessionCookie).Value
	for _, route := range []struct{ name, path, cookie string }{
		{"public route", "/open/socket", ""},
		{"signed-in route", "/chart/socket", session},
	} {
		t.Run(route.name, func(t *testing.T) {
			for _, origins := range refused {
				before := n.up.count()
				st := upgrade(t, n.demo, route.path, route.cookie, origins...)
				if st != http.StatusForbidden {
					t.Errorf("Origin %q: %d, want 403", origins, st)
				}
				for _, r := range n.up.since(before) {
					t.Errorf("Origin %q: the upstream received %s %s (Upgrade %q)", origins, r.method, r.path, r.header.Get("Upgrade"))
				}
			}
			before := n.up.count()
			if st := upgrade(t, n.demo, route.path, route.cookie, public); st != http.StatusSwitchingProtocols {
				t.Fatalf("the exact origin: %d, want 101", st)
			}
			seen := n.up.since(before)
			if len(seen) != 1 || !strings.EqualFold(seen[0].header.Get("Upgrade"), "websocket") {
				t.Errorf("the exact origin's upgrade did not reach the upstream: %v", seen)
			}
		})
	}
}
