package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// reloadConfig is a `telegate run` configuration for the reload tests (see
// runWithDevOP for %[1]…%[7]): %[8]s is the provider's client secret file,
// %[9]s the roles the "clinicians" group maps to, %[10]s the upstream.
const reloadConfig = `
data_dir: %[1]s
server:
  listen: 127.0.0.1:%[2]d
  http_listen: ""
  admin: 127.0.0.1:%[3]d
tls:
  hosts:
    - names: [localhost]
      mode: local
providers:
  - id: dev
    issuer: %[5]s
    client_id: telegate
    client_secret_file: %[8]s
    scopes: [openid, profile, email, groups]
    roles:
      claim: groups
      map:
        clinicians: %[9]s
routes:
  - id: chart
    path: /chart/
    upstream: %[10]s
    policy:
      allow:
        - roles: [nurse]
log:
  format: text
`

// reloadNow asks the node to reload through its admin listener and
// returns the status and body.
func reloadNow(t *testing.T, d *demo) (int, string) {
	t.Helper()
	resp, err := http.Post(d.AdminURL()+"/reload", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// readyz returns the admin listener's readiness body.
func readyz(t *testing.T, d *demo) string {
	t.Helper()
	resp, err := http.Get(d.AdminURL() + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// TestRegression_ReloadAppliesProvidersAndRefusesFixedSettings: a reload
// is one whole generation. A changed client secret and a changed role
// mapping take effect at the next sign-in; what cannot change while the
// process runs (listener addresses, the data directory, the ACME
// account) and what does
// not build is refused with the field and line named, and the running
// generation keeps serving.
func TestRegression_ReloadAppliesProvidersAndRefusesFixedSettings(t *testing.T) {
	t.Parallel()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "chart") }))
	t.Cleanup(up.Close)
	wrong := filepath.Join(t.TempDir(), "wrong-secret")
	if err := os.WriteFile(wrong, []byte("not-the-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	d, rewrite := startWithDevOP(t, reloadConfig, wrong, "[clinician]", up.URL)
	right := filepath.Join(filepath.Dir(d.dataDir), "client-secret") // written by startWithDevOP
	signIn := func() (*browser, int) {
		b := newBrowser(t, d)
		resp, _, err := b.c.SignIn(d.Base()+"/chart/", "clinician@demo.test", "demo")
		if err != nil {
			t.Fatalf("sign-in: %v", err)
		}
		return b, resp.StatusCode
	}
	// Generation 1: the wrong client secret — the provider refuses the
	// token exchange, so nobody signs in.
	if _, st := signIn(); st == http.StatusOK || st == http.StatusForbidden {
		t.Fatalf("signed in with a wrong client secret (%d)", st)
	}
	// Generation 2: the right secret, the same roles: signed in, but not
	// a nurse.
	rewrite(reloadConfig, right, "[clinician]", up.URL)
	if st, body := reloadNow(t, d); st != http.StatusOK || !strings.Contains(body, "generation 2\n") {
		t.Fatalf("reload: %d %q", st, body)
	}
	if _, st := signIn(); st != http.StatusForbidden {
		t.Fatalf("after the secret changed: %d, want 403 (signed in, no nurse role)", st)
	}
	// Generation 3: clinicians are also nurses, from the next sign-in.
	rewrite(reloadConfig, right, "[clinician, nurse]", up.URL)
	if st, body := reloadNow(t, d); st != http.StatusOK || !strings.Contains(body, "generation 3\n") {
		t.Fatalf("reload: %d %q", st, body)
	}
	b, st := signIn()
	if st != http.StatusOK {
		t.Fatalf("after the role mapping changed: %d, want 200", st)
	}
	good, err := os.ReadFile(configPath(d))
	if err != nil {
		t.Fatal(err)
	}
	// Refused reloads: each names its field and line; generation 3 stays
	// and keeps serving.
	for _, tc := range []struct {
		name, from, to, field string
	}{
		{"listener", fmt.Sprintf("listen: 127.0.0.1:%d", d.port), fmt.Sprintf("listen: 127.0.0.1:%d", d.port+1), "server.listen"},
		{"admin listener", fmt.Sprintf("admin: 127.0.0.1:%d", d.admin), fmt.Sprintf("admin: 127.0.0.1:%d", d.admin+1), "server.admin"},
		{"data directory", "data_dir: " + d.dataDir, "data_dir: " + d.dataDir + "-other", "data_dir"},
		{"acme account", "tls:\n  hosts:", "tls:\n  acme:\n    email: pki@hospital.test\n  hosts:", "tls.acme"},
		{"route upstream", "upstream: " + up.URL, "upstream: " + up.URL + "/with/path", "routes[0].upstream"},
		{"policy", "roles: [nurse]", "roles: []", "routes[0].policy"},
		{"unknown key", "log:", "colour: blue\nlog:", "colour"},
	} {
		bad := strings.Replace(string(good), tc.from, tc.to, 1)
		if bad == string(good) {
			t.Fatalf("%s: %q not in the configuration", tc.name, tc.from)
		}
		writeConfig(t, d, bad)
		st, body := reloadNow(t, d)
		t.Logf("%s: %d %s", tc.name, st, body)
		if st != http.StatusConflict || !strings.Contains(body, tc.field) || !strings.Contains(body, "telegate.yaml:") {
			t.Errorf("%s: reload %d %q, want 409 naming %s with file:line", tc.name, st, body, tc.field)
		}
		if r := readyz(t, d); !strings.Contains(r, `"generation":3,`) {
			t.Errorf("%s: readyz %q, want generation 3 still running", tc.name, r)
		}
		if resp, _ := b.get(d.Base() + "/chart/"); resp.StatusCode != http.StatusOK {
			t.Errorf("%s: the running generation stopped serving: %d", tc.name, resp.StatusCode)
		}
	}
}

// configPath is the configuration file startWithDevOP writes for d.
func configPath(d *demo) string { return filepath.Join(filepath.Dir(d.dataDir), "telegate.yaml") }

// writeConfig replaces d's configuration file.
func writeConfig(t *testing.T, d *demo, cfg string) {
	t.Helper()
	if err := os.WriteFile(configPath(d), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
}

// loadConfig is the configuration the reload-under-load test alternates
// (see runWithDevOP for %[1]…%[7]): %[8]s names the generation ("A" or
// "B"), %[9]s is its upstream, %[10]s the policy of /gated/, %[11]d the
// per-client rate, %[12]s the provider's display name, %[13]s the app
// route's id.
const loadConfig = `
data_dir: %[1]s
server:
  h2_max_requests_per_second: 5000
  listen: 127.0.0.1:%[2]d
  http_listen: ""
  admin: 127.0.0.1:%[3]d
tls:
  hosts:
    - names: [localhost]
      mode: local
providers:
  - id: dev
    display_name: %[12]s
    issuer: %[5]s
    client_id: telegate
    client_secret_file: %[6]s
rate_limits:
  per_client: {rate: %[11]d, burst: %[11]d}
inspection:
  enabled: false
routes:
  - id: app-%[13]s
    path: /app/
    upstream: %[9]s
    websocket: true
    origins: ["https://localhost:%[2]d"]
    response_headers:
      X-Generation-Marker: %[8]s
    policy:
      public: true
  - id: gated
    path: /gated/
    upstream: %[9]s
    response_headers:
      X-Generation-Marker: %[8]s
    policy:
%[10]s
  - id: denied
    path: /denied/
    upstream: %[9]s
    policy:
      allow:
        - roles: [nobody]
  - id: inspected
    path: /inspected/
    upstream: %[9]s
    inspect: true
    response_headers:
      X-Generation-Marker: %[8]s
    policy:
      public: true
log:
  format: text
`

// TestRegression_ReloadUnderLoadIsOneGeneration: 50 reloads between two
// configurations that differ in routes, policies, a provider and rate
// limits, while clients keep sending public, signed-out, denied, inspected
// and WebSocket requests. No request fails because of a reload, and every
// response is one generation's answer: the route that answered, the
// upstream that served it and the marker header the configuration sets
// all belong to the same generation.
func TestRegression_ReloadUnderLoadIsOneGeneration(t *testing.T) {
	t.Parallel()
	upstream := func(name string) *httptest.Server {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Upgrade") != "" {
				c, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true}) // the gateway checked the Origin
				if err != nil {
					return
				}
				_ = c.Write(r.Context(), websocket.MessageText, []byte(name))
				_ = c.Close(websocket.StatusNormalClosure, "")
				return
			}
			_, _ = io.WriteString(w, name)
		}))
		t.Cleanup(s.Close)
		return s
	}
	ups := map[string]string{"A": upstream("A").URL, "B": upstream("B").URL}
	gens := map[string][]any{
		"A": {"A", ups["A"], "      public: true", 100000, "Sign-in A", "a"},
		"B": {"B", ups["B"], "      allow:\n        - authenticated: true", 90000, "Sign-in B", "b"},
	}
	d, rewrite := startWithDevOP(t, loadConfig, gens["A"]...)
	b := newBrowser(t, d)
	b.accept = "text/html"
	client := b.noRedirect()

	var failures atomic.Int64
	var seen sync.Map // "path marker" → count
	fail := func(format string, args ...any) {
		if failures.Add(1) <= 10 {
			t.Errorf(format, args...)
		}
	}
	check := func(path string) {
		req, _ := http.NewRequest(http.MethodGet, d.Base()+path, nil)
		req.Header.Set("Accept", "text/html")
		resp, err := client.Do(req)
		if err != nil {
			fail("%s: %v", path, err)
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		marker := resp.Header.Get("X-Generation-Marker")
		seen.Store(path+" "+marker, true)
		switch {
		case strings.HasPrefix(path, "/app/"), strings.HasPrefix(path, "/inspected/ok"):
			if resp.StatusCode != 200 || (marker != "A" && marker != "B") || string(body) != marker {
				fail("%s: %d marker %q body %q: not one generation's answer", path, resp.StatusCode, marker, body)
			}
		case strings.HasPrefix(path, "/gated/"):
			// A: public, served by A. B: sign-in required, a redirect.
			ok := (resp.StatusCode == 200 && marker == "A" && string(body) == "A") ||
				(resp.StatusCode == http.StatusFound && marker == "" && strings.Contains(resp.Header.Get("Location"), "/.telegate/login"))
			if !ok {
				fail("%s: %d marker %q body %.40q: not one generation's answer", path, resp.StatusCode, marker, body)
			}
		case strings.HasPrefix(path, "/denied/"):
			if resp.StatusCode != http.StatusFound && resp.StatusCode != http.StatusForbidden {
				fail("%s: %d, want a refusal", path, resp.StatusCode)
			}
		case strings.HasPrefix(path, "/inspected/attack"):
			if resp.StatusCode != http.StatusForbidden {
				fail("%s: %d, want 403 from inspection", path, resp.StatusCode)
			}
		}
	}
	checkWS := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, resp, err := websocket.Dial(ctx, "wss"+strings.TrimPrefix(d.Base(), "https")+"/app/ws", &websocket.DialOptions{HTTPClient: client, HTTPHeader: http.Header{"Origin": {d.Base()}}})
		if err != nil {
			fail("websocket: %v (%v)", err, resp)
			return
		}
		defer c.CloseNow()
		_, msg, err := c.Read(ctx)
		if err != nil || (string(msg) != "A" && string(msg) != "B") {
			fail("websocket: %q %v", msg, err)
		}
	}
	paths := []string{"/app/x", "/gated/x", "/denied/x", "/inspected/ok", "/inspected/attack?id=" + url.QueryEscape("1' OR '1'='1")}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if i%10 == 9 {
					checkWS()
					continue
				}
				check(paths[i%len(paths)])
			}
		}(w)
	}
	for i := 1; i <= 50; i++ {
		name := "A"
		if i%2 == 1 {
			name = "B"
		}
		rewrite(loadConfig, gens[name]...)
		st, body := reloadNow(t, d)
		if st != http.StatusOK || !strings.Contains(body, fmt.Sprintf("generation %d\n", i+1)) {
			t.Fatalf("reload %d: %d %q", i, st, body)
		}
		time.Sleep(40 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	for _, k := range []string{"/app/x A", "/app/x B", "/gated/x A", "/gated/x "} {
		if _, ok := seen.Load(k); !ok {
			t.Errorf("no response %q seen: the load did not span both generations", k)
		}
	}
	if failures.Load() > 0 {
		t.Logf("%d responses were not one generation's answer", failures.Load())
		if out := d.Output(); len(out) > 6000 {
			t.Logf("log (end):\n%s", out[len(out)-6000:])
		}
	}
}
