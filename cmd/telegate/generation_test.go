package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/node"
)

// corpusEntry is one configuration of the check ⇔ Build ⇔ run corpus.
type corpusEntry struct {
	name string
	yaml string
	// mode is the permission of the secret files the entry names (0600
	// unless a variant makes one world-readable).
	mode os.FileMode
}

// configCorpus is every configuration the repository ships or documents
// (the example, the test data, the YAML snippets of README.md and the
// docs) and variants of the valid test configuration, one per rule a
// part of telegate applies, accepted and refused.
func configCorpus(t *testing.T) []corpusEntry {
	t.Helper()
	read := func(p string) string {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	out := []corpusEntry{
		{name: "config.example.yaml", yaml: read("../../config.example.yaml")},
		{name: "testdata/valid.yaml", yaml: read("../../config/testdata/valid.yaml")},
		{name: "testdata/several-errors.yaml", yaml: read("../../config/testdata/several-errors.yaml")},
	}
	for _, doc := range []string{"../../README.md", "../../docs/deployment.md", "../../docs/config.md", "../../docs/visits.md", "../../docs/security-model.md"} {
		text := read(doc)
		for i, b := range regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllStringSubmatch(text, -1) {
			out = append(out, corpusEntry{name: fmt.Sprintf("%s#%d", filepath.Base(doc), i+1), yaml: b[1]})
		}
	}
	valid := read("../../config/testdata/valid.yaml")
	variant := func(name, from, to string) {
		if !strings.Contains(valid, from) {
			t.Fatalf("variant %s: %q is not in valid.yaml", name, from)
		}
		out = append(out, corpusEntry{name: "valid+" + name, yaml: strings.Replace(valid, from, to, 1)})
	}
	variant("upstream with a path", "upstream: http://127.0.0.1:8080", "upstream: http://127.0.0.1:8080/app")
	variant("upstream https", "upstream: http://127.0.0.1:8080", "upstream: https://127.0.0.1:8443")
	variant("path not canonical", "path: /api/", "path: /api//")
	variant("path with dot segment", "path: /api/", "path: /x/../api/")
	variant("path reserved", "path: /api/", "path: /.telegate/api/")
	variant("assertion header not X-", "sessions:", "assertion:\n  header: Telegate-Identity\nsessions:")
	variant("assertion header X-", "sessions:", "assertion:\n  header: X-Hospital-Identity\nsessions:")
	variant("admin public", "admin: 127.0.0.1:9090", "admin: 0.0.0.0:9090")
	variant("admin private", "admin: 127.0.0.1:9090", "admin: 10.1.2.3:9090")
	variant("cookie without __Host-", "sessions:", "sessions:\n  cookie_name: telegate")
	variant("symmetric signing alg", "signing_algs: [RS256]", "signing_algs: [HS256]")
	variant("policy admits nobody", "- authenticated: true", "- {}")
	variant("public and allow", "policy:\n      allow:\n        - authenticated: true", "policy:\n      public: true\n      allow:\n        - authenticated: true")
	variant("idle timeout too short", "idle_timeout: 15m", "idle_timeout: 500ms")
	variant("unknown key", "sessions:", "session:\n  idle_timeout: 1m\nsessions:")
	variant("duplicate route id", "id: api\n    path: /api/", "id: home\n    path: /api/")
	variant("missing client CA", "ca_file: ca.pem", "ca_file: missing.pem")
	variant("client CA that is not a CA", "ca_file: ca.pem", "ca_file: leaf.pem")
	variant("visits without relay", "routes:", "visits:\n  enabled: true\nroutes:")
	variant("inspection on", "routes:", "inspection:\n  enabled: true\nroutes:")
	variant("route strips headers", "api: true\n", "api: true\n    strip_request_headers: [X-Internal-*, X_Debug.User]\n")
	variant("route strips every header", "api: true\n", "api: true\n    strip_request_headers: [\"*\"]\n")
	variant("route strips a name with a space", "api: true\n", "api: true\n    strip_request_headers: [\"X Debug\"]\n")
	variant("route inspected", "api: true\n", "api: true\n    inspect: true\n")
	variant("rate zero", "routes:", "rate_limits:\n  per_client: {rate: 0, burst: 10}\nroutes:")
	variant("development provider off loopback", "  - id: staff\n", "  - id: dev\n    development: true\n  - id: staff\n")
	variant("admin on the public port by another name", "listen: \":8443\"", "listen: \"localhost:9090\"")
	variant("issuer with a query", "issuer: https://idp.example.test\n    client_id", "issuer: https://idp.example.test/?tenant=x\n    client_id")
	variant("secret file", "client_secret: ${STAFF_SECRET}", "client_secret_file: staff.secret")
	readable := corpusEntry{name: "valid+world-readable secret file", yaml: strings.Replace(valid, "client_secret: ${STAFF_SECRET}", "client_secret_file: staff.secret", 1), mode: 0o644}
	return append(out, readable)
}

// writeCorpusEntry writes e into a fresh directory with every file it
// names (secrets 32 bytes in base64; certificate files a real certificate
// and key) and returns the path and the environment its ${NAME}s need.
func writeCorpusEntry(t *testing.T, e corpusEntry) (string, []string) {
	t.Helper()
	dir := t.TempDir()
	var env []string
	for _, m := range regexp.MustCompile(`\$\{([A-Z0-9_]+)\}`).FindAllStringSubmatch(e.yaml, -1) {
		v := "example-secret-value-" + strings.ToLower(m[1])
		if strings.HasSuffix(m[1], "_KEY") {
			v = "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=" // 32 bytes
		}
		env = append(env, m[1]+"="+v)
	}
	certPEM, keyPEM := testCertificate(t)
	caPEM, err := os.ReadFile("../../config/testdata/ca.pem")
	if err != nil {
		t.Fatal(err)
	}
	mode := e.mode
	if mode == 0 {
		mode = 0o600
	}
	// An absolute directory in a document (data_dir: /var/lib/telegate,
	// audit.checkpoint_dir) is kept inside the test's directory too.
	for _, m := range regexp.MustCompile(`(?m)^[^#\n]*?\b([a-z_]*dir):\s*(/[^\s#]*)`).FindAllStringSubmatch(e.yaml, -1) {
		e.yaml = strings.ReplaceAll(e.yaml, m[0], strings.Replace(m[0], m[2], filepath.Join(dir, m[2]), 1))
	}
	for _, m := range regexp.MustCompile(`(?m)^[^#\n]*?\b([a-z_]+_file):\s*([^\s#]+)`).FindAllStringSubmatch(e.yaml, -1) {
		field, p := m[1], m[2]
		if strings.HasPrefix(p, "${") || p == "missing.pem" {
			continue
		}
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		} else {
			// An absolute path in a document (/etc/telegate/…) is kept
			// inside the test's directory.
			p = filepath.Join(dir, p)
			e.yaml = strings.ReplaceAll(e.yaml, m[2], p)
		}
		content, fileMode := []byte("MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=\n"), mode
		switch field {
		case "ca_file", "ca_root_file":
			content, fileMode = caPEM, 0o644
			if strings.HasSuffix(p, "leaf.pem") { // a certificate that is not a CA
				content = certPEM
			}
		case "cert_file":
			content, fileMode = certPEM, 0o644
		case "key_file":
			if strings.HasSuffix(p, ".pem") { // a TLS key; audit.key_file is base64
				content = keyPEM
			}
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, content, fileMode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, fileMode); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "ca.pem"), caPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "telegate.yaml")
	if err := os.WriteFile(path, []byte(e.yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, env
}

// testCertificate is a self-signed P-256 certificate for names (a few
// documented ones when none) and its key, PEM.
func testCertificate(t *testing.T, names ...string) (certPEM, keyPEM []byte) {
	t.Helper()
	if len(names) == 0 {
		names = []string{"gw.hospital.example", "gw.example.test", "localhost"}
	}
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "gw.hospital.example"},
		DNSNames: names, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
}

