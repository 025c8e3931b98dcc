package e2e

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/telegate/telegate/demo/devop"
)

// runWithDevOP starts the development OpenID Provider in the test process
// and `telegate run -c` with a configuration file written from cfgYAML, a
// format string whose indexed verbs are %[1]s the data directory, %[2]d
// the public port, %[3]d the admin port, %[4]d the relay's UDP port, %[5]s
// the issuer, %[6]s the client secret file and %[7]s the relay secrets
// file; extra values follow as %[8]v, %[9]v, …. Everything listens on
// loopback.
func runWithDevOP(t *testing.T, cfgYAML string, extra ...any) *demo {
	t.Helper()
	d, _ := startWithDevOP(t, cfgYAML, extra...)
	return d
}

// startWithDevOP is runWithDevOP that also returns rewrite, which writes
// the configuration file anew from another format string with the same
// verbs (for reloads).
func startWithDevOP(t *testing.T, cfgYAML string, extra ...any) (d *demo, rewrite func(cfgYAML string, extra ...any)) {
	t.Helper()
	return startDemoWithDevOP(t, &demo{}, cfgYAML, extra...)
}

// startDemoWithDevOP is startWithDevOP for d, whose bin and env (if set)
// are kept.
func startDemoWithDevOP(t *testing.T, d *demo, cfgYAML string, extra ...any) (*demo, func(cfgYAML string, extra ...any)) {
	t.Helper()
	dir := t.TempDir()
	d.t, d.dataDir, d.port, d.admin, d.relay = t, filepath.Join(dir, "data"), freePort(t), freePort(t), freeUDPPort(t)
	secret := func(name string) string {
		b := make([]byte, 32)
		_, _ = rand.Read(b)
		v := base64.RawURLEncoding.EncodeToString(b)
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(v+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return v
	}
	clientSecret := secret("client-secret")
	secret("relay-secrets")
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	public := fmt.Sprintf("https://localhost:%d", d.port)
	op, err := devop.Start(ctx, devop.Options{
		Logger: slog.New(slog.DiscardHandler),
		Clients: []devop.Client{{
			ID:                     "telegate",
			Secret:                 clientSecret,
			RedirectURIs:           []string{public + "/.telegate/callback/dev"},
			PostLogoutRedirectURIs: []string{public + "/", public + "/.telegate/signed-out"},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = op.Close() })
	path := filepath.Join(dir, "telegate.yaml")
	rewrite := func(cfgYAML string, extra ...any) {
		t.Helper()
		args := append([]any{d.dataDir, d.port, d.admin, d.relay, op.Issuer(),
			filepath.Join(dir, "client-secret"), filepath.Join(dir, "relay-secrets")}, extra...)
		if err := os.WriteFile(path, []byte(fmt.Sprintf(cfgYAML, args...)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	rewrite(cfgYAML, extra...)
	return d.start("run", "-c", path), rewrite
}

// shortTimeouts is a visits configuration whose sign-in idle timeout and
// relay credential lifetime are seconds long (see runWithDevOP).
var shortTimeouts = runConfig{
	Sections:  "sessions:\n  idle_timeout: 4s\n",
	Relay:     true,
	Visits:    true,
	RelayMore: "  credential_ttl: 5s\n",
}.String()

// TestRegression_CallOutlivesSessionTimeouts: a call lasts as long as the
// visit. The sign-in idle timeout (4 s here) and the relay credential
// lifetime (5 s) pass several times over during a call whose pages send no
// HTTP request, and video still flows both ways with both participants
// signed in; a clinician's lobby left open in another browser, whose page
// polls by itself, is still signed out on time and its patient list taken
// off the screen.
func TestRegression_CallOutlivesSessionTimeouts(t *testing.T) {
	d := runWithDevOP(t, shortTimeouts)
	d.logVisitOnFailure()
	const idle = 4 * time.Second
	newCtx := chromium(t)
	dr := newPage(t, newCtx, "clinician")
	pat := newPage(t, newCtx, "patient")
	visitID, _ := startCall(t, d.Base(), dr, pat, artifactsDir(t))

	// The same clinician's lobby in another browser, then left alone.
	lobby := newPage(t, newCtx, "idle lobby")
	lobby.signIn(d.Base()+"/.telegate/visits/lobby", "clinician@demo.test", "/.telegate/visits/lobby")
	lobby.waitFor("the visit in the lobby", fmt.Sprintf(`document.querySelector('#visit-list button[data-visit=%q]') !== null`, visitID), 15*time.Second)
	lobbyIdleFrom := time.Now()

	// Hold the call for three idle timeouts (over two credential
	// lifetimes), checking every second that it is still up.
	bytesNow := func(p *page) float64 {
		return eval[float64](p, `Number(document.querySelector('#stats').dataset.inboundVideoBytes)`)
	}
	start := map[*page]float64{dr: bytesNow(dr), pat: bytesNow(pat)}
	var lobbyOut time.Duration // when the idle lobby was seen signed out
	for held := time.Duration(0); held < 3*idle; held += time.Second {
		time.Sleep(time.Second)
		if lobbyOut == 0 && eval[bool](lobby, `document.querySelector('[data-testid=signed-out]') !== null`) {
			lobbyOut = time.Since(lobbyIdleFrom)
		}
		for _, p := range []*page{dr, pat} {
			if st := eval[string](p, `document.querySelector('#connection-state').dataset.state`); st != "connected" {
				t.Fatalf("%s: the call is %q after %v (idle_timeout %v): %s", p.name, st, held+time.Second, idle,
					eval[string](p, `document.querySelector('#call-status').textContent`))
			}
		}
	}
	for _, p := range []*page{dr, pat} {
		got := bytesNow(p) - start[p]
		if got < 50000 {
			t.Fatalf("%s: %.0f bytes of video in the last %v of the call", p.name, got, 3*idle)
		}
		// Still signed in: the session answers a request.
		if st := eval[float64](p, fmt.Sprintf(`fetch('/.telegate/visits/%s').then(r => r.status)`, visitID)); st != 200 {
			t.Fatalf("%s: signed out during the call (visit status %v)", p.name, st)
		}
		t.Logf("%s: %.0f kB of video received over %v of call past the idle timeout", p.name, got/1000, 3*idle)
	}

	// The idle lobby was signed out within the hold (idle timeout, then
	// its next poll), not before the idle timeout less one touch interval
	// (a quarter of it); its page says so and no longer shows the visits.
	if lobbyOut == 0 {
		t.Fatalf("the lobby left alone for %v is still signed in (idle_timeout %v)", time.Since(lobbyIdleFrom).Round(time.Second), idle)
	}
	if lobbyOut < idle*3/4 {
		t.Fatalf("the lobby was signed out after %v, before its idle timeout of %v", lobbyOut, idle)
	}
	if n := eval[float64](lobby, `document.querySelectorAll('#visit-list, #waiting-list').length`); n != 0 {
		t.Fatalf("the signed-out lobby still shows %v visit lists", n)
	}
	if st := eval[float64](lobby, `fetch('/.telegate/visits').then(r => r.status)`); st != 401 {
		t.Fatalf("the idle lobby's session answers %v, want 401", st)
	}
	t.Logf("idle lobby seen signed out %v after it was last used (idle_timeout %v)", lobbyOut.Round(100*time.Millisecond), idle)
}
