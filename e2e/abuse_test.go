package e2e

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/pion/stun/v4"

	"github.com/telegate/telegate/e2e/abuse"
	"github.com/telegate/telegate/e2e/webclient"
	"github.com/telegate/telegate/media/relay/turnwire"
)

// abuseConfig runs telegate with small connection caps: %[1]s is the data
// directory, %[2]d the public port, %[3]d the admin port, %[4]s the
// upstream. The pending pool (64) is the whole per-source pending cap, so
// one source can fill it and eviction is what lets another in.
var abuseConfig = runConfig{
	Sections: `connections:
  max_pending: 64
  max_pending_per_source: 64
  max_conns: 256
  max_conns_per_source: 32
  first_byte_timeout: 2s
  handshake_timeout: 10s
rate_limits:
  per_client: {rate: 100000, burst: 100000}
  per_subject: {rate: 100000, burst: 100000}
`,
	Providers: developmentProvider,
	Routes:    clinicEcho,
}.String()

// Loopback sources: the attacker and the legitimate client.
var (
	attackerSource = net.IPv4(127, 0, 0, 50)
	clientSource   = net.IPv4(127, 0, 0, 60)
)

// startAbuseNode runs `telegate run` with abuseConfig.
func startAbuseNode(t *testing.T) *demo {
	t.Helper()
	dir := t.TempDir()
	d := &demo{t: t, dataDir: filepath.Join(dir, "data"), port: freePort(t), admin: freePort(t)}
	path := filepath.Join(dir, "telegate.yaml")
	if err := os.WriteFile(path, fmt.Appendf(nil, abuseConfig, d.dataDir, d.port, d.admin, identityEcho(t)), 0o600); err != nil {
		t.Fatal(err)
	}
	return d.start("run", "-c", path)
}