// loopbackOnly is an HTTP client that reaches nothing but loopback: the
// configurations name real identity providers and ACME CAs, which a test
// must never contact.
func loopbackOnly() *http.Client {
	d := &net.Dialer{Timeout: time.Second}
	return &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			host, _, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, err
			}
			if ip, err := netip.ParseAddr(host); host != "localhost" && (err != nil || !ip.IsLoopback()) {
				return nil, fmt.Errorf("test: %s is not on loopback", host)
			}
			return d.DialContext(ctx, network, addr)
		},
	}}
}

// onLoopback is cfg with every listener on an ephemeral loopback port,
// its data in dir, and certificate files instead of ACME (which would
// reach a CA on the Internet), so that run can start it here. Everything
// else stays as the file says.
func onLoopback(t *testing.T, cfg *config.Config, dir string) *config.Config {
	t.Helper()
	c := *cfg
	c.DataDir = dir
	c.Server.Listen, c.Server.Admin, c.Server.HTTPListen = "127.0.0.1:0", "127.0.0.1:0", ""
	c.TLS.Hosts = append([]config.TLSHost(nil), cfg.TLS.Hosts...)
	for i := range c.TLS.Hosts {
		h := &c.TLS.Hosts[i]
		if h.Mode != "acme" {
			continue
		}
		certPEM, keyPEM := testCertificate(t, h.Names...)
		h.Mode, h.CertFile, h.KeyFile = "files", filepath.Join(t.TempDir(), "cert.pem"), filepath.Join(t.TempDir(), "key.pem")
		if err := os.WriteFile(h.CertFile, certPEM, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(h.KeyFile, keyPEM, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if c.Relay.Enabled {
		c.Relay.Listen = "127.0.0.1:0"
		if c.Relay.TLSListen != "" {
			c.Relay.TLSListen = "127.0.0.1:0"
		}
		c.Relay.RelayAddresses = []netip.Addr{netip.MustParseAddr("127.0.0.1")}
		c.Relay.UDPSockets = 1
	}
	return &c
}

// TestRegression_CheckAcceptsExactlyWhatRunStarts: for every configuration
// of the corpus, `telegate check` accepts it exactly when node.Build
// builds it, and run starts exactly the configurations that build. Before
// this, check passed files run then refused (an upstream URL with a path,
// an assertion header only the gateway refused, a relay secrets file that
// was missing or world-readable).
func TestRegression_CheckAcceptsExactlyWhatRunStarts(t *testing.T) {
	t.Parallel()
	corpus := configCorpus(t)
	var accepted, refused int
	for _, e := range corpus {
		path, env := writeCorpusEntry(t, e)
		r := telegate(t, env, "check", "-c", path)
		checked := r.code == 0
		t.Logf("%s: check exit %d %s", e.name, r.code, strings.TrimSpace(r.stderr))
		var built error
		cfg, err := loadWithEnv(path, env)
		if err == nil {
			_, built = node.Build(cfg, node.Env{})
		} else {
			built = err
		}
		if checked != (built == nil) {
			t.Errorf("%s: check exit %d (%s) but Build: %v", e.name, r.code, strings.TrimSpace(r.stderr), built)
			continue
		}
		if !checked {
			refused++
			if !strings.Contains(r.stderr, path) {
				t.Errorf("%s: refused without file:line: %q", e.name, r.stderr)
			}
			if cfg != nil {
				if err := runUntilReady(t, cfg); err == nil {
					t.Errorf("%s: check refused it but run started", e.name)
				}
			}
			continue
		}
		accepted++
		if cfg.Redis.Addr != "" {
			continue // runs with its Redis in the node and auth tests
		}
		lc := onLoopback(t, cfg, filepath.Join(t.TempDir(), "data"))
		if _, err := node.Build(lc, node.Env{}); err != nil {
			t.Errorf("%s: on loopback it no longer builds: %v", e.name, err)
			continue
		}
		if err := runUntilReady(t, lc); err != nil {
			t.Errorf("%s: check accepted it but run did not start: %v", e.name, err)
		}
	}
	t.Logf("corpus: %d configurations, %d accepted and started, %d refused by both", len(corpus), accepted, refused)
	if accepted < 10 || refused < 10 {
		t.Errorf("the corpus should hold at least 10 accepted and 10 refused configurations: %d, %d", accepted, refused)
	}
}

// loadWithEnv loads path with env set for the ${NAME}s it names.
func loadWithEnv(path string, env []string) (*config.Config, error) {
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		if old, ok := os.LookupEnv(k); ok && old != v {
			return nil, fmt.Errorf("test: %s is already set differently", k)
		}
		_ = os.Setenv(k, v) // unique names per placeholder; same value everywhere
	}
	return config.Load(path)
}

// runUntilReady runs a node for cfg until it is ready, then stops it: nil
// when it got ready, else why it stopped.
func runUntilReady(t *testing.T, cfg *config.Config) error {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- node.Run(ctx, cfg, node.Options{
			Logger:     slog.New(slog.DiscardHandler),
			HTTPClient: loopbackOnly(),
			Ready:      func(node.Ready) { close(ready) },
		})
	}()
	select {
	case <-ready:
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Error("node did not stop")
		}
		return nil
	case err := <-done:
		if err == nil {
			err = errors.New("stopped before it was ready")
		}
		return err
	case <-time.After(60 * time.Second):
		return errors.New("not ready within 60s")
	}
}

