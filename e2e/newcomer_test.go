package e2e

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestNewcomerHomePage follows the README as a newcomer would: the demo
// app's home page names the signed-in user, shows clinicians the way to
// the video visit lobby, and carries a sign-out button whose form, posted
// as a browser posts it, signs the user out.
func TestNewcomerHomePage(t *testing.T) {
	d := startDemo(t, filepath.Join(t.TempDir(), "data"), freePort(t), freePort(t))
	lobbyLink := regexp.MustCompile(`<a id="visits" href="(/\.telegate/visits/lobby)"`)
	signOut := regexp.MustCompile(`<form method="post" action="(/\.telegate/logout)"`)
	for _, tc := range []struct {
		user  string
		lobby bool
	}{
		{"clinician@demo.test", true},
		{"patient@demo.test", false},
		{"admin@demo.test", false},
	} {
		t.Run(tc.user, func(t *testing.T) {
			b := newBrowser(t, d)
			b.accept = "text/html"
			resp, body := b.signIn(d.Base(), "/", tc.user, "demo")
			if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), tc.user) {
				t.Fatalf("home page after sign-in: %d\n%.500s", resp.StatusCode, body)
			}
			m := lobbyLink.FindSubmatch(body)
			if (m != nil) != tc.lobby {
				t.Errorf("home page links to the lobby: %v, want %v", m != nil, tc.lobby)
			}
			if m != nil {
				resp, page := b.get(d.Base() + string(m[1]))
				if resp.StatusCode != http.StatusOK || !strings.Contains(string(page), "Video visits") {
					t.Errorf("lobby: %d %.300s", resp.StatusCode, page)
				}
			}
			f := signOut.FindSubmatch(body)
			if f == nil {
				t.Fatalf("home page has no sign-out form:\n%.1500s", body)
			}
			resp, page := b.post(d.Base()+string(f[1]), url.Values{}, http.Header{"Origin": {d.Base()}, "Sec-Fetch-Site": {"same-origin"}})
			if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/.telegate/signed-out" {
				t.Errorf("sign-out: %d at %s\n%.300s", resp.StatusCode, resp.Request.URL, page)
			}
			resp, _ = b.do(b.noRedirect(), mustRequest(t, "GET", d.Base()+"/", "text/html"))
			if resp.StatusCode != http.StatusFound {
				t.Errorf("home page after sign-out: %d, want 302 to sign in", resp.StatusCode)
			}
		})
	}
}

// TestRegression_PatientLobbyOffersCreate: a patient who opens the lobby
// URL is not offered a "Create visit" form that the visits API will refuse
// (only clinicians create visits): they get telegate's own 403 page, in
// their language, with the request id, saying how patients join.
func TestRegression_PatientLobbyOffersCreate(t *testing.T) {

	d := startDemo(t, filepath.Join(t.TempDir(), "data"), freePort(t), freePort(t))
	b := newBrowser(t, d)
	b.accept = "text/html"
	b.signIn(d.Base(), "/", "patient@demo.test", "demo")
	for _, tc := range []struct{ lang, says string }{
		{"en-GB,en;q=0.9", "open the invite link your clinician sent you"},
		{"es-MX,es;q=0.9", "abra el enlace de invitación"},
	} {
		req := mustRequest(t, http.MethodGet, d.Base()+"/.telegate/visits/lobby", "text/html")
		req.Header.Set("Accept-Language", tc.lang)
		resp, body := b.do(nil, req)
		if resp.StatusCode == http.StatusOK && strings.Contains(string(body), `id="visit-title"`) {
			t.Errorf("%s: a patient is offered the New visit form", tc.lang)
		}
		id := resp.Header.Get("X-Request-Id")
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), tc.says) || id == "" || !strings.Contains(string(body), id) {
			t.Errorf("%s: %d, request id %q; want 403 saying %q with the request id:\n%s", tc.lang, resp.StatusCode, id, tc.says, body)
		}
	}
}