// legitRound is one round of the legitimate client from clientSource: a
// TLS handshake on a fresh connection (timed), then, in a fresh browser,
// sign-in as the clinician and a proxied request. It returns the
// handshake time and what went wrong, if anything.
func legitRound(d *demo) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dialer := &tls.Dialer{
		NetDialer: &net.Dialer{LocalAddr: &net.TCPAddr{IP: clientSource}},
		Config:    &tls.Config{ServerName: "localhost", RootCAs: rootPool(d.t, d), NextProtos: []string{"h2", "http/1.1"}},
	}
	start := time.Now()
	c, err := dialer.DialContext(ctx, "tcp", fmt.Sprintf("127.0.0.1:%d", d.port))
	hs := time.Since(start)
	if err != nil {
		return hs, fmt.Errorf("handshake: %w", err)
	}
	c.Close()
	wc, err := webclient.NewFrom(filepath.Join(d.dataDir, "ca", "root.pem"), clientSource)
	if err != nil {
		return hs, err
	}
	defer wc.Close()
	wc.HTTP.Timeout = 10 * time.Second
	resp, body, err := wc.SignIn(d.Base()+"/clinic/", "clinician@demo.test", "demo")
	if err != nil {
		return hs, fmt.Errorf("sign-in: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return hs, fmt.Errorf("sign-in: %d %.200s", resp.StatusCode, body)
	}
	resp, body, err = wc.Get(d.Base() + "/clinic/chart")
	if err != nil {
		return hs, fmt.Errorf("proxied request: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return hs, fmt.Errorf("proxied request: %d %.200s", resp.StatusCode, body)
	}
	return hs, nil
}

// p99 of ds (which it sorts).
func p99(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	return ds[(len(ds)*99+99)/100-1]
}

// TestRegression_ConnectionFlood: one loopback source (127.0.0.50) keeps
// past the listener's pending pool of connections open and renews each
// one the server closes — idle TCP connections that never send a
// ClientHello, partial ClientHellos, TLS connections dribbling a request
// head, idle keep-alive connections — while a client from another source
// (127.0.0.60) signs in and reaches a proxied route: it succeeds every
// round, with its handshake p99 reported.
func TestRegression_ConnectionFlood(t *testing.T) {
	d := startAbuseNode(t)
	rounds := func(t *testing.T, name string, dur time.Duration) {
		var hs []time.Duration
		failed := 0
		start := time.Now()
		for end := start.Add(dur); time.Now().Before(end); {
			h, err := legitRound(d)
			hs = append(hs, h)
			if err != nil {
				failed++
				t.Errorf("round %d: %v", len(hs), err)
			}
		}
		t.Logf("%s: %d rounds of sign-in and proxied request (%v each), %d failed, handshake p99 %v",
			name, len(hs), (time.Since(start) / time.Duration(len(hs))).Round(time.Millisecond), failed, p99(hs).Round(100*time.Microsecond))
	}
	rounds(t, "quiet", 2*time.Second)
	for _, tc := range []struct {
		kind    abuse.Kind
		workers int
	}{
		{abuse.IdleTCP, 1100},
		{abuse.SlowHandshake, 200},
		{abuse.SlowHeader, 64},
		{abuse.IdleKeepAlive, 64},
	} {
		t.Run(string(tc.kind), func(t *testing.T) {
			stop := abuse.Start(context.Background(), tc.kind, abuse.Options{
				Target: fmt.Sprintf("127.0.0.1:%d", d.port), Source: attackerSource,
				Workers: tc.workers, Pause: 250 * time.Millisecond, Path: "/clinic/",
			})
			// Let the attacker fill what it can first.
			time.Sleep(time.Second)
			rounds(t, string(tc.kind), 3*time.Second)
			st := stop()
			t.Logf("%s attacker: %v", tc.kind, st)
			if st.Closed.Load() == 0 && tc.kind != abuse.SlowHeader {
				t.Errorf("the server closed none of the attacker's connections")
			}
		})
	}
}

// everyListenerConfig has every listener on: %[1]s data directory, %[2]d
// public, %[3]d plain-HTTP, %[4]d admin, %[5]d relay UDP, %[6]d relay TLS
// port, %[7]s upstream.
const everyListenerConfig = `data_dir: %[1]s
server:
  listen: 127.0.0.1:%[2]d
  http_listen: 127.0.0.1:%[3]d
  admin: 127.0.0.1:%[4]d
connections:
  max_pending: 32
  max_conns: 128
  max_conns_per_source: 32
  first_byte_timeout: 1s
  handshake_timeout: 5s
tls:
  hosts:
    - names: [localhost]
      mode: local
routes:
  - id: public
    path: /public/
    upstream: %[7]s
    policy:
      public: true
relay:
  enabled: true
  listen: 127.0.0.1:%[5]d
  tls_listen: 127.0.0.1:%[6]d
  relay_addresses: [127.0.0.1]
  unauthenticated_rate: {rate: 1000, burst: 1000} # the client's Bindings are not what is tested
log:
  format: text
`

// TestRegression_ConnectionFloodEveryListener: idle TCP connections from
// one source, renewed as the server closes them, past the pending pool of
// each listener in turn — the HTTPS listener (HTTPS, and TURN over TLS on
// it), the plain-HTTP listener, the admin listener and the relay's
// dedicated TLS port — leave that listener open to a client from another
// source every time.
func TestRegression_ConnectionFloodEveryListener(t *testing.T) {
	dir := t.TempDir()
	d := &demo{t: t, dataDir: filepath.Join(dir, "data"), port: freePort(t), admin: freePort(t), relay: freeUDPPort(t)}
	httpPort, turnsPort := freePort(t), freePort(t)
	path := filepath.Join(dir, "telegate.yaml")
	if err := os.WriteFile(path, fmt.Appendf(nil, everyListenerConfig, d.dataDir, d.port, httpPort, d.admin, d.relay, turnsPort, identityEcho(t)), 0o600); err != nil {
		t.Fatal(err)
	}
	d.start("run", "-c", path)
	pool := rootPool(t, d)
	client := func() *http.Client {
		return &http.Client{Timeout: 5 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
			Transport: &http.Transport{DisableKeepAlives: true, TLSClientConfig: &tls.Config{RootCAs: pool},
				DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: clientSource}}).DialContext}}
	}
	status := func(u string, want int) error {
		resp, err := client().Get(u)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			return fmt.Errorf("%s: %d, want %d", u, resp.StatusCode, want)
		}
		return nil
	}
	// binding is a STUN Binding over TLS to port (RFC 8489 §6.2.2), with
	// ALPN protos.
	binding := func(port int, protos []string) error {
		dl := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: clientSource}},
			Config: &tls.Config{ServerName: "localhost", RootCAs: pool, NextProtos: protos}}
		c, err := dl.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = turnwire.NewStream(c, "", "").Raw(stun.TransactionID, stun.BindingRequest)
		return err
	}
	for _, l := range []struct {
		name  string
		port  int
		legit func() error
	}{
		{"https", d.port, func() error { return status(fmt.Sprintf("https://localhost:%d/public/", d.port), http.StatusOK) }},
		{"plain http", httpPort, func() error {
			return status(fmt.Sprintf("http://localhost:%d/public/", httpPort), http.StatusPermanentRedirect)
		}},
		{"admin", d.admin, func() error { return status(fmt.Sprintf("http://127.0.0.1:%d/readyz", d.admin), http.StatusOK) }},
		{"turn tls", turnsPort, func() error { return binding(turnsPort, nil) }},
		{"turns on the https port", d.port, func() error { return binding(d.port, []string{"stun.turn"}) }},
	} {
		t.Run(l.name, func(t *testing.T) {
			stop := abuse.Start(context.Background(), abuse.IdleTCP, abuse.Options{
				Target: fmt.Sprintf("127.0.0.1:%d", l.port), Source: attackerSource, Workers: 300, Pause: 100 * time.Millisecond,
			})
			time.Sleep(1500 * time.Millisecond)
			n := 0
			for end := time.Now().Add(2 * time.Second); time.Now().Before(end); n++ {
				if err := l.legit(); err != nil {
					t.Errorf("attempt %d: %v", n+1, err)
				}
				time.Sleep(50 * time.Millisecond)
			}
			st := stop()
			t.Logf("%s: %d attempts from %s; attacker: %v", l.name, n, clientSource, st)
			if st.Closed.Load() < 100 {
				t.Errorf("the server closed only %d of the attacker's connections", st.Closed.Load())
			}
		})
	}
}