// TestRegression_WatchTakesNoHalfWrittenFile: --watch reloads a changed
// file only once it has stayed the same for a whole interval, so a file
// an editor or a deploy tool is still writing — valid YAML that has lost
// its last routes — is not applied. Members: more bytes appended, the
// file rewritten, and (the reload case) nothing changing.
func TestRegression_WatchTakesNoHalfWrittenFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "telegate.yaml")
	write := func(s string) {
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name    string
		during  func()
		settles bool
	}{
		{"still appending", func() {
			f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				t.Error(err)
				return
			}
			_, _ = f.WriteString("  - id: admin\n")
			f.Close()
		}, false},
		{"rewritten", func() { write("routes: []\n# rewritten\n") }, false},
		{"written", func() {}, true},
	} {
		write("routes:\n  - id: home\n")
		stamp := fileStamp(path)
		go func() {
			time.Sleep(50 * time.Millisecond)
			tc.during()
		}()
		if got := settled(context.Background(), path, stamp, 300*time.Millisecond); got != tc.settles {
			t.Errorf("%s: settled %v, want %v", tc.name, got, tc.settles)
		}
	}
}

// TestRegression_DemoSurvivesSIGHUP: SIGHUP asks telegate demo for a
// reload like telegate run; the demo has no file to read again, says so
// and keeps serving (it used to die with status 129, no drain and no
// node.stop record), and SIGTERM still ends it with status 0.
func TestRegression_DemoSurvivesSIGHUP(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "demo", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--relay", "127.0.0.1:0", "--data-dir", filepath.Join(dir, "data"))
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}
	var logs syncBuffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	waitFor(t, &logs, "configuration applied", 45*time.Second)
	for range 2 {
		if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		waitFor(t, &logs, "nothing to reload", 10*time.Second)
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("after SIGHUP and SIGTERM: %v\n%s", err, logs.String())
	}
}

