package node

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/demo/devop"
	"github.com/telegate/telegate/gateway"
	"github.com/telegate/telegate/gateway/edgetls"
	"github.com/telegate/telegate/internal/redistest"
	"github.com/telegate/telegate/media/relay"
)

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// nodeConfig writes and loads a configuration for a node on loopback with
// its sessions and rate limits in rdb, and the relay on.
func nodeConfig(t *testing.T, rdb *redistest.Server) *config.Config {
	t.Helper()
	return nodeConfigWith(t, rdb, "")
}

// runNode runs a node on cfg until the test ends (then it must stop within
// 20 s), waits up to 30 s for it to listen, and returns what it reports
// and a func that waits for Run's result (at most once before the end).
func runNode(t *testing.T, cfg *config.Config) (Ready, func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan Ready, 1)
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg, Options{Logger: quietLogger(), Ready: func(r Ready) { ready <- r }}) }()
	var once sync.Once
	var result error
	wait := func() error {
		once.Do(func() { result = <-done })
		return result
	}
	t.Cleanup(func() {
		cancel()
		stopped := make(chan struct{})
		go func() { _ = wait(); close(stopped) }()
		select {
		case <-stopped:
		case <-time.After(20 * time.Second):
			t.Error("node did not stop")
		}
	})
	select {
	case r := <-ready:
		return r, wait
	case err := <-done:
		t.Fatalf("node stopped: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("node did not start")
	}
	return Ready{}, nil
}

