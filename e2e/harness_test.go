// Package e2e runs the real telegate binary (or its real server types)
// against real peers on loopback: the development OpenID Provider, the demo
// upstream app, HTTP clients with cookie jars and headless Chromium.
package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// telegateBin is the binary built once by TestMain.
var telegateBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "telegate-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	telegateBin = filepath.Join(dir, "telegate")
	build := exec.Command("go", "build", "-o", telegateBin, "../cmd/telegate")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building telegate:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// demo is a running `telegate demo` process.
type demo struct {
	t       testing.TB
	dataDir string
	port    int
	admin   int
	cmd     *exec.Cmd
	out     *lockedBuffer
	done    chan struct{}
}

// Base is the public URL, e.g. "https://localhost:41234".
func (d *demo) Base() string { return fmt.Sprintf("https://localhost:%d", d.port) }

// AdminURL is the admin listener's base URL.
func (d *demo) AdminURL() string { return fmt.Sprintf("http://127.0.0.1:%d", d.admin) }

// startDemo runs `telegate demo` on loopback ports with dataDir and waits
// until its admin listener says it is ready.
func startDemo(t testing.TB, dataDir string, port, admin int) *demo {
	t.Helper()
	d := &demo{t: t, dataDir: dataDir, port: port, admin: admin, out: &lockedBuffer{}, done: make(chan struct{})}
	d.cmd = exec.Command(telegateBin, "demo",
		"--listen", fmt.Sprintf("127.0.0.1:%d", port),
		"--admin", fmt.Sprintf("127.0.0.1:%d", admin),
		"--data-dir", dataDir)
	d.cmd.Stdout, d.cmd.Stderr = d.out, d.out
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.cmd.Wait(); close(d.done) }()
	t.Cleanup(func() { d.Stop() })
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-d.done:
			t.Fatalf("telegate demo exited early:\n%s", d.out.String())
		default:
		}
		resp, err := http.Get(d.AdminURL() + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return d
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("telegate demo not ready in time:\n%s", d.out.String())
	return nil
}

// Stop ends the process with SIGTERM (then SIGKILL) and waits for it.
func (d *demo) Stop() {
	select {
	case <-d.done:
		return
	default:
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(15 * time.Second):
		d.cmd.Process.Kill()
		<-d.done
	}
}

// Output is what the process printed so far.
func (d *demo) Output() string { return d.out.String() }

// browser is an HTTP client with a cookie jar that trusts the demo's local
// CA and dials only loopback.
type browser struct {
	t      testing.TB
	c      *http.Client
	jar    http.CookieJar
	accept string
}

func newBrowser(t testing.TB, d *demo) *browser {
	t.Helper()
	pem, err := os.ReadFile(filepath.Join(d.dataDir, "ca", "root.pem"))
	if err != nil {
		t.Fatalf("local CA root: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("local CA root: no certificate")
	}
	jar, _ := cookiejar.New(nil)
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	tr := &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool},
		// Everything the demo serves is on loopback; never dial elsewhere.
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			_, port, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, err
			}
			return dialer.DialContext(ctx, "tcp4", net.JoinHostPort("127.0.0.1", port))
		},
		ForceAttemptHTTP2: true,
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &browser{t: t, jar: jar, accept: "application/json", c: &http.Client{Jar: jar, Transport: tr, Timeout: 20 * time.Second}}
}

// noRedirect returns a copy of the client that stops at the first
// response.
func (b *browser) noRedirect() *http.Client {
	c := *b.c
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &c
}

var formAction = regexp.MustCompile(`<form[^>]*method="post"[^>]*action="([^"]*)"`)
var hiddenID = regexp.MustCompile(`<input type="hidden" name="id" value="([^"]*)"`)

// signIn opens path on the gateway, is sent to the development OpenID
// Provider, fills in its login form as a person would and returns the page
// the gateway finally serves.
func (b *browser) signIn(base, path, user, password string) (*http.Response, []byte) {
	b.t.Helper()
	resp, body := b.get(base + path)
	m := formAction.FindSubmatch(body)
	if m == nil {
		b.t.Fatalf("GET %s: expected the identity provider's login form, got %d %s:\n%.500s", path, resp.StatusCode, resp.Request.URL, body)
	}
	action, err := resp.Request.URL.Parse(string(m[1]))
	if err != nil {
		b.t.Fatal(err)
	}
	form := url.Values{"username": {user}, "password": {password}}
	if id := hiddenID.FindSubmatch(body); id != nil {
		form.Set("id", string(id[1]))
	}
	return b.post(action.String(), form, nil)
}

func (b *browser) get(u string) (*http.Response, []byte) {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Accept", b.accept)
	return b.do(b.c, req)
}

func (b *browser) post(u string, form url.Values, hdr http.Header) (*http.Response, []byte) {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", b.accept)
	for k, v := range hdr {
		req.Header[k] = v
	}
	return b.do(b.c, req)
}

func (b *browser) do(c *http.Client, req *http.Request) (*http.Response, []byte) {
	b.t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		b.t.Fatal(err)
	}
	return resp, body
}

// cookie returns the named cookie the jar holds for base, or nil.
func (b *browser) cookie(base, name string) *http.Cookie {
	u, _ := url.Parse(base + "/")
	for _, c := range b.jar.Cookies(u) {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// upstreamView is the demo app's JSON: what the upstream saw in the
// gateway's assertion.
type upstreamView struct {
	Subject       string   `json:"subject"`
	Issuer        string   `json:"issuer"`
	Name          string   `json:"name"`
	Roles         []string `json:"roles"`
	MFA           bool     `json:"mfa"`
	Route         string   `json:"route"`
	Path          string   `json:"path"`
	Authenticated bool     `json:"authenticated"`
}

func decodeView(t testing.TB, body []byte) upstreamView {
	t.Helper()
	var v upstreamView
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("upstream view: %v in %.300s", err, body)
	}
	return v
}

// lockedBuffer collects a process's output safely.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// runBinary runs the telegate binary with args (bounded in time) and
// returns its combined output.
func runBinary(t testing.TB, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, telegateBin, args...).CombinedOutput()
	return string(out), err
}
