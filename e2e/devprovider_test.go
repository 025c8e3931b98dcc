package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// devProviderConfig is a configuration naming the development provider
// and nothing of an identity provider's own; %[1]s is the data
// directory, %[2]d the public port, %[3]d the admin port and %[4]s the
// upstream.
var devProviderConfig = runConfig{Providers: developmentProvider, Routes: clinicEcho}.String()

// identityEcho is an upstream that answers with the identity the gateway
// forwarded (identity_headers: true).
func identityEcho(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"subject": r.Header.Get("X-Telegate-Subject"),
			"roles":   strings.Split(r.Header.Get("X-Telegate-Roles"), ","),
			"path":    r.URL.Path,
		})
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "http://" + ln.Addr().String()
}

// TestRunDevelopmentProvider: `telegate run -c` with a configuration that
// declares `development: true` and no issuer or client starts the
// development OpenID Provider itself, says so loudly (WARN in the log, the
// label on its sign-in page), and a clinician signed in there reaches the
// route that only clinicians may pass, while a patient is refused.
func TestRunDevelopmentProvider(t *testing.T) {
	dir := t.TempDir()
	d := &demo{t: t, dataDir: filepath.Join(dir, "data"), port: freePort(t), admin: freePort(t)}
	path := filepath.Join(dir, "telegate.yaml")
	cfg := fmt.Sprintf(devProviderConfig, d.dataDir, d.port, d.admin, identityEcho(t))
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	d.start("run", "-c", path)

	out := d.Output()
	for _, want := range []string{
		// The configuration's warning, with file:line.
		fmt.Sprintf(`level=WARN msg="configuration warning" problem="%s:%d: providers[0].development: development sign-in — not for patients`, path, lineOf(cfg, "development: true")),
		// Start-up, naming the provider it started.
		`level=WARN msg="development sign-in — not for patients`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the log does not say %q:\n%s", want, out)
		}
	}

	// Anonymous: sent to the development provider's sign-in page, which
	// carries the label.
	b := newBrowser(t, d)
	b.accept = "text/html"
	resp, body := b.get(d.Base() + "/clinic/")
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Request.URL.String(), "http://127.0.0.1:") || !strings.Contains(string(body), "development sign-in — not for patients") {
		t.Fatalf("anonymous GET /clinic/: %d at %s\n%.600s", resp.StatusCode, resp.Request.URL, body)
	}

	for _, tc := range []struct {
		user   string
		status int
	}{
		{"clinician@demo.test", http.StatusOK},
		{"patient@demo.test", http.StatusForbidden},
	} {
		t.Run(tc.user, func(t *testing.T) {
			b := newBrowser(t, d)
			resp, body := b.signIn(d.Base(), "/clinic/", tc.user, "demo")
			if resp.StatusCode != tc.status {
				t.Fatalf("after sign-in: %d at %s, want %d\n%.500s", resp.StatusCode, resp.Request.URL, tc.status, body)
			}
			if tc.status != http.StatusOK {
				return
			}
			if got := resp.Request.URL.String(); got != d.Base()+"/clinic/" {
				t.Errorf("after sign-in the browser is at %s, want %s/clinic/", got, d.Base())
			}
			var v struct {
				Subject string   `json:"subject"`
				Roles   []string `json:"roles"`
			}
			if err := json.Unmarshal(body, &v); err != nil {
				t.Fatalf("upstream answer %q: %v", body, err)
			}
			if v.Subject != tc.user || !slices.Contains(v.Roles, "clinician") {
				t.Errorf("upstream saw %+v, want subject %s with role clinician", v, tc.user)
			}
		})
	}
}