// TestRegression_CheckReportsEveryProblemInOneRun: a file with problems
// of the file (an unknown key, a bad duration) and problems only the parts
// find (an upstream with a path, a policy that admits nobody, an
// assertion header that is not an X- name) is reported whole by one
// check, every problem with its line — not the parts' problems only once
// the file's are fixed — and a part's problem at a field the file already
// has a problem with is not reported twice.
func TestRegression_CheckReportsEveryProblemInOneRun(t *testing.T) {
	t.Parallel()
	valid, err := os.ReadFile("../../config/testdata/valid.yaml")
	if err != nil {
		t.Fatal(err)
	}
	src := string(valid)
	for _, e := range [][2]string{
		{"  idle_timeout: 15m", "  idle_timeout: soon"},
		{"sessions:", "assertion:\n  header: Telegate-Identity\nsessions:"},
		{"upstream: http://127.0.0.1:8080", "upstream: http://127.0.0.1:8080/app"},
		{"- roles: [scheduler]", "- {}"},
		{"  admin: 127.0.0.1:9090", "  admin: 127.0.0.1:9090\n  colour: blue"},
	} {
		if !strings.Contains(src, e[0]) {
			t.Fatalf("%q not in valid.yaml", e[0])
		}
		src = strings.Replace(src, e[0], e[1], 1)
	}
	path, env := writeCorpusEntry(t, corpusEntry{name: "several", yaml: src})
	r := telegate(t, env, "check", "-c", path)
	if r.code != 1 {
		t.Fatalf("check exit %d", r.code)
	}
	for _, field := range []string{"sessions.idle_timeout", "server.colour", "assertion.header", "routes[0].upstream", "routes[1].policy.allow[0]"} {
		if n := strings.Count(r.stderr, ": "+field+": "); n != 1 {
			t.Errorf("%s reported %d times in:\n%s", field, n, r.stderr)
		}
	}
	if lines := strings.Split(strings.TrimSpace(r.stderr), "\n"); len(lines) != 5 {
		t.Errorf("%d problems, want 5:\n%s", len(lines), r.stderr)
	}
}