// nodeConfigWith is nodeConfig with extra (top-level YAML sections) added.
func nodeConfigWith(t *testing.T, rdb *redistest.Server, extra string) *config.Config {
	t.Helper()
	dir := t.TempDir()
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("session.key", "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=\n")
	write("redis.password", rdb.Password+"\n")
	write("telegate.yaml", fmt.Sprintf(`data_dir: ./data
server:
  listen: 127.0.0.1:0
  http_listen: ""
  admin: 127.0.0.1:0
  public_url: https://localhost
tls:
  hosts:
    - names: [localhost]
      mode: local
sessions:
  store: redis
  encryption_key_file: session.key
redis:
  addr: %s
  password_file: redis.password
relay:
  enabled: true
  listen: 127.0.0.1:0
  udp_sockets: 1
  relay_addresses: [127.0.0.1]
routes:
  - id: public
    path: /
    upstream: http://127.0.0.1:9
    policy:
      public: true
log:
  level: error
`, rdb.Addr)+extra)
	cfg, err := config.Load(filepath.Join(dir, "telegate.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// getReadyz asks the admin listener at addr for /readyz.
func getReadyz(t *testing.T, addr string) (int, gateway.Readiness) {
	t.Helper()
	hc := &http.Client{Timeout: 5 * time.Second}
	resp, err := hc.Get("http://" + addr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var rd gateway.Readiness
	if err := json.Unmarshal(b, &rd); err != nil {
		t.Fatalf("readyz body %q: %v", b, err)
	}
	return resp.StatusCode, rd
}

// waitReadyz polls /readyz until it answers code with exactly the
// dependencies in down not ready (every other one ready), and returns the
// last answer. Results are cached for config.DefaultReadyCacheFor, so a
// change shows within that and one check timeout.
func waitReadyz(t *testing.T, addr string, code int, down ...string) gateway.Readiness {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, rd := getReadyz(t, addr)
		ok := got == code && rd.Ready == (code == http.StatusOK)
		for _, d := range rd.Dependencies {
			want := true
			for _, n := range down {
				if d.Name == n {
					want = false
				}
			}
			if d.Ready != want || (!d.Ready && d.Error == "") {
				ok = false
			}
		}
		if ok {
			return rd
		}
		if time.Now().After(deadline) {
			t.Fatalf("readyz did not become %d with %v down: last %d %+v", code, down, got, rd)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func names(rd gateway.Readiness) []string {
	var out []string
	for _, d := range rd.Dependencies {
		out = append(out, d.Name)
	}
	return out
}

// TestRegression_ReadyWhileDependencyDown: /readyz said ready while Redis,
// the relay or the audit trail was down, so a load balancer kept sending
// patients to a node that could not serve them. Now each dependency is
// checked: Redis stopped (sessions and rate limits), the relay closed, the
// audit trail unwritable each make /readyz 503 naming the dependency, and
// Redis coming back makes it 200 again.
func TestRegression_ReadyWhileDependencyDown(t *testing.T) {
	t.Run("redis stopped and restarted, audit trail removed", func(t *testing.T) {
		rdb := redistest.Start(t)
		cfg := nodeConfig(t, rdb)
		r, _ := runNode(t, cfg)

		rd := waitReadyz(t, r.AdminAddr, http.StatusOK)
		if got, want := strings.Join(names(rd), ","), "redis:sessions,redis:rate-limits,relay,audit"; got != want {
			t.Fatalf("dependencies %s, want %s", got, want)
		}

		rdb.Stop()
		rd = waitReadyz(t, r.AdminAddr, http.StatusServiceUnavailable, "redis:sessions", "redis:rate-limits")
		for _, d := range rd.Dependencies {
			if strings.Contains(d.Error, rdb.Password) {
				t.Errorf("%s error shows the Redis password: %q", d.Name, d.Error)
			}
		}

		rdb.Restart(t)
		waitReadyz(t, r.AdminAddr, http.StatusOK)

		// Someone removes the audit file under the running node: records
		// would go nowhere anyone looks.
		if err := os.Remove(filepath.Join(cfg.DataDir, "audit", "audit.log")); err != nil {
			t.Fatal(err)
		}
		rd = waitReadyz(t, r.AdminAddr, http.StatusServiceUnavailable, "audit")
		if d := rd.Dependencies[3]; !strings.Contains(d.Error, "removed or replaced") {
			t.Errorf("audit error %q", d.Error)
		}
	})

	t.Run("relay closed", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		cfg := &config.Config{
			DataDir: t.TempDir(),
			Server:  config.Server{Listen: "127.0.0.1:0", Admin: "127.0.0.1:0", PublicURL: "https://localhost"},
			TLS:     config.TLS{Hosts: []config.TLSHost{{Names: []string{"localhost"}, Mode: "local"}}},
			Routes:  []config.Route{{ID: "public", Path: "/", Upstream: "http://127.0.0.1:9", Policy: &config.Policy{Public: true}}},
			Relay:   config.Relay{Enabled: true, Listen: "127.0.0.1:0", UDPSockets: 1, RelayAddresses: []netip.Addr{netip.MustParseAddr("127.0.0.1")}},
		}
		cfg.ApplyDefaults()
		cfg.Server.HTTPListen = ""
		if err := cfg.Validate(); err != nil {
			t.Fatal(err)
		}
		turn, err := relay.New(relay.Options{Config: cfg.Relay, Logger: quietLogger(), DataDir: cfg.DataDir})
		if err != nil {
			t.Fatal(err)
		}
		if err := turn.Start(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = turn.Close() })
		certs, err := edgetls.New(ctx, edgetls.Options{Config: cfg, Logger: quietLogger()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = certs.Close() })
		g, err := gateway.New(gateway.Options{
			Config: cfg, Certs: certs, Logger: quietLogger(),
			Dependencies: dependencies(readyParts{Config: cfg, Relay: turn}),
		})
		if err != nil {
			t.Fatal(err)
		}
		errc := make(chan error, 1)
		go func() { errc <- g.Serve(ctx) }()
		if err := waitListening(ctx, g, errc); err != nil {
			t.Fatal(err)
		}
		admin := g.AdminAddr().String()
		if rd := waitReadyz(t, admin, http.StatusOK); strings.Join(names(rd), ",") != "relay" {
			t.Fatalf("dependencies %v, want [relay]", names(rd))
		}
		if err := turn.Close(); err != nil {
			t.Fatal(err)
		}
		rd := waitReadyz(t, admin, http.StatusServiceUnavailable, "relay")
		if rd.Dependencies[0].Error != "relay: closed" {
			t.Errorf("relay error %q", rd.Dependencies[0].Error)
		}
	})
}

// TestRegression_ProviderDownAtStart: telegate starts while its identity
// provider is unreachable: /readyz says 503 naming the provider, its
// sign-in answers 503 with the request id while the rest of the gateway
// serves, and once the provider answers, the retried discovery makes the
// node ready without a restart.
func TestRegression_ProviderDownAtStart(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	opAddr := ln.Addr().String()
	ln.Close() // nothing answers there until the provider starts below
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "client-secret"), []byte("s3cret-for-the-test-provider\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "telegate.yaml"), []byte(fmt.Sprintf(`data_dir: ./data
server:
  listen: 127.0.0.1:0
  http_listen: ""
  admin: 127.0.0.1:0
  public_url: https://localhost
tls:
  hosts:
    - names: [localhost]
      mode: local
providers:
  - id: staff
    issuer: http://%s
    client_id: telegate
    client_secret_file: client-secret
routes:
  - id: public
    path: /
    upstream: http://127.0.0.1:9
    policy:
      public: true
log:
  level: error
`, opAddr)), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(filepath.Join(dir, "telegate.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan Ready, 1)
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg, Options{Logger: quietLogger(), Ready: func(r Ready) { ready <- r }}) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	var r Ready
	select {
	case r = <-ready:
	case err := <-done:
		t.Fatalf("telegate did not start while its provider was down: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("node did not start")
	}
	rd := waitReadyz(t, r.AdminAddr, http.StatusServiceUnavailable, "provider:staff")
	if d := rd.Dependencies[len(rd.Dependencies)-1]; d.Name != "provider:staff" || !strings.Contains(d.Error, "not been reached") {
		t.Errorf("provider status %+v", d)
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true, ServerName: "localhost"}}} // loopback only, the node's local CA
	t.Cleanup(hc.CloseIdleConnections)
	get := func(path string) (*http.Response, string) {
		req, _ := http.NewRequest(http.MethodGet, "https://"+r.ListenAddr+path, nil)
		req.Host = "localhost"
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, string(b)
	}
	resp, body := get("/.telegate/login?provider=staff&rd=/")
	if rid := resp.Header.Get("X-Request-Id"); resp.StatusCode != http.StatusServiceUnavailable || rid == "" || !strings.Contains(body, rid) {
		t.Errorf("sign-in while the provider is down: %d, want 503 with the request id", resp.StatusCode)
	}
	if resp, _ := get("/"); resp.StatusCode == http.StatusServiceUnavailable {
		t.Errorf("the public route answers 503 while only the provider is down")
	}
	op, err := devop.Start(context.Background(), devop.Options{Addr: opAddr, Logger: quietLogger(),
		Clients: []devop.Client{{ID: "telegate", Secret: "s3cret-for-the-test-provider", RedirectURIs: []string{"https://localhost/.telegate/callback/staff"}}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = op.Close() })
	waitReadyz(t, r.AdminAddr, http.StatusOK)
	if resp, _ := get("/.telegate/login?provider=staff&rd=/"); resp.StatusCode >= 500 {
		t.Errorf("sign-in once the provider answers: %d", resp.StatusCode)
	}
}