// TestNewcomerCommands runs the commands README names: --help, version,
// check on the example configuration (every problem reported with file and
// line) and audit verify on the demo's data directory.
func TestNewcomerCommands(t *testing.T) {
	t.Parallel()
	out, err := runBinary(t, "--help")
	if err != nil {
		t.Errorf("--help: %v", err)
	}
	for _, cmd := range []string{"demo", "check", "audit verify", "version"} {
		if !strings.Contains(out, cmd) {
			t.Errorf("--help does not name %q:\n%s", cmd, out)
		}
	}
	out, err = runBinary(t, "version")
	if err != nil || !strings.HasPrefix(out, "telegate ") {
		t.Errorf("version: %v %q", err, out)
	}

	// The example names secrets by environment variable and files that a
	// newcomer does not have: check must say so, each with file:line, and
	// must not complain about the variables once they are set.
	out, err = checkExample(t)
	if err == nil {
		t.Fatalf("check of the example without its files passed:\n%s", out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	for _, l := range lines {
		if !regexp.MustCompile(`^config\.example\.yaml:\d+: `).MatchString(l) {
			t.Errorf("check output line without file:line: %q", l)
		}
	}
	for _, env := range []string{"TELEGATE_SESSION_KEY", "TELEGATE_STAFF_CLIENT_SECRET"} {
		if strings.Contains(out, env) {
			t.Errorf("check complains about %s although it is set:\n%s", env, out)
		}
	}
	if strings.Contains(out, "example-secret") {
		t.Errorf("check prints a secret:\n%s", out)
	}
}

// TestRegression_AuditVerifyDataDir: `telegate audit verify --data-dir
// DIR` checks the demo's trail, as its --help promises (--file defaults to
// DIR/audit/audit.log, --key-file to DIR/keys/audit.key).
func TestRegression_AuditVerifyDataDir(t *testing.T) {

	dir := filepath.Join(t.TempDir(), "data")
	d := startDemo(t, dir, freePort(t), freePort(t))
	newBrowser(t, d).get(d.Base() + "/public/")
	d.Stop()
	if out, err := runBinary(t, "audit", "verify", "--data-dir", dir); err != nil || !strings.Contains(out, "ok") {
		t.Errorf("audit verify --data-dir: %v\n%s", err, out)
	}
}

// TestRegression_DemoCANameConstraints: README invites a newcomer to add
// the demo's root to the system trust store, so the root must only be able
// to vouch for what the demo serves (loopback): its name constraints
// (RFC 5280 §4.2.1.10) permit no private network range and no shared
// internal domain, where a stolen root.key would let anyone impersonate
// the hospital's own hosts.
func TestRegression_DemoCANameConstraints(t *testing.T) {

	d := startDemo(t, filepath.Join(t.TempDir(), "data"), freePort(t), freePort(t))
	pemBytes, err := os.ReadFile(filepath.Join(d.dataDir, "ca", "root.pem"))
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(pemBytes)
	if blk == nil {
		t.Fatal("root.pem holds no PEM block")
	}
	root, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if !root.PermittedDNSDomainsCritical || len(root.PermittedDNSDomains)+len(root.PermittedIPRanges) == 0 {
		t.Fatalf("the root has no critical name constraints")
	}
	for _, dom := range root.PermittedDNSDomains {
		if dom != "localhost" {
			t.Errorf("the root may vouch for *.%s", dom)
		}
	}
	for _, n := range root.PermittedIPRanges {
		if !n.IP.IsLoopback() {
			t.Errorf("the root may vouch for %s", n)
		}
	}
}

// TestRegression_DemoAppPhoneLayout: on a phone (390×844) the demo app's
// page shows each short value (the subject, the issuer, the roles) on one
// line, not cut mid-word because the label column takes the room, for
// each demo user.
func TestRegression_DemoAppPhoneLayout(t *testing.T) {
	d := startDemo(t, filepath.Join(t.TempDir(), "data"), freePort(t), freePort(t))
	newCtx := chromium(t)
	artifacts := artifactsDir(t)
	for _, user := range []string{"clinician@demo.test", "patient@demo.test", "admin@demo.test"} {
		p := newPage(t, newCtx, user)
		p.signIn(d.Base()+"/", user, "/")
		p.viewport(390, 844, true)
		time.Sleep(200 * time.Millisecond) // a layout pass
		// A value wraps although, on one line, it would take less than
		// 60% of the screen.
		cut := eval[string](p, `[...document.querySelectorAll('dd')].filter(dd => {
  const r = document.createRange(); r.selectNodeContents(dd);
  const lines = new Set([...r.getClientRects()].map(c => Math.round(c.top))).size;
  const probe = dd.cloneNode(true); probe.style.cssText = 'position:absolute;white-space:nowrap;visibility:hidden';
  document.body.append(probe); const w = probe.getBoundingClientRect().width; probe.remove();
  return lines > 1 && w < 0.6 * innerWidth;
}).map(dd => dd.textContent).join(' | ')`)
		if cut != "" {
			t.Errorf("%s: on a phone these values are cut over lines: %s", user, cut)
		}
		p.screenshot(artifacts, "demoapp-"+strings.Split(user, "@")[0]+"-phone.png")
	}
}

// TestRegression_CheckReportsProblemOnce: `telegate check` on the example
// configuration names each file it cannot read on one line, at the field
// that names it, although both the file's validation and the part built
// from it (identity provider, upstream, client CA, audit, relay) stumble
// over it.
func TestRegression_CheckReportsProblemOnce(t *testing.T) {
	t.Parallel()
	out, _ := checkExample(t)
	for file, field := range map[string]string{
		"secrets/patients-client-secret": "providers[1].client_secret_file",
		"tls/internal-ca.pem":            "routes[1].upstream_tls.ca_file",
		"tls/device-ca.pem":              "client_cas[0].ca_file",
		"secrets/audit-key":              "audit.key_file",
		"secrets/relay-secrets":          "relay.secrets_file",
	} {
		var lines []string
		for _, l := range strings.Split(out, "\n") {
			if strings.Contains(l, file) {
				lines = append(lines, l)
			}
		}
		if len(lines) != 1 || !strings.Contains(lines[0], ": "+field+": ") {
			t.Errorf("%s: want one line at %s, got %d:\n%s", file, field, len(lines), strings.Join(lines, "\n"))
		}
	}
}

// checkExample runs `telegate check -c config.example.yaml` from the
// repository's root with the example's secret environment variables set
// (not its files) and returns what it printed.
func checkExample(t *testing.T) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, telegateBin, "check", "-c", "config.example.yaml")
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(),
		"TELEGATE_SESSION_KEY=MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
		"TELEGATE_STAFF_CLIENT_SECRET=example-secret")
	b, err := cmd.CombinedOutput()
	return string(b), err
}