// TestRegression_StartBuildsOnce: a node builds its first generation
// once — the check of the configuration before anything opens is that
// build — and each reload builds once more, taken or refused, as
// telegate_config_builds_total on the admin listener shows. Members: the
// demo, run with a file (with the WAF on), a reload that takes effect and
// one a part refuses (the running generation stays).
func TestRegression_StartBuildsOnce(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no SIGHUP")
	}
	t.Parallel()
	t.Run("demo", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		n := startCLI(t, dir, "demo", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--relay", "127.0.0.1:0", "--data-dir", filepath.Join(dir, "data"))
		n.want(t, 1, 1)
	})
	t.Run("run and reload", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		good := strings.Replace(reloadConfig(dir), "log:", "inspection:\n  enabled: true\nlog:", 1)
		path := filepath.Join(dir, "config.yaml")
		write := func(s string) {
			if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		write(good)
		n := startCLI(t, dir, "run", "-c", path)
		n.want(t, 1, 1)

		write(strings.Replace(good, "format: json", "format: json\n  level: debug", 1))
		n.hup(t, `"generation":2`)
		n.want(t, 2, 2)

		write(strings.Replace(good, "      public: true", "      allow:\n        - {}", 1)) // a policy that admits nobody: policies refuse it
		n.hup(t, "configuration reload refused")
		if want := path + ":17: routes[0].policy.allow[0]: the rule sets no criterion"; !strings.Contains(n.logs.String(), want) {
			t.Errorf("the refusal does not name %q:\n%s", want, n.logs.String())
		}
		n.want(t, 3, 2)
	})
}

// cliNode is a telegate process of a test, with its logs and admin
// listener.
type cliNode struct {
	cmd   *exec.Cmd
	logs  *syncBuffer
	admin string
}

// startCLI starts the telegate binary with args and waits until it has
// applied its configuration and listens.
func startCLI(t *testing.T, dir string, args ...string) *cliNode {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}
	logs := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		if err := cmd.Wait(); err != nil {
			t.Errorf("after SIGTERM: %v\n%s", err, logs.String())
		}
		cancel()
	})
	re := regexp.MustCompile(`listening.*admin[=":]+(127\.0\.0\.1:[0-9]+)`)
	deadline := time.Now().Add(60 * time.Second)
	for {
		if m := re.FindStringSubmatch(logs.String()); m != nil {
			return &cliNode{cmd: cmd, logs: logs, admin: m[1]}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no listening admin address in:\n%s", logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// hup sends SIGHUP and waits for want in the logs.
func (n *cliNode) hup(t *testing.T, want string) {
	t.Helper()
	if err := n.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, n.logs, want, 20*time.Second)
}

// want checks telegate_config_builds_total and telegate_config_generation
// on the admin listener's /metrics.
func (n *cliNode) want(t *testing.T, builds, generation int) {
	t.Helper()
	resp, err := loopbackOnly().Get("http://" + n.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]int{"telegate_config_builds_total": builds, "telegate_config_generation": generation} {
		m := regexp.MustCompile(`(?m)^` + name + ` ([0-9.e+]+)$`).FindSubmatch(body)
		if m == nil {
			t.Errorf("no %s in /metrics", name)
			continue
		}
		if got := string(m[1]); got != fmt.Sprint(want) {
			t.Errorf("%s %s, want %d\n%s", name, got, want, n.logs.String())
		}
	}
}
